// SPDX-License-Identifier: GPL-2.0
/*
 * The type1 backend's emulated-IOMMU ("mdev") interface, driven from user
 * space through the test mdev driver selftests/mdev/vfio_rs_test_mdev.ko:
 * attaching a VFIO_EMULATED_IOMMU group, vfio_pin_pages / vfio_unpin_pages /
 * vfio_dma_rw on behalf of the device, and the .dma_unmap notification a
 * device gets when user space unmaps a range it has pinned pages in. Every
 * result and errno is the one the C module (vfio_iommu_type1.c) gives.
 *
 * The fixture loads the driver if needed (modprobe mdev, then insmod of
 * test-mdev/vfio_rs_test_mdev.ko, see trm_load()), creates one mdev,
 * opens a container and the mdev's group; the teardown removes the mdev
 * and checks that nothing stays pinned or accounted and that the backend
 * module is unreferenced. Run in the VM:
 *
 *   scripts/build-test-mdev x86_64
 *   scripts/vm run --arch x86_64 --backend c --copy out/x86_64/test-mdev \
 *       -- ./selftests/emulated_test
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <stddef.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <linux/capability.h>

#define NPAGE_MAP 16		/* pages per test mapping */

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

FIXTURE(emu) {
	struct trm_dev mdev;	/* the mdev: uuid, group id, device fd, region */
	int container;
	int group;		/* the mdev's emulated group */
	int edu_group;		/* mixed tests: a vfio-pci group, or -1 */
	struct leak_baseline base;
	void *buf;
	size_t buf_len;
};

FIXTURE_SETUP(emu)
{
	self->container = self->group = self->edu_group = self->mdev.fd = -1;
	self->mdev.uuid[0] = 0;
	self->buf = NULL;
	TRM_LOAD_OR_SKIP();
	backend_assert_idle(_metadata);
	ASSERT_EQ(0, trm_create(&self->mdev));

	leak_baseline_take(_metadata, &self->base);
	self->container = fixture_container(_metadata);
	self->group = vfio_open_viable_group(self->mdev.group_id);
	ASSERT_GE(self->group, 0) TH_LOG("mdev group %d", self->mdev.group_id);
	fixture_join(_metadata, self->group, self->container);
}

FIXTURE_TEARDOWN(emu)
{
	close_fd(&self->mdev.fd);
	close_fd(&self->edu_group);
	close_fd(&self->group);
	close_fd(&self->container);
	if (self->buf)
		munmap(self->buf, self->buf_len);
	EXPECT_EQ(0, trm_remove(&self->mdev));
	leak_check(_metadata, &self->base);
}

/* Adds a single-device vfio-pci group to the container (mixed tests). */
static void add_edu_group(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self)
{
	self->edu_group = fixture_group(_metadata, 0, NULL);
	fixture_join(_metadata, self->edu_group, self->container);
}

/* Opens the mdev (the container's IOMMU already set) and finds its
 * command region. */
static void open_dev(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self)
{
	int fd = trm_open(&self->mdev, self->group);

	ASSERT_GE(fd, 0) TH_LOG("mdev %s: %s", self->mdev.uuid, strerror(-fd));
}

/* SET_IOMMU, then opens the mdev (which registers it with the backend for
 * .dma_unmap) and checks its one region. */
static void set_iommu_open_dev(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
			       unsigned long type)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 0 };

	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, type));
	open_dev(_metadata, self);
	ASSERT_EQ(0, xioctl(self->mdev.fd, VFIO_DEVICE_GET_INFO, (unsigned long)&info));
	ASSERT_EQ(1U, info.num_regions);
	ASSERT_EQ(0, xioctl(self->mdev.fd, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg));
	ASSERT_GE(reg.size, sizeof(struct trm_cmd) + TRM_DATA_MAX);
}

/* Runs one driver command; returns the vfio call's result (r->ret). */
static long emu_run(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
		    uint32_t op, uint64_t iova, int32_t npage, uint32_t prot,
		    const void *data, uint32_t len, struct trm_result *r)
{
	static struct trm_result scratch;
	int err;

	if (!r)
		r = &scratch;
	err = trm_run(&self->mdev, op, iova, npage, prot, data, len, r);
	ASSERT_EQ(0, err) TH_LOG("op %u: %s", op, strerror(-err));
	return r->ret;
}

static long pin(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
		uint64_t iova, int npage, uint32_t prot, struct trm_result *r)
{
	return emu_run(_metadata, self, TRM_OP_PIN, iova, npage, prot, NULL, 0, r);
}

static long unpin(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
		  uint64_t iova, int npage)
{
	return emu_run(_metadata, self, TRM_OP_UNPIN, iova, npage, 0, NULL, 0, NULL);
}

static long dma_write(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
		      uint64_t iova, const void *data, uint32_t len)
{
	return emu_run(_metadata, self, TRM_OP_DMA_WRITE, iova, 0, 0, data, len, NULL);
}

static long dma_read(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
		     uint64_t iova, uint32_t len, struct trm_result *r)
{
	return emu_run(_metadata, self, TRM_OP_DMA_READ, iova, 0, 0, NULL, len, r);
}

/* The device's counters (.dma_unmap calls etc.). */
static struct trm_result *counters(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self)
{
	static struct trm_result r;

	emu_run(_metadata, self, TRM_OP_NOP, 0, 0, 0, NULL, 0, &r);
	return &r;
}

/* npage pages of anonymous memory, byte i of page p = p * 16 + i % 251. */
static uint8_t *test_buf(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
			 int npage, int prot)
{
	size_t len = (size_t)npage * page_size();
	uint8_t *p = mmap_aligned(len, page_size(), PROT_READ | PROT_WRITE);

	ASSERT_NE(NULL, p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i / page_size()) * 16 + i % 251);
	if (prot != (PROT_READ | PROT_WRITE))
		ASSERT_EQ(0, mprotect(p, len, prot));
	self->buf = p;
	self->buf_len = len;
	return p;
}

/* A page-aligned address with no accessible memory behind it (a PROT_NONE
 * page, so that nothing else gets mapped there; freed at exit). */
static void *noaccess_page(struct __test_metadata *_metadata)
{
	void *p = mmap(NULL, page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, p);
	return p;
}

static uint64_t map_size(void)
{
	return (uint64_t)NPAGE_MAP * page_size();
}

/* After an unmap: the device got exactly one .dma_unmap notice, for the
 * mapping of map_size() bytes at iova, and dropped unpinned pins in it;
 * FOLL_PIN pins and VmLck are back to pins and lck. Returns the counters. */
