// SPDX-License-Identifier: GPL-2.0
/*
 * What the type1 backend reports about itself: VFIO_CHECK_EXTENSION before
 * and after VFIO_SET_IOMMU, and VFIO_IOMMU_GET_INFO (flags, page sizes, the
 * capability chain with IOVA_RANGE, MIGRATION and DMA_AVAIL, and the short
 * argsz protocol). Every test also checks that it leaked no pinned pages,
 * no locked_vm and no module reference.
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <stddef.h>

#define INFO_FIXED sizeof(struct vfio_iommu_type1_info)	/* 24 */
#define CAP_MIG_SZ 32		/* sizeof(cap_migration), 8-aligned */
#define CAP_AVAIL_SZ 16		/* sizeof(dma_avail) = 12, aligned up to 8 */
#define INFO_FLAGS (uint32_t)(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS)

/* VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU) on this hardware: 1 only when
 * every domain enforces cache coherency. QEMU's intel-iommu does not offer
 * snoop control (ecap.SC) by default, and SMMUv3 needs CANWBS from the IORT,
 * which a device-tree arm64 virt machine does not have. */
#define DMA_CC_EXPECTED 0

FIXTURE(info) {
	int container;
	int group;
	const struct vfio_test_group *g;
	struct leak_baseline base;
};

FIXTURE_SETUP(info)
{
	self->container = self->group = -1;
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	fixture_open(_metadata, &self->container, &self->group, &self->g, false, 0);
}

FIXTURE_TEARDOWN(info)
{
	close_fd(&self->group);
	close_fd(&self->container);
	leak_check(_metadata, &self->base);
}

static void join_and_set(struct __test_metadata *_metadata, FIXTURE_DATA(info) *self,
			 unsigned long type)
{
	fixture_join(_metadata, self->group, self->container);
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, type));
}

static void check_ext_unset(struct __test_metadata *_metadata, int c)
{
	/* No backend yet: vfio core polls the registered backends with a
	 * NULL iommu; UPDATE_VADDR and DMA_CC need a container. */
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, 0x7777));
}

static void check_ext_set(struct __test_metadata *_metadata, int c)
{
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	EXPECT_EQ(1, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(DMA_CC_EXPECTED, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU));
	EXPECT_EQ(0, xioctl(c, VFIO_CHECK_EXTENSION, 0x7777));
}

TEST_F(info, check_extension_stages)
{
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);
	int group2 = -1;

	/* Empty container. */
	check_ext_unset(_metadata, self->container);
	/* A group but no backend yet. */
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	check_ext_unset(_metadata, self->container);
	/* The container's own backend answers now. */
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	check_ext_set(_metadata, self->container);
	/* DMA_CC is stable: same answer on every query ... */
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(DMA_CC_EXPECTED, xioctl(self->container, VFIO_CHECK_EXTENSION,
						  VFIO_DMA_CC_IOMMU));
	/* ... and with a second group (same IOMMU) in the container. */
	if (g2) {
		group2 = vfio_open_viable_group(g2->id);
		ASSERT_GE(group2, 0);
		ASSERT_EQ(0, xioctl(group2, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
		check_ext_set(_metadata, self->container);
		ASSERT_EQ(0, xioctl(group2, VFIO_GROUP_UNSET_CONTAINER, 0));
		close(group2);
		check_ext_set(_metadata, self->container);
	}
	/* Last group out: the backend is released, back to polling. */
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	check_ext_unset(_metadata, self->container);
	/* A v1 container answers the same. */
	join_and_set(_metadata, self, VFIO_TYPE1_IOMMU);
	check_ext_set(_metadata, self->container);
}

/* Container ioctls other than API_VERSION/CHECK_EXTENSION/SET_IOMMU go to
 * the backend; with none set, vfio core answers -EINVAL. */
TEST_F(info, get_info_before_set_iommu)
{
	char buf[256];
	uint64_t sz;

	EXPECT_EQ(-EINVAL, iommu_get_info(self->container, buf, sizeof(buf)));
	EXPECT_EQ(sizeof(buf), ((struct vfio_iommu_type1_info *)buf)->argsz);
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	EXPECT_EQ(-EINVAL, iommu_get_info(self->container, buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, PG, 0, &sz));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(0, iommu_get_info(self->container, buf, sizeof(buf)));
	/* Unknown container ioctls reach the backend, which says ENOTTY. */
	EXPECT_EQ(-ENOTTY, xioctl(self->container, _IO(VFIO_TYPE, VFIO_BASE + 60), 0));
	/* After the last group leaves there is no backend again. */
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	EXPECT_EQ(-EINVAL, iommu_get_info(self->container, buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, xioctl(self->container, _IO(VFIO_TYPE, VFIO_BASE + 60), 0));
}

TEST_F(info, argsz_below_minsz)
{
	struct vfio_iommu_type1_info info;
	/* minsz is offsetofend(iova_pgsizes) = 16 */
	uint32_t sizes[] = { 0, 4, 8, 15 };

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(&info, 0xa5, sizeof(info));
		info.argsz = sizes[i];
		EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_IOMMU_GET_INFO, (unsigned long)&info));
		/* Nothing written back. */
		EXPECT_EQ(sizes[i], info.argsz);
		EXPECT_EQ(0xa5a5a5a5u, info.flags);
		EXPECT_EQ(0xa5a5a5a5a5a5a5a5ull, info.iova_pgsizes);
	}
}

