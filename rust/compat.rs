// SPDX-License-Identifier: GPL-2.0

//! What older kernels' Rust crate lacks (Linux 6.12), behind the cfgs that
//! Kbuild's feature probes set. On 7.2 and 7.3 every item here is the
//! kernel's own. One gap is filled elsewhere: 6.12 has no
//! `kernel::debugfs`, `kernel::seq_file` or `global_lock!`, so the debugfs
//! view's registry and file for it are in rust/debugfs.rs (module `shim`)
//! and c_shims/debugfs.c.

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
    Error::from_errno(0 - (crate::bindings::EOVERFLOW as kernel::ffi::c_int))
}

/// What the reference C module answers for a user range that runs past
/// 2^64: `EOVERFLOW` from Linux 7.2 on, `EINVAL` before (6.12's type1
/// predates its overflow checks). Kbuild probes the C module's source.
pub(crate) fn range_overflow() -> Error {
    if cfg!(vfio_rs_c_eoverflow) {
        eoverflow()
    } else {
        EINVAL
    }
}

/// `iommu_enable_nesting()` for the retired nesting type (6), which only
/// Linux 6.12's C module still honours (`vfio_rs_c_nesting`); later kernels
/// treat type 6 as v2 and never ask for this.
///
/// # Errors
///
/// The iommu driver's errno (`EINVAL` where it has no nesting).
pub(crate) fn enable_nesting(domain: *mut crate::bindings::iommu_domain) -> Result {
    #[cfg(vfio_rs_c_nesting)]
    {
        // SAFETY: the caller passes a freshly allocated paging domain with
        // no group attached, as the C module does.
        kernel::error::to_result(unsafe { crate::bindings::iommu_enable_nesting(domain) })
    }
    #[cfg(not(vfio_rs_c_nesting))]
    {
        let _ = domain;
        Err(EINVAL)
    }
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

/// What `Vec` gains in 6.13 and the crate uses: `resize`, `truncate`,
/// `remove`, `retain`, `shrink_to`, with the same signatures (`remove`'s
/// error is this module's). Files that call them import this trait under
/// `cfg(not(vfio_rs_vec_ext))`.
#[cfg(not(vfio_rs_vec_ext))]
pub(crate) trait VecExt<T> {
    fn resize(&mut self, new_len: usize, value: T, flags: Flags) -> Result<(), AllocError>
    where
        T: Clone;
    fn truncate(&mut self, len: usize);
    fn remove(&mut self, i: usize) -> Result<T, RemoveError>;
    fn retain(&mut self, f: impl FnMut(&mut T) -> bool);
    fn shrink_to(&mut self, min_capacity: usize, flags: Flags) -> Result<(), AllocError>;
}

#[cfg(not(vfio_rs_vec_ext))]
use kernel::alloc::{kvec::Vec, AllocError, Allocator, Flags};

/// `remove` of an index past the end.
#[cfg(not(vfio_rs_vec_ext))]
#[derive(Debug)]
pub(crate) struct RemoveError;

#[cfg(not(vfio_rs_vec_ext))]
impl<T, A: Allocator> VecExt<T> for Vec<T, A> {
    fn resize(&mut self, new_len: usize, value: T, flags: Flags) -> Result<(), AllocError>
    where
        T: Clone,
    {
        match new_len.checked_sub(self.len()) {
            Some(more) => self.extend_with(more, value, flags),
            None => {
                self.truncate(new_len);
                Ok(())
            }
        }
    }

    fn truncate(&mut self, len: usize) {
        let Some(dropped) = self.len().checked_sub(len).filter(|n| *n > 0) else {
            return;
        };
        // SAFETY: `len < self.len()`: the elements `len..old` are initialised; the
        // length is lowered first, so they are dropped exactly once.
        unsafe {
            self.set_len(len);
            let tail = core::ptr::slice_from_raw_parts_mut(self.as_mut_ptr().add(len), dropped);
            core::ptr::drop_in_place(tail);
        }
    }

    fn remove(&mut self, i: usize) -> Result<T, RemoveError> {
        let len = self.len();
        // `after`: the elements behind `i`; `None` if `i` is past the end.
        let Some(after) = len.checked_sub(i).and_then(|n| n.checked_sub(1)) else {
            return Err(RemoveError);
        };
        // SAFETY: `i < len`: element `i` is read out, the `after` elements
        // behind it move down by one, and the length shrinks by one (to
        // `i + after`), so every element stays owned exactly once.
        unsafe {
            let p = self.as_mut_ptr().add(i);
            let v = core::ptr::read(p);
            core::ptr::copy(p.add(1), p, after);
            self.set_len(i.wrapping_add(after));
            Ok(v)
        }
    }

    fn retain(&mut self, mut f: impl FnMut(&mut T) -> bool) {
        let s = self.as_mut_slice();
        let mut kept = 0usize;
        for i in 0..s.len() {
            let keep = s.get_mut(i).is_some_and(&mut f);
            if keep {
                s.swap(kept, i);
                kept = kept.saturating_add(1);
            }
        }
        self.truncate(kept);
    }

    fn shrink_to(&mut self, min_capacity: usize, flags: Flags) -> Result<(), AllocError> {
        let target = self.len().max(min_capacity);
        if self.capacity() <= target {
            return Ok(());
        }
        let mut new = Vec::<T, A>::with_capacity(target, flags)?;
        // SAFETY: `new` has room for `len` elements; they move over and
        // `self` forgets them before it is replaced (and freed).
        unsafe {
            let len = self.len();
            core::ptr::copy_nonoverlapping(self.as_ptr(), new.as_mut_ptr(), len);
            new.set_len(len);
            self.set_len(0);
        }
        *self = new;
        Ok(())
    }
}

#[cfg(vfio_rs_kmm)]
pub(crate) use kmm::{current_mm, current_mm_and_leader, mm_raw, task_raw, MmRef, TaskRef};
#[cfg(not(vfio_rs_kmm))]
pub(crate) use no_kmm::{current_mm, current_mm_and_leader, mm_raw, task_raw, MmRef, TaskRef};

/// The owner's mm and task through the kernel crate (6.13 on).
#[cfg(vfio_rs_kmm)]
mod kmm {
    use kernel::mm::Mm;
    use kernel::sync::aref::ARef;
    use kernel::task::Task;

    use crate::bindings;

    pub(crate) type MmRef = ARef<Mm>;
    pub(crate) type TaskRef = ARef<Task>;

    /// The calling process's mm (if it has one with users) and its thread
    /// group leader.
    pub(crate) fn current_mm_and_leader() -> Option<(MmRef, TaskRef)> {
        let cur = kernel::current!();
        let mm = cur.mm().map(|mm| ARef::<Mm>::from(&**mm))?;
        Some((mm, ARef::from(cur.group_leader())))
    }

    /// The calling process's mm, to compare with (null without one).
    pub(crate) fn current_mm() -> *mut bindings::mm_struct {
        let cur = kernel::current!();
        cur.mm()
            .map_or(core::ptr::null_mut(), |mm| (**mm).as_raw().cast())
    }

    pub(crate) fn mm_raw(mm: &MmRef) -> *mut bindings::mm_struct {
        mm.as_raw().cast()
    }

    pub(crate) fn task_raw(task: &TaskRef) -> *mut bindings::task_struct {
        task.as_ptr().cast()
    }
}

/// The owner's mm and task through C shims (Linux 6.12).
#[cfg(not(vfio_rs_kmm))]
mod no_kmm {
    use core::ptr::NonNull;

    use crate::bindings;

    /// A reference on an mm (`mmgrab`).
    ///
    /// # Invariants
    ///
    /// `0` holds one `mmgrab` reference, dropped once by `drop`.
    pub(crate) struct MmRef(NonNull<bindings::mm_struct>);

    /// A reference on a task (`get_task_struct`).
    ///
    /// # Invariants
    ///
    /// `0` holds one task reference, dropped once by `drop`.
    pub(crate) struct TaskRef(NonNull<bindings::task_struct>);

    // SAFETY: references on an mm and a task may be used and dropped from
    // any thread.
    unsafe impl Send for MmRef {}
    // SAFETY: as above; shared use only reads the pointer.
    unsafe impl Sync for MmRef {}
    // SAFETY: as for `MmRef`.
    unsafe impl Send for TaskRef {}
    // SAFETY: as for `MmRef`.
    unsafe impl Sync for TaskRef {}

    impl Clone for MmRef {
        fn clone(&self) -> Self {
            // SAFETY: `self.0` is a live mm (type invariant).
            unsafe { bindings::vfio_rs_mm_grab(self.0.as_ptr()) };
            // INVARIANT: the reference just taken.
            Self(self.0)
        }
    }

    impl Drop for MmRef {
        fn drop(&mut self) {
            // SAFETY: our reference (type invariant), given back once.
            unsafe { bindings::vfio_rs_mm_drop(self.0.as_ptr()) };
        }
    }

    impl Clone for TaskRef {
        fn clone(&self) -> Self {
            // SAFETY: `self.0` is a live task (type invariant).
            unsafe { bindings::vfio_rs_task_get(self.0.as_ptr()) };
            // INVARIANT: the reference just taken.
            Self(self.0)
        }
    }

    impl Drop for TaskRef {
        fn drop(&mut self) {
            // SAFETY: our reference (type invariant), given back once.
            unsafe { bindings::vfio_rs_task_put(self.0.as_ptr()) };
        }
    }

    /// The calling process's mm (if it has one) and its thread group leader.
    pub(crate) fn current_mm_and_leader() -> Option<(MmRef, TaskRef)> {
        // SAFETY: no preconditions; a non-NULL result carries a reference.
        let mm = NonNull::new(unsafe { bindings::vfio_rs_mm_grab_current() })?;
        // INVARIANT: the references the shims took.
        let mm = MmRef(mm);
        // SAFETY: no preconditions; the result carries a reference.
        let task = NonNull::new(unsafe { bindings::vfio_rs_task_get_leader() })?;
        Some((mm, TaskRef(task)))
    }

    /// The calling process's mm, to compare with (null without one).
    pub(crate) fn current_mm() -> *mut bindings::mm_struct {
        // SAFETY: no preconditions; a non-NULL result carries a reference,
        // dropped at once (current's mm outlives this call anyway).
        let mm = unsafe { bindings::vfio_rs_mm_grab_current() };
        if !mm.is_null() {
            // SAFETY: the reference just taken.
            unsafe { bindings::vfio_rs_mm_drop(mm) };
        }
        mm
    }

    pub(crate) fn mm_raw(mm: &MmRef) -> *mut bindings::mm_struct {
        mm.0.as_ptr()
    }

    pub(crate) fn task_raw(task: &TaskRef) -> *mut bindings::task_struct {
        task.0.as_ptr()
    }
}
