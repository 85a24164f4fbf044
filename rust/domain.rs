// SPDX-License-Identifier: GPL-2.0

//! `Domain`: one paging (UNMANAGED) `iommu_domain` and the groups attached
//! to it; `GroupRef`: an `iommu_group` as vfio core lends it to us.

use core::ptr::NonNull;

use kernel::error::from_err_ptr;
use kernel::error::to_result;
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::*;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::bindings;
use crate::compat::{self, eoverflow};
use crate::iova::IovaRange;
use crate::mapping::Mapping;
use crate::mapping::Prot;
use crate::pin::pfn_to_phys;
use crate::runs::PfnRun;

/// A borrowed `struct iommu_group`.
///
/// # Invariants
///
/// `ptr` is a valid group for as long as vfio core keeps it attached to the
/// container (it holds a reference from attach to detach).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupRef {
    ptr: NonNull<bindings::iommu_group>,
}

// SAFETY: a `GroupRef` is only a handle; the iommu core serialises
// operations on the group itself.
unsafe impl Send for GroupRef {}

/// A reserved region of a group, as `iommu_get_group_resv_regions` reports.
pub(crate) struct ResvRegion {
    pub(crate) range: IovaRange,
    pub(crate) kind: bindings::iommu_resv_type,
}

/// The software MSI window to set up for a group with `regions`, as the C
/// module's vfio_iommu_has_sw_msi: none when the IOMMU has a hardware MSI
/// region (`IOMMU_RESV_MSI`), else the start of the last software one.
pub(crate) fn sw_msi_base(regions: &[ResvRegion]) -> Option<u64> {
    if regions
        .iter()
        .any(|r| r.kind == bindings::iommu_resv_type_IOMMU_RESV_MSI)
    {
        return None;
    }
    regions
        .iter()
        .rev()
        .find(|r| r.kind == bindings::iommu_resv_type_IOMMU_RESV_SW_MSI)
        .map(|r| r.range.start())
}

impl ResvRegion {
    /// Whether user mappings must stay out of this region. The C module lets
    /// users map over relaxable direct regions.
    pub(crate) fn excludes_mappings(&self) -> bool {
        self.kind != bindings::iommu_resv_type_IOMMU_RESV_DIRECT_RELAXABLE
    }
}

impl GroupRef {
    /// # Safety
    ///
    /// `ptr` is a valid, non-NULL `iommu_group` that vfio core keeps
    /// referenced at least until the matching `detach_group`.
    pub(crate) unsafe fn new(ptr: *mut bindings::iommu_group) -> Self {
        // SAFETY: non-NULL by the caller's contract.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // INVARIANT: by the caller's contract.
        Self { ptr }
    }

    /// The group number, as in /dev/vfio/N.
    pub(crate) fn id(self) -> i32 {
        // SAFETY: `ptr` is valid (type invariant).
        unsafe { bindings::iommu_group_id(self.ptr.as_ptr()) }
    }

    /// Whether the group's MSIs cannot be forged by its devices (interrupt
    /// remapping or an isolating ITS).
    pub(crate) fn has_isolated_msi(self) -> bool {
        // SAFETY: `ptr` is valid (type invariant).
        unsafe { bindings::iommu_group_has_isolated_msi(self.ptr.as_ptr()) }
    }

