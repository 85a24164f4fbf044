// SPDX-License-Identifier: GPL-2.0

//! IOVA interval arithmetic: the container's valid IOVA ranges.
//!
//! Convention: every range is `[start, last]` with an inclusive `last`, so a
//! range may end at `u64::MAX` without overflow.

use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::rbtree::RBTreeNodeReservation;

use crate::compat::range_overflow;

/// A non-empty IOVA range `[start, last]`.
///
/// # Invariants
///
/// `start <= last`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IovaRange {
    start: u64,
    last: u64,
}

impl IovaRange {
    /// `[start, last]`, or `None` if `start > last`.
    pub(crate) fn new(start: u64, last: u64) -> Option<Self> {
        // INVARIANT: checked.
        (start <= last).then_some(Self { start, last })
    }

    /// The whole IOVA space, `[0, u64::MAX]`.
    pub(crate) fn full() -> Self {
        Self {
            start: 0,
            last: u64::MAX,
        }
    }

    /// The one-address range `[x, x]`.
    pub(crate) fn point(x: u64) -> Self {
        Self { start: x, last: x }
    }

    /// `[start, start + size - 1]`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero size, `EOVERFLOW` if the range passes `u64::MAX`
    /// (`EINVAL` where the C module predates that errno: `range_overflow`).
    pub(crate) fn from_size(start: u64, size: u64) -> Result<Self> {
        let last = start
            .checked_add(size.checked_sub(1).ok_or(EINVAL)?)
            .ok_or_else(range_overflow)?;
        // INVARIANT: `last >= start` since the addition did not overflow.
        Ok(Self { start, last })
    }

    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// The size in bytes, `last - start + 1` (saturating: only the whole
    /// IOVA space, which no mapping or request covers, has 2^64 bytes).
    pub(crate) fn size(&self) -> u64 {
        // Cannot underflow: `start <= last` (type invariant).
        self.last.wrapping_sub(self.start).saturating_add(1)
    }

    /// Whether `other` lies entirely inside `self`.
    pub(crate) fn contains(&self, other: &IovaRange) -> bool {
        self.start <= other.start && other.last <= self.last
    }

    pub(crate) fn overlaps(&self, other: &IovaRange) -> bool {
        self.start <= other.last && other.start <= self.last
    }

    /// The common part of two ranges, if any.
    pub(crate) fn intersect(&self, other: &IovaRange) -> Option<IovaRange> {
        IovaRange::new(self.start.max(other.start), self.last.min(other.last))
    }
}

/// The IOVA ranges a user may map: the domains' common aperture minus every
/// reserved region of every attached group.
///
/// # Invariants
///
/// `ranges` is sorted and its ranges neither overlap nor touch.
pub(crate) struct ValidRanges {
    ranges: KVec<IovaRange>,
}

impl ValidRanges {
    /// No constraint yet (no domain): the C module's empty list.
    pub(crate) fn unconstrained() -> Self {
        Self {
            ranges: KVec::new(),
        }
    }

    /// One range covering `aperture`.
    pub(crate) fn from_aperture(aperture: IovaRange) -> Result<Self> {
        let mut ranges = KVec::with_capacity(1, GFP_KERNEL)?;
        ranges.push(aperture, GFP_KERNEL)?;
        Ok(Self { ranges })
    }

    pub(crate) fn ranges(&self) -> &[IovaRange] {
        &self.ranges
    }

    /// These ranges clipped to `aperture`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if nothing is left, `ENOMEM`.
    pub(crate) fn intersect(&self, aperture: &IovaRange) -> Result<Self> {
        let mut ranges = KVec::with_capacity(self.ranges.len(), GFP_KERNEL)?;
        for r in self.ranges.iter().filter_map(|r| r.intersect(aperture)) {
            ranges.push(r, GFP_KERNEL)?;
        }
        if ranges.is_empty() {
            return Err(EINVAL);
        }
        // INVARIANT: clipping keeps the ranges sorted and disjoint.
        Ok(Self { ranges })
    }

    /// Whether `r` may be mapped: it lies inside one valid range (or nothing
    /// constrains the container yet).
    pub(crate) fn allows(&self, r: &IovaRange) -> bool {
        self.ranges.is_empty() || self.ranges.iter().any(|v| v.contains(r))
    }

