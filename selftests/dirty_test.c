// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty page tracking through the type1 backend (live migration):
 * VFIO_IOMMU_DIRTY_PAGES START / STOP / GET_BITMAP and
 * VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, with the
 * errno of the C module for every rejected input and the exact bitmap words
 * it writes.
 *
 * The test groups are IOMMU-backed (edu devices bound to vfio-pci), so the
 * container has a "non pinned" group: type1 cannot see what the device
 * writes and reports every page of every mapping in a requested range as
 * dirty, on every GET_BITMAP and on every dirty-bitmap unmap.
 *
 * The bitmap is written one 64-bit word at a time, per mapping: a mapping
 * starting at bit b of the bitmap (b = (dma->iova - base iova) / PG, the
 * bitmap's pgsize being the IOMMU's smallest page: the base page) writes
 * the words b/64 .. (b + npages - 1)/64 whole. If b % 64 != 0 the word b/64
 * is first read back from the user and OR'ed in (so bits below b that an
 * earlier mapping wrote, or that the user left set, survive); if b % 64 == 0
 * the bits past the mapping in its last word are overwritten. The kernel's
 * per-mapping bitmap is shifted in place for that and only its first npages
 * bits are cleared afterwards, so the shifted-out bits stay behind and show
 * up again in later reports (tests named *_stale_*).
 *
 * Every test checks in its teardown that nothing stays pinned or accounted
 * and that the backend module is unreferenced.
 */
#include "kselftest_harness.h"
#include "fixture.h"
#include "edu.h"

#include <stddef.h>

/*
 * The C module has a stale-bit bug (vfio_iommu_type1.c, update_user_bitmap()
 * l.1270-1304 with vfio_iova_dirty_bitmap() l.1343-1347): when a mapping's
 * first bit is not at a word boundary it shifts its kernel bitmap left in
 * place, and afterwards clears only the first npages bits, so the bits
 * shifted past npages stay set and come back, shifted again, in every later
 * report (pages outside the mapping reported dirty). vfio-type1-rs reports
 * every page of each mapping and nothing else. The tests below pin down
 * both: BUG_C(c, rust) (fixture.h) is the value each backend must report.
 */

#define BUF_PAGES	512		/* of anonymous memory per test (2M at 4K) */
#define BM_WORDS	8
#define PATTERN		0xa5a5a5a5a5a5a5a5ULL
#define DIRTY_MINSZ	8		/* offsetofend(vfio_iommu_type1_dirty_bitmap, flags) */
#define UNMAP_MINSZ	24		/* offsetofend(vfio_iommu_type1_dma_unmap, size) */
#define BITMAP_SIZE_MAX	0x10000000ULL	/* DIRTY_BITMAP_BYTES(INT_MAX) */
/* A kernel address: access_ok() fails for it on both arches. */
#define KERNEL_PTR	((uint64_t *)(uintptr_t)0xffff800000000000ULL)

/* struct vfio_iommu_type1_dirty_bitmap followed by ..._dirty_bitmap_get */
struct dirty_get_arg {
	uint32_t argsz;
	uint32_t flags;
	struct vfio_iommu_type1_dirty_bitmap_get get;
};

/* struct vfio_iommu_type1_dma_unmap followed by struct vfio_bitmap */
struct unmap_bitmap_arg {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t size;
	struct vfio_bitmap bitmap;
};

_Static_assert(sizeof(struct vfio_iommu_type1_dirty_bitmap) == DIRTY_MINSZ, "dirty hdr");
_Static_assert(sizeof(struct dirty_get_arg) == 48, "dirty get arg");
_Static_assert(sizeof(struct vfio_iommu_type1_dma_unmap) == UNMAP_MINSZ, "unmap hdr");
_Static_assert(offsetof(struct unmap_bitmap_arg, bitmap) == UNMAP_MINSZ, "unmap arg");
_Static_assert(sizeof(struct unmap_bitmap_arg) == 48, "unmap arg size");

FIXTURE(dirty) {
	int container;
	int group;
	int group2;
	const struct vfio_test_group *g;
	struct edu dev;
	struct leak_baseline base;
	char *buf;		/* BUF_PAGES pages, populated */
	char *guard;		/* 2 pages: RW then PROT_NONE */
	char *ro;		/* 1 read-only page */
	uint64_t bm[BM_WORDS];
};

