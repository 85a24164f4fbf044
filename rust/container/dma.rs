// SPDX-License-Identifier: GPL-2.0

//! MAP_DMA and UNMAP_DMA. Read `Container::map_dma` top to bottom:
//! validate, reserve, pin and fill every domain, publish; and
//! `Container::unmap_dma`: check, collect, let devices unpin, report and
//! remove.
//!
//! Lock order: `Container::inner`, then the mm's `mmap_lock` (GUP and the
//! `locked_vm` charge). Emulated devices are told about unmaps with
//! `inner` released (their `dma_unmap` answers with `unpin_pages`).

use kernel::prelude::*;

use super::Container;
use super::ContainerInner;
use crate::dirty;
use crate::domain::Domain;
use crate::domain::Mapped;
use crate::emulated::ExternalPins;
use crate::iova::IovaRange;
use crate::mapping::Mapping;
use crate::mapping::MappingSlot;
use crate::mapping::Prot;
use crate::params;
use crate::pin::Owner;
use crate::pin::PageBatch;
use crate::pin::PinReader;
use crate::pin::PinnedPages;
use crate::trace;
use crate::uapi;
use crate::uapi::MapRequest;
use crate::uapi::UnmapAction;
use crate::uapi::UnmapRequest;
use crate::uapi::UnmapScope;

/// Devices that keep pages pinned after this many `dma_unmap` notices for
/// one mapping make the unmap fail (the C module BUG()s).
const MAX_UNMAP_NOTICES: u32 = 10;

/// What one locked pass of an unmap ended with.
enum UnmapStep {
    /// Done: this many bytes were unmapped (or invalidated) in this pass.
    Done(u64),
    /// `bytes` were unmapped, then emulated devices hold pages of the
    /// mapping at `iova`, `size` bytes: tell them, then go on.
    NotifyFirst { iova: u64, size: u64, bytes: u64 },
}

/// What `report_and_remove` did.
struct UnmapPass {
    /// Mappings removed and their bytes.
    removed: usize,
    bytes: u64,
    /// The mapping it stopped at because devices hold pages of it.
    held: Option<(u64, u64)>,
    /// A report that failed (the mappings before it stay removed).
    result: Result,
}

impl Container {
    /// `VFIO_IOMMU_MAP_DMA`.
    ///
    /// # Errors
    ///
    /// The C module's, in its order: `EINVAL` (misaligned, outside the
    /// valid ranges, too large for dirty tracking), `EEXIST` (overlap),
    /// `ENOSPC` (`dma_entry_limit`), `ENOMEM` (RLIMIT_MEMLOCK), the pin's
    /// or the iommu driver's errno; with VADDR: `ENOENT`/`EINVAL`. Nothing
    /// is left mapped, pinned or accounted on error.
    pub(super) fn map_dma(&self, req: MapRequest) -> Result {
        // Reserve: everything that can be allocated before the lock (the
        // GUP batch was, with the container).
        let slot = MappingSlot::new(GFP_KERNEL_ACCOUNT)?;
        let mut inner = self.inner.lock();
        // Released under this call (retire.rs): no backend any more, as
        // vfio core answers then; nothing may be pinned again.
        if inner.released {
            return Err(EINVAL);
        }
        let (range, vaddr, prot) = match req {
            MapRequest::UpdateVaddr { range, vaddr } => return inner.update_vaddr(range, vaddr),
            MapRequest::Map { range, vaddr, prot } => (range, vaddr, prot),
        };
        // Validate against the container.
        inner.check_new_mapping(&range, vaddr)?;
        // Pin and fill every domain.
        let mut batch = match inner.batch.take() {
            Some(b) => b,
            None => PageBatch::new()?,
        };
        let m = inner.pin_and_map(range, vaddr, prot, &mut batch);
        inner.batch = Some(batch);
        let m = m?;
        let nruns = m.pinned.as_ref().map_or(0, |p| p.runs().count());
        // Publish (`avail` was checked under this lock).
        inner.mappings.insert(slot, m);
        self.log_map(&range, nruns, inner.domains.len());
        Ok(())
    }

