// SPDX-License-Identifier: GPL-2.0

//! The `vfio_iommu_driver_ops` table and the entry points in it.
//!
//! The table is built here, from bindgen's `struct vfio_iommu_driver_ops`
//! (drivers/vfio/vfio.h), as Rust Binder builds its `file_operations`: the
//! compiler checks every entry point's signature against vfio core's.
//! [`Registration`] owns the table and keeps it registered while it lives.
//! Each entry point borrows the container, calls a safe method and turns
//! its `Result` into an errno. They keep their C names (`#[no_mangle]`)
//! for kprobes, perf and scripts/study, which name them.

use kernel::error::to_result;
use kernel::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;
use kernel::types::ForeignOwnable;
use kernel::types::Opaque;

use crate::bindings;
use crate::compat;
use crate::container::{self, Container};
use crate::debugfs;
use crate::domain;
use crate::emulated;
use crate::retire;
use crate::uapi::{self, IommuType};

/// The backend's registration with vfio core: the ops table and its entry
/// points, reachable by `VFIO_SET_IOMMU` from [`Registration::new`] until
/// drop. Dropping it waits for every container to be gone, then
/// unregisters and frees the table.
///
/// # Invariants
///
/// `ops` is registered with vfio core (`vfio_register_iommu_driver`) and
/// not written after that: vfio core reads it until it is unregistered.
pub(crate) struct Registration {
    ops: KBox<Opaque<bindings::vfio_iommu_driver_ops>>,
}

// SAFETY: no `&self` API; the only access is `drop`, which may run on any
// thread (vfio core's unregistration takes its own lock).
unsafe impl Send for Registration {}
// SAFETY: as for `Send`: there is nothing to share.
unsafe impl Sync for Registration {}

impl Registration {
    /// Builds the table with `module` as its owner (vfio core holds a
    /// reference on it while a container uses us) and registers it.
    ///
    /// # Safety
    ///
    /// `module` is this crate's module; what the entry points use (the
    /// debugfs registry, `debugfs::Handle`) exists before this call and
    /// until the registration is dropped: vfio core may call `open` before
    /// this returns.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, or what `vfio_register_iommu_driver` returns (`EINVAL`
    /// for an incomplete table or one registered already).
    pub(crate) unsafe fn new(module: &'static ThisModule) -> Result<Self> {
        let table = bindings::vfio_iommu_driver_ops {
            // vfio core only reads the name.
            name: kernel::c_str!("vfio-iommu-type1-rs")
                .as_char_ptr()
                .cast_mut(),
            // The kernel crate's `struct module` and ours are two bindgen
            // outputs of one C struct.
            owner: module.as_ptr().cast(),
            open: Some(vfio_rs_open),
            release: Some(vfio_rs_release),
            ioctl: Some(vfio_rs_ioctl),
            attach_group: Some(vfio_rs_attach_group),
            detach_group: Some(vfio_rs_detach_group),
            group_iommu_domain: Some(vfio_rs_group_iommu_domain),
            pin_pages: Some(vfio_rs_pin_pages),
            unpin_pages: Some(vfio_rs_unpin_pages),
            register_device: Some(vfio_rs_register_device),
            unregister_device: Some(vfio_rs_unregister_device),
            dma_rw: Some(vfio_rs_dma_rw),
        };
        let ops = KBox::new(Opaque::new(table), GFP_KERNEL)?;
        // `owner` keeps this module loaded while a container uses the table
        // (this function's contract).
        // SAFETY: `ops` is a complete table that stays at this address,
        // unwritten, until `drop` unregisters it.
        to_result(unsafe { bindings::vfio_register_iommu_driver(ops.get()) })?;
        pr_info!("registered VFIO IOMMU driver vfio-iommu-type1-rs\n");
        // INVARIANT: registered just above.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // vfio core has released every container (each held a reference on
        // this module: this runs at module exit); an ioctl may still hold
        // one, and vfio core reads `ops->ioctl` unlocked before it takes it
        // (retire.rs): wait for all of them before the table goes.
        retire::drain();
        // vfio core's other readers of the table hold its drivers lock,
        // which unregistering takes: the table may go when this returns.
        // SAFETY: registered in `new` (type invariant); the unlocked
        // reader has finished (above).
        unsafe { bindings::vfio_unregister_iommu_driver(self.ops.get()) };
        pr_info!("unregistered VFIO IOMMU driver vfio-iommu-type1-rs\n");
    }
}

