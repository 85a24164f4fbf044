// SPDX-License-Identifier: GPL-2.0

//! Emulated-IOMMU devices (mdev): groups without an IOMMU domain whose
//! drivers reach user memory through `pin_pages`, `unpin_pages` and
//! `dma_rw`, and get a `dma_unmap` callback before a mapping goes.
//!
//! Accounting follows the C module: while the container has an IOMMU
//! domain every page of a mapping is pinned and charged already, so pages
//! pinned for a device cost nothing more; without one, each such page is
//! charged to the mapping's owner.
//!
//! Lock order: `Container::devices`, then the driver's own lock (its
//! `dma_unmap` runs with `devices` held and `inner` released, and answers
//! with `unpin_pages`), then `Container::inner`. Drivers call `pin_pages`
//! holding the lock their `dma_unmap` takes, so `pin_pages` never waits for
//! `devices`.

use core::sync::atomic::Ordering;

use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::pr_warn_once;
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::rbtree::RBTreeNodeReservation;

use crate::bindings;
use crate::container::Container;
use crate::iova::IovaRange;
use crate::pin::Owner;

/// One page pinned for emulated devices, shared by all their pins of it.
struct ExternalPin {
    pfn: usize,
    refs: u32,
}

/// The pages of one mapping pinned through `pin_pages`, keyed by IOVA.
///
/// # Invariants
///
/// Each entry holds one long-term pin on `pfn`; when `charged`, each entry
/// is also one page of the owner's `locked_vm`.
pub(crate) struct ExternalPins {
    pins: RBTree<u64, ExternalPin>,
    charged: bool,
    writable: bool,
}

impl ExternalPins {
    pub(crate) fn new(charged: bool, writable: bool) -> Self {
        Self {
            pins: RBTree::new(),
            charged,
            writable,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    pub(crate) fn count(&self) -> usize {
        self.pins.iter().count()
    }

    /// IOVAs of the pinned pages.
    pub(crate) fn iovas(&self) -> impl Iterator<Item = u64> + '_ {
        self.pins.keys().copied()
    }

    /// Switches between charged (no IOMMU domain) and not charged (the
    /// mapping's full pin pays for these pages).
    pub(crate) fn set_charged(&mut self, owner: &Owner, charged: bool) {
        if self.charged == charged {
            return;
        }
        let n = self.count() as i64;
        // A charge can exceed the limit here; the C module ignores that
        // too (the pages are pinned already).
        let _ = owner.lock_acct(if charged { n } else { -n });
        self.charged = charged;
    }

    /// Takes a reference on the page at `iova`, pinning it first if no
    /// device has yet; returns its pfn.
    pub(crate) fn get(&mut self, iova: u64, vaddr: u64, owner: &Owner) -> Result<usize> {
        if let Some(p) = self.pins.get_mut(&iova) {
            p.refs += 1;
            return Ok(p.pfn);
        }
        // Allocated first, so that recording the pin cannot fail.
        let slot = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut pfn: c_ulong = 0;
        // SAFETY: `mm` is held by `owner`; `pfn` is a live local.
        let ret = unsafe {
            bindings::vfio_rs_pin_remote_page(
                owner.mm.as_raw().cast(),
                vaddr as c_ulong,
                self.writable,
                &mut pfn,
            )
        };
        kernel::error::to_result(ret)?;
        if self.charged {
            if let Err(e) = owner.lock_acct(1) {
                unpin_page(pfn as usize, false);
                if e == ENOMEM {
                    // SAFETY: reads current's rlimit.
                    let limit = unsafe { bindings::vfio_rs_rlimit_memlock() };
                    pr_warn!("pin_pages: RLIMIT_MEMLOCK ({}) exceeded\n", limit);
                }
                return Err(e);
            }
        }
        let pfn = pfn as usize;
        // INVARIANT: one pin on `pfn`, charged if `charged`.
        self.pins
            .insert(slot.into_node(iova, ExternalPin { pfn, refs: 1 }));
        Ok(pfn)
    }

    /// Drops one reference on the page at `iova`; unpins it with the last.
    pub(crate) fn put(&mut self, iova: u64, owner: &Owner) {
        let Some(p) = self.pins.get_mut(&iova) else {
            return;
        };
        p.refs -= 1;
        if p.refs > 0 {
            return;
        }
        if let Some(p) = self.pins.remove(&iova) {
            unpin_page(p.pfn, self.writable);
            if self.charged {
                let _ = owner.lock_acct(-1);
            }
        }
    }

    /// Unpins everything (a device left pins behind at teardown).
    pub(crate) fn release(&mut self, owner: &Owner) {
        loop {
            let Some(iova) = self.pins.keys().next().copied() else {
                break;
            };
            if let Some(p) = self.pins.remove(&iova) {
                unpin_page(p.pfn, self.writable);
                if self.charged {
                    let _ = owner.lock_acct(-1);
                }
            }
        }
    }
}

fn unpin_page(pfn: usize, dirty: bool) {
    // SAFETY: `pfn` is a page this module pinned once.
    unsafe {
        let page = bindings::vfio_rs_pfn_to_page(pfn as c_ulong);
        bindings::unpin_user_page_range_dirty_lock(page, 1, dirty);
    }
}

/// A registered emulated device (`register_device`).
///
/// # Invariants
///
/// `ptr` is a registered `vfio_device` whose ops have `dma_unmap`; vfio
/// core unregisters it before freeing it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRef {
    ptr: *mut bindings::vfio_device,
}

