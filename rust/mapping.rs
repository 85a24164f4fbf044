// SPDX-License-Identifier: GPL-2.0

//! `Mapping`: one user DMA mapping (`VFIO_IOMMU_MAP_DMA`), and `Mappings`,
//! the container's mappings keyed by IOVA.
//!
//! Where a mapping lives (its IOVA range, in `Mappings`) is kept apart from
//! what it pins (`PinnedPages`), as iommufd keeps `iopt_area` apart from
//! `iopt_pages`.

use kernel::rbtree::RBTree;
use kernel::rbtree::RBTreeNodeReservation;

use kernel::alloc::KVVec;
use kernel::prelude::*;

use crate::emulated::ExternalPins;
use crate::iova::IovaRange;
use crate::pin::Owner;
use crate::pin::PinnedPages;

/// Device access rights of a mapping (`IOMMU_READ`/`IOMMU_WRITE` bits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prot(pub(crate) u32);

impl Prot {
    pub(crate) fn writable(self) -> bool {
        self.0 & crate::bindings::IOMMU_WRITE != 0
    }
}

/// One user mapping: `range` of IOVA backed by user memory at `vaddr`.
pub(crate) struct Mapping {
    pub(crate) range: IovaRange,
    pub(crate) vaddr: u64,
    pub(crate) prot: Prot,
    /// Set by `VFIO_DMA_UNMAP_FLAG_VADDR` until a new vaddr is supplied.
    pub(crate) vaddr_invalid: bool,
    /// The process whose memory this is.
    pub(crate) owner: Owner,
    /// Every page, pinned and mapped; `None` while the container has no
    /// IOMMU domain (only emulated devices).
    pub(crate) pinned: Option<PinnedPages>,
    /// Pages pinned by emulated devices (`pin_pages`).
    pub(crate) external: ExternalPins,
    /// While dirty tracking is on: pages written by `dma_rw` or pinned by a
    /// device since the last report, one bit per page.
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
    /// Records a page as dirty for the next report, if tracking.
    pub(crate) fn mark_dirty(&mut self, iova: u64) {
        let bit = ((iova - self.range.start()) >> kernel::page::PAGE_SHIFT) as usize;
        if let Some(words) = self.dirty.as_mut() {
            if let Some(w) = words.get_mut(bit / 64) {
                *w |= 1u64 << (bit % 64);
            }
        }
    }

    /// Allocates the (clear) dirty bitmap when tracking starts.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn start_dirty(&mut self) -> Result {
        if self.dirty.is_none() {
            let npages = (self.size() >> kernel::page::PAGE_SHIFT) as usize;
            let mut words = KVVec::new();
            words.resize(npages.div_ceil(64), 0u64, GFP_KERNEL)?;
            self.dirty = Some(words);
        }
        Ok(())
    }

    /// The pages to report dirty when no IOMMU-backed group can dirty any
    /// page: those marked since the last report and those pinned by devices.
    pub(crate) fn dirty_bits(&self) -> Result<KVVec<u64>> {
        let npages = (self.size() >> kernel::page::PAGE_SHIFT) as usize;
        let mut words = KVVec::new();
        words.resize(npages.div_ceil(64), 0u64, GFP_KERNEL)?;
        if let Some(d) = &self.dirty {
            for (w, s) in words.iter_mut().zip(d.iter()) {
                *w |= *s;
            }
        }
        for iova in self.external.iovas() {
            let bit = ((iova - self.range.start()) >> kernel::page::PAGE_SHIFT) as usize;
            words[bit / 64] |= 1u64 << (bit % 64);
        }
        Ok(words)
    }

    pub(crate) fn clear_dirty(&mut self) {
        if let Some(d) = self.dirty.as_mut() {
            d.iter_mut().for_each(|w| *w = 0);
        }
    }

    pub(crate) fn size(&self) -> u64 {
        // `last - start + 1` cannot overflow for a mapping: its size came
        // from a u64 `size` field.
        self.range.last() - self.range.start() + 1
    }
}

/// The container's mappings, keyed by their first IOVA.
///
/// # Invariants
///
/// Mappings never overlap; each is stored under `range.start()`.
pub(crate) struct Mappings {
    tree: RBTree<u64, Mapping>,
}

/// A tree node allocated before taking the container lock.
pub(crate) type MappingSlot = RBTreeNodeReservation<u64, Mapping>;

impl Mappings {
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.tree.values()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Mapping> {
        self.tree.values_mut()
    }

    /// The mapping that contains `iova`, if any.
    pub(crate) fn find(&self, iova: u64) -> Option<&Mapping> {
        // The mapping starting at or before `iova` is the only candidate.
        let key = match self.tree.cursor_lower_bound(&iova) {
            Some(c) if *c.current().0 == iova => iova,
            Some(c) => *c.peek_prev()?.0,
            None => *self.tree.cursor_back()?.current().0,
        };
        self.tree.get(&key).filter(|m| iova <= m.range.last())
    }

    /// Whether any mapping overlaps `r`.
    pub(crate) fn overlaps(&self, r: &IovaRange) -> bool {
        self.first_overlapping(r).is_some()
    }

    /// The key of the lowest mapping overlapping `r`.
    pub(crate) fn first_overlapping(&self, r: &IovaRange) -> Option<u64> {
        if let Some(m) = self.find(r.start()) {
            return Some(m.range.start());
        }
        let c = self.tree.cursor_lower_bound(&r.start())?;
        let (&start, _) = c.current();
        (start <= r.last()).then_some(start)
    }

    /// Adds `m`, which overlaps no mapping (checked by the caller).
    pub(crate) fn insert(&mut self, slot: MappingSlot, m: Mapping) {
        // INVARIANT: the caller checked `m` overlaps nothing.
        let start = m.range.start();
        self.tree.insert(slot.into_node(start, m));
    }

    pub(crate) fn get_mut(&mut self, start: u64) -> Option<&mut Mapping> {
        self.tree.get_mut(&start)
    }

    pub(crate) fn get(&self, start: u64) -> Option<&Mapping> {
        self.tree.get(&start)
    }

    /// The key of the next mapping after the one at `start`.
    pub(crate) fn next_key(&self, start: u64) -> Option<u64> {
        let c = self.tree.cursor_lower_bound(&start)?;
        c.peek_next().map(|(&k, _)| k)
    }

    pub(crate) fn first_key(&self) -> Option<u64> {
        self.tree.cursor_front().map(|c| *c.current().0)
    }

    pub(crate) fn remove(&mut self, start: u64) -> Option<Mapping> {
        self.tree.remove(&start)
    }
}
