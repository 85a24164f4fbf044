// SPDX-License-Identifier: GPL-2.0
/*
 * Two groups behind two different IOMMUs in one container: the second
 * group cannot join the first one's domain, gets a domain of its own, and
 * every existing mapping is replayed into it (the C module's
 * vfio_iommu_replay, our attach's replay), with no fault injection: the
 * arm64 VM with two SMMUv3s (scripts/vm --smmus 2) is the platform where
 * this is the ordinary path. Real DMA then checks what each domain holds:
 * both devices reach the replayed mapping and one made after both joined;
 * after UNMAP_DMA both devices' writes fault and reach no memory; nothing
 * stays pinned or locked.
 *
 * Skips (with the reason) where all vfio-pci groups sit behind one IOMMU,
 * so run_tests.sh can run it in every VM.
 */
#include "kselftest_harness.h"
#include "fixture.h"
#include "edu.h"

#define BUF_SIZE	SZ_2M
#define IOVA_A		IOVA_1G			/* below 4 GiB: edu's dma_mask */
#define IOVA_B		(IOVA_1G + SZ_1G / 2)
#define XFER		2048
#define FAULT_LEN	16
#define FAULT_WAIT_MS	2000

FIXTURE(two_smmu) {
	int container;
	int group[2];
	struct vfio_test_group g[2];
	char iommu[2][128];
	struct edu dev[2];
	uint8_t *buf[2];
	struct leak_baseline base;
	struct kmsg_watch kw;
};

FIXTURE_SETUP(two_smmu)
{
	self->container = self->group[0] = self->group[1] = -1;
	self->dev[0].fd = self->dev[1].fd = -1;
	self->kw.fd = -1;
	self->buf[0] = self->buf[1] = NULL;
	if (!groups_on_two_iommus(&self->g[0], &self->g[1], self->iommu[0], self->iommu[1],
				  sizeof(self->iommu[0])))
		SKIP(return, "every vfio-pci group is behind one IOMMU (two SMMUs: scripts/vm --arch arm64 --smmus 2)");
	TH_LOG("group %d (%s) behind %s, group %d (%s) behind %s", self->g[0].id,
	       self->g[0].dev[0], self->iommu[0], self->g[1].id, self->g[1].dev[0],
	       self->iommu[1]);
	leak_baseline_take(_metadata, &self->base);
	for (int i = 0; i < 2; i++) {
		self->buf[i] = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, self->buf[i]);
		memset(self->buf[i], 0x2d + i, BUF_SIZE);
	}
	self->container = fixture_container(_metadata);
}

FIXTURE_TEARDOWN(two_smmu)
{
	kmsg_watch_end(&self->kw);
	for (int i = 0; i < 2; i++)
		edu_close(&self->dev[i]);
	for (int i = 0; i < 2; i++)
		close_fd(&self->group[i]);
	close_fd(&self->container);
	if (self->buf[0]) {
		/* Every pin, VmLck and the backend's refcnt back. */
		leak_check(_metadata, &self->base);
		for (int i = 0; i < 2; i++)
			if (self->buf[i] && self->buf[i] != MAP_FAILED)
				munmap(self->buf[i], BUF_SIZE);
	}
}

/* RAM at src -> edu -> RAM at dst, through buf mapped at iova, on device e. */
static void round_trip(struct __test_metadata *_metadata, struct edu *e, uint8_t *buf,
		       uint64_t iova, size_t src, size_t dst)
{
	fill_pattern(buf + src, XFER, src ^ dst ^ iova);
	memset(buf + dst, 0, XFER);
	ASSERT_EQ(0, edu_dma_to_device(e, iova + src, 0, XFER)) TH_LOG("%s", e->err);
	ASSERT_EQ(0, edu_dma_from_device(e, iova + dst, 0, XFER)) TH_LOG("%s", e->err);
	EXPECT_EQ(0, memcmp(buf + src, buf + dst, XFER))
		TH_LOG("%s: round trip iova %#llx -> edu -> iova %#llx differs", e->bdf,
		       (unsigned long long)(iova + src), (unsigned long long)(iova + dst));
}