    /// Removes `hole` from the valid ranges, splitting a range in two when
    /// the hole is strictly inside it.
    ///
    /// # Errors
    ///
    /// `ENOMEM`; on error `self` is unchanged.
    pub(crate) fn exclude(&mut self, hole: &IovaRange) -> Result {
        let mut out = KVec::with_capacity(self.ranges.len().saturating_add(1), GFP_KERNEL)?;
        for r in self.ranges.iter() {
            if !r.overlaps(hole) {
                out.push(*r, GFP_KERNEL)?;
                continue;
            }
            // The part below the hole, if any (`hole.start > r.start >= 0`).
            if let Some(last) = hole.start.checked_sub(1).filter(|_| r.start < hole.start) {
                out.push(
                    IovaRange {
                        start: r.start,
                        last,
                    },
                    GFP_KERNEL,
                )?;
            }
            // The part above it, if any (`hole.last < r.last <= u64::MAX`).
            if let Some(start) = hole.last.checked_add(1).filter(|_| hole.last < r.last) {
                out.push(
                    IovaRange {
                        start,
                        last: r.last,
                    },
                    GFP_KERNEL,
                )?;
            }
        }
        // INVARIANT: pieces of sorted, disjoint ranges stay sorted and disjoint.
        self.ranges = out;
        Ok(())
    }
}

/// The ranges of items of an [`IovaTree`] (each item's key is its range's
/// start), the first few kept inline (most unmaps cover one mapping: no
/// allocation for them, and no free: an empty `KVec` still calls `kfree`
/// when dropped).
///
/// # Invariants
///
/// The ranges are `inline[..len]` while `len <= INLINE_KEYS`, else `heap`.
pub(crate) struct Keys {
    inline: [IovaRange; INLINE_KEYS],
    len: usize,
    heap: Option<KVec<IovaRange>>,
}

const INLINE_KEYS: usize = 8;

impl Keys {
    fn new() -> Self {
        Self {
            inline: [IovaRange::point(0); INLINE_KEYS],
            len: 0,
            heap: None,
        }
    }

    fn push(&mut self, r: IovaRange) -> Result {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = r;
        } else {
            let heap = match self.heap.as_mut() {
                Some(heap) => heap,
                None => {
                    let mut heap = KVec::with_capacity(INLINE_KEYS.saturating_mul(2), GFP_KERNEL)?;
                    heap.extend_from_slice(&self.inline, GFP_KERNEL)?;
                    self.heap.insert(heap)
                }
            };
            heap.push(r, GFP_KERNEL)?;
        }
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    pub(crate) fn as_slice(&self) -> &[IovaRange] {
        match (self.inline.get(..self.len), &self.heap) {
            (Some(ranges), _) => ranges,
            (None, Some(heap)) => heap,
            (None, None) => &[],
        }
    }
}

/// Something that occupies an IOVA range.
pub(crate) trait HasRange {
    fn range(&self) -> IovaRange;
}

impl HasRange for IovaRange {
    fn range(&self) -> IovaRange {
        *self
    }
}

/// Items that occupy disjoint IOVA ranges, keyed by their first IOVA, with
/// the lookups type1 needs (the C module's vfio_find_dma and friends).
///
/// # Invariants
///
/// Items never overlap; each is stored under `range().start()`.
pub(crate) struct IovaTree<T> {
    tree: RBTree<u64, T>,
}

/// A node allocated ahead, so that inserting cannot fail (e.g. before
/// taking a lock).
pub(crate) type IovaSlot<T> = RBTreeNodeReservation<u64, T>;