static struct trm_result *expect_one_unmap_notice(struct __test_metadata *_metadata,
						  FIXTURE_DATA(emu) *self, uint64_t iova,
						  long unpinned, long pins, long lck)
{
	struct trm_result *c = counters(_metadata, self);

	EXPECT_EQ(1, c->unmap_calls);
	EXPECT_EQ(iova, c->last_unmap_iova);
	EXPECT_EQ(map_size(), c->last_unmap_len);
	EXPECT_EQ(unpinned, c->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	return c;
}

/*
 * 1. A container with only the emulated group: TYPE1v2 works; no IOMMU
 * domain means no aperture (no IOVA_RANGE capability, any iova is valid),
 * the smallest page size is PAGE_SIZE, VFIO_UPDATE_VADDR is withdrawn, and
 * MAP_DMA neither pins nor accounts anything (vfio_dma_do_map only records
 * the range when domain_list is empty).
 */
TEST_F(emu, emulated_only_container)
{
	char info[4096];
	struct vfio_iommu_type1_info *ti = (void *)info;
	struct vfio_iommu_type1_info_cap_migration *mig;
	long pins, lck, avail;
	uint64_t sz;
	uint8_t *buf;

	ASSERT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	/* No domain: "all domains enforce coherency" is vacuously true. */
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));

	ASSERT_EQ(0, iommu_get_info(self->container, info, sizeof(info)));
	EXPECT_EQ((uint32_t)(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS), ti->flags);
	EXPECT_EQ((uint64_t)~(page_size() - 1), ti->iova_pgsizes);
	EXPECT_EQ(NULL, iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));
	mig = (void *)iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	ASSERT_NE(NULL, mig);
	EXPECT_EQ((uint64_t)page_size(), mig->pgsize_bitmap);
	avail = iommu_dma_avail(self->container);
	EXPECT_EQ(backend_param_read("dma_entry_limit"), avail);

	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(avail - 1, iommu_dma_avail(self->container));
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	/* Without an aperture even the x86 MSI window is a valid iova. */
	EXPECT_EQ(0, dma_map(self->container, 0xfee00000ULL, buf, page_size(), DMA_RW));
	/* Nothing is touched at map time: an unpopulated vaddr maps too. */
	EXPECT_EQ(0, dma_map(self->container, 1ULL << 40, noaccess_page(_metadata), page_size(),
			     DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());

	sz = 0;
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, &sz));
	EXPECT_EQ(map_size(), sz);
	/* Nothing was pinned: the device was not notified. */
	EXPECT_EQ(0, counters(_metadata, self)->unmap_calls);
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ((uint64_t)(2 * page_size()), sz);
	EXPECT_EQ(avail, iommu_dma_avail(self->container));
}

/*
 * 2. PIN through the device: each newly pinned page takes one FOLL_PIN
 * reference and, with no IOMMU domain in the container (do_accounting),
 * one page of locked_vm; the pages are the process's. A second PIN of the
 * same pages only takes another vfio_pfn reference. UNPIN gives them back.
 */
TEST_F(emu, pin_unpin)
{
	long pins, lck, ps = page_size();
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	pins = pins_outstanding();
	lck = vmlck_kb();

	memcpy(buf + 2 * ps, "emulated-iommu pin test", 24);
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 2 * ps, 4, TRM_PROT_READ | TRM_PROT_WRITE,
			 &r));
	EXPECT_EQ(4, r.pinned);
	EXPECT_EQ(0, memcmp(r.data, buf + 2 * ps, TRM_PEEK_BYTES));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());

	/* Same pages again (read-only prot is a subset of the mapping's):
	 * references only, no new pin or accounting. Overlapping by one more
	 * page pins that one. */
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 2 * ps, 4, TRM_PROT_READ, &r));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	ASSERT_EQ(2, pin(_metadata, self, IOVA_BASE + 5 * ps, 2, TRM_PROT_READ, &r));
	EXPECT_EQ(pins + 5, pins_outstanding());
	EXPECT_EQ(lck + 5 * ps / 1024, vmlck_kb());

	/* Drop one reference of each: pages 2..6 still held by the others. */
	ASSERT_EQ(4, unpin(_metadata, self, IOVA_BASE + 2 * ps, 4));
	EXPECT_EQ(pins + 5, pins_outstanding());
	ASSERT_EQ(2, unpin(_metadata, self, IOVA_BASE + 5 * ps, 2));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	ASSERT_EQ(4, unpin(_metadata, self, IOVA_BASE + 2 * ps, 4));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(0, counters(_metadata, self)->pinned);

	/* Nothing pinned any more: unmap does not notify. */
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(0, counters(_metadata, self)->unmap_calls);
}

/*
 * 3. vfio_dma_rw copies through the mapping's user address (no pinning):
 * writes show up in the process's memory, reads return it, a transfer may
 * span adjacent mappings; an unmapped iova is -EINVAL (after the part
 * before it was copied), a write to a read-only mapping or any access to a
 * write-only one -EPERM, an unpopulatable vaddr -EFAULT.
 */
TEST_F(emu, dma_rw)
{
	long pins, lck, ps = page_size();
	/* One driver command moves at most TRM_DATA_MAX (8 KiB) bytes: the
	 * transfers below are a page and two pages at 4 KiB, and half of
	 * that limit and the limit where a page is larger. */
	long xfer = ps < TRM_DATA_MAX / 2 ? ps : TRM_DATA_MAX / 2;
	uint64_t end = IOVA_BASE + map_size();
	static uint8_t pat[TRM_DATA_MAX];
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, 2 * NPAGE_MAP, PROT_READ | PROT_WRITE);
	/* Two adjacent mappings of the two halves of buf. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, end, buf + map_size(), map_size(), DMA_RW));
	pins = pins_outstanding();
	lck = vmlck_kb();
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 3);

	/* Round trip inside one mapping, at an unaligned offset. */
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + ps + 100, pat, 3000));
	EXPECT_EQ(0, memcmp(buf + ps + 100, pat, 3000));
	ASSERT_EQ(0, dma_read(_metadata, self, IOVA_BASE + ps + 100, 3000, &r));
	EXPECT_EQ(0, memcmp(r.data, pat, 3000));
	/* The process writes, the device reads. */
	memset(buf + 5 * ps, 0x5a, xfer);
	ASSERT_EQ(0, dma_read(_metadata, self, IOVA_BASE + 5 * ps, xfer, &r));
	for (long i = 0; i < xfer; i++)
		ASSERT_EQ(0x5a, r.data[i]);
	/* Across the boundary of the two mappings (two chunks). */
	ASSERT_EQ(0, dma_write(_metadata, self, end - xfer, pat, 2 * xfer));
	EXPECT_EQ(0, memcmp(buf + map_size() - xfer, pat, 2 * xfer));
	ASSERT_EQ(0, dma_read(_metadata, self, end - 10, 20, &r));
	EXPECT_EQ(0, memcmp(r.data, pat + xfer - 10, 20));
	/* dma_rw never pins. */
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());

	/* Unmapped iova. */
	EXPECT_EQ(-EINVAL, dma_read(_metadata, self, 0x1000, 16, &r));
	EXPECT_EQ(-EINVAL, dma_write(_metadata, self, end + map_size(), pat, 16));
	/* Running off the end: the first chunk is copied, then -EINVAL. */
	memset(buf + 2 * map_size() - 8, 0, 8);
	EXPECT_EQ(-EINVAL, dma_write(_metadata, self, end + map_size() - 8, pat, 16));
	EXPECT_EQ(0, memcmp(buf + 2 * map_size() - 8, pat, 8));

	/* Unmapping with nothing pinned does not notify. */
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, 2 * map_size(), 0, NULL));
	EXPECT_EQ(0, counters(_metadata, self)->unmap_calls);
	EXPECT_EQ(-EINVAL, dma_read(_metadata, self, IOVA_BASE, 16, &r));

	/* Read-only and write-only mappings. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, ps, VFIO_DMA_MAP_FLAG_READ));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + ps, buf + ps, ps,
			     VFIO_DMA_MAP_FLAG_WRITE));
	EXPECT_EQ(0, dma_read(_metadata, self, IOVA_BASE, 16, &r));
	EXPECT_EQ(0, memcmp(r.data, buf, 16));
	EXPECT_EQ(-EPERM, dma_write(_metadata, self, IOVA_BASE, pat, 16));
	EXPECT_EQ(-EPERM, dma_read(_metadata, self, IOVA_BASE + ps, 16, &r));
	EXPECT_EQ(-EPERM, dma_write(_metadata, self, IOVA_BASE + ps, pat, 16));
	/* A vaddr with nothing behind it: copy_{to,from}_user fails. */
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + 2 * ps, noaccess_page(_metadata), ps,
			     DMA_RW));
	EXPECT_EQ(-EFAULT, dma_read(_metadata, self, IOVA_BASE + 2 * ps, 16, &r));
	EXPECT_EQ(-EFAULT, dma_write(_metadata, self, IOVA_BASE + 2 * ps, pat, 16));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
}

