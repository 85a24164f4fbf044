// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupts through the IOMMU. The edu's MSI is wired to an eventfd
 * (VFIO_DEVICE_SET_IRQS, VFIO_PCI_MSI_IRQ_INDEX) and the device raises it,
 * by its interrupt-raise register and by a finished DMA (command bit 2),
 * in the topologies where a domain's interrupt path is set up by the
 * backend: the container's first domain, a group merged onto an existing
 * domain, a new domain made after the first group left, the first domain
 * made by a replay of existing mappings, and the second SMMU's domain.
 *
 * On x86_64 (VT-d, interrupt remapping) the MSI write is an interrupt
 * request the IOMMU remaps; on arm64 it is a DMA write to the GICv3 ITS
 * doorbell through the SMMU, which reaches it only because iommu_dma maps
 * the doorbell into the domain's software MSI window (IOVA 0x8000000,
 * set up per domain by the attach: iommu_get_msi_cookie, our
 * enable_sw_msi). Every domain needs its own window. Without one, Linux
 * 7.3 refuses the MSI at VFIO_DEVICE_SET_IRQS (iommu_dma_prepare_msi():
 * the domain has no cookie, EOPNOTSUPP, which the ITS's MSI allocation
 * turns into ENOSPC); kernels that let it through send the MSI to an
 * unmapped IOVA: an IOMMU fault, and the eventfd never counts.
 *
 * Each case counts the interrupts exactly (one per raise, none spurious),
 * watches the kernel log for IOMMU faults, and checks that user mappings
 * are refused over the interrupt window: the IOVA_RANGE capability leaves
 * it out and MAP_DMA into it fails with EINVAL. After each test nothing
 * stays pinned or locked and the backend is unreferenced. Cases whose
 * topology the VM lacks skip with the reason (a second IOMMU: scripts/vm
 * --arch arm64 --smmus 2; the test mdev driver for the emulated group).
 */
#include "kselftest_harness.h"
#include "fixture.h"
#include "edu.h"

#include <poll.h>
#include <sys/eventfd.h>

#define BUF_SIZE	SZ_2M
#define IOVA_A		IOVA_1G		/* below 4 GiB: edu's dma_mask */
#define XFER		2048
#define IRQ_WAIT_MS	5000
#define NRAISE		3		/* register raises per device and case */
#define NDMA		2		/* DMA completions per device and case */

/* The interrupt window: VT-d's hardware MSI region, SMMUv3's software MSI
 * window (iommu_dma's MSI_IOVA_BASE, MSI_IOVA_LENGTH). */
#if defined(__x86_64__)
#define MSI_WINDOW	0xfee00000ULL
#else
#define MSI_WINDOW	0x08000000ULL
#endif
#define MSI_WINDOW_LEN	0x100000ULL

FIXTURE(irq) {
	int container;
	int group[2];			/* edu groups */
	struct vfio_test_group g[2];
	char iommu[2][128];
	struct edu dev[2];
	int efd[2];
	struct trm_dev mdev;		/* the emulated group's mdev, if any */
	int mdev_group;
	uint8_t *buf;
	bool baseline;
	struct leak_baseline base;
	struct kmsg_watch kw;
};

FIXTURE_SETUP(irq)
{
	self->container = self->mdev_group = -1;
	self->mdev.fd = -1;
	self->mdev.uuid[0] = 0;
	self->kw.fd = -1;
	self->buf = NULL;
	self->baseline = false;
	for (int i = 0; i < 2; i++) {
		self->group[i] = self->efd[i] = self->dev[i].fd = -1;
		self->dev[i].bar = NULL;
	}
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	self->baseline = true;
	self->buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x3c, BUF_SIZE);
	for (int i = 0; i < 2; i++) {
		self->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ASSERT_LE(0, self->efd[i]);
	}
	self->container = fixture_container(_metadata);
}

