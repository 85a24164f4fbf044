// SPDX-License-Identifier: GPL-2.0

//! The emulated devices' calls into the container: `pin_pages`,
//! `unpin_pages` and `dma_rw` (what an mdev driver uses instead of an
//! IOMMU domain). What a mapping keeps for them, and how it is charged, is
//! `emulated.rs`; the devices and their `dma_unmap` notices are
//! `emulated/devices.rs`.

use kernel::ffi::c_int;
use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

use crate::bindings;
use crate::compat::eoverflow;
use crate::compat::pr_warn_once;
use crate::container::Container;
use crate::container::ContainerInner;
use crate::emulated::DmaBuf;
use crate::iova::IovaRange;

impl ContainerInner {
    /// Takes a device reference on the page at `iova` for `pin_pages`
    /// (pinning it if no device has), marks it dirty while tracking, and
    /// returns it.
    ///
    /// # Errors
    ///
    /// `EINVAL` (not mapped, no struct page), `EPERM` (`prot` beyond the
    /// mapping's), `ENOMEM`, the pin's errno.
    fn get_external(
        &mut self,
        iova: u64,
        prot: u32,
        tracking: bool,
    ) -> Result<*mut bindings::page> {
        let page = IovaRange::from_size(iova, PAGE_SIZE as u64).map_err(|_| EINVAL)?;
        let key = self.mappings.first_overlapping(&page).ok_or(EINVAL)?;
        let m = self.mappings.get_mut(key).ok_or(EINVAL)?;
        if !m.prot.allows(prot) {
            return Err(EPERM);
        }
        // An unaligned IOVA less than a page below the mapping overlaps it;
        // the C module then pins the user page before the mapping's vaddr,
        // outside the mapping. Refuse it: that memory was never mapped.
        let offset = iova.checked_sub(m.range.start()).ok_or(EINVAL)?;
        let vaddr = m.vaddr.checked_add(offset).ok_or(EINVAL)?;
        let page =
            m.external
                .get(iova, vaddr, &m.owner)
                .map_err(|e| if e == ENOENT { EINVAL } else { e })?;
        if tracking {
            m.mark_dirty_span(offset, 1);
        }
        Ok(page)
    }

