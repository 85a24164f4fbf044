// SPDX-License-Identifier: GPL-2.0
/*
 * The key facts of `make study` (docs/attach-flow.md), checked on every
 * suite run so that they cannot rot: the study flow (study.h: SET_IOMMU,
 * MAP_DMA of scattered base pages and of a 2 MiB hugetlb page, a second
 * group merging, UNMAP_DMA of each, detach) is walked once on the backend
 * under test with kprobe events on the iommu core and the IOMMU driver, and
 * what the driver did is checked:
 *
 *   - SET_IOMMU allocates one paging domain and reaches the driver's attach
 *     (arm_smmu_attach_dev / intel_iommu_attach_device), which writes the
 *     device's table entries (a CD and an STE / a VT-d context entry);
 *   - MAP_DMA writes one page-table leaf per base page (PG: 4 KiB, or
 *     64 KiB), one io-pgtable call per physically contiguous run, and the
 *     2 MiB hugetlb page in one call as leaves of the largest IOMMU page
 *     size that fits (iova_pgsizes): one 2 MiB block (level-2 block on
 *     arm64, superpage on VT-d), not 512 pages, with 4 KiB pages; 32 leaves
 *     of 64 KiB with a 64 KiB granule (64K | 512M);
 *   - the first group's device takes an MSI (VFIO_DEVICE_SET_IRQS): on
 *     arm64 the doorbell page is mapped into the domain's MSI window
 *     (0x8000000, one PG page), on x86_64 (interrupt remapping) nothing is
 *     mapped;
 *   - the second group is merged: one domain allocated for it and freed
 *     again, nothing mapped anew; or, where it is behind another IOMMU
 *     (the two-SMMU VM), it keeps a domain of its own and every mapping is
 *     replayed into it: the same page-table leaves as MAP_DMA wrote; every
 *     domain allocated is freed;
 *   - every UNMAP_DMA invalidates the IOTLB, and (when the other backend can
 *     be loaded in this VM: the C module next to ours, or ours next to C
 *     when /vmtest has it) ours issues no more TLB invalidations per unmap
 *     than the C module does for the same flow.
 *
 * All probing happens in main() before the tests run, and every probe is
 * removed again (the tests only read what was recorded); a kernel without
 * kprobe events skips every test, saying so.
 */
#include "kselftest_harness.h"
#include "study.h"

#define RS_KO	"/vmtest/vfio_iommu_type1_rs.ko"

static struct {
	char skip[200];			/* why nothing was recorded */
	struct study_setup st;
	struct study_flow flow;		/* the backend under test */
	struct study_trace trace;
	const char *other;		/* the other backend, if it ran */
	char other_skip[200];
	char other_err[200];		/* loading/unloading it failed */
	struct study_flow oflow;
	struct study_trace otrace;
	char clean_err[200];		/* probes left behind */
} S;

static bool study_probe_set(const char *event)
{
	for (size_t i = 0; i < STUDY_NPROBES; i++)
		if (!strcmp(study_probes[i].event, event))
			return S.st.set[i];
	return false;
}

static bool other_loaded(const char *module)
{
	return sysfs_module_refcnt(module) >= 0;
}

/* Loads the other backend (it then serves new containers: the most recently
 * registered one does), walks the flow on it, unloads it. */
static void run_other(void)
{
	const char *load;
	int r;

	if (backend_is_rust()) {
		S.other = "vfio_iommu_type1";
		load = "modprobe vfio_iommu_type1";
	} else if (!access(RS_KO, R_OK)) {
		S.other = "vfio_iommu_type1_rs";
		load = "insmod " RS_KO;
	} else {
		snprintf(S.other_skip, sizeof(S.other_skip),
			 "our module is not in this VM (the backend=rust VM compares with C)");
		return;
	}
	if (other_loaded(S.other)) {
		snprintf(S.other_skip, sizeof(S.other_skip), "%s is loaded already", S.other);
		S.other = NULL;
		return;
	}
	r = system(load);
	if (r) {
		snprintf(S.other_err, sizeof(S.other_err), "'%s' failed (%d)", load, r);
		S.other = NULL;
		return;
	}
	study_flow(&S.oflow, S.other);
	study_collect(&S.otrace);
	if (syscall(__NR_delete_module, S.other, O_NONBLOCK))
		snprintf(S.other_err, sizeof(S.other_err), "unloading %s: %s", S.other,
			 strerror(errno));
}

/* Every vfio_study probe and the instance are gone. */
static void check_clean(void)
{
	char line[512];
	FILE *f = fopen(STUDY_TRACEFS "/kprobe_events", "r");

	if (!access(STUDY_INSTANCE, F_OK))
		snprintf(S.clean_err, sizeof(S.clean_err), "%s still there", STUDY_INSTANCE);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, STUDY_GROUP "/"))
			snprintf(S.clean_err, sizeof(S.clean_err), "left behind: %.*s",
				 (int)strcspn(line, "\n"), line);
	if (f)
		fclose(f);
}

