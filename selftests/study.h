/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guest side of `make study` (study.c) and of its key-facts test
 * (study_test.c): what runs below the VFIO backend, traced with kprobe
 * events.
 *
 *  1. Probes: kprobe events (group "vfio_study") on the iommu core and the
 *     IOMMU drivers under the backends: SMMUv3 and io-pgtable-arm on arm64,
 *     VT-d and generic_pt on x86_64. Each records its caller (the link
 *     register, or the return address on the stack, at function entry) and
 *     a few arguments (IOVAs, page sizes and counts, command opcodes).
 *     Only functions present in /proc/kallsyms are probed; the rest are
 *     reported as unavailable.
 *  2. A tracing instance (instances/vfio_study) that records only those
 *     events, only from the process walking the flow (set_event_pid), each
 *     with a kernel stack trace if asked (options/stacktrace).
 *  3. The flow, one VFIO step at a time, as QEMU does it, with a trace
 *     marker "STEP n name description" written before each step: open the
 *     container, SET_CONTAINER, SET_IOMMU, MAP_DMA of scattered base pages
 *     (PG: 4 KiB, or 64 KiB) and of a 2 MiB hugetlb page, the first
 *     group's device taking an MSI (VFIO_DEVICE_SET_IRQS: on arm64 the
 *     doorbell is mapped into the domain's MSI window), a second group
 *     joining (merged onto the domain; or, where two groups sit behind
 *     two IOMMUs, as in the two-SMMU VM, a domain of its own with every
 *     mapping replayed into it), UNMAP_DMA of each, the two groups
 *     leaving, close.
 *  4. A parser of the instance's trace into events (step, name, arguments,
 *     stack), and the counts the study and the test are about: domains
 *     allocated, device table entries written, page table leaves and their
 *     sizes, TLB invalidations.
 *
 * study_clean() removes the instance and every vfio_study event; both
 * programs call it before setting up (a crashed run leaves nothing behind
 * for long) and when done.
 */
#ifndef STUDY_H
#define STUDY_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* mremap() */
#endif
#include "fixture.h"
#include "edu.h"

#include <ctype.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#define STUDY_TRACEFS	"/sys/kernel/tracing"
#define STUDY_GROUP	"vfio_study"
#define STUDY_INSTANCE	STUDY_TRACEFS "/instances/" STUDY_GROUP

/*
 * The caller: on arm64 the link register at function entry (the unwinder
 * starting from the probe's registers skips it: the callee has not pushed
 * its frame record yet); on x86_64 the return address, on top of the stack
 * at entry, below the registers pushed since (see study_probe_offset()).
 */
static inline void study_caller_arg(char *buf, size_t len, int pushes)
{
#ifdef __aarch64__
	(void)pushes;
	snprintf(buf, len, "caller=%%lr:symbol");
#else
	snprintf(buf, len, "caller=$stack%d:symbol", pushes);
#endif
}

struct study_probe {
	char arch;		/* 'a': arm64 only, 'x': x86_64 only, 0: both */
	const char *event;	/* event name: the function's name */
	const char *syms;	/* its symbol, or '|'-separated alternatives
				 * (a .constprop.0 / .isra.0 clone, or the
				 * same step's function in Linux 6.12) */
	const char *args;	/* fetch args besides the caller */
};

/*
 * Argument numbers follow the C prototypes in Linux 7.3 (drivers/iommu/):
 * $argN is the N-th argument at function entry.
 */
