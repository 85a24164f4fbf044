// SPDX-License-Identifier: GPL-2.0

//! Attach and detach: a group joins a container (a new paging domain, or
//! merged onto a compatible one, with every mapping replayed into a new
//! domain) or leaves it. Read `Container::attach_group` top to bottom:
//! check, allocate, check the window, merge or replay, publish.
//!
//! Lock order: `Container::inner`, then the iommu group mutex (inside the
//! iommu core) and the mm's `mmap_lock` (pinning on replay).

use kernel::prelude::*;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use super::dma::pin_and_map_into;
use super::Container;
use super::ContainerInner;
use crate::domain::AdoptFailure;
use crate::domain::Domain;
use crate::domain::GroupRef;
use crate::iova::ValidRanges;
use crate::mapping::Mapping;
use crate::mapping::Mappings;
use crate::params;
use crate::pin::PageBatch;
use crate::trace;
use crate::uapi::GroupType;

/// Where mappings may go once a new domain joins (see `window_with`).
struct Window {
    valid: ValidRanges,
    sw_msi: Option<u64>,
}

/// Mappings replayed into a new domain: on drop, unless committed, the
/// first `done` of them (in IOVA order) are unmapped from it again and,
/// when they were pinned for it, unpinned (their device pins charged on
/// their own again: see `unpin_keeping_external`).
struct Replay<'a> {
    domain: &'a Domain,
    mappings: &'a mut Mappings,
    done: usize,
    pinned_here: bool,
}

impl Replay<'_> {
    /// Keeps what was replayed; returns how many mappings that was.
    fn commit(mut self) -> usize {
        core::mem::replace(&mut self.done, 0)
    }
}

impl Drop for Replay<'_> {
    fn drop(&mut self) {
        let (domain, pinned_here) = (self.domain, self.pinned_here);
        for m in self.mappings.iter_mut().take(self.done) {
            domain.unmap_now(m.range.start(), m.size());
            if pinned_here {
                unpin_keeping_external(m);
            }
        }
    }
}

impl Container {
    /// Attaches `group`, in the C module's order: check, allocate a domain
    /// and attach, check the new window and isolation, then merge onto a
    /// compatible domain or replay every mapping into the new one, then
    /// publish.
    ///
    /// # Errors
    ///
    /// `EBUSY` while a vaddr is invalid; `EINVAL` if the group is already
    /// attached, its aperture/reserved regions collide with mappings or
    /// leave no valid IOVA; `EPERM` without isolated MSI (unless
    /// `allow_unsafe_interrupts`); `ENODEV` for an unknown group type; the
    /// iommu core's or the pin's errno. On error the container is unchanged.
    pub(crate) fn attach_group(&self, group: GroupRef, group_type: GroupType) -> Result {
        let mut inner = self.inner.lock();
        if inner.mappings.vaddr_invalid_count() > 0 {
            return Err(EBUSY);
        }
        if inner.domains.iter().any(|d| d.has_group(group))
            || inner.emulated_groups.contains(&group)
        {
            return Err(EINVAL);
        }
        if group_type == GroupType::Emulated {
            return self.attach_emulated(&mut inner, group);
        }
        if group_type != GroupType::Iommu {
            return Err(ENODEV);
        }
        // Allocate: room to publish, then a domain with the group on it.
        inner.domains.reserve(1, GFP_KERNEL)?;
        let mut new = Domain::attach_new(group, self.nesting())?;
        // Check: where mappings may go with this domain, and isolation.
        let window = inner.window_with(&new, group)?;
        if !params::allow_unsafe_interrupts() && !group.has_isolated_msi() {
            pr_warn!(
                "attach_group: No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform\n"
            );
            return Err(EPERM);
        }
        // Merge: a compatible domain takes the group; the new one is freed.
        if let Some(ngroups) = inner.merge(&mut new, group)? {
            inner.valid = window.valid;
            trace::attach(self.id, group.id(), true, 0, new.pgsize_bitmap());
            if params::verbose() {
                pr_info!(
                    "container {}: group {} merged onto an existing domain ({} groups there)\n",
                    self.id,
                    group.id(),
                    ngroups
                );
            }
            return Ok(());
        }
        // Replay every mapping into the new domain, then publish it.
        let replayed = inner.replay_into(&new, window.sw_msi)?;
        self.log_new_domain(group, &new, replayed);
        // Cannot fail: reserved above.
        inner.domains.push(new, GFP_KERNEL)?;
        inner.update_pgsize_bitmap();
        inner.valid = window.valid;
        Ok(())
    }