static void study_run_all(void)
{
	if (!study_tracing_available()) {
		snprintf(S.skip, sizeof(S.skip), "no kprobe events in this kernel (%s/kprobe_events)",
			 STUDY_TRACEFS);
		return;
	}
	if (study_setup(&S.st, false, 2048)) {
		snprintf(S.skip, sizeof(S.skip), "probes: %s", S.st.err);
		return;
	}
	study_flow(&S.flow, backend_module());
	study_collect(&S.trace);
	run_other();
	study_clean();
	check_clean();
}

/* The recorded run of the backend under test, or SKIP. */
#define NEED_RUN() do {								\
	if (S.skip[0])								\
		SKIP(return, "%s", S.skip);					\
	ASSERT_EQ(0, S.flow.failed_step) TH_LOG("flow: %s", S.flow.err);	\
	ASSERT_STREQ("", S.flow.err);						\
	ASSERT_EQ(0, S.trace.lost) TH_LOG("the trace buffer dropped events");	\
	ASSERT_STREQ("", S.trace.err);						\
} while (0)

static const char *drv_attach(void)
{
	return arch_is_arm64() ? "arm_smmu_attach_dev" : "intel_iommu_attach_device";
}

TEST(flow_served_by_backend_under_test)
{
	NEED_RUN();
	EXPECT_TRUE(S.flow.served) TH_LOG("%s did not hold the container after SET_IOMMU",
					  S.flow.module);
}

TEST(set_iommu_allocates_a_domain_and_reaches_driver_attach)
{
	struct study_counts c;

	NEED_RUN();
	study_counts(&S.trace, STEP_SET_IOMMU, &c);
	ksft_print_msg("set-iommu: %ld domain(s) allocated, %s x%ld\n", c.domains_allocated,
		       drv_attach(), c.attaches);
	EXPECT_EQ(1, c.domains_allocated);
	if (!study_probe_set(drv_attach()))
		SKIP(return, "%s cannot be probed in this kernel (not in kallsyms: inlined)", drv_attach());
	EXPECT_GE(c.attaches, 1) TH_LOG("SET_IOMMU did not reach %s", drv_attach());
}

TEST(set_iommu_writes_device_table_entries)
{
	struct study_counts c;

	NEED_RUN();
	study_counts(&S.trace, STEP_SET_IOMMU, &c);
	if (arch_is_arm64()) {
		ksft_print_msg("set-iommu: %ld CD write(s), %ld STE write(s)\n", c.cd_writes,
			       c.ste_writes);
		EXPECT_GE(c.cd_writes, 1) TH_LOG("no context descriptor written");
		EXPECT_GE(c.ste_writes, 1) TH_LOG("no stream table entry written");
	} else {
		ksft_print_msg("set-iommu: %ld context entry write(s)\n", c.context_writes);
		EXPECT_GE(c.context_writes, 1) TH_LOG("no VT-d context entry written");
	}
}

/* Page-table leaves are seen on arm64 in arm_lpae_map_pages' arguments, on
 * x86_64 as vtdss_pt_install_leaf_entry calls (inlined in some builds), or
 * in intel_iommu_map_pages' arguments (Linux 6.12). */
static bool leaves_observable(void)
{
	return arch_is_arm64() || study_probe_set("vtdss_pt_install_leaf_entry") ||
	       study_probe_set("intel_iommu_map_pages");
}

TEST(map_4k_writes_one_page_entry_per_page)
{
	struct study_counts c;

	NEED_RUN();
	study_counts(&S.trace, STEP_MAP_4K, &c);
	ksft_print_msg("map-4k: %d pages of %llu KiB in %d runs: %ld map call(s), leaves %ld x %lluK, %ld x 2M, %ld other\n",
		       STUDY_PAGES, (unsigned long long)(PG >> 10), S.flow.runs, c.map_calls,
		       c.leaves_pg, (unsigned long long)(PG >> 10), c.leaves_2m, c.leaves_other);
	/* One map call per physically contiguous run, in both modules. */
	EXPECT_EQ(S.flow.runs, c.map_calls);
	if (!leaves_observable())
		SKIP_REST(return, "page-table leaves not observable: %s",
		     "vtdss_pt_install_leaf_entry is inlined in this kernel");
	EXPECT_EQ(STUDY_PAGES, c.leaves_pg);
	EXPECT_EQ(0, c.leaves_2m + c.leaves_other);
}

/* The largest IOMMU page size of the container that is at most 2 MiB (the
 * hugetlb page is 2 MiB aligned in IOVA and physically); 0 if unknown. */
