// SPDX-License-Identifier: GPL-2.0

//! How long a container lives after `release`.
//!
//! vfio core (Linux 6.12 to 7.3, without patches/linux/0001) calls our
//! `ioctl` with no lock that `release` waits for, so `release` can run
//! under an ioctl of ours. Three things keep that safe:
//!
//! 1. every ioctl holds its own reference to the container (ops.rs), taken
//!    before anything else;
//! 2. `release` tears the container down under its lock and marks it
//!    released, after which a MAP answers `EINVAL` as vfio core does for a
//!    container without a backend, so nothing is pinned again;
//! 3. vfio core's own reference is dropped two Tasks RCU grace periods
//!    after `release` ([`Retire`]): a task that has read `iommu_data` in
//!    vfio core but not yet taken its reference cannot have passed a
//!    voluntary context switch, so by then it holds one; two, because vfio
//!    core clears `iommu_data` only after `release` returns
//!    (c_shims/retire.c).
//!
//! Module exit waits for every container to be freed ([`Live`]) and for
//! one more grace period, for the instructions an ioctl runs after its
//! last reference.

use core::ptr::NonNull;

use kernel::ffi::c_void;
use kernel::prelude::*;

use crate::bindings;

/// vfio core's reference to a container, to be dropped two grace periods
/// after `release`.
///
/// # Invariants
///
/// `0` is an allocation from `vfio_rs_retire_alloc`, owned by this value.
pub(crate) struct Retire(NonNull<bindings::vfio_rs_retire>);

// SAFETY: the allocation is plain memory, used by one owner at a time.
unsafe impl Send for Retire {}

impl Retire {
    /// Allocates the slot at `open`, so that `release` cannot fail.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no preconditions.
        let p = unsafe { bindings::vfio_rs_retire_alloc() };
        // INVARIANT: a fresh allocation we own.
        NonNull::new(p).map(Self).ok_or(ENOMEM)
    }

    /// Drops vfio core's reference `iommu_data` two grace periods from now.
    ///
    /// # Safety
    ///
    /// `iommu_data` is the foreign form of an `Arc<Container>` that vfio
    /// core owned and will not use again; ownership passes to the callback.
    pub(crate) unsafe fn retire(self, iommu_data: *mut c_void) {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        // SAFETY: `p` is ours (type invariant) and passes to the callback,
        // which frees it; `iommu_data` as this function's contract says.
        unsafe { bindings::vfio_rs_retire_queue(p, iommu_data) };
    }
}

impl Drop for Retire {
    fn drop(&mut self) {
        // SAFETY: never retired (that forgets `self`), so still ours.
        unsafe { bindings::vfio_rs_retire_free(self.0.as_ptr()) };
    }
}

/// Counts one container until it is freed: the last field of `Container`,
/// so its drop is the last thing a container's drop does.
pub(crate) struct Live(());

impl Live {
    pub(crate) fn new() -> Self {
        // SAFETY: no preconditions.
        unsafe { bindings::vfio_rs_live_inc() };
        Live(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: paired with the increment in `new`.
        unsafe { bindings::vfio_rs_live_dec() };
    }
}

/// Module exit: waits until every container is freed and no ioctl of ours
/// still runs (c_shims/retire.c).
pub(crate) fn drain() {
    // SAFETY: called from module exit, after vfio core has dropped every
    // module reference (no new container can be opened).
    unsafe { bindings::vfio_rs_retire_drain() };
}

/// Whether item 3 above covers a task preempted in vfio core (false on a
/// preemptible kernel without Tasks RCU; logged at load).
pub(crate) fn covers_preemption() -> bool {
    // SAFETY: no preconditions.
    unsafe { bindings::vfio_rs_retire_covers_preemption() }
}
