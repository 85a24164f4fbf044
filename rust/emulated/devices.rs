// SPDX-License-Identifier: GPL-2.0

//! The emulated devices registered with a container (`register_device`):
//! they are told, through their `dma_unmap` callback, before a mapping
//! they may hold pages of goes away.
//!
//! Lock order: `Devices::list`, then the driver's own lock (its
//! `dma_unmap` runs with `list` held and `Container::inner` released, and
//! answers with `unpin_pages`), then `Container::inner`. Drivers call
//! `pin_pages` holding the lock their `dma_unmap` takes, so `pin_pages`
//! reads the lock-free `count` and never waits for `list`.

use core::sync::atomic::AtomicUsize;
use core::sync::atomic::Ordering;

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::bindings;

/// A registered emulated device.
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
    /// The device, if it has a `dma_unmap` callback (only those are told).
    ///
    /// # Safety
    ///
    /// `ptr` is a valid `vfio_device` being registered with this container
    /// and stays valid until unregistered.
    pub(crate) unsafe fn new(ptr: *mut bindings::vfio_device) -> Option<Self> {
        // SAFETY: `ptr` is valid (caller's contract).
        let has = unsafe { bindings::vfio_rs_device_has_dma_unmap(ptr) };
        // INVARIANT: by the caller's contract, checked `dma_unmap`.
        has.then_some(Self { ptr })
    }

    fn dma_unmap(self, iova: u64, size: u64) {
        // SAFETY: `ptr` is registered (type invariant).
        unsafe { bindings::vfio_rs_device_dma_unmap(self.ptr, iova, size) };
    }
}

/// The devices to tell about unmaps.
///
/// # Invariants
///
/// `count` is the length of `list`, written only with `list` locked.
#[pin_data]
pub(crate) struct Devices {
    #[pin]
    list: Mutex<KVec<DeviceRef>>,
    count: AtomicUsize,
}

impl Devices {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(KVec::new(), "Devices::list"),
            count: AtomicUsize::new(0),
        })
    }

    /// Adds `dev`. On allocation failure it is only not told about unmaps
    /// (the C module's list cannot fail; nothing here can report it).
    pub(crate) fn register(&self, dev: DeviceRef) {
        let mut list = self.list.lock();
        if list.push(dev, GFP_KERNEL).is_ok() {
            self.count.store(list.len(), Ordering::Relaxed);
        }
    }

    pub(crate) fn unregister(&self, dev: DeviceRef) {
        let mut list = self.list.lock();
        list.retain(|d| *d != dev);
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// How many devices are registered, without waiting for `list`.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Calls every device's `dma_unmap` for `[iova, iova + size)`. Called
    /// without `Container::inner` held: the drivers answer with
    /// `unpin_pages`.
    pub(crate) fn notify_unmap(&self, iova: u64, size: u64) {
        let list = self.list.lock();
        for d in list.iter() {
            d.dma_unmap(iova, size);
        }
    }
}