    /// Allocates a paging domain for the group's IOMMU, asking through the
    /// group's first device while the group's mutex still holds that
    /// device in the group (as the C module's vfio_iommu_domain_alloc).
    ///
    /// # Errors
    ///
    /// `ENODEV` for a group without devices; the iommu core's errno.
    fn alloc_paging_domain(self) -> Result<NonNull<bindings::iommu_domain>> {
        extern "C" fn alloc(dev: *mut bindings::device, data: *mut c_void) -> c_int {
            // SAFETY: `data` is the result slot passed below; `dev` is a
            // device of the group, alive while the iterator holds the mutex.
            unsafe {
                *data.cast::<*mut bindings::iommu_domain>() =
                    bindings::vfio_rs_paging_domain_alloc(dev)
            };
            1 // Only the first device.
        }
        let mut raw: *mut bindings::iommu_domain = ENODEV.to_ptr();
        // SAFETY: `ptr` is valid (type invariant); `alloc` only writes `raw`,
        // which outlives the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut raw).cast(),
                Some(alloc),
            )
        };
        NonNull::new(from_err_ptr(raw)?).ok_or(ENOMEM)
    }

    /// Writes the names of the group's devices, space separated.
    pub(crate) fn write_devices(self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Ctx<'a, 'b> {
            f: &'a mut core::fmt::Formatter<'b>,
            res: core::fmt::Result,
        }
        extern "C" fn one(dev: *mut bindings::device, data: *mut c_void) -> c_int {
            // SAFETY: `data` is the `Ctx` passed below, alive for the call.
            let ctx = unsafe { &mut *data.cast::<Ctx<'_, '_>>() };
            // SAFETY: `dev` is a live device of the group; its name is a
            // NUL-terminated string that outlives this call.
            let name = unsafe { CStr::from_char_ptr(bindings::vfio_rs_dev_name(dev)) };
            ctx.res = ctx
                .res
                .and_then(|()| write!(ctx.f, " {}", name.to_str().unwrap_or("?")));
            0
        }
        let mut ctx = Ctx { f, res: Ok(()) };
        // SAFETY: `ptr` is valid (type invariant); `one` only uses `ctx`.
        unsafe {
            bindings::iommu_group_for_each_dev(self.ptr.as_ptr(), (&raw mut ctx).cast(), Some(one))
        };
        ctx.res
    }

    /// The group's reserved regions (MSI windows, RMRs, ...).
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn resv_regions(self) -> Result<KVec<ResvRegion>> {
        let mut head = core::mem::MaybeUninit::<bindings::list_head>::uninit();
        let head_ptr = head.as_mut_ptr();
        // SAFETY: `head_ptr` points at our local. An empty list points at
        // itself (INIT_LIST_HEAD); `head` does not move while in use.
        unsafe {
            head_ptr.write(bindings::list_head {
                next: head_ptr,
                prev: head_ptr,
            })
        };
        // SAFETY: `ptr` is valid; `head` is an initialised empty list.
        let ret = unsafe { bindings::iommu_get_group_resv_regions(self.ptr.as_ptr(), head_ptr) };
        let mut out = KVec::new();
        let mut result = to_result(ret);
        // Walk and free every entry, even after an error.
        // SAFETY: `head` is a valid list whose entries are `iommu_resv_region`s
        // allocated by the iommu core for us (freed with kfree, as the C
        // module does).
        let mut p = unsafe { (*head_ptr).next };
        while p != head_ptr {
            let region = p.cast::<bindings::iommu_resv_region>();
            // SAFETY: `list` is the first field of `iommu_resv_region`, so the
            // list node address is the region's; the node is valid.
            let (start, length, kind, next) = unsafe {
                (
                    (*region).start,
                    (*region).length as u64,
                    (*region).type_,
                    (*p).next,
                )
            };
            if result.is_ok() && length > 0 {
                if let Ok(range) = IovaRange::from_size(start, length) {
                    result = out
                        .push(ResvRegion { range, kind }, GFP_KERNEL)
                        .map_err(Into::into);
                }
            }
            // SAFETY: the region is ours and not used after this.
            unsafe { bindings::kfree(region.cast()) };
            p = next;
        }
        result.map(|()| out)
    }
}

/// Where a group is after [`Domain::adopt_group`] failed.
pub(crate) enum AdoptFailure {
    /// Back on the domain it came from.
    BackOnNew,
    /// Attached nowhere: going back failed with this error.
    Detached(Error),
}

/// A paging IOMMU domain owned by one container.
///
/// # Invariants
///
/// `raw` was allocated by `vfio_rs_paging_domain_alloc` and is freed only
/// by `drop`; every group in `groups` is attached to it.
pub(crate) struct Domain {
    raw: NonNull<bindings::iommu_domain>,
    groups: KVec<GroupRef>,
    enforce_cache_coherency: bool,
}

// SAFETY: the iommu core allows using a domain from any thread; `Domain` is
// only reached through the container's mutex.
unsafe impl Send for Domain {}