    fn log_map(&self, range: &IovaRange, nruns: usize, ndomains: usize) {
        let runs = u32::try_from(nruns).unwrap_or(u32::MAX);
        let domains = u32::try_from(ndomains).unwrap_or(u32::MAX);
        trace::map(self.id, range.start(), range.size(), runs, domains);
        if params::verbose() {
            pr_info!(
                "container {}: map iova {:#x}-{:#x} as {} contiguous runs into {} domains\n",
                self.id,
                range.start(),
                range.last(),
                nruns,
                ndomains
            );
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA`: returns the bytes unmapped (or invalidated).
    /// Emulated devices holding pins in the range are asked to drop them
    /// (`dma_unmap`), outside the lock, until none is left. If the request
    /// fails its checks after that (the mappings changed meanwhile), the
    /// unmap ends there and returns the bytes unmapped so far, as C does.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned, zero size, ALL with a range, v2 range bisecting
    /// a mapping, dirty bitmap without tracking, VADDR on an invalid vaddr),
    /// `EOVERFLOW`, `EBUSY` (VADDR with emulated groups; devices that keep
    /// pages pinned), `EFAULT` (bitmap).
    pub(super) fn unmap_dma(&self, req: &UnmapRequest) -> Result<u64> {
        let mut total = 0u64;
        let mut last: Option<(u64, u32)> = None;
        loop {
            let (iova, size) = match self.unmap_locked(req, last.is_some())? {
                UnmapStep::Done(bytes) => return Ok(total.saturating_add(bytes)),
                UnmapStep::NotifyFirst { iova, size, bytes } => {
                    total = total.saturating_add(bytes);
                    (iova, size)
                }
            };
            let notices = match last {
                Some((k, n)) if k == iova => n.saturating_add(1),
                _ => 0,
            };
            if notices > MAX_UNMAP_NOTICES {
                pr_warn!(
                    "unmap: a device keeps pages of iova {:#x} pinned after dma_unmap\n",
                    iova
                );
                return Err(EBUSY);
            }
            last = Some((iova, notices));
            self.devices.notify_unmap(iova, size);
        }
    }

    /// One pass of `unmap_dma` under the lock, in the C module's order: the
    /// covered mappings one by one, each reported (with a bitmap) and then
    /// removed, up to one that devices hold pages of. `again`: a pass after
    /// a `dma_unmap` notice.
    fn unmap_locked(&self, req: &UnmapRequest, again: bool) -> Result<UnmapStep> {
        let mut inner = self.inner.lock();
        let range = match inner.check_unmap(req, self.v2()) {
            Ok(range) => range,
            // C re-checks (the v2 range) after a notice and, failing, ends
            // with success and the earlier passes' bytes. Whatever else
            // changed meanwhile (page size, tracking) ends it the same way.
            Err(_) if again => return Ok(UnmapStep::Done(0)),
            Err(e) => return Err(e),
        };
        // Collected first, so that nothing changes if this allocation fails.
        let keys = inner.mappings.covered(&range, self.v2())?;
        let keys = keys.as_slice();
        if req.action == UnmapAction::InvalidateVaddr {
            return inner.invalidate_vaddrs(keys).map(UnmapStep::Done);
        }
        let base = match req.scope {
            UnmapScope::Range { iova, .. } | UnmapScope::All { iova, .. } => iova,
        };
        let pass = inner.report_and_remove(keys, req.bitmap.as_ref(), base);
        drop(inner);
        if pass.removed > 0 || pass.held.is_none() {
            self.log_unmap(&range, pass.removed, pass.bytes);
        }
        pass.result?;
        Ok(match pass.held {
            Some((iova, size)) => UnmapStep::NotifyFirst {
                iova,
                size,
                bytes: pass.bytes,
            },
            None => UnmapStep::Done(pass.bytes),
        })
    }

    fn log_unmap(&self, range: &IovaRange, done: usize, bytes: u64) {
        let mappings = u32::try_from(done).unwrap_or(u32::MAX);
        trace::unmap(self.id, range.start(), range.last(), mappings, bytes);
        if params::verbose() {
            pr_info!(
                "container {}: unmap iova {:#x}-{:#x}: {} mappings, {:#x} bytes, one IOTLB flush per domain\n",
                self.id,
                range.start(),
                range.last(),
                done,
                bytes
            );
        }
    }
}

impl ContainerInner {
    /// `VFIO_DMA_MAP_FLAG_VADDR`: the invalidated mapping of exactly `range`
    /// gets the memory at `vaddr` of the calling process.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned, not exactly one invalidated mapping), `ENOENT`
    /// (no mapping there), `ENOMEM` (the new owner's RLIMIT_MEMLOCK).
    fn update_vaddr(&mut self, range: IovaRange, vaddr: u64) -> Result {
        self.check_aligned(&range, vaddr)?;
        let m = self
            .mappings
            .first_overlapping(&range)
            .and_then(|k| self.mappings.get(k))
            .ok_or(ENOENT)?;
        if !m.vaddr_invalid() || m.range != range {
            return Err(EINVAL);
        }
        self.mappings
            .update_vaddr(range.start(), vaddr, Owner::current()?)
    }

    /// `EINVAL` unless `range` and `vaddr` are aligned to the smallest page.
    fn check_aligned(&self, range: &IovaRange, vaddr: u64) -> Result {
        let mask = self.min_pgsize().wrapping_sub(1);
        if (range.size() | range.start() | vaddr) & mask != 0 {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Checks a new mapping in the C module's order: alignment, overlap,
    /// entry limit, valid ranges, dirty bitmap size.
    fn check_new_mapping(&self, range: &IovaRange, vaddr: u64) -> Result {
        self.check_aligned(range, vaddr)?;
        if self.mappings.overlaps(range) {
            return Err(EEXIST);
        }
        if self.mappings.avail() == 0 {
            return Err(ENOSPC);
        }
        if !self.valid.allows(range) {
            return Err(EINVAL);
        }
        // While tracking, the C module sizes a bitmap for the new mapping.
        let pages = range.size() >> self.min_pgsize().trailing_zeros();
        if self.dirty_tracking && pages > uapi::BITMAP_PAGES_MAX {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// The new mapping, pinned and mapped into every domain (nothing is
    /// pinned without a domain: emulated devices pin what they use).
    ///
    /// # Errors
    ///
    /// `ENODEV` without an mm, `ENOMEM`, the pin's or the iommu driver's.
    fn pin_and_map(
        &self,
        range: IovaRange,
        vaddr: u64,
        prot: Prot,
        batch: &mut PageBatch,
    ) -> Result<Mapping> {
        let owner = Owner::current()?;
        let no_domain = self.domains.is_empty();
        let external = ExternalPins::new(no_domain, prot.writable());
        let mut m = Mapping::new(range, vaddr, prot, owner, None, external);
        // Allocated before anything is pinned, so that it cannot fail after.
        if self.dirty_tracking {
            m.start_dirty()?;
        }
        if !no_domain {
            let pinned = pin_and_map_into(&self.domains, &m, 0, batch).map_err(|(e, _)| e)?;
            m.pinned = Some(pinned);
        }
        Ok(m)
    }

    /// Checks an unmap in the C module's order and returns its range.
    ///
    /// # Errors
    ///
    /// `EBUSY` (VADDR with emulated groups), `EINVAL`, `EOVERFLOW`.
    fn check_unmap(&self, req: &UnmapRequest, v2: bool) -> Result<IovaRange> {
        // Devices cannot pin while a vaddr is invalid, so none may be here.
        if req.action == UnmapAction::InvalidateVaddr && !self.emulated_groups.is_empty() {
            return Err(EBUSY);
        }
        let pgmask = self.min_pgsize().wrapping_sub(1);
        let range = match req.scope {
            UnmapScope::All { iova, size } => {
                if iova & pgmask != 0 || iova != 0 || size != 0 {
                    return Err(EINVAL);
                }
                IovaRange::full()
            }
            UnmapScope::Range { iova, size } => {
                if iova & pgmask != 0 || size == 0 || size & pgmask != 0 {
                    return Err(EINVAL);
                }
                IovaRange::from_size(iova, size)?
            }
        };
        // A dirty bitmap needs tracking on, at the smallest page size.
        if let Some(bm) = &req.bitmap {
            if !self.dirty_tracking || bm.pgsize != self.min_pgsize() {
                return Err(EINVAL);
            }
        }
        // v2 never splits a mapping: the range must not bisect one.
        if v2 && matches!(req.scope, UnmapScope::Range { .. }) {
            if self.mappings.bisects(&range) {
                return Err(EINVAL);
            }
        }
        Ok(range)
    }

    /// `VFIO_DMA_UNMAP_FLAG_VADDR`: marks the vaddrs of `keys` invalid and
    /// returns their total size; none changes if one is invalid already.
    fn invalidate_vaddrs(&mut self, keys: &[IovaRange]) -> Result<u64> {
        let mappings = &self.mappings;
        if keys
            .iter()
            .filter_map(|k| mappings.get(k.start()))
            .any(|m| m.vaddr_invalid())
        {
            return Err(EINVAL);
        }
        let mut bytes = 0u64;
        for k in keys {
            self.mappings.invalidate_vaddr(k.start());
            bytes = bytes.saturating_add(k.size());
        }
        Ok(bytes)
    }

    /// Reports each mapping of `keys` (their ranges) in turn into `bitmap` (if any), whose
    /// bit 0 is `base`, until one that devices hold pages of or a report
    /// that faults; then removes the mappings before that one (unmapped
    /// from every domain with one IOTLB flush each, then unpinned).
    fn report_and_remove(
        &mut self,
        keys: &[IovaRange],
        bitmap: Option<&uapi::UserBitmap>,
        base: u64,
    ) -> UnmapPass {
        let all_dirty = !self.domains.is_empty();
        let pgshift = self.min_pgsize().trailing_zeros();
        let (mut done, mut bytes, mut held, mut result) = (0usize, 0u64, None, Ok(()));
        for m in keys.iter().filter_map(|k| self.mappings.get(k.start())) {
            if !m.external.is_empty() {
                held = Some((m.range.start(), m.size()));
                break;
            }
            if let Some(bm) = bitmap {
                if let Err(e) = dirty::report_mapping(bm, base, m, pgshift, all_dirty) {
                    result = Err(e);
                    break;
                }
            }
            done = done.saturating_add(1);
            bytes = bytes.saturating_add(m.size());
        }
        self.remove_mappings(keys.iter().take(done).copied());
        UnmapPass {
            removed: done,
            bytes,
            held,
            result,
        }
    }
}

/// Pins the user memory of `m` (of the calling process) and maps it into
/// every domain of `domains`, a contiguous run at a time; `credit` pages of
/// the owner's charge (device pins') are taken over (see
/// [`PinnedPages::new`]).
///
/// # Errors
///
/// The pin's or the iommu driver's, with the pages of the credit still
/// charged (given back to the caller); nothing stays mapped or pinned then
/// and only what this pin charged is given back.
pub(super) fn pin_and_map_into(
    domains: &[Domain],
    m: &Mapping,
    credit: usize,
    batch: &mut PageBatch,
) -> core::result::Result<PinnedPages, (Error, usize)> {
    let mut pinned = PinnedPages::new(m.owner.clone(), m.prot.writable(), credit);
    let filled = {
        // Dropped (unmapped) before `pinned` on error.
        let mut mapped = Mapped::new(domains, m.range.start(), m.prot);
        let filled = m.npages().and_then(|n| {
            let single_pages = params::disable_hugepages();
            let mut reader = PinReader::new(&mut pinned, credit, m.vaddr, n, single_pages, batch);
            while let Some(run) = reader.next_run()? {
                mapped.map_run(run)?;
            }
            Ok(())
        });
        if filled.is_ok() {
            mapped.commit();
        }
        filled
    };
    match filled {
        Ok(()) => Ok(pinned),
        Err(e) => Err((e, pinned.unpin_keeping(credit))),
    }
}