/// Borrows the container behind `iommu_data`.
///
/// # Safety
///
/// `iommu_data` came from [`vfio_rs_open`] and vfio core's reference to it
/// has not been dropped yet (that happens two grace periods after
/// [`vfio_rs_release`]: retire.rs).
unsafe fn container<'a>(iommu_data: *mut c_void) -> ArcBorrow<'a, Container> {
    // SAFETY: by this function's contract, `iommu_data` is the foreign form
    // of an `Arc<Container>` that is still owned by vfio core.
    unsafe { <Arc<Container> as ForeignOwnable>::borrow(iommu_data) }
}

/// `open`: called by VFIO_SET_IOMMU with the requested type.
#[no_mangle]
extern "C" fn vfio_rs_open(arg: c_ulong) -> *mut c_void {
    let open = || -> Result<Arc<Container>> {
        let c = Container::new(IommuType::from_arg(arg)?)?;
        debugfs::register(&c)?;
        Ok(c)
    };
    match open() {
        Ok(c) => compat::into_foreign(c),
        Err(e) => e.to_ptr(),
    }
}

/// `release`: the container's last group is gone.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`] and vfio
/// core does not pass it to a callback it calls after this one (an ioctl
/// it called before may still run: retire.rs).
#[no_mangle]
unsafe extern "C" fn vfio_rs_release(iommu_data: *mut c_void) {
    // SAFETY: vfio core's reference is still there: it is dropped below,
    // two grace periods from now.
    let c = unsafe { container(iommu_data) };
    debugfs::unregister(&c);
    if let Some(retire) = c.release() {
        // SAFETY: vfio core owned `iommu_data` and never passes it again.
        unsafe { retire.retire(iommu_data) };
    }
}

/// Drops vfio core's reference to a released container, two Tasks RCU
/// grace periods after [`vfio_rs_release`] (c_shims/retire.c). Runs with
/// bottom halves off: the container was emptied by its release, so its
/// drop only frees memory.
///
/// # Safety
///
/// `iommu_data` is the one [`vfio_rs_release`] retired.
#[no_mangle]
unsafe extern "C" fn vfio_rs_container_put(iommu_data: *mut c_void) {
    // SAFETY: vfio core's reference, handed over by `vfio_rs_release`.
    drop(unsafe { <Arc<Container> as ForeignOwnable>::from_foreign(iommu_data) });
}

/// `ioctl`: VFIO_CHECK_EXTENSION (with a NULL `iommu_data` before
/// VFIO_SET_IOMMU) and every container ioctl after it.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` is NULL (before `VFIO_SET_IOMMU`) or
/// came from [`vfio_rs_open`]; `arg` is the user's ioctl argument (only
/// ever used as a user address). vfio core (6.12 to 7.3, unpatched) does
/// not keep [`vfio_rs_release`] from running during this call: its
/// reference then outlives the release by two grace periods (retire.rs).
#[no_mangle]
unsafe extern "C" fn vfio_rs_ioctl(iommu_data: *mut c_void, cmd: c_uint, arg: c_ulong) -> c_long {
    // Our own reference first: a concurrent release may drop vfio core's.
    let c: Option<Arc<Container>> = if iommu_data.is_null() {
        None
    } else {
        // SAFETY: from `vfio_rs_open`; vfio core's reference goes two grace
        // periods after release, and this task has not slept since vfio
        // core read it (retire.rs).
        Some(unsafe { container(iommu_data) }.into())
    };
    match container::ioctl(c.as_deref(), cmd, arg) {
        Ok(v) => v,
        // Widening: c_long is at least as wide as c_int.
        Err(e) => e.to_errno() as c_long,
    }
}