/*
 * 4. Unmapping a range with pages pinned through the device calls its
 * .dma_unmap once per such vfio_dma, with that mapping's iova and size (not
 * the request's); the device unpins, the unmap completes and reports the
 * size, and pins and locked_vm are back. Mappings without pins in the same
 * request are removed without a callback.
 */
TEST_F(emu, unmap_notifies)
{
	long pins, lck, ps = page_size();
	struct trm_result *c;
	uint64_t sz = 0;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, 2 * NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + map_size(), buf + map_size(),
			     map_size(), DMA_RW));
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 3 * ps, 4, TRM_PROT_WRITE, NULL));
	/* A second reference on one page: the device must drop both. */
	ASSERT_EQ(1, pin(_metadata, self, IOVA_BASE + 3 * ps, 1, TRM_PROT_READ, NULL));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());

	/* v2: a request bisecting the pinned mapping fails before any
	 * notification (and, failing, does not write the struct back). */
	EXPECT_EQ(-EINVAL, dma_unmap(self->container, IOVA_BASE, ps, 0, &sz));
	EXPECT_EQ((uint64_t)ps, sz);
	EXPECT_EQ(0, counters(_metadata, self)->unmap_calls);

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, 2 * map_size(), 0, &sz));
	EXPECT_EQ(2 * map_size(), sz);
	c = expect_one_unmap_notice(_metadata, self, IOVA_BASE, 5, pins, lck);
	EXPECT_EQ(0, c->pinned);

	/* The pinned mapping is the second one now; UNMAP_ALL notifies too. */
	ASSERT_EQ(0, emu_run(_metadata, self, TRM_OP_RESET_COUNTERS, 0, 0, 0, NULL, 0, NULL));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + map_size(), buf + map_size(),
			     map_size(), DMA_RW));
	ASSERT_EQ(2, pin(_metadata, self, IOVA_BASE + map_size() + ps, 2, TRM_PROT_READ, NULL));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(2 * map_size(), sz);
	expect_one_unmap_notice(_metadata, self, IOVA_BASE + map_size(), 2, pins, lck);
}

/*
 * 5. Rejected pins and unmaps: unmapped iova -EINVAL (also when only a
 * later page is unmapped: the earlier ones are unwound), a prot the mapping
 * lacks -EPERM, unpopulatable memory -EFAULT (unwound), npage 0 -EINVAL and
 * more than VFIO_PIN_PAGES_MAX_ENTRIES -E2BIG (vfio core); VADDR
 * invalidation with an emulated group -EBUSY.
 */
TEST_F(emu, errors)
{
	long pins, lck, ps = page_size();
	uint64_t sz = 1;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + 2 * map_size(), buf, ps,
			     VFIO_DMA_MAP_FLAG_READ));
	pins = pins_outstanding();
	lck = vmlck_kb();

	EXPECT_EQ(-EINVAL, pin(_metadata, self, IOVA_BASE - ps, 1, TRM_PROT_READ, NULL));
	EXPECT_EQ(-EINVAL, pin(_metadata, self, IOVA_BASE + map_size() - 2 * ps, 3,
			       TRM_PROT_READ, NULL));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(-EPERM, pin(_metadata, self, IOVA_BASE + 2 * map_size(), 1,
			      TRM_PROT_WRITE, NULL));
	EXPECT_EQ(-EPERM, pin(_metadata, self, IOVA_BASE + 2 * map_size(), 1,
			      TRM_PROT_READ | TRM_PROT_WRITE, NULL));
	EXPECT_EQ(0, pins_outstanding() - pins);
	EXPECT_EQ(-EINVAL, pin(_metadata, self, IOVA_BASE, 0, TRM_PROT_READ, NULL));
	EXPECT_EQ(-E2BIG, pin(_metadata, self, IOVA_BASE,
			      (int)(page_size() / sizeof(long)) + 1, TRM_PROT_READ, NULL));

	/* Pages 2..3 of the mapping lose their memory: pinning 0..3 pins 0
	 * and 1, fails on 2 with -EFAULT and unpins 0 and 1 again. */
	ASSERT_EQ(0, munmap(buf + 2 * ps, 2 * ps));
	EXPECT_EQ(-EFAULT, pin(_metadata, self, IOVA_BASE, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());

	EXPECT_EQ(-EBUSY, dma_unmap(self->container, IOVA_BASE, map_size(),
				    VFIO_DMA_UNMAP_FLAG_VADDR, &sz));
	EXPECT_EQ(map_size(), sz);	/* not written back on failure */
	EXPECT_EQ(-EBUSY, dma_unmap(self->container, 0, 0,
				    VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &sz));
	EXPECT_EQ(map_size() + ps, sz);
	EXPECT_EQ(0, counters(_metadata, self)->unmap_calls);
}

/* 5b. The external pin interface is TYPE1v2-only: -EACCES in a v1 container
 * (checked before anything else, so even for an unmapped iova). */
TEST_F(emu, pin_type1_v1)
{
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1_IOMMU);
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	EXPECT_EQ(-EACCES, pin(_metadata, self, IOVA_BASE, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(-EACCES, pin(_metadata, self, 0, 1, TRM_PROT_READ, NULL));
	/* dma_rw has no such restriction. */
	EXPECT_EQ(0, dma_read(_metadata, self, IOVA_BASE, 16, &r));
	EXPECT_EQ(0, memcmp(r.data, buf, 16));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
}

/*
 * 6. The mdev group next to a vfio-pci group in one TYPE1v2 container: the
 * IOMMU domain pins and accounts at MAP_DMA; a device PIN takes its own
 * FOLL_PIN references but accounts nothing more (do_accounting is false
 * when domain_list is non-empty); unmap notifies, and everything is back.
 */
TEST_F(emu, mixed_container)
{
	long pins, lck, ps = page_size();
	char info[4096];
	struct trm_result r;
	uint64_t sz = 0;
	uint8_t *buf;

	add_edu_group(_metadata, self);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, iommu_get_info(self->container, info, sizeof(info)));
	EXPECT_NE(NULL, iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));

	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	EXPECT_EQ(pins + NPAGE_MAP, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());

	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 4 * ps, 4, TRM_PROT_READ | TRM_PROT_WRITE,
			 &r));
	EXPECT_EQ(0, memcmp(r.data, buf + 4 * ps, TRM_PEEK_BYTES));
	EXPECT_EQ(pins + NPAGE_MAP + 4, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 4 * ps, "mixed", 6));
	EXPECT_EQ(0, memcmp(buf + 4 * ps, "mixed", 6));
	/* Unpin without accounting either. */
	ASSERT_EQ(2, unpin(_metadata, self, IOVA_BASE + 6 * ps, 2));
	EXPECT_EQ(pins + NPAGE_MAP + 2, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, &sz));
	EXPECT_EQ(map_size(), sz);
	expect_one_unmap_notice(_metadata, self, IOVA_BASE, 2, pins, lck);
}

