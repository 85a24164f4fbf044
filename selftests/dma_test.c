// SPDX-License-Identifier: GPL-2.0
/*
 * Real DMA through the type1 backend with QEMU's edu device: what a mapping
 * says is what the device can reach, and nothing else. Every DMA goes
 * through the vIOMMU (intel-iommu on x86_64, SMMUv3 on arm64), so a missing
 * or stale IOMMU mapping shows up as wrong memory contents or a missing
 * fault report in the kernel log.
 *
 * After each test every page pin is released and VmLck is back to where it
 * was.
 */
#include "kselftest_harness.h"
#include "fixture.h"
#include "edu.h"

#define BUF_SIZE	SZ_2M
#define IOVA_A		IOVA_1G		/* below 4 GiB: edu's dma_mask */
#define IOVA_B		0x50000000ULL
#define GUARD		64
#define FAULT_WAIT_MS	2000
/* Faulting transfers are short: SMMUv3 reports a failed 2 KiB DMA as 512
 * events, far beyond the fault report rate limit. */
#define FAULT_LEN	16

FIXTURE(dma) {
	int container;
	int group[2];
	struct edu dev[2];
	uint8_t *buf[2];
	struct leak_baseline base;
	struct kmsg_watch kw;
};

FIXTURE_SETUP(dma)
{
	self->container = self->group[0] = self->group[1] = -1;
	self->dev[0].fd = self->dev[1].fd = -1;
	self->kw.fd = -1;
	self->buf[0] = self->buf[1] = NULL;
	leak_baseline_take(_metadata, &self->base);
	for (int i = 0; i < 2; i++) {
		self->buf[i] = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, self->buf[i]);
		/* Populated before mapping: a read-only pin of an untouched
		 * page would pin the shared zero page. */
		memset(self->buf[i], 0x11 * (i + 1), BUF_SIZE);
	}
	self->container = fixture_container(_metadata);
}

FIXTURE_TEARDOWN(dma)
{
	kmsg_watch_end(&self->kw);
	for (int i = 0; i < 2; i++)
		edu_close(&self->dev[i]);
	for (int i = 0; i < 2; i++)
		close_fd(&self->group[i]);
	close_fd(&self->container);
	/* Everything the container pinned and accounted is released now. */
	leak_check_pins(_metadata, &self->base);
	for (int i = 0; i < 2; i++)
		if (self->buf[i] && self->buf[i] != MAP_FAILED)
			munmap(self->buf[i], BUF_SIZE);
}

static void print_faults(struct __test_metadata *_metadata, struct kmsg_watch *w)
{
	for (int i = 0; i < w->nlines; i++)
		TH_LOG("kmsg: %s", w->line[i]);
}

/* Joins single-device or multi-device group g to the container. */
#define ATTACH(idx, g, type) do { \
	ASSERT_NE(NULL, (g)) TH_LOG("missing VFIO group for this test"); \
	self->group[idx] = vfio_group_attach(self->container, (g)->id, (type)); \
	ASSERT_GE(self->group[idx], 0) TH_LOG("group %d: %s", (g)->id, strerror(-self->group[idx])); \
} while (0)

#define OPEN_DEV(idx, grp, bdf) \
	ASSERT_EQ(0, edu_open(&self->dev[idx], (grp), (bdf))) TH_LOG("%s", self->dev[idx].err)

#define MAP(buf, iova, flags) \
	ASSERT_EQ(0, dma_map(self->container, (iova), (buf), BUF_SIZE, (flags))) \
		TH_LOG("MAP_DMA iova %#llx", (unsigned long long)(iova))

#define TO_DEV(e, iova, devoff, len) \
	ASSERT_EQ(0, edu_dma_to_device((e), (iova), (devoff), (len))) TH_LOG("%s", (e)->err)

#define FROM_DEV(e, iova, devoff, len) \
	ASSERT_EQ(0, edu_dma_from_device((e), (iova), (devoff), (len))) TH_LOG("%s", (e)->err)

/*
 * buf is mapped at iova. Puts a pattern at src_off, DMAs it into the edu
 * buffer at devoff and back out to dst_off: dst_off must then hold the
 * pattern and the bytes right around it must be untouched.
 */
