// SPDX-License-Identifier: GPL-2.0
/*
 * What vfio-type1-rs shows beyond the C module: its debugfs view of
 * containers, domains, groups and mappings (which makes the merge of
 * compatible groups onto one domain observable), its trace events, and its
 * KUnit suites.
 * On the C backend these tests skip: it has neither.
 */
#include "kselftest_harness.h"
#include "fixture.h"

FIXTURE(topology) {
	int container;
	int group[2];
	struct leak_baseline base;
};

FIXTURE_SETUP(topology)
{
	if (!backend_is_rust())
		SKIP(return, "the C module has no debugfs view or trace events");
	self->container = self->group[0] = self->group[1] = -1;
	leak_baseline_take(_metadata, &self->base);
	self->container = fixture_container(_metadata);
	for (int i = 0; i < 2; i++)
		self->group[i] = fixture_group(_metadata, i, NULL);
}

FIXTURE_TEARDOWN(topology)
{
	if (!backend_is_rust())
		return;
	close_fd(&self->group[0]);
	close_fd(&self->group[1]);
	close_fd(&self->container);
	leak_check(_metadata, &self->base);
}

/* Two single-device groups behind one IOMMU end up on one domain; a
 * mapping made before the second group joined shows in the view. */
TEST_F(topology, merge_is_visible)
{
	const struct vfio_test_group *g0 = vfio_test_group_find(1, 0);
	const struct vfio_test_group *g1 = vfio_test_group_find(1, 1);
	char view[8192], want[64];
	void *buf = mmap_aligned(SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, dma_map(self->container, 0x100000, buf, SZ_2M,
			     VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
	ASSERT_EQ(0, xioctl(self->group[1], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));

	ASSERT_EQ(0, read_view(view, sizeof(view)));
	TH_LOG("%s", view);
	EXPECT_NE(NULL, strstr(view, "type1v2): 1 domains, 1 mappings"));
	snprintf(want, sizeof(want), "groups %d %d\n", g0->id, g1->id);
	EXPECT_NE(NULL, strstr(view, want)) TH_LOG("expected '%s'", want);
	EXPECT_NE(NULL, strstr(view, "mapping iova 0x100000-0x2fffff size 0x200000"));

	ASSERT_EQ(0, dma_unmap(self->container, 0x100000, SZ_2M, 0, NULL));
	ASSERT_EQ(0, read_view(view, sizeof(view)));
	EXPECT_NE(NULL, strstr(view, "1 domains, 0 mappings"));
	munmap(buf, SZ_2M);
}

/* A container disappears from the view when its last group leaves. */
TEST_F(topology, released_container_leaves_view)
{
	char view[8192];

	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	ASSERT_EQ(0, read_view(view, sizeof(view)));
	EXPECT_NE(NULL, strstr(view, "1 containers\n"));
	EXPECT_NE(NULL, strstr(view, "(type1): 1 domains, 0 mappings"));
	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, read_view(view, sizeof(view)));
	/* The kernel's debugfs Writer adds one blank line at the end. */
	EXPECT_EQ(0, strncmp(view, "0 containers\n", 13)) TH_LOG("%s", view);
	EXPECT_EQ(NULL, strstr(view, "container 1"));
}

/* Physically contiguous memory (a THP, of the kernel's PMD size: 2 MiB
 * with 4 KiB pages, 512 MiB with 64 KiB pages) becomes one run, mapped
 * with large IOMMU pages at an IOVA aligned to its size; with
 * disable_hugepages=1 every page is a run of its own. */
TEST_F(topology, hugepage_runs_follow_disable_hugepages)
{
	uint64_t thp = thp_size(), iova = thp;
	long thp0 = meminfo_kb("AnonHugePages");
	char view[8192], want[96];
	char *buf;

	if (!thp)
		SKIP(return, "the kernel has no THP (no hpage_pmd_size)");
	buf = mmap_aligned(thp, thp, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, buf);
	if (madvise(buf, thp, MADV_HUGEPAGE))
		SKIP(return, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
	memset(buf, 0x5a, thp);
	if (meminfo_kb("AnonHugePages") < thp0 + (long)(thp >> 10))
		SKIP(return, "no %llu kB THP was allocated", (unsigned long long)(thp >> 10));
	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	ASSERT_EQ(0, dma_map(self->container, iova, buf, thp,
			     VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
	ASSERT_EQ(0, read_view(view, sizeof(view)));
	snprintf(want, sizeof(want), "runs 1 largest_run_pages %llu\n",
		 (unsigned long long)pages_of(thp));
	EXPECT_NE(NULL, strstr(view, want)) TH_LOG("no '%s' in %s", want, view);
	ASSERT_EQ(0, dma_unmap(self->container, iova, thp, 0, NULL));

	ASSERT_EQ(0, backend_param_write("disable_hugepages", 1));
	EXPECT_EQ(0, dma_map(self->container, iova, buf, thp,
			     VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
	ASSERT_EQ(0, backend_param_write("disable_hugepages", 0));
	ASSERT_EQ(0, read_view(view, sizeof(view)));
	snprintf(want, sizeof(want), "runs %llu largest_run_pages 1\n",
		 (unsigned long long)pages_of(thp));
	EXPECT_NE(NULL, strstr(view, want)) TH_LOG("no '%s' in %s", want, view);
	ASSERT_EQ(0, dma_unmap(self->container, iova, thp, 0, NULL));
	munmap(buf, thp);
}

#define TRACING "/sys/kernel/tracing"

/* The trace events tell the attach/merge/replay/map/unmap/detach story. */
TEST_F(topology, trace_events)
{
	const struct vfio_test_group *g0 = vfio_test_group_find(1, 0);
	const struct vfio_test_group *g1 = vfio_test_group_find(1, 1);
	void *buf = mmap_aligned(SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	static char trace[65536];
	char want[160];
	int fd;
	ssize_t n;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, write_str(TRACING "/trace", ""));
	ASSERT_EQ(0, write_str(TRACING "/events/vfio_type1_rs/enable", "1"));
	ASSERT_EQ(0, xioctl(self->group[0], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, xioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, dma_map(self->container, 0x200000, buf, SZ_2M,
			     VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE));
	ASSERT_EQ(0, xioctl(self->group[1], VFIO_GROUP_SET_CONTAINER, (unsigned long)&self->container));
	ASSERT_EQ(0, dma_unmap(self->container, 0x200000, SZ_2M, 0, NULL));
	ASSERT_EQ(0, xioctl(self->group[1], VFIO_GROUP_UNSET_CONTAINER, 0));
	ASSERT_EQ(0, write_str(TRACING "/events/vfio_type1_rs/enable", "0"));

	fd = open(TRACING "/trace", O_RDONLY);
	ASSERT_GE(fd, 0);
	n = read(fd, trace, sizeof(trace) - 1);
	close(fd);
	ASSERT_GT(n, 0);
	trace[n] = 0;
	TH_LOG("%s", trace);
	snprintf(want, sizeof(want), "group=%d new-domain replayed=0", g0->id);
	EXPECT_NE(NULL, strstr(trace, want)) TH_LOG("no '%s'", want);
	EXPECT_NE(NULL, strstr(trace, "vfio_rs_map: container="));
	EXPECT_NE(NULL, strstr(trace, "iova=0x200000 size=0x200000"));
	snprintf(want, sizeof(want), "group=%d merged", g1->id);
	EXPECT_NE(NULL, strstr(trace, want)) TH_LOG("no '%s'", want);
	EXPECT_NE(NULL, strstr(trace, "range=0x200000-0x3fffff mappings=1 bytes=0x200000"));
	snprintf(want, sizeof(want), "vfio_rs_detach: container=");
	EXPECT_NE(NULL, strstr(trace, want));
	munmap(buf, SZ_2M);
}

/* The module's KUnit suites ran at insmod (CONFIG_KUNIT=y) and passed. */
TEST(kunit_suites_passed)
{
	char line[512];
	int suites = 0, failed = 0;
	FILE *f;

	if (!backend_is_rust())
		SKIP(return, "KUnit suites live in the Rust module");
#ifndef RUST_KUNIT_SUITES
	SKIP(return, "this kernel's Rust crate has no #[kunit_tests] (Linux 6.15+): no suites built");
#endif
	/* A kernel without KUnit (Debian's: CONFIG_KUNIT unset) loads the
	 * module without running its suites. */
	f = popen("grep -qw kunit_run_tests /proc/kallsyms", "r");
	ASSERT_NE(NULL, f);
	if (pclose(f))
		SKIP(return, "this kernel has no KUnit (CONFIG_KUNIT unset): no suite runs at insmod");
	f = popen("dmesg", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "ok ");

		if (!p || !strstr(p, " vfio_rs_"))
			continue;
		/* Top-level suite result lines: "ok N vfio_rs_x" / "not ok N vfio_rs_x". */
		if (p > line + 4 && !strncmp(p - 4, "not ", 4))
			failed++;
		suites++;
		TH_LOG("%s", line);
	}
	pclose(f);
	EXPECT_GT(suites, 0) TH_LOG("no vfio_rs_* KUnit suite result in dmesg");
	EXPECT_EQ(0, failed);
}

TEST_HARNESS_MAIN