FIXTURE_TEARDOWN(irq)
{
	kmsg_watch_end(&self->kw);
	for (int i = 0; i < 2; i++) {
		edu_close(&self->dev[i]);	/* MSI off with the device fd */
		close_fd(&self->group[i]);
		close_fd(&self->efd[i]);
	}
	close_fd(&self->mdev.fd);
	close_fd(&self->mdev_group);
	close_fd(&self->container);
	if (self->mdev.uuid[0])
		EXPECT_EQ(0, trm_remove(&self->mdev));
	if (self->baseline)
		leak_check(_metadata, &self->base);
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, BUF_SIZE);
}

/*
 * g[0] and g[1]: two single-device groups behind one IOMMU (same: they can
 * share a domain) or behind two (!same; false if the VM has one IOMMU).
 */
static bool pick_groups(FIXTURE_DATA(irq) *self, bool same)
{
	static struct vfio_test_group groups[MAX_GROUPS];
	int n;

	if (!same)
		return groups_on_two_iommus(&self->g[0], &self->g[1], self->iommu[0],
					    self->iommu[1], sizeof(self->iommu[0]));
	n = vfio_test_groups(groups, MAX_GROUPS);
	for (int i = 0, k = 0; i < n && k < 2; i++) {
		if (groups[i].ndev != 1 ||
		    pci_dev_iommu(groups[i].dev[0], self->iommu[k], sizeof(self->iommu[0])))
			continue;
		if (k == 1 && strcmp(self->iommu[0], self->iommu[1]))
			continue;
		self->g[k++] = groups[i];
		if (k == 2)
			return true;
	}
	return false;
}

/* Group k joins the container (SET_IOMMU with it if type). */
static void join(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self, int k,
		 unsigned long type)
{
	self->group[k] = vfio_group_attach(self->container, self->g[k].id, type);
	ASSERT_LE(0, self->group[k]) TH_LOG("group %d (%s): %s", self->g[k].id, self->g[k].dev[0],
					    strerror(-self->group[k]));
}

/* Group k leaves the container (its device closed first). */
static void leave(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self, int k)
{
	edu_close(&self->dev[k]);
	ASSERT_EQ(0, xioctl(self->group[k], VFIO_GROUP_UNSET_CONTAINER, 0));
	close_fd(&self->group[k]);
	if (backend_is_rust())
		EXPECT_EQ(-1, view_domain_of(self->g[k].id));
}

/* Opens group k's edu and wires its MSI to efd[k]. */
static void open_msi(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self, int k)
{
	struct edu *e = &self->dev[k];
	char bdf[32];

	snprintf(bdf, sizeof(bdf), "%s", self->g[k].dev[0]);	/* not inside *self */
	ASSERT_EQ(0, edu_open(e, self->group[k], bdf)) TH_LOG("%s", e->err);
	ASSERT_EQ(0, edu_msi_set(e, self->efd[k])) TH_LOG("%s", e->err);
}