FIXTURE_SETUP(dirty)
{
	self->container = self->group = self->group2 = -1;
	self->dev.fd = -1;
	self->dev.bar = NULL;
	self->buf = self->guard = self->ro = NULL;
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	self->buf = mmap_aligned(BUF_PAGES * PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->buf);
	memset(self->buf, 0x11, BUF_PAGES * PG);
	self->guard = mmap_aligned(2 * PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->guard);
	memset(self->guard, 0, 2 * PG);
	ASSERT_EQ(0, mprotect(self->guard + PG, PG, PROT_NONE));
	self->ro = mmap_aligned(PG, PG, PROT_READ);
	ASSERT_NE(NULL, self->ro);
	fixture_open(_metadata, &self->container, &self->group, &self->g, true, 0);
}

FIXTURE_TEARDOWN(dirty)
{
	edu_close(&self->dev);
	close_fd(&self->group2);
	close_fd(&self->group);
	close_fd(&self->container);
	if (self->buf)
		munmap(self->buf, BUF_PAGES * PG);
	if (self->guard)
		munmap(self->guard, 2 * PG);
	if (self->ro)
		munmap(self->ro, PG);
	leak_check(_metadata, &self->base);
}

/* ---- helpers ------------------------------------------------------------ */

static long dirty_flags(int c, uint32_t argsz, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = argsz, .flags = flags };

	return xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&d);
}

static long dirty_start(int c)
{
	return dirty_flags(c, DIRTY_MINSZ, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
}

static long dirty_stop(int c)
{
	return dirty_flags(c, DIRTY_MINSZ, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
}

static long get_bitmap_full(int c, uint32_t argsz, uint64_t iova, uint64_t size,
			    uint64_t pgsize, uint64_t bmsize, void *data)
{
	struct dirty_get_arg a = {
		.argsz = argsz,
		.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		.get = {
			.iova = iova, .size = size,
			.bitmap = { .pgsize = pgsize, .size = bmsize, .data = data },
		},
	};

	return xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&a);
}

/* GET_BITMAP of [iova, iova + size) at the page size into data (bmsize
 * bytes). */
static long get_bitmap(int c, uint64_t iova, uint64_t size, uint64_t bmsize, void *data)
{
	return get_bitmap_full(c, sizeof(struct dirty_get_arg), iova, size, PG, bmsize, data);
}

/* UNMAP_DMA with a struct vfio_bitmap; *unmapped gets the size field back
 * (the input size when the kernel did not write it). */
static long unmap_bitmap_full(int c, uint32_t argsz, uint32_t flags, uint64_t iova,
			      uint64_t size, uint64_t pgsize, uint64_t bmsize, void *data,
			      uint64_t *unmapped)
{
	struct unmap_bitmap_arg a = {
		.argsz = argsz, .flags = flags, .iova = iova, .size = size,
		.bitmap = { .pgsize = pgsize, .size = bmsize, .data = data },
	};
	long r = xioctl(c, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&a);

	if (unmapped)
		*unmapped = a.size;
	return r;
}

static long unmap_bitmap(int c, uint64_t iova, uint64_t size, uint64_t bmsize, void *data,
			 uint64_t *unmapped)
{
	return unmap_bitmap_full(c, sizeof(struct unmap_bitmap_arg),
				 VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size, PG, bmsize,
				 data, unmapped);
}

/* Maps npages of buf starting at page vpage at IOVA_BASE + page * PG. */
#define MAP_PAGES(page, npages, vpage) \
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + (uint64_t)(page) * PG, \
			     self->buf + (size_t)(vpage) * PG, (uint64_t)(npages) * PG, DMA_RW))

#define V2() ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))

static void bm_fill(uint64_t *bm, uint64_t v)
{
	for (int i = 0; i < BM_WORDS; i++)
		bm[i] = v;
}

/* All BM_WORDS words equal want[] (missing entries of a shorter list are
 * given by rest). */
#define EXPECT_BM(bm, rest, ...) do { \
	const uint64_t want_[] = { __VA_ARGS__ }; \
	for (int i_ = 0; i_ < BM_WORDS; i_++) { \
		uint64_t w_ = i_ < (int)(sizeof(want_) / sizeof(want_[0])) ? want_[i_] : (rest); \
		EXPECT_EQ(w_, (bm)[i_]) TH_LOG("bitmap word %d: %#llx, want %#llx", i_, \
					       (unsigned long long)(bm)[i_], \
					       (unsigned long long)w_); \
	} \
} while (0)

/* Bits lo..hi-1 (0 <= lo < hi <= 64) */
static uint64_t bits(unsigned int lo, unsigned int hi)
{
	uint64_t m = hi == 64 ? ~0ULL : (1ULL << hi) - 1;

	return m & ~((1ULL << lo) - 1);
}

/* A power of two below the page size, for the bad-pgsize lists: 4K where
 * the page is larger (a 4 KiB bitmap granule is refused on a 64 KiB
 * kernel: the IOMMU's smallest page is 64K), a quarter page otherwise. */