/* The size a full GET_INFO needs, from a large enough call. */
static uint32_t needed_argsz(struct __test_metadata *_metadata, int c, uint32_t *nr_iovas)
{
	char buf[4096];
	struct vfio_iommu_type1_info_cap_iova_range *r;

	EXPECT_EQ(0, iommu_get_info(c, buf, sizeof(buf)));
	r = (void *)iommu_info_cap(buf, sizeof(buf), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	EXPECT_NE(NULL, r);
	if (!r)
		return 0;
	*nr_iovas = r->nr_iovas;
	/* caps: MIGRATION, DMA_AVAIL, IOVA_RANGE, each padded to 8 bytes */
	return INFO_FIXED + CAP_MIG_SZ + CAP_AVAIL_SZ +
	       sizeof(*r) + r->nr_iovas * sizeof(struct vfio_iova_range);
}

/* argsz covers only the 16-byte minimum: the kernel writes back just those
 * 16 bytes, with argsz raised to what the caps need; cap_offset untouched. */
TEST_F(info, argsz_minsz_only)
{
	struct { struct vfio_iommu_type1_info info; char tail[64]; } b;
	uint32_t nr, need;

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	need = needed_argsz(_metadata, self->container, &nr);
	memset(&b, 0xa5, sizeof(b));
	b.info.argsz = offsetof(struct vfio_iommu_type1_info, cap_offset);
	ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_GET_INFO, (unsigned long)&b));
	EXPECT_EQ(need, b.info.argsz);
	EXPECT_EQ(INFO_FLAGS, b.info.flags);
	EXPECT_EQ(PG, b.info.iova_pgsizes & -b.info.iova_pgsizes);
	EXPECT_EQ(0xa5a5a5a5u, b.info.cap_offset);
	EXPECT_EQ(0xa5a5a5a5u, b.info.pad);
	for (unsigned int i = 0; i < sizeof(b.tail); i++)
		ASSERT_EQ((char)0xa5, b.tail[i]);
}

/* argsz big enough for the fixed struct but not for the caps: argsz is set
 * to the needed size, cap_offset to 0 and no cap is written. */
TEST_F(info, argsz_short_for_caps)
{
	struct { struct vfio_iommu_type1_info info; char tail[512]; } b;
	uint32_t nr, need, tries[3];

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	need = needed_argsz(_metadata, self->container, &nr);
	ASSERT_GT(need, INFO_FIXED);
	ASSERT_LE(need, sizeof(b));
	tries[0] = INFO_FIXED;
	tries[1] = INFO_FIXED + 8;
	tries[2] = need - 1;
	for (int t = 0; t < 3; t++) {
		memset(&b, 0xa5, sizeof(b));
		b.info.argsz = tries[t];
		ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_GET_INFO, (unsigned long)&b));
		EXPECT_EQ(need, b.info.argsz);
		EXPECT_EQ(INFO_FLAGS, b.info.flags);
		EXPECT_EQ(0U, b.info.cap_offset);
		EXPECT_EQ(0U, b.info.pad);
		for (unsigned int i = 0; i < sizeof(b.tail); i++) {
			ASSERT_EQ((char)0xa5, b.tail[i]) {
				TH_LOG("argsz %u: byte %u written", tries[t], i);
			}
		}
	}
	/* Exactly the needed size: caps at offset 24, nothing written beyond. */
	memset(&b, 0xa5, sizeof(b));
	b.info.argsz = need;
	ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_GET_INFO, (unsigned long)&b));
	EXPECT_EQ(need, b.info.argsz);
	EXPECT_EQ(INFO_FIXED, b.info.cap_offset);
	for (unsigned int i = need - INFO_FIXED; i < sizeof(b.tail); i++)
		ASSERT_EQ((char)0xa5, b.tail[i]);
	/* A bigger buffer: argsz is left as the caller's. */
	memset(&b, 0, sizeof(b));
	b.info.argsz = sizeof(b);
	ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_GET_INFO, (unsigned long)&b));
	EXPECT_EQ(sizeof(b), b.info.argsz);
	EXPECT_EQ(INFO_FIXED, b.info.cap_offset);
}

