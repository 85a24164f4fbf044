// SPDX-License-Identifier: GPL-2.0

//! `RunList`: the physically contiguous runs of pfns behind one mapping,
//! kept so that unmap can unpin a whole run with one call and replay can
//! map a mapping into a new domain without looking anything up.
//!
//! Bounded memory: the record must not cost more than the last level of
//! the IOMMU page table it shadows (8 bytes per 4 KiB page, 2 MiB per
//! GiB), whatever the fragmentation, and a mapping that is one run must
//! cost no allocation at all. So runs are a stream of u32 words:
//!
//! - `0 | pfn:31` — one pinned page (the common case of fragmented 4 KiB
//!   memory): 4 bytes a page, 1 MiB per GiB;
//! - `1 | pinned:1 | npages:30`, `pfn low 32`, `pfn high 32` — any other
//!   run: 12 bytes for at least two pages (or for one page of a device BAR
//!   or above 8 TiB of physical memory), at most 6 bytes a page.
//!
//! The first [`INLINE_WORDS`] words live in the struct itself (a one-run
//! mapping allocates nothing); the rest in 2 KiB chunks charged to the
//! caller's memory cgroup (`GFP_KERNEL_ACCOUNT`, as the IOMMU page tables
//! are), which are trimmed once the mapping is complete. Worst case: 6
//! bytes a page, plus at most one partly used chunk and 16 bytes of chunk
//! pointer per chunk — under 1.6 MiB per GiB.

use kernel::alloc::KVVec;
use kernel::prelude::*;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

/// Words kept in the struct itself: one long-form run.
pub(crate) const INLINE_WORDS: usize = 3;

/// Words per chunk: 2 KiB, a kmalloc size class of its own.
const CHUNK_WORDS: usize = 512;

/// Most pages one long-form run may hold (longer runs are split).
pub(crate) const MAX_RUN_PAGES: usize = (1 << 30) - 1;

/// The bytes of `npages` pages (saturating: no mapping comes near it).
pub(crate) fn page_bytes(npages: usize) -> u64 {
    (npages as u64).saturating_mul(kernel::page::PAGE_SIZE as u64)
}

/// What backs a run: pinned user memory, or device memory of a VM_PFNMAP
/// range (a BAR), mapped without a pin and not accounted, as in C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backing {
    Pinned,
    Pfnmap,
}

/// A physically contiguous run of pages, what a domain maps.
///
/// # Invariants
///
/// Made from a pfn only by [`PfnRun::new`], which is `unsafe`: where the
/// pages were just pinned ([`Backing::Pinned`]), or were found to be device
/// memory of a VM_PFNMAP range ([`Backing::Pfnmap`]). Pieces, merges and the decoded records of
/// such runs (this file) are such runs. So no run names pages that were
/// never pinned. A run is `Copy`: that it is not mapped after its pins go
/// is kept by the flows' order (the `Mapped` guard is dropped before the
/// `PinnedPages`; every remove path unmaps before it unpins), not by this
/// type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PfnRun {
    pfn: usize,
    npages: usize,
    backing: Backing,
}

impl PfnRun {
    /// A run of `npages` pages from `pfn`.
    ///
    /// # Safety
    ///
    /// [`Backing::Pinned`]: the pages are pinned by the caller, who keeps
    /// them so for as long as any IOVA mapping made from this run exists
    /// (it unmaps before it unpins). [`Backing::Pfnmap`]: the pfns were
    /// device memory of a VM_PFNMAP range of the caller's mm when looked up
    /// (as in C, nothing keeps the BAR mapped in that mm afterwards).
    pub(crate) unsafe fn new(pfn: usize, npages: usize, backing: Backing) -> Self {
        // INVARIANT: the caller's guarantee is the invariant.
        Self {
            pfn,
            npages,
            backing,
        }
    }

    /// The first pfn.
    pub(crate) fn pfn(&self) -> usize {
        self.pfn
    }

    /// The number of pages.
    pub(crate) fn npages(&self) -> usize {
        self.npages
    }

    /// What backs the pages.
    pub(crate) fn backing(&self) -> Backing {
        self.backing
    }

    /// Grows the run by `next` if `next` follows it physically, is of the
    /// same kind and the sum stays within [`MAX_RUN_PAGES`]; returns
    /// whether it did.
    pub(crate) fn absorb(&mut self, next: &PfnRun) -> bool {
        let contiguous =
            self.backing == next.backing && self.pfn.checked_add(self.npages) == Some(next.pfn);
        let fits = self.npages.saturating_add(next.npages) <= MAX_RUN_PAGES;
        if contiguous && fits {
            // INVARIANT: both halves were runs; so is their union.
            self.npages = self.npages.saturating_add(next.npages);
        }
        contiguous && fits
    }

    /// The run's length in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        page_bytes(self.npages)
    }

    /// The words encoding this run (`npages` at most [`MAX_RUN_PAGES`]).
    fn encode(&self) -> ([u32; 3], usize) {
        match u32::try_from(self.pfn) {
            Ok(pfn) if self.backing == Backing::Pinned && self.npages == 1 && pfn < 1 << 31 => {
                ([pfn, 0, 0], 1)
            }
            _ => {
                let pfn = self.pfn as u64;
                let head = (1u32 << 31)
                    | (u32::from(self.backing == Backing::Pinned) << 30)
                    | (self.npages as u32 & ((1 << 30) - 1));
                ([head, pfn as u32, (pfn >> 32) as u32], 3)
            }
        }
    }
}

