// SPDX-License-Identifier: GPL-2.0

//! The emulated devices registered with a container (`register_device`):
//! they are told, through their `dma_unmap` callback, before a mapping
//! they may hold pages of goes away.
//!
//! vfio core's `register_device` cannot report failure, so registering must
//! not fail: as the C module, the list is linked through the node each
//! `vfio_device` keeps for its IOMMU backend (`iommu_entry`), and nothing
//! is allocated.
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
use kernel::types::Opaque;

use crate::bindings;

/// A device being registered or unregistered.
///
/// # Invariants
///
/// `ptr` is a valid `vfio_device` whose ops have `dma_unmap`; vfio core
/// registers it with one container, unregisters it once, in that order,
/// and frees it only after.
#[derive(Clone, Copy)]
pub(crate) struct DeviceRef {
    ptr: *mut bindings::vfio_device,
}

impl DeviceRef {
    /// The device, if it has a `dma_unmap` callback (only those are told).
    ///
    /// # Safety
    ///
    /// `ptr` is a valid `vfio_device` that vfio core is registering with
    /// this container or unregistering from it (it pairs the two) and that
    /// stays valid until unregistered.
    pub(crate) unsafe fn new(ptr: *mut bindings::vfio_device) -> Option<Self> {
        // SAFETY: `ptr` is valid (caller's contract).
        let has = unsafe { bindings::vfio_rs_device_has_dma_unmap(ptr) };
        // INVARIANT: by the caller's contract, checked `dma_unmap`.
        has.then_some(Self { ptr })
    }
}

/// The head of the list of registered devices.
///
/// # Invariants
///
/// `head` is an initialised list head, changed only under the `Mutex` this
/// lives in; the devices on it, linked by `iommu_entry`, are those with
/// `dma_unmap` registered and not yet unregistered (hence valid).
#[pin_data]
struct DeviceList {
    #[pin]
    head: Opaque<bindings::list_head>,
}

// SAFETY: the list is only reached with its mutex held, from any thread;
// the devices on it stay valid until unregistered (type invariant).
unsafe impl Send for DeviceList {}

impl DeviceList {
    fn new() -> impl PinInit<Self> {
        // INVARIANT: initialised empty.
        pin_init!(Self {
            // SAFETY: `h` is the uninitialised head, valid for writes.
            head <- Opaque::ffi_init(|h| unsafe { bindings::vfio_rs_device_list_init(h) }),
        })
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
    list: Mutex<DeviceList>,
    count: AtomicUsize,
}

impl Devices {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(DeviceList::new(), "Devices::list"),
            count: AtomicUsize::new(0),
        })
    }

    /// Adds `dev`. Cannot fail: its list node is its own.
    pub(crate) fn register(&self, dev: DeviceRef) {
        let list = self.list.lock();
        // SAFETY: `head` is initialised and locked; `dev` is valid and not
        // on a list, vfio core registering it once (type invariants).
        unsafe { bindings::vfio_rs_device_list_add(list.head.get(), dev.ptr) };
        // INVARIANT: one more, under the lock.
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unregister(&self, dev: DeviceRef) {
        let _list = self.list.lock();
        // SAFETY: `dev` was registered here, and is unregistered once
        // (type invariant); the list is locked.
        unsafe { bindings::vfio_rs_device_list_del(dev.ptr) };
        // INVARIANT: one fewer, under the lock.
        self.count.fetch_sub(1, Ordering::Relaxed);
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
        let mut dev = core::ptr::null_mut();
        loop {
            // SAFETY: the list is initialised and locked, so `dev` (null or
            // on it) stays on it: unregistering waits for the lock.
            dev = unsafe { bindings::vfio_rs_device_list_next(list.head.get(), dev) };
            if dev.is_null() {
                return;
            }
            // SAFETY: on the list, so registered, valid, with `dma_unmap`.
            unsafe { bindings::vfio_rs_device_dma_unmap(dev, iova, size) };
        }
    }
}