    /// An emulated-IOMMU group: no domain, its devices use pin_pages/dma_rw.
    fn attach_emulated(&self, inner: &mut ContainerInner, group: GroupRef) -> Result {
        inner.emulated_groups.push(group, GFP_KERNEL)?;
        trace::attach(self.id, group.id(), false, 0, 0);
        if params::verbose() {
            pr_info!(
                "container {}: emulated-IOMMU group {} attached\n",
                self.id,
                group.id()
            );
        }
        Ok(())
    }

    fn log_new_domain(&self, group: GroupRef, new: &Domain, replayed: usize) {
        let replayed = u32::try_from(replayed).unwrap_or(u32::MAX);
        trace::attach(self.id, group.id(), false, replayed, new.pgsize_bitmap());
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
    }

    /// Detaches `group`. A domain left without groups is freed; when the
    /// last one goes, every mapping is unmapped and unpinned (or, with
    /// emulated devices staying, only their pins remain). Cannot fail.
    pub(crate) fn detach_group(&self, group: GroupRef) {
        let mut inner = self.inner.lock();
        let freed = match inner.emulated_groups.iter().position(|g| *g == group) {
            Some(i) => {
                let _ = inner.emulated_groups.remove(i);
                if inner.emulated_groups.is_empty() && inner.domains.is_empty() {
                    inner.remove_all_mappings();
                }
                None
            }
            None => match inner.detach_iommu_group(group) {
                Some(freed) => freed,
                // Not attached here.
                None => return,
            },
        };
        drop(inner);
        trace::detach(self.id, group.id(), freed.is_some());
        if params::verbose() {
            let what = if freed.is_some() {
                ", its domain freed"
            } else {
                ""
            };
            pr_info!(
                "container {}: group {} detached{}\n",
                self.id,
                group.id(),
                what
            );
        }
        // Dropping the domain frees it, outside the lock.
        drop(freed);
    }
}

impl ContainerInner {
    /// Detaches IOMMU-backed `group` from its domain; `None` if it is not
    /// attached here, else the domain taken out if it was left empty.
    fn detach_iommu_group(&mut self, group: GroupRef) -> Option<Option<Domain>> {
        let i = self.domains.iter().position(|d| d.has_group(group))?;
        // The group's devices may have written any page since the last
        // report: the next one says every page is dirty (C's
        // vfio_iommu_populate_bitmap_full).
        if self.dirty_tracking {
            self.mappings.iter_mut().for_each(|m| m.mark_all_dirty());
        }
        let emptied = self.domains.get_mut(i).is_some_and(|d| d.detach(group));
        let mut freed = None;
        if emptied {
            if self.domains.len() == 1 {
                if self.emulated_groups.is_empty() {
                    self.remove_all_mappings();
                } else {
                    // Emulated devices stay: unmap and unpin the full pins,
                    // and charge the device-pinned pages on their own.
                    self.unpin_all_keep_external();
                }
            }
            freed = Some(self.domains.remove(i));
            self.update_pgsize_bitmap();
        }
        // If recomputing fails (ENOMEM), the old ranges stay: they are a
        // subset of the new ones, as the C module does.
        if let Ok(valid) = self.compute_valid() {
            self.valid = valid;
        }
        Some(freed.and_then(|d| d.ok()))
    }