/*
 * 6b. Detaching the last IOMMU-backed group while the emulated group stays:
 * the domain's pins go and locked_vm is re-accounted to just the externally
 * pinned pages (vfio_iommu_unmap_unpin_reaccount); from then on pins are
 * accounted again (do_accounting), and the unmap notification still cleans
 * up.
 */
TEST_F(emu, mixed_detach_reaccounts)
{
	long pins, lck, ps = page_size();
	uint8_t *buf;

	add_edu_group(_metadata, self);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(pins + NPAGE_MAP + 4, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());

	close(self->edu_group);
	self->edu_group = -1;
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));

	ASSERT_EQ(2, pin(_metadata, self, IOVA_BASE + 8 * ps, 2, TRM_PROT_READ, NULL));
	EXPECT_EQ(pins + 6, pins_outstanding());
	EXPECT_EQ(lck + 6 * ps / 1024, vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(1, counters(_metadata, self)->unmap_calls);
	EXPECT_EQ(6, counters(_metadata, self)->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
}

/* VFIO_IOMMU_DIRTY_PAGES GET_BITMAP of [iova, iova + size) into one u64. */
static long get_dirty_word(int c, uint64_t iova, uint64_t size, uint64_t *word)
{
	*word = 0;
	return dirty_get_bitmap(c, iova, size, page_size(), 8, word);
}

/*
 * 6e. Dirty tracking with only emulated devices: type1 knows exactly what
 * they touched. A report holds the pages dma_rw wrote since the last one,
 * and every page a device keeps pinned.
 */
TEST_F(emu, dirty_exactly_what_devices_touched)
{
	long ps = page_size();
	uint64_t w;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(0ULL, w);

	/* page 3; pages 5 and 6 (a write across the boundary); a pin of 9 */
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 3 * ps + 100, "x", 1));
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 6 * ps - 2, "abcd", 4));
	ASSERT_EQ(1, pin(_metadata, self, IOVA_BASE + 9 * ps, 1, TRM_PROT_READ, NULL));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ((1ULL << 3) | (1ULL << 5) | (1ULL << 6) | (1ULL << 9), w);
	/* Reported writes are forgotten; the pinned page stays dirty. */
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(1ULL << 9, w);
	/* Reads do not dirty. */
	ASSERT_EQ(0, dma_read(_metadata, self, IOVA_BASE + 12 * ps, 8, NULL));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(1ULL << 9, w);
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(-EINVAL, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
}

/*
 * 6d. An IOMMU-backed group joins a container that had only the mdev: its
 * mappings get pinned and mapped then (replay), and the pages the device
 * had pinned stop being charged on their own (each page counted once).
 */
TEST_F(emu, iommu_group_joins_later)
{
	long pins, lck, ps = page_size();
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());

	add_edu_group(_metadata, self);
	EXPECT_EQ(pins + NPAGE_MAP + 4, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(1, counters(_metadata, self)->unmap_calls);
	EXPECT_EQ(4, counters(_metadata, self)->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
}

/* The interrupt window of the edu groups' IOMMU: VT-d's hardware MSI
 * region, SMMUv3's software MSI window (MSI_IOVA_BASE). */
#if defined(__x86_64__)
#define MSI_WINDOW 0xfee00000ULL
#else
#define MSI_WINDOW 0x08000000ULL
#endif

/* Without an IOMMU domain there is no aperture and no reserved region, so
 * a mapping may cover the interrupt window; an IOMMU-backed group whose
 * reserved regions it overlaps then cannot join (C: EINVAL from
 * vfio_iommu_resv_conflict), and the mapping stays as it was. */
TEST_F(emu, iommu_group_refused_over_mapped_msi_window)
{
	uint8_t *buf;
	int g;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, MSI_WINDOW, buf, map_size(), DMA_RW));
	g = fixture_group(_metadata, 0, NULL);
	EXPECT_EQ(-EINVAL, xioctl(g, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	close(g);
	/* Still mapped, still emulated only: the pin works. */
	EXPECT_EQ(1, pin(_metadata, self, MSI_WINDOW, 1, TRM_PROT_READ, NULL));
	ASSERT_EQ(0, dma_unmap(self->container, MSI_WINDOW, map_size(), 0, NULL));
}

/* The mdev group's fd closed (out of the container), the first edu group
 * in it instead, TYPE1v2. */
static void edu_group_instead(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);

	ASSERT_NE(NULL, g);
	close_fd(&self->group);
	self->edu_group = vfio_open_viable_group(g->id);
	ASSERT_GE(self->edu_group, 0);
	ASSERT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
}

/*
 * 6c. An emulated group cannot join a container while a vaddr is
 * invalidated (attach returns -EBUSY), and can once it is restored.
 */
TEST_F(emu, attach_with_invalid_vaddr)
{
	uint8_t *buf;

	/* The mdev group goes into a second container; the edu group and the
	 * update-vaddr dance happen in the fixture's. */
	edu_group_instead(_metadata, self);
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(),
			       VFIO_DMA_UNMAP_FLAG_VADDR, NULL));

	self->group = vfio_open_viable_group(self->mdev.group_id);
	ASSERT_GE(self->group, 0);
	EXPECT_EQ(-EBUSY, xioctl(self->group, VFIO_GROUP_SET_CONTAINER,
				 (unsigned long)&self->container));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(),
			     VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
}

/* --- regression tests (see also regress_test.c) ------------------------ */

/*
 * R3. A vaddr-invalid mapping removed by a plain unmap no longer counts as
 * invalid: vfio_remove_dma() decrements vaddr_invalid_count. So an
 * emulated group may join afterwards (vfio_iommu_type1_attach_group()
 * only refuses while the count is non-zero) and pin_pages / dma_rw, which
 * answer -EBUSY while it is, work. vfio-type1-rs leaked the count.
 */
