// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupt isolation at attach: a group whose MSIs are not isolated
 * (no interrupt remapping) is refused with EPERM unless the backend's
 * allow_unsafe_interrupts parameter is set.
 *
 * The VM harness says which platform this is: VFIO_TEST_NO_IRQ_REMAP=1 when
 * booted with `scripts/vm run --no-irq-remap` (x86_64 intel-iommu with
 * intremap=off); otherwise interrupt remapping (or an isolating ITS) is there.
 */
#include "kselftest_harness.h"
#include "fixture.h"

static bool no_irq_remap(void)
{
	const char *v = getenv("VFIO_TEST_NO_IRQ_REMAP");

	return v && !strcmp(v, "1");
}

FIXTURE(isolation) {
	int container, group;
	long old_param;
	struct leak_baseline base;
};

FIXTURE_SETUP(isolation)
{
	self->container = self->group = -1;
	leak_baseline_take(_metadata, &self->base);
	self->old_param = backend_param_read_bool("allow_unsafe_interrupts");
	ASSERT_GE(self->old_param, 0);
	fixture_open(_metadata, &self->container, &self->group, NULL, true, 0);
}

FIXTURE_TEARDOWN(isolation)
{
	close_fd(&self->group);
	close_fd(&self->container);
	backend_param_write("allow_unsafe_interrupts", self->old_param);
	leak_check(_metadata, &self->base);
}

TEST_F(isolation, default_policy)
{
	ASSERT_EQ(0, backend_param_write("allow_unsafe_interrupts", 0));
	ASSERT_EQ(0, backend_param_read_bool("allow_unsafe_interrupts"));
	if (no_irq_remap()) {
		EXPECT_EQ(-EPERM, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
		/* Nothing is left behind: the container can still be set later. */
		EXPECT_EQ(0, backend_refcnt());
	} else {
		EXPECT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	}
}

TEST_F(isolation, allow_unsafe_interrupts)
{
	const struct vfio_test_group *g2 = vfio_test_group_find(1, 1);
	int group2 = g2 ? vfio_open_viable_group(g2->id) : -1;

	ASSERT_GE(group2, 0);
	ASSERT_EQ(0, backend_param_write("allow_unsafe_interrupts", 1));
	EXPECT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	/* A second group under the same policy joins too. */
	EXPECT_EQ(0, xioctl(group2, VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	close(group2);
}

TEST_HARNESS_MAIN