    /// The valid IOVA ranges once `new` (holding `group`) joins, and its
    /// software MSI window: the new window and reserved regions must not
    /// cut existing mappings (the window only once ranges apply: mappings
    /// made for emulated devices alone are not held to it, as in C).
    ///
    /// # Errors
    ///
    /// `EINVAL` on a conflict or when nothing valid is left; `ENOMEM`.
    fn window_with(&self, new: &Domain, group: GroupRef) -> Result<Window> {
        let aperture = new.aperture();
        if !self.valid.ranges().is_empty()
            && self.mappings.iter().any(|m| !aperture.contains(&m.range))
        {
            return Err(EINVAL);
        }
        let resv = group.resv_regions()?;
        let holes = || resv.iter().filter(|r| r.excludes_mappings());
        if holes().any(|r| self.mappings.overlaps(&r.range)) {
            return Err(EINVAL);
        }
        let mut valid = match self.valid.ranges() {
            [] => ValidRanges::from_aperture(aperture)?,
            _ => self.valid.intersect(&aperture)?,
        };
        for r in holes() {
            valid.exclude(&r.range)?;
        }
        // Reserved regions covering the whole window leave nothing to map.
        if valid.ranges().is_empty() {
            return Err(EINVAL);
        }
        let sw_msi = crate::domain::sw_msi_base(&resv);
        Ok(Window { valid, sw_msi })
    }

    /// Moves `group` from `new` onto the first compatible domain that takes
    /// it; returns how many groups that domain has then, or `None` if none
    /// took it (then `group` is still on `new`).
    ///
    /// # Errors
    ///
    /// The iommu core's, when `group` could not go back onto `new`.
    fn merge(&mut self, new: &mut Domain, group: GroupRef) -> Result<Option<usize>> {
        for d in self.domains.iter_mut() {
            if !d.compatible_with(new) {
                continue;
            }
            match d.adopt_group(new, group) {
                Ok(()) => return Ok(Some(d.groups().len())),
                Err(AdoptFailure::BackOnNew) => continue,
                Err(AdoptFailure::Detached(e)) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Maps every mapping into `new` (pinning them first if `new` is the
    /// container's first IOMMU domain), then sets up its software MSI
    /// window; returns how many mappings were replayed. On error `new` is
    /// left empty and every mapping as it was (the guard undoes the rest).
    fn replay_into(&mut self, new: &Domain, sw_msi: Option<u64>) -> Result<usize> {
        let first_domain = self.domains.is_empty();
        let mut batch = PageBatch::new()?;
        let mut replay = Replay {
            domain: new,
            mappings: &mut self.mappings,
            done: 0,
            pinned_here: first_domain,
        };
        for m in replay.mappings.iter_mut() {
            if m.pinned.is_some() {
                new.map_mapping(m)?;
            } else {
                pin_into(new, m, &mut batch)?;
            }
            replay.done = replay.done.saturating_add(1);
        }
        if let Some(base) = sw_msi {
            new.enable_sw_msi(base)?;
        }
        Ok(replay.commit())
    }

    /// The last IOMMU domain goes while emulated devices stay: unmap every
    /// mapping from the domains and drop its full pin; pages pinned by
    /// devices stay pinned and are now charged on their own.
    fn unpin_all_keep_external(&mut self) {
        self.unmap_all_from_domains();
        self.mappings.iter_mut().for_each(unpin_keeping_external);
    }
}

/// Drops the full pin of `m` while its device pins stay: they keep a page
/// of its charge each and it gives the rest back, in one `locked_vm`
/// update (C's `vfio_iommu_unmap_unpin_reaccount()` and its replay
/// unwind: `vfio_lock_acct(dma, locked - unlocked)`).
fn unpin_keeping_external(m: &mut Mapping) {
    if let Some(pinned) = m.pinned.take() {
        let kept = pinned.unpin_keeping(m.external.count());
        m.external.take_back_charge(kept);
    }
}

/// Pins a mapping that had no full pin (only emulated devices so far) and
/// maps it into `domain`; the full pin takes over its device pins' charge
/// (it charges only the other pages, as C), all of which they get back if
/// it fails.
///
/// # Errors
///
/// The pin's or the iommu driver's; `m` is then as it was (but for a
/// failure to give back what the pin charged, as C's).
fn pin_into(domain: &Domain, m: &mut Mapping, batch: &mut PageBatch) -> Result {
    // As the C module, the caller's memory is pinned (the process
    // attaching) and the mapping's owner charged.
    let credit = m.external.hand_over_charge();
    match pin_and_map_into(core::slice::from_ref(domain), m, credit, batch) {
        Ok(pinned) => {
            m.pinned = Some(pinned);
            Ok(())
        }
        Err((e, kept)) => {
            m.external.take_back_charge(kept);
            Err(e)
        }
    }
}