/// `run` cut into runs of at most `MAX_RUN_PAGES` pages, in order.
fn pieces(run: PfnRun) -> impl Iterator<Item = PfnRun> {
    let mut left = run;
    core::iter::from_fn(move || {
        let n = left.npages.min(MAX_RUN_PAGES);
        if n == 0 {
            return None;
        }
        let piece = PfnRun { npages: n, ..left };
        left.npages = left.npages.saturating_sub(n);
        left.pfn = left.pfn.saturating_add(n);
        Some(piece)
    })
}

/// Runs in IOVA order, compactly encoded (see the file's comment).
///
/// # Invariants
///
/// Words `0..len` hold whole encoded runs: the first `INLINE_WORDS` in
/// `inline`, word `i >= INLINE_WORDS` in `chunks[(i - INLINE_WORDS) /
/// CHUNK_WORDS]`; `chunks` holds at least enough chunks for `len` words
/// (`None`, or empty after a failed `reserve`, for none: dropping even an
/// empty `KVVec` calls into the allocator, once per unmap).
/// `nruns`, `npages` and `largest` describe the runs stored.
pub(crate) struct RunList {
    inline: [u32; INLINE_WORDS],
    chunks: Option<KVVec<KBox<[u32; CHUNK_WORDS]>>>,
    len: usize,
    nruns: usize,
    largest: usize,
}

impl RunList {
    pub(crate) fn new() -> Self {
        Self {
            inline: [0; INLINE_WORDS],
            chunks: None,
            len: 0,
            nruns: 0,
            largest: 0,
        }
    }

    /// How many runs are stored.
    pub(crate) fn count(&self) -> usize {
        self.nruns
    }

    /// The longest run, in pages.
    pub(crate) fn largest(&self) -> usize {
        self.largest
    }

    /// Bytes allocated for the record (beyond the struct itself).
    pub(crate) fn heap_bytes(&self) -> usize {
        let chunk = core::mem::size_of::<[u32; CHUNK_WORDS]>();
        let ptrs = self
            .chunks
            .as_ref()
            .map_or(0, |c| c.capacity())
            .saturating_mul(core::mem::size_of::<usize>());
        self.chunks()
            .len()
            .saturating_mul(chunk)
            .saturating_add(ptrs)
    }

    fn chunks(&self) -> &[KBox<[u32; CHUNK_WORDS]>] {
        self.chunks.as_deref().unwrap_or(&[])
    }

    /// Makes room for `nruns` more runs, so that `push` of that many cannot
    /// fail.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn reserve(&mut self, nruns: usize) -> Result {
        let words = self.len.saturating_add(nruns.saturating_mul(3));
        let needed = words.saturating_sub(INLINE_WORDS).div_ceil(CHUNK_WORDS);
        let more = needed.saturating_sub(self.chunks().len());
        if more == 0 {
            return Ok(());
        }
        let chunks = self.chunks.get_or_insert_with(KVVec::new);
        chunks.reserve(more, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..more {
            let chunk = KBox::new([0u32; CHUNK_WORDS], GFP_KERNEL_ACCOUNT)?;
            // Cannot fail: reserved above.
            chunks.push(chunk, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(())
    }

    /// Frees the chunks `reserve` made that no run used.
    pub(crate) fn trim(&mut self) {
        let used = self.len.saturating_sub(INLINE_WORDS).div_ceil(CHUNK_WORDS);
        if used == 0 {
            self.chunks = None;
        } else if let Some(chunks) = self.chunks.as_mut() {
            chunks.truncate(used);
            let _ = chunks.shrink_to(used, GFP_KERNEL_ACCOUNT);
        }
    }

    /// Appends `run` (split into runs of at most `MAX_RUN_PAGES` pages, each
    /// counting as one for `reserve`). Room was made by `reserve`; if not
    /// every piece fits, nothing is recorded and `false` is returned (the
    /// caller's invariants say it cannot be), so that the caller, which
    /// then gives the whole run back, never finds part of it here too.
    #[must_use]
    pub(crate) fn push(&mut self, run: PfnRun) -> bool {
        let words = pieces(run).fold(0usize, |sum, p| sum.saturating_add(p.encode().1));
        if !self.has_room(words) {
            return false;
        }
        for piece in pieces(run) {
            let (words, count) = piece.encode();
            for w in words.iter().take(count) {
                self.put_word(*w);
            }
            self.nruns = self.nruns.saturating_add(1);
            self.largest = self.largest.max(piece.npages);
        }
        true
    }

    fn has_room(&self, words: usize) -> bool {
        let capacity = INLINE_WORDS.saturating_add(self.chunks().len().saturating_mul(CHUNK_WORDS));
        self.len.saturating_add(words) <= capacity
    }

    fn put_word(&mut self, w: u32) {
        if let Some(slot) = self.word_mut(self.len) {
            *slot = w;
            self.len = self.len.saturating_add(1);
        }
    }

    fn word_mut(&mut self, i: usize) -> Option<&mut u32> {
        match i.checked_sub(INLINE_WORDS) {
            None => self.inline.get_mut(i),
            Some(j) => self
                .chunks
                .as_mut()?
                .get_mut(j / CHUNK_WORDS)?
                .get_mut(j % CHUNK_WORDS),
        }
    }

    fn word(&self, i: usize) -> Option<u32> {
        match i.checked_sub(INLINE_WORDS) {
            None => self.inline.get(i).copied(),
            Some(j) => self
                .chunks()
                .get(j / CHUNK_WORDS)?
                .get(j % CHUNK_WORDS)
                .copied(),
        }
    }

    /// The runs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PfnRun> + '_ {
        let mut i = 0usize;
        core::iter::from_fn(move || {
            if i >= self.len {
                return None;
            }
            let head = self.word(i)?;
            if head & (1 << 31) == 0 {
                i = i.saturating_add(1);
                return Some(PfnRun {
                    pfn: head as usize,
                    npages: 1,
                    backing: Backing::Pinned,
                });
            }
            let lo = u64::from(self.word(i.saturating_add(1))?);
            let hi = u64::from(self.word(i.saturating_add(2))?);
            i = i.saturating_add(3);
            Some(PfnRun {
                pfn: ((hi << 32) | lo) as usize,
                npages: (head & ((1 << 30) - 1)) as usize,
                backing: if head & (1 << 30) != 0 {
                    Backing::Pinned
                } else {
                    Backing::Pfnmap
                },
            })
        })
    }
}

#[cfg(vfio_rs_kunit)]
#[kunit_tests(vfio_rs_runs)]
mod tests {
    use super::*;

