// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA through the type1 backend, for
 * both TYPE1 (v1) and TYPE1v2 containers: successful maps of anonymous, THP
 * and hugetlbfs memory (with the exact number of pinned pages and locked_vm
 * while mapped), every rejected input with the errno of the C module, the
 * v1/v2 unmap semantics, UNMAP_FLAG_ALL, the update-vaddr protocol, the
 * dma_entry_limit parameter and RLIMIT_MEMLOCK. Every test checks in its
 * teardown that nothing stays pinned or accounted and that the backend
 * module is unreferenced.
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <stddef.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <linux/capability.h>

#define MAP_MINSZ offsetofend_(struct vfio_iommu_type1_dma_map, size)
#define UNMAP_MINSZ offsetofend_(struct vfio_iommu_type1_dma_unmap, size)
#define offsetofend_(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))

/* Pages pinned for 2 MiB, the size of most mappings here. */
#define NP_2M ((long)pages_of(SZ_2M))

FIXTURE(map) {
	int container;
	int group;
	const struct vfio_test_group *g;
	struct leak_baseline base;
	long old_limit;		/* dma_entry_limit to restore, -1: untouched */
	long old_nr_huge;	/* nr_hugepages to restore, -1: untouched */
	const char *nr_huge_path;
	void *huge;
	size_t huge_len;
};

FIXTURE_VARIANT(map) {
	unsigned long type;
	bool v2;
};

FIXTURE_VARIANT_ADD(map, type1) {
	.type = VFIO_TYPE1_IOMMU,
	.v2 = false,
};

FIXTURE_VARIANT_ADD(map, type1v2) {
	.type = VFIO_TYPE1v2_IOMMU,
	.v2 = true,
};

FIXTURE_SETUP(map)
{
	self->old_limit = -1;
	self->old_nr_huge = -1;
	self->huge = NULL;
	self->container = self->group = -1;
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	fixture_open(_metadata, &self->container, &self->group, &self->g, true, 0);
}

FIXTURE_TEARDOWN(map)
{
	if (self->old_limit >= 0)
		EXPECT_EQ(0, backend_param_write("dma_entry_limit", self->old_limit));
	close_fd(&self->group);
	close_fd(&self->container);
	if (self->huge)
		munmap(self->huge, self->huge_len);
	if (self->old_nr_huge >= 0)
		EXPECT_EQ(0, write_long(self->nr_huge_path, self->old_nr_huge));
	leak_check(_metadata, &self->base);
}

static void set_iommu(struct __test_metadata *_metadata, FIXTURE_DATA(map) *self,
		      const FIXTURE_VARIANT(map) *variant)
{
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, variant->type));
}

static void *anon(size_t size, size_t align)
{
	void *p = mmap_aligned(size, align, PROT_READ | PROT_WRITE);

	if (p)
		memset(p, 0x11, size);
	return p;
}

/* A populated page-aligned anonymous buffer of size bytes; then the
 * variant's IOMMU type is set on the container. */
static void *anon_set_iommu(struct __test_metadata *_metadata, FIXTURE_DATA(map) *self,
			    const FIXTURE_VARIANT(map) *variant, size_t size)
{
	void *buf = anon(size, PG);

	ASSERT_NE(NULL, buf);
	set_iommu(_metadata, self, variant);
	return buf;
}

/* Maps buf at iova, checks that exactly size/PG pages are pinned and
 * accounted in locked_vm while mapped, unmaps it with an exact unmap and
 * checks both are back. */
static void map_unmap_check(struct __test_metadata *_metadata, int c, uint64_t iova,
			    void *buf, size_t size)
{
	long pins = pins_outstanding(), lck = vmlck_kb();
	uint64_t sz;

	ASSERT_EQ(0, dma_map(c, iova, buf, size, DMA_RW));
	EXPECT_EQ(pins + (long)pages_of(size), pins_outstanding());
	EXPECT_EQ(lck + (long)(size / 1024), vmlck_kb());
	/* Mapped: the same range again collides. */
	EXPECT_EQ(-EEXIST, dma_map(c, iova, buf, size, DMA_RW));
	ASSERT_EQ(0, dma_unmap(c, iova, size, 0, &sz));
	EXPECT_EQ(size, sz);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	/* Gone: unmapping again finds nothing. */
	ASSERT_EQ(0, dma_unmap(c, iova, size, 0, &sz));
	EXPECT_EQ(0UL, sz);
}