static uint64_t sub_page(void)
{
	return PG > SZ_4K ? SZ_4K : PG / 4;
}

/* ---- START / STOP ------------------------------------------------------- */

/* A TYPE1 (v1) container has no dirty tracking: EACCES before anything
 * else is looked at, even an unreadable argument. */
TEST_F(dirty, v1_eacces)
{
	uint64_t sz;

	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	MAP_PAGES(0, 4, 0);
	EXPECT_EQ(-EACCES, dirty_start(self->container));
	EXPECT_EQ(-EACCES, dirty_stop(self->container));
	bm_fill(self->bm, 0);
	EXPECT_EQ(-EACCES, get_bitmap(self->container, IOVA_BASE, 4 * PG, 8, self->bm));
	EXPECT_EQ(-EACCES, dirty_flags(self->container, 0, 0));
	EXPECT_EQ(-EACCES, dirty_flags(self->container, 0, ~0u));
	EXPECT_EQ(-EACCES, xioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, 0));
	/* Tracking is never on for v1: a dirty-bitmap unmap is EINVAL. */
	EXPECT_EQ(-EINVAL, unmap_bitmap(self->container, IOVA_BASE, 4 * PG, 8, self->bm, &sz));
	EXPECT_EQ(4 * PG, sz);
	EXPECT_BM(self->bm, 0, 0);
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, 4 * PG, 0, &sz));
	EXPECT_EQ(4 * PG, sz);
}

TEST_F(dirty, start_stop_args)
{
	struct vfio_iommu_type1_dirty_bitmap *d = (void *)(self->guard + PG - DIRTY_MINSZ);

	V2();
	/* argsz below offsetofend(flags) */
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, 0, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ - 1,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ - 1,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	/* no flag, unknown flags, more than one flag */
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ, 0));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ, 1u << 3));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_START | (1u << 31)));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ,
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP));
	EXPECT_EQ(-EINVAL, dirty_flags(self->container, DIRTY_MINSZ, 7));
	/* unreadable argument */
	EXPECT_EQ(-EFAULT, xioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, 0));
	EXPECT_EQ(-EFAULT, xioctl(self->container, VFIO_IOMMU_DIRTY_PAGES,
				  (unsigned long)(self->guard + PG)));
	/* The header may end right before a PROT_NONE page. */
	d->argsz = DIRTY_MINSZ;
	d->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	EXPECT_EQ(0, xioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)d));
	d->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
	EXPECT_EQ(0, xioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)d));

	/* STOP while stopped, START twice, STOP twice: all 0. A larger argsz
	 * is fine. */
	EXPECT_EQ(0, dirty_stop(self->container));
	EXPECT_EQ(0, dirty_start(self->container));
	EXPECT_EQ(0, dirty_start(self->container));
	EXPECT_EQ(0, dirty_flags(self->container, 4096, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	EXPECT_EQ(0, dirty_stop(self->container));
	EXPECT_EQ(0, dirty_stop(self->container));
	EXPECT_EQ(0, dirty_flags(self->container, 4096, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	/* Tracking left on is torn down with the container. */
	EXPECT_EQ(0, dirty_start(self->container));
}

/* ---- GET_BITMAP errors -------------------------------------------------- */

TEST_F(dirty, get_bitmap_not_started)
{
	V2();
	MAP_PAGES(0, 16, 0);
	bm_fill(self->bm, 0);
	EXPECT_EQ(-EINVAL, get_bitmap(self->container, IOVA_BASE, 16 * PG, 8, self->bm));
	ASSERT_EQ(0, dirty_start(self->container));
	EXPECT_EQ(0, get_bitmap(self->container, IOVA_BASE, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);
	ASSERT_EQ(0, dirty_stop(self->container));
	bm_fill(self->bm, 0);
	EXPECT_EQ(-EINVAL, get_bitmap(self->container, IOVA_BASE, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0);
	/* No mapping at all and not started: still EINVAL. */
	EXPECT_EQ(-EINVAL, get_bitmap(self->container, IOVA_BASE + 256 * PG, 16 * PG, 8,
				      self->bm));
}

TEST_F(dirty, get_bitmap_args)
{
	const uint64_t sz = 16 * PG;
	const uint32_t full = sizeof(struct dirty_get_arg);
	const uint64_t bad[] = { 0, 1, 512, 2048, 3 * PG, 2 * PG, 16 * PG, SZ_2M, SZ_1G,
				 sub_page() };
	uint64_t *big;
	int c = self->container;

	V2();
	MAP_PAGES(0, 16, 0);
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, PATTERN);

	/* argsz must hold the whole vfio_iommu_type1_dirty_bitmap_get */
	EXPECT_EQ(-EINVAL, get_bitmap_full(c, DIRTY_MINSZ, IOVA_BASE, sz, PG, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap_full(c, full - 1, IOVA_BASE, sz, PG, 8, self->bm));
	/* size 0 */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, 0, 8, self->bm));
	/* iova + size - 1 wraps */
	EXPECT_EQ(-E_WRAP, get_bitmap(c, ~0ULL & ~(PG - 1), 2 * PG, 8, self->bm));
	/* bitmap.data not a user address (access_ok) */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, 8, KERNEL_PTR));
	/* pgsize other than the IOMMU's smallest (the page size) */
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, get_bitmap_full(c, full, IOVA_BASE, sz, bad[i],
						   sizeof(self->bm), self->bm))
			TH_LOG("pgsize %#llx", (unsigned long long)bad[i]);
	}
	/* bitmap.size: 0, smaller than DIRTY_BITMAP_BYTES(npages) (whole
	 * 64-bit words), above 256M */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, 0, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, 2, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, 7, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX + 1, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX + 8, self->bm));
	/* 65 pages need 16 bytes (the range may extend past the mapping) */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, 65 * PG, 15, self->bm));
	/* misaligned iova / size */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + 0x800, sz, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + 8, sz, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz + 0x800, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz - 0x800, 8, self->bm));
	/* less than a page: npages 0 */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, 0x800, 8, self->bm));
	/* The range must not bisect a mapping, at either end. */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + PG, sz - PG, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz - PG, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + PG, PG, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE - 4 * PG, 8 * PG, 8, self->bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + 8 * PG, 16 * PG, 8, self->bm));
	/* None of these wrote anything. */
	EXPECT_BM(self->bm, PATTERN);

	/* A range with no mapping in it: 0, nothing written. */
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 256 * PG, sz, 8, self->bm));
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + sz, sz, 8, self->bm));
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE - sz, sz, 8, self->bm));
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 256 * PG, sz, 8, NULL));
	EXPECT_BM(self->bm, PATTERN);
	/* access_ok() is checked even when there is nothing to write */
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE + 256 * PG, sz, 8, KERNEL_PTR));

	/* Exactly enough, and the maximum bitmap.size (only the words of
	 * the mappings are touched). */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, sz, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);
	/* a user range of BITMAP_SIZE_MAX bytes, only the first page
	 * accessible */
	big = mmap(NULL, BITMAP_SIZE_MAX + PG, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, big);
	ASSERT_EQ(0, mprotect(big, PG, PROT_READ | PROT_WRITE));
	big[0] = big[1] = PATTERN;
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX, big));
	EXPECT_EQ(0xffffULL, big[0]);
	EXPECT_EQ(PATTERN, big[1]);
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX + 1, big));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX + 8, big));
	munmap(big, BITMAP_SIZE_MAX + PG);
	/* A larger argsz is fine. */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap_full(c, 4096, IOVA_BASE, sz, PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);
}

