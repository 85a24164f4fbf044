// SPDX-License-Identifier: GPL-2.0

//! Emulated-IOMMU devices (mdev): groups without an IOMMU domain whose
//! drivers reach user memory through `pin_pages`, `unpin_pages` and
//! `dma_rw`, and get a `dma_unmap` callback before a mapping goes.
//!
//! Accounting follows the C module: while the container has an IOMMU
//! domain every page of a mapping is pinned and charged already, so pages
//! pinned for a device cost nothing more; without one, each such page is
//! charged to the mapping's owner. When the first domain comes or the last
//! goes, the charge moves between the two in one `locked_vm` update (C's
//! one net `vfio_lock_acct()`), without ever giving back what was not
//! charged, and the limit applies only where C checks it.
//!
//! The registered devices and their `dma_unmap` notices are in
//! `emulated/devices.rs` (see its lock order).

use kernel::ffi::c_int;
use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::rbtree::RBTreeNodeReservation;

use crate::bindings;
use crate::compat::eoverflow;
use crate::compat::pr_warn_once;
use crate::container::Container;
use crate::container::ContainerInner;
use crate::iova::IovaRange;
use crate::pin::memlock_limit;
use crate::pin::Owner;
use crate::pin::PinnedPage;

pub(crate) mod devices;

/// One page pinned for emulated devices, shared by all their pins of it.
struct ExternalPin {
    page: PinnedPage,
    refs: u32,
}

/// The pages of one mapping pinned through `pin_pages`, keyed by IOVA.
///
/// # Invariants
///
/// Each entry holds one pinned page. `own_charge` pages of the owner's
/// `locked_vm` are this set's own: at most one per entry, and none unless
/// `charged`. Each removed entry gives one back while any are left, so
/// nothing is given back that was not charged.
pub(crate) struct ExternalPins {
    pins: RBTree<u64, ExternalPin>,
    /// No full pin pays for these pages: new ones are charged on their own.
    charged: bool,
    own_charge: usize,
    writable: bool,
}

impl ExternalPins {
    pub(crate) fn new(charged: bool, writable: bool) -> Self {
        // INVARIANT: no entries, nothing charged.
        Self {
            pins: RBTree::new(),
            charged,
            own_charge: 0,
            writable,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        // (`RBTree::is_empty` is 6.13 on.)
        self.pins.iter().next().is_none()
    }

    pub(crate) fn count(&self) -> usize {
        self.pins.iter().count()
    }

    /// IOVAs of the pinned pages.
    pub(crate) fn iovas(&self) -> impl Iterator<Item = u64> + '_ {
        self.pins.keys().copied()
    }

    /// The mapping's full pin (the first IOMMU domain came) takes over
    /// this set's own charge as its credit (see `PinnedPages::new`), so
    /// nothing is given back here; returns how many pages that was.
    pub(crate) fn hand_over_charge(&mut self) -> usize {
        self.charged = false;
        // INVARIANT: nothing is this set's own while not `charged`.
        core::mem::take(&mut self.own_charge)
    }

    /// The full pin went (the last domain did, or its pin failed) and left
    /// `kept` pages of its charge to these pins, which are charged on their
    /// own again.
    pub(crate) fn take_back_charge(&mut self, kept: usize) {
        self.charged = true;
        // INVARIANT: at most one page per entry.
        self.own_charge = kept.min(self.count());
    }

    /// Takes a reference on the page at `iova`, pinning it first if no
    /// device has yet; returns the page.
    ///
    /// # Errors
    ///
    /// `ENOMEM` (also over RLIMIT_MEMLOCK), the pin's errno.
    pub(crate) fn get(
        &mut self,
        iova: u64,
        vaddr: u64,
        owner: &Owner,
    ) -> Result<*mut bindings::page> {
        if let Some(p) = self.pins.get_mut(&iova) {
            p.refs = p.refs.checked_add(1).ok_or(EINVAL)?;
            return Ok(p.page.page());
        }
        // Allocated first, so that recording the pin cannot fail.
        let slot = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let page = PinnedPage::pin_remote(owner, vaddr, self.writable)?;
        if self.charged {
            if let Err(e) = owner.charge(1) {
                if e == ENOMEM {
                    pr_warn!("pin_pages: RLIMIT_MEMLOCK ({}) exceeded\n", memlock_limit());
                }
                // Dropping `page` unpins it.
                return Err(e);
            }
            self.own_charge = self.own_charge.saturating_add(1);
        }
        let raw = page.page();
        // INVARIANT: one more entry, and at most one more page charged.
        self.pins
            .insert(slot.into_node(iova, ExternalPin { page, refs: 1 }));
        Ok(raw)
    }

    /// Drops one reference on the page at `iova`; unpins it with the last.
    pub(crate) fn put(&mut self, iova: u64, owner: &Owner) {
        let Some(p) = self.pins.get_mut(&iova) else {
            return;
        };
        // Each entry holds at least one reference (type invariant).
        p.refs = p.refs.saturating_sub(1);
        if p.refs == 0 {
            self.remove(iova, owner);
        }
    }

    /// Unpins everything (a device left pins behind at teardown).
    pub(crate) fn release(&mut self, owner: &Owner) {
        loop {
            let Some(iova) = self.pins.keys().next().copied() else {
                break;
            };
            self.remove(iova, owner);
        }
    }

    /// Unpins the page at `iova` (dropping its `PinnedPage`) and gives back
    /// a page of the own charge if any is left.
    fn remove(&mut self, iova: u64, owner: &Owner) {
        if self.pins.remove(&iova).is_some() && self.own_charge > 0 {
            owner.uncharge(1);
            // INVARIANT: one entry and one page of charge fewer.
            self.own_charge = self.own_charge.saturating_sub(1);
        }
    }
}

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

/// The driver's buffer of a `dma_rw` call and its direction.
pub(crate) enum DmaBuf<'a> {
    /// Read user memory into the buffer.
    Read(&'a mut [u8]),
    /// Write the buffer to user memory.
    Write(&'a [u8]),
}

impl DmaBuf<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Read(b) => b.len(),
            Self::Write(b) => b.len(),
        }
    }

    fn is_write(&self) -> bool {
        matches!(self, Self::Write(_))
    }

    /// Copies `len` bytes between `buf[at..]` and `vaddr` in the owner's mm.
    ///
    /// # Errors
    ///
    /// `EFAULT` (nothing or not everything copied), `EPERM` (the mm is gone).
    fn copy(&mut self, owner: &Owner, vaddr: u64, at: usize, len: usize) -> Result {
        let end = at.checked_add(len).ok_or(EINVAL)?;
        match self {
            Self::Read(b) => owner.read_user(vaddr, b.get_mut(at..end).ok_or(EINVAL)?),
            Self::Write(b) => owner.write_user(vaddr, b.get(at..end).ok_or(EINVAL)?),
        }
    }
}