impl Domain {
    /// Allocates a paging domain for `group`'s IOMMU (with nesting enabled
    /// if `nesting`) and attaches `group`.
    ///
    /// # Errors
    ///
    /// The iommu core's errno; nothing is left allocated on error.
    pub(crate) fn attach_new(group: GroupRef, nesting: bool) -> Result<Self> {
        let mut groups = KVec::with_capacity(1, GFP_KERNEL)?;
        let raw = group.alloc_paging_domain()?;
        // Nesting is enabled before the first attach, as the C module does.
        let nested = if nesting {
            compat::enable_nesting(raw.as_ptr())
        } else {
            Ok(())
        };
        let attached = nested.and_then(|()| {
            // SAFETY: `raw` and `group` are valid.
            to_result(unsafe {
                bindings::vfio_rs_iommu_attach_group(raw.as_ptr(), group.ptr.as_ptr())
            })
        });
        if let Err(e) = attached {
            // SAFETY: `raw` is ours and has no group attached.
            unsafe { bindings::iommu_domain_free(raw.as_ptr()) };
            return Err(e);
        }
        // SAFETY: `raw` is a valid domain.
        let enforce_cache_coherency =
            unsafe { bindings::vfio_rs_domain_enforce_cache_coherency(raw.as_ptr()) };
        // Cannot fail: capacity 1.
        groups.push(group, GFP_KERNEL)?;
        // INVARIANT: `raw` is freshly allocated and `group` is attached.
        Ok(Self {
            raw,
            groups,
            enforce_cache_coherency,
        })
    }

    /// The `iommu_domain` itself, for vfio core's `group_iommu_domain`.
    pub(crate) fn raw_ptr(&self) -> *mut bindings::iommu_domain {
        self.raw.as_ptr()
    }

    pub(crate) fn groups(&self) -> &[GroupRef] {
        &self.groups
    }

    pub(crate) fn has_group(&self, group: GroupRef) -> bool {
        self.groups.contains(&group)
    }

    /// Whether the domain blocks DMA that would bypass IOMMU_CACHE.
    pub(crate) fn enforce_cache_coherency(&self) -> bool {
        self.enforce_cache_coherency
    }