static void round_trip(struct __test_metadata *_metadata, struct edu *e, uint8_t *buf,
		       uint64_t iova, size_t src_off, size_t dst_off, uint32_t len,
		       uint32_t devoff)
{
	size_t lo = dst_off >= GUARD ? dst_off - GUARD : 0;
	size_t hi = dst_off + len + GUARD <= BUF_SIZE ? dst_off + len + GUARD : BUF_SIZE;

	ASSERT_TRUE(src_off + len <= dst_off || dst_off + len <= src_off);
	fill_pattern(buf + src_off, len, src_off ^ dst_off ^ devoff ^ len);
	memset(buf + lo, 0xc3, hi - lo);
	TO_DEV(e, iova + src_off, devoff, len);
	FROM_DEV(e, iova + dst_off, devoff, len);
	EXPECT_EQ(0, memcmp(buf + src_off, buf + dst_off, len))
		TH_LOG("%s: %#x bytes iova %#llx -> edu+%#x -> iova %#llx differ", e->bdf, len,
		       (unsigned long long)(iova + src_off), devoff,
		       (unsigned long long)(iova + dst_off));
	for (size_t i = lo; i < hi; i++) {
		if (i < dst_off || i >= dst_off + len) {
			ASSERT_EQ(0xc3, buf[i]) TH_LOG("byte at buffer offset %#zx written", i);
		}
	}
}

/* No IOMMU fault was reported since the watch began. */
#define EXPECT_NO_FAULTS() do { \
	EXPECT_EQ(0, kmsg_watch_faults(&self->kw, 100)); \
	print_faults(_metadata, &self->kw); \
} while (0)

/* edu's buffer at devoff -> iova must fault: buf at off unchanged, a fault
 * report in the kernel log. */
static void write_must_fault(struct __test_metadata *_metadata, FIXTURE_DATA(dma) *self,
			     struct edu *e, uint8_t *buf, uint64_t iova, size_t off,
			     uint32_t devoff, uint32_t len)
{
	uint8_t *before = malloc(len);

	ASSERT_NE(NULL, before);
	memcpy(before, buf + off, len);
	iommu_fault_ratelimit(true);
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	FROM_DEV(e, iova, devoff, len);
	EXPECT_EQ(0, memcmp(before, buf + off, len))
		TH_LOG("%s: DMA to iova %#llx reached memory", e->bdf, (unsigned long long)iova);
	free(before);
	EXPECT_LT(0, kmsg_watch_faults(&self->kw, FAULT_WAIT_MS))
		TH_LOG("%s: no IOMMU fault logged for a write to iova %#llx", e->bdf,
		       (unsigned long long)iova);
	EXPECT_TRUE(kmsg_watch_names_iova(&self->kw, iova))
		TH_LOG("no fault line names iova %#llx", (unsigned long long)iova);
	print_faults(_metadata, &self->kw);
}

/* Transfers in different pages, across a page boundary, at odd offsets
 * and ending exactly at the end of the mapping. Offsets are in pages (PG)
 * plus sub-page parts, so that they mean the same for any page size. */
struct xfer { size_t src, dst; uint32_t len, devoff; };