static const struct study_probe study_probes[] = {
	/* iommu core (drivers/iommu/iommu.c) */
	{ 0, "iommu_paging_domain_alloc_flags",
	  "iommu_paging_domain_alloc_flags|iommu_paging_domain_alloc", "" },
	{ 0, "iommu_domain_free", "iommu_domain_free", "" },
	{ 0, "iommu_group_claim_dma_owner", "iommu_group_claim_dma_owner", "" },
	{ 0, "iommu_group_release_dma_owner", "iommu_group_release_dma_owner", "" },
	{ 0, "iommu_attach_group", "iommu_attach_group", "" },
	{ 0, "iommu_detach_group", "iommu_detach_group", "" },
	{ 0, "iommu_map", "iommu_map", "iova=$arg2:x64 paddr=$arg3:x64 size=$arg4:x64" },
	{ 0, "iommu_unmap", "iommu_unmap", "iova=$arg2:x64 size=$arg3:x64" },
	{ 0, "iommu_unmap_fast", "iommu_unmap_fast", "iova=$arg2:x64 size=$arg3:x64" },
	{ 0, "iommu_alloc_pages_node_sz", "iommu_alloc_pages_node_sz", "size=$arg3:x64" },
	/* arm64: SMMUv3 (arm-smmu-v3.c) */
	{ 'a', "arm_smmu_domain_alloc_paging_flags",
	  "arm_smmu_domain_alloc_paging_flags|arm_smmu_domain_alloc_paging", "" },
	{ 'a', "arm_smmu_domain_finalise", "arm_smmu_domain_finalise|arm_smmu_domain_finalise.constprop.0", "" },
	{ 'a', "arm_smmu_domain_free_paging", "arm_smmu_domain_free_paging", "" },
	{ 'a', "arm_smmu_attach_dev", "arm_smmu_attach_dev", "" },
	{ 'a', "arm_smmu_attach_dev_blocked", "arm_smmu_attach_dev_blocked", "" },
	{ 'a', "arm_smmu_attach_dev_identity", "arm_smmu_attach_dev_identity", "" },
	{ 'a', "arm_smmu_make_s1_cd", "arm_smmu_make_s1_cd", "" },
	{ 'a', "arm_smmu_make_cdtable_ste", "arm_smmu_make_cdtable_ste", "" },
	{ 'a', "arm_smmu_make_abort_ste", "arm_smmu_make_abort_ste", "" },
	{ 'a', "arm_smmu_make_bypass_ste", "arm_smmu_make_bypass_ste", "" },
	{ 'a', "arm_smmu_write_cd_entry", "arm_smmu_write_cd_entry", "ssid=$arg2:s32" },
	{ 'a', "arm_smmu_install_ste_for_dev", "arm_smmu_install_ste_for_dev", "" },
	/* the one writer of STEs and CDs: its caller says which */
	{ 'a', "arm_smmu_write_entry", "arm_smmu_write_entry", "" },
	{ 'a', "arm_smmu_map_pages", "arm_smmu_map_pages",
	  "iova=$arg2:x64 pgsize=$arg4:x64 pgcount=$arg5:u64" },
	{ 'a', "arm_smmu_unmap_pages", "arm_smmu_unmap_pages",
	  "iova=$arg2:x64 pgsize=$arg3:x64 pgcount=$arg4:u64" },
	{ 'a', "arm_smmu_tlb_inv_page_nosync", "arm_smmu_tlb_inv_page_nosync",
	  "iova=$arg2:x64 granule=$arg3:x64" },
	{ 'a', "arm_smmu_tlb_inv_walk", "arm_smmu_tlb_inv_walk", "iova=$arg1:x64 size=$arg2:x64" },
	{ 'a', "arm_smmu_tlb_inv_context", "arm_smmu_tlb_inv_context", "" },
	{ 'a', "arm_smmu_iotlb_sync", "arm_smmu_iotlb_sync", "" },
	{ 'a', "arm_smmu_flush_iotlb_all", "arm_smmu_flush_iotlb_all", "" },
	{ 'a', "arm_smmu_domain_inv_range", "arm_smmu_domain_inv_range",
	  "iova=$arg2:x64 size=$arg3:x64 granule=$arg4:x32 leaf=$arg5:u8" },
	/* every command batch: the first command's opcode, the count */
	{ 'a', "arm_smmu_cmdq_issue_cmdlist", "arm_smmu_cmdq_issue_cmdlist",
	  "op=+0($arg3):x8 n=$arg4:s32 sync=$arg5:u8" },
	/* arm64: io-pgtable-arm.c (one call maps pgcount entries of pgsize) */
	{ 'a', "arm_lpae_map_pages", "arm_lpae_map_pages",
	  "iova=$arg2:x64 paddr=$arg3:x64 pgsize=$arg4:x64 pgcount=$arg5:u64" },
	{ 'a', "arm_lpae_unmap_pages", "arm_lpae_unmap_pages",
	  "iova=$arg2:x64 pgsize=$arg3:x64 pgcount=$arg4:u64" },
	{ 'a', "__arm_lpae_alloc_pages", "__arm_lpae_alloc_pages", "size=$arg1:x64" },
	/* x86_64: VT-d (intel/iommu.c, cache.c, dmar.c) */
	{ 'x', "intel_iommu_domain_alloc_paging_flags",
	  "intel_iommu_domain_alloc_paging_flags|intel_iommu_domain_alloc", "" },
	{ 'x', "paging_domain_alloc", "paging_domain_alloc", "" },
	{ 'x', "intel_iommu_domain_free", "intel_iommu_domain_free", "" },
	{ 'x', "intel_iommu_attach_device", "intel_iommu_attach_device", "" },
	{ 'x', "blocking_domain_attach_dev", "blocking_domain_attach_dev", "" },
	{ 'x', "identity_domain_attach_dev", "identity_domain_attach_dev", "" },
	{ 'x', "domain_attach_iommu", "domain_attach_iommu", "" },
	{ 'x', "domain_detach_iommu", "domain_detach_iommu", "" },
	{ 'x', "domain_context_mapping_one", "domain_context_mapping_one",
	  "bus=$arg3:x8 devfn=$arg4:x8" },
	{ 'x', "domain_context_clear_one", "domain_context_clear_one", "bus=$arg2:x8 devfn=$arg3:x8" },
	{ 'x', "cache_tag_assign_domain", "cache_tag_assign_domain", "" },
	{ 'x', "cache_tag_unassign_domain", "cache_tag_unassign_domain", "" },
	{ 'x', "intel_iommu_iotlb_sync_map", "intel_iommu_iotlb_sync_map",
	  "iova=$arg2:x64 size=$arg3:x64" },
	{ 'x', "intel_iommu_tlb_sync", "intel_iommu_tlb_sync", "" },
	{ 'x', "intel_flush_iotlb_all", "intel_flush_iotlb_all", "" },
	{ 'x', "cache_tag_flush_range", "cache_tag_flush_range", "start=$arg2:x64 end=$arg3:x64" },
	{ 'x', "cache_tag_flush_all", "cache_tag_flush_all", "" },
	{ 'x', "cache_tag_flush_range_np", "cache_tag_flush_range_np",
	  "start=$arg2:x64 end=$arg3:x64" },
	/* every queued-invalidation batch: the first descriptor's low byte
	 * (type in bits 0-3, granularity in bits 4-5), the count */
	{ 'x', "qi_submit_sync", "qi_submit_sync", "d0=+0($arg2):x8 count=$arg3:u32" },
	{ 'x', "__iommu_flush_iotlb", "__iommu_flush_iotlb", "" },
	{ 'x', "__iommu_flush_context", "__iommu_flush_context", "" },
	/* x86_64: generic_pt, second-stage format (iommu_vtdss.c) */
	{ 'x', "vtdss_map_range", "vtdss_map_range", "iova=$arg2:x64 paddr=$arg3:x64 len=$arg4:x64" },
	{ 'x', "vtdss_unmap_range", "vtdss_unmap_range", "iova=$arg2:x64 len=$arg3:x64" },
	{ 'x', "vtdss_pt_install_leaf_entry",
	  "vtdss_pt_install_leaf_entry|vtdss_pt_install_leaf_entry.constprop.0", "" },
	{ 'x', "x86_64_map_range", "x86_64_map_range", "iova=$arg2:x64 paddr=$arg3:x64 len=$arg4:x64" },
	/* x86_64 before generic_pt (Linux 6.12): the driver's own page table */
	{ 'x', "intel_iommu_map_pages", "intel_iommu_map_pages",
	  "iova=$arg2:x64 paddr=$arg3:x64 pgsize=$arg4:x64 pgcount=$arg5:u64" },
};

#define STUDY_NPROBES (sizeof(study_probes) / sizeof(study_probes[0]))

/* ---- 1-2. Probes and the tracing instance --------------------------------- */

/* Whether the probe is for this arch's drivers. */
static inline bool study_probe_here(const struct study_probe *p)
{
	return !p->arch || p->arch == (arch_is_arm64() ? 'a' : 'x');
}

struct study_setup {
	bool set[STUDY_NPROBES];
	char sym[STUDY_NPROBES][96];		/* the symbol probed */
	int off[STUDY_NPROBES];			/* at this offset */
	char why[STUDY_NPROBES][96];		/* why not */
	int nset;
	char err[160];				/* setup failure, "" if none */
};