static uint64_t leaf_size_2m(uint64_t pgsizes)
{
	pgsizes &= 2 * SZ_2M - 1;
	return pgsizes ? 1ULL << (63 - __builtin_clzll(pgsizes)) : 0;
}

TEST(map_2m_hugetlb_writes_one_block_not_512_pages)
{
	struct study_counts c;
	uint64_t leaf;

	NEED_RUN();
	if (!S.flow.huge)
		SKIP(return, "no 2 MiB hugetlb page: %s", S.flow.huge_why);
	leaf = leaf_size_2m(S.flow.iova_pgsizes);
	study_counts(&S.trace, STEP_MAP_2M, &c);
	ksft_print_msg("map-2m: iova_pgsizes %#llx: %ld map call(s), leaves %ld x 2M, %ld x %lluK, %ld other\n",
		       (unsigned long long)S.flow.iova_pgsizes, c.map_calls, c.leaves_2m,
		       c.leaves_pg, (unsigned long long)(PG >> 10), c.leaves_other);
	EXPECT_EQ(1, c.map_calls);
	if (!leaves_observable())
		SKIP_REST(return, "page-table leaves not observable: %s",
		     "vtdss_pt_install_leaf_entry is inlined in this kernel");
	ASSERT_NE(0ULL, (unsigned long long)leaf) TH_LOG("GET_INFO gave no iova_pgsizes at or below 2 MiB");
	if (leaf == SZ_2M) {
		EXPECT_EQ(1, c.leaves_2m);
		EXPECT_EQ(0, c.leaves_pg + c.leaves_other);
	} else if (leaf == PG) {
		/* No 2 MiB IOMMU page: base-page leaves (32 of 64 KiB). */
		EXPECT_EQ((long)(SZ_2M / PG), c.leaves_pg);
		EXPECT_EQ(0, c.leaves_2m + c.leaves_other);
	} else {
		/* A size between PG and 2 MiB (none with a 4 KiB or a 64 KiB
		 * granule): counted as "other". */
		EXPECT_EQ((long)(SZ_2M / leaf), c.leaves_other);
		EXPECT_EQ(0, c.leaves_2m + c.leaves_pg);
	}
}

/* The MSI window of the SMMUv3's software MSI region (MSI_IOVA_BASE). */
#define MSI_WINDOW	0x8000000ULL
#define MSI_WINDOW_LEN	0x100000ULL

TEST(msi_maps_the_doorbell_into_the_msi_window)
{
	long in_window = 0, maps = 0;

	NEED_RUN();
	ASSERT_STREQ("", S.flow.msi_err);
	EXPECT_GE(S.flow.msis, 1) TH_LOG("the eventfd counted no MSI");
	for (int i = 0; i < S.trace.nev; i++) {
		const struct study_event *e = &S.trace.ev[i];
		unsigned long long iova = study_arg(e, "iova", 0);

		if (e->step != STEP_MSI || strcmp(e->name, "iommu_map"))
			continue;
		maps++;
		if (iova >= MSI_WINDOW && iova < MSI_WINDOW + MSI_WINDOW_LEN &&
		    study_arg(e, "size", 0) == PG)
			in_window++;
	}
	ksft_print_msg("msi: %ld MSI(s) counted, %ld iommu_map call(s), %ld of one %llu KiB page in the MSI window\n",
		       S.flow.msis, maps, in_window, (unsigned long long)(PG >> 10));
	if (arch_is_arm64()) {
		EXPECT_EQ(1, in_window) TH_LOG("the doorbell was not mapped at 0x8000000+");
		EXPECT_EQ(maps, in_window);
	} else {
		EXPECT_EQ(0, maps) TH_LOG("VT-d remaps interrupts: nothing goes into the DMA domain");
	}
}

TEST(second_group_merges_onto_the_domain)
{
	struct study_counts c;

	NEED_RUN();
	if (S.flow.replay)
		SKIP(return, "the groups are behind two IOMMUs (%s, %s): replayed, not merged",
		     S.flow.iommu[0], S.flow.iommu[1]);
	study_counts(&S.trace, STEP_MERGE, &c);
	ksft_print_msg("merge-group: %ld allocated, %ld freed, %s x%ld, %ld map call(s)\n",
		       c.domains_allocated, c.domains_freed, drv_attach(), c.attaches,
		       c.map_calls);
	/* A domain for the group, attached, found compatible: the group moves
	 * onto the container's domain and the new one is freed, unused. */
	EXPECT_EQ(1, c.domains_allocated);
	EXPECT_EQ(1, c.domains_freed);
	if (study_probe_set(drv_attach())) {
		EXPECT_GE(c.attaches, 2);
	} else {
		ksft_print_msg("%s cannot be probed in this kernel: attaches not counted\n", drv_attach());
	}
	EXPECT_EQ(0, c.map_calls) TH_LOG("mappings were replayed into a domain merged away");
}