/* One base page (the name is from 4 KiB pages; scripts/mutants.list runs
 * it by name). */
TEST_F(map, map_unmap_4k)
{
	void *buf = anon_set_iommu(_metadata, self, variant, PG);

	map_unmap_check(_metadata, self->container, IOVA_BASE, buf, PG);
}

/* 2 MiB: several pages at any page size (512 of 4K, 32 of 64K). */
TEST_F(map, map_unmap_2m)
{
	void *buf = anon_set_iommu(_metadata, self, variant, SZ_2M);

	map_unmap_check(_metadata, self->container, IOVA_BASE, buf, SZ_2M);
}

/* 64M, not touched before: the pin faults every page in. */
TEST_F(map, map_unmap_64m)
{
	size_t size = 32 * SZ_2M;
	void *buf = mmap_aligned(size, PG, PROT_READ | PROT_WRITE);

	ASSERT_NE(NULL, buf);
	set_iommu(_metadata, self, variant);
	map_unmap_check(_metadata, self->container, IOVA_BASE, buf, size);
}

/* Device read-only and write-only mappings are both allowed. */
TEST_F(map, map_read_only_or_write_only)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * PG);
	uint64_t sz;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, PG, VFIO_DMA_MAP_FLAG_READ));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + PG, buf + PG, PG,
			     VFIO_DMA_MAP_FLAG_WRITE));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, 2 * PG, 0, &sz));
	EXPECT_EQ(2 * PG, sz);
}

/* Two THPs of the kernel's PMD size: 2 MiB with 4 KiB pages, 512 MiB
 * with 64 KiB pages. */
TEST_F(map, map_thp)
{
	uint64_t thp = thp_size();
	size_t size = 2 * thp;
	long thp0 = meminfo_kb("AnonHugePages");
	char *buf;

	if (!thp)
		SKIP(return, "the kernel has no THP (no hpage_pmd_size)");
	buf = mmap_aligned(size, thp, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, buf);
	self->huge = buf;	/* unmapped by the teardown */
	self->huge_len = size;
	if (madvise(buf, size, MADV_HUGEPAGE))
		SKIP(return, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
	memset(buf, 0x22, size);
	if (meminfo_kb("AnonHugePages") < thp0 + (long)(thp >> 10))
		SKIP(return, "no %llu kB THP was allocated (AnonHugePages %ld kB)",
		     (unsigned long long)(thp >> 10), meminfo_kb("AnonHugePages"));
	set_iommu(_metadata, self, variant);
	map_unmap_check(_metadata, self->container, IOVA_BASE, buf, size);
	/* v1 semantics on a huge mapping: unmapping its first page unmaps all
	 * of it; v2 refuses to split it. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, size, DMA_RW));
	if (variant->v2) {
		uint64_t sz;

		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
		EXPECT_EQ(PG, sz);	/* not written back on error */
	} else {
		uint64_t sz;

		EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
		EXPECT_EQ(size, sz);
	}
}

/* Two 2 MiB hugetlb pages: PMD-mapped with 4 KiB pages, contiguous PTEs
 * with 64 KiB pages. Not the default hugepage size everywhere (512 MiB
 * with 64 KiB pages), so its own sysfs pool, not /proc/sys/vm. */
#define HUGE_2M_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB"

TEST_F(map, map_hugetlb)
{
	size_t size = 2 * SZ_2M;
	long old, now;

	if (!hugetlb_size_offered(SZ_2M))
		SKIP(return, "the kernel offers no 2 MiB hugetlb pages (no %s)", HUGE_2M_DIR);
	self->nr_huge_path = HUGE_2M_DIR "/nr_hugepages";
	old = read_long(self->nr_huge_path);
	if (old < 0)
		SKIP(return, "cannot read %s", self->nr_huge_path);
	self->old_nr_huge = old;
	if (write_long(self->nr_huge_path, old + 2))
		SKIP(return, "cannot write %s", self->nr_huge_path);
	now = read_long(HUGE_2M_DIR "/free_hugepages");
	if (now < 2)
		SKIP(return, "only %ld free 2M hugepages", now);
	self->huge = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (self->huge == MAP_FAILED) {
		self->huge = NULL;
		SKIP(return, "mmap(MAP_HUGETLB): %s", strerror(errno));
	}
	self->huge_len = size;
	memset(self->huge, 0x33, size);
	set_iommu(_metadata, self, variant);
	map_unmap_check(_metadata, self->container, IOVA_BASE, self->huge, size);
}