static inline bool study_tracing_available(void)
{
	return !access(STUDY_TRACEFS "/kprobe_events", W_OK);
}

/* Appends one line to kprobe_events; 0 or -errno. */
static inline int study_kprobe_line(const char *line)
{
	return write_file_flags(STUDY_TRACEFS "/kprobe_events", line, strlen(line), O_APPEND);
}

/*
 * x86_64 turns kprobes into jumps to a detour buffer after a while
 * (optprobes); stack traces taken there stop at the buffer, which has no
 * ORC data. The study keeps its probes on int3 (debug.kprobes-optimization
 * = 0) and puts the setting back when done: the old value is kept in
 * STUDY_OPT_SAVED between the processes of one study.
 */
#define STUDY_OPT	"/proc/sys/debug/kprobes-optimization"
#define STUDY_OPT_SAVED	"/tmp/vfio_study.kprobes-optimization"

static inline void study_optprobes_off(void)
{
	long v = read_long(STUDY_OPT);
	FILE *f;

	/* Off already, not there (arm64), or saved by a study under way. */
	if (v <= 0 || !access(STUDY_OPT_SAVED, F_OK))
		return;
	f = fopen(STUDY_OPT_SAVED, "w");
	if (!f)
		return;
	fprintf(f, "%ld\n", v);
	fclose(f);
	if (write_long(STUDY_OPT, 0))
		unlink(STUDY_OPT_SAVED);
}

static inline void study_optprobes_restore(void)
{
	long v = read_long(STUDY_OPT_SAVED);

	if (v >= 0)
		write_long(STUDY_OPT, v);
	unlink(STUDY_OPT_SAVED);
}

/* Removes the instance and every vfio_study kprobe event. */
static inline void study_clean(void)
{
	char line[512], cmd[160];
	FILE *f;

	study_optprobes_restore();
	write_str(STUDY_INSTANCE "/events/" STUDY_GROUP "/enable", "0");
	rmdir(STUDY_INSTANCE);
	f = fopen(STUDY_TRACEFS "/kprobe_events", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *ev = strstr(line, ":" STUDY_GROUP "/"), *end;

		if (!ev || line[0] != 'p')
			continue;
		ev++;
		end = strchr(ev, ' ');
		if (end)
			*end = 0;
		snprintf(cmd, sizeof(cmd), "-:%s\n", ev);
		study_kprobe_line(cmd);
	}
	fclose(f);
}

/* Which probes' symbols /proc/kallsyms has, as plain (vmlinux) functions,
 * exactly once; fills st->sym or st->why. */
static inline void study_find_symbols(struct study_setup *st)
{
	int seen[STUDY_NPROBES][4] = { { 0 } };
	char line[512], name[256], type;
	unsigned long long addr;
	FILE *f = fopen("/proc/kallsyms", "r");

	if (!f) {
		snprintf(st->err, sizeof(st->err), "/proc/kallsyms: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3 ||
		    (type != 't' && type != 'T') || strchr(line, '['))
			continue;
		for (size_t i = 0; i < STUDY_NPROBES; i++) {
			const char *s = study_probes[i].syms;

			/* Cheap reject on the first letters. */
			if (s[0] != name[0] || s[1] != name[1])
				continue;
			for (int k = 0; s && k < 4; k++) {
				const char *bar = strchr(s, '|');
				size_t len = bar ? (size_t)(bar - s) : strlen(s);

				if (strlen(name) == len && !strncmp(s, name, len))
					seen[i][k]++;
				s = bar ? bar + 1 : NULL;
			}
		}
	}
	fclose(f);
	for (size_t i = 0; i < STUDY_NPROBES; i++) {
		const char *s = study_probes[i].syms;

		st->sym[i][0] = 0;
		if (!study_probe_here(&study_probes[i])) {
			snprintf(st->why[i], sizeof(st->why[i]), "other arch");
			continue;
		}
		snprintf(st->why[i], sizeof(st->why[i]), "not in /proc/kallsyms");
		for (int k = 0; s && k < 4; k++) {
			const char *bar = strchr(s, '|');
			int len = bar ? (int)(bar - s) : (int)strlen(s);

			if (seen[i][k] == 1 && !st->sym[i][0]) {
				snprintf(st->sym[i], sizeof(st->sym[i]), "%.*s", len, s);
				st->why[i][0] = 0;
			} else if (seen[i][k] > 1 && !st->sym[i][0]) {
				snprintf(st->why[i], sizeof(st->why[i]),
					 "%.*s: %d functions of that name", len, s, seen[i][k]);
			}
			s = bar ? bar + 1 : NULL;
		}
	}
}

/*
 * Where to probe sym. x86_64 passes the handler the registers with ip one
 * byte past the probe (after the int3); ORC unwinding from there describes
 * the stack after the probed instruction. Right for an instruction longer
 * than one byte (ip is inside it), wrong when the function opens with a
 * one-byte "push %rbp" (ip is the next instruction: ORC expects the push
 * done, and the unwind stops). So on x86_64 the probe goes on the first
 * instruction longer than a byte, found by trying: kprobes refuse an
 * offset that is not an instruction boundary (EILSEQ). The one-byte
 * instructions skipped are the prologue's register pushes: the return
 * address is then that many words up the stack (study_caller_arg()).
 */
static inline int study_probe_offset(const char *sym)
{
#ifdef __x86_64__
	char line[256];

	for (int k = 0; k < 4; k++) {
		snprintf(line, sizeof(line), "p:%s/study_try %s+%d\n", STUDY_GROUP, sym, k + 1);
		if (study_kprobe_line(line))
			return k;
		study_kprobe_line("-:" STUDY_GROUP "/study_try\n");
	}
#endif
	return 0;
}

/*
 * The probe's fetch args, newline-terminated, into buf. kprobe events allow
 * $argN only at function entry; past the x86_64 prologue's pushes (see
 * study_probe_offset()) the arguments are still in their registers, so
 * there $argN is spelled as its register.
 */
static inline void study_fetch_args(char *buf, size_t len, const char *args)
{
#ifdef __x86_64__
	static const char *const reg[] = { "%di", "%si", "%dx", "%cx", "%r8", "%r9" };
	size_t o = 0;

	while (*args && o + 8 < len) {
		if (!strncmp(args, "$arg", 4) && args[4] >= '1' && args[4] <= '6') {
			o += snprintf(buf + o, len - o, "%s", reg[args[4] - '1']);
			args += 5;
		} else {
			buf[o++] = *args++;
		}
	}
	snprintf(buf + o, len - o, "\n");
#else
	snprintf(buf, len, "%s\n", args);
#endif
}