// SAFETY: a handle; vfio core keeps the device alive while registered.
unsafe impl Send for DeviceRef {}

impl DeviceRef {
    /// # Safety
    ///
    /// `ptr` is a valid `vfio_device` registered with this container.
    pub(crate) unsafe fn new(ptr: *mut bindings::vfio_device) -> Option<Self> {
        // SAFETY: `ptr` is valid (caller's contract).
        unsafe { bindings::vfio_rs_device_has_dma_unmap(ptr) }.then_some(Self { ptr })
    }

    fn dma_unmap(self, iova: u64, size: u64) {
        // SAFETY: `ptr` is registered (type invariant).
        unsafe { bindings::vfio_rs_device_dma_unmap(self.ptr, iova, size) };
    }
}

impl Container {
    /// `register_device`: devices with a `dma_unmap` callback are told about
    /// unmaps.
    pub(crate) fn register_device(&self, dev: DeviceRef) {
        // Nothing to do on allocation failure but to not notify; the C
        // module's list cannot fail.
        let mut devices = self.devices.lock();
        if devices.push(dev, GFP_KERNEL).is_ok() {
            self.ndevices.store(devices.len(), Ordering::Relaxed);
        }
    }

    pub(crate) fn unregister_device(&self, dev: DeviceRef) {
        let mut devices = self.devices.lock();
        devices.retain(|d| *d != dev);
        self.ndevices.store(devices.len(), Ordering::Relaxed);
    }

    /// Calls every registered device's `dma_unmap` for `[iova, iova + size)`.
    /// Called without `inner` held: the drivers answer with `unpin_pages`.
    pub(crate) fn notify_unmap(&self, iova: u64, size: u64) {
        let devices = self.devices.lock();
        for d in devices.iter() {
            d.dma_unmap(iova, size);
        }
    }

