// SPDX-License-Identifier: GPL-2.0

//! Dirty page tracking for live migration: what is reported dirty, into
//! the user bitmaps of `VFIO_IOMMU_DIRTY_PAGES` (its ioctl is
//! `container/dirty.rs`) and of `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`.
//!
//! A device behind an IOMMU domain may write any page it can reach and
//! type1 cannot see which, so while such a group is attached every page of
//! every mapping is reported dirty, at every query (the C module's rule).
//! With only emulated devices, each mapping keeps a bitmap of the pages
//! written by `dma_rw` since the last report, and the pages the devices
//! keep pinned are dirty too. When an IOMMU-backed group leaves, every page
//! is marked dirty once more (it may have written anything before).

use kernel::prelude::*;
use kernel::uaccess::UserSlice;

use crate::iova::IovaRange;
use crate::mapping::Mapping;
use crate::uapi::UserBitmap;

impl UserBitmap {
    /// Writes `mapping`'s dirty bits (`src`, one bit per page; `None`: every
    /// page) into the user bitmap, whose bit 0 is the page at `base`. Words
    /// wholly covered are written; a first word shared with what comes
    /// before keeps the user's bits (so adjacent mappings sharing a word
    /// combine), in the last the bits past it are 0.
    ///
    /// # Errors
    ///
    /// `EFAULT`; `EINVAL` if `mapping` starts below `base`. Allocates
    /// nothing, so a report fails only where C's does.
    pub(crate) fn report(
        &self,
        base: u64,
        mapping: &IovaRange,
        pgshift: u32,
        src: Option<&[u64]>,
    ) -> Result {
        let nbits = mapping.size() >> pgshift;
        let bit_offset = mapping.start().checked_sub(base).ok_or(EINVAL)? >> pgshift;
        let (first_word, shift) = (bit_offset / 64, bit_offset % 64);
        // Bits to write, counted from the start of the first word.
        let total = nbits.checked_add(shift).ok_or(EINVAL)?;
        let nwords = total.div_ceil(64);
        // The C module ORs the whole first word back (`bitmap_or` over
        // `shift` bits covers the full first long), so the user's own bits
        // in it survive: keep that ABI.
        let leftover = match shift {
            0 => 0,
            _ => self.read_word(first_word)?,
        };
        // Words go out 512 bytes at a time from the stack (one copy_to_user
        // per 4096 pages): nothing to allocate mid-operation.
        let mut stack = [0u64; 64];
        let buf: &mut [u64] = &mut stack;
        let mut w = 0u64;
        while w < nwords {
            let n =
                usize::try_from(nwords.saturating_sub(w)).map_or(buf.len(), |n| n.min(buf.len()));
            let words = buf.get_mut(..n).ok_or(EINVAL)?;
            let stream = Stream {
                shift,
                total,
                nwords,
                src,
            };
            stream.fill(w, words);
            if w == 0 {
                if let Some(first) = words.first_mut() {
                    *first |= leftover;
                }
            }
            self.write_words(first_word.saturating_add(w), words)?;
            w = w.saturating_add(n as u64);
        }
        Ok(())
    }

    /// The user address of word `index` of the bitmap.
    fn word_addr(&self, index: u64) -> Result<usize> {
        let addr = index
            .checked_mul(8)
            .and_then(|off| self.data.checked_add(off));
        addr.and_then(|a| usize::try_from(a).ok()).ok_or(EFAULT)
    }

    fn read_word(&self, index: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        UserSlice::new(crate::compat::user_ptr(self.word_addr(index)?), b.len())
            .reader()
            .read_slice(&mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    fn write_words(&self, index: u64, words: &[u64]) -> Result {
        let bytes: &[u8] = crate::compat::as_bytes(words);
        UserSlice::new(crate::compat::user_ptr(self.word_addr(index)?), bytes.len())
            .writer()
            .write_slice(bytes)
    }
}

/// The words of one report: bits `[shift, total)` of `nwords` words are a
/// mapping's pages, `src` or all dirty.
struct Stream<'a> {
    shift: u64,
    total: u64,
    nwords: u64,
    src: Option<&'a [u64]>,
}

impl Stream<'_> {
    /// Fills `words` with the report's words from index `w` on.
    fn fill(&self, w: u64, words: &mut [u64]) {
        let Some(src) = self.src else {
            // Every page dirty: whole words need no composing, only the
            // first and the last of the report.
            words.fill(u64::MAX);
            let end = w.saturating_add(words.len() as u64);
            for index in [0, self.nwords.saturating_sub(1)] {
                if (w..end).contains(&index) {
                    let at = usize::try_from(index.saturating_sub(w)).unwrap_or(usize::MAX);
                    if let Some(word) = words.get_mut(at) {
                        *word = compose_word(index, self.shift, self.total, None);
                    }
                }
            }
            return;
        };
        for (index, word) in (w..).zip(words.iter_mut()) {
            *word = compose_word(index, self.shift, self.total, Some(src));
        }
    }
}

