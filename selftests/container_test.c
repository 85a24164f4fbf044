// SPDX-License-Identifier: GPL-2.0
/*
 * Container lifecycle through the type1 backend: VFIO_SET_IOMMU selects it
 * (TYPE1 and TYPE1v2), groups join the container, and the backend module is
 * pinned while a container uses it.
 */
#include "kselftest_harness.h"
#include "fixture.h"

FIXTURE(container) {
	int container;
	const struct vfio_test_group *g;
	int group;
};

FIXTURE_SETUP(container)
{
	fixture_open(_metadata, &self->container, &self->group, &self->g, false, 0);
}

FIXTURE_TEARDOWN(container)
{
	close_fd(&self->group);
	close_fd(&self->container);
}

TEST_F(container, api_version)
{
	EXPECT_EQ(VFIO_API_VERSION, xioctl(self->container, VFIO_GET_API_VERSION, 0));
}

/* Before SET_IOMMU vfio core polls every backend with a NULL container. */
TEST_F(container, check_extension_before_set_iommu)
{
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));
	EXPECT_EQ(0, xioctl(self->container, VFIO_CHECK_EXTENSION, 0x7777));
}

/* SET_IOMMU needs a group in the container first. */
TEST_F(container, set_iommu_without_group)
{
	EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
}

TEST_F(container, set_iommu_unknown_type)
{
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	EXPECT_EQ(-ENODEV, xioctl(self->container, VFIO_SET_IOMMU, 0x7777));
}

static void set_iommu_and_use(struct __test_metadata *_metadata,
			      FIXTURE_DATA(container) *self, unsigned long type)
{
	int before = backend_refcnt();
	int dev;

	ASSERT_GE(before, 0) TH_LOG("backend module %s is not loaded", backend_module());
	/* No device fd before the container has an IOMMU. */
	EXPECT_EQ(-EINVAL, xioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)self->g->dev[0]));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, type));
	/* The backend was selected: it now holds a module reference. */
	EXPECT_GT(backend_refcnt(), before);
	/* Once set, CHECK_EXTENSION is answered by the container's backend. */
	EXPECT_EQ(1, xioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	/* A second SET_IOMMU is refused by vfio core. */
	EXPECT_EQ(-EINVAL, xioctl(self->container, VFIO_SET_IOMMU, type));
	dev = xioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)self->g->dev[0]);
	ASSERT_GE(dev, 0) TH_LOG("GET_DEVICE_FD %s: %s", self->g->dev[0], strerror(-dev));
	close(dev);
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	EXPECT_EQ(before, backend_refcnt());
}

TEST_F(container, set_iommu_type1)
{
	set_iommu_and_use(_metadata, self, VFIO_TYPE1_IOMMU);
}

TEST_F(container, set_iommu_type1v2)
{
	set_iommu_and_use(_metadata, self, VFIO_TYPE1v2_IOMMU);
}

/*
 * The retired nesting type (6). Linux 7.x's C module no longer advertises
 * it, so vfio core finds no backend for it (-ENODEV); 6.12's advertises it
 * and enables nesting on each new domain before attaching it: VT-d has no
 * such op (-EINVAL), SMMUv3 refuses once the domain is finalised, which
 * iommu_paging_domain_alloc() already did (-EPERM). Where it works
 * (arm-smmu v2, not tested here) the container is v2.
 */
TEST_F(container, retired_nesting_type)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t sz = 0;
	void *buf;
	long r;

	EXPECT_EQ(TYPE1_NESTING_ADVERTISED, xioctl(self->container, VFIO_CHECK_EXTENSION, 6));
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	r = xioctl(self->container, VFIO_SET_IOMMU, 6);
	if (!TYPE1_NESTING_ADVERTISED) {
		EXPECT_EQ(-ENODEV, r);
	} else {
		EXPECT_EQ(arch_is_arm64() ? -EPERM : -EINVAL, r);
	}
	/* Nothing was set up: the container still takes a plain v2 IOMMU. */
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	buf = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, 2 * ps, DMA_RW));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, 2 * ps, 0, &sz));
	EXPECT_EQ(2 * (uint64_t)ps, sz);
	munmap(buf, 2 * ps);
}

/* A second single-device group joins a container that already has an IOMMU. */
TEST_F(container, second_group_joins)
{
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);
	int group2, dev;

	ASSERT_NE(NULL, g2) TH_LOG("need two single-device groups");
	group2 = vfio_open_viable_group(g2->id);
	ASSERT_GE(group2, 0);
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, xioctl(group2, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	dev = xioctl(group2, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)g2->dev[0]);
	ASSERT_GE(dev, 0);
	close(dev);
	/* Leave in the other order: the container lives until both are gone. */
	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, xioctl(group2, VFIO_GROUP_UNSET_CONTAINER, 0));
	close(group2);
}

/* The two devices behind the PCIe-to-PCI bridge share a group. */
TEST_F(container, multi_device_group)
{
	const struct vfio_test_group *mg = vfio_test_group_find(2, 0);
	int group, dev0, dev1;

	ASSERT_NE(NULL, mg) TH_LOG("no group with two devices bound to vfio-pci");
	group = vfio_open_viable_group(mg->id);
	ASSERT_GE(group, 0);
	ASSERT_EQ(0, xioctl(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	dev0 = xioctl(group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)mg->dev[0]);
	dev1 = xioctl(group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)mg->dev[1]);
	EXPECT_GE(dev0, 0);
	EXPECT_GE(dev1, 0);
	close(dev0);
	close(dev1);
	close(group);
}

/* rmmod is refused while a container uses the backend, allowed after. */
TEST_F(container, module_pinned_while_in_use)
{
	int r;

	ASSERT_EQ(0, xioctl(self->group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	r = backend_unload();
	EXPECT_TRUE(r == -EWOULDBLOCK || r == -EBUSY) TH_LOG("delete_module: %d", r);
	ASSERT_GE(backend_refcnt(), 1);

	/* Closing the group releases the container and the module. */
	close(self->group);
	self->group = -1;
	EXPECT_EQ(0, backend_refcnt());
	ASSERT_EQ(0, backend_unload());
	EXPECT_EQ(-1, backend_refcnt());
	ASSERT_EQ(0, backend_load());
	ASSERT_EQ(0, backend_refcnt());
}

TEST_HARNESS_MAIN