/* Checks that look at the arguments only come before the ones that need
 * the tracking state or the mappings: EOVERFLOW and EFAULT win over the
 * later EINVALs. */
TEST_F(dirty, get_bitmap_check_order)
{
	struct dirty_get_arg *a = (void *)(self->guard + PG - DIRTY_MINSZ);
	int c = self->container;
	const uint64_t top = ~0ULL & ~(PG - 1);

	V2();
	MAP_PAGES(0, 16, 0);
	/* Not started */
	EXPECT_EQ(-E_WRAP, get_bitmap(c, top, 2 * PG, 8, self->bm));
	EXPECT_EQ(-E_WRAP, get_bitmap_full(c, sizeof(*a), top, 2 * PG, 2 * PG, 8, self->bm));
	EXPECT_EQ(-E_WRAP, get_bitmap(c, top, 2 * PG, 0, KERNEL_PTR));
	EXPECT_EQ(-E_WRAP, get_bitmap(c, top + 8, 2 * PG, 8, self->bm));
	/* the range struct behind the header is unreadable */
	a->argsz = sizeof(*a);
	a->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	EXPECT_EQ(-EFAULT, xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)a));
	/* ... but argsz is checked first */
	a->argsz = sizeof(*a) - 1;
	EXPECT_EQ(-EINVAL, xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)a));
	ASSERT_EQ(0, dirty_start(c));
	a->argsz = sizeof(*a);
	EXPECT_EQ(-EFAULT, xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)a));
	EXPECT_EQ(-E_WRAP, get_bitmap(c, top, 2 * PG, 8, self->bm));
	/* the size-0 check comes before the overflow check */
	EXPECT_EQ(-EINVAL, get_bitmap(c, top, 0, 8, self->bm));
}