/*
 * Defines the probes, creates the instance (buffer_kb per CPU) recording
 * them, with a stack trace per event if stacks. On failure st->err says
 * why and nothing is left behind; probes the kernel refuses are reported in
 * st->why and skipped.
 */
static inline int study_setup(struct study_setup *st, bool stacks, int buffer_kb)
{
	char line[512];

	memset(st, 0, sizeof(*st));
	if (!study_tracing_available()) {
		snprintf(st->err, sizeof(st->err),
			 "no %s/kprobe_events (needs CONFIG_KPROBE_EVENTS and tracefs)", STUDY_TRACEFS);
		return -1;
	}
	study_clean();
	study_optprobes_off();
	study_find_symbols(st);
	if (st->err[0])
		return -1;
	for (size_t i = 0; i < STUDY_NPROBES; i++) {
		char caller[64];
		int r;

		if (!st->sym[i][0])
			continue;
		st->off[i] = study_probe_offset(st->sym[i]);
		study_caller_arg(caller, sizeof(caller), st->off[i]);
		snprintf(line, sizeof(line), "p:%s/%s %s+%d %s ", STUDY_GROUP,
			 study_probes[i].event, st->sym[i], st->off[i], caller);
		study_fetch_args(line + strlen(line), sizeof(line) - strlen(line),
				 study_probes[i].args);
		r = study_kprobe_line(line);
		if (r) {
			snprintf(st->why[i], sizeof(st->why[i]), "kprobe refused: %s", strerror(-r));
			continue;
		}
		st->set[i] = true;
		st->nset++;
	}
	if (!st->nset) {
		snprintf(st->err, sizeof(st->err), "no probe could be set");
		study_clean();
		return -1;
	}
	if (mkdir(STUDY_INSTANCE, 0755) && errno != EEXIST) {
		snprintf(st->err, sizeof(st->err), "mkdir %s: %s", STUDY_INSTANCE, strerror(errno));
		study_clean();
		return -1;
	}
	snprintf(line, sizeof(line), "%d", buffer_kb);
	if (write_str(STUDY_INSTANCE "/buffer_size_kb", line) ||
	    write_str(STUDY_INSTANCE "/options/stacktrace", stacks ? "1" : "0")) {
		snprintf(st->err, sizeof(st->err), "cannot configure %s", STUDY_INSTANCE);
		study_clean();
		return -1;
	}
	if (access(STUDY_INSTANCE "/events/" STUDY_GROUP "/enable", W_OK)) {
		snprintf(st->err, sizeof(st->err), "no events/%s in the instance", STUDY_GROUP);
		study_clean();
		return -1;
	}
	return 0;
}

/* Starts recording (only this process's events), from an empty buffer. */
static inline int study_start(void)
{
	char pid[32];
	int r;

	/* A common_pid filter, not set_event_pid: that hooks the scheduler's
	 * sched_waking tracepoint, text patching that under TCG oopsed once
	 * (int3 in __do_trace_sched_waking, the debug kernel). */
	snprintf(pid, sizeof(pid), "common_pid == %d", getpid());
	r = write_str(STUDY_INSTANCE "/trace", "");
	if (!r)
		r = write_str(STUDY_INSTANCE "/events/" STUDY_GROUP "/filter", pid);
	if (!r)
		r = write_str(STUDY_INSTANCE "/events/" STUDY_GROUP "/enable", "1");
	return r;
}

static inline void study_stop(void)
{
	write_str(STUDY_INSTANCE "/events/" STUDY_GROUP "/enable", "0");
}

