// SPDX-License-Identifier: GPL-2.0

//! `Mapping`: one user DMA mapping (`VFIO_IOMMU_MAP_DMA`), and `Mappings`,
//! the container's mappings keyed by IOVA.
//!
//! Where a mapping lives (its IOVA range, in `Mappings`) is kept apart from
//! what it pins (`PinnedPages`), as iommufd keeps `iopt_area` apart from
//! `iopt_pages`.

use kernel::alloc::KVVec;
use kernel::page::PAGE_SHIFT;
use kernel::prelude::*;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::bindings;
use crate::emulated::ExternalPins;
use crate::iova::HasRange;
use crate::iova::IovaRange;
use crate::iova::IovaSlot;
use crate::iova::IovaTree;
use crate::pin::Owner;
use crate::pin::PinnedPages;

/// Device access rights of a mapping.
///
/// # Invariants
///
/// Holds `IOMMU_READ`, `IOMMU_WRITE` or both, nothing else.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prot(u32);

impl Prot {
    /// The rights `VFIO_DMA_MAP_FLAG_{READ,WRITE}` ask for; `None` for none.
    pub(crate) fn from_map_flags(flags: u32) -> Option<Self> {
        let mut prot = 0;
        if flags & bindings::VFIO_DMA_MAP_FLAG_READ != 0 {
            prot |= bindings::IOMMU_READ;
        }
        if flags & bindings::VFIO_DMA_MAP_FLAG_WRITE != 0 {
            prot |= bindings::IOMMU_WRITE;
        }
        // INVARIANT: only the two bits, at least one.
        (prot != 0).then_some(Self(prot))
    }

    pub(crate) fn readable(self) -> bool {
        self.0 & bindings::IOMMU_READ != 0
    }

    pub(crate) fn writable(self) -> bool {
        self.0 & bindings::IOMMU_WRITE != 0
    }

    /// Whether a driver's `IOMMU_READ`/`IOMMU_WRITE` request is allowed.
    pub(crate) fn allows(self, requested: u32) -> bool {
        self.0 & requested == requested
    }

    /// The bits for `iommu_map`.
    pub(crate) fn iommu_bits(self) -> u32 {
        self.0
    }
}

/// One user mapping: `range` of IOVA backed by user memory at `vaddr`.
pub(crate) struct Mapping {
    pub(crate) range: IovaRange,
    pub(crate) vaddr: u64,
    pub(crate) prot: Prot,
    /// Set by `VFIO_DMA_UNMAP_FLAG_VADDR` until a new vaddr is supplied;
    /// changed only through [`Mappings`], which counts such mappings.
    vaddr_invalid: bool,
    /// The process whose memory this is.
    pub(crate) owner: Owner,
    /// Every page, pinned and mapped; `None` while the container has no
    /// IOMMU domain (only emulated devices).
    pub(crate) pinned: Option<PinnedPages>,
    /// Pages pinned by emulated devices (`pin_pages`).
    pub(crate) external: ExternalPins,
    /// While dirty tracking is on: pages written by `dma_rw` or pinned by a
    /// device since the last report, and those they held at it (or at
    /// START), one bit per page: so every page they hold now, as in C's
    /// bitmap. Reports read it in place (nothing to allocate).
    pub(crate) dirty: Option<KVVec<u64>>,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Devices should have unpinned in their dma_unmap callback.
        if !self.external.is_empty() {
            pr_warn!(
                "mapping at iova {:#x} released with {} device-pinned pages\n",
                self.range.start(),
                self.external.count()
            );
        }
        self.external.release(&self.owner);
    }
}

impl Mapping {
    /// A new mapping of `range` at `vaddr` (its vaddr valid).
    pub(crate) fn new(
        range: IovaRange,
        vaddr: u64,
        prot: Prot,
        owner: Owner,
        pinned: Option<PinnedPages>,
        external: ExternalPins,
    ) -> Self {
        Self {
            range,
            vaddr,
            prot,
            vaddr_invalid: false,
            owner,
            pinned,
            external,
            dirty: None,
        }
    }

    /// Whether the vaddr was invalidated (`VFIO_DMA_UNMAP_FLAG_VADDR`).
    pub(crate) fn vaddr_invalid(&self) -> bool {
        self.vaddr_invalid
    }

    /// Records the pages of `[offset, offset + len)` (bytes from the
    /// mapping's start, `len > 0`) as dirty for the next report, if tracking.
    pub(crate) fn mark_dirty_span(&mut self, offset: u64, len: usize) {
        let last = offset.saturating_add((len as u64).saturating_sub(1));
        let (first, last) = (offset >> PAGE_SHIFT, last >> PAGE_SHIFT);
        if let Some(words) = self.dirty.as_mut() {
            for bit in first..=last {
                set_bit(words, bit);
            }
        }
    }

    /// Every page is dirty: a device that could write anywhere left. (Bits
    /// past the last page are never reported.)
    pub(crate) fn mark_all_dirty(&mut self) {
        if let Some(words) = self.dirty.as_mut() {
            words.fill(u64::MAX);
        }
    }