/* bitmap.data passes access_ok() but cannot be written: EFAULT. */
TEST_F(dirty, get_bitmap_efault)
{
	uint64_t *w;
	int c = self->container;

	V2();
	MAP_PAGES(0, 2, 0);
	MAP_PAGES(128, 2, 2);
	ASSERT_EQ(0, dirty_start(c));
	EXPECT_EQ(-EFAULT, get_bitmap(c, IOVA_BASE, 2 * PG, 8, self->ro));
	EXPECT_EQ(-EFAULT, get_bitmap(c, IOVA_BASE, 2 * PG, 8, self->guard + PG));
	EXPECT_EQ(-EFAULT, get_bitmap(c, IOVA_BASE, 2 * PG, 8, NULL));
	/* Mappings are reported one by one: the first one's words are
	 * written before the second one faults. Words 0 and 1 are writable,
	 * word 2 (bit 128) is not. */
	w = (uint64_t *)(self->guard + PG - 16);
	w[0] = w[1] = PATTERN;
	EXPECT_EQ(-EFAULT, get_bitmap(c, IOVA_BASE, 130 * PG, 24, w));
	EXPECT_EQ(0x3ULL, w[0]);
	EXPECT_EQ(PATTERN, w[1]);
	/* Both still reported in full afterwards. */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 130 * PG, 24, self->bm));
	EXPECT_BM(self->bm, 0, 0x3, 0, 0x3);

	/* At a non-zero bit offset the first word is read back from the
	 * user first: EFAULT, after the kernel bitmap was already shifted
	 * (bits 1, 2) and so never cleared: a later report at offset 0
	 * includes bit 2, for good. */
	EXPECT_EQ(-EFAULT, get_bitmap(c, IOVA_BASE - PG, 3 * PG, 8, self->guard + PG));
	for (int i = 0; i < 2; i++) {
		bm_fill(self->bm, 0);
		EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 2 * PG, 8, self->bm));
		EXPECT_BM(self->bm, 0, BUG_C(0x7, 0x3));
	}
}


/* ---- GET_BITMAP contents ------------------------------------------------ */

/* IOMMU-backed group: every page is reported dirty right after START, again
 * on every later GET_BITMAP, for mappings made while tracking, and after
 * STOP + START. */
TEST_F(dirty, get_bitmap_all_dirty)
{
	int c = self->container;
	uint64_t sz;

	V2();
	MAP_PAGES(0, 16, 0);
	MAP_PAGES(64, 64, 16);
	ASSERT_EQ(0, dirty_start(c));
	/* (a) right after START: all pages of both; the hole (bits 16..63)
	 * is written as 0 (the first mapping's word is written whole), the
	 * words past the last mapping are untouched. */
	bm_fill(self->bm, PATTERN);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 128 * PG, sizeof(self->bm), self->bm));
	EXPECT_BM(self->bm, PATTERN, 0xffff, ~0ULL);
	/* (b) again: the same, nothing was cleared for good */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 128 * PG, sizeof(self->bm), self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, ~0ULL);
	/* each mapping alone */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 64 * PG, 64 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, ~0ULL);
	/* (c) a mapping made while tracking is on */
	MAP_PAGES(192, 8, 100);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 192 * PG, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xff);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 256 * PG, 32, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, ~0ULL, 0, 0xff);
	/* (d) STOP: GET_BITMAP refused; START again: all dirty again */
	ASSERT_EQ(0, dirty_stop(c));
	EXPECT_EQ(-EINVAL, get_bitmap(c, IOVA_BASE, 256 * PG, 32, self->bm));
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 256 * PG, 32, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, ~0ULL, 0, 0xff);
	/* a mapping unmapped (without bitmap) while tracking is gone from
	 * the report */
	ASSERT_EQ(0, dma_unmap(c, IOVA_BASE + 64 * PG, 64 * PG, 0, &sz));
	EXPECT_EQ(64 * PG, sz);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 256 * PG, 32, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, 0, 0, 0xff);
}

/* Three mappings whose bits share words (at bit offsets that are not
 * multiples of 64), tracking started, and the first report of them: the
 * first word of each later mapping is OR'ed with what is already there. */
static void map_shared_words_and_report(struct __test_metadata *_metadata,
					FIXTURE_DATA(dirty) *self)
{
	int c = self->container;

	V2();
	MAP_PAGES(0, 3, 0);	/* bits 0..2 */
	MAP_PAGES(5, 2, 3);	/* bits 5..6 */
	MAP_PAGES(10, 70, 5);	/* bits 10..79 */
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 80 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, bits(0, 3) | bits(5, 7) | bits(10, 64), bits(0, 16));
}

