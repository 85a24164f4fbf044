// SPDX-License-Identifier: GPL-2.0

//! Dirty page tracking for live migration: `VFIO_IOMMU_DIRTY_PAGES` and the
//! bitmap of `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`.
//!
//! A device behind an IOMMU domain may write any page it can reach and
//! type1 cannot see which, so while tracking is on every page of every
//! mapping is reported dirty, at every query (the C module's rule for
//! IOMMU-backed groups). No per-page state is kept.

use kernel::prelude::*;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use crate::bindings;
use crate::iova::IovaRange;
use crate::uapi::u64_at;

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
    /// Parses the 24 bytes of a `struct vfio_bitmap`.
    pub(crate) fn from_bytes(b: &[u8]) -> Self {
        Self {
            pgsize: u64_at(b, 0),
            size: u64_at(b, 8),
            data: u64_at(b, 16),
        }
    }

    /// The checks done before taking the container lock: the buffer is a
    /// user range, and it is large enough (and not absurdly large) for
    /// `size` bytes of IOVA at `pgsize` granularity.
    ///
    /// # Errors
    ///
    /// `EINVAL`.
    pub(crate) fn validate(&self, size: u64) -> Result {
        // SAFETY: only compares the range against the user address limit.
        if !unsafe { bindings::vfio_rs_access_ok(self.data as c_ulong, self.size as c_ulong) } {
            return Err(EINVAL);
        }
        // `__ffs(0)` is undefined in C; every such request fails later
        // anyway (pgsize must equal the IOMMU page size), so fail here.
        if self.pgsize == 0 {
            return Err(EINVAL);
        }
        let npages = size >> self.pgsize.trailing_zeros();
        if npages == 0
            || self.size == 0
            || self.size > BITMAP_SIZE_MAX
            || self.size < npages.next_multiple_of(64) / 8
        {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Writes `mapping`'s dirty bits (`src`, one bit per page; `None`: every
    /// page) into the user bitmap, whose bit 0
    /// is the page at `base`. Words wholly covered are written; a first word
    /// shared with what comes before keeps the user's bits (so adjacent
    /// mappings sharing a word combine), in the last the bits past it are 0.
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub(crate) fn report(
        &self,
        base: u64,
        mapping: &IovaRange,
        pgshift: u32,
        src: Option<&[u64]>,
    ) -> Result {
        let nbits = (mapping.last() - mapping.start() + 1) >> pgshift;
        let bit_offset = (mapping.start() - base) >> pgshift;
        let first_word = bit_offset / 64;
        let shift = bit_offset % 64;
        // Bits to write, counted from the start of the first word.
        let total = nbits + shift;
        let nwords = total.div_ceil(64);
        let word_addr = |w: u64| (self.data + (first_word + w) * 8) as usize;

        let leftover = if shift != 0 {
            let mut b = [0u8; 8];
            UserSlice::new(UserPtr::from_addr(word_addr(0)), 8)
                .reader()
                .read_slice(&mut b)?;
            // The C module ORs the whole word back (`bitmap_or` over
            // `shift` bits covers the full first long), so the user's own
            // bits in it survive: keep that ABI.
            u64::from_ne_bytes(b)
        } else {
            0
        };
        let mut buf = [0u64; 64];
        let mut w = 0u64;
        while w < nwords {
            let n = (nwords - w).min(buf.len() as u64);
            for (i, word) in buf.iter_mut().take(n as usize).enumerate() {
                let lo = (w + i as u64) * 64;
                let (s, e) = (shift.max(lo), total.min(lo + 64));
                *word = if s >= e {
                    0
                } else if let Some(src) = src {
                    bits_at(src, s - shift, e - s) << (s - lo)
                } else {
                    ones(e - s) << (s - lo)
                };
                if w + i as u64 == 0 {
                    *word |= leftover;
                }
            }
            let bytes: &[u8] = kernel::transmute::AsBytes::as_bytes(&buf[..n as usize]);
            UserSlice::new(UserPtr::from_addr(word_addr(w)), bytes.len())
                .writer()
                .write_slice(bytes)?;
            w += n;
        }
        Ok(())
    }
}

/// `n` bits (`1 <= n <= 64`) of `words` from bit `at`, in the low bits.
fn bits_at(words: &[u64], at: u64, n: u64) -> u64 {
    let (w, b) = ((at / 64) as usize, at % 64);
    let lo = words.get(w).copied().unwrap_or(0) >> b;
    let hi = if b == 0 {
        0
    } else {
        words.get(w + 1).copied().unwrap_or(0) << (64 - b)
    };
    (lo | hi) & ones(n)
}

/// `n` low bits set, `1 <= n <= 64`.
fn ones(n: u64) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

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
    fn bitmap_size_limits() {
        assert_eq!(BITMAP_SIZE_MAX, 0x1000_0000);
    }
}
