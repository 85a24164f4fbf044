// SPDX-License-Identifier: GPL-2.0
/*
 * Regression tests: one per defect found in vfio-type1-rs by comparing it
 * with the C module (drivers/vfio/vfio_iommu_type1.c), each asserting what
 * the C module answers. Where the C module itself is wrong the expected
 * value is given per backend with BUG_C(c, rust) and the C bug explained.
 * Most cases that need an emulated-IOMMU device are in emulated_test.c
 * (its tests named *_regress*); those that also need a second thread are
 * here (fixture regress_emu).
 *
 * Every test checks in its teardown that nothing stays pinned or accounted
 * and that the backend module is unreferenced.
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <pthread.h>

#define NPAGE		16
#define ODD_PGSIZE	0x966d49e2a25dfa6fULL

FIXTURE(regress) {
	int container;
	int group;
	int group2;		/* a second single-device group, or -1 */
	int device;		/* a device fd of group, or -1 */
	void *bar;		/* its BAR0 mmapped, or NULL */
	size_t bar_size;
	long old_nohuge;	/* disable_hugepages to restore, -1: untouched */
	char *buf;		/* NPAGE pages, populated */
	struct leak_baseline base;
};

FIXTURE_SETUP(regress)
{
	self->container = self->group = self->group2 = self->device = -1;
	self->bar = NULL;
	self->buf = NULL;
	self->old_nohuge = -1;
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	self->buf = mmap_aligned(NPAGE * PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->buf);
	memset(self->buf, 0x3c, NPAGE * PG);
	fixture_open(_metadata, &self->container, &self->group, NULL, true, VFIO_TYPE1v2_IOMMU);
}

FIXTURE_TEARDOWN(regress)
{
	if (self->old_nohuge >= 0)
		EXPECT_EQ(0, backend_param_write("disable_hugepages", self->old_nohuge));
	if (self->bar)
		munmap(self->bar, self->bar_size);
	close_fd(&self->device);
	close_fd(&self->group2);
	close_fd(&self->group);
	close_fd(&self->container);
	if (self->buf)
		munmap(self->buf, NPAGE * PG);
	leak_check(_metadata, &self->base);
}

struct unmap_bitmap_arg {
	struct vfio_iommu_type1_dma_unmap unmap;
	struct vfio_bitmap bitmap;
};

struct dirty_get_arg {
	struct vfio_iommu_type1_dirty_bitmap hdr;
	struct vfio_iommu_type1_dirty_bitmap_get get;
};

static long unmap_get_dirty(int c, uint64_t iova, uint64_t size, uint64_t pgsize, void *data)
{
	struct unmap_bitmap_arg a = {
		.unmap = { .argsz = sizeof(a), .flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   .iova = iova, .size = size },
		.bitmap = { .pgsize = pgsize, .size = 8, .data = data },
	};

	return xioctl(c, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&a);
}

static long dirty_get(int c, uint64_t iova, uint64_t size, uint64_t pgsize, void *data)
{
	struct dirty_get_arg a = {
		.hdr = { .argsz = sizeof(a), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.get = { .iova = iova, .size = size,
			 .bitmap = { .pgsize = pgsize, .size = 8, .data = data } },
	};

	return xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&a);
}

static long dirty_op(int c, uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = sizeof(d), .flags = flag };

	return xioctl(c, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&d);
}

/*
 * A dirty bitmap request for the whole IOVA space at a bitmap pgsize of 1
 * (or any odd pgsize: __ffs() of it is 0) asks for 2^64 - 1 bits. The C
 * module's verify_bitmap_size() computes DIRTY_BITMAP_BYTES(~0ULL) =
 * ALIGN(~0ULL, 64) / 8, which wraps to 0, so an 8-byte bitmap passes that
 * check; the request is then refused with -EINVAL by vfio_dma_do_unmap()
 * (size not a multiple of the IOMMU page size) or, for GET_BITMAP, by
 * vfio_iommu_type1_dirty_pages() (pgsize not the IOMMU's smallest page).
 * vfio-type1-rs overflowed (a Rust overflow panic) computing the same
 * bitmap size. Both with and without dirty tracking on.
 */
TEST_F(regress, dirty_bitmap_size_overflow)
{
	const uint64_t pgsizes[] = { 1, ODD_PGSIZE };
	uint64_t word = 0;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, NPAGE * PG, DMA_RW));
	for (int on = 0; on < 2; on++) {
		if (on)
			ASSERT_EQ(0, dirty_op(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
		for (int i = 0; i < 2; i++) {
			EXPECT_EQ(-EINVAL, unmap_get_dirty(self->container, 0, ~0ULL, pgsizes[i],
							   &word)) TH_LOG("pgsize %#llx tracking %d",
							   (unsigned long long)pgsizes[i], on);
			EXPECT_EQ(-EINVAL, dirty_get(self->container, 0, ~0ULL, pgsizes[i], &word))
				TH_LOG("pgsize %#llx tracking %d",
				       (unsigned long long)pgsizes[i], on);
		}
	}
	/* Nothing was unmapped. */
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, self->buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, 0, NULL));
}

