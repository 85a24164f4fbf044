// SPDX-License-Identifier: GPL-2.0

//! `VFIO_IOMMU_DIRTY_PAGES`: start, stop and GET_BITMAP on the container
//! (what is reported and how, and UNMAP's bitmap: `dirty.rs`).

use kernel::prelude::*;

use crate::container::Container;
use crate::container::ContainerInner;
use crate::dirty::report_mapping;
use crate::iova::IovaRange;
use crate::uapi::DirtyPages;
use crate::uapi::UserBitmap;
use crate::uapi::BITMAP_PAGES_MAX;

impl Container {
    /// `VFIO_IOMMU_DIRTY_PAGES` (the caller has refused v1 containers).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bitmap not at the smallest page size, a misaligned
    /// range or one bisecting a mapping, GET_BITMAP while tracking is off,
    /// a mapping too large to track; `ENOMEM`; `EFAULT`.
    pub(super) fn dirty_pages(&self, req: DirtyPages) -> Result {
        let mut inner = self.inner.lock();
        match req {
            DirtyPages::Start => inner.start_tracking(),
            DirtyPages::Stop => {
                inner.dirty_tracking = false;
                inner.mappings.iter_mut().for_each(|m| m.dirty = None);
                Ok(())
            }
            DirtyPages::GetBitmap { range, bitmap } => inner.report_range(&range, &bitmap),
        }
    }
}

impl ContainerInner {
    /// Starts tracking: a clear bitmap for every mapping (nothing changes
    /// if one cannot be allocated).
    fn start_tracking(&mut self) -> Result {
        // The C module sizes a bitmap per mapping here.
        let pgshift = self.min_pgsize().trailing_zeros();
        if self
            .mappings
            .iter()
            .any(|m| m.size() >> pgshift > BITMAP_PAGES_MAX)
        {
            return Err(EINVAL);
        }
        if !self.dirty_tracking {
            let res = self.mappings.iter_mut().try_for_each(|m| m.start_dirty());
            if let Err(e) = res {
                self.mappings.iter_mut().for_each(|m| m.dirty = None);
                return Err(e);
            }
        }
        self.dirty_tracking = true;
        Ok(())
    }

    /// GET_BITMAP: reports every mapping inside `range` into `bitmap`, whose
    /// bit 0 is `range.start()`, and starts their records over.
    fn report_range(&mut self, range: &IovaRange, bitmap: &UserBitmap) -> Result {
        let pgsize = self.min_pgsize();
        let mask = pgsize.wrapping_sub(1);
        if bitmap.pgsize != pgsize || range.start() & mask != 0 || range.size() & mask != 0 {
            return Err(EINVAL);
        }
        if !self.dirty_tracking {
            return Err(EINVAL);
        }
        // The range must not bisect a mapping.
        if self.mappings.bisects(range) {
            return Err(EINVAL);
        }
        let pgshift = pgsize.trailing_zeros();
        let all_dirty = !self.domains.is_empty();
        for m in self.mappings.iter_mut() {
            if m.range.start() < range.start() {
                continue;
            }
            if m.range.start() > range.last() {
                break;
            }
            report_mapping(bitmap, range.start(), m, pgshift, all_dirty)?;
            // Reported: start over (device-pinned pages stay dirty).
            m.restart_dirty();
        }
        Ok(())
    }
}
