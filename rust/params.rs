// SPDX-License-Identifier: GPL-2.0

//! The module parameters, which live in `c_shims/params.c` so that they are
//! in sysfs and writable at run time like the C module's.

use crate::bindings;

/// `allow_unsafe_interrupts`: attach groups without isolated MSI.
pub(crate) fn allow_unsafe_interrupts() -> bool {
    // SAFETY: reads a module-lifetime variable with READ_ONCE.
    unsafe { bindings::vfio_rs_param_allow_unsafe_interrupts() }
}

/// `disable_hugepages`: map every page with its own IOMMU entry.
pub(crate) fn disable_hugepages() -> bool {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_param_disable_hugepages() }
}

/// `dma_entry_limit`: mappings a container may hold, read at open.
pub(crate) fn dma_entry_limit() -> u32 {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_param_dma_entry_limit() }
}

/// `verbose`: log attach, merge, replay and detach.
pub(crate) fn verbose() -> bool {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_param_verbose() }
}
