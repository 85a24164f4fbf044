// SPDX-License-Identifier: GPL-2.0

//! vfio-type1-rs: a Rust implementation of the VFIO type1 IOMMU backend.
//!
//! The crate root holds the module and the list of files; the
//! `vfio_iommu_driver_ops` table and its entry points live in `ops.rs`.
//!
//! Values from user space and from drivers are untrusted: arithmetic and
//! indexing on them must not panic (a panic is a kernel crash), so clippy
//! rejects unchecked arithmetic and indexing anywhere in the crate; each
//! exception says why it cannot fail.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use kernel::prelude::*;

mod bindings;
mod compat;
mod container;
mod debugfs;
mod dirty;
mod domain;
mod emulated;
mod iova;
mod mapping;
mod ops;
mod params;
mod pin;
mod retire;
mod runs;
mod trace;
mod uapi;

module! {
    type: VfioType1Rs,
    name: "vfio_iommu_type1_rs",
    description: "VFIO type1 IOMMU backend, in Rust",
    license: "GPL v2",
}

/// # Invariants
///
/// Fields drop in order: the registration (which waits for every container
/// to be gone) before the debugfs view the entry points use.
struct VfioType1Rs {
    _registration: ops::Registration,
    _debugfs: debugfs::Handle,
}

impl kernel::Module for VfioType1Rs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: called once, before any container exists.
        let view = unsafe { debugfs::Handle::new() }?;
        // SAFETY: `module` is ours (`init`'s argument); the debugfs
        // registry exists from here and drops after the registration.
        let registration = unsafe { ops::Registration::new(module) }?;
        if !retire::covers_preemption() {
            pr_warn!("preemptible kernel without Tasks RCU: an ioctl racing the last group's detach may use a freed container (see patches/linux)\n");
        }
        Ok(VfioType1Rs {
            _registration: registration,
            _debugfs: view,
        })
    }
}
