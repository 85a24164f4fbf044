// SPDX-License-Identifier: GPL-2.0

//! IOVA interval arithmetic: the container's valid IOVA ranges.
//!
//! Convention: every range is `[start, last]` with an inclusive `last`, so a
//! range may end at `u64::MAX` without overflow.

use kernel::prelude::*;

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
    /// `EINVAL` for a zero size, `EOVERFLOW` if the range passes `u64::MAX`.
    pub(crate) fn from_size(start: u64, size: u64) -> Result<Self> {
        let last = start
            .checked_add(size.checked_sub(1).ok_or(EINVAL)?)
            .ok_or(EOVERFLOW)?;
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

#[kunit_tests(vfio_rs_iova)]
mod tests {
    use super::*;

    fn r(start: u64, last: u64) -> IovaRange {
        IovaRange::new(start, last).unwrap()
    }

    #[test]
    fn from_size_checks() {
        assert_eq!(IovaRange::from_size(0, 0), Err(EINVAL));
        assert_eq!(IovaRange::from_size(u64::MAX, 2), Err(EOVERFLOW));
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

    #[test]
    fn unconstrained_allows_everything() {
        assert!(ValidRanges::unconstrained().allows(&r(0, u64::MAX)));
    }
}
