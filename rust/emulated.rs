// SPDX-License-Identifier: GPL-2.0

//! Emulated-IOMMU devices (mdev): groups without an IOMMU domain whose
//! drivers reach user memory through `pin_pages`, `unpin_pages` and
//! `dma_rw`, and get a `dma_unmap` callback before a mapping goes.
//!
//! This file holds what a mapping keeps for them (`ExternalPins`, its
//! device-pinned pages and their charge) and the buffer of a `dma_rw`
//! call; the flow of those calls is `container/emulated.rs`, the
//! registered devices and their `dma_unmap` notices `emulated/devices.rs`
//! (see its lock order).
//!
//! Accounting follows the C module: while the container has an IOMMU
//! domain every page of a mapping is pinned and charged already, so pages
//! pinned for a device cost nothing more; without one, each such page is
//! charged to the mapping's owner. When the first domain comes or the last
//! goes, the charge moves between the two in one `locked_vm` update (C's
//! one net `vfio_lock_acct()`), without ever giving back what was not
//! charged, and the limit applies only where C checks it.

use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::rbtree::RBTreeNodeReservation;

use crate::bindings;
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

/// The driver's buffer of a `dma_rw` call and its direction.
pub(crate) enum DmaBuf<'a> {
    /// Read user memory into the buffer.
    Read(&'a mut [u8]),
    /// Write the buffer to user memory.
    Write(&'a [u8]),
}

impl DmaBuf<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Read(b) => b.len(),
            Self::Write(b) => b.len(),
        }
    }

    pub(crate) fn is_write(&self) -> bool {
        matches!(self, Self::Write(_))
    }

    /// Copies `len` bytes between `buf[at..]` and `vaddr` in the owner's mm.
    ///
    /// # Errors
    ///
    /// `EFAULT` (nothing or not everything copied), `EPERM` (the mm is gone).
    pub(crate) fn copy(&mut self, owner: &Owner, vaddr: u64, at: usize, len: usize) -> Result {
        let end = at.checked_add(len).ok_or(EINVAL)?;
        match self {
            Self::Read(b) => owner.read_user(vaddr, b.get_mut(at..end).ok_or(EINVAL)?),
            Self::Write(b) => owner.write_user(vaddr, b.get(at..end).ok_or(EINVAL)?),
        }
    }
}