/* The interrupts counted on efd within ms (0: none came). */
static uint64_t irq_wait(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/*
 * Device k raises NRAISE interrupts by its register and NDMA by finished
 * DMAs (RAM -> edu -> RAM through buf mapped at iova, checked): each must
 * arrive on the eventfd, exactly once, with the status bit that caused it,
 * and no IOMMU fault may be logged meanwhile. Returns the interrupts
 * counted.
 */
static int irqs(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self, int k,
		uint64_t iova, const char *what)
{
	struct edu *e = &self->dev[k];
	uint8_t *b = self->buf;
	int got = 0, by_reg = 0, by_dma = 0;
	uint64_t n;

	edu_write(e, EDU_REG_IRQ_ACK, ~0U, 4);
	EXPECT_EQ(0U, edu_read(e, EDU_REG_IRQ_STATUS, 4));
	irq_wait(self->efd[k], 0);		/* nothing left from before */
	kmsg_watch_end(&self->kw);
	ASSERT_EQ(0, kmsg_watch_begin(&self->kw));

	for (int i = 0; i < NRAISE; i++) {
		uint32_t bit = 0x10000u << i;

		edu_write(e, EDU_REG_IRQ_RAISE, bit, 4);
		n = irq_wait(self->efd[k], IRQ_WAIT_MS);
		EXPECT_EQ(1U, n) TH_LOG("%s: %s: register raise %d: %llu interrupts in %d ms",
					e->bdf, what, i, (unsigned long long)n, IRQ_WAIT_MS);
		EXPECT_EQ(bit, edu_read(e, EDU_REG_IRQ_STATUS, 4) & bit);
		edu_write(e, EDU_REG_IRQ_ACK, bit, 4);
		EXPECT_EQ(0U, edu_read(e, EDU_REG_IRQ_STATUS, 4));
		got += n;
		by_reg += n;
	}
	for (int i = 0; i < NDMA; i++) {
		size_t src = i * 4 * PG, dst = src + 2 * PG + 0x100;
		bool to_dev = true;

		fill_pattern(b + src, XFER, 0x1e0 + i + k);
		memset(b + dst, 0, XFER);
		/* Both directions, each with its interrupt. */
		for (int d = 0; d < 2; d++, to_dev = !to_dev) {
			int r = to_dev ? edu_dma(e, iova + src, EDU_BUF_ADDR, XFER, EDU_DMA_IRQ)
				       : edu_dma(e, EDU_BUF_ADDR, iova + dst, XFER,
						 EDU_DMA_TO_RAM | EDU_DMA_IRQ);

			ASSERT_EQ(0, r) TH_LOG("%s", e->err);
			n = irq_wait(self->efd[k], IRQ_WAIT_MS);
			EXPECT_EQ(1U, n) TH_LOG("%s: %s: DMA %s %d: %llu interrupts in %d ms",
						e->bdf, what, to_dev ? "RAM->edu" : "edu->RAM", i,
						(unsigned long long)n, IRQ_WAIT_MS);
			EXPECT_EQ((uint64_t)EDU_IRQ_DMA, edu_read(e, EDU_REG_IRQ_STATUS, 4));
			edu_write(e, EDU_REG_IRQ_ACK, EDU_IRQ_DMA, 4);
			got += n;
			by_dma += n;
		}
		EXPECT_EQ(0, memcmp(b + src, b + dst, XFER))
			TH_LOG("%s: %s: round trip through iova %#llx differs", e->bdf, what,
			       (unsigned long long)iova);
	}
	n = irq_wait(self->efd[k], 100);
	EXPECT_EQ(0U, n) TH_LOG("%s: %s: %llu spurious interrupts", e->bdf, what,
				(unsigned long long)n);
	EXPECT_EQ(0, kmsg_watch_faults(&self->kw, 100))
		TH_LOG("%s: %s: IOMMU fault: %s", e->bdf, what, self->kw.line[0]);
	for (int i = 0; i < self->kw.nlines; i++)
		TH_LOG("kmsg: %s", self->kw.line[i]);
	TH_LOG("%s (group %d, %s): %s: %d interrupts (%d by register, %d by DMA completion), expected %d",
	       e->bdf, self->g[k].id, self->iommu[k], what, got, by_reg, by_dma,
	       NRAISE + 2 * NDMA);
	EXPECT_EQ(NRAISE + 2 * NDMA, got);
	return got;
}

/* The interrupt window of group gid from its reserved regions ("msi"). */
static void msi_window_of(struct __test_metadata *_metadata, int gid, uint64_t *start,
			  uint64_t *end)
{
	char path[96], line[160], type[32];
	unsigned long long s, e;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/reserved_regions", gid);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f) TH_LOG("%s: %m", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %llx %31s", &s, &e, type) == 3 && !strcmp(type, "msi")) {
			*start = s;
			*end = e;
			found = true;
		}
	fclose(f);
	ASSERT_TRUE(found) TH_LOG("group %d: no msi reserved region", gid);
	EXPECT_EQ(MSI_WINDOW, *start);
	EXPECT_EQ(MSI_WINDOW + MSI_WINDOW_LEN - 1, *end);
}

/*
 * User mappings are refused over group gid's interrupt window: the
 * IOVA_RANGE capability leaves exactly it out (ranges end right below and
 * start right above it) and MAP_DMA into it or across either edge fails
 * with EINVAL, while the page right below it maps.
 */