TEST_F(map, map_bad_argsz)
{
	struct vfio_iommu_type1_dma_map m;
	char *buf = anon_set_iommu(_metadata, self, variant, PG);
	uint32_t sizes[] = { 0, 8, MAP_MINSZ - 1 };

	for (unsigned int i = 0; i < 3; i++) {
		m = (struct vfio_iommu_type1_dma_map){
			.argsz = sizes[i], .flags = DMA_RW,
			.vaddr = (uintptr_t)buf, .iova = IOVA_BASE, .size = PG,
		};
		EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_IOMMU_MAP_DMA, (unsigned long)&m));
	}
	/* minsz exactly is enough (the struct has no field after size). */
	m.argsz = MAP_MINSZ;
	EXPECT_EQ(0, xioctl(self->container, VFIO_IOMMU_MAP_DMA, (unsigned long)&m));
}

TEST_F(map, map_bad_flags)
{
	char *buf = anon_set_iommu(_metadata, self, variant, PG);

	/* Unknown flags. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW | (1 << 3)));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW | (1u << 31)));
	/* Neither READ nor WRITE. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG, 0));
	/* VADDR goes without READ/WRITE. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG,
				   VFIO_DMA_MAP_FLAG_VADDR | VFIO_DMA_MAP_FLAG_READ));
	/* VADDR alone on an iova that is not mapped. */
	EXPECT_EQ(-ENOENT, dma_map(self->container, IOVA_BASE, buf, PG, VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(backend_param_read("dma_entry_limit"), iommu_dma_avail(self->container));
}

TEST_F(map, map_zero_size)
{
	char *buf = anon_set_iommu(_metadata, self, variant, PG);

	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, 0, DMA_RW));
	/* Checked before the flags. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, 0, 0));
}

TEST_F(map, map_misaligned)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 4 * PG);

	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE + 0x800, buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE + 8, buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf + 0x800, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf + 1, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG + 0x800, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, 0x800, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, 1, DMA_RW));
	/* With pages above 4 KiB, 4 KiB alignment is not enough. */
	if (PG > SZ_4K) {
		EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE + SZ_4K, buf, PG, DMA_RW));
		EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf + SZ_4K, PG, DMA_RW));
		EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, SZ_4K, DMA_RW));
		EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG + SZ_4K, DMA_RW));
	}
	EXPECT_EQ(backend_param_read("dma_entry_limit"), iommu_dma_avail(self->container));
}