TEST_F(emu, vaddr_invalid_unmapped_then_pin_regress)
{
	long ps = page_size();
	struct trm_result r;
	uint8_t *buf;

	/* VADDR invalidation is refused with an emulated group attached:
	 * the mdev group joins only after the dance. */
	edu_group_instead(_metadata, self);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(),
			       VFIO_DMA_UNMAP_FLAG_VADDR, NULL));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));

	self->group = vfio_open_viable_group(self->mdev.group_id);
	ASSERT_GE(self->group, 0);
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	open_dev(_metadata, self);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	EXPECT_EQ(2, pin(_metadata, self, IOVA_BASE + ps, 2, TRM_PROT_READ, &r));
	EXPECT_EQ(0, memcmp(r.data, buf + ps, TRM_PEEK_BYTES));
	EXPECT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 3 * ps, "rw", 3));
	EXPECT_EQ(0, memcmp(buf + 3 * ps, "rw", 3));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(0, counters(_metadata, self)->pinned);
}

/*
 * R4. Dirty scope when the IOMMU-backed group leaves a mixed container:
 * while it is there every page is dirty (update_user_bitmap(), a non
 * pinned-scope group); when it leaves, vfio_iommu_type1_detach_group()
 * promotes the scope and, tracking being on, marks every page of every
 * mapping dirty (vfio_iommu_populate_bitmap_full()): what the device wrote
 * since the last report is unknown. The report after that holds only what
 * the emulated device pinned or wrote.
 */
TEST_F(emu, dirty_full_when_iommu_group_leaves_regress)
{
	uint64_t all = (1ULL << NPAGE_MAP) - 1, w;
	long ps = page_size();
	uint8_t *buf;

	add_edu_group(_metadata, self);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(all, w);
	ASSERT_EQ(1, pin(_metadata, self, IOVA_BASE + 9 * ps, 1, TRM_PROT_READ, NULL));
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 3 * ps, "x", 1));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(all, w);

	ASSERT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(all, w);
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ(1ULL << 9, w);
	ASSERT_EQ(0, dma_write(_metadata, self, IOVA_BASE + 5 * ps, "y", 1));
	ASSERT_EQ(0, get_dirty_word(self->container, IOVA_BASE, map_size(), &w));
	EXPECT_EQ((1ULL << 5) | (1ULL << 9), w);
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
}

/*
 * R5a. The top of the IOVA space, reachable only in an emulated-only
 * container (no aperture). A mapping may end at 2^64 - 1
 * (vfio_dma_do_map() checks iova + size - 1); a dma_rw ending exactly at
 * 2^64 - 1 copies and succeeds (vfio_iommu_type1_dma_rw() advances
 * user_iova to 0 with nothing left to copy); one running past it copies
 * up to the top, then finds no mapping at iova 0: -EINVAL. A pin of the
 * last page works; two pages from there overflow: -EOVERFLOW
 * (vfio_iommu_type1_pin_pages()' check_add_overflow; -EINVAL on 6.12).
 * Linux 6.12's C module finds no mapping that ends at 2^64 (BUG_C_OLD):
 * every copy and pin there fails (-EINVAL) and UNMAP_DMA unmaps nothing.
 */
TEST_F(emu, top_of_iova_space_regress)
{
	long ps = page_size();
	uint64_t top = 0 - 2 * (uint64_t)ps, sz = 0;
	/* A read of the mapping's last bytes up to 2^64 - 1: both pages, as
	 * far as one driver command holds (all of them at 4 KiB). */
	uint64_t tail = 2 * ps < TRM_DATA_MAX ? 2 * ps : TRM_DATA_MAX;
	static const uint8_t pat[16] = "0123456789abcdef";
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, 2, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, top, buf, 2 * ps, DMA_RW));
	if (BUG_C_OLD(true, false)) {
		EXPECT_EQ(-EINVAL, dma_write(_metadata, self, -16ULL, pat, 16));
		EXPECT_EQ(-EINVAL, dma_read(_metadata, self, 0 - tail, tail, &r));
		EXPECT_EQ(-EINVAL, pin(_metadata, self, -(uint64_t)ps, 1, TRM_PROT_READ, &r));
		EXPECT_EQ(-E_WRAP, pin(_metadata, self, -(uint64_t)ps, 2, TRM_PROT_READ, NULL));
		ASSERT_EQ(0, dma_unmap(self->container, top, 2 * ps, 0, &sz));
		EXPECT_EQ(0ULL, sz);	/* still mapped: freed with the container */
		return;
	}

	EXPECT_EQ(0, dma_write(_metadata, self, -16ULL, pat, 16));
	EXPECT_EQ(0, memcmp(buf + 2 * ps - 16, pat, 16));
	EXPECT_EQ(0, dma_read(_metadata, self, -16ULL, 16, &r));
	EXPECT_EQ(0, memcmp(r.data, pat, 16));
	EXPECT_EQ(0, dma_read(_metadata, self, 0 - tail, tail, &r));
	EXPECT_EQ(0, memcmp(r.data, buf + 2 * ps - tail, tail));

	memset(buf + 2 * ps - 8, 0, 8);
	EXPECT_EQ(-EINVAL, dma_write(_metadata, self, -8ULL, pat, 16));
	EXPECT_EQ(0, memcmp(buf + 2 * ps - 8, pat, 8));

	EXPECT_EQ(1, pin(_metadata, self, -(uint64_t)ps, 1, TRM_PROT_READ, &r));
	EXPECT_EQ(0, memcmp(r.data, buf + ps, TRM_PEEK_BYTES));
	EXPECT_EQ(-E_WRAP, pin(_metadata, self, -(uint64_t)ps, 2, TRM_PROT_READ, NULL));
	EXPECT_EQ(1, unpin(_metadata, self, -(uint64_t)ps, 1));
	ASSERT_EQ(0, dma_unmap(self->container, top, 2 * ps, 0, &sz));
	EXPECT_EQ(2 * (uint64_t)ps, sz);
}

/*
 * R5b. A dma_rw running past 2^64 - 1 with a mapping at iova 0: the C
 * module's vfio_iommu_type1_dma_rw() advances user_iova by each chunk, so
 * it wraps to 0 and the copy goes on into the mapping there: the transfer
 * succeeds, its tail written at iova 0. A quirk rather than a hole (both
 * mappings are the caller's), kept for an identical ABI. Linux 6.12's C
 * module finds no mapping at the top at all (BUG_C_OLD): -EINVAL.
 */
TEST_F(emu, dma_rw_wraps_past_top_regress)
{
	long ps = page_size();
	static const uint8_t pat[16] = "0123456789abcdef";
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, 2, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, -(uint64_t)ps, buf + ps, ps, DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, 0, buf, ps, DMA_RW));
	if (BUG_C_OLD(true, false)) {
		EXPECT_EQ(-EINVAL, dma_write(_metadata, self, -8ULL, pat, 16));
		EXPECT_EQ(-EINVAL, dma_read(_metadata, self, -8ULL, 16, &r));
		return;
	}
	memset(buf, 0, 8);
	memset(buf + 2 * ps - 8, 0, 8);
	EXPECT_EQ(0, dma_write(_metadata, self, -8ULL, pat, 16));
	EXPECT_EQ(0, memcmp(buf + 2 * ps - 8, pat, 8));
	EXPECT_EQ(0, memcmp(buf, pat + 8, 8));
	EXPECT_EQ(0, dma_read(_metadata, self, -8ULL, 16, &r));
	EXPECT_EQ(0, memcmp(r.data, pat, 16));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
}

