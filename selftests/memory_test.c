// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel memory vfio-type1-rs keeps per mapping is bounded: its record
 * of physically contiguous runs (rust/runs.rs) costs at most 2 MiB per
 * mapped GiB however fragmented the memory (the last level of the IOMMU
 * page table it shadows costs as much), and nothing for a mapping that is
 * one run. The module shows the bytes it holds per mapping in debugfs
 * (run_record_bytes); the C module keeps no such record (it asks the IOMMU
 * page table at unmap), so these tests skip there.
 */
#include "kselftest_harness.h"
#include "fixture.h"

/* The bound: 2 MiB per GiB, i.e. 8 bytes per 4 KiB page. */
#define BOUND_PER_PAGE 8

FIXTURE(memory) {
	int container;
	int group;
	long old_disable_hugepages;
	struct leak_baseline base;
};

FIXTURE_SETUP(memory)
{
	self->container = self->group = -1;
	self->old_disable_hugepages = -1;
	if (!backend_is_rust())
		SKIP(return, "the C module keeps no run record (debugfs view is ours)");
	leak_baseline_take(_metadata, &self->base);
	fixture_open(_metadata, &self->container, &self->group, NULL, true, VFIO_TYPE1v2_IOMMU);
	self->old_disable_hugepages = backend_param_read_bool("disable_hugepages");
}

FIXTURE_TEARDOWN(memory)
{
	if (self->old_disable_hugepages >= 0)
		backend_param_write("disable_hugepages", self->old_disable_hugepages);
	close_fd(&self->group);
	close_fd(&self->container);
	if (backend_is_rust())
		leak_check(_metadata, &self->base);
}

/* The run_record_bytes of the mapping at iova, or -1. */
static long record_bytes(uint64_t iova)
{
	static char view[1 << 16];
	char key[64], *p;

	if (read_view(view, sizeof(view)))
		return -1;
	snprintf(key, sizeof(key), "mapping iova %#llx-", (unsigned long long)iova);
	p = strstr(view, key);
	if (!p)
		return -1;
	p = strstr(p, "run_record_bytes ");
	return p ? strtol(p + strlen("run_record_bytes "), NULL, 10) : -1;
}

/*
 * Worst case: disable_hugepages makes every page a run of its own, and the
 * pages are touched in a scattered order, as in fragmented memory.
 */
TEST_F(memory, fragmented_pages_within_bound)
{
	const size_t size = 64UL << 20, npages = size / PG;
	unsigned char *buf;
	long bytes;

	ASSERT_EQ(0, backend_param_write("disable_hugepages", 1));
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, madvise(buf, size, MADV_NOHUGEPAGE));
	/* A stride coprime with npages visits every page once, scattered. */
	for (size_t i = 0, p = 0; i < npages; i++, p = (p + 7919) % npages)
		buf[p * PG] = (unsigned char)i;
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, buf, size, DMA_RW));
	bytes = record_bytes(IOVA_BASE);
	TH_LOG("%zu MiB of single-page runs: %ld bytes of run record (%.2f per page)",
	       size >> 20, bytes, (double)bytes / npages);
	ASSERT_GE(bytes, 0);
	EXPECT_LE(bytes, (long)(npages * BOUND_PER_PAGE));
	/* The record is not empty: the runs are really kept. */
	EXPECT_GE(bytes, (long)(npages * 4));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA_BASE, size, 0, NULL));
	munmap(buf, size);
}

/* Runs and run_record_bytes of the mapping at iova: 0, or -1. */
static int mapping_runs(uint64_t iova, long *runs, long *bytes)
{
	static char view[1 << 16];
	char key[64], *p, *q;

	if (read_view(view, sizeof(view)))
		return -1;
	snprintf(key, sizeof(key), "mapping iova %#llx-", (unsigned long long)iova);
	p = strstr(view, key);
	q = p ? strstr(p, " runs ") : NULL;
	if (!q)
		return -1;
	*runs = strtol(q + strlen(" runs "), NULL, 10);
	*bytes = record_bytes(iova);
	return 0;
}

/*
 * A mapping that is one run holds no allocation for its record: a single
 * page always is one run, and a 2 MiB THP usually (when the kernel gave
 * the buffer a huge page).
 */
TEST_F(memory, one_run_costs_nothing)
{
	void *page = mmap_aligned(PG, PG, PROT_READ | PROT_WRITE);
	void *thp = mmap_aligned(SZ_2M, SZ_2M, PROT_READ | PROT_WRITE);
	long runs, bytes;

	ASSERT_EQ(0, backend_param_write("disable_hugepages", 0));
	ASSERT_NE(NULL, page);
	ASSERT_NE(NULL, thp);
	memset(page, 1, PG);
	ASSERT_EQ(0, madvise(thp, SZ_2M, MADV_HUGEPAGE));
	memset(thp, 1, SZ_2M);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, page, PG, DMA_RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE + SZ_2M, thp, SZ_2M, DMA_RW));
	ASSERT_EQ(0, mapping_runs(IOVA_BASE, &runs, &bytes));
	EXPECT_EQ(1, runs);
	EXPECT_EQ(0, bytes);
	ASSERT_EQ(0, mapping_runs(IOVA_BASE + SZ_2M, &runs, &bytes));
	TH_LOG("2 MiB THP mapping: %ld runs, %ld bytes of run record", runs, bytes);
	if (runs == 1) {
		EXPECT_EQ(0, bytes);
	} else {
		EXPECT_LE(bytes, (long)(SZ_2M / PG * BOUND_PER_PAGE));
	}
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	munmap(page, PG);
	munmap(thp, SZ_2M);
}

TEST_HARNESS_MAIN