/* Mappings at bit offsets that are not multiples of 64 share words. */
TEST_F(dirty, get_bitmap_shared_words)
{
	map_shared_words_and_report(_metadata, self);
}

/* A base iova below the first mapping: bits count from the base. */
TEST_F(dirty, get_bitmap_offset_base)
{
	int c = self->container;

	V2();
	MAP_PAGES(70, 4, 0);	/* from base - 6 pages: bits 70..73, word 1 */
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 80 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, 0, bits(6, 10));
	/* word 0 is not written (the mapping starts in word 1); STOP + START
	 * first to drop the stale shifted bits (see *_stale_* tests) */
	ASSERT_EQ(0, dirty_stop(c));
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, PATTERN);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 64 * PG, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, PATTERN, PATTERN | bits(6, 10));
}

/* Word-level write semantics with a non-zero user bitmap (the uAPI asks
 * for zeroed memory; this pins down what C does with anything else): a
 * mapping at a bit offset b with b % 64 != 0 ORs its bits into the user's
 * word; with b % 64 == 0 it overwrites its words whole. Words without a
 * mapping bit are never touched. */
TEST_F(dirty, get_bitmap_nonzero_user_bitmap)
{
	int c = self->container;

	V2();
	MAP_PAGES(5, 2, 0);
	MAP_PAGES(64, 2, 2);
	MAP_PAGES(200, 2, 4);
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, PATTERN);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 256 * PG, 32, self->bm));
	EXPECT_BM(self->bm, PATTERN, PATTERN | bits(5, 7), 0x3, PATTERN, PATTERN | bits(8, 10));
}

/* The kernel's per-mapping bitmap is shifted in place to the user's bit
 * offset and only its first npages bits are cleared afterwards: after a
 * report at a non-zero bit offset the shifted-out bits stay and are
 * reported again (shifted once more) by every later report, until STOP
 * frees the bitmap. */
TEST_F(dirty, get_bitmap_stale_shift_bits)
{
	int c = self->container;
	uint64_t sz;

	V2();
	MAP_PAGES(5, 2, 0);		/* 2 pages at bit 5 of a base at IOVA_BASE */
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0x60);			/* bits 5, 6 */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0xc60, 0x60));	/* C: + 10, 11 */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0x18c60, 0x60));	/* C: + 15, 16 */
	/* at bit offset 0 the stale bits come out unshifted */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 5 * PG, 2 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0x18c63, 0x3));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE + 5 * PG, 2 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0x18c63, 0x3));
	/* a dirty-bitmap unmap reports them too */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE + 4 * PG, 4 * PG, 8, self->bm, &sz));
	EXPECT_EQ(2 * PG, sz);
	EXPECT_BM(self->bm, 0, BUG_C(0x318c6, 0x6));

	/* STOP frees the bitmaps, START starts from zero */
	MAP_PAGES(5, 2, 0);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0xc60, 0x60));
	ASSERT_EQ(0, dirty_stop(c));
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0x60);
	/* START while started keeps the bitmaps */
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 8 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, BUG_C(0xc60, 0x60));
}

/* Stale bits of a mapping spanning two words and the user's first word
 * OR'ed into the kernel bitmap. */
TEST_F(dirty, get_bitmap_stale_two_words)
{
	int c = self->container;

	map_shared_words_and_report(_metadata, self);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 80 * PG, 16, self->bm));
	/* C: bit 7 (a hole page) from then on */
	EXPECT_BM(self->bm, 0, bits(0, 3) | bits(5, BUG_C(8, 7)) | bits(10, 64), bits(0, BUG_C(26, 16)));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 80 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, bits(0, 3) | bits(5, BUG_C(8, 7)) | bits(10, 64), bits(0, BUG_C(36, 16)));
}

/* ---- UNMAP_DMA with GET_DIRTY_BITMAP ------------------------------------ */

