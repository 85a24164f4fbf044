// SPDX-License-Identifier: GPL-2.0

//! The VFIO uapi as this backend sees it: ioctl numbers and extension ids.

use kernel::ioctl::_IO;
use kernel::prelude::*;

use crate::bindings;

const fn vfio_io(nr: u32) -> u32 {
    // Widening u8 -> u32 (`From` is not const).
    _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + nr)
}

/// `VFIO_CHECK_EXTENSION`.
pub(crate) const CHECK_EXTENSION: u32 = vfio_io(1);

/// Container flavours this backend implements (the `VFIO_SET_IOMMU` arg).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IommuType {
    /// `VFIO_TYPE1_IOMMU`: unmaps may split a mapping.
    V1,
    /// `VFIO_TYPE1v2_IOMMU` (and the retired nesting id, which the C module
    /// also treats as v2).
    V2,
}

impl IommuType {
    /// Decodes the `VFIO_SET_IOMMU` argument.
    ///
    /// # Errors
    ///
    /// `EINVAL` for any other id, as the C module.
    pub(crate) fn from_arg(arg: c_ulong) -> Result<Self> {
        match u32::try_from(arg).map_err(|_| EINVAL)? {
            bindings::VFIO_TYPE1_IOMMU => Ok(Self::V1),
            bindings::VFIO_TYPE1v2_IOMMU | bindings::__VFIO_RESERVED_TYPE1_NESTING_IOMMU => {
                Ok(Self::V2)
            }
            _ => Err(EINVAL),
        }
    }
}

/// Extension ids answered by `VFIO_CHECK_EXTENSION`.
pub(crate) enum Extension {
    Type1,
    Type1v2,
    UnmapAll,
    UpdateVaddr,
    DmaCc,
    Unknown,
}

impl Extension {
    pub(crate) fn from_arg(arg: c_ulong) -> Self {
        match u32::try_from(arg) {
            Ok(bindings::VFIO_TYPE1_IOMMU) => Self::Type1,
            Ok(bindings::VFIO_TYPE1v2_IOMMU) => Self::Type1v2,
            Ok(bindings::VFIO_UNMAP_ALL) => Self::UnmapAll,
            Ok(bindings::VFIO_UPDATE_VADDR) => Self::UpdateVaddr,
            Ok(bindings::VFIO_DMA_CC_IOMMU) => Self::DmaCc,
            _ => Self::Unknown,
        }
    }
}