/// Word `index` of a report whose bits `[shift, total)` (counted from the
/// first word's bit 0) are a mapping's pages, `src` (one bit per page) or
/// all dirty (`None`); every other bit is 0.
fn compose_word(index: u64, shift: u64, total: u64, src: Option<&[u64]>) -> u64 {
    let lo = index.saturating_mul(64);
    let (s, e) = (shift.max(lo), total.min(lo.saturating_add(64)));
    if s >= e {
        return 0;
    }
    // Cannot wrap: `shift <= s < e` and `lo <= s < lo + 64`.
    let (n, at, up) = (e.wrapping_sub(s), s.wrapping_sub(shift), s.wrapping_sub(lo));
    let bits = match src {
        Some(src) => bits_at(src, at, n),
        None => ones(n),
    };
    bits.wrapping_shl(up as u32)
}

/// Reports one mapping into a user bitmap: every page while an IOMMU-backed
/// group could have written any of them (`all_dirty`), else its record (the
/// pages written by `dma_rw` or pinned by emulated devices; every page if it
/// had none, which tracking rules out). Allocates nothing.
///
/// # Errors
///
/// `EFAULT`; `EINVAL` (see `UserBitmap::report`).
pub(crate) fn report_mapping(
    bm: &UserBitmap,
    base: u64,
    m: &Mapping,
    pgshift: u32,
    all_dirty: bool,
) -> Result {
    let src = if all_dirty { None } else { m.dirty.as_deref() };
    bm.report(base, &m.range, pgshift, src)
}

/// `n` bits (`1 <= n <= 64`) of `words` from bit `at`, in the low bits
/// (bits past the end of `words` are 0).
fn bits_at(words: &[u64], at: u64, n: u64) -> u64 {
    let word = |i: u64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| words.get(i))
            .copied()
            .unwrap_or(0)
    };
    let (w, b) = (at / 64, (at % 64) as u32);
    let lo = word(w) >> b;
    let hi = match b {
        0 => 0,
        // `1 <= 64 - b <= 63`.
        _ => word(w.saturating_add(1)) << 64u32.wrapping_sub(b),
    };
    (lo | hi) & ones(n)
}

/// `n` low bits set, `1 <= n <= 64`.
fn ones(n: u64) -> u64 {
    match n {
        64.. => u64::MAX,
        // `n < 64`: the shift fits and the result is at least 1.
        _ => (1u64 << n).wrapping_sub(1),
    }
}

#[cfg(vfio_rs_kunit)]
#[kunit_tests(vfio_rs_dirty)]
mod tests {
    use super::*;

    #[test]
    fn ones_edges() {
        assert_eq!(ones(1), 1);
        assert_eq!(ones(63), u64::MAX >> 1);
        assert_eq!(ones(64), u64::MAX);
    }

    #[test]
    fn bits_at_crosses_words() {
        let w = [0xf000_0000_0000_0000u64, 0x3];
        assert_eq!(bits_at(&w, 60, 6), 0x3f);
        assert_eq!(bits_at(&w, 0, 64), 0xf000_0000_0000_0000);
        assert_eq!(bits_at(&w, 64, 2), 0x3);
        assert_eq!(bits_at(&w, 100, 5), 0);
    }

    #[test]
    fn compose_word_places_bits() {
        // A 3-page mapping at bit 62: bits 62, 63 of word 0, bit 0 of word 1.
        assert_eq!(compose_word(0, 62, 65, None), 0xc000_0000_0000_0000);
        assert_eq!(compose_word(1, 62, 65, None), 0x1);
        assert_eq!(compose_word(2, 62, 65, None), 0);
        // Only the pages in `src`: page 1 of the mapping is bit 63.
        assert_eq!(compose_word(0, 62, 65, Some(&[0b010])), 1 << 63);
        assert_eq!(compose_word(1, 62, 65, Some(&[0b010])), 0);
    }

    #[test]
    fn compose_word_no_stale_bits() {
        // The C module's stale-bit bug: after a report at a non-zero offset
        // its bitmap keeps shifted-out bits. Ours composes every report from
        // the mapping's bits alone, so a report at offset 0 of a mapping
        // whose page 0 only is dirty has exactly bit 0.
        assert_eq!(compose_word(0, 5, 5 + 64, Some(&[1])), 1 << 5);
        assert_eq!(compose_word(0, 0, 64, Some(&[1])), 1);
        assert_eq!(compose_word(1, 0, 64, Some(&[1])), 0);
    }

    #[test]
    fn validate_rejects_overflow() {
        let bm = UserBitmap::new(1, 8, 0x1000);
        assert_eq!(bm.validate(u64::MAX), Err(EINVAL));
        let odd = UserBitmap::new(0x966d_49e2_a25d_fa6f, 8, 0x1000);
        assert_eq!(odd.validate(u64::MAX), Err(EINVAL));
        assert_eq!(UserBitmap::new(0, 8, 0x1000).validate(0x1000), Err(EINVAL));
    }

    #[test]
    fn bitmap_size_limits() {
        use crate::uapi::BITMAP_SIZE_MAX;
        assert_eq!(BITMAP_SIZE_MAX, 0x1000_0000);
    }
}