/* Writes a line into the instance's buffer (a trace marker). */
static inline void study_mark(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void study_mark(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	write_str(STUDY_INSTANCE "/trace_marker", buf);
}

/* ---- 3. The flow ------------------------------------------------------- */

enum study_step {
	STEP_OPEN_CONTAINER = 1,
	STEP_SET_CONTAINER,
	STEP_SET_IOMMU,
	STEP_MAP_4K,
	STEP_MAP_2M,
	STEP_MSI,
	STEP_MERGE,
	STEP_UNMAP_4K,
	STEP_UNMAP_2M,
	STEP_DETACH_SECOND,
	STEP_DETACH_LAST,
	STEP_CLOSE,
	STUDY_NSTEPS = STEP_CLOSE,
};

static const char *const study_step_name[STUDY_NSTEPS + 1] = {
	[STEP_OPEN_CONTAINER] = "open-container",
	[STEP_SET_CONTAINER] = "set-container",
	[STEP_SET_IOMMU] = "set-iommu",
	[STEP_MAP_4K] = "map-4k",
	[STEP_MAP_2M] = "map-2m",
	[STEP_MSI] = "msi",
	[STEP_MERGE] = "merge-group",
	[STEP_UNMAP_4K] = "unmap-4k",
	[STEP_UNMAP_2M] = "unmap-2m",
	[STEP_DETACH_SECOND] = "detach-second",
	[STEP_DETACH_LAST] = "detach-last",
	[STEP_CLOSE] = "close",
};

#define STUDY_PAGES	8		/* scattered base pages (PG) mapped in map-4k */
#define STUDY_IOVA_4K	IOVA_BASE
#define STUDY_IOVA_2M	IOVA_1G

struct study_flow {
	const char *module;	/* the backend expected to serve */
	bool served;		/* it held the container after SET_IOMMU */
	int runs;		/* physically contiguous runs of the base pages */
	uint64_t iova_pgsizes;	/* the container's, after SET_IOMMU (0: unknown) */
	bool huge;		/* map-2m mapped a 2 MiB hugetlb page */
	char huge_why[128];	/* why not */
	long msis;		/* interrupts the msi step's eventfd counted */
	char msi_err[160];	/* why the msi step failed ("": it did not) */
	bool replay;		/* the second group is behind another IOMMU */
	char iommu[2][128];	/* then: the IOMMU of each group */
	int failed_step;	/* 0, or the step that failed */
	char err[160];
};

static inline void study_step(int n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void study_step(int n, const char *fmt, ...)
{
	char desc[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	study_mark("STEP %d %s %s", n, study_step_name[n], desc);
}

static inline int study_fail(struct study_flow *fl, int step, const char *what, long r)
{
	fl->failed_step = step;
	snprintf(fl->err, sizeof(fl->err), "%s: %s", what, strerror(r < 0 ? -r : errno));
	return -1;
}

/* PFN of the page at p (root reads real PFNs from pagemap); 0 if unknown. */
static inline uint64_t study_pfn(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (uintptr_t)p / PG * sizeof(e)) != sizeof(e))
		e = 0;
	close(fd);
	return (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0;
}

/*
 * STUDY_PAGES anonymous pages, each physically apart from the one before
 * it: a pool of 4 x STUDY_PAGES pages is faulted in, then pages are moved
 * (mremap keeps the page) into a new range one by one, each time the first
 * pool page that does not directly follow the previous one physically. *runs
 * gets the physically contiguous runs of the result (STUDY_PAGES unless the
 * PFNs cannot be read).
 */
static inline char *study_scattered_pages(int *runs)
{
	enum { POOL = 4 * STUDY_PAGES };
	size_t len = STUDY_PAGES * PG;
	char *src = mmap(NULL, POOL * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pfn[POOL], prev = 0;
	bool used[POOL] = { false };

	if (src == MAP_FAILED || dst == MAP_FAILED)
		return NULL;
	for (int i = 0; i < POOL; i++) {
		src[i * PG] = (char)i;
		pfn[i] = study_pfn(src + i * PG);
	}
	for (int i = 0; i < STUDY_PAGES; i++) {
		int k = 0;

		while (k < POOL && (used[k] || (i && pfn[k] && pfn[k] == prev + 1)))
			k++;
		if (k == POOL)
			return NULL;
		used[k] = true;
		prev = pfn[k];
		if (mremap(src + k * PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			   dst + i * PG) == MAP_FAILED)
			return NULL;
	}
	for (int k = 0; k < POOL; k++)
		if (!used[k])
			munmap(src + k * PG, PG);
	*runs = 0;
	prev = 0;
	for (int i = 0; i < STUDY_PAGES; i++) {
		uint64_t p = study_pfn(dst + i * PG);

		if (!p || p != prev + 1)
			(*runs)++;
		prev = p;
	}
	return dst;
}

/* The 2 MiB hugetlb pool by its own controls, whatever the default huge
 * page size (512 MiB with 64 KiB pages, where 2 MiB are contiguous PTEs). */
#define STUDY_POOL_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"

/* A 2 MiB hugetlb page (one more in the pool if none is free: *added);
 * NULL and why if there is none. */
static inline char *study_huge_page(bool *added, char *why, size_t whylen)
{
	const char *nr = STUDY_POOL_2M "nr_hugepages";
	long free = read_long(STUDY_POOL_2M "free_hugepages"), total = read_long(nr);
	char *p;

	*added = false;
	if (!hugetlb_size_offered(SZ_2M)) {
		snprintf(why, whylen, "the kernel offers no 2 MiB hugetlb pages");
		return NULL;
	}
	if (free < 1 && total >= 0) {
		if (write_long(nr, total + 1) || read_long(nr) != total + 1) {
			write_long(nr, total);
			snprintf(why, whylen, "no free 2 MiB hugetlb page and none could be added");
			return NULL;
		}
		*added = true;
	}
	p = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(why, whylen, "mmap(MAP_HUGETLB) of 2 MiB: %s", strerror(errno));
		if (*added)
			write_long(nr, total);
		*added = false;
		return NULL;
	}
	memset(p, 0x5a, SZ_2M);
	return p;
}

/*
 * The msi step: the device of group (bdf) gets its MSI wired to an eventfd
 * (VFIO_DEVICE_SET_IRQS), raises it once by its register, has it switched
 * off, and is closed again (the groups could not leave the container with
 * a device open). Where the platform maps the doorbell through the DMA
 * domain (arm64: the MSI cookie's window), iommu_dma_get_msi_page maps it
 * here. A failure is recorded in fl->msi_err; the flow goes on.
 */
static inline void study_msi(struct study_flow *fl, int group, const char *bdf)
{
	struct pollfd p = { .events = POLLIN };
	struct edu e;
	uint64_t n = 0;

	p.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p.fd < 0) {
		snprintf(fl->msi_err, sizeof(fl->msi_err), "eventfd: %s", strerror(errno));
		return;
	}
	if (edu_open(&e, group, bdf) || edu_msi_set(&e, p.fd)) {
		snprintf(fl->msi_err, sizeof(fl->msi_err), "%.31s: %.120s", bdf, e.err);
	} else {
		edu_write(&e, EDU_REG_IRQ_RAISE, 1, 4);
		if (poll(&p, 1, 2000) == 1 && read(p.fd, &n, sizeof(n)) == sizeof(n))
			fl->msis = (long)n;
		else
			snprintf(fl->msi_err, sizeof(fl->msi_err), "%.31s: no MSI within 2 s", bdf);
		edu_write(&e, EDU_REG_IRQ_ACK, 1, 4);
		if (edu_msi_set(&e, -1))
			snprintf(fl->msi_err, sizeof(fl->msi_err), "%.31s: %.120s", bdf, e.err);
	}
	edu_close(&e);
	close(p.fd);
}

/*
 * The two groups of the flow: two behind different IOMMUs if there are
 * (fl->replay), else the first two single-device groups. NULL if none.
 */
static inline bool study_groups(struct study_flow *fl, const struct vfio_test_group **g0,
				const struct vfio_test_group **g1)
{
	static struct vfio_test_group a, b;

	if (groups_on_two_iommus(&a, &b, fl->iommu[0], fl->iommu[1], sizeof(fl->iommu[0]))) {
		fl->replay = true;
		*g0 = &a;
		*g1 = &b;
		return true;
	}
	*g0 = vfio_test_group_find(1, 0);
	*g1 = vfio_test_group_find(1, 1);
	return *g0 && *g1;
}

/*
 * Walks the flow on the backend that serves new containers (expected:
 * module), recording into the instance (study_setup() first). Returns 0, or
 * -1 with fl->failed_step and fl->err set (everything opened is closed).
 */
static inline int study_flow(struct study_flow *fl, const char *module)
{
	const struct vfio_test_group *g0, *g1;
	int container = -1, group = -1, group2 = -1, ret = -1, id0, id1;
	char *pages = NULL, *huge = NULL;
	bool added = false;
	long r;

	memset(fl, 0, sizeof(*fl));
	fl->module = module;
	if (!study_groups(fl, &g0, &g1)) {
		snprintf(fl->err, sizeof(fl->err), "needs two single-device groups on vfio-pci");
		return -1;
	}
	id0 = g0->id;
	id1 = g1->id;
	pages = study_scattered_pages(&fl->runs);
	if (!pages) {
		snprintf(fl->err, sizeof(fl->err), "scattered pages: %s", strerror(errno));
		return -1;
	}
	huge = study_huge_page(&added, fl->huge_why, sizeof(fl->huge_why));
	if (study_start()) {
		snprintf(fl->err, sizeof(fl->err), "cannot start tracing: %s", strerror(errno));
		goto out;
	}

	study_step(STEP_OPEN_CONTAINER, "open(/dev/vfio/vfio)");
	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0) {
		study_fail(fl, STEP_OPEN_CONTAINER, "open /dev/vfio/vfio", -errno);
		goto out;
	}
	study_step(STEP_SET_CONTAINER, "open(/dev/vfio/%d) (%s), VFIO_GROUP_SET_CONTAINER",
		   id0, g0->dev[0]);
	group = vfio_group_attach(container, id0, 0);
	if (group < 0) {
		study_fail(fl, STEP_SET_CONTAINER, "SET_CONTAINER", group);
		goto out;
	}
	study_step(STEP_SET_IOMMU, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)");
	r = xioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
	if (r) {
		study_fail(fl, STEP_SET_IOMMU, "SET_IOMMU", r);
		goto out;
	}
	fl->served = sysfs_module_refcnt(module) > 0;
	{
		struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };

		if (!xioctl(container, VFIO_IOMMU_GET_INFO, (unsigned long)&info) &&
		    (info.flags & VFIO_IOMMU_INFO_PGSIZES))
			fl->iova_pgsizes = info.iova_pgsizes;
	}
	study_step(STEP_MAP_4K,
		   "VFIO_IOMMU_MAP_DMA of %d x %llu KiB pages at iova 0x%llx (physically: %d runs)",
		   STUDY_PAGES, (unsigned long long)(PG >> 10), STUDY_IOVA_4K, fl->runs);
	r = dma_map(container, STUDY_IOVA_4K, pages, STUDY_PAGES * PG, DMA_RW);
	if (r) {
		study_fail(fl, STEP_MAP_4K, "MAP_DMA base pages", r);
		goto out;
	}
	if (huge) {
		study_step(STEP_MAP_2M, "VFIO_IOMMU_MAP_DMA of one 2 MiB hugetlb page at iova 0x%llx",
			   STUDY_IOVA_2M);
		r = dma_map(container, STUDY_IOVA_2M, huge, SZ_2M, DMA_RW);
		if (r) {
			study_fail(fl, STEP_MAP_2M, "MAP_DMA 2 MiB", r);
			goto out;
		}
		fl->huge = true;
	} else {
		study_step(STEP_MAP_2M, "skipped: %s", fl->huge_why);
	}
	study_step(STEP_MSI, "%s: VFIO_DEVICE_SET_IRQS(MSI -> eventfd), raised once, off, closed",
		   g0->dev[0]);
	study_msi(fl, group, g0->dev[0]);
	if (fl->replay)
		study_step(STEP_MERGE, "open(/dev/vfio/%d) (%s, %s), VFIO_GROUP_SET_CONTAINER: behind another IOMMU, a domain of its own, the mappings replayed",
			   id1, g1->dev[0], fl->iommu[1]);
	else
		study_step(STEP_MERGE, "open(/dev/vfio/%d) (%s), VFIO_GROUP_SET_CONTAINER: a second group joins",
			   id1, g1->dev[0]);
	group2 = vfio_group_attach(container, id1, 0);
	if (group2 < 0) {
		study_fail(fl, STEP_MERGE, "second SET_CONTAINER", group2);
		goto out;
	}
	study_step(STEP_UNMAP_4K, "VFIO_IOMMU_UNMAP_DMA of the %d x %llu KiB mapping", STUDY_PAGES,
		   (unsigned long long)(PG >> 10));
	r = dma_unmap(container, STUDY_IOVA_4K, STUDY_PAGES * PG, 0, NULL);
	if (r) {
		study_fail(fl, STEP_UNMAP_4K, "UNMAP_DMA base pages", r);
		goto out;
	}
	if (fl->huge) {
		study_step(STEP_UNMAP_2M, "VFIO_IOMMU_UNMAP_DMA of the 2 MiB mapping");
		r = dma_unmap(container, STUDY_IOVA_2M, SZ_2M, 0, NULL);
		if (r) {
			study_fail(fl, STEP_UNMAP_2M, "UNMAP_DMA 2 MiB", r);
			goto out;
		}
	} else {
		study_step(STEP_UNMAP_2M, "skipped: %s", fl->huge_why);
	}
	study_step(STEP_DETACH_SECOND, "VFIO_GROUP_UNSET_CONTAINER of group %d", id1);
	r = xioctl(group2, VFIO_GROUP_UNSET_CONTAINER, 0);
	if (r) {
		study_fail(fl, STEP_DETACH_SECOND, "UNSET_CONTAINER", r);
		goto out;
	}
	study_step(STEP_DETACH_LAST,
		   "VFIO_GROUP_UNSET_CONTAINER of group %d: the last group leaves", id0);
	r = xioctl(group, VFIO_GROUP_UNSET_CONTAINER, 0);
	if (r) {
		study_fail(fl, STEP_DETACH_LAST, "UNSET_CONTAINER", r);
		goto out;
	}
	study_step(STEP_CLOSE, "close() the group fds and the container");
	close_fd(&group2);
	close_fd(&group);
	close_fd(&container);
	ret = 0;