    /// Page sizes the domain can map.
    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        // SAFETY: `raw` is valid (type invariant).
        unsafe { bindings::vfio_rs_domain_pgsize_bitmap(self.raw.as_ptr()) as u64 }
    }

    /// The IOVA window the domain can translate.
    pub(crate) fn aperture(&self) -> IovaRange {
        let (mut start, mut end) = (0u64, 0u64);
        // SAFETY: `raw` is valid; the out pointers are live locals.
        unsafe { bindings::vfio_rs_domain_aperture(self.raw.as_ptr(), &mut start, &mut end) };
        // A driver reporting an inverted aperture gets a one-address window.
        IovaRange::new(start, end).unwrap_or_else(|| IovaRange::point(start))
    }

    /// Whether `other` could serve this domain's groups: same IOMMU driver
    /// and the same cache coherency enforcement (the C module's rule).
    pub(crate) fn compatible_with(&self, other: &Domain) -> bool {
        // SAFETY: both domains are valid.
        let same_ops = unsafe {
            bindings::vfio_rs_domain_ops(self.raw.as_ptr())
                == bindings::vfio_rs_domain_ops(other.raw.as_ptr())
        };
        same_ops && self.enforce_cache_coherency == other.enforce_cache_coherency
    }

    /// Moves `group` from `from` (a fresh domain holding only it) onto this
    /// domain. On failure `group` is attached to `from` again, if it can be.
    ///
    /// # Errors
    ///
    /// [`AdoptFailure`] says where `group` is then.
    pub(crate) fn adopt_group(
        &mut self,
        from: &mut Domain,
        group: GroupRef,
    ) -> core::result::Result<(), AdoptFailure> {
        if self.groups.reserve(1, GFP_KERNEL).is_err() {
            return Err(AdoptFailure::BackOnNew);
        }
        // SAFETY: `group` is attached to `from` (type invariant of `from`).
        unsafe { bindings::iommu_detach_group(from.raw.as_ptr(), group.ptr.as_ptr()) };
        from.groups.retain(|g| *g != group);
        if self.attach(group).is_ok() {
            return Ok(());
        }
        // Back onto `from`; the C module gives up on the group if that fails.
        from.attach(group).map_err(AdoptFailure::Detached)?;
        Err(AdoptFailure::BackOnNew)
    }

    /// Attaches the detached `group` and records it.
    ///
    /// # Errors
    ///
    /// The iommu core's; `ENOMEM` recording it (then it is detached again).
    fn attach(&mut self, group: GroupRef) -> Result {
        self.groups.reserve(1, GFP_KERNEL)?;
        // SAFETY: `raw` and `group` are valid; `group` is detached.
        to_result(unsafe {
            bindings::vfio_rs_iommu_attach_group(self.raw.as_ptr(), group.ptr.as_ptr())
        })?;
        // Cannot fail: reserved above.
        self.groups.push(group, GFP_KERNEL)?;
        Ok(())
    }

    /// Sets up the software MSI window at `base` (needed on arm64, where
    /// MSIs go through the SMMU).
    pub(crate) fn enable_sw_msi(&self, base: u64) -> Result {
        // SAFETY: `raw` is a valid paging domain.
        match to_result(unsafe { bindings::iommu_get_msi_cookie(self.raw.as_ptr(), base) }) {
            Err(e) if e != ENODEV => Err(e),
            _ => Ok(()),
        }
    }

    /// Detaches `group`; returns whether the domain is left without groups.
    pub(crate) fn detach(&mut self, group: GroupRef) -> bool {
        if let Some(i) = self.groups.iter().position(|g| *g == group) {
            // SAFETY: `group` is attached to `raw` (type invariant).
            unsafe { bindings::iommu_detach_group(self.raw.as_ptr(), group.ptr.as_ptr()) };
            let _ = self.groups.remove(i);
        }
        self.groups.is_empty()
    }

    /// Maps one contiguous run at `iova`. Large IOMMU pages are used where
    /// the run's alignment and length allow (the iommu core picks them).
    ///
    /// # Errors
    ///
    /// The iommu driver's errno; nothing of the run stays mapped.
    fn map_run(&self, iova: u64, run: PfnRun, prot: Prot) -> Result {
        let size = usize::try_from(run.bytes()).map_err(|_| EINVAL)?;
        // SAFETY: `raw` is valid; the run's pages are pinned (or are device
        // memory) until its mappings are gone (`PfnRun`'s invariant).
        let ret = unsafe {
            bindings::vfio_rs_iommu_map(
                self.raw.as_ptr(),
                iova as c_ulong,
                pfn_to_phys(run.pfn()),
                size,
                (prot.iommu_bits() | bindings::IOMMU_CACHE) as c_int,
            )
        };
        to_result(ret).inspect_err(|_| self.unmap_left_behind(iova, run.bytes()))
    }

    /// Unmaps the entries a failed map of `[iova, iova + size)` left.
    ///
    /// The iommu core unrolls what the driver reports mapped, but Linux
    /// 6.12's VT-d driver reports nothing for a call that failed part way
    /// (no memory for a page-table page) and keeps the entries it wrote:
    /// the device could still reach pages that are unpinned next. Only
    /// present entries are unmapped (io-pgtable-arm warns on a hole); where
    /// the driver unrolls, none is found.
    fn unmap_left_behind(&self, iova: u64, size: u64) {
        let page = kernel::page::PAGE_SIZE as u64;
        let mut stale: Option<(u64, u64)> = None;
        for off in (0..size).step_by(kernel::page::PAGE_SIZE) {
            // Cannot overflow: the caller's range did not.
            let at = iova.wrapping_add(off);
            // SAFETY: `raw` is valid (type invariant).
            let present = unsafe { bindings::iommu_iova_to_phys(self.raw.as_ptr(), at) } != 0;
            stale = match (stale, present) {
                (Some((start, len)), true) => Some((start, len.saturating_add(page))),
                (None, true) => Some((at, page)),
                (Some((start, len)), false) => {
                    self.unmap_now(start, len);
                    None
                }
                (None, false) => None,
            };
        }
        if let Some((start, len)) = stale {
            self.unmap_now(start, len);
        }
    }

    /// Maps every run of `m`, already pinned (replay into a new domain).
    ///
    /// # Errors
    ///
    /// As `map_run`; nothing of `m` stays mapped on error.
    pub(crate) fn map_mapping(&self, m: &Mapping) -> Result {
        let mut mapped = Mapped::new(core::slice::from_ref(self), m.range.start(), m.prot);
        for run in m.pinned.iter().flat_map(|p| p.runs().iter()) {
            mapped.map_run(run)?;
        }
        mapped.commit();
        Ok(())
    }

    /// Unmaps every range of `ranges` (`(iova, size)` pairs) with one
    /// gathered IOTLB flush at the end.
    pub(crate) fn unmap_ranges(&self, ranges: impl Iterator<Item = (u64, u64)>) {
        let mut raw = bindings::iommu_iotlb_gather::default();
        let gather = IotlbGather::init(&mut raw);
        for (iova, size) in ranges.filter(|(_, size)| *size > 0) {
            // SAFETY: `raw` is valid; `gather` is initialised and stays in place.
            unsafe {
                bindings::iommu_unmap_fast(
                    self.raw.as_ptr(),
                    iova as c_ulong,
                    size as usize,
                    gather.0,
                )
            };
        }
        // SAFETY: `gather` holds only invalidations for this domain.
        unsafe { bindings::vfio_rs_iotlb_sync(self.raw.as_ptr(), gather.0) };
    }

    /// Unmaps one range and flushes.
    pub(crate) fn unmap_now(&self, iova: u64, size: u64) {
        self.unmap_ranges(core::iter::once((iova, size)));
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        for g in self.groups.iter() {
            // SAFETY: `g` is attached to `raw` (type invariant).
            unsafe { bindings::iommu_detach_group(self.raw.as_ptr(), g.ptr.as_ptr()) };
        }
        // SAFETY: no group is attached any more; `raw` is ours.
        unsafe { bindings::iommu_domain_free(self.raw.as_ptr()) };
    }
}