/*
 * R5c. A driver-supplied IOVA need not be page aligned. The C module's
 * vfio_iommu_type1_pin_pages() looks the page up with
 * vfio_find_dma(iova, PAGE_SIZE), which matches a mapping starting inside
 * [iova, iova + PAGE_SIZE): for iova = X - PAGE_SIZE/2 below a mapping at
 * X it pins dma->vaddr - PAGE_SIZE/2, i.e. the user page before the
 * mapping's memory (a C bug: memory never mapped for DMA). vfio-type1-rs
 * refuses: no mapping holds iova, -EINVAL.
 */
TEST_F(emu, pin_unaligned_below_mapping_regress)
{
	long pins, lck, ps = page_size();
	struct trm_result r;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	/* Page 0 of buf is not mapped for DMA; pages 1.. are, at IOVA_BASE. */
	buf = test_buf(_metadata, self, NPAGE_MAP + 1, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf + ps, map_size(), DMA_RW));
	pins = pins_outstanding();
	lck = vmlck_kb();
	EXPECT_EQ(BUG_C(1, -EINVAL), pin(_metadata, self, IOVA_BASE - ps / 2, 1,
					   TRM_PROT_READ, &r));
	if (backend_is_c()) {
		/* The page before the mapping, pinned and accounted. */
		EXPECT_EQ(0, memcmp(r.data, buf, TRM_PEEK_BYTES));
		EXPECT_EQ(pins + 1, pins_outstanding());
		EXPECT_EQ(lck + ps / 1024, vmlck_kb());
		/* The unmap notice only covers the mapping: the device must
		 * unpin it itself (type1 BUG()s after ten notices otherwise). */
		ASSERT_EQ(1, unpin(_metadata, self, IOVA_BASE - ps / 2, 1));
	}
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	ASSERT_EQ(0, counters(_metadata, self)->pinned);
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
}

/*
 * R2b. The last page of the address space as vaddr, in an emulated-only
 * container: vaddr + size - 1 does not overflow and nothing is pinned at
 * map time (vfio_dma_do_map() only records the range), so MAP_DMA
 * succeeds; pinning it fails in vaddr_get_pfns() (-EFAULT), dma_rw in
 * copy_from_user() (-EFAULT). vfio-type1-rs answered -EOVERFLOW.
 */
TEST_F(emu, map_last_vaddr_page_regress)
{
	long ps = page_size();
	void *last = (void *)(uintptr_t)-(uint64_t)ps;
	struct trm_result r;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, last, ps, DMA_RW));
	EXPECT_EQ(-EFAULT, pin(_metadata, self, IOVA_BASE, 1, TRM_PROT_READ, NULL));
	EXPECT_EQ(-EFAULT, dma_read(_metadata, self, IOVA_BASE, 16, &r));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, ps, 0, NULL));
}

/*
 * R6. When the last IOMMU-backed group leaves a container that keeps an
 * emulated group, vfio_iommu_type1_detach_group() widens the aperture to
 * [0, 2^64 - 1] (vfio_iommu_aper_expand()) and rebuilds the valid ranges
 * with no reserved region left (vfio_iommu_resv_refresh()): GET_INFO then
 * reports an IOVA_RANGE capability with exactly one range [0, 2^64 - 1]
 * (a container that never had an IOMMU group reports none).
 */
TEST_F(emu, iova_range_after_iommu_group_leaves_regress)
{
	char info[4096];
	struct vfio_iommu_type1_info_cap_iova_range *cap;

	add_edu_group(_metadata, self);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(0, iommu_get_info(self->container, info, sizeof(info)));
	ASSERT_NE(NULL, iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));

	ASSERT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, iommu_get_info(self->container, info, sizeof(info)));
	cap = (void *)iommu_info_cap(info, sizeof(info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	ASSERT_NE(NULL, cap);
	ASSERT_EQ(1U, cap->nr_iovas);
	EXPECT_EQ(0ULL, cap->iova_ranges[0].start);
	EXPECT_EQ(~0ULL, cap->iova_ranges[0].end);
}

/* Drops CAP_IPC_LOCK (so that RLIMIT_MEMLOCK applies); 0 or -errno. The
 * test runs in a process of its own: the capability is not needed back. */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].inheritable &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/*
 * R7. Replay against RLIMIT_MEMLOCK: in an emulated-only container the k
 * pages the device pinned are charged to locked_vm; when an IOMMU-backed
 * group joins, vfio_iommu_replay() pins the whole mapping and
 * vfio_pin_pages_remote() charges only the pages not already pinned
 * externally (acct_pages -= vpfn_pages()). With RLIMIT_MEMLOCK exactly the
 * mapping's size the join succeeds and locked_vm is exactly the mapping;
 * one more page is then refused. vfio-type1-rs charged the k pages twice
 * and the join failed with -ENOMEM.
 */
TEST_F(emu, replay_device_pins_rlimit_regress)
{
	long pins, lck, ps = page_size();
	struct rlimit rl;
	uint8_t *buf;

	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	/* Before MAP_DMA: each mapping records capable(CAP_IPC_LOCK). */
	ASSERT_EQ(0, drop_ipc_lock());
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 2 * ps, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	rl.rlim_cur = rl.rlim_max = lck * 1024 + map_size();
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));

	add_edu_group(_metadata, self);
	EXPECT_EQ(pins + NPAGE_MAP + 4, pins_outstanding());
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());
	/* The limit is reached: one more page (pinned and charged by the
	 * IOMMU domain now) is refused. */
	EXPECT_EQ(-ENOMEM, dma_map(self->container, IOVA_BASE + map_size(), buf, ps, DMA_RW));
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	EXPECT_EQ(4, counters(_metadata, self)->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
}