TEST_F(dirty, unmap_bitmap_args)
{
	const uint64_t sz = 16 * PG;
	const uint32_t full = sizeof(struct unmap_bitmap_arg);
	const uint32_t F = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	const uint64_t bad[] = { 0, 1, 2048, 3 * PG, 2 * PG, 16 * PG, SZ_2M, sub_page() };
	struct vfio_iommu_type1_dma_unmap *a = (void *)(self->guard + PG - UNMAP_MINSZ);
	int c = self->container;
	uint64_t u;

	V2();
	MAP_PAGES(0, 16, 0);
	bm_fill(self->bm, PATTERN);
	/* not tracking */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz, 8, self->bm, &u));
	EXPECT_EQ(sz, u);
	ASSERT_EQ(0, dirty_start(c));
	/* combined with ALL or VADDR: before the argsz check */
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, full, F | VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, PG, 8,
					     self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, UNMAP_MINSZ, F | VFIO_DMA_UNMAP_FLAG_ALL, 0, 0,
					     PG, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, full, F | VFIO_DMA_UNMAP_FLAG_VADDR, IOVA_BASE,
					     sz, PG, 8, self->bm, &u));
	/* unknown flag */
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, full, F | (1u << 3), IOVA_BASE, sz, PG, 8,
					     self->bm, &u));
	/* argsz without room for the struct vfio_bitmap */
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, UNMAP_MINSZ, F, IOVA_BASE, sz, PG, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, full - 1, F, IOVA_BASE, sz, PG, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, UNMAP_MINSZ - 1, F, IOVA_BASE, sz, PG, 8,
					     self->bm, &u));
	/* bitmap.data not a user address */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz, 8, KERNEL_PTR, &u));
	/* bitmap.size: too small for size / pgsize pages, 0, above 256M */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz, 7, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz, 0, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz, BITMAP_SIZE_MAX + 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, 65 * PG, 15, self->bm, &u));
	/* size 0 (npages 0) and less than a page */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, 0, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, 0x800, 8, self->bm, &u));
	/* pgsize other than the page size */
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, unmap_bitmap_full(c, full, F, IOVA_BASE, sz, bad[i],
						     sizeof(self->bm), self->bm, &u))
			TH_LOG("pgsize %#llx", (unsigned long long)bad[i]);
	}
	/* misaligned iova / size */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE + 0x800, sz, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz + 0x800, 8, self->bm, &u));
	/* bisecting the mapping */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE + PG, sz - PG, 8, self->bm, &u));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, sz - PG, 8, self->bm, &u));
	/* wrap-around: the bitmap size check (npages) passes, then EOVERFLOW */
	EXPECT_EQ(-E_WRAP, unmap_bitmap(c, ~0ULL & ~(PG - 1), 2 * PG, 8, self->bm, &u));
	/* the struct vfio_bitmap is unreadable */
	a->argsz = full;
	a->flags = F;
	a->iova = IOVA_BASE;
	a->size = sz;
	EXPECT_EQ(-EFAULT, xioctl(c, VFIO_IOMMU_UNMAP_DMA, (unsigned long)a));
	a->argsz = full - 1;
	EXPECT_EQ(-EINVAL, xioctl(c, VFIO_IOMMU_UNMAP_DMA, (unsigned long)a));
	/* Nothing was written and the mapping is still there. */
	EXPECT_BM(self->bm, PATTERN);
	/* A range without mappings: 0, size 0, nothing written. */
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE + 256 * PG, sz, 8, self->bm, &u));
	EXPECT_EQ(0ULL, u);
	EXPECT_BM(self->bm, PATTERN);
	/* exact */
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE, sz, 8, self->bm, &u));
	EXPECT_EQ(sz, u);
	EXPECT_BM(self->bm, 0, 0xffff);
}

/* The unmapped mappings are reported in full, bits counted from the
 * unmap's iova; mappings made before and during tracking alike. */
TEST_F(dirty, unmap_bitmap_contents)
{
	int c = self->container;
	uint64_t u;

	V2();
	MAP_PAGES(0, 16, 0);
	MAP_PAGES(32, 8, 16);
	ASSERT_EQ(0, dirty_start(c));
	MAP_PAGES(100, 40, 24);	/* while tracking; bits 100..139 */
	bm_fill(self->bm, 0);
	/* more bitmap than needed is fine */
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE, 192 * PG, sizeof(self->bm), self->bm, &u));
	EXPECT_EQ(64 * PG, u);
	EXPECT_BM(self->bm, 0, bits(0, 16) | bits(32, 40), bits(36, 64), bits(0, 12));
	EXPECT_EQ(0, dma_unmap(c, IOVA_BASE, 256 * PG, 0, &u));
	EXPECT_EQ(0ULL, u);

	/* base below the mapping */
	MAP_PAGES(8, 4, 0);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE + 2 * PG, 16 * PG, 8, self->bm, &u));
	EXPECT_EQ(4 * PG, u);
	EXPECT_BM(self->bm, 0, bits(6, 10));

	/* a GET_BITMAP before does not change what the unmap reports */
	MAP_PAGES(0, 4, 0);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 4 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xf);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE, 4 * PG, 8, self->bm, &u));
	EXPECT_EQ(4 * PG, u);
	EXPECT_BM(self->bm, 0, 0xf);

	/* after STOP: EINVAL, mapping kept */
	MAP_PAGES(0, 4, 0);
	ASSERT_EQ(0, dirty_stop(c));
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, IOVA_BASE, 4 * PG, 8, self->bm, &u));
	EXPECT_EQ(0, dma_unmap(c, IOVA_BASE, 4 * PG, 0, &u));
	EXPECT_EQ(4 * PG, u);
}