out:
	study_mark("END");
	study_stop();
	close_fd(&group2);
	close_fd(&group);
	close_fd(&container);
	munmap(pages, STUDY_PAGES * PG);
	if (huge)
		munmap(huge, SZ_2M);
	if (added)
		write_long(STUDY_POOL_2M "nr_hugepages", read_long(STUDY_POOL_2M "nr_hugepages") - 1);
	return ret;
}

/* ---- 4. The recorded trace --------------------------------------------- */

#define STUDY_ARGS_MAX	8

struct study_event {
	int step;
	char name[64];
	char caller[64];	/* the caller's function name */
	int nargs;
	char key[STUDY_ARGS_MAX][16];
	unsigned long long val[STUDY_ARGS_MAX];
	char raw[320];		/* the arguments as printed */
	int stack;		/* index into stacks, -1 if none */
	int cpu;
};

struct study_trace {
	struct study_event *ev;
	int nev, cap;
	char **stacks;		/* "f0;f1;..." (probed function first) */
	int nstacks, stack_cap;
	char desc[STUDY_NSTEPS + 1][200];	/* the markers' descriptions */
	long lost;		/* events the buffer dropped */
	char err[160];
};

static inline void study_trace_free(struct study_trace *t)
{
	for (int i = 0; i < t->nstacks; i++)
		free(t->stacks[i]);
	free(t->stacks);
	free(t->ev);
	memset(t, 0, sizeof(*t));
}