/* The kernel log from now on, for kmsg_splats(); -errno on failure. */
static int kmsg_from_now(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* WARNING/BUG lines logged since kmsg_from_now() or the last call; logs
 * them. */
static int kmsg_splats(struct __test_metadata *_metadata, int fd)
{
	char rec[2048];
	ssize_t len;
	int n = 0;

	for (;;) {
		len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records */
		if (len <= 0)
			return n;
		rec[len] = 0;
		rec[strcspn(rec, "\n")] = 0;
		if (strstr(rec, "WARNING:") || strstr(rec, "BUG:")) {
			n++;
			TH_LOG("kernel: %s", strchr(rec, ';') ? strchr(rec, ';') + 1 : rec);
		}
	}
}

/* RLIMIT_MEMLOCK (soft and hard) set to bytes; 0 or -errno. */
static int set_memlock(rlim_t bytes)
{
	struct rlimit rl = { .rlim_cur = bytes, .rlim_max = bytes };

	return setrlimit(RLIMIT_MEMLOCK, &rl) ? -errno : 0;
}

/*
 * R8. The last IOMMU-backed group leaves while the device holds 4 pages,
 * RLIMIT_MEMLOCK lowered below locked_vm since the MAP:
 * vfio_iommu_unmap_unpin_reaccount() applies one net change, the device's
 * pages minus the mapping's (vfio_lock_acct(), never positive, so the
 * limit cannot refuse it). locked_vm is then the 4 pages; a new device pin
 * is refused (it is charged, over the limit), each unpin gives one back.
 * vfio-type1-rs uncharged the mapping, then its charge of the 4 pages
 * failed over the limit and was ignored: the unpins gave back pages never
 * charged (locked_vm short, then below 0: __account_locked_vm() WARNs,
 * once per boot, so VmLck is the check that always sees it).
 */
TEST_F(emu, detach_reaccount_over_rlimit_regress)
{
	long pins, lck, ps = page_size();
	uint8_t *buf;
	int kmsg;

	add_edu_group(_metadata, self);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	/* Before MAP_DMA: each mapping records capable(CAP_IPC_LOCK). */
	ASSERT_EQ(0, drop_ipc_lock());
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 2 * ps, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(lck + NPAGE_MAP * ps / 1024, vmlck_kb());
	ASSERT_EQ(0, set_memlock(0));
	kmsg = kmsg_from_now();
	ASSERT_GE(kmsg, 0) TH_LOG("/dev/kmsg: %s", strerror(-kmsg));

	ASSERT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_UNSET_CONTAINER, 0));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	EXPECT_EQ(-ENOMEM, pin(_metadata, self, IOVA_BASE + 8 * ps, 1, TRM_PROT_READ, NULL));
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	ASSERT_EQ(2, unpin(_metadata, self, IOVA_BASE + 2 * ps, 2));
	EXPECT_EQ(pins + 2, pins_outstanding());
	EXPECT_EQ(lck + 2 * ps / 1024, vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(2, counters(_metadata, self)->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(0, kmsg_splats(_metadata, kmsg));
	close(kmsg);
}

/*
 * R9. An IOMMU-backed group joins an emulated-only container whose device
 * holds 4 pages, RLIMIT_MEMLOCK lowered below locked_vm since: the replay
 * pin (vfio_pin_pages_remote()) is over the limit and the join fails with
 * -ENOMEM; locked_vm is as before, still the 4 device pages, and each
 * unpin gives one back. vfio-type1-rs gave the 4 pages' charge back before
 * pinning the mapping, and taking it again failed over the limit and was
 * ignored: locked_vm short, then below 0 (the WARN of R8).
 */
TEST_F(emu, replay_fails_over_rlimit_keeps_device_charge_regress)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	long pins, lck, ps = page_size();
	uint8_t *buf;
	int kmsg;

	ASSERT_NE(NULL, g);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, drop_ipc_lock());
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(4, pin(_metadata, self, IOVA_BASE + 2 * ps, 4, TRM_PROT_READ, NULL));
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	ASSERT_EQ(0, set_memlock(0));
	kmsg = kmsg_from_now();
	ASSERT_GE(kmsg, 0) TH_LOG("/dev/kmsg: %s", strerror(-kmsg));

	self->edu_group = vfio_open_viable_group(g->id);
	ASSERT_GE(self->edu_group, 0);
	EXPECT_EQ(-ENOMEM, xioctl(self->edu_group, VFIO_GROUP_SET_CONTAINER,
				  (unsigned long)&self->container));
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(lck + 4 * ps / 1024, vmlck_kb());
	ASSERT_EQ(2, unpin(_metadata, self, IOVA_BASE + 2 * ps, 2));
	EXPECT_EQ(pins + 2, pins_outstanding());
	EXPECT_EQ(lck + 2 * ps / 1024, vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
	EXPECT_EQ(2, counters(_metadata, self)->unmap_unpinned);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	EXPECT_EQ(0, kmsg_splats(_metadata, kmsg));
	close(kmsg);
}

/* --- fail-nth (debug kernel): every fault point of one call in turn ---- */

#define DBGFS "/sys/kernel/debug"

/* Fail GFP_KERNEL allocations too (what vfio core and the backends make),
 * quietly; fi_restore() puts the old values back. */
static struct {
	const char *path, *value;
	char old[32];
	bool saved;
} fi_knobs[] = {
	{ .path = DBGFS "/failslab/ignore-gfp-wait", .value = "N" },
	{ .path = DBGFS "/failslab/verbose", .value = "0" },
	{ .path = DBGFS "/fail_page_alloc/ignore-gfp-wait", .value = "N" },
	{ .path = DBGFS "/fail_page_alloc/verbose", .value = "0" },
};

/* Opens /proc/thread-self/fail-nth with the knobs set; -errno if there is
 * no fault injection (a kernel other than the debug one). */
static int fi_open(void)
{
	int fd;

	if (access(DBGFS "/failslab", F_OK) || access(DBGFS "/fail_page_alloc", F_OK))
		return -ENOENT;
	fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(fi_knobs) / sizeof(fi_knobs[0]); i++) {
		FILE *f = fopen(fi_knobs[i].path, "r");

		fi_knobs[i].saved = f && fscanf(f, "%31s", fi_knobs[i].old) == 1;
		if (f)
			fclose(f);
		if (write_str(fi_knobs[i].path, fi_knobs[i].value)) {
			close(fd);
			return -EIO;
		}
	}
	return fd;
}

static void fi_restore(int fd)
{
	for (size_t i = 0; i < sizeof(fi_knobs) / sizeof(fi_knobs[0]); i++)
		if (fi_knobs[i].saved)
			write_str(fi_knobs[i].path, fi_knobs[i].old);
	close(fd);
}

/* Fails the n-th fault point this thread reaches from now on. */
static bool fi_arm(int fd, int n)
{
	char b[16];
	int len = snprintf(b, sizeof(b), "%d", n);

	return pwrite(fd, b, len, 0) == len;
}

/* Disarms; true if the armed fault was injected. Reading back is a fault
 * point itself while armed: a failed read means the count was still 1. */
static bool fi_disarm(int fd)
{
	char b[16] = "";
	ssize_t r = pread(fd, b, sizeof(b) - 1, 0);

	for (int tries = 0; pwrite(fd, "0", 1, 0) != 1 && tries < 8; tries++)
		;
	return r > 0 && atoi(b) == 0;
}

/* A new container with the mdev's group, TYPE1v2, buf mapped (the old
 * one closed: the device must be). */
static void new_container_mapped(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
				 uint8_t *buf)
{
	close_fd(&self->group);
	close_fd(&self->container);
	self->container = fixture_container(_metadata);
	self->group = vfio_open_viable_group(self->mdev.group_id);
	ASSERT_GE(self->group, 0);
	fixture_join(_metadata, self->group, self->container);
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
}

/* Opens the mdev with the n-th fault point of the open failed; the fd or
 * -1, *injected if the fault was. */
static int open_dev_nth_fault(struct __test_metadata *_metadata, FIXTURE_DATA(emu) *self,
			      int fnth, int n, bool *injected)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 0 };
	int fd;

	ASSERT_TRUE(fi_arm(fnth, n));
	fd = ioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, self->mdev.uuid);
	*injected = fi_disarm(fnth);
	if (fd < 0) {
		ASSERT_TRUE(*injected) TH_LOG("open failed without a fault: %m");
		return -1;
	}
	self->mdev.fd = fd;
	ASSERT_EQ(0, xioctl(fd, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg));
	self->mdev.region = reg.offset;
	return fd;
}

