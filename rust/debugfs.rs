// SPDX-License-Identifier: GPL-2.0

//! A debugfs view of every container, for people studying how groups end
//! up on domains: /sys/kernel/debug/vfio_iommu_type1_rs/containers.
//!
//! Lock order: `CONTAINERS`, then `Container::inner` (while printing).

use core::fmt;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::container::Container;

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initializer, before any use.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<KVec<Arc<Container>>> = KVec::new();
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
            c.describe(f)?;
        }
        Ok(())
    }
}