/// `attach_group`: a group joins the container.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`]; `group` is
/// a valid group vfio core keeps referenced until the matching detach.
#[no_mangle]
unsafe extern "C" fn vfio_rs_attach_group(
    iommu_data: *mut c_void,
    group: *mut bindings::iommu_group,
    group_type: bindings::vfio_group_type,
) -> c_int {
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: vfio core holds a reference on `group` until detach.
    let group = unsafe { domain::GroupRef::new(group) };
    match c.attach_group(group, uapi::GroupType::from_raw(group_type)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `group_iommu_domain`: the paging domain `group` is attached to
/// (`ERR_PTR(-ENODEV)` if none, `-EINVAL` for NULL arguments).
///
/// # Safety
///
/// vfio core's contract: non-NULL `iommu_data` came from [`vfio_rs_open`];
/// non-NULL `group` is referenced by vfio core for the call.
#[no_mangle]
unsafe extern "C" fn vfio_rs_group_iommu_domain(
    iommu_data: *mut c_void,
    group: *mut bindings::iommu_group,
) -> *mut bindings::iommu_domain {
    if iommu_data.is_null() || group.is_null() {
        return EINVAL.to_ptr();
    }
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: vfio core holds a reference on `group` while it asks.
    let group = unsafe { domain::GroupRef::new(group) };
    c.group_iommu_domain(group).unwrap_or_else(|e| e.to_ptr())
}

/// `detach_group`: a group leaves the container. Cannot fail.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`]; `group` is
/// still referenced by vfio core.
#[no_mangle]
unsafe extern "C" fn vfio_rs_detach_group(
    iommu_data: *mut c_void,
    group: *mut bindings::iommu_group,
) {
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: vfio core still holds its reference on `group`.
    let group = unsafe { domain::GroupRef::new(group) };
    c.detach_group(group);
}

/// `pin_pages`: an emulated device pins user pages by IOVA.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`]; `pages`
/// has room for `npage` entries (vfio core caps `npage` at
/// `VFIO_PIN_PAGES_MAX_ENTRIES`).
#[no_mangle]
unsafe extern "C" fn vfio_rs_pin_pages(
    iommu_data: *mut c_void,
    group: *mut bindings::iommu_group,
    user_iova: bindings::dma_addr_t,
    npage: c_int,
    prot: c_int,
    pages: *mut *mut bindings::page,
) -> c_int {
    let len = match usize::try_from(npage) {
        Ok(n) if n > 0 && !pages.is_null() && !iommu_data.is_null() && !group.is_null() => n,
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: `iommu_data` came from `vfio_rs_open` (this function's contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: `pages` is non-NULL with room for `npage` entries (contract).
    let pages = unsafe { core::slice::from_raw_parts_mut(pages, len) };
    // The C module uses `group` only to narrow the dirty scope of an
    // IOMMU-backed group that pins; see docs/design.md, "Not there yet".
    // `prot` is a bit mask: reinterpret its bits.
    match c.pin_pages(user_iova, prot as u32, pages) {
        // `n == npage`, so it fits.
        Ok(_) => npage,
        Err(e) => e.to_errno(),
    }
}

/// `unpin_pages`: drops what `pin_pages` took. Cannot fail.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`].
#[no_mangle]
unsafe extern "C" fn vfio_rs_unpin_pages(
    iommu_data: *mut c_void,
    user_iova: bindings::dma_addr_t,
    npage: c_int,
) {
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    c.unpin_pages(user_iova, npage);
}

/// `register_device`: an emulated device joins; it will hear of unmaps.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`]; `vdev` is a
/// valid device that stays valid until [`vfio_rs_unregister_device`].
#[no_mangle]
unsafe extern "C" fn vfio_rs_register_device(
    iommu_data: *mut c_void,
    vdev: *mut bindings::vfio_device,
) {
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: vfio core passes a registered, valid device.
    if let Some(d) = unsafe { emulated::devices::DeviceRef::new(vdev) } {
        c.devices.register(d);
    }
}

/// `unregister_device`: the device leaves (before vfio core frees it).
///
/// # Safety
///
/// vfio core's contract: as for [`vfio_rs_register_device`].
#[no_mangle]
unsafe extern "C" fn vfio_rs_unregister_device(
    iommu_data: *mut c_void,
    vdev: *mut bindings::vfio_device,
) {
    // SAFETY: `iommu_data` came from `vfio_rs_open` (vfio core contract).
    let c = unsafe { container(iommu_data) };
    // SAFETY: as in `vfio_rs_register_device`.
    if let Some(d) = unsafe { emulated::devices::DeviceRef::new(vdev) } {
        c.devices.unregister(d);
    }
}

/// `dma_rw`: an emulated device reads or writes user memory by IOVA.
///
/// # Safety
///
/// vfio core's contract: `iommu_data` came from [`vfio_rs_open`]; `data`
/// points at `count` bytes the caller owns for the call (vfio core
/// refuses a NULL `data` or a zero `count`).
#[no_mangle]
unsafe extern "C" fn vfio_rs_dma_rw(
    iommu_data: *mut c_void,
    user_iova: bindings::dma_addr_t,
    data: *mut c_void,
    count: usize,
    write: bool,
) -> c_int {
    if data.is_null() || count == 0 {
        return EINVAL.to_errno();
    }
    // SAFETY: `iommu_data` came from `vfio_rs_open` (this function's contract).
    let c = unsafe { container(iommu_data) };
    let buf = if write {
        // SAFETY: `data` holds `count` readable bytes (contract).
        emulated::DmaBuf::Write(unsafe { core::slice::from_raw_parts(data.cast(), count) })
    } else {
        // SAFETY: `data` holds `count` bytes we may write (contract).
        emulated::DmaBuf::Read(unsafe { core::slice::from_raw_parts_mut(data.cast(), count) })
    };
    match c.dma_rw(user_iova, buf) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
