// SPDX-License-Identifier: GPL-2.0

//! The VFIO uapi as this backend sees it: ioctl numbers and extension ids.

use kernel::ioctl::_IO;
use kernel::prelude::*;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use crate::bindings;
use crate::dirty::UserBitmap;

const fn vfio_io(nr: u32) -> u32 {
    // Widening u8 -> u32 (`From` is not const).
    _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + nr)
}

/// `VFIO_CHECK_EXTENSION`.
pub(crate) const CHECK_EXTENSION: u32 = vfio_io(1);
/// `VFIO_IOMMU_GET_INFO`.
pub(crate) const IOMMU_GET_INFO: u32 = vfio_io(12);
/// `VFIO_IOMMU_MAP_DMA`.
pub(crate) const IOMMU_MAP_DMA: u32 = vfio_io(13);
/// `VFIO_IOMMU_UNMAP_DMA`.
pub(crate) const IOMMU_UNMAP_DMA: u32 = vfio_io(14);
/// `VFIO_IOMMU_DIRTY_PAGES`.
pub(crate) const IOMMU_DIRTY_PAGES: u32 = vfio_io(17);

/// What a `VFIO_IOMMU_DIRTY_PAGES` call asks for.
pub(crate) enum DirtyPages {
    Start,
    Stop,
    /// Report `[iova, iova + size)` into `bitmap`.
    GetBitmap {
        range: crate::iova::IovaRange,
        bitmap: UserBitmap,
    },
}

impl DirtyPages {
    /// Copies the request in and validates it as the C module does before
    /// taking its lock.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` (short argsz, unknown flags, not exactly one flag,
    /// zero size, bad bitmap); `EOVERFLOW`.
    pub(crate) fn read(arg: c_ulong) -> Result<Self> {
        const MINSZ: usize = 8;
        let b: [u8; MINSZ] = read_head(arg)?;
        let (argsz, flags) = (u32_at(&b, 0), u32_at(&b, 4));
        let start = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
        let stop = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
        let get = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
        if (argsz as usize) < MINSZ || flags & !(start | stop | get) != 0 || flags.count_ones() != 1
        {
            return Err(EINVAL);
        }
        if flags == start {
            return Ok(Self::Start);
        }
        if flags == stop {
            return Ok(Self::Stop);
        }
        // struct vfio_iommu_type1_dirty_bitmap_get: iova, size, bitmap.
        if (argsz as usize) < MINSZ + 40 {
            return Err(EINVAL);
        }
        let mut raw = [0u8; 40];
        UserSlice::new(UserPtr::from_addr(arg + MINSZ), 40)
            .reader()
            .read_slice(&mut raw)?;
        let (iova, size) = (u64_at(&raw, 0), u64_at(&raw, 8));
        if size == 0 {
            return Err(EINVAL);
        }
        let range = crate::iova::IovaRange::from_size(iova, size)?;
        let bitmap = UserBitmap::from_bytes(&raw[16..]);
        bitmap.validate(size)?;
        Ok(Self::GetBitmap { range, bitmap })
    }
}

/// Reads the first `N` bytes of the user struct at `arg`.
///
/// # Errors
///
/// `EFAULT`.
fn read_head<const N: usize>(arg: c_ulong) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    UserSlice::new(UserPtr::from_addr(arg), N)
        .reader()
        .read_slice(&mut buf)?;
    Ok(buf)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(v)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(v)
}

/// `struct vfio_iommu_type1_dma_map`, up to `size` (its minsz).
pub(crate) struct DmaMap {
    pub(crate) flags: u32,
    pub(crate) vaddr: u64,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

impl DmaMap {
    /// Copies the request in and checks `argsz` and `flags`.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` for `argsz` below minsz or an unknown flag.
    pub(crate) fn read(arg: c_ulong) -> Result<Self> {
        let b: [u8; 32] = read_head(arg)?;
        let (argsz, flags) = (u32_at(&b, 0), u32_at(&b, 4));
        let known = bindings::VFIO_DMA_MAP_FLAG_READ
            | bindings::VFIO_DMA_MAP_FLAG_WRITE
            | bindings::VFIO_DMA_MAP_FLAG_VADDR;
        if argsz < 32 || flags & !known != 0 {
            return Err(EINVAL);
        }
        Ok(Self {
            flags,
            vaddr: u64_at(&b, 8),
            iova: u64_at(&b, 16),
            size: u64_at(&b, 24),
        })
    }
}

/// `struct vfio_iommu_type1_dma_unmap`, up to `size` (its minsz).
pub(crate) struct DmaUnmap {
    argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova: u64,
    pub(crate) size: u64,
    /// The `struct vfio_bitmap` after the struct, with GET_DIRTY_BITMAP.
    pub(crate) bitmap: Option<UserBitmap>,
}

impl DmaUnmap {
    const MINSZ: usize = 24;