static void round_trips(struct __test_metadata *_metadata, struct edu *e, uint8_t *buf,
			uint64_t iova)
{
	const struct xfer cases[] = {
		{ 0x0, PG, 2048, 0 },
		{ 5 * PG + 0xc00, 8 * PG - 0x200, 2048, 0x400 },	/* dst crosses 8 * PG */
		{ 0x12 * PG + 0x345, BUF_SIZE - PG + 1, 100, 0xf00 },
		{ BUF_SIZE - PG - 2048, BUF_SIZE - 2048, 2048, 0x100 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		round_trip(_metadata, e, buf, iova, cases[i].src, cases[i].dst,
			   cases[i].len, cases[i].devoff);
}

TEST_F_TIMEOUT(dma, round_trip, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);

	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(self->buf[0], IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	/* The leak check measures something: the mapping pinned and
	 * accounted every page. */
	EXPECT_EQ(self->base.pins + (long)(BUF_SIZE / PG), pins_outstanding());
	EXPECT_EQ(self->base.vmlck + (long)(BUF_SIZE / 1024), vmlck_kb());
	OPEN_DEV(0, self->group[0], g->dev[0]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trips(_metadata, &self->dev[0], self->buf[0], IOVA_A);
	EXPECT_NO_FAULTS();
}

/* A group joining after the mapping exists gets it too (replayed into its
 * domain, or its group attached to the existing one); unmapping then
 * removes it for that device. */
TEST_F_TIMEOUT(dma, replay, 60)
{
	const struct vfio_test_group *g1 = vfio_test_group_find(1, 0);
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);

	ATTACH(0, g1, VFIO_TYPE1v2_IOMMU);
	MAP(self->buf[0], IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	ATTACH(1, g2, 0);
	OPEN_DEV(1, self->group[1], g2->dev[0]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, &self->dev[1], self->buf[0], IOVA_A, 0x0, PG, 2048, 0);
	round_trip(_metadata, &self->dev[1], self->buf[0], IOVA_A,
		   BUF_SIZE - PG - 2048, BUF_SIZE - 2048, 2048, 0x100);
	/* The first group's device still reaches it. */
	OPEN_DEV(0, self->group[0], g1->dev[0]);
	round_trip(_metadata, &self->dev[0], self->buf[0], IOVA_A, 3 * PG, 4 * PG, 1024, 0x200);
	EXPECT_NO_FAULTS();

	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	write_must_fault(_metadata, self, &self->dev[1], self->buf[0], IOVA_A + PG,
			 PG, 0, FAULT_LEN);
}

/* Two devices of one group DMA through one mapping, each with its own
 * buffer. */
TEST_F_TIMEOUT(dma, multi_device_group, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(2, 0);
	uint8_t *b = self->buf[0];

	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(b, IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);
	OPEN_DEV(1, self->group[0], g->dev[1]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));

	fill_pattern(b + 0, 2048, 1);
	fill_pattern(b + PG, 2048, 2);
	memset(b + 2 * PG, 0, 2 * PG);
	TO_DEV(&self->dev[0], IOVA_A + 0, 0, 2048);
	TO_DEV(&self->dev[1], IOVA_A + PG, 0, 2048);
	FROM_DEV(&self->dev[0], IOVA_A + 2 * PG, 0, 2048);
	FROM_DEV(&self->dev[1], IOVA_A + 3 * PG, 0, 2048);
	EXPECT_EQ(0, memcmp(b + 0, b + 2 * PG, 2048)) TH_LOG("%s", g->dev[0]);
	EXPECT_EQ(0, memcmp(b + PG, b + 3 * PG, 2048)) TH_LOG("%s", g->dev[1]);
	EXPECT_NE(0, memcmp(b + 2 * PG, b + 3 * PG, 2048));

	round_trip(_metadata, &self->dev[1], b, IOVA_A,
		   BUF_SIZE - PG - 2048, BUF_SIZE - 2048, 2048, 0x100);
	EXPECT_NO_FAULTS();
}

/*
 * A READ-only mapping: the device's writes to it fault, its reads work.
 * The write comes first: QEMU's intel-iommu drops a write that hits a
 * read-only IOTLB entry without reporting a fault, so the page must not
 * have been read (and cached) before.
 */
TEST_F_TIMEOUT(dma, read_only_mapping, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	uint8_t *ro = self->buf[0], *rw = self->buf[1];

	fill_pattern(ro, BUF_SIZE, 7);
	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(ro, IOVA_A, VFIO_DMA_MAP_FLAG_READ);
	MAP(rw, IOVA_B, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);

	/* Writing it does not work: load other data into edu, write it to ro. */
	fill_pattern(rw + 2 * PG, 2048, 8);
	TO_DEV(&self->dev[0], IOVA_B + 2 * PG, 0, 2048);
	write_must_fault(_metadata, self, &self->dev[0], ro, IOVA_A + 3 * PG, 3 * PG, 0, FAULT_LEN);

	/* Reading it works: ro -> edu -> rw. */
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	TO_DEV(&self->dev[0], IOVA_A + 3 * PG, 0x100, 2048);
	FROM_DEV(&self->dev[0], IOVA_B + PG, 0x100, 2048);
	EXPECT_EQ(0, memcmp(ro + 3 * PG, rw + PG, 2048));
	EXPECT_NO_FAULTS();
}

/* TYPE1 (v1) containers do the same DMA. */
TEST_F_TIMEOUT(dma, v1_round_trip, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);

	ATTACH(0, g, VFIO_TYPE1_IOMMU);
	MAP(self->buf[0], IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, &self->dev[0], self->buf[0], IOVA_A, 0x0, PG, 2048, 0);
	round_trip(_metadata, &self->dev[0], self->buf[0], IOVA_A,
		   BUF_SIZE - PG - 2048, BUF_SIZE - 2048, 2048, 0x100);
	EXPECT_NO_FAULTS();
}

/*
 * VADDR live update (QEMU's cpr-exec): the memory is a memfd; its vaddr is
 * invalidated, the memfd is mapped at a new address and the vaddr given
 * again. The IOVA mapping and the pins never change, and DMA lands in the
 * memory seen at the new address.
 */
TEST_F_TIMEOUT(dma, vaddr_live_update, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .flags = VFIO_DMA_UNMAP_FLAG_VADDR,
		.iova = IOVA_A, .size = BUF_SIZE,
	};
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_VADDR,
		.iova = IOVA_A, .size = BUF_SIZE,
	};
	int fd = memfd_create("vfio-vaddr", 0);
	long long pins;
	uint8_t *a, *b;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ftruncate(fd, BUF_SIZE));
	a = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	memset(a, 0x5a, BUF_SIZE);
	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(a, IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);
	pins = pins_outstanding();

	ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&u));
	EXPECT_EQ((uint64_t)BUF_SIZE, (uint64_t)u.size);
	/* The "new process": the same memory at another address. */
	b = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, b);
	munmap(a, BUF_SIZE);
	m.vaddr = (uintptr_t)b;
	ASSERT_EQ(0, xioctl(self->container, VFIO_IOMMU_MAP_DMA, (unsigned long)&m));
	EXPECT_EQ(pins, pins_outstanding());
	/* A second update is refused: the vaddr is valid again. */
	EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_IOMMU_MAP_DMA, (unsigned long)&m));

	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, &self->dev[0], b, IOVA_A, 0x0, 2 * PG, 1024, 0);
	EXPECT_NO_FAULTS();
	edu_close(&self->dev[0]);
	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	munmap(b, BUF_SIZE);
	close(fd);
}