TEST_F(info, pgsizes)
{
	char buf[4096];
	struct vfio_iommu_type1_info *info = (void *)buf;
	/* The block sizes of a page table whose granule is the page: one
	 * level up maps PG / 8 pages (2M with 4K pages, 512M with 64K), two
	 * levels up (PG / 8)^2 pages (1G with 4K pages). */
	uint64_t pmd = PG * (PG / 8), pud = pmd * (PG / 8);
	uint64_t pg;

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, buf, sizeof(buf)));
	EXPECT_EQ(INFO_FLAGS, info->flags);
	pg = info->iova_pgsizes;
	ksft_print_msg("%s, %llu KiB pages: iova_pgsizes 0x%llx\n",
		       arch_is_arm64() ? "arm64" : "x86_64", (unsigned long long)(PG >> 10),
		       (unsigned long long)pg);
	/* The smallest page is PAGE_SIZE (the IOMMU's granule is the page
	 * size in the test VMs: both arches with 4K pages, SMMUv3's 64K
	 * granule with 64K pages); no sub-page bits; block/superpage
	 * mappings one level up on both IOMMUs (intel-iommu second level,
	 * SMMUv3 stage 1). */
	EXPECT_EQ(PG, pg & -pg);
	EXPECT_EQ(PG | pmd, pg & (PG | pmd));
	EXPECT_EQ(0UL, pg & (PG - 1));
	/* Exactly those in the test VM: with 4K pages 4K|2M|1G on both
	 * arches (QEMU intel-iommu with 2M/1G second-level superpages; SMMUv3
	 * 4K granule); with 64K pages 64K|512M (SMMUv3's 64K granule has a
	 * 4T level-1 block only with an output size above 48 bits, QEMU's is
	 * 44). */
	EXPECT_EQ(PG | pmd | (PG == SZ_4K ? pud : 0), pg);
}

/* Walks the chain: every cap once, ids known, offsets inside argsz and
 * 8-aligned, total size as the C module lays it out. */
TEST_F(info, cap_chain)
{
	char buf[4096];
	struct vfio_iommu_type1_info *info = (void *)buf;
	int seen[4] = { 0 };
	uint32_t off, nr = 0, need, end = INFO_FIXED;

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	need = needed_argsz(_metadata, self->container, &nr);
	ASSERT_EQ(0, iommu_get_info(self->container, buf, sizeof(buf)));
	ASSERT_EQ(INFO_FIXED, info->cap_offset);
	for (off = info->cap_offset; off; ) {
		struct vfio_info_cap_header *h = (void *)(buf + off);

		ASSERT_EQ(0U, off % 8);
		ASSERT_LE(off + sizeof(*h), need);
		ASSERT_GE(h->id, 1);
		ASSERT_LE(h->id, 3);
		ASSERT_EQ(0, seen[h->id]++) TH_LOG("cap %u twice", h->id);
		EXPECT_EQ(1, h->version);
		switch (h->id) {
		case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
			end = off + sizeof(struct vfio_iommu_type1_info_cap_iova_range) +
			      nr * sizeof(struct vfio_iova_range);
			break;
		case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
			end = off + CAP_MIG_SZ;
			break;
		case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
			end = off + CAP_AVAIL_SZ;
			break;
		}
		ASSERT_LE(end, need);
		if (h->next)
			ASSERT_GE(h->next, end) TH_LOG("caps overlap");
		off = h->next;
	}
	EXPECT_EQ(1, seen[VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
	EXPECT_EQ(1, seen[VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION]);
	EXPECT_EQ(1, seen[VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]);
}

static int range_has(const struct vfio_iommu_type1_info_cap_iova_range *r,
		     uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < r->nr_iovas; i++)
		if (start >= r->iova_ranges[i].start && end <= r->iova_ranges[i].end)
			return 1;
	return 0;
}

static int range_touches(const struct vfio_iommu_type1_info_cap_iova_range *r,
			 uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < r->nr_iovas; i++)
		if (start <= r->iova_ranges[i].end && end >= r->iova_ranges[i].start)
			return 1;
	return 0;
}