    /// Allocates the (clear) dirty bitmap when tracking starts.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn start_dirty(&mut self) -> Result {
        if self.dirty.is_none() {
            let npages = self.npages()?;
            let mut words = KVVec::new();
            words.resize(npages.div_ceil(64), 0u64, GFP_KERNEL_ACCOUNT)?;
            self.dirty = Some(words);
            self.mark_device_pinned();
        }
        Ok(())
    }

    /// Marks the pages devices hold pinned now: they stay dirty until the
    /// report after they are unpinned (C's vfio_dma_populate_bitmap, at
    /// START and after each report).
    fn mark_device_pinned(&mut self) {
        let start = self.range.start();
        if let Some(words) = self.dirty.as_mut() {
            for iova in self.external.iovas() {
                set_bit(words, iova.saturating_sub(start) >> PAGE_SHIFT);
            }
        }
    }

    /// Reported: starts over with only the pages devices keep pinned.
    pub(crate) fn restart_dirty(&mut self) {
        if let Some(d) = self.dirty.as_mut() {
            d.fill(0);
        }
        self.mark_device_pinned();
    }

    /// The mapping's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.range.size()
    }

    /// The mapping's size in pages.
    ///
    /// # Errors
    ///
    /// `ENOMEM` where that does not fit in a `usize`.
    pub(crate) fn npages(&self) -> Result<usize> {
        usize::try_from(self.size() >> PAGE_SHIFT).map_err(|_| ENOMEM)
    }
}

/// Sets bit `bit` of `words`; bits past the end are ignored.
fn set_bit(words: &mut [u64], bit: u64) {
    let word = usize::try_from(bit / 64)
        .ok()
        .and_then(|w| words.get_mut(w));
    if let Some(w) = word {
        *w |= 1u64 << (bit % 64);
    }
}

/// The container's mappings, keyed by their first IOVA, and the two counts
/// the ABI reports about them. The counts change only in `insert`,
/// `remove`, `invalidate_vaddr` and `update_vaddr`.
///
/// # Invariants
///
/// Mappings never overlap; each is stored under `range.start()`.
/// `avail + len(tree)` is the `dma_entry_limit` of the time of creation;
/// `vaddr_invalid` counts the mappings whose vaddr is invalid.
pub(crate) struct Mappings {
    tree: IovaTree<Mapping>,
    avail: u32,
    vaddr_invalid: u32,
}

/// A tree node allocated before taking the container lock.
pub(crate) type MappingSlot = IovaSlot<Mapping>;

/// Every read-only lookup of the tree (`find`, `first_overlapping`,
/// `covered`, `bisects`, ...); changes go through `Mappings`, which keeps
/// the counters.
impl core::ops::Deref for Mappings {
    type Target = IovaTree<Mapping>;

    fn deref(&self) -> &IovaTree<Mapping> {
        &self.tree
    }
}

impl HasRange for Mapping {
    fn range(&self) -> IovaRange {
        self.range
    }
}

impl Mappings {
    /// No mappings; at most `limit` may exist at once.
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            tree: IovaTree::new(),
            avail: limit,
            vaddr_invalid: 0,
        }
    }

    /// How many more mappings may be created (`VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`).
    pub(crate) fn avail(&self) -> u32 {
        self.avail
    }

    /// How many mappings have an invalid vaddr; while any has, nothing may
    /// pin (attach, pin_pages, dma_rw answer EBUSY).
    pub(crate) fn vaddr_invalid_count(&self) -> u32 {
        self.vaddr_invalid
    }

    /// Marks the vaddr of the mapping at `start` invalid.
    pub(crate) fn invalidate_vaddr(&mut self, start: u64) {
        if let Some(m) = self.tree.get_mut(start) {
            if !m.vaddr_invalid {
                m.vaddr_invalid = true;
                // Cannot overflow: at most `u32::MAX` mappings exist.
                self.vaddr_invalid = self.vaddr_invalid.saturating_add(1);
            }
        }
    }

    /// Gives the invalidated mapping at `start` its new `vaddr`, and `owner`
    /// if that is another process.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the new owner cannot be charged the pinned pages.
    pub(crate) fn update_vaddr(&mut self, start: u64, vaddr: u64, owner: Owner) -> Result {
        let Some(m) = self.tree.get_mut(start) else {
            return Err(ENOENT);
        };
        // As C's vfio_change_dma_owner(): the same mm keeps its owner (the
        // task and CAP_IPC_LOCK of the MAP); only another process takes over.
        if !m.owner.same_mm(&owner) {
            if let Some(p) = m.pinned.as_mut() {
                p.change_owner(owner.clone())?;
            }
            m.owner = owner;
        }
        m.vaddr = vaddr;
        if m.vaddr_invalid {
            m.vaddr_invalid = false;
            // Cannot underflow: `m` was counted (type invariant).
            self.vaddr_invalid = self.vaddr_invalid.saturating_sub(1);
        }
        Ok(())
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Mapping> {
        self.tree.iter_mut()
    }

    pub(crate) fn get_mut(&mut self, start: u64) -> Option<&mut Mapping> {
        self.tree.get_mut(start)
    }

    /// Adds `m`, which overlaps no mapping and has its vaddr valid; the
    /// caller checked `avail() > 0` under the same lock.
    pub(crate) fn insert(&mut self, slot: MappingSlot, m: Mapping) {
        // INVARIANT: one more mapping, one less available (`avail > 0` was
        // checked by the caller); a new mapping's vaddr is valid.
        self.avail = self.avail.saturating_sub(1);
        self.tree.insert(slot, m);
    }

    /// Takes the mapping at `start` out; dropping it unpins and unaccounts,
    /// so the caller unmaps it from every domain first.
    pub(crate) fn remove(&mut self, start: u64) -> Option<Mapping> {
        let m = self.tree.remove(start)?;
        // INVARIANT: one mapping less; it no longer counts as invalid.
        // Neither can overflow (type invariant).
        self.avail = self.avail.saturating_add(1);
        if m.vaddr_invalid {
            self.vaddr_invalid = self.vaddr_invalid.saturating_sub(1);
        }
        Some(m)
    }

    /// How many mappings there are.
    pub(crate) fn len(&self) -> usize {
        self.tree.iter().count()
    }
}