TEST(second_group_behind_another_iommu_gets_every_mapping_replayed)
{
	struct study_counts c, m4, m2;

	NEED_RUN();
	if (!S.flow.replay)
		SKIP(return, "every vfio-pci group is behind one IOMMU (two SMMUs: scripts/vm --arch arm64 --smmus 2)");
	study_counts(&S.trace, STEP_MERGE, &c);
	study_counts(&S.trace, STEP_MAP_4K, &m4);
	study_counts(&S.trace, STEP_MAP_2M, &m2);
	ksft_print_msg("merge-group (%s, then %s): %ld allocated, %ld freed, %s x%ld, %ld map call(s), leaves %ld x %lluK, %ld x 2M, %ld other\n",
		       S.flow.iommu[0], S.flow.iommu[1], c.domains_allocated, c.domains_freed,
		       drv_attach(), c.attaches, c.map_calls, c.leaves_pg,
		       (unsigned long long)(PG >> 10), c.leaves_2m, c.leaves_other);
	/* Its own domain, kept: the other IOMMU's domain refuses the group. */
	EXPECT_EQ(1, c.domains_allocated);
	EXPECT_EQ(0, c.domains_freed);
	if (study_probe_set(drv_attach())) {
		EXPECT_GE(c.attaches, 1);
	}
	/* The replay writes what MAP_DMA wrote into the first domain. */
	EXPECT_EQ(m4.map_calls + m2.map_calls, c.map_calls);
	EXPECT_EQ(m4.leaves_pg + m2.leaves_pg, c.leaves_pg);
	EXPECT_EQ(m4.leaves_2m + m2.leaves_2m, c.leaves_2m);
	EXPECT_EQ(m4.leaves_other + m2.leaves_other, c.leaves_other);
}

TEST(every_domain_allocated_is_freed)
{
	long alloc = 0, freed = 0;

	NEED_RUN();
	for (int n = 1; n <= STUDY_NSTEPS; n++) {
		struct study_counts c;

		study_counts(&S.trace, n, &c);
		alloc += c.domains_allocated;
		freed += c.domains_freed;
	}
	ksft_print_msg("flow: %ld domains allocated, %ld freed\n", alloc, freed);
	EXPECT_GE(alloc, 2);
	EXPECT_EQ(alloc, freed);
}

TEST(every_unmap_invalidates_the_iotlb)
{
	struct study_counts c4, c2;

	NEED_RUN();
	study_counts(&S.trace, STEP_UNMAP_4K, &c4);
	study_counts(&S.trace, STEP_UNMAP_2M, &c2);
	ksft_print_msg("TLB invalidations: unmap-4k %ld, unmap-2m %ld\n", c4.tlbi, c2.tlbi);
	EXPECT_GE(c4.tlbi, 1);
	if (S.flow.huge)
		EXPECT_GE(c2.tlbi, 1);
}

TEST(unmap_invalidates_no_more_than_the_c_module)
{
	const struct study_trace *ours, *c;
	const struct study_flow *of, *cf;
	static const int steps[] = { STEP_UNMAP_4K, STEP_UNMAP_2M };

	NEED_RUN();
	ASSERT_STREQ("", S.other_err);
	if (!S.other)
		SKIP(return, "%s", S.other_skip);
	ASSERT_EQ(0, S.oflow.failed_step) TH_LOG("%s: %s", S.other, S.oflow.err);
	ASSERT_STREQ("", S.oflow.err);
	ASSERT_TRUE(S.oflow.served) TH_LOG("%s did not serve the container", S.other);
	ASSERT_EQ(0, S.otrace.lost);
	ours = backend_is_rust() ? &S.trace : &S.otrace;
	of = backend_is_rust() ? &S.flow : &S.oflow;
	c = backend_is_rust() ? &S.otrace : &S.trace;
	cf = backend_is_rust() ? &S.oflow : &S.flow;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct study_counts o, k;

		if (steps[i] == STEP_UNMAP_2M && !(of->huge && cf->huge))
			continue;
		study_counts(ours, steps[i], &o);
		study_counts(c, steps[i], &k);
		ksft_print_msg("%s: TLB invalidations: ours %ld, C %ld\n",
			       study_step_name[steps[i]], o.tlbi, k.tlbi);
		EXPECT_LE(o.tlbi, k.tlbi);
	}
}

TEST(probes_removed_and_modules_as_before)
{
	if (S.skip[0])
		SKIP(return, "%s", S.skip);
	EXPECT_STREQ("", S.clean_err);
	EXPECT_STREQ("", S.other_err);
	if (S.other)
		EXPECT_FALSE(other_loaded(S.other)) TH_LOG("%s still loaded", S.other);
	EXPECT_EQ(0, backend_refcnt());
}

int main(int argc, char **argv)
{
	study_run_all();
	return test_harness_run(argc, argv);
}