/*
 * The last page of the address space as vaddr: vaddr + size - 1 =
 * 2^64 - 1 does not overflow, so vfio_dma_do_map() accepts the request and
 * the pin fails: pin_user_pages_remote() finds no vma (-EFAULT), nor does
 * vaddr_get_pfns()' VM_PFNMAP fallback, and vfio_pin_map_dma() returns
 * -EFAULT. vfio-type1-rs computed the exclusive end vaddr + size, which
 * overflows, and answered -EOVERFLOW.
 */
TEST_F(regress, map_last_vaddr_page)
{
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_BASE,
				   (void *)(uintptr_t)(0 - PG), PG, DMA_RW));
	/* Nothing was left mapped. */
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, PG, 0, NULL));
}

/*
 * VFIO_DMA_UNMAP_FLAG_VADDR then a plain unmap of the same mapping: the
 * plain unmap removes a vaddr-invalid mapping (vfio_dma_do_unmap() does
 * not look at vaddr_invalid unless invalidating) and vfio_remove_dma()
 * decrements vaddr_invalid_count for it. So the container has no invalid
 * vaddr left and a group may join (vfio_iommu_type1_attach_group() refuses
 * with -EBUSY only while vaddr_invalid_count != 0). vfio-type1-rs kept
 * the count and refused every later attach with -EBUSY.
 */
TEST_F(regress, vaddr_invalid_count_after_unmap)
{
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);
	uint64_t sz = 0;

	ASSERT_NE(NULL, g2) TH_LOG("need two single-device groups");
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, NPAGE * PG, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, VFIO_DMA_UNMAP_FLAG_VADDR,
			       &sz));
	EXPECT_EQ(NPAGE * PG, sz);
	sz = 0;
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, 0, &sz));
	EXPECT_EQ(NPAGE * PG, sz);

	self->group2 = vfio_open_viable_group(g2->id);
	ASSERT_GE(self->group2, 0);
	EXPECT_EQ(0, xioctl(self->group2, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	/* And the IOVA is free again. */
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, NPAGE * PG, DMA_RW));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, 0, NULL));
}

/*
 * disable_hugepages=1 with a VM_PFNMAP range (another device's BAR): the C
 * module's vfio_pin_pages_remote() clamps npage to 1, vaddr_get_pfns()
 * returns one pfn of the PFNMAP and every page is mapped on its own; the
 * map succeeds, pins and accounts nothing, and unmaps whole. vfio-type1-rs
 * ignored the parameter for PFNMAP ranges (the whole BAR as one run); its
 * debugfs view must show one run per page.
 */
TEST_F(regress, disable_hugepages_pfnmap)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	long pins, lck;
	char view[8192], want[96];
	uint64_t sz = 0;

	self->device = xioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)g->dev[0]);
	ASSERT_GE(self->device, 0);
	ASSERT_EQ(0, xioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg));
	ASSERT_NE(0, (int)(reg.flags & VFIO_REGION_INFO_FLAG_MMAP));
	self->bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, self->device,
			 reg.offset);
	ASSERT_NE(MAP_FAILED, self->bar);
	self->bar_size = reg.size;

	self->old_nohuge = backend_param_read_bool("disable_hugepages");
	ASSERT_GE(self->old_nohuge, 0) TH_LOG("no disable_hugepages parameter");
	ASSERT_EQ(0, backend_param_write("disable_hugepages", 1));
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, 0x40000000, self->bar, self->bar_size, DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	if (!backend_is_c()) {
		ASSERT_EQ(0, read_view(view, sizeof(view)));
		snprintf(want, sizeof(want), "runs %zu largest_run_pages 1",
			 self->bar_size / PG);
		EXPECT_NE(NULL, strstr(view, want)) TH_LOG("want '%s' in:\n%s", want, view);
	}
	/* Anonymous memory next to it maps (and pins) as usual. */
	EXPECT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, NPAGE * PG, DMA_RW));
	EXPECT_EQ(pins + NPAGE, pins_outstanding());
	ASSERT_EQ(0, dma_unmap(self->container, 0x40000000, self->bar_size, 0, &sz));
	EXPECT_EQ(self->bar_size, sz);
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, 0, NULL));
	EXPECT_EQ(pins, pins_outstanding());
}


/* ---- with the test mdev: a second thread meets the backend mid-unmap ---- */

/* The test mdev's unmap gate (vfio_rs_test_mdev.c; not in fixture.h): the
 * next .dma_unmap callback waits until GATE_OPEN, so a second thread can
 * change the mappings while the backend waits with its lock dropped. */
#define TRM_OP_GATE_ARM		6
#define TRM_OP_GATE_WAIT	7	/* write(2) fails ETIMEDOUT after 10 s */
#define TRM_OP_GATE_OPEN	8

FIXTURE(regress_emu) {
	struct trm_dev mdev;
	int container;
	int group;		/* the mdev's emulated group */
	char *buf;		/* NPAGE pages */
	struct leak_baseline base;
};