    fn run(pfn: usize, npages: usize, pinned: bool) -> PfnRun {
        let backing = if pinned {
            Backing::Pinned
        } else {
            Backing::Pfnmap
        };
        PfnRun {
            pfn,
            npages,
            backing,
        }
    }

    #[test]
    fn one_run_stays_inline() -> Result {
        let mut l = RunList::new();
        l.reserve(1)?;
        l.trim();
        assert!(l.push(run(0x1_2345_6789, 512, true)));
        assert_eq!(l.heap_bytes(), 0);
        let mut it = l.iter();
        assert_eq!(it.next(), Some(run(0x1_2345_6789, 512, true)));
        assert_eq!(it.next(), None);
        Ok(())
    }

    #[test]
    fn fragmented_pages_cost_four_bytes() -> Result {
        const N: usize = 4096;
        let mut l = RunList::new();
        l.reserve(N)?;
        for i in 0..N {
            // Scattered single pages.
            assert!(l.push(run(i.wrapping_mul(7919) % 100_000, 1, true)));
        }
        l.trim();
        // 4 bytes a page, in 2 KiB chunks, plus the chunk pointers.
        assert!(l.heap_bytes() <= N * 4 + 2048 + 64);
        assert_eq!(l.count(), N);
        for (i, r) in l.iter().enumerate() {
            assert_eq!(r, run(i.wrapping_mul(7919) % 100_000, 1, true));
        }
        Ok(())
    }

    #[test]
    fn long_and_unpinned_runs_round_trip() -> Result {
        let mut l = RunList::new();
        l.reserve(4)?;
        assert!(l.push(run(0x8000_0000, 1, true))); // pfn beyond 31 bits
        assert!(l.push(run(0x10, 1, false))); // a BAR page
        assert!(l.push(run(0x20, MAX_RUN_PAGES + 2, true))); // split in two
        let v: KVec<PfnRun> = {
            let mut v = KVec::new();
            for r in l.iter() {
                v.push(r, GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(
            &v[..],
            &[
                run(0x8000_0000, 1, true),
                run(0x10, 1, false),
                run(0x20, MAX_RUN_PAGES, true),
                run(0x20 + MAX_RUN_PAGES, 2, true),
            ]
        );
        assert_eq!(l.largest(), MAX_RUN_PAGES);
        Ok(())
    }

    #[test]
    fn long_run_recorded_whole_or_not_at_all() -> Result {
        // Room for one run (the inline words) but the run takes two: a
        // first piece left behind would be unpinned twice by the caller.
        let mut l = RunList::new();
        assert!(!l.push(run(0x20, MAX_RUN_PAGES + 1, true)));
        assert_eq!(l.count(), 0);
        assert_eq!(l.iter().next(), None);
        assert_eq!(l.largest(), 0);
        // With room for both pieces it is recorded in two.
        l.reserve(2)?;
        assert!(l.push(run(0x20, MAX_RUN_PAGES + 1, true)));
        assert_eq!(l.count(), 2);
        let mut it = l.iter();
        assert_eq!(it.next(), Some(run(0x20, MAX_RUN_PAGES, true)));
        assert_eq!(it.next(), Some(run(0x20 + MAX_RUN_PAGES, 1, true)));
        assert_eq!(it.next(), None);
        Ok(())
    }
}