/*
 * R10. Registering a device with its container cannot fail: vfio core's
 * register_device callback returns nothing, and the C module only links
 * the device's own list node (vfio_iommu_type1_register_device()). So an
 * open of the device, each fault point of it failed in turn (fail-nth,
 * debug kernel only; each in a new container), either fails or gives a
 * device that can pin and is told of unmaps. vfio-type1-rs allocated room
 * in its device list there and, when that failed, left the device out:
 * the open succeeded, then pin_pages answered -EINVAL and unmaps went
 * unnoticed.
 */
TEST_F(emu, device_open_fault_still_registers_regress)
{
	bool injected = true;
	int fnth, n;
	uint8_t *buf;

	fnth = fi_open();
	if (fnth < 0)
		SKIP(return, "no fail-nth fault injection (debug kernel only)");
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	for (n = 1; injected && n < 1000; n++) {
		new_container_mapped(_metadata, self, buf);
		if (open_dev_nth_fault(_metadata, self, fnth, n, &injected) < 0)
			continue;
		EXPECT_EQ(1, pin(_metadata, self, IOVA_BASE, 1, TRM_PROT_READ, NULL))
			TH_LOG("fault %d in the open", n);
		ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(), 0, NULL));
		EXPECT_EQ(1, counters(_metadata, self)->unmap_calls) TH_LOG("fault %d in the open", n);
		trm_close(&self->mdev);
	}
	EXPECT_FALSE(injected) TH_LOG("still faulting after %d fault points", n);
	fi_restore(fnth);
}

/*
 * R11. UPDATE_VADDR from the mapping's own process keeps its owner:
 * vfio_change_dma_owner() returns at once when current->mm is dma->mm, so
 * dma->task and dma->lock_cap (CAP_IPC_LOCK at MAP time) stay. Mapped
 * with the capability under RLIMIT_MEMLOCK 0 (the mdev group out of the
 * container: VADDR unmaps are -EBUSY with one in), invalidated, the
 * capability dropped, the vaddr given back; the mdev group back in, the
 * IOMMU-backed group out: a device pin and the replay of the IOMMU-backed
 * group joining again are still charged past the limit. vfio-type1-rs
 * made the caller the new owner (without the capability) and refused both
 * with -ENOMEM.
 */
TEST_F(emu, update_vaddr_same_mm_keeps_lock_cap_regress)
{
	long pins, lck;
	uint8_t *buf;

	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	add_edu_group(_metadata, self);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, set_memlock(0));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, map_size(),
			       VFIO_DMA_UNMAP_FLAG_VADDR, NULL));
	ASSERT_EQ(0, drop_ipc_lock());
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(),
			     VFIO_DMA_MAP_FLAG_VADDR));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	open_dev(_metadata, self);
	ASSERT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_UNSET_CONTAINER, 0));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());

	EXPECT_EQ(1, pin(_metadata, self, IOVA_BASE, 1, TRM_PROT_READ, NULL));
	EXPECT_EQ(lck + (long)(PG / 1024), vmlck_kb());
	EXPECT_EQ(1, unpin(_metadata, self, IOVA_BASE, 1));
	EXPECT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	EXPECT_EQ(pins + NPAGE_MAP, pins_outstanding());
	EXPECT_EQ(lck + (long)(map_size() / 1024), vmlck_kb());

	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
}

/* Joins the group `group_id` to `container` under RLIMIT_MEMLOCK `bytes`
 * (the caller without CAP_IPC_LOCK); the errno as the exit status, 0 if it
 * joined, 100 + the failing setup step. */
static int join_with_memlock(int group_id, int container, rlim_t bytes)
{
	long ret;
	int g;

	if (set_memlock(bytes))
		return 101;
	g = vfio_open_viable_group(group_id);
	if (g < 0)
		return 102;
	ret = xioctl(g, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container);
	close(g);
	return ret < 0 ? (int)-ret : 0;
}

/*
 * R12. An IOMMU-backed group joins from another process: the replay's
 * vfio_pin_pages_remote() refuses (unless dma->lock_cap) when the
 * caller's own mm->locked_vm plus the pages to charge pass the caller's
 * RLIMIT_MEMLOCK, before __account_locked_vm() checks the owner's. A
 * forked child with RLIMIT_MEMLOCK 0 gets -ENOMEM and nothing stays
 * pinned or charged; the owner, whose limit has room, then joins the same
 * group. vfio-type1-rs checked only the owner's limit: the child joined.
 */
TEST_F(emu, replay_checks_callers_rlimit_regress)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	long pins, lck;
	uint8_t *buf;
	int status;
	pid_t pid;

	ASSERT_NE(NULL, g);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = test_buf(_metadata, self, NPAGE_MAP, PROT_READ | PROT_WRITE);
	ASSERT_EQ(0, drop_ipc_lock());
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, set_memlock(lck * 1024 + map_size()));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, map_size(), DMA_RW));

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(join_with_memlock(g->id, self->container, 0));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(ENOMEM, WEXITSTATUS(status));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());

	self->edu_group = vfio_open_viable_group(g->id);
	ASSERT_GE(self->edu_group, 0);
	EXPECT_EQ(0, xioctl(self->edu_group, VFIO_GROUP_SET_CONTAINER,
			    (unsigned long)&self->container));
	EXPECT_EQ(pins + NPAGE_MAP, pins_outstanding());
	EXPECT_EQ(lck + (long)(map_size() / 1024), vmlck_kb());
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
}

/*
 * R13 (review of the deferred locked_vm charge). The replay from another
 * process checks that process's limit against what C sums: one physically
 * contiguous chunk (ours: one GUP batch), not the whole mapping, whose
 * pages are charged to the owner. A child with RLIMIT_MEMLOCK of one batch
 * (2 MiB of 4 KiB pages) joins a group to a container holding a mapping of
 * two batches whose pages are physically scattered (touched from the top
 * down, so no chunk is longer than a page): it joins on both backends, and
 * leaving gives everything back. A reader that counted every page it had
 * not charged yet answered ENOMEM.
 */
TEST_F(emu, replay_checks_callers_limit_per_batch_regress)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	size_t batch = page_size() / sizeof(void *) * page_size(), size = 2 * batch;
	long pins, lck;
	uint8_t *buf;
	int status;
	pid_t pid;

	ASSERT_NE(NULL, g);
	if (size > (256UL << 20))
		SKIP(return, "a GUP batch is %zu MiB with %lu KiB pages: too much to map twice here",
		     batch >> 20, page_size() >> 10);
	set_iommu_open_dev(_metadata, self, VFIO_TYPE1v2_IOMMU);
	buf = mmap_aligned(size, page_size(), PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, buf);
	madvise(buf, size, MADV_NOHUGEPAGE);
	for (size_t off = size; off > 0; off -= page_size())
		buf[off - page_size()] = 1;
	ASSERT_EQ(0, drop_ipc_lock());
	pins = pins_outstanding();
	lck = vmlck_kb();
	ASSERT_EQ(0, set_memlock(lck * 1024 + size));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, size, DMA_RW));

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(join_with_memlock(g->id, self->container, batch));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The child's group fd is closed: the group left, its pins went. */
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(lck, vmlck_kb());
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	munmap(buf, size);
}

TEST_HARNESS_MAIN
