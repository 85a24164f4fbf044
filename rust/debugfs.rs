// SPDX-License-Identifier: GPL-2.0

//! A debugfs view of every container, for people studying how groups end
//! up on domains: /sys/kernel/debug/vfio_iommu_type1_rs/containers.
//!
//! Lock order: `CONTAINERS`, then `Container::inner` (while printing).

use core::fmt;

use kernel::debugfs::Dir;
use kernel::debugfs::File;
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::container::Container;
use crate::domain::Domain;
use crate::mapping::Mapping;

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initializer, before any use.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<KVec<Arc<Container>>> = KVec::new();
}

/// The debugfs directory and its file, for as long as the module is loaded.
pub(crate) struct Handle {
    // Dropped in declaration order: the file before its directory.
    _view: Pin<KBox<File<View>>>,
    _dir: Dir,
}

impl Handle {
    /// Creates /sys/kernel/debug/vfio_iommu_type1_rs/containers.
    ///
    /// # Safety
    ///
    /// Called once, before any container exists.
    pub(crate) unsafe fn new() -> Result<Self> {
        // SAFETY: by this function's contract, the first and only call.
        unsafe { CONTAINERS.init() };
        let dir = Dir::new(c"vfio_iommu_type1_rs");
        let view = KBox::pin_init(dir.read_only_file(c"containers", View), GFP_KERNEL)?;
        Ok(Self {
            _view: view,
            _dir: dir,
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Statics are never dropped: free the (empty) registry's buffer.
        drop(core::mem::take(&mut *CONTAINERS.lock()));
    }
}

/// Lists `c` in the view.
///
/// # Errors
///
/// `ENOMEM`.
pub(crate) fn register(c: &Arc<Container>) -> Result {
    CONTAINERS.lock().push(c.clone(), GFP_KERNEL)?;
    Ok(())
}

/// Removes `c` from the view.
pub(crate) fn unregister(c: &Container) {
    let removed = {
        let mut list = CONTAINERS.lock();
        list.iter()
            .position(|x| core::ptr::eq(&**x, c))
            .map(|i| list.remove(i))
    };
    // Dropped outside the lock: this may be the last reference.
    drop(removed);
}

/// The `containers` file.
pub(crate) struct View;

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = CONTAINERS.lock();
        writeln!(f, "{} containers", list.len())?;
        for c in list.iter() {
            describe(c, f)?;
        }
        Ok(())
    }
}

/// Writes `c`'s topology: domains and their groups and devices, emulated
/// groups, mappings.
fn describe(c: &Container, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ndev = c.devices.count();
    let inner = c.inner.lock();
    writeln!(
        f,
        "container {} ({}): {} domains, {} mappings, dma_avail {}, iova_pgsizes {:#x}",
        c.id(),
        if c.v2() { "type1v2" } else { "type1" },
        inner.domains.len(),
        inner.mappings.len(),
        inner.mappings.avail(),
        inner.pgsize_bitmap
    )?;
    write!(f, "  valid iova:")?;
    for r in inner.valid.ranges() {
        write!(f, " {:#x}-{:#x}", r.start(), r.last())?;
    }
    writeln!(f)?;
    for (i, d) in inner.domains.iter().enumerate() {
        describe_domain(i, d, f)?;
    }
    if !inner.emulated_groups.is_empty() {
        write!(f, "  emulated-IOMMU groups:")?;
        for g in inner.emulated_groups.iter() {
            write!(f, " {}", g.id())?;
        }
        writeln!(f, " ({} devices registered)", ndev)?;
    }
    for m in inner.mappings.iter() {
        describe_mapping(m, f)?;
    }
    Ok(())
}

fn describe_domain(i: usize, d: &Domain, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ap = d.aperture();
    write!(
        f,
        "  domain {}: pgsizes {:#x}, aperture {:#x}-{:#x}, enforce_cache_coherency {}, groups",
        i,
        d.pgsize_bitmap(),
        ap.start(),
        ap.last(),
        d.enforce_cache_coherency()
    )?;
    for g in d.groups() {
        write!(f, " {}", g.id())?;
    }
    writeln!(f)?;
    for g in d.groups() {
        write!(f, "    group {} devices:", g.id())?;
        g.write_devices(f)?;
        writeln!(f)?;
    }
    Ok(())
}

fn describe_mapping(m: &Mapping, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let runs = m.pinned.as_ref().map_or(0, |p| p.runs().count());
    let largest = m.pinned.as_ref().map_or(0, |p| p.runs().largest());
    let record = m.pinned.as_ref().map_or(0, |p| p.runs().heap_bytes());
    write!(
        f,
        "  mapping iova {:#x}-{:#x} size {:#x} vaddr {:#x} prot {}{}{} run_record_bytes {} runs {} largest_run_pages {}",
        m.range.start(),
        m.range.last(),
        m.size(),
        m.vaddr,
        if m.prot.readable() { "r" } else { "-" },
        if m.prot.writable() { "w" } else { "-" },
        if m.vaddr_invalid() { " vaddr-invalid" } else { "" },
        record,
        runs,
        largest
    )?;
    if m.pinned.is_none() {
        write!(f, " not-pinned")?;
    }
    match m.external.count() {
        0 => writeln!(f),
        n => writeln!(f, " device_pinned_pages {}", n),
    }
}