static void window_refused(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self, int gid)
{
	static char info[1 << 14];
	struct vfio_iommu_type1_info_cap_iova_range *c;
	uint64_t ws = 0, we = 0;
	bool below = false, above = false;

	msi_window_of(_metadata, gid, &ws, &we);
	ASSERT_EQ(0, iommu_get_info(self->container, info, sizeof(info)));
	c = (void *)iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	ASSERT_NE(NULL, c) TH_LOG("no IOVA_RANGE capability");
	for (uint32_t i = 0; i < c->nr_iovas; i++) {
		uint64_t s = c->iova_ranges[i].start, e = c->iova_ranges[i].end;

		EXPECT_FALSE(s <= we && e >= ws)
			TH_LOG("IOVA range %#llx-%#llx covers the MSI window %#llx-%#llx",
			       (unsigned long long)s, (unsigned long long)e,
			       (unsigned long long)ws, (unsigned long long)we);
		below |= e == ws - 1;
		above |= s == we + 1;
	}
	EXPECT_TRUE(below) TH_LOG("no IOVA range ends at %#llx", (unsigned long long)(ws - 1));
	EXPECT_TRUE(above) TH_LOG("no IOVA range starts at %#llx", (unsigned long long)(we + 1));

	EXPECT_EQ(-EINVAL, dma_map(self->container, ws, self->buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, ws + MSI_WINDOW_LEN / 2, self->buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, we + 1 - PG, self->buf, PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, ws - PG, self->buf, 2 * PG, DMA_RW));
	EXPECT_EQ(-EINVAL, dma_map(self->container, we + 1 - PG, self->buf, 2 * PG, DMA_RW));
	/* Right below it is fine: the refusals are about the window. */
	EXPECT_EQ(0, dma_map(self->container, ws - PG, self->buf, PG, DMA_RW));
	EXPECT_EQ((long long)PG, dma_unmap_bytes(self->container, ws - PG, PG, 0));
}

/* Both groups in one domain (our view; the C module has none). */
static void expect_domains(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self,
			   bool shared)
{
	int d0, d1;

	if (!backend_is_rust())
		return;
	d0 = view_domain_of(self->g[0].id);
	d1 = view_domain_of(self->g[1].id);
	ASSERT_LE(0, d0) TH_LOG("group %d not in the view", self->g[0].id);
	ASSERT_LE(0, d1) TH_LOG("group %d not in the view", self->g[1].id);
	if (shared) {
		EXPECT_EQ(d0, d1) TH_LOG("groups %d and %d in domains %d and %d", self->g[0].id,
					 self->g[1].id, d0, d1);
	} else {
		EXPECT_NE(d0, d1) TH_LOG("groups %d and %d share domain %d", self->g[0].id,
					 self->g[1].id, d0);
	}
}

/* An emulated (mdev) group in the container, TYPE1v2: it keeps the
 * container's IOMMU while edu groups come and go. False (the test
 * skipped) without the test mdev driver. */
static bool join_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(irq) *self)
{
	int r = trm_load();

	if (r == -ENODEV) {
		SKIP(return false, "this kernel has no mdev core (CONFIG_VFIO_MDEV: no driver selects it, as in Debian's arm64 kernel)");
	}
	ASSERT_EQ(0, r) {
		TH_LOG("cannot load mdev + %s: %s", TRM_KO_DEFAULT, strerror(-r));
		return false;
	}
	ASSERT_EQ(0, trm_create(&self->mdev)) {
		return false;
	}
	self->mdev_group = vfio_group_attach(self->container, self->mdev.group_id,
					     VFIO_TYPE1v2_IOMMU);
	ASSERT_LE(0, self->mdev_group) {
		TH_LOG("mdev group %d: %s", self->mdev.group_id, strerror(-self->mdev_group));
		return false;
	}
	return true;
}

#define MAP_A() ASSERT_EQ(0, dma_map(self->container, IOVA_A, self->buf, BUF_SIZE, DMA_RW))