TEST_F(map, map_overflow)
{
	char *buf = anon(PG, PG);
	uint64_t top = ~0ULL & ~(PG - 1);	/* the last page of the 64-bit space */

	ASSERT_NE(NULL, buf);
	set_iommu(_metadata, self, variant);
	/* iova + size - 1 wraps */
	EXPECT_EQ(-E_WRAP, dma_map(self->container, top, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-E_WRAP, dma_map(self->container, PG, buf, ~0ULL, DMA_RW));
	/* vaddr + size - 1 wraps */
	EXPECT_EQ(-E_WRAP, dma_map(self->container, IOVA_BASE, (void *)(uintptr_t)top,
				      2 * PG, DMA_RW));
	/* The overflow checks come before the flag and alignment checks. */
	EXPECT_EQ(-E_WRAP, dma_map(self->container, top, buf, 2 * PG, 0));
	EXPECT_EQ(-E_WRAP, dma_map(self->container, top + 0x800, buf, PG, DMA_RW));
	/* The last page of the 64-bit space does not wrap: not an overflow,
	 * but outside every IOVA range. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, top, buf, PG, DMA_RW));
}

static long iova_ranges(int c, struct vfio_iova_range *out, int max)
{
	char buf[4096];
	struct vfio_iommu_type1_info_cap_iova_range *r;

	if (iommu_get_info(c, buf, sizeof(buf)))
		return -1;
	r = (void *)iommu_info_cap(buf, sizeof(buf), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	if (!r || (int)r->nr_iovas > max)
		return -1;
	memcpy(out, r->iova_ranges, r->nr_iovas * sizeof(*out));
	return r->nr_iovas;
}

TEST_F(map, map_outside_iova_ranges)
{
	struct vfio_iova_range rg[16];
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * PG);
	long n;
	uint64_t hole, last;

	n = iova_ranges(self->container, rg, 16);
	ASSERT_GE(n, 2);
	/* The MSI window: 0xfee00000 on x86_64 (IOAPIC/MSI), the SMMUv3
	 * software MSI window at 0x8000000 on arm64. */
	hole = arch_is_arm64() ? 0x8000000 : 0xfee00000;
	EXPECT_EQ(-EINVAL, dma_map(self->container, hole, buf, PG, DMA_RW));
	/* The window's last page (it is 1 MiB on both). */
	EXPECT_EQ(-EINVAL, dma_map(self->container, hole + 0x100000 - PG, buf, PG, DMA_RW));
	/* Straddling the end of the first range. */
	hole = rg[0].end + 1;
	EXPECT_EQ(-EINVAL, dma_map(self->container, hole - PG, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, hole, buf, PG, DMA_RW));
	/* Just below the hole is fine. */
	EXPECT_EQ(0, dma_map(self->container, hole - PG, buf, PG, DMA_RW));
	/* Above the aperture. */
	last = rg[n - 1].end;
	ASSERT_LT(last, ~0ULL - SZ_2M);
	EXPECT_EQ(-EINVAL, dma_map(self->container, last + 1, buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, last + 1 - PG, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(0, dma_map(self->container, last + 1 - PG, buf + PG, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, 1ULL << 63, buf, PG, DMA_RW));
	/* Only the two good ones were taken. */
	EXPECT_EQ(backend_param_read("dma_entry_limit") - 2, iommu_dma_avail(self->container));
}

TEST_F(map, map_overlap_eexist)
{
	char *buf = anon_set_iommu(_metadata, self, variant, SZ_2M + 2 * PG);
	long pins;
	uint64_t sz;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	pins = pins_outstanding();
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE + PG, buf, PG, DMA_RW));
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE + SZ_2M - PG, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE - PG, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE - PG, buf, SZ_2M + 2 * PG, DMA_RW));
	/* EEXIST is checked before the IOVA ranges, after alignment. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE + 0x800, buf, PG, DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	/* Adjacent on both sides is fine, and the same vaddr may be mapped
	 * at two iovas (pinned twice). */
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE + SZ_2M, buf + SZ_2M, PG, DMA_RW));
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE - PG, buf, PG, DMA_RW));
	EXPECT_EQ(pins + 2, pins_outstanding());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE - PG, SZ_2M + 2 * PG, 0, &sz));
	EXPECT_EQ(SZ_2M + 2 * PG, sz);
}

TEST_F(map, map_unmapped_vaddr)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 3 * PG);
	long pins;

	ASSERT_EQ(0, munmap(buf + PG, PG));
	pins = pins_outstanding();
	/* Hole in the middle: the first page gets pinned, then unwound. */
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE, buf, 3 * PG, DMA_RW));
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE, buf + PG, PG, DMA_RW));
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE, NULL, PG, DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	/* Nothing was left mapped. */
	EXPECT_EQ(backend_param_read("dma_entry_limit"), iommu_dma_avail(self->container));
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW));
}

TEST_F(map, map_readonly_vma)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * PG);
	long pins, lck;
	uint64_t sz;

	ASSERT_EQ(0, mprotect(buf, 2 * PG, PROT_READ));
	pins = pins_outstanding();
	lck = vmlck_kb();
	/* Device writes need a writable vma. */
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE, buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE, buf, PG, VFIO_DMA_MAP_FLAG_WRITE));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	/* Device reads are fine. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, 2 * PG, VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(pins + 2, pins_outstanding());
	EXPECT_EQ(lck + (long)(2 * PG / 1024), vmlck_kb());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, 2 * PG, 0, &sz));
	EXPECT_EQ(2 * PG, sz);
}

/* Two 2M mappings A=[B, B+2M) and C=[B+4M, B+6M). */
static void map_two(struct __test_metadata *_metadata, int c, char *buf)
{
	ASSERT_EQ(0, dma_map(c, IOVA_BASE, buf, SZ_2M, DMA_RW));
	ASSERT_EQ(0, dma_map(c, IOVA_BASE + 2 * SZ_2M, buf + SZ_2M, SZ_2M, DMA_RW));
}

/* vfio_dma_do_unmap(): v1 keeps the old coalescing semantics (an unmap
 * starting inside a mapping unmaps nothing; one covering a mapping's first
 * iova unmaps all of it), v2 refuses to bisect a mapping. */
