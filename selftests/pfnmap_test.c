// SPDX-License-Identifier: GPL-2.0
/*
 * MAP_DMA of a VM_PFNMAP range: a device BAR mmapped from a vfio device fd
 * (what QEMU does for peer-to-peer DMA). The backend maps its pfns without
 * pinning or accounting them; a BAR mapped read-only cannot be mapped for
 * device writes.
 */
#include "kselftest_harness.h"
#include "fixture.h"

FIXTURE(pfnmap) {
	int container, group, device;
	void *bar;
	size_t bar_size;
	struct leak_baseline base;
};

FIXTURE_SETUP(pfnmap)
{
	const struct vfio_test_group *g;
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };

	self->container = self->group = self->device = -1;
	self->bar = MAP_FAILED;
	leak_baseline_take(_metadata, &self->base);
	fixture_open(_metadata, &self->container, &self->group, &g, true, VFIO_TYPE1v2_IOMMU);
	self->device = xioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)g->dev[0]);
	ASSERT_GE(self->device, 0);
	ASSERT_EQ(0, xioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg));
	ASSERT_NE(0, (int)(reg.flags & VFIO_REGION_INFO_FLAG_MMAP));
	self->bar_size = reg.size;
	self->bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, self->device, reg.offset);
	ASSERT_NE(MAP_FAILED, self->bar);
}

FIXTURE_TEARDOWN(pfnmap)
{
	if (self->bar != MAP_FAILED)
		munmap(self->bar, self->bar_size);
	close_fd(&self->device);
	close_fd(&self->group);
	close_fd(&self->container);
	leak_check(_metadata, &self->base);
}

TEST_F(pfnmap, map_bar_without_pinning)
{
	long pins = pins_outstanding(), vmlck = vmlck_kb();

	ASSERT_EQ(0, dma_map(self->container, IOVA_1G, self->bar, self->bar_size, DMA_RW));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(vmlck, vmlck_kb());
	EXPECT_EQ(-EEXIST, dma_map(self->container, IOVA_1G, self->bar, PG,
				   VFIO_DMA_MAP_FLAG_READ));
	uint64_t unmapped = 0;

	EXPECT_EQ(0, dma_unmap(self->container, IOVA_1G, self->bar_size, 0, &unmapped));
	EXPECT_EQ(self->bar_size, unmapped);
}

/* A BAR mapped read-only in the process cannot be mapped device-writable. */
TEST_F(pfnmap, readonly_bar_refuses_write)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint64_t unmapped = 0;
	void *ro;

	ASSERT_EQ(0, xioctl(self->device, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg));
	ro = mmap(NULL, PG, PROT_READ, MAP_SHARED, self->device, reg.offset);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, dma_map(self->container, IOVA_1G, ro, PG, DMA_RW));
	EXPECT_EQ(0, dma_map(self->container, IOVA_1G, ro, PG, VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_1G, PG, 0, &unmapped));
	EXPECT_EQ(PG, unmapped);
	munmap(ro, PG);
}

/* A hole after the first page: the pin error, and the first page unpinned again. */
TEST_F(pfnmap, hole_in_range_fails_cleanly)
{
	long r;
	char *area = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, area);
	munmap(area + PG, PG);
	memset(area, 1, PG);
	r = dma_map(self->container, IOVA_1G, area, 2 * PG, DMA_RW);
	EXPECT_EQ(-EFAULT, r);
	munmap(area, PG);
}

TEST_HARNESS_MAIN