/* The container's first domain: the plain case, for comparison. */
TEST_F_TIMEOUT(irq, first_domain, 120)
{
	if (!pick_groups(self, true))
		SKIP(return, "no two single-device groups behind one IOMMU");
	join(_metadata, self, 0, VFIO_TYPE1v2_IOMMU);
	MAP_A();
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "first domain");
	window_refused(_metadata, self, self->g[0].id);
}

/* The second group joins the first one's domain (no new domain, no new
 * window): its MSI goes through the window that domain already has. */
TEST_F_TIMEOUT(irq, group_merged_onto_existing_domain, 120)
{
	if (!pick_groups(self, true))
		SKIP(return, "no two single-device groups behind one IOMMU");
	join(_metadata, self, 0, VFIO_TYPE1v2_IOMMU);
	MAP_A();
	join(_metadata, self, 1, 0);
	expect_domains(_metadata, self, true);
	open_msi(_metadata, self, 1);
	irqs(_metadata, self, 1, IOVA_A, "merged group");
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "first group, after the merge");
	irqs(_metadata, self, 1, IOVA_A, "merged group, again");
	window_refused(_metadata, self, self->g[1].id);
}

/*
 * The first group's domain goes when it leaves (an emulated group keeps
 * the container and its mapping); the next group gets a new domain, the
 * mapping pinned into it again, and needs a window of its own. The first
 * group then comes back onto that domain.
 */
TEST_F_TIMEOUT(irq, new_domain_after_first_group_left, 120)
{
	if (!pick_groups(self, true))
		SKIP(return, "no two single-device groups behind one IOMMU");
	if (!join_mdev(_metadata, self))
		return;
	MAP_A();
	join(_metadata, self, 0, 0);
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "first domain");
	leave(_metadata, self, 0);

	join(_metadata, self, 1, 0);
	open_msi(_metadata, self, 1);
	irqs(_metadata, self, 1, IOVA_A, "new domain after the first group left");
	window_refused(_metadata, self, self->g[1].id);

	join(_metadata, self, 0, 0);
	expect_domains(_metadata, self, true);
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "first group, back onto the new domain");
}

/*
 * The mapping exists before any IOMMU-backed group (only an emulated group
 * is in the container): the edu group's attach replays it into its new
 * domain, then sets up the window.
 */
TEST_F_TIMEOUT(irq, after_replay, 120)
{
	if (!pick_groups(self, true))
		SKIP(return, "no two single-device groups behind one IOMMU");
	if (!join_mdev(_metadata, self))
		return;
	MAP_A();
	join(_metadata, self, 0, 0);
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "domain made by a replay");
	window_refused(_metadata, self, self->g[0].id);
}

/*
 * Groups behind two SMMUs: the second one's group gets a domain of its own
 * (the mapping replayed into it), with a window of its own; both devices'
 * interrupts arrive. When the first group leaves and its domain (and
 * window) goes, the second domain's interrupts still arrive.
 */
TEST_F_TIMEOUT(irq, second_smmu_domain, 180)
{
	if (!pick_groups(self, false))
		SKIP(return, "every vfio-pci group is behind one IOMMU (two SMMUs: scripts/vm --arch arm64 --smmus 2)");
	TH_LOG("group %d (%s) behind %s, group %d (%s) behind %s", self->g[0].id,
	       self->g[0].dev[0], self->iommu[0], self->g[1].id, self->g[1].dev[0],
	       self->iommu[1]);
	join(_metadata, self, 0, VFIO_TYPE1v2_IOMMU);
	MAP_A();
	join(_metadata, self, 1, 0);
	expect_domains(_metadata, self, false);
	open_msi(_metadata, self, 1);
	irqs(_metadata, self, 1, IOVA_A, "second SMMU's domain");
	open_msi(_metadata, self, 0);
	irqs(_metadata, self, 0, IOVA_A, "first SMMU's domain");
	window_refused(_metadata, self, self->g[1].id);
	window_refused(_metadata, self, self->g[0].id);

	leave(_metadata, self, 0);
	irqs(_metadata, self, 1, IOVA_A, "second SMMU's domain, the first one gone");
	window_refused(_metadata, self, self->g[1].id);
}

TEST_HARNESS_MAIN