TEST_F(map, unmap_partial)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * SZ_2M);
	uint64_t sz;
	long pins = pins_outstanding();

	map_two(_metadata, self->container, buf);
	if (variant->v2) {
		/* Start inside A. */
		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE + PG, PG, 0, &sz));
		EXPECT_EQ(PG, sz);	/* not written back on error */
		/* End inside A. */
		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE - SZ_2M, SZ_2M + PG, 0, &sz));
		/* Covers C, starts inside A. */
		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE + PG, 3 * SZ_2M, 0, &sz));
		/* Covers A, ends inside C. */
		EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, 2 * SZ_2M + PG, 0, &sz));
		EXPECT_EQ(pins + 2 * NP_2M, pins_outstanding());
		/* The gap between them: nothing. */
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE + SZ_2M, SZ_2M, 0, &sz));
		EXPECT_EQ(0UL, sz);
		/* Covering A with slack on both sides. */
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE - SZ_2M, 3 * SZ_2M, 0, &sz));
		EXPECT_EQ(SZ_2M, sz);
		EXPECT_EQ(pins + NP_2M, pins_outstanding());
	} else {
		/* Start inside A: success, nothing unmapped. */
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE + PG, PG, 0, &sz));
		EXPECT_EQ(0UL, sz);
		/* Starts inside A and covers all of C: still nothing, the walk
		 * stops at the first mapping it would bisect. */
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE + PG, 3 * SZ_2M, 0, &sz));
		EXPECT_EQ(0UL, sz);
		EXPECT_EQ(pins + 2 * NP_2M, pins_outstanding());
		/* Covering A's first page unmaps all of A. */
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
		EXPECT_EQ(SZ_2M, sz);
		EXPECT_EQ(pins + NP_2M, pins_outstanding());
		/* Again, starting before A's (old) start and ending inside C:
		 * all of C. */
		ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE + SZ_2M, SZ_2M + PG, 0, &sz));
		EXPECT_EQ(SZ_2M, sz);
		EXPECT_EQ(pins + NP_2M, pins_outstanding());
	}
	/* What is left is A or C: one 2M mapping. */
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE - SZ_2M, 5 * SZ_2M, 0, &sz));
	EXPECT_EQ(SZ_2M, sz);
	EXPECT_EQ(pins, pins_outstanding());
}

/* One unmap covering several mappings reports their total. */
TEST_F(map, unmap_multiple)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * SZ_2M);
	uint64_t sz;

	map_two(_metadata, self->container, buf);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + 8 * SZ_2M, buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, 8 * SZ_2M + PG, 0, &sz));
	EXPECT_EQ(2 * SZ_2M + PG, sz);
}

TEST_F(map, unmap_nothing)
{
	uint64_t sz;

	set_iommu(_metadata, self, variant);
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
	EXPECT_EQ(0UL, sz);
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(0UL, sz);
	/* Outside the IOVA ranges is not an error for unmap. */
	ASSERT_EQ(0, dma_unmap(self->container, arch_is_arm64() ? 0x8000000 : 0xfee00000,
			       PG, 0, &sz));
	EXPECT_EQ(0UL, sz);
}

TEST_F(map, unmap_bad_input)
{
	char *buf = anon_set_iommu(_metadata, self, variant, SZ_2M);
	struct vfio_iommu_type1_dma_unmap u;
	uint64_t sz;
	long pins;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	pins = pins_outstanding();
	/* argsz below minsz */
	u = (struct vfio_iommu_type1_dma_unmap){ .argsz = UNMAP_MINSZ - 1, .iova = IOVA_BASE, .size = SZ_2M };
	EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&u));
	u.argsz = 0;
	EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&u));
	/* Unknown flags, and DIRTY_BITMAP combined with ALL or VADDR. */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M, 1 << 3, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M, 1u << 31, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL |
				     VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M, VFIO_DMA_UNMAP_FLAG_VADDR |
				     VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, &sz));
	/* Zero size, misaligned iova or size. */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, 0, 0, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE + 0x800, SZ_2M, 0, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M - 0x800, 0, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, 1, 0, &sz));
	/* iova + size - 1 wraps. */
	EXPECT_EQ(-E_WRAP, dma_unmap(self->container, ~0ULL & ~(PG - 1), 2 * PG, 0, &sz));
	EXPECT_EQ(-E_WRAP, dma_unmap(self->container, IOVA_BASE, ~0ULL & ~(PG - 1), 0, &sz));
	/* ALL needs iova == size == 0. */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, 0, SZ_2M, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	/* On error the struct is not written back: size keeps its input. */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M - 0x800, 0, &sz));
	EXPECT_EQ(SZ_2M - 0x800, sz);
	/* Nothing of the above unmapped anything. */
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
}

