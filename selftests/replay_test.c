// SPDX-License-Identifier: GPL-2.0
/*
 * Replay into a domain that could not merge. In our VMs every group can
 * merge onto the container's first domain, so the path where a group gets
 * a domain of its own and every existing mapping is mapped into it (the C
 * module's vfio_iommu_replay; the seed study's second trace) is forced
 * here: fail_function fails the merge's attach (our injection point
 * vfio_rs_iommu_attach_group, its second call of the SET_CONTAINER), the
 * group goes back onto its new domain and the mappings are replayed.
 * Then real DMA: both devices reach the mappings through their own
 * domains, and after UNMAP_DMA both fault.
 *
 * Needs fail_function (the debug kernel) and our backend: the C module
 * has no injection point on its merge's attach. Elsewhere it skips.
 */
#include "kselftest_harness.h"
#include "fixture.h"
#include "edu.h"

#define DBGFS		"/sys/kernel/debug"
#define FEI		DBGFS "/fail_function"
#define BUF_SIZE	SZ_2M
#define IOVA_A		IOVA_1G		/* below 4 GiB: edu's dma_mask */
#define FAULT_LEN	16
#define FAULT_WAIT_MS	2000

FIXTURE(replay) {
	int container;
	int group[2];
	struct edu dev[2];
	uint8_t *buf;
	struct leak_baseline base;
	struct kmsg_watch kw;
};

FIXTURE_SETUP(replay)
{
	self->container = self->group[0] = self->group[1] = -1;
	self->dev[0].fd = self->dev[1].fd = -1;
	self->kw.fd = -1;
	self->buf = NULL;
	if (backend_is_c())
		SKIP(return, "the C module has no injection point on its merge's attach");
	if (access(FEI "/inject", W_OK))
		SKIP(return, "no fail_function (not the debug kernel)");
	if (!vfio_test_group_find(1, 1))
		SKIP(return, "needs two single-device groups");
	leak_baseline_take(_metadata, &self->base);
	self->buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x2d, BUF_SIZE);
	self->container = fixture_container(_metadata);
}

FIXTURE_TEARDOWN(replay)
{
	write_str(FEI "/probability", "0");
	write_str(FEI "/inject", "\n");
	kmsg_watch_end(&self->kw);
	for (int i = 0; i < 2; i++)
		edu_close(&self->dev[i]);
	for (int i = 0; i < 2; i++)
		close_fd(&self->group[i]);
	close_fd(&self->container);
	if (self->buf) {
		leak_check_pins(_metadata, &self->base);
		munmap(self->buf, BUF_SIZE);
	}
}

/* Fails the n-th call from now of vfio_rs_iommu_attach_group with EIO
 * (space n: the first n - 1 calls use space up). */
static int fail_nth_attach(const char *n)
{
	char v[32];

	snprintf(v, sizeof(v), "%#lx", (unsigned long)-(long)EIO);
	if (write_str(FEI "/inject", "vfio_rs_iommu_attach_group") ||
	    write_str(FEI "/vfio_rs_iommu_attach_group/retval", v) ||
	    write_str(FEI "/space", n) || write_str(FEI "/times", "1") ||
	    write_str(FEI "/verbose", "0"))
		return -1;
	return write_str(FEI "/probability", "100");
}

/* Number of "  domain N:" lines in our debugfs view. */
static int view_domains(void)
{
	static char view[1 << 16];
	int n = 0;

	if (read_view(view, sizeof(view)))
		return -1;
	for (char *p = view; (p = strstr(p, "\n  domain ")); p++)
		n++;
	return n;
}

/* RAM at src -> edu -> RAM at dst, through iova, on device e. */
static void round_trip(struct __test_metadata *_metadata, FIXTURE_DATA(replay) *self,
		       struct edu *e, size_t src, size_t dst, uint32_t len)
{
	fill_pattern(self->buf + src, len, src ^ dst);
	memset(self->buf + dst, 0, len);
	ASSERT_EQ(0, edu_dma_to_device(e, IOVA_A + src, 0, len)) TH_LOG("%s", e->err);
	ASSERT_EQ(0, edu_dma_from_device(e, IOVA_A + dst, 0, len)) TH_LOG("%s", e->err);
	EXPECT_EQ(0, memcmp(self->buf + src, self->buf + dst, len))
		TH_LOG("%s: round trip through iova %#llx differs", e->bdf,
		       (unsigned long long)IOVA_A);
}

/* A write by e to the unmapped iova faults and does not reach RAM. */
static void write_must_fault(struct __test_metadata *_metadata, FIXTURE_DATA(replay) *self,
			     struct edu *e, size_t off)
{
	uint8_t before[FAULT_LEN];