/* A write by e to iova + off (unmapped) faults and reaches no memory. */
static void write_must_fault(struct __test_metadata *_metadata, FIXTURE_DATA(two_smmu) *self,
			     struct edu *e, uint8_t *buf, uint64_t iova, size_t off)
{
	uint8_t before[FAULT_LEN];
	bool named = false, any_client = false;

	memcpy(before, buf + off, FAULT_LEN);
	iommu_fault_ratelimit(true);
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	ASSERT_EQ(0, edu_dma_from_device(e, iova + off, 0, FAULT_LEN)) TH_LOG("%s", e->err);
	EXPECT_EQ(0, memcmp(before, buf + off, FAULT_LEN))
		TH_LOG("%s: DMA to an unmapped iova reached memory", e->bdf);
	EXPECT_LT(0, kmsg_watch_faults(&self->kw, FAULT_WAIT_MS))
		TH_LOG("%s: no IOMMU fault for iova %#llx", e->bdf, (unsigned long long)(iova + off));
	/* SMMUv3 names the device ("client: BDF"; Linux 6.12 prints the raw
	 * record only): the fault is the one of this device's domain. */
	for (int i = 0; i < self->kw.nlines; i++) {
		const char *c = strstr(self->kw.line[i], "client: ");

		any_client |= !!c;
		named |= c && !strncmp(c + strlen("client: "), e->bdf, strlen(e->bdf));
	}
	if (any_client)
		EXPECT_TRUE(named) TH_LOG("%s: the faults name other devices: %s", e->bdf,
					  self->kw.line[0]);
}

/* The two groups are in two domains: our view says so; for the C module
 * (no view) it follows from the two IOMMUs (an iommu_domain belongs to
 * one SMMU: arm_smmu_attach_dev refuses another SMMU's devices). */
static void expect_two_domains(struct __test_metadata *_metadata, FIXTURE_DATA(two_smmu) *self)
{
	int da, db;

	ASSERT_STRNE(self->iommu[0], self->iommu[1]);
	if (!backend_is_rust()) {
		TH_LOG("C module: no view of its domains; two IOMMUs (%s, %s), so two domains",
		       self->iommu[0], self->iommu[1]);
		return;
	}
	da = view_domain_of(self->g[0].id);
	db = view_domain_of(self->g[1].id);
	ASSERT_LE(0, da) TH_LOG("group %d not in the view", self->g[0].id);
	ASSERT_LE(0, db) TH_LOG("group %d not in the view", self->g[1].id);
	EXPECT_NE(da, db) TH_LOG("groups %d and %d share domain %d", self->g[0].id,
				 self->g[1].id, da);
}

/*
 * A mapping exists when the group behind the second SMMU joins: it is
 * replayed into the new domain (the pages it pinned are not pinned again);
 * a mapping made afterwards goes into both domains. Both devices reach
 * both mappings; after UNMAP_DMA of both, writes from either device fault.
 */