/* "name+0x1/0x2 [mod]" -> "name". */
static inline void study_symbol_name(char *dst, size_t len, const char *s)
{
	size_t n = strcspn(s, "+ ");

	snprintf(dst, len, "%.*s", (int)(n < len ? n : len - 1), s);
}

/* Parses "(sym+0x0/0x9c) caller=f+0x1c/0x40 [m] iova=0x1000 n=3" into e. */
static inline void study_parse_args(struct study_event *e, const char *s)
{
	const char *p = s;

	if (*p == '(') {
		p = strchr(p, ')');
		p = p ? p + 1 : s;
	}
	while (*p == ' ')
		p++;
	snprintf(e->raw, sizeof(e->raw), "%s", p);
	while (*p) {
		const char *eq = strchr(p, '='), *end;
		size_t klen;

		if (!eq)
			break;
		klen = eq - p;
		end = strchr(eq, ' ');
		if (!end)
			end = eq + strlen(eq);
		if (klen == 6 && !strncmp(p, "caller", 6)) {
			study_symbol_name(e->caller, sizeof(e->caller), eq + 1);
		} else if (e->nargs < STUDY_ARGS_MAX && klen < sizeof(e->key[0])) {
			snprintf(e->key[e->nargs], sizeof(e->key[0]), "%.*s", (int)klen, p);
			e->val[e->nargs++] = strtoull(eq + 1, NULL, 0);
		}
		p = end;
		while (*p == ' ')
			p++;
		/* A symbol's module: "[vfio_iommu_type1_rs]". */
		if (*p == '[') {
			const char *close = strchr(p, ']');

			p = close ? close + 1 : p + strlen(p);
			while (*p == ' ')
				p++;
		}
	}
}

static inline int study_add_stack(struct study_trace *t, const char *frames)
{
	for (int i = 0; i < t->nstacks; i++)
		if (!strcmp(t->stacks[i], frames))
			return i;
	if (t->nstacks == t->stack_cap) {
		int cap = t->stack_cap ? 2 * t->stack_cap : 64;
		char **s = realloc(t->stacks, cap * sizeof(*s));

		if (!s)
			return -1;
		t->stacks = s;
		t->stack_cap = cap;
	}
	t->stacks[t->nstacks] = strdup(frames);
	return t->stacks[t->nstacks] ? t->nstacks++ : -1;
}

/* Events the instance dropped (per-CPU "overrun" and "dropped events"). */
static inline long study_lost(void)
{
	char path[128], line[128];
	long lost = 0;

	for (int cpu = 0; cpu < 1024; cpu++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/per_cpu/cpu%d/stats", STUDY_INSTANCE, cpu);
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f)) {
			long v;

			if (sscanf(line, "overrun: %ld", &v) == 1 ||
			    sscanf(line, "dropped events: %ld", &v) == 1)
				lost += v;
		}
		fclose(f);
	}
	return lost;
}

static inline void study_end_stack(struct study_trace *t, int owner, char *frames)
{
	if (owner >= 0 && frames[0])
		t->ev[owner].stack = study_add_stack(t, frames);
	frames[0] = 0;
}