FIXTURE_SETUP(regress_emu)
{
	self->container = self->group = self->mdev.fd = -1;
	self->mdev.uuid[0] = 0;
	self->buf = NULL;
	TRM_LOAD_OR_SKIP();
	backend_assert_idle(_metadata);
	ASSERT_EQ(0, trm_create(&self->mdev));
	leak_baseline_take(_metadata, &self->base);
	self->buf = mmap_aligned(NPAGE * PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->buf);
	memset(self->buf, 0x3c, NPAGE * PG);
	self->container = fixture_container(_metadata);
	self->group = vfio_open_viable_group(self->mdev.group_id);
	ASSERT_GE(self->group, 0) TH_LOG("mdev group %d", self->mdev.group_id);
	fixture_join(_metadata, self->group, self->container);
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_GE(trm_open(&self->mdev, self->group), 0);
}

FIXTURE_TEARDOWN(regress_emu)
{
	close_fd(&self->mdev.fd);
	close_fd(&self->group);
	close_fd(&self->container);
	if (self->buf)
		munmap(self->buf, NPAGE * PG);
	EXPECT_EQ(0, trm_remove(&self->mdev));
	leak_check(_metadata, &self->base);
}

/* One mdev command from any thread (trm_send's buffer is not thread-safe);
 * 0 or -errno of the write. */
static int trm_cmd_mt(struct trm_dev *d, uint32_t op)
{
	struct trm_cmd c = { .op = op };

	return pwrite(d->fd, &c, sizeof(c), d->region) == (ssize_t)sizeof(c) ? 0 : -errno;
}

struct bisect_arg {
	FIXTURE_DATA(regress_emu) *self;
	int wait, map;		/* GATE_WAIT's and MAP_DMA's results */
};

/* Waits for the unmap's .dma_unmap notice, maps [IOVA_BASE + 3 pages, +2
 * pages) across the end of the unmap's range, then lets the notice go on. */
static void *bisect_mid_unmap(void *p)
{
	struct bisect_arg *a = p;

	a->wait = trm_cmd_mt(&a->self->mdev, TRM_OP_GATE_WAIT);
	if (!a->wait)
		a->map = dma_map(a->self->container, IOVA_BASE + 3 * PG, a->self->buf, 2 * PG,
				 DMA_RW);
	trm_cmd_mt(&a->self->mdev, TRM_OP_GATE_OPEN);
	return NULL;
}

/*
 * A v2 unmap of [IOVA_BASE, +4 pages) over A (page 0) and B (page 1, the
 * device holds a pin): A is removed, then the device is told about B with
 * the container lock dropped; meanwhile another thread maps C across the
 * end of the range. vfio_dma_do_unmap() re-checks the range after the
 * notice (`again:`), finds it bisects C and jumps to unlock with ret still
 * 0 from the first pass: the ioctl succeeds and writes back unmap.size =
 * the bytes of A. vfio-type1-rs answered -EINVAL and lost A's size.
 * Deterministic: the test mdev holds the notice at a gate until C is in.
 */
TEST_F(regress_emu, unmap_recheck_fails_after_notice)
{
	struct bisect_arg a = { .self = self, .wait = -1, .map = -1 };
	struct trm_result r;
	pthread_t t;
	uint64_t sz = 4 * PG;
	long ret;

	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, self->buf, PG, DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + PG, self->buf + PG, PG, DMA_RW));
	ASSERT_EQ(0, trm_run(&self->mdev, TRM_OP_PIN, IOVA_BASE + PG, 1, TRM_PROT_READ, NULL, 0,
			     &r));
	ASSERT_EQ(1, r.ret);
	ASSERT_EQ(0, trm_cmd_mt(&self->mdev, TRM_OP_GATE_ARM));
	ASSERT_EQ(0, pthread_create(&t, NULL, bisect_mid_unmap, &a));
	ret = dma_unmap(self->container, IOVA_BASE, 4 * PG, 0, &sz);
	pthread_join(t, NULL);
	ASSERT_EQ(0, a.wait) TH_LOG("the unmap sent no .dma_unmap notice");
	ASSERT_EQ(0, a.map);

	EXPECT_EQ(0, ret) TH_LOG("%s", strerror(-ret));
	EXPECT_EQ(PG, sz);
	/* The device unpinned B, which stays mapped; A is gone, C is in. */
	ASSERT_EQ(0, trm_run(&self->mdev, TRM_OP_NOP, 0, 0, 0, NULL, 0, &r));
	EXPECT_EQ(1, r.unmap_calls);
	EXPECT_EQ(0, r.pinned);
	EXPECT_EQ(0LL, dma_unmap_bytes(self->container, IOVA_BASE, PG, 0));
	EXPECT_EQ((long long)PG, dma_unmap_bytes(self->container, IOVA_BASE + PG, PG, 0));
	EXPECT_EQ((long long)(2 * PG),
		  dma_unmap_bytes(self->container, IOVA_BASE + 3 * PG, 2 * PG, 0));
}

TEST_HARNESS_MAIN