TEST_F(map, unmap_all)
{
	char *buf = anon_set_iommu(_metadata, self, variant, SZ_2M + 32 * PG);
	long pins = pins_outstanding(), lck = vmlck_kb();
	uint64_t sz;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + SZ_2M, buf + PG, SZ_2M, DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + 8 * SZ_2M, buf + PG + SZ_2M,
			     16 * PG, DMA_RW));
	EXPECT_EQ(pins + 1 + NP_2M + 16, pins_outstanding());
	EXPECT_EQ(lck + (long)((PG + SZ_2M + 16 * PG) / 1024), vmlck_kb());
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(PG + SZ_2M + 16 * PG, sz);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(backend_param_read("dma_entry_limit"), iommu_dma_avail(self->container));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(0UL, sz);
}

/* Mappings still present at close are unpinned by the release. */
TEST_F(map, close_with_mappings)
{
	char *buf = anon_set_iommu(_metadata, self, variant, SZ_2M);
	long pins = pins_outstanding();

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	EXPECT_EQ(pins + NP_2M, pins_outstanding());
	/* The teardown's leak check does the rest. */
}

/* VFIO_UPDATE_VADDR: UNMAP_FLAG_VADDR invalidates, MAP_FLAG_VADDR sets
 * the new vaddr; pins stay throughout. */
TEST_F(map, update_vaddr)
{
	char *buf = anon_set_iommu(_metadata, self, variant, 2 * SZ_2M);
	long pins = pins_outstanding();
	uint64_t sz;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	/* Not invalidated yet. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf + SZ_2M, SZ_2M,
				   VFIO_DMA_MAP_FLAG_VADDR));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, SZ_2M, VFIO_DMA_UNMAP_FLAG_VADDR, &sz));
	EXPECT_EQ(SZ_2M, sz);
	EXPECT_EQ(pins + NP_2M, pins_outstanding());
	/* Twice: the second invalidation fails. */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, SZ_2M, VFIO_DMA_UNMAP_FLAG_VADDR, &sz));
	/* Still an existing mapping for a plain map. */
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
	/* Must match the mapping exactly. */
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf + SZ_2M, PG,
				   VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(-ENOENT, dma_map(self->container, IOVA_BASE + SZ_2M, buf + SZ_2M, SZ_2M,
				   VFIO_DMA_MAP_FLAG_VADDR));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf + SZ_2M, SZ_2M,
			     VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, SZ_2M, VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(pins + NP_2M, pins_outstanding());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, SZ_2M, 0, &sz));
	EXPECT_EQ(SZ_2M, sz);
	EXPECT_EQ(pins, pins_outstanding());
}

/* A VADDR update from another process (QEMU's live update execs a new
 * one) makes that process the mapping's owner: its locked_vm takes the
 * charge and the old owner's gives it back, as C's vfio_change_dma_owner.
 * The child inherits the shared mapping at the same address, so the new
 * vaddr is backed by the same pages. Returns the failing step or 0. */
static int vaddr_child(int c, char *buf, uint64_t size)
{
	long lck = vmlck_kb();

	if (dma_map(c, IOVA_BASE, buf, size, VFIO_DMA_MAP_FLAG_VADDR))
		return 1;
	if (vmlck_kb() != lck + (long)(size >> 10))
		return 2;
	return 0;
}

TEST_F(map, update_vaddr_from_another_process)
{
	const uint64_t size = 16 * PG;
	long pins = pins_outstanding(), lck;
	int status, fd;
	uint64_t sz;
	char *buf;
	pid_t pid;

	fd = memfd_create("vaddr", 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, size));
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x5a, size);
	set_iommu(_metadata, self, variant);
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, size, DMA_RW));
	EXPECT_EQ(lck + (long)(size >> 10), vmlck_kb());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, size, VFIO_DMA_UNMAP_FLAG_VADDR, &sz));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(vaddr_child(self->container, buf, size));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child failed at step %d", WEXITSTATUS(status));
	/* The charge went with the mapping. */
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(pins + (long)pages_of(size), pins_outstanding());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, size, 0, &sz));
	EXPECT_EQ(size, sz);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	munmap(buf, size);
}