    /// `pin_pages`: pins `npage` pages from `user_iova` for an emulated
    /// device and fills `pages`.
    ///
    /// # Errors
    ///
    /// The C module's: `EINVAL` (bad arguments, no registered device, an
    /// unmapped IOVA, a pfn without struct page), `EACCES` (v1),
    /// `EOVERFLOW`, `EBUSY` (a vaddr is invalid), `EPERM` (`prot` beyond the
    /// mapping's), `ENOMEM`, the pin's errno. Nothing stays pinned on error.
    pub(crate) fn pin_pages(
        &self,
        user_iova: u64,
        npage: c_int,
        prot: u32,
        pages: *mut *mut bindings::page,
    ) -> Result<c_int> {
        if pages.is_null() || npage <= 0 {
            return Err(EINVAL);
        }
        if !self.v2() {
            return Err(EACCES);
        }
        let n = npage as usize;
        IovaRange::from_size(user_iova, (n as u64) * PAGE_SIZE as u64)?;
        // Not `devices`: the caller may hold the lock its `dma_unmap` takes.
        if self.ndevices.load(Ordering::Relaxed) == 0 {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        if inner.vaddr_invalid_count > 0 {
            pr_warn_once!("vfio_pin_pages not allowed with VFIO_UPDATE_VADDR\n");
            return Err(EBUSY);
        }
        let mut done = 0usize;
        let mut result = Ok(());
        for i in 0..n {
            let iova = user_iova + ((i as u64) << PAGE_SHIFT);
            let page = IovaRange::from_size(iova, PAGE_SIZE as u64)?;
            let Some(key) = inner.mappings.first_overlapping(&page) else {
                result = Err(EINVAL);
                break;
            };
            let tracking = inner.dirty_tracking;
            let Some(m) = inner.mappings.get_mut(key) else {
                result = Err(EINVAL);
                break;
            };
            if m.prot.0 & prot != prot {
                result = Err(EPERM);
                break;
            }
            let vaddr = m.vaddr + (iova - m.range.start());
            match m.external.get(iova, vaddr, &m.owner) {
                Ok(pfn) => {
                    // SAFETY: `pages` has `npage` entries (vfio core's contract).
                    unsafe { *pages.add(i) = bindings::vfio_rs_pfn_to_page(pfn as c_ulong) };
                    if tracking {
                        m.mark_dirty(iova);
                    }
                    done += 1;
                }
                Err(e) => {
                    result = Err(if e == ENOENT { EINVAL } else { e });
                    break;
                }
            }
        }
        if let Err(e) = result {
            for j in 0..done {
                let iova = user_iova + ((j as u64) << PAGE_SHIFT);
                inner.put_external(iova);
                // SAFETY: as above.
                unsafe { *pages.add(j) = core::ptr::null_mut() };
            }
            // SAFETY: as above; `done < n`.
            unsafe { *pages.add(done) = core::ptr::null_mut() };
            return Err(e);
        }
        Ok(npage)
    }

    /// `unpin_pages`: drops the device's pins on `npage` pages.
    pub(crate) fn unpin_pages(&self, user_iova: u64, npage: c_int) {
        if !self.v2() || npage <= 0 {
            pr_warn!(
                "unpin_pages: bad request (v1 container or {} pages)\n",
                npage
            );
            return;
        }
        let mut inner = self.inner.lock();
        for i in 0..npage as u64 {
            let iova = user_iova + (i << PAGE_SHIFT);
            if !inner.put_external(iova) {
                pr_warn!("unpin_pages: iova {:#x} is not mapped\n", iova);
                return;
            }
        }
    }

    /// `dma_rw`: copies between `data` and the user memory behind
    /// `[user_iova, user_iova + count)`, across mappings.
    ///
    /// # Errors
    ///
    /// `EINVAL` (an IOVA not mapped), `EPERM` (no access, or the owner is
    /// gone), `EFAULT`, `EBUSY` (a vaddr is invalid).
    pub(crate) fn dma_rw(
        &self,
        user_iova: u64,
        data: *mut c_void,
        count: usize,
        write: bool,
    ) -> Result {
        let mut inner = self.inner.lock();
        if inner.vaddr_invalid_count > 0 {
            pr_warn_once!("vfio_dma_rw not allowed with VFIO_UPDATE_VADDR\n");
            return Err(EBUSY);
        }
        let (mut iova, mut left, mut off) = (user_iova, count, 0usize);
        while left > 0 {
            let tracking = inner.dirty_tracking;
            let key = inner
                .mappings
                .find(iova)
                .map(|m| m.range.start())
                .ok_or(EINVAL)?;
            let m = inner.mappings.get_mut(key).ok_or(EINVAL)?;
            let readable = m.prot.0 & bindings::IOMMU_READ != 0;
            if (write && !m.prot.writable()) || !readable {
                return Err(EPERM);
            }
            let offset = iova - m.range.start();
            let chunk = (left as u64).min(m.size() - offset) as usize;
            // SAFETY: `data[off..off + chunk]` is within the caller's buffer
            // of `count` bytes; `mm` is held by the mapping's owner.
            let copied = unsafe {
                bindings::vfio_rs_rw_mm(
                    m.owner.mm.as_raw().cast(),
                    (m.vaddr + offset) as c_ulong,
                    data.cast::<u8>().add(off).cast(),
                    chunk,
                    write,
                )
            };
            if copied < 0 {
                return Err(Error::from_errno(copied as c_int));
            }
            if copied == 0 {
                return Err(EFAULT);
            }
            if write && tracking {
                let mut p = iova & !(PAGE_SIZE as u64 - 1);
                while p < iova + chunk as u64 {
                    m.mark_dirty(p);
                    p += PAGE_SIZE as u64;
                }
            }
            iova += chunk as u64;
            off += chunk;
            left -= chunk;
        }
        Ok(())
    }
}