/* An unwritable bitmap: EFAULT at the first mapping whose words cannot be
 * written; the mappings before it are unmapped, it and the ones after are
 * not; the size field is not written back. */
TEST_F(dirty, unmap_bitmap_efault)
{
	int c = self->container;
	uint64_t *w = (uint64_t *)(self->guard + PG - 16);
	uint64_t u;

	V2();
	MAP_PAGES(0, 2, 0);
	MAP_PAGES(128, 2, 2);
	ASSERT_EQ(0, dirty_start(c));
	EXPECT_EQ(-EFAULT, unmap_bitmap(c, IOVA_BASE, 2 * PG, 8, self->ro, &u));
	EXPECT_EQ(2 * PG, u);
	EXPECT_EQ(-EFAULT, unmap_bitmap(c, IOVA_BASE, 2 * PG, 8, NULL, &u));
	w[0] = w[1] = PATTERN;
	EXPECT_EQ(-EFAULT, unmap_bitmap(c, IOVA_BASE, 130 * PG, 24, w, &u));
	EXPECT_EQ(130 * PG, u);
	EXPECT_EQ(0x3ULL, w[0]);
	EXPECT_EQ(PATTERN, w[1]);
	/* the first mapping is gone, the second is not */
	EXPECT_EQ(0, dma_unmap(c, IOVA_BASE, 2 * PG, 0, &u));
	EXPECT_EQ(0ULL, u);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE, 130 * PG, 24, self->bm, &u));
	EXPECT_EQ(2 * PG, u);
	EXPECT_BM(self->bm, 0, 0, 0, 0x3);
}

/* ---- groups and real DMA ------------------------------------------------ */

/* A second IOMMU-backed group joining and leaving while tracking is on
 * (leaving re-marks every mapping dirty): still everything dirty. */
TEST_F(dirty, second_group_while_tracking)
{
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);
	int c = self->container;

	ASSERT_NE(NULL, g2) TH_LOG("no second single-device group");
	V2();
	MAP_PAGES(0, 16, 0);
	ASSERT_EQ(0, dirty_start(c));
	self->group2 = vfio_open_viable_group(g2->id);
	ASSERT_GE(self->group2, 0);
	ASSERT_EQ(0, xioctl(self->group2, VFIO_GROUP_SET_CONTAINER, (unsigned long)&c));
	MAP_PAGES(64, 8, 16);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 72 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, 0xff);
	ASSERT_EQ(0, xioctl(self->group2, VFIO_GROUP_UNSET_CONTAINER, 0));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 72 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, 0xff);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 72 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, 0xff);
}

/* edu writes into one page while tracking is on: type1 cannot see it and
 * reports every page of the mapping, before and after the write alike. */
TEST_F_TIMEOUT(dirty, device_dma_while_tracking, 60)
{
	int c = self->container;
	uint64_t u;
	char *src = self->buf + 20 * PG;

	V2();
	MAP_PAGES(0, 16, 0);
	MAP_PAGES(64, 1, 20);	/* source for edu */
	ASSERT_EQ(0, edu_open(&self->dev, self->group, self->g->dev[0])) TH_LOG("%s", self->dev.err);
	ASSERT_EQ(0, dirty_start(c));
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);

	for (int i = 0; i < 256; i++)
		src[i] = i;
	memset(self->buf + 3 * PG, 0, 256);
	ASSERT_EQ(0, edu_dma_to_device(&self->dev, IOVA_BASE + 64 * PG, 0, 256))
		TH_LOG("%s", self->dev.err);
	ASSERT_EQ(0, edu_dma_from_device(&self->dev, IOVA_BASE + 3 * PG + 0x100, 0, 256))
		TH_LOG("%s", self->dev.err);
	EXPECT_EQ(0, memcmp(src, self->buf + 3 * PG + 0x100, 256));

	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 128 * PG, 16, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff, 0x1);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, get_bitmap(c, IOVA_BASE, 16 * PG, 8, self->bm));
	EXPECT_BM(self->bm, 0, 0xffff);
	/* and the dirty-bitmap unmap of it */
	ASSERT_EQ(0, edu_dma_from_device(&self->dev, IOVA_BASE + 7 * PG, 0, 256))
		TH_LOG("%s", self->dev.err);
	bm_fill(self->bm, 0);
	EXPECT_EQ(0, unmap_bitmap(c, IOVA_BASE, 16 * PG, 8, self->bm, &u));
	EXPECT_EQ(16 * PG, u);
	EXPECT_BM(self->bm, 0, 0xffff);
}

TEST_HARNESS_MAIN
