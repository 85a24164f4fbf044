// SPDX-License-Identifier: GPL-2.0

//! What older kernels' Rust crate lacks (Linux 6.12), behind the cfgs that
//! Kbuild's feature probes set. On 7.2 and 7.3 every item here is the
//! kernel's own.

use kernel::prelude::*;

/// `EOVERFLOW` (a constant in the kernel crate from 6.13 on).
#[cfg(vfio_rs_eoverflow)]
pub(crate) fn eoverflow() -> Error {
    EOVERFLOW
}

/// `EOVERFLOW` (a constant in the kernel crate from 6.13 on).
#[cfg(not(vfio_rs_eoverflow))]
pub(crate) fn eoverflow() -> Error {
    // `EOVERFLOW` (75) fits in c_int.
    Error::from_errno(-(crate::bindings::EOVERFLOW as kernel::ffi::c_int))
}

/// Linux 6.12's kernel crate has no debugfs: no view of the containers.
#[cfg(not(vfio_rs_kdebugfs))]
pub(crate) mod no_debugfs {
    use kernel::prelude::*;
    use kernel::sync::Arc;

    use crate::container::Container;

    pub(crate) struct Handle;

    impl Handle {
        /// # Safety
        ///
        /// None (the same signature as the debugfs view's).
        pub(crate) unsafe fn new() -> Result<Self> {
            Ok(Self)
        }
    }

    pub(crate) fn register(_c: &Arc<Container>) -> Result {
        Ok(())
    }

    pub(crate) fn unregister(_c: &Container) {}
}

/// `pr_warn_once!` (in the kernel crate from 6.13 on).
#[cfg(not(vfio_rs_pr_once))]
macro_rules! pr_warn_once {
    ($($arg:tt)*) => {{
        static ONCE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if !ONCE.swap(true, core::sync::atomic::Ordering::Relaxed) {
            kernel::pr_warn!($($arg)*);
        }
    }};
}
#[cfg(vfio_rs_pr_once)]
pub(crate) use kernel::pr_warn_once;
#[cfg(not(vfio_rs_pr_once))]
pub(crate) use pr_warn_once;

#[cfg(vfio_rs_transmute)]
pub(crate) use kernel::transmute::{AsBytes, FromBytes};
#[cfg(not(vfio_rs_transmute))]
pub(crate) use kernel::types::{AsBytes, FromBytes};

/// The bytes of `v` (`AsBytes::as_bytes` from 6.13 on).
#[cfg(vfio_rs_transmute)]
pub(crate) fn as_bytes<T: AsBytes + ?Sized>(v: &T) -> &[u8] {
    v.as_bytes()
}

/// The bytes of `v` (`AsBytes::as_bytes` from 6.13 on).
#[cfg(not(vfio_rs_transmute))]
pub(crate) fn as_bytes<T: AsBytes + ?Sized>(v: &T) -> &[u8] {
    // SAFETY: `AsBytes` types have no padding or uninitialised bytes, so
    // all `size_of_val(v)` bytes behind `v` are initialised for its lifetime.
    unsafe {
        core::slice::from_raw_parts(
            core::ptr::from_ref(v).cast::<u8>(),
            core::mem::size_of_val(v),
        )
    }
}

/// A user-space address (`UserPtr` is a type of its own from 6.13 on).
#[cfg(vfio_rs_userptr_struct)]
pub(crate) fn user_ptr(addr: usize) -> kernel::uaccess::UserPtr {
    kernel::uaccess::UserPtr::from_addr(addr)
}

/// A user-space address (`UserPtr` is a type of its own from 6.13 on).
#[cfg(not(vfio_rs_userptr_struct))]
pub(crate) fn user_ptr(addr: usize) -> kernel::uaccess::UserPtr {
    addr
}

/// `ForeignOwnable::into_foreign`, as the `*mut` vfio core stores.
#[cfg(vfio_rs_foreign_mut)]
pub(crate) fn into_foreign<T: kernel::types::ForeignOwnable>(v: T) -> *mut kernel::ffi::c_void {
    v.into_foreign()
}

/// `ForeignOwnable::into_foreign`, as the `*mut` vfio core stores (6.12's
/// returns `*const`).
#[cfg(not(vfio_rs_foreign_mut))]
pub(crate) fn into_foreign<T: kernel::types::ForeignOwnable>(v: T) -> *mut kernel::ffi::c_void {
    v.into_foreign().cast_mut()
}