    /// Drops one device pin of the page at `iova`; false if not mapped.
    fn put_external(&mut self, iova: u64) -> bool {
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
}

impl Container {
    /// `pin_pages`: pins the pages of `pages.len()` IOVA pages from
    /// `user_iova` for an emulated device and fills `pages`.
    ///
    /// # Errors
    ///
    /// The C module's, in its order: `EACCES` (v1), `EOVERFLOW` (`EINVAL`
    /// after the next two on 6.12), `EBUSY` (a vaddr is invalid), `EINVAL`
    /// (no registered device, an IOVA not in a mapping), `EPERM` (`prot`
    /// beyond the mapping's), `ENOMEM`, the pin's errno. Nothing stays
    /// pinned on error.
    pub(crate) fn pin_pages(
        &self,
        user_iova: u64,
        prot: u32,
        pages: &mut [*mut bindings::page],
    ) -> Result<usize> {
        if !self.v2() {
            return Err(EACCES);
        }
        let range = u64::try_from(pages.len())
            .ok()
            .and_then(|n| n.checked_mul(PAGE_SIZE as u64))
            .and_then(|span| IovaRange::from_size(user_iova, span).ok());
        if range.is_none() && cfg!(vfio_rs_c_eoverflow) {
            return Err(eoverflow());
        }
        let mut inner = self.inner.lock();
        if inner.mappings.vaddr_invalid_count() > 0 {
            pr_warn_once!("vfio_pin_pages not allowed with VFIO_UPDATE_VADDR\n");
            return Err(EBUSY);
        }
        // Not `devices`: the caller may hold the lock its `dma_unmap` takes.
        if self.devices.count() == 0 {
            return Err(EINVAL);
        }
        // Linux 6.12's C module checks no span: its walk finds no mapping
        // at the top page (a C bug there) or past it.
        if range.is_none() {
            return Err(EINVAL);
        }
        let tracking = inner.dirty_tracking;
        let mut failed = None;
        for (i, slot) in pages.iter_mut().enumerate() {
            // Cannot overflow: the whole span was checked above.
            let iova = user_iova.wrapping_add(page_offset(i));
            match inner.get_external(iova, prot, tracking) {
                Ok(page) => *slot = page,
                Err(e) => {
                    *slot = core::ptr::null_mut();
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let Some((pinned, e)) = failed else {
            return Ok(pages.len());
        };
        // Give back the pages pinned so far, as the C module.
        for (j, slot) in pages.iter_mut().enumerate().take(pinned) {
            inner.put_external(user_iova.wrapping_add(page_offset(j)));
            *slot = core::ptr::null_mut();
        }
        Err(e)
    }

    /// `unpin_pages`: drops the device's pins on `npage` pages.
    pub(crate) fn unpin_pages(&self, user_iova: u64, npage: c_int) {
        let span = usize::try_from(npage)
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| u64::try_from(n).ok())
            .and_then(|n| n.checked_mul(PAGE_SIZE as u64));
        let range = span.and_then(|span| IovaRange::from_size(user_iova, span).ok());
        let (true, Some(range)) = (self.v2(), range) else {
            pr_warn!(
                "unpin_pages: bad request (v1 container, or {} pages from iova {:#x})\n",
                npage,
                user_iova
            );
            return;
        };
        let mut inner = self.inner.lock();
        let mut iova = range.start();
        loop {
            if !inner.put_external(iova) {
                pr_warn!("unpin_pages: iova {:#x} is not mapped\n", iova);
                return;
            }
            match iova.checked_add(PAGE_SIZE as u64) {
                Some(next) if next <= range.last() => iova = next,
                _ => return,
            }
        }
    }

    /// `dma_rw`: copies between `buf` and the user memory behind the IOVAs
    /// from `user_iova` on, across mappings.
    ///
    /// # Errors
    ///
    /// `EBUSY` (a vaddr is invalid), `EINVAL` (an IOVA not mapped), `EPERM`
    /// (no access, or the owner is gone), `EFAULT`.
    pub(crate) fn dma_rw(&self, user_iova: u64, mut buf: DmaBuf<'_>) -> Result {
        let mut inner = self.inner.lock();
        if inner.mappings.vaddr_invalid_count() > 0 {
            pr_warn_once!("vfio_dma_rw not allowed with VFIO_UPDATE_VADDR\n");
            return Err(EBUSY);
        }
        let tracking = inner.dirty_tracking;
        let (mut iova, mut done) = (user_iova, 0usize);
        while done < buf.len() {
            let key = inner
                .mappings
                .find(iova)
                .map(|m| m.range.start())
                .ok_or(EINVAL)?;
            let m = inner.mappings.get_mut(key).ok_or(EINVAL)?;
            if (buf.is_write() && !m.prot.writable()) || !m.prot.readable() {
                return Err(EPERM);
            }
            // `m` contains `iova`, so `offset < m.size()`.
            let offset = iova.checked_sub(m.range.start()).ok_or(EINVAL)?;
            let in_mapping = m.size().saturating_sub(offset);
            let left = buf.len().saturating_sub(done);
            let chunk = usize::try_from(in_mapping).map_or(left, |n| n.min(left));
            let vaddr = m.vaddr.checked_add(offset).ok_or(EFAULT)?;
            buf.copy(&m.owner, vaddr, done, chunk)?;
            if buf.is_write() && tracking {
                m.mark_dirty_span(offset, chunk);
            }
            // As the C module's dma_addr_t: past 2^64 - 1 comes IOVA 0.
            iova = iova.wrapping_add(chunk as u64);
            done = done.saturating_add(chunk);
        }
        Ok(())
    }
}

/// The byte offset of page `i`.
fn page_offset(i: usize) -> u64 {
    (i as u64).wrapping_shl(PAGE_SHIFT as u32)
}
