// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel memory vfio-type1-rs keeps per mapping is bounded: its record
 * of physically contiguous runs (rust/runs.rs) costs at most 8 bytes per
 * mapped page (2 MiB per GiB with 4 KiB pages) however fragmented the
 * memory (the last level of the IOMMU page table it shadows costs as
 * much), and nothing for a mapping that is
 * one run. The module shows the bytes it holds per mapping in debugfs
 * (run_record_bytes); the C module keeps no such record (it asks the IOMMU
 * page table at unmap), so these tests skip there.
 */
#include "kselftest_harness.h"
#include "fixture.h"

/* The bound: 8 bytes per page, as a last-level page table entry (2 MiB
 * per GiB with 4 KiB pages, 128 KiB per GiB with 64 KiB pages). */
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
 * page always is one run, and a THP (of the kernel's PMD size: 2 MiB with
 * 4 KiB pages, 512 MiB with 64 KiB pages) usually (when the kernel gave
 * the buffer a huge page). It is mapped at an IOVA aligned to its size.
 */
TEST_F(memory, one_run_costs_nothing)
{
	uint64_t thp_sz = thp_size();
	void *page = mmap_aligned(PG, PG, PROT_READ | PROT_WRITE);
	void *thp;
	long runs, bytes;

	ASSERT_EQ(0, backend_param_write("disable_hugepages", 0));
	ASSERT_NE(NULL, page);
	memset(page, 1, PG);
	ASSERT_EQ(0, dma_map(self->container, IOVA_BASE, page, PG, DMA_RW));
	ASSERT_EQ(0, mapping_runs(IOVA_BASE, &runs, &bytes));
	EXPECT_EQ(1, runs);
	EXPECT_EQ(0, bytes);
	if (!thp_sz) {
		munmap(page, PG);
		SKIP(return, "the kernel has no THP (no hpage_pmd_size): the page alone passed");
	}
	thp = mmap_aligned(thp_sz, thp_sz, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, thp);
	ASSERT_EQ(0, madvise(thp, thp_sz, MADV_HUGEPAGE));
	memset(thp, 1, thp_sz);
	ASSERT_EQ(0, dma_map(self->container, IOVA_1G, thp, thp_sz, DMA_RW));
	ASSERT_EQ(0, mapping_runs(IOVA_1G, &runs, &bytes));
	TH_LOG("%llu KiB THP mapping: %ld runs, %ld bytes of run record",
	       (unsigned long long)(thp_sz >> 10), runs, bytes);
	if (runs == 1) {
		EXPECT_EQ(0, bytes);
	} else {
		EXPECT_LE(bytes, (long)(pages_of(thp_sz) * BOUND_PER_PAGE));
	}
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	munmap(page, PG);
	munmap(thp, thp_sz);
}

TEST_HARNESS_MAIN
