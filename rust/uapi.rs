// SPDX-License-Identifier: GPL-2.0

//! The VFIO uapi as this backend sees it: ioctl numbers, the request and
//! reply structs (read and written whole, `#[repr(C)]` mirrors of
//! include/uapi/linux/vfio.h), and their decoding into typed requests.
//!
//! Decoding does every check the C module does before it takes its lock,
//! in the same order, so errnos match; the checks that need the container
//! (page size, mappings) are the flows'. The flows never see the user
//! pointer `arg`: they take a decoded request and return a typed reply,
//! which this file writes back.

use core::mem::offset_of;
use core::mem::size_of;

use kernel::ffi::c_ulong;
use kernel::ioctl::_IO;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::bindings;
use crate::compat::{as_bytes, AsBytes, FromBytes};
use crate::iova::IovaRange;
use crate::mapping::Prot;

const fn vfio_io(nr: u32) -> u32 {
    // Widening u8 -> u32 (`From` is not const).
    _IO(
        bindings::VFIO_TYPE as u32,
        bindings::VFIO_BASE.wrapping_add(nr),
    )
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

/// Declares `#[repr(C)]` uapi mirrors made only of integers, laid out
/// without padding, so every byte is initialised and any bytes are valid.
macro_rules! uapi_struct {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $f:ident: $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        pub(crate) struct $name { $($(#[$fm])* pub(crate) $f: $t),* }
        // SAFETY: integers only, no padding (checked below): any bit
        // pattern is a valid value.
        unsafe impl FromBytes for $name {}
        // SAFETY: integers only, no padding (checked below): every byte is
        // initialised.
        unsafe impl AsBytes for $name {}
        const _: () = assert!(size_of::<$name>() == 0 $(+ size_of::<$t>())*);
    };
}

uapi_struct! {
    /// `struct vfio_iommu_type1_dma_map`; minsz is its whole size.
    struct DmaMapRaw { argsz: u32, flags: u32, vaddr: u64, iova: u64, size: u64 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_dma_unmap` up to `size` (its minsz).
    struct DmaUnmapRaw { argsz: u32, flags: u32, iova: u64, size: u64 }
}
uapi_struct! {
    /// `struct vfio_bitmap`: where the user wants dirty bits.
    struct BitmapRaw { pgsize: u64, size: u64, data: u64 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_dirty_bitmap` up to `flags` (its minsz).
    struct DirtyHeadRaw { argsz: u32, flags: u32 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_dirty_bitmap_get`.
    struct DirtyGetRaw { iova: u64, size: u64, bitmap_pgsize: u64, bitmap_size: u64, bitmap_data: u64 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_info`.
    struct InfoRaw { argsz: u32, flags: u32, iova_pgsizes: u64, cap_offset: u32, pad: u32 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_info` up to `iova_pgsizes` (its minsz).
    struct InfoHeadRaw { argsz: u32, flags: u32, iova_pgsizes: u64 }
}
uapi_struct! {
    /// `struct vfio_info_cap_header`.
    struct CapHeader { id: u16, version: u16, next: u32 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_info_cap_migration` (with its padding named).
    struct CapMigration { header: CapHeader, flags: u32, pad: u32, pgsize_bitmap: u64, max_dirty_bitmap_size: u64 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_info_dma_avail`.
    struct CapDmaAvail { header: CapHeader, avail: u32 }
}
uapi_struct! {
    /// `struct vfio_iommu_type1_info_cap_iova_range` without its ranges.
    struct CapIovaRangeHead { header: CapHeader, nr_iovas: u32, reserved: u32 }
}
uapi_struct! {
    /// `struct vfio_iova_range`.
    struct IovaRangeRaw { start: u64, end: u64 }
}

// The mirrors match the kernel's own layout.
const _: () = assert!(size_of::<InfoHeadRaw>() == offset_of!(InfoRaw, cap_offset));
const _: () = assert!(size_of::<DmaMapRaw>() == size_of::<bindings::vfio_iommu_type1_dma_map>());
const _: () =
    assert!(size_of::<DmaUnmapRaw>() == size_of::<bindings::vfio_iommu_type1_dma_unmap>());
const _: () = assert!(size_of::<BitmapRaw>() == size_of::<bindings::vfio_bitmap>());
const _: () = assert!(size_of::<InfoRaw>() == size_of::<bindings::vfio_iommu_type1_info>());
const _: () =
    assert!(size_of::<DirtyGetRaw>() == size_of::<bindings::vfio_iommu_type1_dirty_bitmap_get>());
const _: () = assert!(
    size_of::<CapMigration>() == size_of::<bindings::vfio_iommu_type1_info_cap_migration>()
);

/// Reads a `T` from user address `addr`.
///
/// # Errors
///
/// `EFAULT`.
fn read_user<T: FromBytes>(addr: usize) -> Result<T> {
    UserSlice::new(crate::compat::user_ptr(addr), size_of::<T>())
        .reader()
        .read::<T>()
}

/// Writes the first `len` bytes of `v` to user address `addr`.
///
/// # Errors
///
/// `EFAULT`.
fn write_user<T: AsBytes>(addr: usize, v: &T, len: usize) -> Result {
    let bytes = as_bytes(v).get(..len).ok_or(EINVAL)?;
    UserSlice::new(crate::compat::user_ptr(addr), len)
        .writer()
        .write_slice(bytes)
}

/// `arg + off`: a user address; one past the top of the address space
/// cannot be accessed (`copy_from_user` would fail the same way).
fn user_addr(arg: usize, off: usize) -> Result<usize> {
    arg.checked_add(off).ok_or(EFAULT)
}

/// Most pages one mapping's bitmap may describe (`INT_MAX`, as the C module).
pub(crate) const BITMAP_PAGES_MAX: u64 = i32::MAX as u64;

/// Largest user bitmap accepted, in bytes: `BITMAP_PAGES_MAX` bits rounded
/// up to u64 words.
pub(crate) const BITMAP_SIZE_MAX: u64 = BITMAP_PAGES_MAX.next_multiple_of(64) / 8;

/// `struct vfio_bitmap`: where the user wants the bits.
#[derive(Clone, Copy)]
pub(crate) struct UserBitmap {
    pub(crate) pgsize: u64,
    pub(crate) size: u64,
    pub(crate) data: u64,
}

impl UserBitmap {
    /// The user's `struct vfio_bitmap`, not yet validated.
    pub(crate) fn new(pgsize: u64, size: u64, data: u64) -> Self {
        Self { pgsize, size, data }
    }

    /// The checks done before taking the container lock: the buffer is a
    /// user range, and it is large enough (and not absurdly large) for
    /// `size` bytes of IOVA at `pgsize` granularity.
    ///
    /// # Errors
    ///
    /// `EINVAL`.
    pub(crate) fn validate(&self, size: u64) -> Result {
        if !user_range_ok(self.data, self.size) {
            return Err(EINVAL);
        }
        // `__ffs(0)` is undefined in C; every such request fails later
        // anyway (pgsize must equal the IOMMU page size), so fail here.
        if self.pgsize == 0 {
            return Err(EINVAL);
        }
        let npages = size >> self.pgsize.trailing_zeros();
        // Bytes needed for `npages` bits in u64 words. The C module's
        // DIRTY_BITMAP_BYTES() wraps to 0 past 2^64 - 64 pages; every such
        // request (an unaligned `size` at a `pgsize` of 1) fails its later
        // alignment checks with EINVAL, so failing here is the same answer.
        let needed = npages.checked_next_multiple_of(64).ok_or(EINVAL)? / 8;
        if npages == 0 || self.size == 0 || self.size > BITMAP_SIZE_MAX || self.size < needed {
            return Err(EINVAL);
        }
        Ok(())
    }
}

/// Whether `[addr, addr + size)` is a user address range (`access_ok`).
fn user_range_ok(addr: u64, size: u64) -> bool {
    // SAFETY: only compares the range against the user address limit.
    unsafe { bindings::vfio_rs_access_ok(addr as c_ulong, size as c_ulong) }
}

/// A `VFIO_IOMMU_MAP_DMA` request.
pub(crate) enum MapRequest {
    /// Map `range` to the user memory at `vaddr`.
    Map {
        range: IovaRange,
        vaddr: u64,
        prot: Prot,
    },
    /// `VFIO_DMA_MAP_FLAG_VADDR`: give the invalidated mapping of exactly
    /// `range` the user memory at `vaddr`.
    UpdateVaddr { range: IovaRange, vaddr: u64 },
}

impl MapRequest {
    /// Copies the request in and checks it as the C module does.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` (argsz below minsz, unknown flags, zero size,
    /// neither or both of access flags and VADDR); `EOVERFLOW` (the IOVA or
    /// user range wraps).
    pub(crate) fn read(arg: usize) -> Result<Self> {
        let raw: DmaMapRaw = read_user(arg)?;
        let known = bindings::VFIO_DMA_MAP_FLAG_READ
            | bindings::VFIO_DMA_MAP_FLAG_WRITE
            | bindings::VFIO_DMA_MAP_FLAG_VADDR;
        if (raw.argsz as usize) < size_of::<DmaMapRaw>() || raw.flags & !known != 0 {
            return Err(EINVAL);
        }
        let range = IovaRange::from_size(raw.iova, raw.size)?;
        // The user range must not wrap either (`size > 0` here).
        IovaRange::from_size(raw.vaddr, raw.size)?;
        let prot = Prot::from_map_flags(raw.flags);
        let set_vaddr = raw.flags & bindings::VFIO_DMA_MAP_FLAG_VADDR != 0;
        match (prot, set_vaddr) {
            (Some(prot), false) => Ok(Self::Map {
                range,
                vaddr: raw.vaddr,
                prot,
            }),
            (None, true) => Ok(Self::UpdateVaddr {
                range,
                vaddr: raw.vaddr,
            }),
            _ => Err(EINVAL),
        }
    }
}

/// What an unmap covers.
#[derive(Clone, Copy)]
pub(crate) enum UnmapScope {
    /// `[iova, iova + size)`, checked against the page size under the lock.
    Range { iova: u64, size: u64 },
    /// `VFIO_DMA_UNMAP_FLAG_ALL` (iova and size must then be 0).
    All { iova: u64, size: u64 },
}

/// What an unmap does to the mappings it covers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnmapAction {
    /// Unmap, unpin and forget them.
    Unmap,
    /// `VFIO_DMA_UNMAP_FLAG_VADDR`: keep them, mark their vaddr invalid.
    InvalidateVaddr,
}

/// A `VFIO_IOMMU_UNMAP_DMA` request.
pub(crate) struct UnmapRequest {
    raw: DmaUnmapRaw,
    pub(crate) scope: UnmapScope,
    pub(crate) action: UnmapAction,
    /// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: report before unmapping.
    pub(crate) bitmap: Option<UserBitmap>,
}

impl UnmapRequest {
    /// Copies the request in and checks it as the C module does before its
    /// lock.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` for argsz below minsz, an unknown flag,
    /// GET_DIRTY_BITMAP combined with ALL or VADDR, or a bad bitmap.
    pub(crate) fn read(arg: usize) -> Result<Self> {
        let raw: DmaUnmapRaw = read_user(arg)?;
        let dirty = bindings::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
        let all = bindings::VFIO_DMA_UNMAP_FLAG_ALL;
        let vaddr = bindings::VFIO_DMA_UNMAP_FLAG_VADDR;
        let minsz = size_of::<DmaUnmapRaw>();
        if (raw.argsz as usize) < minsz || raw.flags & !(dirty | all | vaddr) != 0 {
            return Err(EINVAL);
        }
        if raw.flags & dirty != 0 && raw.flags & (all | vaddr) != 0 {
            return Err(EINVAL);
        }
        let mut bitmap = None;
        if raw.flags & dirty != 0 {
            if (raw.argsz as usize) < minsz.saturating_add(size_of::<BitmapRaw>()) {
                return Err(EINVAL);
            }
            let b: BitmapRaw = read_user(user_addr(arg, minsz)?)?;
            let bm = UserBitmap::new(b.pgsize, b.size, b.data);
            bm.validate(raw.size)?;
            bitmap = Some(bm);
        }
        let (iova, size) = (raw.iova, raw.size);
        Ok(Self {
            raw,
            scope: match raw.flags & all {
                0 => UnmapScope::Range { iova, size },
                _ => UnmapScope::All { iova, size },
            },
            action: match raw.flags & vaddr {
                0 => UnmapAction::Unmap,
                _ => UnmapAction::InvalidateVaddr,
            },
            bitmap,
        })
    }

    /// Writes the request back with `size` = bytes unmapped (or
    /// invalidated), as the C module does on success.
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub(crate) fn write_back(&self, arg: usize, unmapped: u64) -> Result {
        let reply = DmaUnmapRaw {
            size: unmapped,
            ..self.raw
        };
        write_user(arg, &reply, size_of::<DmaUnmapRaw>())
    }
}

/// A `VFIO_IOMMU_DIRTY_PAGES` request.
pub(crate) enum DirtyPages {
    Start,
    Stop,
    /// Report `range` into `bitmap`.
    GetBitmap {
        range: IovaRange,
        bitmap: UserBitmap,
    },
}

impl DirtyPages {
    /// Copies the request in and validates it as the C module does before
    /// taking its lock (the caller has checked for a v2 container).
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` (short argsz, unknown flags, not exactly one flag,
    /// zero size, bad bitmap); `EOVERFLOW`.
    pub(crate) fn read(arg: usize) -> Result<Self> {
        let head: DirtyHeadRaw = read_user(arg)?;
        let start = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
        let stop = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
        let get = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
        let minsz = size_of::<DirtyHeadRaw>();
        if (head.argsz as usize) < minsz
            || head.flags & !(start | stop | get) != 0
            || head.flags.count_ones() != 1
        {
            return Err(EINVAL);
        }
        if head.flags == start {
            return Ok(Self::Start);
        }
        if head.flags == stop {
            return Ok(Self::Stop);
        }
        let data_size = (head.argsz as usize).saturating_sub(minsz);
        if data_size < size_of::<DirtyGetRaw>() {
            return Err(EINVAL);
        }
        let raw: DirtyGetRaw = read_user(user_addr(arg, minsz)?)?;
        // Linux 6.12's C module refuses `iova + size` past 2^64, even when
        // it ends exactly there.
        if !cfg!(vfio_rs_c_eoverflow) && raw.iova.checked_add(raw.size).is_none() {
            return Err(EINVAL);
        }
        let range = IovaRange::from_size(raw.iova, raw.size)?;
        let bitmap = UserBitmap::new(raw.bitmap_pgsize, raw.bitmap_size, raw.bitmap_data);
        bitmap.validate(raw.size)?;
        Ok(Self::GetBitmap { range, bitmap })
    }
}

/// A `VFIO_IOMMU_GET_INFO` request: only `argsz` matters.
pub(crate) struct InfoRequest {
    argsz: u32,
}

impl InfoRequest {
    /// offsetofend(struct vfio_iommu_type1_info, iova_pgsizes).
    const MINSZ: usize = offset_of!(InfoRaw, cap_offset);

    /// Copies the request's minsz bytes in.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` for `argsz` below minsz.
    pub(crate) fn read(arg: usize) -> Result<Self> {
        let head: InfoHeadRaw = read_user(arg)?;
        if (head.argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        Ok(Self { argsz: head.argsz })
    }
}

/// What `VFIO_IOMMU_GET_INFO` reports, packed as the C module packs it.
pub(crate) struct InfoReply {
    pgsizes: u64,
    /// The capability chain, as it follows `struct vfio_iommu_type1_info`.
    caps: KVec<u8>,
    /// Offset in `caps` of the last capability, to link the next one.
    last: Option<usize>,
}

impl InfoReply {
    /// The reply for a container with page sizes `pgsizes` (the smallest,
    /// `min_pgsize`, is the dirty-tracking granularity), `dma_avail` more mappings
    /// allowed and the valid IOVA `ranges` (no capability when empty): the
    /// chain is MIGRATION, DMA_AVAIL, then IOVA_RANGE, as in C.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new(
        pgsizes: u64,
        min_pgsize: u64,
        dma_avail: u32,
        ranges: &[IovaRange],
    ) -> Result<Self> {
        let mut reply = Self {
            pgsizes,
            caps: KVec::new(),
            last: None,
        };
        reply.add_cap(&CapMigration {
            header: CapHeader::new(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1),
            pgsize_bitmap: min_pgsize,
            max_dirty_bitmap_size: BITMAP_SIZE_MAX,
            ..Default::default()
        })?;
        reply.add_cap(&CapDmaAvail {
            header: CapHeader::new(bindings::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1),
            avail: dma_avail,
        })?;
        if !ranges.is_empty() {
            reply.add_iova_ranges(ranges)?;
        }
        Ok(reply)
    }

    fn add_iova_ranges(&mut self, ranges: &[IovaRange]) -> Result {
        let head = CapIovaRangeHead {
            header: CapHeader::new(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1),
            nr_iovas: u32::try_from(ranges.len()).map_err(|_| EINVAL)?,
            reserved: 0,
        };
        let mut body = KVec::new();
        body.extend_from_slice(as_bytes(&head), GFP_KERNEL)?;
        for r in ranges {
            let raw = IovaRangeRaw {
                start: r.start(),
                end: r.last(),
            };
            body.extend_from_slice(as_bytes(&raw), GFP_KERNEL)?;
        }
        self.push_cap(&body)
    }

    fn add_cap<T: AsBytes>(&mut self, cap: &T) -> Result {
        self.push_cap(as_bytes(cap))
    }

    /// Appends one capability (header included), padded to 8 bytes, and
    /// links the previous one's `next` to it. `next` counts from the start
    /// of the info struct, which the chain follows.
    fn push_cap(&mut self, cap: &[u8]) -> Result {
        let off = self.caps.len();
        let len = cap.len().next_multiple_of(8);
        let end = off.checked_add(len).ok_or(ENOMEM)?;
        let prev = self.last.replace(off);
        self.caps.resize(end, 0, GFP_KERNEL)?;
        self.caps
            .get_mut(off..)
            .and_then(|b| b.get_mut(..cap.len()))
            .ok_or(EINVAL)?
            .copy_from_slice(cap);
        if let Some(prev) = prev {
            let next =
                u32::try_from(off.saturating_add(size_of::<InfoRaw>())).map_err(|_| EINVAL)?;
            let at = prev.saturating_add(offset_of!(CapHeader, next));
            self.caps
                .get_mut(at..at.saturating_add(4))
                .ok_or(EINVAL)?
                .copy_from_slice(&next.to_ne_bytes());
        }
        Ok(())
    }

    /// Writes the reply as the C module does: the chain only if it fits in
    /// `argsz` (else `argsz` says how much is needed), and at most `argsz`
    /// bytes of the fixed struct.
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub(crate) fn write(&self, arg: usize, req: &InfoRequest) -> Result {
        let mut info = InfoRaw {
            argsz: req.argsz,
            flags: bindings::VFIO_IOMMU_INFO_PGSIZES,
            iova_pgsizes: self.pgsizes,
            ..Default::default()
        };
        if !self.caps.is_empty() {
            info.flags |= bindings::VFIO_IOMMU_INFO_CAPS;
            let needed = size_of::<InfoRaw>().saturating_add(self.caps.len());
            if (req.argsz as usize) < needed {
                info.argsz = u32::try_from(needed).map_err(|_| EINVAL)?;
            } else {
                UserSlice::new(
                    crate::compat::user_ptr(user_addr(arg, size_of::<InfoRaw>())?),
                    self.caps.len(),
                )
                .writer()
                .write_slice(&self.caps)?;
                info.cap_offset = size_of::<InfoRaw>() as u32;
            }
        }
        let n = (req.argsz as usize).min(size_of::<InfoRaw>());
        write_user(arg, &info, n)
    }
}

impl CapHeader {
    fn new(id: u32, version: u16) -> Self {
        Self {
            // Capability ids are small constants.
            id: id as u16,
            version,
            next: 0,
        }
    }
}

/// What kind of group vfio core attaches (`enum vfio_group_type`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupType {
    /// Devices behind an IOMMU: the group gets a paging domain.
    Iommu,
    /// Emulated-IOMMU (mdev) devices: no domain; they use pin_pages/dma_rw.
    Emulated,
    /// Anything else (no-IOMMU groups): not for type1.
    Other,
}

impl GroupType {
    pub(crate) fn from_raw(t: bindings::vfio_group_type) -> Self {
        match t {
            bindings::vfio_group_type_VFIO_IOMMU => Self::Iommu,
            bindings::vfio_group_type_VFIO_EMULATED_IOMMU => Self::Emulated,
            _ => Self::Other,
        }
    }
}

/// Container flavours this backend implements (the `VFIO_SET_IOMMU` arg).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IommuType {
    /// `VFIO_TYPE1_IOMMU`: unmaps may split a mapping.
    V1,
    /// `VFIO_TYPE1v2_IOMMU` (and the retired nesting id, which the C module
    /// also treats as v2 from Linux 6.13 on).
    V2,
    /// `VFIO_TYPE1_NESTING_IOMMU` where the C module still honours it
    /// (Linux 6.12): v2, with nesting enabled on each new domain.
    Nesting,
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
            bindings::VFIO_TYPE1v2_IOMMU => Ok(Self::V2),
            bindings::__VFIO_RESERVED_TYPE1_NESTING_IOMMU if cfg!(vfio_rs_c_nesting) => {
                Ok(Self::Nesting)
            }
            bindings::__VFIO_RESERVED_TYPE1_NESTING_IOMMU => Ok(Self::V2),
            _ => Err(EINVAL),
        }
    }
}

/// Extension ids answered by `VFIO_CHECK_EXTENSION`.
pub(crate) enum Extension {
    Type1,
    Type1v2,
    Nesting,
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
            Ok(bindings::__VFIO_RESERVED_TYPE1_NESTING_IOMMU) => Self::Nesting,
            Ok(bindings::VFIO_UNMAP_ALL) => Self::UnmapAll,
            Ok(bindings::VFIO_UPDATE_VADDR) => Self::UpdateVaddr,
            Ok(bindings::VFIO_DMA_CC_IOMMU) => Self::DmaCc,
            _ => Self::Unknown,
        }
    }
}