/// Runs mapped one after the other from IOVA `start` into every domain of
/// `domains` by one flow (map, replay, pin-on-attach). On drop, unless
/// committed, all of it is unmapped from every domain again: declare it
/// after the pins it maps, so that it is dropped (unmapped) first.
pub(crate) struct Mapped<'a> {
    domains: &'a [Domain],
    start: u64,
    prot: Prot,
    /// Bytes mapped from `start` in every domain.
    len: u64,
}

impl<'a> Mapped<'a> {
    pub(crate) fn new(domains: &'a [Domain], start: u64, prot: Prot) -> Self {
        Self {
            domains,
            start,
            prot,
            len: 0,
        }
    }

    /// Maps `run` right after what is mapped already, into every domain.
    ///
    /// # Errors
    ///
    /// The iommu driver's errno; the run is then mapped nowhere.
    pub(crate) fn map_run(&mut self, run: PfnRun) -> Result {
        let iova = self.start.checked_add(self.len).ok_or_else(eoverflow)?;
        let size = run.bytes();
        for (i, d) in self.domains.iter().enumerate() {
            if let Err(e) = d.map_run(iova, run, self.prot) {
                // This run in the domains before `d`; the guard has the rest.
                for done in self.domains.iter().take(i) {
                    done.unmap_now(iova, size);
                }
                return Err(e);
            }
        }
        self.len = self.len.saturating_add(size);
        Ok(())
    }

    /// Keeps everything mapped.
    pub(crate) fn commit(mut self) {
        self.len = 0;
    }
}

impl Drop for Mapped<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            for d in self.domains {
                d.unmap_now(self.start, self.len);
            }
        }
    }
}

/// IOTLB invalidations collected over several unmaps of one domain.
///
/// The gather struct holds a list head pointing at itself once initialised,
/// so it is initialised in place and only borrowed from then on.
struct IotlbGather<'a>(&'a mut bindings::iommu_iotlb_gather);

impl<'a> IotlbGather<'a> {
    fn init(raw: &'a mut bindings::iommu_iotlb_gather) -> Self {
        // SAFETY: `raw` is a live gather struct that will not move while
        // borrowed.
        unsafe { bindings::vfio_rs_iotlb_gather_init(raw) };
        IotlbGather(raw)
    }
}
