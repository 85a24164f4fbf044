// SPDX-License-Identifier: GPL-2.0

//! `Container`: the per-container state vfio core keeps as `iommu_data`,
//! and the dispatch of the container ioctls. The flows live beside it:
//! attach and detach in `container/attach.rs`, MAP and UNMAP in
//! `container/dma.rs`, dirty tracking in `dirty.rs`, emulated devices in
//! `emulated.rs`.
//!
//! Lock order: `Container::devices` (emulated/devices.rs), then
//! `Container::inner`, then (inside
//! the iommu core and GUP) the iommu group mutex and the mm's `mmap_lock`.
//! Nothing here is called with a spinlock held.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering;

use kernel::ffi::{c_long, c_uint, c_ulong};
use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::Mutex;

use crate::bindings;
use crate::domain::Domain;
use crate::domain::GroupRef;
use crate::emulated::devices::Devices;
use crate::iova::IovaRange;
use crate::iova::ValidRanges;
use crate::mapping::Mappings;
use crate::params;
use crate::pin::PageBatch;
use crate::retire::Live;
use crate::retire::Retire;
use crate::uapi;
use crate::uapi::DirtyPages;
use crate::uapi::Extension;
use crate::uapi::InfoReply;
use crate::uapi::InfoRequest;
use crate::uapi::IommuType;
use crate::uapi::MapRequest;
use crate::uapi::UnmapRequest;

mod attach;
mod dirty;
mod dma;
mod emulated;

/// Numbers containers in log lines.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// `PAGE_MASK` as a u64.
const PAGE_MASK: u64 = !(PAGE_SIZE as u64).wrapping_sub(1);

/// One VFIO container using this backend.
#[pin_data]
pub(crate) struct Container {
    id: u32,
    /// v1 or v2 semantics, fixed at `VFIO_SET_IOMMU`.
    iommu_type: IommuType,
    /// Emulated devices to tell about unmaps (see its lock order).
    #[pin]
    pub(crate) devices: Devices,
    #[pin]
    pub(crate) inner: Mutex<ContainerInner>,
    /// Last, so that module exit sees the count drop only once the rest of
    /// the container is freed (retire.rs).
    _live: Live,
}