/* RLIMIT_MEMLOCK applies to a process without CAP_IPC_LOCK. Runs in a
 * child that drops the capability; returns the failing step or 0. The
 * limit is a whole number of pages at any page size (16 of 64 KiB). */
#define MEMLOCK_LIMIT (1UL << 20)

/* Drops CAP_IPC_LOCK and sets RLIMIT_MEMLOCK (soft and hard) to bytes: 0,
 * or 1-3 for the step that failed. */
static int limit_without_ipc_lock(rlim_t bytes)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	struct rlimit rl = { .rlim_cur = bytes, .rlim_max = bytes };

	if (syscall(SYS_capget, &hdr, data))
		return 1;
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].inheritable &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	if (syscall(SYS_capset, &hdr, data))
		return 2;
	return setrlimit(RLIMIT_MEMLOCK, &rl) ? 3 : 0;
}

static int memlock_child(int c, char *buf)
{
	const uint64_t half = MEMLOCK_LIMIT / 2;
	const long half_pages = pages_of(half);
	uint64_t sz;
	long pins, lck;
	int err;

	/* Not a whole number of pages: what counts (and what the kernel log
	 * names) is the limit rounded down to pages. */
	err = limit_without_ipc_lock(MEMLOCK_LIMIT + 1000);
	if (err)
		return err;
	pins = pins_outstanding();
	lck = vmlck_kb();
	if (lck != 0)
		return 4;
	/* 512K fits in 1M. */
	if (dma_map(c, IOVA_BASE, buf, half, DMA_RW))
		return 5;
	if (vmlck_kb() != (long)(half >> 10) || pins_outstanding() != pins + half_pages)
		return 6;
	/* 2M does not: ENOMEM, nothing kept. */
	if (dma_map(c, IOVA_BASE + SZ_2M, buf + half, SZ_2M, DMA_RW) != -ENOMEM)
		return 7;
	if (vmlck_kb() != (long)(half >> 10) || pins_outstanding() != pins + half_pages)
		return 8;
	/* Exactly up to the limit is fine ... */
	if (dma_map(c, IOVA_BASE + SZ_2M, buf + half, half, DMA_RW))
		return 9;
	if (vmlck_kb() != (long)(MEMLOCK_LIMIT >> 10))
		return 10;
	/* ... one page more is not. */
	if (dma_map(c, IOVA_BASE + 2 * SZ_2M, buf + MEMLOCK_LIMIT, PG, DMA_RW) != -ENOMEM)
		return 11;
	if (dma_unmap(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz) || sz != MEMLOCK_LIMIT)
		return 12;
	if (vmlck_kb() != 0 || pins_outstanding() != pins)
		return 13;
	return 0;
}

/* Kernel log lines since the fd was opened at the log's end that contain
 * `needle`. */
static int kmsg_count(int fd, const char *needle)
{
	char rec[1024];
	ssize_t n;
	int found = 0;

	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;	/* EPIPE: records overwritten; go on */
		rec[n] = 0;
		found += strstr(rec, needle) != NULL;
	}
	return found;
}