impl<T: HasRange> IovaTree<T> {
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.tree.values()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.tree.values_mut()
    }

    pub(crate) fn get(&self, start: u64) -> Option<&T> {
        self.tree.get(&start)
    }

    pub(crate) fn get_mut(&mut self, start: u64) -> Option<&mut T> {
        self.tree.get_mut(&start)
    }

    /// Adds `item`, which overlaps nothing here (checked by the caller).
    pub(crate) fn insert(&mut self, slot: IovaSlot<T>, item: T) {
        // INVARIANT: the caller checked that `item` overlaps nothing.
        let start = item.range().start();
        self.tree.insert(slot.into_node(start, item));
    }

    pub(crate) fn remove(&mut self, start: u64) -> Option<T> {
        self.tree.remove(&start)
    }

    pub(crate) fn first_key(&self) -> Option<u64> {
        self.tree.keys().next().copied()
    }

    /// The ranges of the items ending at or after `iova`, in order: the
    /// item containing `iova` (if any) first. Lazy: one tree walk for the
    /// first two items, one more per item after that (the C module's
    /// vfio_find_dma_first_node() and rb_next()).
    #[cfg(vfio_rs_rbtree_ref_cursor)]
    pub(crate) fn ranges_from(&self, iova: u64) -> impl Iterator<Item = IovaRange> + '_ {
        // What to yield next and, if known, the item after it; else where
        // to walk from when the next one is asked for.
        let mut ready = self.first_ending_at_or_after(iova);
        let mut walk_from: Option<u64> = None;
        core::iter::from_fn(move || {
            if let Some(start) = walk_from.take() {
                let c = self.tree.cursor_lower_bound(&start)?;
                ready = c.peek_next().map(|(_, v)| (v.range(), None));
            }
            let (cur, after) = ready.take()?;
            match after {
                Some(next) => ready = next.map(|n| (n, None)),
                None => walk_from = Some(cur.start()),
            }
            Some(cur)
        })
    }

    /// One walk: the lowest item ending at or after `iova`, and (`Some`)
    /// the item after it (`None` inside: there is none).
    #[cfg(vfio_rs_rbtree_ref_cursor)]
    #[allow(clippy::type_complexity)]
    fn first_ending_at_or_after(
        &self,
        iova: u64,
    ) -> Option<(IovaRange, Option<Option<IovaRange>>)> {
        let Some(c) = self.tree.cursor_lower_bound(&iova) else {
            // Every item starts before `iova`: only the last can reach it.
            let last = self.tree.cursor_back()?.current().1.range();
            return (last.last() >= iova).then_some((last, Some(None)));
        };
        let cur = c.current().1.range();
        // An item starting before `iova` may contain it.
        if let Some((_, prev)) = c.peek_prev().filter(|_| cur.start() != iova) {
            let prev = prev.range();
            if prev.last() >= iova {
                return Some((prev, Some(Some(cur))));
            }
        }
        Some((cur, Some(c.peek_next().map(|(_, v)| v.range()))))
    }

    /// The ranges of the items ending at or after `iova`, in order (6.12's
    /// cursors need `&mut`: one scan).
    #[cfg(not(vfio_rs_rbtree_ref_cursor))]
    pub(crate) fn ranges_from(&self, iova: u64) -> impl Iterator<Item = IovaRange> + '_ {
        self.tree
            .values()
            .map(|v| v.range())
            .skip_while(move |r| r.last() < iova)
    }

    /// The range of the item that contains `iova`, if any.
    fn range_at(&self, iova: u64) -> Option<IovaRange> {
        self.ranges_from(iova).next().filter(|r| r.start() <= iova)
    }

    /// The item that contains `iova`, if any.
    pub(crate) fn find(&self, iova: u64) -> Option<&T> {
        self.tree.get(&self.range_at(iova)?.start())
    }

    /// The key of the lowest item overlapping `r`.
    pub(crate) fn first_overlapping(&self, r: &IovaRange) -> Option<u64> {
        let first = self.ranges_from(r.start()).next()?;
        (first.start() <= r.last()).then_some(first.start())
    }

    /// Whether any item overlaps `r`.
    pub(crate) fn overlaps(&self, r: &IovaRange) -> bool {
        self.first_overlapping(r).is_some()
    }

    /// Whether `r` cuts an item: starts or ends strictly inside one (the v2
    /// unmap and GET_BITMAP refuse that).
    pub(crate) fn bisects(&self, r: &IovaRange) -> bool {
        let cut_start = self
            .range_at(r.start())
            .is_some_and(|m| m.start() != r.start());
        let cut_end = self
            .range_at(r.last())
            .is_some_and(|m| m.last() != r.last());
        cut_start || cut_end
    }

    /// The ranges of the items an unmap of `r` acts on: from the first item
    /// overlapping it, while they start inside it. v1 (`!v2`) also stops at
    /// an item that starts before `r`: it unmaps only items whose first
    /// IOVA is covered, and reports what it did.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn covered(&self, r: &IovaRange, v2: bool) -> Result<Keys> {
        let mut keys = Keys::new();
        for m in self.ranges_from(r.start()) {
            if m.start() > r.last() || (!v2 && m.start() < r.start()) {
                break;
            }
            keys.push(m)?;
        }
        Ok(keys)
    }
}

#[cfg(vfio_rs_kunit)]
#[kunit_tests(vfio_rs_iova)]
mod tests {
    use super::*;

    fn r(start: u64, last: u64) -> IovaRange {
        IovaRange::new(start, last).unwrap()
    }

    #[test]
    fn from_size_checks() {
        assert_eq!(IovaRange::from_size(0, 0), Err(EINVAL));
        assert_eq!(IovaRange::from_size(u64::MAX, 2), Err(range_overflow()));
        assert_eq!(IovaRange::from_size(u64::MAX, 1), Ok(r(u64::MAX, u64::MAX)));
        assert_eq!(IovaRange::from_size(0x1000, 0x1000), Ok(r(0x1000, 0x1fff)));
    }

