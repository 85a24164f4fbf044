// SPDX-License-Identifier: GPL-2.0

//! `Container`: the per-container state vfio core keeps as `iommu_data`,
//! and the container ioctls.
//!
//! Lock order: `Container::inner`, then (inside the iommu core and GUP) the
//! iommu group mutex and the mm's `mmap_lock`. Nothing here is called with
//! a spinlock held.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::AtomicUsize;
use core::sync::atomic::Ordering;

use kernel::new_mutex;
use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::Mutex;

use crate::bindings;
use crate::dirty;
use crate::domain::Domain;
use crate::domain::GroupRef;
use crate::emulated::DeviceRef;
use crate::emulated::ExternalPins;
use crate::iova::IovaRange;
use crate::iova::ValidRanges;
use crate::mapping::Mapping;
use crate::mapping::MappingSlot;
use crate::mapping::Mappings;
use crate::mapping::Prot;
use crate::params;
use crate::pin::Owner;
use crate::pin::PageBatch;
use crate::pin::PinnedPages;
use crate::trace;
use crate::uapi;
use crate::uapi::DmaMap;
use crate::uapi::DmaUnmap;
use crate::uapi::Extension;
use crate::uapi::InfoReply;
use crate::uapi::IommuType;

/// Numbers containers in log lines.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// `PAGE_MASK` as a u64.
const PAGE_MASK: u64 = !(PAGE_SIZE as u64 - 1);

