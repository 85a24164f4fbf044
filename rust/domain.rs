// SPDX-License-Identifier: GPL-2.0

//! `Domain`: one paging `iommu_domain` and the groups attached to it.

use core::ptr::NonNull;

use kernel::error::from_err_ptr;
use kernel::error::to_result;
use kernel::prelude::*;

use crate::bindings;

/// A borrowed `struct iommu_group`.
///
/// # Invariants
///
/// `ptr` is a valid group for as long as vfio core keeps it attached to the
/// container (it holds a reference from attach to detach).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupRef {
    ptr: NonNull<bindings::iommu_group>,
}

impl GroupRef {
    /// # Safety
    ///
    /// `ptr` is a valid `iommu_group` that vfio core keeps referenced at
    /// least until the matching `detach_group`.
    pub(crate) unsafe fn new(ptr: *mut bindings::iommu_group) -> Self {
        // SAFETY: vfio core never passes a NULL group (caller's contract).
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // INVARIANT: by the caller's contract.
        Self { ptr }
    }

    /// The group number, as in /dev/vfio/N.
    pub(crate) fn id(self) -> i32 {
        // SAFETY: `ptr` is valid (type invariant).
        unsafe { bindings::iommu_group_id(self.ptr.as_ptr()) }
    }

    /// The first device of the group, used to pick the IOMMU instance.
    fn first_device(self) -> Result<NonNull<bindings::device>> {
        extern "C" fn first(dev: *mut bindings::device, data: *mut c_void) -> c_int {
            // SAFETY: `data` is the `*mut device` slot passed below.
            unsafe { *data.cast::<*mut bindings::device>() = dev };
            1
        }
        let mut dev: *mut bindings::device = core::ptr::null_mut();
        // SAFETY: `ptr` is valid (type invariant); `first` only writes `dev`,
        // which outlives the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut dev).cast(),
                Some(first),
            )
        };
        NonNull::new(dev).ok_or(ENODEV)
    }
}

// SAFETY: a `GroupRef` is only a handle; the iommu core serialises operations
// on the group itself, so it may move between threads.
unsafe impl Send for GroupRef {}

/// A paging (UNMANAGED) IOMMU domain owned by one container.
///
/// # Invariants
///
/// `raw` was allocated by `iommu_paging_domain_alloc_flags` and is freed only
/// by `drop`; every group in `groups` is attached to it.
pub(crate) struct Domain {
    raw: NonNull<bindings::iommu_domain>,
    groups: KVec<GroupRef>,
    enforce_cache_coherency: bool,
}

// SAFETY: the iommu core allows using a domain from any thread; `Domain` is
// only reached through the container's mutex.
unsafe impl Send for Domain {}

impl Domain {
    /// Allocates a paging domain for `group`'s IOMMU and attaches `group`.
    ///
    /// # Errors
    ///
    /// The iommu core's errno; nothing is left allocated on error.
    pub(crate) fn attach_new(group: GroupRef) -> Result<Self> {
        let dev = group.first_device()?;
        let mut groups = KVec::with_capacity(1, GFP_KERNEL)?;
        // SAFETY: `dev` belongs to `group`, which vfio core keeps alive.
        let raw =
            from_err_ptr(unsafe { bindings::iommu_paging_domain_alloc_flags(dev.as_ptr(), 0) })?;
        // SAFETY: `from_err_ptr` returned a valid, non-error pointer.
        let raw = unsafe { NonNull::new_unchecked(raw) };
        // SAFETY: `raw` and `group` are valid.
        let ret = unsafe { bindings::iommu_attach_group(raw.as_ptr(), group.ptr.as_ptr()) };
        if let Err(e) = to_result(ret) {
            // SAFETY: `raw` is ours and has no group attached.
            unsafe { bindings::iommu_domain_free(raw.as_ptr()) };
            return Err(e);
        }
        // SAFETY: `raw` is a valid domain.
        let enforce_cache_coherency =
            unsafe { bindings::vfio_rs_domain_enforce_cache_coherency(raw.as_ptr()) };
        groups.push(group, GFP_KERNEL)?;
        // INVARIANT: `raw` is freshly allocated and `group` is attached.
        Ok(Self {
            raw,
            groups,
            enforce_cache_coherency,
        })
    }

    pub(crate) fn has_group(&self, group: GroupRef) -> bool {
        self.groups.contains(&group)
    }

    /// Whether the domain blocks DMA that would bypass IOMMU_CACHE.
    pub(crate) fn enforce_cache_coherency(&self) -> bool {
        self.enforce_cache_coherency
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        for g in self.groups.iter() {
            // SAFETY: `g` is attached to `raw` (type invariant).
            unsafe { bindings::iommu_detach_group(self.raw.as_ptr(), g.ptr.as_ptr()) };
        }
        // SAFETY: no group is attached any more; `raw` is ours.
        unsafe { bindings::iommu_domain_free(self.raw.as_ptr()) };
    }
}