	memcpy(before, self->buf + off, FAULT_LEN);
	iommu_fault_ratelimit(true);
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	ASSERT_EQ(0, edu_dma_from_device(e, IOVA_A + off, 0, FAULT_LEN)) TH_LOG("%s", e->err);
	EXPECT_EQ(0, memcmp(before, self->buf + off, FAULT_LEN))
		TH_LOG("%s: DMA to an unmapped iova reached memory", e->bdf);
	EXPECT_LT(0, kmsg_watch_faults(&self->kw, FAULT_WAIT_MS))
		TH_LOG("%s: no IOMMU fault for iova %#llx", e->bdf,
		       (unsigned long long)(IOVA_A + off));
}

/*
 * A mapping exists; the second group's merge fails, so it gets its own
 * domain and the mapping is replayed into it (two domains in the view, the
 * trace says replayed 1). Both devices then do DMA through it, and after
 * UNMAP_DMA both fault: it was unmapped from both domains.
 */
TEST_F_TIMEOUT(replay, into_domain_that_could_not_merge, 120)
{
	const struct vfio_test_group *ga = vfio_test_group_find(1, 0);
	const struct vfio_test_group *gb = vfio_test_group_find(1, 1);
	long pins = pins_outstanding();
	int r;

	self->group[0] = vfio_group_attach(self->container, ga->id, VFIO_TYPE1v2_IOMMU);
	ASSERT_LE(0, self->group[0]);
	ASSERT_EQ(0, dma_map(self->container, IOVA_A, self->buf, BUF_SIZE, DMA_RW));
	EXPECT_EQ(pins + (long)(BUF_SIZE / PG), pins_outstanding());
	ASSERT_EQ(1, view_domains());

	self->group[1] = vfio_open_viable_group(gb->id);
	ASSERT_LE(0, self->group[1]);
	/* The new domain's attach goes through, the merge's fails. */
	ASSERT_EQ(0, fail_nth_attach("2")) TH_LOG("cannot arm fail_function: %m");
	r = xioctl(self->group[1], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container);
	write_str(FEI "/probability", "0");
	ASSERT_EQ(0, r) TH_LOG("SET_CONTAINER: %s", strerror(-r));
	EXPECT_EQ(0, read_long(FEI "/times")) TH_LOG("the merge's attach was not failed");
	ASSERT_EQ(2, view_domains()) TH_LOG("the group merged after all");
	/* The replay maps what is pinned: no second pin of the pages. */
	EXPECT_EQ(pins + (long)(BUF_SIZE / PG), pins_outstanding());

	ASSERT_EQ(0, edu_open(&self->dev[0], self->group[0], ga->dev[0])) TH_LOG("%s", self->dev[0].err);
	ASSERT_EQ(0, edu_open(&self->dev[1], self->group[1], gb->dev[0])) TH_LOG("%s", self->dev[1].err);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, self, &self->dev[1], 3 * PG, BUF_SIZE - PG, 2048);
	round_trip(_metadata, self, &self->dev[0], 5 * PG, BUF_SIZE / 2 + PG / 2, 2048);
	EXPECT_EQ(0, kmsg_watch_faults(&self->kw, 100)) TH_LOG("IOMMU faults during the round trips");

	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	EXPECT_EQ(pins, pins_outstanding());
	write_must_fault(_metadata, self, &self->dev[1], 3 * PG);
	write_must_fault(_metadata, self, &self->dev[0], 5 * PG);
}

/*
 * The second group's own attach fails (its new domain): SET_CONTAINER
 * answers the iommu core's errno and the container is as it was: the
 * mapping still pinned once and still reachable, and nothing left after
 * UNMAP_DMA.
 */
TEST_F_TIMEOUT(replay, new_domain_attach_fails, 120)
{
	const struct vfio_test_group *ga = vfio_test_group_find(1, 0);
	const struct vfio_test_group *gb = vfio_test_group_find(1, 1);
	long pins = pins_outstanding(), lck = vmlck_kb();
	int r;

	self->group[0] = vfio_group_attach(self->container, ga->id, VFIO_TYPE1v2_IOMMU);
	ASSERT_LE(0, self->group[0]);
	ASSERT_EQ(0, dma_map(self->container, IOVA_A, self->buf, BUF_SIZE, DMA_RW));
	self->group[1] = vfio_open_viable_group(gb->id);
	ASSERT_LE(0, self->group[1]);
	ASSERT_EQ(0, fail_nth_attach("1")) TH_LOG("cannot arm fail_function: %m");
	r = xioctl(self->group[1], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container);
	write_str(FEI "/probability", "0");
	EXPECT_EQ(-EIO, r);
	EXPECT_EQ(1, view_domains());
	EXPECT_EQ(pins + (long)(BUF_SIZE / PG), pins_outstanding());
	ASSERT_EQ(0, edu_open(&self->dev[0], self->group[0], ga->dev[0])) TH_LOG("%s", self->dev[0].err);
	round_trip(_metadata, self, &self->dev[0], 3 * PG, BUF_SIZE - PG, 2048);
	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	EXPECT_EQ(pins, pins_outstanding()) TH_LOG("pins left after UNMAP_DMA");
	EXPECT_EQ(lck, vmlck_kb());
}

TEST_HARNESS_MAIN