    #[test]
    fn exclude_splits_and_trims() -> Result {
        let mut v = ValidRanges::from_aperture(r(0, u64::MAX))?;
        v.exclude(&r(0xfee0_0000, 0xfeef_ffff))?;
        assert_eq!(v.ranges(), &[r(0, 0xfedf_ffff), r(0xfef0_0000, u64::MAX)]);
        v.exclude(&r(0, 0xfff))?;
        assert_eq!(
            v.ranges(),
            &[r(0x1000, 0xfedf_ffff), r(0xfef0_0000, u64::MAX)]
        );
        v.exclude(&r(0xf000_0000, u64::MAX))?;
        assert_eq!(v.ranges(), &[r(0x1000, 0xefff_ffff)]);
        assert!(v.allows(&r(0x1000, 0x1fff)));
        assert!(!v.allows(&r(0xefff_f000, 0xf000_0fff)));
        Ok(())
    }

    fn tree() -> Result<IovaTree<IovaRange>> {
        let mut t = IovaTree::new();
        for item in [r(0x1000, 0x1fff), r(0x3000, 0x4fff), r(0x6000, 0x6fff)] {
            t.insert(IovaSlot::new(GFP_KERNEL)?, item);
        }
        Ok(t)
    }

    #[test]
    fn tree_find_and_overlap() -> Result {
        let t = tree()?;
        assert_eq!(t.find(0x3fff), Some(&r(0x3000, 0x4fff)));
        assert_eq!(t.find(0x2000), None);
        assert_eq!(t.find(0), None);
        assert_eq!(t.find(u64::MAX), None);
        assert_eq!(t.first_overlapping(&r(0x2000, 0x3000)), Some(0x3000));
        assert_eq!(t.first_overlapping(&r(0x1800, 0x7000)), Some(0x1000));
        assert_eq!(t.first_overlapping(&r(0x7000, u64::MAX)), None);
        let mut from = t.ranges_from(0x3800);
        assert_eq!(from.next(), Some(r(0x3000, 0x4fff)));
        assert_eq!(from.next(), Some(r(0x6000, 0x6fff)));
        assert_eq!(from.next(), None);
        assert_eq!(t.ranges_from(0x5000).next(), Some(r(0x6000, 0x6fff)));
        assert_eq!(t.ranges_from(0x6fff).next(), Some(r(0x6000, 0x6fff)));
        assert_eq!(t.ranges_from(0x7000).next(), None);
        assert_eq!(t.ranges_from(0).count(), 3);
        assert_eq!(t.ranges_from(0x1000).count(), 3);
        Ok(())
    }

    #[test]
    fn tree_covered_v1_v2() -> Result {
        let t = tree()?;
        // v2 takes every item starting inside the range.
        let all = [r(0x1000, 0x1fff), r(0x3000, 0x4fff), r(0x6000, 0x6fff)];
        assert_eq!(t.covered(&r(0x1000, 0x6fff), true)?.as_slice(), &all);
        assert_eq!(t.covered(&r(0x1800, 0x6fff), true)?.as_slice(), &all);
        // v1 stops at an item that starts before the range.
        assert!(t.covered(&r(0x1800, 0x6fff), false)?.as_slice().is_empty());
        assert_eq!(
            t.covered(&r(0x2000, 0x5fff), false)?.as_slice(),
            &[r(0x3000, 0x4fff)]
        );
        Ok(())
    }

    #[test]
    fn keys_spill_to_heap() -> Result {
        let mut keys = Keys::new();
        for k in 0..20u64 {
            keys.push(IovaRange::point(k))?;
        }
        assert_eq!(keys.as_slice().len(), 20);
        assert_eq!(keys.as_slice().last(), Some(&IovaRange::point(19)));
        assert_eq!(keys.as_slice().first(), Some(&IovaRange::point(0)));
        Ok(())
    }

    #[test]
    fn tree_bisects() -> Result {
        let t = tree()?;
        assert!(!t.bisects(&r(0x1000, 0x4fff)));
        assert!(!t.bisects(&r(0x2000, 0x2fff)));
        assert!(t.bisects(&r(0x1800, 0x4fff)));
        assert!(t.bisects(&r(0x1000, 0x3fff)));
        assert!(!t.bisects(&r(0, u64::MAX)));
        Ok(())
    }

    #[test]
    fn unconstrained_allows_everything() {
        assert!(ValidRanges::unconstrained().allows(&r(0, u64::MAX)));
    }
}