/// One VFIO container using this backend.
#[pin_data]
pub(crate) struct Container {
    id: u32,
    /// v1 or v2 semantics, fixed at `VFIO_SET_IOMMU`.
    iommu_type: IommuType,
    /// Emulated devices to tell about unmaps. Taken before `inner`, never
    /// with it held, and held while their `dma_unmap` runs.
    #[pin]
    pub(crate) devices: Mutex<KVec<DeviceRef>>,
    /// How many devices `devices` holds, for `pin_pages`: drivers call it
    /// with their own lock held, the one their `dma_unmap` takes, so it
    /// must not wait for `devices`.
    pub(crate) ndevices: AtomicUsize,
    #[pin]
    pub(crate) inner: Mutex<ContainerInner>,
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
    /// How many more mappings may be created (`dma_entry_limit` at open).
    pub(crate) dma_avail: u32,
    /// Mappings whose vaddr was invalidated (`VFIO_DMA_UNMAP_FLAG_VADDR`).
    pub(crate) vaddr_invalid_count: u32,
    /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_START` is in effect.
    pub(crate) dirty_tracking: bool,
    /// Groups of emulated devices (no IOMMU domain).
    pub(crate) emulated_groups: KVec<GroupRef>,
}

impl ContainerInner {
    /// Drops one device pin of the page at `iova`; false if not mapped.
    pub(crate) fn put_external(&mut self, iova: u64) -> bool {
        let Ok(page) = IovaRange::from_size(iova, PAGE_SIZE as u64) else {
            return false;
        };
        let Some(key) = self.mappings.first_overlapping(&page) else {
            return false;
        };
        if let Some(m) = self.mappings.get_mut(key) {
            m.external.put(iova, &m.owner);
        }
        true
    }

    /// The smallest page size: the alignment every map and unmap needs.
    fn min_pgsize(&self) -> u64 {
        1u64 << self.pgsize_bitmap.trailing_zeros()
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
        let Some(first) = self.domains.first() else {
            return Ok(ValidRanges::unconstrained());
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

    /// Unmaps the mappings of `keys` from every domain (one IOTLB flush per
    /// domain), then drops them, which unpins and unaccounts.
    fn remove_mappings(&mut self, keys: impl Iterator<Item = u64> + Clone) {
        // Unmap everywhere before anything is unpinned.
        for d in self.domains.iter() {
            let mappings = &self.mappings;
            d.unmap_ranges(
                keys.clone()
                    .filter_map(|k| mappings.get(k))
                    .map(|m| (m.range.start(), m.size())),
            );
        }
        for k in keys {
            if self.mappings.remove(k).is_some() {
                self.dma_avail += 1;
            }
        }
    }

    /// The mappings an unmap of `range` acts on: from the first one
    /// overlapping it, while they start inside it. v1 stops at a mapping
    /// that starts before `range` (it only unmaps mappings whose first IOVA
    /// is covered, and reports what it did).
    fn covered_keys(&self, range: &IovaRange, v2: bool) -> Result<KVec<u64>> {
        let mut keys = KVec::new();
        let mut next = self.mappings.first_overlapping(range);
        while let Some(k) = next {
            if k > range.last() || (!v2 && k < range.start()) {
                break;
            }
            keys.push(k, GFP_KERNEL)?;
            next = self.mappings.next_key(k);
        }
        Ok(keys)
    }

    /// The last IOMMU domain goes while emulated devices stay: unmap every
    /// mapping from the domains and drop its full pin; pages pinned by
    /// devices stay pinned and are now charged on their own.
    fn unpin_all_keep_external(&mut self) {
        self.unmap_all_from_domains();
        for m in self.mappings.iter_mut() {
            drop(m.pinned.take());
            m.external.set_charged(&m.owner, true);
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
            self.dma_avail += 1;
        }
        self.vaddr_invalid_count = 0;
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
        Arc::pin_init(
            pin_init!(Self {
                id,
                iommu_type,
                inner <- new_mutex!(
                    ContainerInner {
                        domains: KVec::new(),
                        mappings: Mappings::new(),
                        valid: ValidRanges::unconstrained(),
                        pgsize_bitmap: PAGE_MASK,
                        dma_avail: params::dma_entry_limit(),
                        vaddr_invalid_count: 0,
                        dirty_tracking: false,
                        emulated_groups: KVec::new(),
                    },
                    "Container::inner"
                ),
                devices <- new_mutex!(KVec::new(), "Container::devices"),
                ndevices: AtomicUsize::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn v2(&self) -> bool {
        self.iommu_type == IommuType::V2
    }

    /// Tears the container down; cannot fail.
    pub(crate) fn release(self: Arc<Self>) {
        crate::debugfs::unregister(&self);
        let mut inner = self.inner.lock();
        inner.remove_all_mappings();
        let domains = core::mem::take(&mut inner.domains);
        drop(inner);
        // Dropping a domain detaches its groups and frees it.
        drop(domains);
        if params::verbose() {
            pr_info!("container {}: released\n", self.id);
        }
    }

    /// Attaches `group`: a new paging domain, merged into an existing
    /// compatible one when possible, otherwise filled with every mapping.
    ///
    /// # Errors
    ///
    /// `EBUSY` while a vaddr is invalid; `EINVAL` if the group is already
    /// attached or its aperture/reserved regions collide with mappings;
    /// `EPERM` without isolated MSI (unless `allow_unsafe_interrupts`);
    /// `ENODEV` for emulated-IOMMU groups (not supported yet); the iommu
    /// core's errno. On error the container is unchanged.
    pub(crate) fn attach_group(
        &self,
        group: GroupRef,
        group_type: bindings::vfio_group_type,
    ) -> Result {
        let mut inner = self.inner.lock();
        if inner.vaddr_invalid_count > 0 {
            return Err(EBUSY);
        }
        if inner.domains.iter().any(|d| d.has_group(group))
            || inner.emulated_groups.contains(&group)
        {
            return Err(EINVAL);
        }
        if group_type == bindings::vfio_group_type_VFIO_EMULATED_IOMMU {
            // No domain: its devices use pin_pages/dma_rw.
            inner.emulated_groups.push(group, GFP_KERNEL)?;
            trace::attach(self.id, group.id(), false, 0, 0);
            if params::verbose() {
                pr_info!(
                    "container {}: emulated-IOMMU group {} attached\n",
                    self.id,
                    group.id()
                );
            }
            return Ok(());
        }
        if group_type != bindings::vfio_group_type_VFIO_IOMMU {
            return Err(ENODEV);
        }
        inner.domains.reserve(1, GFP_KERNEL)?;
        let mut new = Domain::attach_new(group)?;

        // The new domain's window and holes must not cut existing mappings
        // (the window only once ranges apply: mappings made for emulated
        // devices alone are not held to it, as in the C module).
        let aperture = new.aperture();
        if !inner.valid.ranges().is_empty()
            && inner.mappings.iter().any(|m| !aperture.contains(&m.range))
        {
            return Err(EINVAL);
        }
        let resv = group.resv_regions()?;
        if resv
            .iter()
            .filter(|r| r.excludes_mappings())
            .any(|r| inner.mappings.overlaps(&r.range))
        {
            return Err(EINVAL);
        }
        let mut valid = match inner.valid.ranges() {
            [] => ValidRanges::from_aperture(aperture)?,
            _ => inner.valid.intersect(&aperture)?,
        };
        for r in resv.iter().filter(|r| r.excludes_mappings()) {
            valid.exclude(&r.range)?;
        }
        let sw_msi = resv
            .iter()
            .find(|r| r.kind == bindings::iommu_resv_type_IOMMU_RESV_SW_MSI)
            .map(|r| r.range.start());

        if !params::allow_unsafe_interrupts() && !group.has_isolated_msi() {
            pr_warn!(
                "attach_group: No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform\n"
            );
            return Err(EPERM);
        }

        // Merge: move the group onto a compatible domain, drop the new one.
        for d in inner.domains.iter_mut() {
            if !d.compatible_with(&new) {
                continue;
            }
            match d.adopt_group(&mut new, group) {
                Ok(()) => {
                    trace::attach(self.id, group.id(), true, 0, d.pgsize_bitmap());
                    if params::verbose() {
                        pr_info!(
                            "container {}: group {} merged onto an existing domain ({} groups there)\n",
                            self.id,
                            group.id(),
                            d.groups().len()
                        );
                    }
                    inner.valid = valid;
                    return Ok(());
                }
                Err((_, true)) => continue,
                Err((e, false)) => return Err(e),
            }
        }

        // Replay: map every existing mapping into the new domain.
        // The first IOMMU domain of a container that had only emulated
        // devices: its mappings get pinned now.
        let first_domain = inner.domains.is_empty();
        let mut batch = PageBatch::new()?;
        let mut replayed = 0usize;
        let mut failed = None;
        for m in inner.mappings.iter_mut() {
            let res = if m.pinned.is_some() {
                new.map_mapping(m)
            } else {
                pin_into(&new, m, &mut batch)
            };
            if let Err(e) = res {
                failed = Some(e);
                break;
            }
            replayed += 1;
        }
        if let Some(e) = failed {
            for m in inner.mappings.iter_mut().take(replayed) {
                new.unmap_now(m.range.start(), m.size());
                if first_domain {
                    drop(m.pinned.take());
                    m.external.set_charged(&m.owner, true);
                }
            }
            return Err(e);
        }
        if let Some(base) = sw_msi {
            if let Err(e) = new.enable_sw_msi(base) {
                new.unmap_ranges(inner.mappings.iter().map(|m| (m.range.start(), m.size())));
                return Err(e);
            }
        }
        trace::attach(
            self.id,
            group.id(),
            false,
            replayed as u32,
            new.pgsize_bitmap(),
        );
        if params::verbose() {
            let ap = new.aperture();
            pr_info!(
                "container {}: group {} attached to a new domain (pgsizes {:#x}, aperture {:#x}-{:#x}, cache coherency enforced: {}), {} mappings replayed\n",
                self.id,
                group.id(),
                new.pgsize_bitmap(),
                ap.start(),
                ap.last(),
                new.enforce_cache_coherency(),
                replayed
            );
        }
        // Cannot fail: reserved above.
        inner.domains.push(new, GFP_KERNEL)?;
        inner.update_pgsize_bitmap();
        inner.valid = valid;
        Ok(())
    }

    /// Detaches `group`. A domain left without groups is freed; when the last
    /// one goes, every mapping is unmapped and unpinned. Cannot fail.
    pub(crate) fn detach_group(&self, group: GroupRef) {
        let mut inner = self.inner.lock();
        if let Some(i) = inner.emulated_groups.iter().position(|g| *g == group) {
            let _ = inner.emulated_groups.remove(i);
            if inner.emulated_groups.is_empty() && inner.domains.is_empty() {
                inner.remove_all_mappings();
            }
            drop(inner);
            trace::detach(self.id, group.id(), false);
            if params::verbose() {
                pr_info!(
                    "container {}: emulated-IOMMU group {} detached\n",
                    self.id,
                    group.id()
                );
            }
            return;
        }
        let Some(i) = inner.domains.iter().position(|d| d.has_group(group)) else {
            return;
        };
        let mut freed = None;
        if inner.domains[i].detach(group) {
            if inner.domains.len() == 1 {
                if inner.emulated_groups.is_empty() {
                    inner.remove_all_mappings();
                } else {
                    // Emulated devices stay: unmap and unpin the full pins,
                    // and charge the device-pinned pages on their own.
                    inner.unpin_all_keep_external();
                }
            }
            freed = Some(inner.domains.remove(i));
            inner.update_pgsize_bitmap();
        }
        // If recomputing fails (ENOMEM), the old ranges stay: they are a
        // subset of the new ones, as the C module does.
        if let Ok(valid) = inner.compute_valid() {
            inner.valid = valid;
        }
        drop(inner);
        trace::detach(self.id, group.id(), freed.is_some());
        if params::verbose() {
            pr_info!(
                "container {}: group {} detached{}\n",
                self.id,
                group.id(),
                if freed.is_some() {
                    ", its domain freed"
                } else {
                    ""
                }
            );
        }
        drop(freed);
    }

    /// Writes this container's topology for the debugfs view.
    pub(crate) fn describe(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Lock order: `devices` before `inner`.
        let ndev = self.devices.lock().len();
        let inner = self.inner.lock();
        writeln!(
            f,
            "container {} ({}): {} domains, {} mappings, dma_avail {}, iova_pgsizes {:#x}",
            self.id,
            if self.v2() { "type1v2" } else { "type1" },
            inner.domains.len(),
            inner.mappings.iter().count(),
            inner.dma_avail,
            inner.pgsize_bitmap
        )?;
        write!(f, "  valid iova:")?;
        for r in inner.valid.ranges() {
            write!(f, " {:#x}-{:#x}", r.start(), r.last())?;
        }
        writeln!(f)?;
        for (i, d) in inner.domains.iter().enumerate() {
            let ap = d.aperture();
            write!(
                f,
                "  domain {}: pgsizes {:#x}, aperture {:#x}-{:#x}, enforce_cache_coherency {}, groups",
                i,
                d.pgsize_bitmap(),
                ap.start(),
                ap.last(),
                d.enforce_cache_coherency()
            )?;
            for g in d.groups() {
                write!(f, " {}", g.id())?;
            }
            writeln!(f)?;
            for g in d.groups() {
                write!(f, "    group {} devices:", g.id())?;
                g.write_devices(f)?;
                writeln!(f)?;
            }
        }
        if !inner.emulated_groups.is_empty() {
            write!(f, "  emulated-IOMMU groups:")?;
            for g in inner.emulated_groups.iter() {
                write!(f, " {}", g.id())?;
            }
            writeln!(f, " ({} devices registered)", ndev)?;
        }
        for m in inner.mappings.iter() {
            let runs = m.pinned.as_ref().map_or(&[][..], |p| p.runs());
            let largest = runs.iter().map(|r| r.npages).max().unwrap_or(0);
            write!(
                f,
                "  mapping iova {:#x}-{:#x} size {:#x} vaddr {:#x} prot {}{}{} runs {} largest_run_pages {}",
                m.range.start(),
                m.range.last(),
                m.size(),
                m.vaddr,
                if m.prot.0 & bindings::IOMMU_READ != 0 { "r" } else { "-" },
                if m.prot.writable() { "w" } else { "-" },
                if m.vaddr_invalid { " vaddr-invalid" } else { "" },
                runs.len(),
                largest
            )?;
            if m.pinned.is_none() {
                write!(f, " not-pinned")?;
            }
            match m.external.count() {
                0 => writeln!(f)?,
                n => writeln!(f, " device_pinned_pages {}", n)?,
            }
        }
        Ok(())
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

    /// `VFIO_IOMMU_GET_INFO`.
    fn get_info(&self, arg: c_ulong) -> Result {
        let mut reply = InfoReply::new();
        let inner = self.inner.lock();
        let pgsizes = inner.pgsize_bitmap;

        let mut mig = [0u8; 24];
        mig[8..16].copy_from_slice(&inner.min_pgsize().to_ne_bytes());
        mig[16..24].copy_from_slice(&dirty::BITMAP_SIZE_MAX.to_ne_bytes());
        reply.add_cap(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, &mig)?;
        reply.add_cap(
            bindings::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
            1,
            &inner.dma_avail.to_ne_bytes(),
        )?;

        let ranges = inner.valid.ranges();
        if !ranges.is_empty() {
            let mut body = KVec::new();
            body.extend_from_slice(&(ranges.len() as u32).to_ne_bytes(), GFP_KERNEL)?;
            body.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
            for r in ranges {
                body.extend_from_slice(&r.start().to_ne_bytes(), GFP_KERNEL)?;
                body.extend_from_slice(&r.last().to_ne_bytes(), GFP_KERNEL)?;
            }
            reply.add_cap(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, &body)?;
        }
        drop(inner);
        reply.write(arg, bindings::VFIO_IOMMU_INFO_PGSIZES, pgsizes)
    }

    /// `VFIO_IOMMU_MAP_DMA`.
    ///
    /// # Errors
    ///
    /// The C module's, in its order: `EINVAL` (zero size, no access flags,
    /// misaligned, outside the valid ranges), `EOVERFLOW`, `EEXIST`
    /// (overlap), `ENOSPC` (`dma_entry_limit`), `ENOMEM` (RLIMIT_MEMLOCK),
    /// the pin's errno; with VADDR: `ENOENT`/`EINVAL`. Nothing is left
    /// mapped, pinned or accounted on error.
    fn map_dma(&self, arg: c_ulong) -> Result {
        let req = DmaMap::read(arg)?;
        if req.size == 0 {
            return Err(EINVAL);
        }
        let range = IovaRange::from_size(req.iova, req.size)?;
        // The user range must not wrap either.
        req.vaddr.checked_add(req.size - 1).ok_or(EOVERFLOW)?;
        let mut prot = 0;
        if req.flags & bindings::VFIO_DMA_MAP_FLAG_WRITE != 0 {
            prot |= bindings::IOMMU_WRITE;
        }
        if req.flags & bindings::VFIO_DMA_MAP_FLAG_READ != 0 {
            prot |= bindings::IOMMU_READ;
        }
        let set_vaddr = req.flags & bindings::VFIO_DMA_MAP_FLAG_VADDR != 0;
        if (prot != 0) == set_vaddr {
            return Err(EINVAL);
        }
        // Allocate before locking.
        let slot = MappingSlot::new(GFP_KERNEL)?;
        let mut batch = PageBatch::new()?;

        let mut inner = self.inner.lock();
        if (req.size | req.iova | req.vaddr) & (inner.min_pgsize() - 1) != 0 {
            return Err(EINVAL);
        }
        let existing = inner.mappings.first_overlapping(&range);
        if set_vaddr {
            let m = existing
                .and_then(|k| inner.mappings.get_mut(k))
                .ok_or(ENOENT)?;
            if !m.vaddr_invalid || m.range != range {
                return Err(EINVAL);
            }
            let owner = Owner::current()?;
            if let Some(p) = m.pinned.as_mut() {
                p.change_owner(owner.clone())?;
            }
            m.owner = owner;
            m.vaddr = req.vaddr;
            m.vaddr_invalid = false;
            inner.vaddr_invalid_count -= 1;
            return Ok(());
        }
        if existing.is_some() {
            return Err(EEXIST);
        }
        if inner.dma_avail == 0 {
            return Err(ENOSPC);
        }
        if !inner.valid.allows(&range) {
            return Err(EINVAL);
        }
        // While tracking, the C module sizes a bitmap for the new mapping.
        if inner.dirty_tracking
            && req.size >> inner.min_pgsize().trailing_zeros() > dirty::BITMAP_PAGES_MAX
        {
            return Err(EINVAL);
        }

        let prot = Prot(prot);
        let owner = Owner::current()?;
        let no_domain = inner.domains.is_empty();
        // Only emulated devices: nothing is pinned until they ask.
        let pinned = if no_domain {
            None
        } else {
            let npages = usize::try_from(req.size >> PAGE_SHIFT).map_err(|_| EINVAL)?;
            let domains = &inner.domains;
            let map_run = |offset: u64, run| -> Result {
                let iova = req.iova + offset;
                for (i, d) in domains.iter().enumerate() {
                    if let Err(e) = d.map_run(iova, run, prot) {
                        let size = (run.npages as u64) << PAGE_SHIFT;
                        domains.iter().take(i).for_each(|d| d.unmap_now(iova, size));
                        return Err(e);
                    }
                }
                Ok(())
            };
            let (pinned, mapped) = PinnedPages::pin(
                owner.clone(),
                req.vaddr,
                npages,
                prot.writable(),
                params::disable_hugepages(),
                &mut batch,
                map_run,
            );
            match pinned {
                Ok(p) => Some(p),
                Err((e, partial)) => {
                    // Unmap before the pages are unpinned (dropping `partial`).
                    for d in inner.domains.iter() {
                        d.unmap_now(req.iova, mapped);
                    }
                    drop(partial);
                    return Err(e);
                }
            }
        };
        let nruns = pinned.as_ref().map_or(0, |p| p.runs().len());
        let mut m = Mapping {
            range,
            vaddr: req.vaddr,
            prot,
            vaddr_invalid: false,
            external: ExternalPins::new(no_domain, prot.writable()),
            owner,
            pinned,
            dirty: None,
        };
        if inner.dirty_tracking {
            if let Err(e) = m.start_dirty() {
                for d in inner.domains.iter() {
                    d.unmap_now(range.start(), m.size());
                }
                return Err(e);
            }
        }
        inner.mappings.insert(slot, m);
        inner.dma_avail -= 1;
        trace::map(
            self.id,
            range.start(),
            req.size,
            nruns as u32,
            inner.domains.len() as u32,
        );
        if params::verbose() {
            pr_info!(
                "container {}: map iova {:#x}-{:#x} as {} contiguous runs into {} domains\n",
                self.id,
                range.start(),
                range.last(),
                nruns,
                inner.domains.len()
            );
        }
        Ok(())
    }

    /// `VFIO_IOMMU_UNMAP_DMA`: returns the number of bytes unmapped.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned, zero size, ALL with a range, v2 range bisecting
    /// a mapping, dirty bitmap without tracking), `EOVERFLOW`; with VADDR,
    /// `EINVAL` if a covered vaddr is already invalid (nothing changes).
    fn unmap_dma(&self, arg: c_ulong) -> Result {
        let req = DmaUnmap::read(arg)?;
        // Emulated devices holding pins in the range are asked to drop them
        // (dma_unmap), outside the lock, until none is left.
        let mut last: Option<(u64, u32)> = None;
        loop {
            let Some((iova, size)) = self.unmap_locked(&req, arg)? else {
                return Ok(());
            };
            let retries = match last {
                Some((k, n)) if k == iova => n + 1,
                _ => 0,
            };
            if retries > 10 {
                pr_warn!(
                    "unmap: a device keeps pages of iova {:#x} pinned after dma_unmap\n",
                    iova
                );
                return Err(EBUSY);
            }
            last = Some((iova, retries));
            self.notify_unmap(iova, size);
        }
    }

    /// One pass of `unmap_dma` under the lock. Returns the mapping whose
    /// device pins must go first, or `None` when done.
    fn unmap_locked(&self, req: &DmaUnmap, arg: c_ulong) -> Result<Option<(u64, u64)>> {
        let all = req.flags & bindings::VFIO_DMA_UNMAP_FLAG_ALL != 0;
        let invalidate_vaddr = req.flags & bindings::VFIO_DMA_UNMAP_FLAG_VADDR != 0;
        let mut inner = self.inner.lock();
        // Devices cannot pin while a vaddr is invalid, so none may be here.
        if invalidate_vaddr && !inner.emulated_groups.is_empty() {
            return Err(EBUSY);
        }
        let pgmask = inner.min_pgsize() - 1;
        if req.iova & pgmask != 0 {
            return Err(EINVAL);
        }
        let range = if all {
            if req.iova != 0 || req.size != 0 {
                return Err(EINVAL);
            }
            IovaRange::new(0, u64::MAX).ok_or(EINVAL)?
        } else {
            if req.size == 0 || req.size & pgmask != 0 {
                return Err(EINVAL);
            }
            IovaRange::from_size(req.iova, req.size)?
        };
        // A dirty bitmap needs tracking on, at the smallest page size.
        if let Some(bm) = &req.bitmap {
            if !inner.dirty_tracking || bm.pgsize != pgmask + 1 {
                return Err(EINVAL);
            }
        }
        // v2 never splits a mapping: the range must not bisect one.
        if self.v2() && !all {
            if let Some(m) = inner.mappings.find(range.start()) {
                if m.range.start() != range.start() {
                    return Err(EINVAL);
                }
            }
            if let Some(m) = inner.mappings.find(range.last()) {
                if m.range.last() != range.last() {
                    return Err(EINVAL);
                }
            }
        }
        // Collected first, so that nothing changes if this allocation fails.
        let keys = inner.covered_keys(&range, self.v2())?;
        if !invalidate_vaddr {
            let mappings = &inner.mappings;
            if let Some(m) = keys
                .iter()
                .filter_map(|k| mappings.get(*k))
                .find(|m| !m.external.is_empty())
            {
                return Ok(Some((m.range.start(), m.size())));
            }
        }
        let mut unmapped = 0u64;
        if invalidate_vaddr {
            let mappings = &inner.mappings;
            if keys
                .iter()
                .filter_map(|k| mappings.get(*k))
                .any(|m| m.vaddr_invalid)
            {
                return Err(EINVAL);
            }
            for k in keys.iter() {
                if let Some(m) = inner.mappings.get_mut(*k) {
                    m.vaddr_invalid = true;
                    unmapped += m.size();
                    inner.vaddr_invalid_count += 1;
                }
            }
        } else {
            // With a bitmap, each mapping is reported before it goes; a
            // fault stops there (the ones before stay unmapped).
            let mut done = keys.len();
            let mut result = Ok(());
            if let Some(bm) = &req.bitmap {
                let pgshift = inner.min_pgsize().trailing_zeros();
                let all_dirty = !inner.domains.is_empty();
                for (i, k) in keys.iter().enumerate() {
                    let Some(m) = inner.mappings.get(*k) else {
                        continue;
                    };
                    if let Err(e) = report_mapping(bm, req.iova, m, pgshift, all_dirty) {
                        done = i;
                        result = Err(e);
                        break;
                    }
                }
            }
            let mappings = &inner.mappings;
            unmapped = keys[..done]
                .iter()
                .filter_map(|k| mappings.get(*k))
                .map(|m| m.size())
                .sum();
            inner.remove_mappings(keys[..done].iter().copied());
            trace::unmap(self.id, range.start(), range.last(), done as u32, unmapped);
            if params::verbose() {
                pr_info!(
                    "container {}: unmap iova {:#x}-{:#x}: {} mappings, {:#x} bytes, one IOTLB flush per domain\n",
                    self.id,
                    range.start(),
                    range.last(),
                    done,
                    unmapped
                );
            }
            result?;
        }
        drop(inner);
        req.write_back(arg, unmapped)?;
        Ok(None)
    }
}

impl Container {
    /// `VFIO_IOMMU_DIRTY_PAGES`.
    ///
    /// # Errors
    ///
    /// `EACCES` on a v1 container; `EINVAL` for a bad request, a bitmap
    /// not at the smallest page size, a range bisecting a mapping, or
    /// GET_BITMAP while tracking is off; `EFAULT`.
    fn dirty_pages(&self, arg: c_ulong) -> Result {
        if !self.v2() {
            return Err(EACCES);
        }
        let req = uapi::DirtyPages::read(arg)?;
        let mut inner = self.inner.lock();
        match req {
            uapi::DirtyPages::Start => {
                // The C module sizes a bitmap per mapping here.
                let pgshift = inner.min_pgsize().trailing_zeros();
                if inner
                    .mappings
                    .iter()
                    .any(|m| m.size() >> pgshift > dirty::BITMAP_PAGES_MAX)
                {
                    return Err(EINVAL);
                }
                if !inner.dirty_tracking {
                    let mut res = Ok(());
                    for m in inner.mappings.iter_mut() {
                        res = m.start_dirty();
                        if res.is_err() {
                            break;
                        }
                    }
                    if let Err(e) = res {
                        inner.mappings.iter_mut().for_each(|m| m.dirty = None);
                        return Err(e);
                    }
                }
                inner.dirty_tracking = true;
            }
            uapi::DirtyPages::Stop => {
                inner.dirty_tracking = false;
                inner.mappings.iter_mut().for_each(|m| m.dirty = None);
            }
            uapi::DirtyPages::GetBitmap { range, bitmap } => {
                let pgsize = inner.min_pgsize();
                if bitmap.pgsize != pgsize || range.start() & (pgsize - 1) != 0 {
                    return Err(EINVAL);
                }
                // `size` = last - start + 1 must be aligned too.
                if (range.last() - range.start() + 1) & (pgsize - 1) != 0 || !inner.dirty_tracking {
                    return Err(EINVAL);
                }
                // The range must not bisect a mapping.
                if inner
                    .mappings
                    .find(range.start())
                    .is_some_and(|m| m.range.start() != range.start())
                    || inner
                        .mappings
                        .find(range.last())
                        .is_some_and(|m| m.range.last() != range.last())
                {
                    return Err(EINVAL);
                }
                let pgshift = pgsize.trailing_zeros();
                let all_dirty = !inner.domains.is_empty();
                for m in inner.mappings.iter_mut() {
                    if m.range.start() < range.start() {
                        continue;
                    }
                    if m.range.start() > range.last() {
                        break;
                    }
                    report_mapping(&bitmap, range.start(), m, pgshift, all_dirty)?;
                    // Reported: start over (device-pinned pages stay dirty).
                    m.clear_dirty();
                }
            }
        }
        Ok(())
    }
}

/// Pins a mapping that had no full pin (only emulated devices so far) and
/// maps it into `domain`; its device-pinned pages stop being charged on
/// their own.
fn pin_into(domain: &Domain, m: &mut Mapping, batch: &mut PageBatch) -> Result {
    let npages = usize::try_from(m.size() >> PAGE_SHIFT).map_err(|_| EINVAL)?;
    let (start, prot) = (m.range.start(), m.prot);
    // As the C module, the caller's memory is pinned (the process attaching)
    // and the mapping's owner charged.
    let (res, mapped) = PinnedPages::pin(
        m.owner.clone(),
        m.vaddr,
        npages,
        prot.writable(),
        params::disable_hugepages(),
        batch,
        |off, run| domain.map_run(start + off, run, prot),
    );
    match res {
        Ok(p) => {
            m.pinned = Some(p);
            m.external.set_charged(&m.owner, false);
            Ok(())
        }
        Err((e, partial)) => {
            domain.unmap_now(start, mapped);
            drop(partial);
            Err(e)
        }
    }
}

/// Reports one mapping into a user bitmap: every page while an IOMMU-backed
/// group could have written any of them (`all_dirty`), else the pages
/// written by `dma_rw` or pinned by emulated devices.
fn report_mapping(
    bm: &dirty::UserBitmap,
    base: u64,
    m: &Mapping,
    pgshift: u32,
    all_dirty: bool,
) -> Result {
    if all_dirty {
        bm.report(base, &m.range, pgshift, None)
    } else {
        let bits = m.dirty_bits()?;
        bm.report(base, &m.range, pgshift, Some(&bits))
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
        Extension::Unknown => false,
    }
}

/// Dispatches one ioctl.
///
/// # Errors
///
/// `ENOTTY` for an ioctl this backend does not implement; the handler's.
pub(crate) fn ioctl(container: Option<&Container>, cmd: c_uint, arg: c_ulong) -> Result<c_long> {
    if cmd == uapi::CHECK_EXTENSION {
        return Ok(check_extension(container, arg).into());
    }
    let c = container.ok_or(EINVAL)?;
    match cmd {
        uapi::IOMMU_GET_INFO => c.get_info(arg)?,
        uapi::IOMMU_MAP_DMA => c.map_dma(arg)?,
        uapi::IOMMU_UNMAP_DMA => c.unmap_dma(arg)?,
        uapi::IOMMU_DIRTY_PAGES => c.dirty_pages(arg)?,
        _ => return Err(ENOTTY),
    }
    Ok(0)
}