TEST_F_TIMEOUT(two_smmu, replay_into_second_domain, 120)
{
	const long pages = BUF_SIZE / PG;
	uint8_t *a = self->buf[0], *b = self->buf[1];

	self->group[0] = vfio_group_attach(self->container, self->g[0].id, VFIO_TYPE1v2_IOMMU);
	ASSERT_LE(0, self->group[0]) TH_LOG("group %d: %s", self->g[0].id, strerror(-self->group[0]));
	ASSERT_EQ(0, dma_map(self->container, IOVA_A, a, BUF_SIZE, DMA_RW));
	EXPECT_EQ(self->base.pins + pages, pins_outstanding());

	/* The replay. */
	self->group[1] = vfio_group_attach(self->container, self->g[1].id, 0);
	ASSERT_LE(0, self->group[1]) TH_LOG("group %d: %s", self->g[1].id, strerror(-self->group[1]));
	expect_two_domains(_metadata, self);
	EXPECT_EQ(self->base.pins + pages, pins_outstanding())
		TH_LOG("the replay pinned the pages again (or dropped them)");
	EXPECT_EQ(self->base.vmlck + (long)(BUF_SIZE / 1024), vmlck_kb());

	/* A mapping into both domains. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_B, b, BUF_SIZE, DMA_RW));
	EXPECT_EQ(self->base.pins + 2 * pages, pins_outstanding());

	ASSERT_EQ(0, edu_open(&self->dev[0], self->group[0], self->g[0].dev[0])) TH_LOG("%s", self->dev[0].err);
	ASSERT_EQ(0, edu_open(&self->dev[1], self->group[1], self->g[1].dev[0])) TH_LOG("%s", self->dev[1].err);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	/* The replayed mapping from the second device: first, a middle and
	 * the last page. */
	round_trip(_metadata, &self->dev[1], a, IOVA_A, 0, PG);
	round_trip(_metadata, &self->dev[1], a, IOVA_A, 5 * PG + PG / 2, BUF_SIZE / 2);
	round_trip(_metadata, &self->dev[1], a, IOVA_A, 2 * PG, BUF_SIZE - PG);
	/* The first device still reaches it; both reach the later one. */
	round_trip(_metadata, &self->dev[0], a, IOVA_A, 3 * PG, BUF_SIZE - 2 * PG);
	round_trip(_metadata, &self->dev[0], b, IOVA_B, 0, BUF_SIZE - PG);
	round_trip(_metadata, &self->dev[1], b, IOVA_B, 4 * PG, 7 * PG);
	EXPECT_EQ(0, kmsg_watch_faults(&self->kw, 100)) TH_LOG("IOMMU faults during the round trips: %s",
								self->kw.line[0]);

	/* Unmapped from both domains. */
	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_B, BUF_SIZE, 0));
	EXPECT_EQ(self->base.pins, pins_outstanding());
	write_must_fault(_metadata, self, &self->dev[1], a, IOVA_A, PG);
	write_must_fault(_metadata, self, &self->dev[0], b, IOVA_B, 2 * PG);
}

/*
 * The first group leaves while the mapping exists: the second domain keeps
 * it (its device still reaches it), and UNMAP_DMA then removes it from the
 * domain that is left.
 */
TEST_F_TIMEOUT(two_smmu, first_group_leaves, 120)
{
	uint8_t *a = self->buf[0];

	self->group[0] = vfio_group_attach(self->container, self->g[0].id, VFIO_TYPE1v2_IOMMU);
	ASSERT_LE(0, self->group[0]) TH_LOG("group %d: %s", self->g[0].id, strerror(-self->group[0]));
	ASSERT_EQ(0, dma_map(self->container, IOVA_A, a, BUF_SIZE, DMA_RW));
	self->group[1] = vfio_group_attach(self->container, self->g[1].id, 0);
	ASSERT_LE(0, self->group[1]) TH_LOG("group %d: %s", self->g[1].id, strerror(-self->group[1]));
	expect_two_domains(_metadata, self);

	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_UNSET_CONTAINER, 0));
	if (backend_is_rust())
		EXPECT_EQ(-1, view_domain_of(self->g[0].id));
	EXPECT_EQ(self->base.pins + (long)(BUF_SIZE / PG), pins_outstanding());

	ASSERT_EQ(0, edu_open(&self->dev[1], self->group[1], self->g[1].dev[0])) TH_LOG("%s", self->dev[1].err);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));
	round_trip(_metadata, &self->dev[1], a, IOVA_A, PG, BUF_SIZE - PG);
	EXPECT_EQ(0, kmsg_watch_faults(&self->kw, 100)) TH_LOG("IOMMU faults during the round trip: %s",
								self->kw.line[0]);
	ASSERT_EQ((long long)BUF_SIZE, dma_unmap_bytes(self->container, IOVA_A, BUF_SIZE, 0));
	EXPECT_EQ(self->base.pins, pins_outstanding());
	write_must_fault(_metadata, self, &self->dev[1], a, IOVA_A, 3 * PG);
}

TEST_HARNESS_MAIN
