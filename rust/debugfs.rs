// SPDX-License-Identifier: GPL-2.0

//! A debugfs view of every container, for people studying how groups end
//! up on domains: /sys/kernel/debug/vfio_iommu_type1_rs/containers.
//!
//! One rendering ([`View`]'s `Debug`) on every kernel; only the registry's
//! lock and the file differ: the kernel crate's `global_lock!` and
//! `kernel::debugfs` where it has them (`vfio_rs_kdebugfs`, 7.x), a mutex
//! made at load time and `c_shims/debugfs.c` on Linux 6.12.
//!
//! Lock order: the registry is never held while a container's lock is
//! awaited: the view prints from a snapshot of the list. A container's
//! lock can be held for long (a MAP stuck in GUP on a stalled file), and
//! every `open` and `release` of a container takes the registry's.

use core::fmt;

use kernel::prelude::*;
use kernel::sync::Arc;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::container::Container;
use crate::domain::Domain;
use crate::mapping::Mapping;

#[cfg(vfio_rs_kdebugfs)]
use kdebugfs as imp;
#[cfg(not(vfio_rs_kdebugfs))]
use shim as imp;

pub(crate) use imp::Handle;

/// The view through `kernel::debugfs` (7.x).
#[cfg(vfio_rs_kdebugfs)]
mod kdebugfs {
    use kernel::debugfs::Dir;
    use kernel::debugfs::File;
    use kernel::prelude::*;
    use kernel::sync::Arc;

    use super::View;
    use crate::container::Container;

    kernel::sync::global_lock! {
        // SAFETY: `init` is called in the module initializer, before any use.
        pub(crate) unsafe(uninit) static CONTAINERS: Mutex<KVec<Arc<Container>>> = KVec::new();
    }

    /// Runs `f` on the registry, locked (always `Some`).
    pub(super) fn with_list<R>(f: impl FnOnce(&mut KVec<Arc<Container>>) -> R) -> Option<R> {
        Some(f(&mut CONTAINERS.lock()))
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
}

/// The view through `c_shims/debugfs.c` (Linux 6.12: no `kernel::debugfs`,
/// `kernel::seq_file` or `global_lock!`).
///
/// The registry is a mutex that [`Handle::new`] allocates and publishes in
/// [`REGISTRY`] before it creates the file, and that dropping the
/// [`Handle`] unpublishes and frees after the file is gone. Everything that
/// borrows it runs in between:
/// - `register`/`unregister` run in vfio core's `open`/`release`, which are
///   reachable only once `ops::Registration::new` has run in the module
///   initializer (after `Handle::new`); the registration field drops (and
///   unregisters the driver) before the `Handle` field, and every container holds
///   a reference on this module (vfio core's `try_module_get` on
///   `ops->owner`), so no `release` is left when the module exits;
/// - `vfio_rs_containers_show` runs only while the debugfs file exists, and
///   `debugfs_remove_recursive()` waits for running reads to finish.
#[cfg(not(vfio_rs_kdebugfs))]
mod shim {
    use core::fmt::Write;
    use core::ptr::null_mut;
    use core::sync::atomic::{AtomicPtr, Ordering};

    use kernel::ffi::{c_int, c_void};
    use kernel::prelude::*;
    use kernel::sync::{Arc, Mutex};
    use kernel::types::ForeignOwnable;

    use super::View;
    use crate::bindings;
    use crate::container::Container;

    type Registry = Mutex<KVec<Arc<Container>>>;

    /// The foreign form of the `Pin<KBox<Registry>>` that [`Handle`] owns;
    /// null while there is none (see the module's comment for when).
    static REGISTRY: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

    /// Runs `f` on the registry, locked; `None` if there is no registry
    /// (which the module's lifetime rules out).
    pub(super) fn with_list<R>(f: impl FnOnce(&mut KVec<Arc<Container>>) -> R) -> Option<R> {
        let p = REGISTRY.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null `REGISTRY` came from `into_foreign` in `new`;
        // it is freed only when the `Handle` drops, after every caller is
        // done (see the module's comment); the borrow ends with this call.
        let registry = unsafe { <Pin<KBox<Registry>> as ForeignOwnable>::borrow(p) };
        let ret = f(&mut registry.lock());
        Some(ret)
    }