/// The fields of [`Container`] protected by its lock.
pub(crate) struct ContainerInner {
    /// Paging domains, each with the groups attached to it. Every mapping is
    /// mapped in every domain.
    pub(crate) domains: KVec<Domain>,
    pub(crate) mappings: Mappings,
    /// Where mappings may go; recomputed on attach and detach.
    pub(crate) valid: ValidRanges,
    /// Page sizes every domain supports (bits below PAGE_SIZE hidden).
    pub(crate) pgsize_bitmap: u64,
    /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_START` is in effect.
    pub(crate) dirty_tracking: bool,
    /// Groups of emulated devices (no IOMMU domain).
    pub(crate) emulated_groups: KVec<GroupRef>,
    /// Scratch space for GUP, allocated with the container and reused by
    /// every map under this lock (taken out while in use).
    pub(crate) batch: Option<PageBatch>,
    /// `release` ran: the container is empty and stays so (retire.rs).
    pub(crate) released: bool,
    /// What `release` hands vfio core's reference to; taken by it.
    retire: Option<Retire>,
}

impl ContainerInner {
    /// The smallest page size: the alignment every map and unmap needs.
    pub(crate) fn min_pgsize(&self) -> u64 {
        // Domains that share no page size would leave an empty bitmap (C's
        // __ffs(0) is undefined there); fall back to PAGE_SIZE.
        1u64.checked_shl(self.pgsize_bitmap.trailing_zeros())
            .unwrap_or(PAGE_SIZE as u64)
    }

    fn update_pgsize_bitmap(&mut self) {
        let mut bitmap = self
            .domains
            .iter()
            .fold(u64::MAX, |acc, d| acc & d.pgsize_bitmap());
        if bitmap & !PAGE_MASK != 0 {
            bitmap = (bitmap & PAGE_MASK) | PAGE_SIZE as u64;
        }
        self.pgsize_bitmap = bitmap;
    }

    /// Valid ranges from scratch: the domains' common aperture minus every
    /// attached group's reserved regions.
    fn compute_valid(&self) -> Result<ValidRanges> {
        // Once a domain has constrained the container, the C module keeps a
        // range list: without domains it is the whole IOVA space.
        let Some(first) = self.domains.first() else {
            return ValidRanges::from_aperture(IovaRange::full());
        };
        let mut aperture = first.aperture();
        for d in self.domains.iter() {
            aperture = aperture.intersect(&d.aperture()).ok_or(EINVAL)?;
        }
        let mut valid = ValidRanges::from_aperture(aperture)?;
        for d in self.domains.iter() {
            for g in d.groups() {
                for r in g.resv_regions()?.iter().filter(|r| r.excludes_mappings()) {
                    valid.exclude(&r.range)?;
                }
            }
        }
        Ok(valid)
    }

    /// Unmaps the mappings of `ranges` from every domain (one IOTLB flush per
    /// domain), then drops them, which unpins and unaccounts.
    fn remove_mappings(&mut self, ranges: impl Iterator<Item = IovaRange> + Clone) {
        // Unmap everywhere before anything is unpinned.
        for d in self.domains.iter() {
            d.unmap_ranges(ranges.clone().map(|r| (r.start(), r.size())));
        }
        for r in ranges {
            drop(self.mappings.remove(r.start()));
        }
    }

    /// Unmaps every mapping from every domain (one IOTLB flush per domain).
    fn unmap_all_from_domains(&self) {
        for d in self.domains.iter() {
            d.unmap_ranges(self.mappings.iter().map(|m| (m.range.start(), m.size())));
        }
    }

    fn remove_all_mappings(&mut self) {
        // Unmap from every domain first, then drop (unpin) them all.
        self.unmap_all_from_domains();
        while let Some(k) = self.mappings.first_key() {
            drop(self.mappings.remove(k));
        }
    }
}

impl Container {
    /// Allocates an empty container of the given type.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new(iommu_type: IommuType) -> Result<Arc<Self>> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let batch = PageBatch::new()?;
        let retire = Retire::new()?;
        Arc::pin_init(
            pin_init!(Self {
                id,
                iommu_type,
                inner <- new_mutex!(
                    ContainerInner {
                        domains: KVec::new(),
                        mappings: Mappings::new(params::dma_entry_limit()),
                        valid: ValidRanges::unconstrained(),
                        pgsize_bitmap: PAGE_MASK,
                        dirty_tracking: false,
                        emulated_groups: KVec::new(),
                        batch: Some(batch),
                        released: false,
                        retire: Some(retire),
                    },
                    "Container::inner"
                ),
                devices <- Devices::new(),
                _live: Live::new(),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    pub(crate) fn v2(&self) -> bool {
        self.iommu_type != IommuType::V1
    }

    /// Whether new domains get nesting enabled (type 6 on Linux 6.12).
    pub(crate) fn nesting(&self) -> bool {
        self.iommu_type == IommuType::Nesting
    }

    /// Tears the container down; cannot fail. An ioctl still running finds
    /// it empty and released (retire.rs). Returns what vfio core's
    /// reference is handed to (`None` only for a second release, which
    /// vfio core never makes).
    pub(crate) fn release(&self) -> Option<Retire> {
        let mut inner = self.inner.lock();
        inner.released = true;
        inner.remove_all_mappings();
        let domains = core::mem::take(&mut inner.domains);
        let retire = inner.retire.take();
        // Freed here, in process context, not with the container.
        inner.batch = None;
        drop(inner);
        // Dropping a domain detaches its groups and frees it.
        drop(domains);
        if params::verbose() {
            pr_info!("container {}: released\n", self.id);
        }
        retire
    }

    /// The number of this container in log lines and the debugfs view.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The domain `group` is attached to.
    ///
    /// # Errors
    ///
    /// `ENODEV` if the group is not attached.
    pub(crate) fn group_iommu_domain(
        &self,
        group: GroupRef,
    ) -> Result<*mut bindings::iommu_domain> {
        let inner = self.inner.lock();
        let d = inner
            .domains
            .iter()
            .find(|d| d.has_group(group))
            .ok_or(ENODEV)?;
        Ok(d.raw_ptr())
    }

    /// `VFIO_DMA_CC_IOMMU`: every domain enforces cache coherency.
    fn domains_enforce_cache_coherency(&self) -> bool {
        self.inner
            .lock()
            .domains
            .iter()
            .all(|d| d.enforce_cache_coherency())
    }

    /// `VFIO_IOMMU_GET_INFO`: page sizes, and the capability chain.
    fn get_info(&self) -> Result<InfoReply> {
        let inner = self.inner.lock();
        InfoReply::new(
            inner.pgsize_bitmap,
            inner.min_pgsize(),
            inner.mappings.avail(),
            inner.valid.ranges(),
        )
    }
}

/// `VFIO_CHECK_EXTENSION`, answered like the C module at every stage:
/// `container` is `None` before `VFIO_SET_IOMMU`.
fn check_extension(container: Option<&Container>, arg: c_ulong) -> bool {
    match Extension::from_arg(arg) {
        Extension::Type1 | Extension::Type1v2 | Extension::UnmapAll => true,
        // Not with emulated devices: they cannot pin while a vaddr is invalid.
        Extension::UpdateVaddr => {
            container.is_some_and(|c| c.inner.lock().emulated_groups.is_empty())
        }
        Extension::DmaCc => container.is_some_and(|c| c.domains_enforce_cache_coherency()),
        Extension::Nesting => cfg!(vfio_rs_c_nesting),
        Extension::Unknown => false,
    }
}

/// Dispatches one ioctl: decodes the request (uapi.rs), runs the flow,
/// writes the reply back (uapi.rs).
///
/// # Errors
///
/// `ENOTTY` for an ioctl this backend does not implement; the flow's.
pub(crate) fn ioctl(container: Option<&Container>, cmd: c_uint, arg: c_ulong) -> Result<c_long> {
    if cmd == uapi::CHECK_EXTENSION {
        return Ok(check_extension(container, arg).into());
    }
    let c = container.ok_or(EINVAL)?;
    match cmd {
        uapi::IOMMU_GET_INFO => {
            let req = InfoRequest::read(arg)?;
            c.get_info()?.write(arg, &req)?;
        }
        uapi::IOMMU_MAP_DMA => c.map_dma(MapRequest::read(arg)?)?,
        uapi::IOMMU_UNMAP_DMA => {
            let req = UnmapRequest::read(arg)?;
            let unmapped = c.unmap_dma(&req)?;
            req.write_back(arg, unmapped)?;
        }
        uapi::IOMMU_DIRTY_PAGES => {
            // v1 containers refuse before reading anything, as in C.
            if !c.v2() {
                return Err(EACCES);
            }
            c.dirty_pages(DirtyPages::read(arg)?)?;
        }
        _ => return Err(ENOTTY),
    }
    Ok(0)
}
