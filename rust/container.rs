// SPDX-License-Identifier: GPL-2.0

//! `Container`: the per-container state vfio core keeps as `iommu_data`,
//! and the ioctl handlers.
//!
//! Lock order: `Container::inner` is the only lock of this file; the iommu
//! core's group mutex is taken inside it (by attach/detach).

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::Mutex;

use crate::bindings;
use crate::domain::Domain;
use crate::domain::GroupRef;
use crate::uapi;
use crate::uapi::Extension;
use crate::uapi::IommuType;

/// One VFIO container using this backend.
#[pin_data]
pub(crate) struct Container {
    /// v1 or v2 semantics, fixed at `VFIO_SET_IOMMU`.
    iommu_type: IommuType,
    #[pin]
    inner: Mutex<ContainerInner>,
}

/// The fields of [`Container`] protected by its lock.
pub(crate) struct ContainerInner {
    /// Paging domains, each with the groups attached to it.
    domains: KVec<Domain>,
}

impl Container {
    /// Allocates an empty container of the given type.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new(iommu_type: IommuType) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                iommu_type,
                inner <- new_mutex!(ContainerInner { domains: KVec::new() }, "Container::inner"),
            }),
            GFP_KERNEL,
        )
    }

    /// Tears the container down; cannot fail.
    pub(crate) fn release(self: Arc<Self>) {
        // vfio core detaches every group before release; anything left is
        // detached and freed by `Domain::drop`.
        let domains = core::mem::take(&mut self.inner.lock().domains);
        drop(domains);
    }

    /// Attaches `group` to a new paging domain.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the group is already attached; `ENODEV` for a group this
    /// backend cannot serve yet; the iommu core's errno from allocation or
    /// attach. On error the container is unchanged.
    pub(crate) fn attach_group(
        &self,
        group: GroupRef,
        group_type: bindings::vfio_group_type,
    ) -> Result {
        if group_type != bindings::vfio_group_type_VFIO_IOMMU {
            return Err(ENODEV);
        }
        let mut inner = self.inner.lock();
        if inner.domains.iter().any(|d| d.has_group(group)) {
            return Err(EINVAL);
        }
        inner.domains.reserve(1, GFP_KERNEL)?;
        let domain = Domain::attach_new(group)?;
        let v2 = self.iommu_type == IommuType::V2;
        pr_debug!(
            "attach: group {} on a new domain (cache coherency enforced: {}, v2: {})\n",
            group.id(),
            domain.enforce_cache_coherency(),
            v2
        );
        // Cannot fail: reserved above.
        inner.domains.push(domain, GFP_KERNEL)?;
        Ok(())
    }

    /// Detaches `group`; a domain left without groups is freed.
    pub(crate) fn detach_group(&self, group: GroupRef) {
        let mut inner = self.inner.lock();
        let Some(i) = inner.domains.iter().position(|d| d.has_group(group)) else {
            return;
        };
        let domain = inner.domains.remove(i);
        drop(inner);
        drop(domain);
    }

    /// `VFIO_DMA_CC_IOMMU`: every domain enforces cache coherency.
    fn domains_enforce_cache_coherency(&self) -> bool {
        self.inner
            .lock()
            .domains
            .iter()
            .all(|d| d.enforce_cache_coherency())
    }
}

/// `VFIO_CHECK_EXTENSION`, answered like the C module at every stage:
/// `container` is `None` before `VFIO_SET_IOMMU`.
fn check_extension(container: Option<&Container>, arg: c_ulong) -> bool {
    match Extension::from_arg(arg) {
        Extension::Type1 | Extension::Type1v2 | Extension::UnmapAll => true,
        Extension::UpdateVaddr => container.is_some(),
        Extension::DmaCc => container.is_some_and(|c| c.domains_enforce_cache_coherency()),
        Extension::Unknown => false,
    }
}

/// Dispatches one ioctl.
///
/// # Errors
///
/// `ENOTTY` for an ioctl this backend does not implement.
pub(crate) fn ioctl(container: Option<&Container>, cmd: c_uint, arg: c_ulong) -> Result<c_long> {
    match cmd {
        uapi::CHECK_EXTENSION => Ok(check_extension(container, arg).into()),
        _ => Err(ENOTTY),
    }
}