/* After UNMAP_DMA the device reaches neither the memory (writes) nor its
 * contents (reads). */
TEST_F_TIMEOUT(dma, after_unmap_faults, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	uint8_t *b = self->buf[0], *other = self->buf[1];
	uint8_t edu_data[2048];

	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(b, IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	MAP(other, IOVA_B, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, &self->dev[0], b, IOVA_A, 0x0, PG, 2048, 0);
	EXPECT_NO_FAULTS();

	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	memset(b + PG, 0x5a, 2048);
	write_must_fault(_metadata, self, &self->dev[0], b, IOVA_A + PG, PG, 0, FAULT_LEN);

	/* A read of the unmapped IOVA does not deliver b's contents to edu. */
	fill_pattern(b, 2048, 9);
	fill_pattern(other, 2048, 10);
	TO_DEV(&self->dev[0], IOVA_B, 0, 2048);		/* edu := other */
	iommu_fault_ratelimit(true);
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	TO_DEV(&self->dev[0], IOVA_A, 0, FAULT_LEN);	/* must fault */
	EXPECT_LT(0, kmsg_watch_faults(&self->kw, FAULT_WAIT_MS))
		TH_LOG("no IOMMU fault logged for a read of iova %#llx", IOVA_A);
	EXPECT_TRUE(kmsg_watch_names_iova(&self->kw, IOVA_A))
		TH_LOG("no fault line names iova %#llx", IOVA_A);
	print_faults(_metadata, &self->kw);
	memset(other + PG, 0, 2048);
	FROM_DEV(&self->dev[0], IOVA_B + PG, 0, 2048);
	memcpy(edu_data, other + PG, sizeof(edu_data));
	EXPECT_NE(0, memcmp(edu_data, b, FAULT_LEN)) TH_LOG("read of an unmapped IOVA got RAM data");
	/* The rest of edu's buffer still holds what it had. */
	EXPECT_EQ(0, memcmp(edu_data + FAULT_LEN, other + FAULT_LEN, 2048 - FAULT_LEN));
}

/* UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL removes every mapping; the
 * container can map again afterwards. */
TEST_F_TIMEOUT(dma, unmap_all_then_fault, 60)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	uint8_t *a = self->buf[0], *b = self->buf[1];

	ATTACH(0, g, VFIO_TYPE1v2_IOMMU);
	MAP(a, IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	MAP(b, IOVA_B, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	OPEN_DEV(0, self->group[0], g->dev[0]);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	/* a -> edu -> b and b -> edu -> a */
	fill_pattern(a, 2048, 11);
	TO_DEV(&self->dev[0], IOVA_A, 0, 2048);
	FROM_DEV(&self->dev[0], IOVA_B + 3 * PG, 0, 2048);
	EXPECT_EQ(0, memcmp(a, b + 3 * PG, 2048));
	fill_pattern(b, 2048, 12);
	TO_DEV(&self->dev[0], IOVA_B, 0, 2048);
	FROM_DEV(&self->dev[0], IOVA_A + 3 * PG, 0, 2048);
	EXPECT_EQ(0, memcmp(b, a + 3 * PG, 2048));
	EXPECT_NO_FAULTS();

	ASSERT_EQ((long long)(2 * BUF_SIZE), dma_unmap_bytes(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL));
	write_must_fault(_metadata, self, &self->dev[0], a, IOVA_A + 3 * PG, 3 * PG, 0, FAULT_LEN);
	memset(b + 3 * PG, 0x77, FAULT_LEN);
	iommu_fault_ratelimit(false);
	FROM_DEV(&self->dev[0], IOVA_B + 3 * PG, 0, FAULT_LEN);	/* faults too */
	for (int i = 0; i < FAULT_LEN; i++)
		ASSERT_EQ(0x77, b[3 * PG + i]) TH_LOG("DMA to unmapped IOVA_B reached memory");

	/* Nothing is left mapped: the same ranges map again and work. */
	MAP(a, IOVA_A, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	round_trip(_metadata, &self->dev[0], a, IOVA_A, 0x0, PG, 2048, 0);
}

TEST_HARNESS_MAIN