/* Reads and parses the instance's trace; 0 or -1 with t->err. */
static inline int study_collect(struct study_trace *t)
{
	static char line[4096], frames[16384];
	int step = 0, last_on_cpu[64], owner = -1;
	FILE *f = fopen(STUDY_INSTANCE "/trace", "r");

	memset(t, 0, sizeof(*t));
	for (int i = 0; i < 64; i++)
		last_on_cpu[i] = -1;
	frames[0] = 0;
	if (!f) {
		snprintf(t->err, sizeof(t->err), "%s/trace: %s", STUDY_INSTANCE, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p, *q, *ts, *name, *rest;
		int cpu;

		line[strcspn(line, "\n")] = 0;
		if (line[0] == '#')
			continue;
		p = line;
		while (*p == ' ')
			p++;
		if (!strncmp(p, "=> ", 3)) {
			size_t n = strlen(frames);

			if (owner >= 0 && n + strlen(p + 3) + 2 < sizeof(frames))
				snprintf(frames + n, sizeof(frames) - n, "%s%s", n ? ";" : "", p + 3);
			continue;
		}
		study_end_stack(t, owner, frames);
		owner = -1;
		/* "comm-pid [cpu] flags timestamp: name: rest" */
		p = strstr(line, "] ");
		if (!p)
			continue;
		q = p;
		while (q > line && q[-1] != '[')
			q--;
		if (q == line || !isdigit((unsigned char)*q))
			continue;
		cpu = atoi(q);
		if (cpu < 0 || cpu >= 64)
			cpu = 0;
		ts = strstr(p, ": ");
		if (!ts)
			continue;
		name = ts + 2;
		if (!strncmp(name, "<stack trace>", 13)) {
			owner = last_on_cpu[cpu];
			last_on_cpu[cpu] = -1;
			continue;
		}
		rest = strchr(name, ':');
		if (!rest)
			continue;
		*rest++ = 0;
		if (*rest == ' ')
			rest++;
		if (!strcmp(name, "tracing_mark_write")) {
			int n, off = 0;

			if (sscanf(rest, "STEP %d %*s %n", &n, &off) >= 1 && n > 0 &&
			    n <= STUDY_NSTEPS) {
				step = n;
				snprintf(t->desc[n], sizeof(t->desc[n]), "%s", off ? rest + off : "");
			} else if (!strncmp(rest, "END", 3)) {
				step = 0;
			}
			continue;
		}
		if (!step)
			continue;
		if (t->nev == t->cap) {
			int cap = t->cap ? 2 * t->cap : 256;
			struct study_event *ev = realloc(t->ev, cap * sizeof(*ev));

			if (!ev) {
				snprintf(t->err, sizeof(t->err), "out of memory");
				fclose(f);
				return -1;
			}
			t->ev = ev;
			t->cap = cap;
		}
		memset(&t->ev[t->nev], 0, sizeof(t->ev[0]));
		t->ev[t->nev].step = step;
		t->ev[t->nev].stack = -1;
		t->ev[t->nev].cpu = cpu;
		snprintf(t->ev[t->nev].name, sizeof(t->ev[0].name), "%s", name);
		study_parse_args(&t->ev[t->nev], rest);
		last_on_cpu[cpu] = t->nev++;
	}
	study_end_stack(t, owner, frames);
	fclose(f);
	t->lost = study_lost();
	return 0;
}

/* An event's numeric argument; def if it has none of that name. */
static inline unsigned long long study_arg(const struct study_event *e, const char *key,
					   unsigned long long def)
{
	for (int i = 0; i < e->nargs; i++)
		if (!strcmp(e->key[i], key))
			return e->val[i];
	return def;
}

/* How many times the probed function ran in step (step 0: any step). */
static inline long study_count(const struct study_trace *t, int step, const char *name)
{
	long n = 0;

	for (int i = 0; i < t->nev; i++)
		if ((!step || t->ev[i].step == step) && !strcmp(t->ev[i].name, name))
			n++;
	return n;
}

/* The same, only the calls made by caller. */
static inline long study_count_from(const struct study_trace *t, int step, const char *name,
				    const char *caller)
{
	long n = 0;

	for (int i = 0; i < t->nev; i++)
		if (t->ev[i].step == step && !strcmp(t->ev[i].name, name) &&
		    !strcmp(t->ev[i].caller, caller))
			n++;
	return n;
}

/*
 * The key counts of one step, both arches (the driver's functions differ;
 * -1: that driver's probes are not there). See the notes where each is
 * computed.
 */
struct study_counts {
	long domains_allocated, domains_freed, attaches;
	long cd_writes, ste_writes, context_writes;	/* device table entries */
	long map_calls;			/* page table map calls of the driver */
	long leaves_pg, leaves_2m, leaves_other;	/* leaf entries written: of PG,
							 * of 2 MiB, of other sizes */
	long tlbi;			/* TLB invalidation commands/descriptors */
};

/* A page-table map call of n leaves of size sz (io-pgtable's map_pages). */
static inline void study_count_leaves(struct study_counts *c, unsigned long long sz, long n)
{
	c->map_calls++;
	if (sz == PG)
		c->leaves_pg += n;
	else if (sz == SZ_2M)
		c->leaves_2m += n;
	else
		c->leaves_other += n;
}

static inline void study_counts(const struct study_trace *t, int step, struct study_counts *c)
{
	memset(c, 0, sizeof(*c));
	if (arch_is_arm64()) {
		c->domains_allocated = study_count(t, step, "arm_smmu_domain_alloc_paging_flags");
		c->domains_freed = study_count(t, step, "arm_smmu_domain_free_paging");
		c->attaches = study_count(t, step, "arm_smmu_attach_dev");
		/* arm_smmu_write_entry writes both: a CD for
		 * arm_smmu_write_cd_entry, an STE for the STE installer. */
		c->cd_writes = study_count_from(t, step, "arm_smmu_write_entry",
						"arm_smmu_write_cd_entry");
		c->ste_writes = study_count(t, step, "arm_smmu_write_entry") - c->cd_writes;
		c->context_writes = -1;
		for (int i = 0; i < t->nev; i++) {
			const struct study_event *e = &t->ev[i];

			if (e->step != step)
				continue;
			if (!strcmp(e->name, "arm_lpae_map_pages")) {
				study_count_leaves(c, study_arg(e, "pgsize", 0),
						   (long)study_arg(e, "pgcount", 0));
			} else if (!strcmp(e->name, "arm_smmu_cmdq_issue_cmdlist")) {
				unsigned long long op = study_arg(e, "op", 0);

				/* CMDQ_OP_TLBI_NH_ALL (0x10) .. TLBI_NSNH_ALL (0x30) */
				if (op >= 0x10 && op < 0x40)
					c->tlbi += (long)study_arg(e, "n", 0);
			}
		}
		return;
	}
	c->domains_allocated = study_count(t, step, "intel_iommu_domain_alloc_paging_flags");
	c->domains_freed = study_count(t, step, "intel_iommu_domain_free");
	c->attaches = study_count(t, step, "intel_iommu_attach_device");
	c->cd_writes = c->ste_writes = -1;
	c->context_writes = study_count(t, step, "domain_context_mapping_one");
	for (int i = 0; i < t->nev; i++) {
		const struct study_event *e = &t->ev[i];
		unsigned long long len;
		long leaves = 0;

		if (e->step != step)
			continue;
		if (!strcmp(e->name, "qi_submit_sync")) {
			unsigned long long type = study_arg(e, "d0", 0) & 0xf;

			/* QI_IOTLB_TYPE (2), QI_EIOTLB_TYPE (6: PASID-based) */
			if (type == 2 || type == 6)
				c->tlbi += (long)study_arg(e, "count", 0);
			continue;
		}
		if (!strcmp(e->name, "__iommu_flush_iotlb")) {
			c->tlbi++;	/* register-based invalidation (no QI) */
			continue;
		}
		if (!strcmp(e->name, "intel_iommu_map_pages")) {
			/* Linux 6.12: one leaf per page of the size the core chose */
			study_count_leaves(c, study_arg(e, "pgsize", 0),
					   (long)study_arg(e, "pgcount", 0));
			continue;
		}
		if (strcmp(e->name, "vtdss_map_range"))
			continue;
		/* generic_pt writes each leaf with vtdss_pt_install_leaf_entry
		 * before map_range returns: the leaves that follow this call. */
		c->map_calls++;
		for (int j = i + 1; j < t->nev && strcmp(t->ev[j].name, "vtdss_map_range") &&
		     t->ev[j].step == step; j++)
			if (!strcmp(t->ev[j].name, "vtdss_pt_install_leaf_entry"))
				leaves++;
		len = study_arg(e, "len", 0);
		if (leaves && len == PG * (unsigned long long)leaves)
			c->leaves_pg += leaves;
		else if (leaves && len == SZ_2M * (unsigned long long)leaves)
			c->leaves_2m += leaves;
		else
			c->leaves_other += leaves;
	}
}

#endif /* STUDY_H */