TEST_F(info, iova_ranges)
{
	char buf[4096];
	struct vfio_iommu_type1_info_cap_iova_range *r;
	uint64_t win_start, win_end;

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, buf, sizeof(buf)));
	r = (void *)iommu_info_cap(buf, sizeof(buf), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	ASSERT_NE(NULL, r);
	EXPECT_EQ(0U, r->reserved);
	ASSERT_GE(r->nr_iovas, 2U);
	for (uint32_t i = 0; i < r->nr_iovas; i++) {
		struct vfio_iova_range *v = &r->iova_ranges[i];

		ksft_print_msg("iova range %u: 0x%llx-0x%llx\n", i,
			       (unsigned long long)v->start, (unsigned long long)v->end);
		EXPECT_LT(v->start, v->end);
		EXPECT_EQ(0ULL, v->start & (PG - 1));
		EXPECT_EQ(PG - 1, v->end & (PG - 1));
		if (i) /* sorted, non-overlapping, not adjacent (merged) */
			EXPECT_GT(v->start, r->iova_ranges[i - 1].end + 1);
	}
	EXPECT_EQ(0ULL, r->iova_ranges[0].start);
	/* The MSI doorbell window is carved out: on x86_64 the IOAPIC/MSI
	 * range 0xfee00000-0xfeefffff (intel-iommu IOMMU_RESV_MSI), on arm64
	 * the SMMUv3 software MSI window MSI_IOVA_BASE 0x8000000 + 1M. */
	if (arch_is_arm64()) {
		win_start = 0x8000000;
		win_end = 0x80fffff;
	} else {
		win_start = 0xfee00000;
		win_end = 0xfeefffff;
	}
	/* Exactly two ranges in the test VM: the aperture minus the MSI
	 * window. x86_64: QEMU intel-iommu's default 39-bit address width;
	 * arm64: SMMUv3 with a 48-bit input address size. */
	EXPECT_EQ(2U, r->nr_iovas);
	EXPECT_EQ(win_start - 1, r->iova_ranges[0].end);
	EXPECT_EQ(win_end + 1, r->iova_ranges[1].start);
	EXPECT_EQ(arch_is_arm64() ? (1ULL << 48) - 1 : (1ULL << 39) - 1,
		  r->iova_ranges[r->nr_iovas - 1].end);
	EXPECT_FALSE(range_touches(r, win_start, win_end));
	EXPECT_TRUE(range_has(r, win_start - PG, win_start - 1));
	EXPECT_TRUE(range_has(r, win_end + 1, win_end + PG));
	EXPECT_TRUE(range_has(r, IOVA_BASE, IOVA_BASE + 64 * SZ_2M - 1));
	/* The aperture is finite (below 2^64). */
	EXPECT_LT(r->iova_ranges[r->nr_iovas - 1].end, ~0ULL);
}

TEST_F(info, migration_cap)
{
	char buf[4096];
	struct vfio_iommu_type1_info *info = (void *)buf;
	struct vfio_iommu_type1_info_cap_migration *m;

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, buf, sizeof(buf)));
	m = (void *)iommu_info_cap(buf, sizeof(buf), VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(1, m->header.version);
	EXPECT_EQ(0U, m->flags);
	/* Only the smallest IOMMU page size. */
	EXPECT_EQ(info->iova_pgsizes & -info->iova_pgsizes, m->pgsize_bitmap);
	EXPECT_EQ(PG, m->pgsize_bitmap);
	/* DIRTY_BITMAP_BYTES(INT_MAX) = 2^31 bits / 8 = 256 MiB */
	EXPECT_EQ(0x10000000ULL, m->max_dirty_bitmap_size);
}

TEST_F(info, dma_avail)
{
	long limit = backend_param_read("dma_entry_limit");
	long avail;
	char *buf = mmap_aligned(4 * PG, PG, PROT_READ | PROT_WRITE);
	uint64_t sz;

	ASSERT_NE(NULL, buf);
	ASSERT_GT(limit, 3) TH_LOG("dma_entry_limit parameter unreadable");
	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	avail = iommu_dma_avail(self->container);
	EXPECT_EQ(limit, avail);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + i * SZ_2M, buf + i * PG,
				     PG, DMA_RW));
		EXPECT_EQ(limit - 1 - i, iommu_dma_avail(self->container));
	}
	/* A failed map takes no entry. */
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, PG, DMA_RW));
	EXPECT_EQ(limit - 3, iommu_dma_avail(self->container));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE + SZ_2M, PG, 0, &sz));
	EXPECT_EQ(PG, sz);
	EXPECT_EQ(limit - 2, iommu_dma_avail(self->container));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(2 * PG, sz);
	EXPECT_EQ(limit, iommu_dma_avail(self->container));
	munmap(buf, 4 * PG);
}

/* A v1 container reports the same as a v2 one for the same group. */
TEST_F(info, type1_same_as_type1v2)
{
	char a[4096], b[4096];

	join_and_set(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, a, sizeof(a)));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	join_and_set(_metadata, self, VFIO_TYPE1_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, b, sizeof(b)));
	EXPECT_EQ(0, memcmp(a, b, sizeof(a)));
}

TEST_HARNESS_MAIN