    /// Copies the request in and checks `argsz` and `flags`.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` for `argsz` below minsz, an unknown flag, or
    /// GET_DIRTY_BITMAP combined with ALL or VADDR.
    pub(crate) fn read(arg: c_ulong) -> Result<Self> {
        let b: [u8; Self::MINSZ] = read_head(arg)?;
        let (argsz, flags) = (u32_at(&b, 0), u32_at(&b, 4));
        let dirty = bindings::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
        let known = dirty | bindings::VFIO_DMA_UNMAP_FLAG_VADDR | bindings::VFIO_DMA_UNMAP_FLAG_ALL;
        if (argsz as usize) < Self::MINSZ || flags & !known != 0 {
            return Err(EINVAL);
        }
        if flags & dirty != 0
            && flags & (bindings::VFIO_DMA_UNMAP_FLAG_ALL | bindings::VFIO_DMA_UNMAP_FLAG_VADDR)
                != 0
        {
            return Err(EINVAL);
        }
        let (iova, size) = (u64_at(&b, 8), u64_at(&b, 16));
        let mut bitmap = None;
        if flags & dirty != 0 {
            if (argsz as usize) < Self::MINSZ + 24 {
                return Err(EINVAL);
            }
            let mut raw = [0u8; 24];
            UserSlice::new(UserPtr::from_addr(arg + Self::MINSZ), 24)
                .reader()
                .read_slice(&mut raw)?;
            let bm = UserBitmap::from_bytes(&raw);
            bm.validate(size)?;
            bitmap = Some(bm);
        }
        Ok(Self {
            argsz,
            flags,
            iova,
            size,
            bitmap,
        })
    }

    /// Writes the struct back with `size` = bytes unmapped.
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub(crate) fn write_back(&self, arg: c_ulong, unmapped: u64) -> Result {
        let mut b = [0u8; Self::MINSZ];
        b[0..4].copy_from_slice(&self.argsz.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..16].copy_from_slice(&self.iova.to_ne_bytes());
        b[16..24].copy_from_slice(&unmapped.to_ne_bytes());
        UserSlice::new(UserPtr::from_addr(arg), Self::MINSZ)
            .writer()
            .write_slice(&b)
    }
}

/// `VFIO_IOMMU_GET_INFO`'s reply: `struct vfio_iommu_type1_info` followed
/// by a capability chain.
pub(crate) struct InfoReply {
    caps: KVec<u8>,
    /// Offset of the last capability header in `caps`, to link the next.
    last: Option<usize>,
}

impl InfoReply {
    /// sizeof(struct vfio_iommu_type1_info).
    const INFO_SIZE: usize = 24;
    /// offsetofend(struct vfio_iommu_type1_info, iova_pgsizes).
    const MINSZ: usize = 16;

    pub(crate) fn new() -> Self {
        Self {
            caps: KVec::new(),
            last: None,
        }
    }

    /// Appends a capability: header `{id, version, next}` then `body`,
    /// padded to 8 bytes, linked from the previous one.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn add_cap(&mut self, id: u32, version: u16, body: &[u8]) -> Result {
        let off = self.caps.len();
        let len = (8 + body.len()).next_multiple_of(8);
        self.caps.resize(off + len, 0, GFP_KERNEL)?;
        self.caps[off..off + 2].copy_from_slice(&(id as u16).to_ne_bytes());
        self.caps[off + 2..off + 4].copy_from_slice(&version.to_ne_bytes());
        self.caps[off + 8..off + 8 + body.len()].copy_from_slice(body);
        if let Some(prev) = self.last {
            // `next` is relative to the info struct's start: the chain is
            // placed right after it.
            let next = (off + Self::INFO_SIZE) as u32;
            self.caps[prev + 4..prev + 8].copy_from_slice(&next.to_ne_bytes());
        }
        self.last = Some(off);
        Ok(())
    }

    /// Reads the caller's `argsz`, then writes the reply as the C module
    /// does: the chain only if it fits (else `argsz` says how much is
    /// needed), and at most `argsz` bytes of the fixed struct.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` for `argsz` below minsz.
    pub(crate) fn write(&self, arg: c_ulong, flags: u32, pgsizes: u64) -> Result {
        let head: [u8; Self::MINSZ] = read_head(arg)?;
        let argsz = u32_at(&head, 0);
        if (argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        let mut info = [0u8; Self::INFO_SIZE];
        let mut flags = flags;
        let mut out_argsz = argsz;
        let mut cap_offset = 0u32;
        let user = UserPtr::from_addr(arg);
        if !self.caps.is_empty() {
            flags |= bindings::VFIO_IOMMU_INFO_CAPS;
            let needed = Self::INFO_SIZE + self.caps.len();
            if (argsz as usize) < needed {
                out_argsz = needed as u32;
            } else {
                UserSlice::new(user.wrapping_byte_add(Self::INFO_SIZE), self.caps.len())
                    .writer()
                    .write_slice(&self.caps)?;
                cap_offset = Self::INFO_SIZE as u32;
            }
        }
        info[0..4].copy_from_slice(&out_argsz.to_ne_bytes());
        info[4..8].copy_from_slice(&flags.to_ne_bytes());
        info[8..16].copy_from_slice(&pgsizes.to_ne_bytes());
        info[16..20].copy_from_slice(&cap_offset.to_ne_bytes());
        let n = (argsz as usize).min(Self::INFO_SIZE);
        UserSlice::new(user, n).writer().write_slice(&info[..n])
    }
}

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