    /// The debugfs directory and its file, for as long as the module is
    /// loaded; owns the registry.
    pub(crate) struct Handle {
        _private: (),
    }

    impl Handle {
        /// Creates the registry, then
        /// /sys/kernel/debug/vfio_iommu_type1_rs/containers.
        ///
        /// # Safety
        ///
        /// Called once, before any container exists.
        pub(crate) unsafe fn new() -> Result<Self> {
            let registry: Pin<KBox<Registry>> =
                KBox::pin_init(kernel::new_mutex!(KVec::new()), GFP_KERNEL)?;
            REGISTRY.store(crate::compat::into_foreign(registry), Ordering::Release);
            // SAFETY: by this function's contract, called once: the file
            // does not exist yet; the registry it shows is published above.
            unsafe { bindings::vfio_rs_debugfs_create() };
            Ok(Self { _private: () })
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the directory was created in `new`. Returns once no
            // read of the file is running and none can start.
            unsafe { bindings::vfio_rs_debugfs_remove() };
            let p = REGISTRY.swap(null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: `p` came from `into_foreign` in `new`; the swap
                // took it out of `REGISTRY`, so it is converted back once,
                // and no borrow of it is left (see the module's comment).
                drop(unsafe { <Pin<KBox<Registry>> as ForeignOwnable>::from_foreign(p) });
            }
        }
    }

    /// `fmt::Write` into a `seq_file` buffer.
    ///
    /// # Invariants
    ///
    /// `0` points to a live `seq_file` for the writer's lifetime.
    struct SeqWriter(*mut bindings::seq_file);

    impl Write for SeqWriter {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // SAFETY: `self.0` is live (type invariant); `s` is valid for
            // `s.len()` bytes.
            let ret = unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
            // Non-zero: the buffer overflowed; stop formatting.
            if ret == 0 {
                Ok(())
            } else {
                Err(core::fmt::Error)
            }
        }
    }

    /// The `containers` file's `show` (`DEFINE_SHOW_ATTRIBUTE` in
    /// `c_shims/debugfs.c`): the same text as the 7.x file, whose writer
    /// prints `{:?}` and a newline.
    ///
    /// # Safety
    ///
    /// seq_file's contract: `m` is the live `seq_file` being read.
    #[no_mangle]
    unsafe extern "C" fn vfio_rs_containers_show(
        m: *mut bindings::seq_file,
        _v: *mut c_void,
    ) -> c_int {
        // INVARIANT: by this function's contract, `m` is live for the call.
        let mut w = SeqWriter(m);
        // An error means the buffer overflowed: seq_file sees that, and
        // calls again with a larger one.
        let _ = writeln!(w, "{:?}", View);
        0
    }
}

/// Lists `c` in the view.
///
/// # Errors
///
/// `ENOMEM`.
pub(crate) fn register(c: &Arc<Container>) -> Result {
    imp::with_list(|list| list.push(c.clone(), GFP_KERNEL)).unwrap_or(Ok(()))?;
    Ok(())
}

/// Removes `c` from the view.
pub(crate) fn unregister(c: &Container) {
    let removed = imp::with_list(|list| {
        list.iter()
            .position(|x| core::ptr::eq(&**x, c))
            .map(|i| list.remove(i))
    });
    // Dropped outside the lock: this may be the last reference.
    drop(removed);
}

/// The `containers` file.
pub(crate) struct View;

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = match imp::with_list(|list| snapshot(list)) {
            Some(Ok(list)) => list,
            Some(Err(_)) => return writeln!(f, "out of memory"),
            None => return Ok(()),
        };
        writeln!(f, "{} containers", list.len())?;
        for c in list.iter() {
            describe(c, f)?;
        }
        // Dropped with no lock held: this may be a container's last reference.
        Ok(())
    }
}

/// A copy of the registry, so that its lock is free while containers' are
/// awaited.
fn snapshot(list: &KVec<Arc<Container>>) -> Result<KVec<Arc<Container>>> {
    let mut copy = KVec::new();
    for c in list.iter() {
        copy.push(c.clone(), GFP_KERNEL)?;
    }
    Ok(copy)
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