TEST_F(map, rlimit_memlock)
{
	char *buf = anon_set_iommu(_metadata, self, variant, SZ_2M + MEMLOCK_LIMIT);
	char needle[64];
	int status, kmsg;
	pid_t pid;

	/* Each refused MAP logs the limit in bytes, rounded down to pages, in
	 * the C module's words ("vfio_pin_pages_remote: RLIMIT_MEMLOCK
	 * (1048576) exceeded"; ours names its own function): what a DPDK user
	 * finds in dmesg. */
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ASSERT_GE(kmsg, 0);
	ASSERT_LE(0, lseek(kmsg, 0, SEEK_END));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(memlock_child(self->container, buf));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child failed at step %d", WEXITSTATUS(status));
	snprintf(needle, sizeof(needle), "RLIMIT_MEMLOCK (%lu) exceeded", MEMLOCK_LIMIT);
	EXPECT_EQ(2, kmsg_count(kmsg, needle)) TH_LOG("want two kernel log lines with \"%s\"", needle);
	close(kmsg);
	/* With CAP_IPC_LOCK the same 2M maps fine. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, SZ_2M, DMA_RW));
}

/* RLIMIT_MEMLOCK past 1 GiB: ours charges locked_vm once per 64 MiB a MAP
 * pins (and at its end), checking the limit per GUP batch with what it has
 * pinned uncharged; C charges per contiguous chunk. Either way a MAP that
 * passes the limit after 1 GiB of it was charged fails with ENOMEM and
 * gives all of it back, and one exactly at the limit maps. */
#define GIB_LIMIT ((1UL << 30) + SZ_2M)

static int gib_child(int c)
{
	long pins = pins_outstanding();
	size_t size = GIB_LIMIT + SZ_2M;
	uint64_t sz;
	char *buf;

	/* Allocated here, not inherited: pinning it for writing in the child
	 * would copy 1 GiB of the parent's. */
	buf = mmap_aligned(size, SZ_2M, PROT_READ | PROT_WRITE);
	if (!buf)
		return 10;
	madvise(buf, size, MADV_HUGEPAGE);	/* faster to touch and pin */
	memset(buf, 0x22, size);
	if (limit_without_ipc_lock(GIB_LIMIT))
		return 2;
	if (vmlck_kb() != 0)
		return 3;
	/* 2 MiB past the limit: ENOMEM, nothing kept. */
	if (dma_map(c, IOVA_BASE, buf, GIB_LIMIT + SZ_2M, DMA_RW) != -ENOMEM)
		return 4;
	if (vmlck_kb() != 0 || pins_outstanding() != pins)
		return 5;
	/* Exactly the limit maps, all of it charged. */
	if (dma_map(c, IOVA_BASE, buf, GIB_LIMIT, DMA_RW))
		return 6;
	if (vmlck_kb() != (long)(GIB_LIMIT >> 10) ||
	    pins_outstanding() != pins + (long)pages_of(GIB_LIMIT))
		return 7;
	if (dma_unmap(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz) || sz != GIB_LIMIT)
		return 8;
	if (vmlck_kb() != 0 || pins_outstanding() != pins)
		return 9;
	return 0;
}

TEST_F(map, rlimit_past_a_gib)
{
	size_t size = GIB_LIMIT + SZ_2M;
	int status;
	pid_t pid;

	if (meminfo_kb("MemAvailable") < (long)((size + (256UL << 20)) >> 10))
		SKIP(return, "needs 1.3 GiB of free memory (MemAvailable %ld kB)",
		     meminfo_kb("MemAvailable"));
	set_iommu(_metadata, self, variant);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(gib_child(self->container));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child failed at step %d", WEXITSTATUS(status));
}

/* dma_entry_limit is read when the container's backend is opened
 * (VFIO_SET_IOMMU); map number limit+1 fails with ENOSPC. */
TEST_F(map, dma_entry_limit)
{
	char *buf = anon(8 * PG, PG);
	uint64_t sz;

	ASSERT_NE(NULL, buf);
	self->old_limit = backend_param_read("dma_entry_limit");
	ASSERT_GE(self->old_limit, 0) TH_LOG("no dma_entry_limit parameter");
	ASSERT_EQ(0, backend_param_write("dma_entry_limit", 4));
	set_iommu(_metadata, self, variant);
	/* Changing it now does not affect this container. */
	ASSERT_EQ(0, backend_param_write("dma_entry_limit", 2));
	EXPECT_EQ(4, iommu_dma_avail(self->container));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + i * SZ_2M, buf + i * PG,
				     PG, DMA_RW));
	EXPECT_EQ(0, iommu_dma_avail(self->container));
	EXPECT_EQ(-ENOSPC, dma_map(self->container, IOVA_BASE + 4 * SZ_2M, buf + 4 * PG,
				   PG, DMA_RW));
	/* ENOSPC comes after EEXIST and before the IOVA range check. */
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW));
	EXPECT_EQ(-ENOSPC, dma_map(self->container, 1ULL << 63, buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
	EXPECT_EQ(PG, sz);
	EXPECT_EQ(1, iommu_dma_avail(self->container));
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE + 4 * SZ_2M, buf + 4 * PG, PG, DMA_RW));
	EXPECT_EQ(-ENOSPC, dma_map(self->container, IOVA_BASE + 5 * SZ_2M, buf + 5 * PG,
				   PG, DMA_RW));
}

TEST_HARNESS_MAIN
