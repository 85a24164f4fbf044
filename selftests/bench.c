// SPDX-License-Identifier: GPL-2.0
/*
 * bench: the shapes of VFIO type1 performance, against whichever backend
 * serves new containers. Not a test (not in run_tests.sh): scripts/bench runs
 * it in one VM boot with the C module and with ours, alternating, and
 * compares the two. Under QEMU TCG only such ratios mean anything.
 *
 *   bench [KEY=VALUE]...      (defaults in brackets)
 *     sections=size,count,dirty,kmem   which parts to run [all four]
 *     sizes=2,32,256,1024,2048         size sweep, MiB, even     [these]
 *     kinds=4k,thp,hugetlb             size sweep memory kinds   [these]
 *                                      ("4k": base pages, PG bytes each)
 *     rounds=3                         size sweep rounds (median)
 *     floor=1                          time the pin-only floor beside MAP
 *     counts=1,1024,16384,65535        count sweep               [these]
 *     cpages=4k,2m                     count sweep mapping sizes [these]
 *                                      ("4k": one base page)
 *     crounds=1                        count sweep rounds (median), N >= 16384
 *     crounds_small=5                  count sweep rounds (median), N < 16384
 *     cbufs=8                          2m: distinct 2 MiB buffers reused
 *     dirty_mib=1024 drounds=3         GET_BITMAP over this much base-page memory
 *     kmem_mib=1024 krounds=1          module memory per mapped GiB
 *     tcalls=3                         trace section: traced call pairs
 *     scalls=16384 srounds=4           sample section: calls per round
 *     skind=4k smib=256                sample section: memory kind; with thp
 *                                      or hugetlb one MAP of smib MiB per
 *                                      call, scalls/64 calls a round
 *
 * One container, one single-device group, TYPE1v2. Every result is one line
 *
 *   res backend=<module> sec=<section> kind=<kind> x=<size MiB|count> METRIC=VALUE...
 *   res backend=<module> sec=<section> kind=<kind> x=<x> note=<free text>
 *
 * (the second when a cell cannot be measured: hugetlb pages missing, the
 * floor unavailable). Lines starting with '#' are details. Sections:
 *
 *  Page sizes come from the kernel: kind "4k" is base pages of the
 *  kernel's page size (PG: 4 KiB, or 64 KiB on arm64 64K kernels), thp
 *  is aligned to the THP size (2 MiB, or 512 MiB with 64 KiB pages),
 *  hugetlb is always 2 MiB pages (PMDs, or contiguous PTEs with 64 KiB
 *  pages). The first line says which: "# bench: page_size=... thp_size=...".
 *
 *  size   kind 4k (MADV_NOHUGEPAGE), thp (MADV_HUGEPAGE, THP aligned),
 *         hugetlb (MAP_HUGETLB 2 MiB): one buffer of the largest size,
 *         touched once; each size maps a prefix at IOVA 1 GiB and unmaps it,
 *         map_s / unmap_s are medians over the rounds. Untimed checks: every
 *         page pinned after MAP, none after UNMAP (/proc/vmstat nr_foll_pin_*).
 *  floor-iouring, floor-pinmod  (with floor=1, same buffer, same sizes):
 *         pin_s / unpin_s of the pin-only floor: io_uring_register(
 *         IORING_REGISTER_BUFFERS / UNREGISTER) by raw syscalls, and the
 *         vfio_rs_pinfloor module (/dev/vfio_rs_pinfloor: one
 *         pin_user_pages_fast(FOLL_WRITE|FOLL_LONGTERM) + account_locked_vm,
 *         as io_uring does) if loaded. "note=unavailable: ..." otherwise.
 *  count  kind 4k (one base page each: distinct pages, at most 256 MiB of
 *         them, then reused) or 2m (cbufs 2 MiB buffers, the same ones at
 *         many IOVAs: THP where the THP size is 2 MiB, else 2 MiB hugetlb
 *         pages): map N mappings (map_us per mapping), unmap
 *         them one by one (unmap1_us), map them again and UNMAP_DMA with
 *         VFIO_DMA_UNMAP_FLAG_ALL (unmapall_us).
 *  dirty  kind 4k x=MiB: MAP, then drounds times DIRTY_PAGES START
 *         (start_s), GET_BITMAP at PG over the whole mapping (get_s),
 *         STOP (stop_s) (medians), UNMAP.
 *  kmem   (first, in a container of its own: a fresh IOMMU domain)
 *         kind 4k-frag x=MiB: base pages touched in scattered order, one
 *         MAP held while measuring the deltas of /proc/meminfo Slab and
 *         VmallocUsed and /proc/vmstat nr_iommu_pages (IOMMU page tables),
 *         in bytes per mapped GiB: slab_B, vmalloc_B, iommupt_B, total_B;
 *         for ours also record_B, the sum of run_record_bytes in debugfs.
 *  trace  (only when asked for; scripts/profile-call) kind 4k: 256 warm-up
 *         MAP_DMA/UNMAP_DMA pairs of one base page at one IOVA, then
 *         tcalls pairs each wrapped in tracefs tracing_on 1/0 with
 *         trace_marker lines "prof map N" / "prof unmap N" first, so that
 *         a function_graph tracer set up by the caller records exactly one
 *         4 KiB MAP_DMA and one UNMAP_DMA at a time (the vIOMMU pattern).
 *  sample (only when asked for; scripts/profile-call) kind 4k: where the
 *         kernel's time goes in 4 KiB MAP_DMA and UNMAP_DMA calls, by
 *         sampling: 1024 mappings held, then srounds times scalls MAPs of
 *         one page each at fresh IOVAs, then their UNMAPs one by one, each
 *         phase under its own perf cpu-clock event (20 kHz, kernel only,
 *         this process). Per phase: "res ... sec=sample kind=map|unmap
 *         x=calls samples=N us_per_call=T" and one line per symbol,
 *         "sym backend=... phase=... n=COUNT name=SYMBOL" (from
 *         /proc/kallsyms, most samples first).
 *
 * The backend is $VFIO_BACKEND_MODULE; bench checks that its refcnt is > 0
 * once the container is set up and that the other type1 module does not
 * hold it. Any failed ioctl or setup step aborts with exit status 1.
 */
#include <stdarg.h>
#include <time.h>
#include <sys/uio.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include "fixture.h"

#define BENCH_IOVA IOVA_1G
#define COUNT_IOVA 0x100000000ULL	/* 4 GiB: count sweep mappings start here */
#define MAX_ROUNDS 100
#define MAX_LIST 16

static void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_msg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		die_msg("clock_gettime: %s", strerror(errno));
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- options ------------------------------------------------------------- */

static struct {
	char sections[64], kinds[64], cpages[32];
	long sizes[MAX_LIST], counts[MAX_LIST];
	int nsizes, ncounts;
	int rounds, crounds, crounds_small, drounds, krounds, floor, cbufs;
	long dirty_mib, kmem_mib;
	int tcalls, scalls, srounds;
	char skind[16];
	long smib;
} opt = {
	.sections = "size,count,dirty,kmem", .kinds = "4k,thp,hugetlb", .cpages = "4k,2m",
	.sizes = { 2, 32, 256, 1024, 2048 }, .nsizes = 5,
	.counts = { 1, 1024, 16384, 65535 }, .ncounts = 4,
	.rounds = 3, .crounds = 1, .crounds_small = 5, .drounds = 3, .krounds = 1, .floor = 1, .cbufs = 8,
	.dirty_mib = 1024, .kmem_mib = 1024, .tcalls = 3,
	.scalls = 16384, .srounds = 4, .skind = "4k", .smib = 256,
};

static int parse_list(const char *s, long *out)
{
	char buf[256], *c, *save;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (c = strtok_r(buf, ",", &save); c && n < MAX_LIST; c = strtok_r(NULL, ",", &save))
		out[n++] = atol(c);
	return n;
}

static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *v = strchr(argv[i], '=');

		if (!v)
			die_msg("argument '%s' is not KEY=VALUE (see the header of bench.c)", argv[i]);
		*v++ = 0;
		if (!strcmp(argv[i], "sections"))
			snprintf(opt.sections, sizeof(opt.sections), "%s", v);
		else if (!strcmp(argv[i], "kinds"))
			snprintf(opt.kinds, sizeof(opt.kinds), "%s", v);
		else if (!strcmp(argv[i], "cpages"))
			snprintf(opt.cpages, sizeof(opt.cpages), "%s", v);
		else if (!strcmp(argv[i], "sizes"))
			opt.nsizes = parse_list(v, opt.sizes);
		else if (!strcmp(argv[i], "counts"))
			opt.ncounts = parse_list(v, opt.counts);
		else if (!strcmp(argv[i], "rounds"))
			opt.rounds = atoi(v);
		else if (!strcmp(argv[i], "crounds"))
			opt.crounds = atoi(v);
		else if (!strcmp(argv[i], "crounds_small"))
			opt.crounds_small = atoi(v);
		else if (!strcmp(argv[i], "drounds"))
			opt.drounds = atoi(v);
		else if (!strcmp(argv[i], "krounds"))
			opt.krounds = atoi(v);
		else if (!strcmp(argv[i], "floor"))
			opt.floor = atoi(v);
		else if (!strcmp(argv[i], "cbufs"))
			opt.cbufs = atoi(v);
		else if (!strcmp(argv[i], "dirty_mib"))
			opt.dirty_mib = atol(v);
		else if (!strcmp(argv[i], "kmem_mib"))
			opt.kmem_mib = atol(v);
		else if (!strcmp(argv[i], "tcalls"))
			opt.tcalls = atoi(v);
		else if (!strcmp(argv[i], "scalls"))
			opt.scalls = atoi(v);
		else if (!strcmp(argv[i], "srounds"))
			opt.srounds = atoi(v);
		else if (!strcmp(argv[i], "skind"))
			snprintf(opt.skind, sizeof(opt.skind), "%s", v);
		else if (!strcmp(argv[i], "smib"))
			opt.smib = atol(v);
		else
			die_msg("unknown option '%s'", argv[i]);
	}
	if (opt.rounds < 1 || opt.rounds > MAX_ROUNDS || opt.crounds < 1 ||
	    opt.crounds > MAX_ROUNDS || opt.crounds_small < 1 ||
	    opt.crounds_small > MAX_ROUNDS || opt.drounds < 1 || opt.drounds > MAX_ROUNDS ||
	    opt.krounds < 1 || opt.krounds > MAX_ROUNDS || opt.tcalls < 1 ||
	    opt.tcalls > MAX_ROUNDS || opt.srounds < 1 || opt.srounds > MAX_ROUNDS)
		die_msg("rounds, tcalls and srounds must be 1..%d", MAX_ROUNDS);
	if (opt.scalls < 1 || opt.scalls > 65535 - 1024)
		die_msg("scalls must be 1..%d", 65535 - 1024);
	for (int i = 0; i < opt.nsizes; i++)
		if (opt.sizes[i] < 2 || opt.sizes[i] % 2)
			die_msg("size %ld MiB: sizes must be even and >= 2", opt.sizes[i]);
	for (int i = 0; i < opt.ncounts; i++)
		if (opt.counts[i] < 1 || opt.counts[i] > 65535)
			die_msg("count %ld: counts must be 1..65535", opt.counts[i]);
	if (opt.cbufs < 1 || opt.dirty_mib < 2 || opt.dirty_mib % 2 || opt.kmem_mib < 2 ||
	    opt.kmem_mib % 2)
		die_msg("cbufs >= 1, dirty_mib and kmem_mib even and >= 2");
}

/* ---- container and memory ------------------------------------------------ */

/* Opens the container on the first single-device group, TYPE1v2, and checks
 * that the backend under test serves it. */
static int open_container(int *groupp)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	const char *other = strcmp(backend_module(), "vfio_iommu_type1") ?
			    "vfio_iommu_type1" : "vfio_iommu_type1_rs";
	int container, group, ref;
	long r;

	if (!g)
		die_msg("no single-device VFIO group on vfio-pci");
	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die_msg("open /dev/vfio/vfio: %s", strerror(errno));
	r = xioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
	if (r != 1)
		die_msg("VFIO_CHECK_EXTENSION(TYPE1v2) = %ld", r);
	group = vfio_group_attach(container, g->id, VFIO_TYPE1v2_IOMMU);
	if (group < 0)
		die_msg("group %d: open, SET_CONTAINER or SET_IOMMU(TYPE1v2): %s", g->id,
			strerror(-group));
	ref = backend_refcnt();
	if (ref <= 0)
		die_msg("backend %s does not serve the container (refcnt %d)",
			backend_module(), ref);
	if (sysfs_module_refcnt(other) > 0)
		die_msg("%s is loaded and in use (refcnt %d): which backend serves is unclear",
			other, sysfs_module_refcnt(other));
	printf("# backend %s refcnt %d, group %d (%s)\n", backend_module(), ref, g->id,
	       g->dev[0]);
	*groupp = group;
	return container;
}

/* Reads the bracketed choice of a sysfs "a [b] c" file into out. */
static int sysfs_choice(const char *path, char *out, size_t len)
{
	char buf[128], *a, *b;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	a = strchr(buf, '[');
	b = a ? strchr(a, ']') : NULL;
	if (!b)
		return -1;
	*b = 0;
	snprintf(out, len, "%s", a + 1);
	return 0;
}

/* AnonHugePages of this process, in kB; -1 if unknown. */
static long anon_huge_kb(void)
{
	char line[256];
	long sum = -1, v;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &v) == 1)
			sum = (sum < 0 ? 0 : sum) + v;
	fclose(f);
	return sum;
}

static void thp_madvise_mode(void)
{
	const char *path = "/sys/kernel/mm/transparent_hugepage/enabled";
	char mode[32];

	if (sysfs_choice(path, mode, sizeof(mode)))
		die_msg("thp: cannot read %s (THP not built in?)", path);
	if (strcmp(mode, "always") && strcmp(mode, "madvise")) {
		if (write_str(path, "madvise"))
			die_msg("thp: THP is '%s' and writing 'madvise' to %s failed", mode, path);
		printf("# THP was '%s', set to 'madvise'\n", mode);
	}
}

/* The 2 MiB hugetlb pool by its own control: /proc/sys/vm/nr_hugepages is
 * the default size's, 512 MiB with 64 KiB pages. */
#define HUGE_2M_NR "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

/* A buffer of one kind, touched; NULL with *why set if it cannot be had. */
struct buf {
	void *p;
	uint64_t size;
	long hugetlb_before;	/* nr_hugepages to restore, or -1 */
};

static bool buf_alloc(struct buf *b, const char *kind, uint64_t size, char *why, size_t wlen)
{
	b->p = NULL;
	b->size = size;
	b->hugetlb_before = -1;
	if (!strcmp(kind, "4k")) {
		b->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b->p == MAP_FAILED)
			die_msg("4k: mmap %llu bytes: %s", (unsigned long long)size, strerror(errno));
		if (madvise(b->p, size, MADV_NOHUGEPAGE))
			die_msg("4k: madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	} else if (!strcmp(kind, "thp")) {
		thp_madvise_mode();
		b->p = mmap_aligned(size, thp_size() ? thp_size() : SZ_2M, PROT_READ | PROT_WRITE);
		if (!b->p)
			die_msg("thp: mmap %llu bytes: %s", (unsigned long long)size, strerror(errno));
		if (madvise(b->p, size, MADV_HUGEPAGE))
			die_msg("thp: madvise(MADV_HUGEPAGE): %s", strerror(errno));
	} else if (!strcmp(kind, "hugetlb")) {
		long want = size / SZ_2M + 4, before = read_long(HUGE_2M_NR), got;
		const char *path = HUGE_2M_NR;

		if (!hugetlb_size_offered(SZ_2M)) {
			snprintf(why, wlen, "the kernel offers no 2 MiB hugetlb pages");
			return false;
		}
		if (before < 0) {
			snprintf(why, wlen, "cannot read %s", path);
			return false;
		}
		if (before < want && write_long(path, want)) {
			snprintf(why, wlen, "cannot write %ld to %s", want, path);
			return false;
		}
		got = read_long(path);
		if (got < want) {
			snprintf(why, wlen, "only %ld of %ld 2 MiB huge pages available", got, want);
			write_long(path, before);
			return false;
		}
		b->hugetlb_before = before;
		b->p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
		if (b->p == MAP_FAILED) {
			snprintf(why, wlen, "mmap(MAP_HUGETLB|MAP_HUGE_2MB): %s", strerror(errno));
			write_long(path, before);
			return false;
		}
	} else {
		die_msg("unknown kind '%s' (4k, thp, hugetlb)", kind);
	}
	memset(b->p, 0x5a, size);
	if (strcmp(kind, "hugetlb"))
		printf("# kind=%s size=%llu MiB AnonHugePages=%ld kB\n", kind,
		       (unsigned long long)size >> 20, anon_huge_kb());
	return true;
}

static void buf_free(struct buf *b)
{
	if (munmap(b->p, b->size))
		die_msg("munmap: %s", strerror(errno));
	if (b->hugetlb_before >= 0 && write_long(HUGE_2M_NR, b->hugetlb_before))
		die_msg("cannot restore nr_hugepages to %ld", b->hugetlb_before);
}

#define RES(sec, kind, x) printf("res backend=%s sec=%s kind=%s x=%ld", backend_module(), \
				 sec, kind, (long)(x))

/* ---- the pin-only floor -------------------------------------------------- */

static long io_uring_setup_raw(unsigned entries, struct io_uring_params *p)
{
	long r = syscall(__NR_io_uring_setup, entries, p);

	return r < 0 ? -errno : r;
}

static long io_uring_register_raw(int fd, unsigned op, void *arg, unsigned nr)
{
	long r = syscall(__NR_io_uring_register, fd, op, arg, nr);

	return r < 0 ? -errno : r;
}

/* The ring used to register buffers: fd, or -errno (reason in why). */
static int ring_fd = -2;
static char ring_why[128];

static int floor_ring(void)
{
	struct io_uring_params p;
	long r;

	if (ring_fd != -2)
		return ring_fd;
	memset(&p, 0, sizeof(p));
	r = io_uring_setup_raw(1, &p);
	if (r == -ENOSYS)
		snprintf(ring_why, sizeof(ring_why), "unavailable: CONFIG_IO_URING off");
	else if (r < 0)
		snprintf(ring_why, sizeof(ring_why), "unavailable: io_uring_setup: %s",
			 strerror(-r));
	ring_fd = r;
	return ring_fd;
}

/* io_uring limits one registered buffer to 1 GiB: one iovec a GiB. */
static long floor_iouring_pin(void *p, uint64_t size)
{
	struct iovec iov[64];
	unsigned n = 0;

	for (uint64_t off = 0; off < size && n < 64; off += SZ_1G, n++) {
		iov[n].iov_base = (char *)p + off;
		iov[n].iov_len = size - off < SZ_1G ? size - off : SZ_1G;
	}
	return io_uring_register_raw(ring_fd, IORING_REGISTER_BUFFERS, iov, n);
}

struct pinfloor_req {
	uint64_t vaddr;
	uint64_t size;
};

#define PINFLOOR_PIN	_IOW('p', 1, struct pinfloor_req)
#define PINFLOOR_UNPIN	_IO('p', 2)
#define PINFLOOR_DEV	"/dev/vfio_rs_pinfloor"

static void floor_cells(const char *kind, struct buf *b)
{
	double tpin[MAX_ROUNDS], tunpin[MAX_ROUNDS], t0;
	int pf = open(PINFLOOR_DEV, O_RDWR);
	long r;

	floor_ring();
	for (int s = 0; s < opt.nsizes; s++) {
		uint64_t size = (uint64_t)opt.sizes[s] << 20;

		RES("floor-iouring", kind, opt.sizes[s]);
		if (ring_fd < 0) {
			printf(" note=%s\n", ring_why);
		} else {
			for (int i = 0; i < opt.rounds; i++) {
				t0 = now();
				r = floor_iouring_pin(b->p, size);
				tpin[i] = now() - t0;
				if (r)
					die_msg("floor %s %ld MiB: IORING_REGISTER_BUFFERS: %s", kind,
						opt.sizes[s], strerror(-r));
				t0 = now();
				r = io_uring_register_raw(ring_fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
				tunpin[i] = now() - t0;
				if (r)
					die_msg("IORING_UNREGISTER_BUFFERS: %s", strerror(-r));
			}
			printf(" pin_s=%.6f unpin_s=%.6f\n", median(tpin, opt.rounds),
			       median(tunpin, opt.rounds));
		}
		RES("floor-pinmod", kind, opt.sizes[s]);
		if (pf < 0) {
			printf(" note=unavailable: %s: %s\n", PINFLOOR_DEV, strerror(errno));
			continue;
		}
		for (int i = 0; i < opt.rounds; i++) {
			struct pinfloor_req req = { (uintptr_t)b->p, size };
			long pins0 = pins_outstanding();

			t0 = now();
			r = xioctl(pf, PINFLOOR_PIN, (unsigned long)&req);
			tpin[i] = now() - t0;
			if (r)
				die_msg("floor %s %ld MiB: PINFLOOR_PIN: %s", kind, opt.sizes[s],
					strerror(-r));
			if (pins0 != LONG_MIN && pins_outstanding() - pins0 != (long)(size / PG))
				die_msg("floor %s: %ld pages pinned, expected %llu", kind,
					pins_outstanding() - pins0, (unsigned long long)(size / PG));
			t0 = now();
			r = xioctl(pf, PINFLOOR_UNPIN, 0);
			tunpin[i] = now() - t0;
			if (r)
				die_msg("PINFLOOR_UNPIN: %s", strerror(-r));
		}
		printf(" pin_s=%.6f unpin_s=%.6f\n", median(tpin, opt.rounds),
		       median(tunpin, opt.rounds));
	}
	if (pf >= 0)
		close(pf);
	fflush(stdout);
}

/* ---- size sweep ------------------------------------------------------------ */

static void size_cell(int container, const char *kind, void *p, long mib)
{
	double tmap[MAX_ROUNDS], tunmap[MAX_ROUNDS], t0;
	uint64_t size = (uint64_t)mib << 20, unmapped;
	long pins0 = pins_outstanding(), pins, r;

	for (int i = 0; i < opt.rounds; i++) {
		t0 = now();
		r = dma_map(container, BENCH_IOVA, p, size, DMA_RW);
		tmap[i] = now() - t0;
		if (r)
			die_msg("size %s %ld MiB round %d: MAP_DMA: %s", kind, mib, i, strerror(-r));
		/* Not timed: every page is pinned once while mapped, and
		 * unpinned when UNMAP_DMA returns (nothing deferred). */
		pins = pins_outstanding();
		if (pins0 != LONG_MIN && pins - pins0 != (long)(size / PG))
			die_msg("size %s %ld MiB round %d: %ld pages pinned after MAP_DMA, expected %llu",
				kind, mib, i, pins - pins0, (unsigned long long)(size / PG));
		unmapped = UINT64_MAX;
		t0 = now();
		r = dma_unmap(container, BENCH_IOVA, size, 0, &unmapped);
		tunmap[i] = now() - t0;
		if (r)
			die_msg("size %s %ld MiB round %d: UNMAP_DMA: %s", kind, mib, i, strerror(-r));
		if (unmapped != size)
			die_msg("size %s %ld MiB: UNMAP_DMA unmapped %llu bytes", kind, mib,
				(unsigned long long)unmapped);
		pins = pins_outstanding();
		if (pins0 != LONG_MIN && pins != pins0)
			die_msg("size %s %ld MiB: %ld pins outstanding after UNMAP_DMA, expected %ld",
				kind, mib, pins, pins0);
	}
	printf("# size kind=%s %ld MiB map_s=", kind, mib);
	for (int i = 0; i < opt.rounds; i++)
		printf("%s%.5f", i ? "," : "", tmap[i]);
	printf(" unmap_s=");
	for (int i = 0; i < opt.rounds; i++)
		printf("%s%.5f", i ? "," : "", tunmap[i]);
	printf("\n");
	RES("size", kind, mib);
	printf(" map_s=%.6f unmap_s=%.6f\n", median(tmap, opt.rounds), median(tunmap, opt.rounds));
	fflush(stdout);
}

static void section_size(int container)
{
	static const char *const kinds[] = { "4k", "thp", "hugetlb" };
	long max = 0;

	for (int s = 0; s < opt.nsizes; s++)
		max = opt.sizes[s] > max ? opt.sizes[s] : max;
	for (unsigned k = 0; k < 3; k++) {
		struct buf b;
		char why[128];

		if (!in_list(opt.kinds, kinds[k]))
			continue;
		if (!buf_alloc(&b, kinds[k], (uint64_t)max << 20, why, sizeof(why))) {
			for (int s = 0; s < opt.nsizes; s++) {
				RES("size", kinds[k], opt.sizes[s]);
				printf(" note=skipped: %s\n", why);
				if (opt.floor) {
					RES("floor-iouring", kinds[k], opt.sizes[s]);
					printf(" note=skipped: %s\n", why);
					RES("floor-pinmod", kinds[k], opt.sizes[s]);
					printf(" note=skipped: %s\n", why);
				}
			}
			continue;
		}
		for (int s = 0; s < opt.nsizes; s++)
			size_cell(container, kinds[k], b.p, opt.sizes[s]);
		if (opt.floor)
			floor_cells(kinds[k], &b);
		buf_free(&b);
	}
}

/* ---- count sweep ------------------------------------------------------------ */

static void count_cell(int container, const char *kind, char *p, uint64_t msize, int nbufs,
		       long n)
{
	double tmap[MAX_ROUNDS], tun1[MAX_ROUNDS], tunall[MAX_ROUNDS], t0;
	long pins0 = pins_outstanding(), r;
	int rounds = n < 16384 ? opt.crounds_small : opt.crounds;
	uint64_t unmapped;

	for (int i = 0; i < rounds; i++) {
		for (int pass = 0; pass < 2; pass++) {
			t0 = now();
			for (long m = 0; m < n; m++) {
				r = dma_map(container, COUNT_IOVA + m * msize, p + (m % nbufs) * msize,
					    msize, DMA_RW);
				if (r)
					die_msg("count %s n=%ld: MAP_DMA #%ld: %s", kind, n, m,
						strerror(-r));
			}
			if (pass == 0)
				tmap[i] = now() - t0;
			if (pins0 != LONG_MIN &&
			    pins_outstanding() - pins0 != (long)(n * (msize / PG)))
				die_msg("count %s n=%ld: %ld pages pinned, expected %ld", kind, n,
					pins_outstanding() - pins0, (long)(n * (msize / PG)));
			t0 = now();
			if (pass == 0) {
				for (long m = 0; m < n; m++) {
					r = dma_unmap(container, COUNT_IOVA + m * msize, msize, 0,
						      &unmapped);
					if (r || unmapped != msize)
						die_msg("count %s n=%ld: UNMAP_DMA #%ld: %s, %llu bytes",
							kind, n, m, strerror(-r),
							(unsigned long long)unmapped);
				}
				tun1[i] = now() - t0;
			} else {
				r = dma_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &unmapped);
				tunall[i] = now() - t0;
				if (r || unmapped != n * msize)
					die_msg("count %s n=%ld: UNMAP_DMA(ALL): %s, %llu bytes", kind,
						n, strerror(-r), (unsigned long long)unmapped);
			}
			if (pins0 != LONG_MIN && pins_outstanding() != pins0)
				die_msg("count %s n=%ld: %ld pins outstanding after unmap", kind, n,
					pins_outstanding() - pins0);
		}
	}
	RES("count", kind, n);
	printf(" map_us=%.3f unmap1_us=%.3f unmapall_us=%.3f\n", median(tmap, rounds) / n * 1e6,
	       median(tun1, rounds) / n * 1e6, median(tunall, rounds) / n * 1e6);
	fflush(stdout);
}

static void section_count(int container)
{
	long max = 0;

	for (int c = 0; c < opt.ncounts; c++)
		max = opt.counts[c] > max ? opt.counts[c] : max;
	if (in_list(opt.cpages, "4k")) {
		/* Distinct pages up to 256 MiB (65535 with 4 KiB pages, so
		 * all distinct there), then reused: 65535 distinct 64 KiB
		 * pages would need 4 GiB. */
		long npg = max < (long)((256ULL << 20) / PG) ? max : (long)((256ULL << 20) / PG);
		struct buf b;
		char why[128];

		buf_alloc(&b, "4k", npg * PG, why, sizeof(why));
		printf("# count kind=4k: mappings of one %llu KiB page, %ld distinct pages\n",
		       (unsigned long long)(PG >> 10), npg);
		for (int c = 0; c < opt.ncounts; c++)
			count_cell(container, "4k", b.p, PG, npg, opt.counts[c]);
		buf_free(&b);
	}
	if (in_list(opt.cpages, "2m")) {
		/* 2 MiB of contiguous memory per mapping: THP where that is
		 * the THP size, else 2 MiB hugetlb pages (with 64 KiB pages a
		 * THP is 512 MiB; 2 MiB are contiguous PTEs). */
		const char *kind = thp_size() == SZ_2M ? "thp" : "hugetlb";
		struct buf b;
		char why[128];

		if (!buf_alloc(&b, kind, opt.cbufs * SZ_2M, why, sizeof(why))) {
			for (int c = 0; c < opt.ncounts; c++) {
				RES("count", "2m", opt.counts[c]);
				printf(" note=skipped: %s\n", why);
			}
			return;
		}
		printf("# count kind=2m: %d buffers of 2 MiB %s (AnonHugePages %ld kB), each mapped at many IOVAs\n",
		       opt.cbufs, kind, anon_huge_kb());
		for (int c = 0; c < opt.ncounts; c++)
			count_cell(container, "2m", b.p, SZ_2M, opt.cbufs, opt.counts[c]);
		buf_free(&b);
	}
}

/* ---- one traced call at a time ---------------------------------------------- */

static int tracefs_open(const char *name)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/tracing/%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		die_msg("open %s: %s", path, strerror(errno));
	return fd;
}

static void fd_puts(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		die_msg("tracefs write '%s': %s", s, strerror(errno));
}

/* One 4 KiB MAP_DMA or UNMAP_DMA between tracing_on 1 and 0. */
static void traced_call(int container, int on, int marker, bool map, void *p, int n)
{
	uint64_t unmapped = 0;
	char line[64];
	long r;

	snprintf(line, sizeof(line), "prof %s %d\n", map ? "map" : "unmap", n);
	fd_puts(on, "1");
	fd_puts(marker, line);
	r = map ? dma_map(container, COUNT_IOVA, p, PG, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
		: dma_unmap(container, COUNT_IOVA, PG, 0, &unmapped);
	fd_puts(on, "0");
	if (r || (!map && unmapped != PG))
		die_msg("traced %s: %ld", map ? "MAP_DMA" : "UNMAP_DMA", r);
}

static void section_trace(int container)
{
	int on = tracefs_open("tracing_on"), marker = tracefs_open("trace_marker");
	struct buf b;
	char why[128];

	if (!buf_alloc(&b, "4k", PG, why, sizeof(why)))
		die_msg("trace: %s", why);
	for (int i = 0; i < 256; i++) {
		if (dma_map(container, COUNT_IOVA, b.p, PG,
			    VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) ||
		    dma_unmap(container, COUNT_IOVA, PG, 0, NULL))
			die_msg("trace warm-up: MAP/UNMAP failed");
	}
	for (int n = 0; n < opt.tcalls; n++) {
		traced_call(container, on, marker, true, b.p, n);
		traced_call(container, on, marker, false, b.p, n);
	}
	RES("trace", "4k", opt.tcalls);
	printf(" traced=%d\n", 2 * opt.tcalls);
	buf_free(&b);
	close(on);
	close(marker);
}

/* ---- sampled calls ------------------------------------------------------------ */

struct ksym {
	unsigned long addr;
	bool vfio;		/* in a vfio module ([vfio...] in kallsyms) */
	char name[112];
};

static struct ksym *ksyms;
static int nksyms;

static int cmp_ksym(const void *a, const void *b)
{
	unsigned long x = ((const struct ksym *)a)->addr, y = ((const struct ksym *)b)->addr;

	return x < y ? -1 : x > y;
}

/* The text symbols of /proc/kallsyms (modules' too), sorted by address. */
static void load_kallsyms(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[512], type, name[112], mod[64];
	unsigned long addr;
	int cap = 0, nf;

	if (!f)
		die_msg("open /proc/kallsyms: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		nf = sscanf(line, "%lx %c %111s %63s", &addr, &type, name, mod);
		if (nf < 3 || !addr || (type != 't' && type != 'T'))
			continue;
		if (nksyms == cap) {
			cap = cap ? 2 * cap : 65536;
			ksyms = realloc(ksyms, cap * sizeof(*ksyms));
			if (!ksyms)
				die_msg("out of memory for kallsyms");
		}
		ksyms[nksyms].addr = addr;
		ksyms[nksyms].vfio = nf == 4 && !strncmp(mod, "[vfio", 5);
		snprintf(ksyms[nksyms].name, sizeof(ksyms[nksyms].name), "%s", name);
		nksyms++;
	}
	fclose(f);
	if (!nksyms)
		die_msg("/proc/kallsyms shows no addresses (kptr_restrict?)");
	qsort(ksyms, nksyms, sizeof(*ksyms), cmp_ksym);
}

static int ksym_index(unsigned long ip)
{
	int lo = 0, hi = nksyms - 1;

	if (ip < ksyms[0].addr)
		return -1;
	while (lo < hi) {
		int mid = lo + (hi - lo + 1) / 2;

		if (ksyms[mid].addr <= ip)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

#define SAMPLE_DATA_PAGES 1024	/* 4 MiB of 16-byte samples */

struct sampler {
	int fd;
	struct perf_event_mmap_page *meta;
	size_t len;
};

static void sampler_open(struct sampler *sm)
{
	struct perf_event_attr a = {
		.size = sizeof(a), .type = PERF_TYPE_SOFTWARE, .config = PERF_COUNT_SW_CPU_CLOCK,
		.sample_period = 50000, .sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN,
		.disabled = 1, .exclude_user = 1, .exclude_hv = 1, .exclude_callchain_user = 1,
	};

	sm->fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
	if (sm->fd < 0)
		die_msg("perf_event_open(cpu-clock): %s", strerror(errno));
	sm->len = (SAMPLE_DATA_PAGES + 1) * (size_t)sysconf(_SC_PAGESIZE);
	sm->meta = mmap(NULL, sm->len, PROT_READ | PROT_WRITE, MAP_SHARED, sm->fd, 0);
	if (sm->meta == MAP_FAILED)
		die_msg("mmap perf ring: %s", strerror(errno));
}

/* Samples at each IP inside the backend's module (ours or C's), for a look
 * at the instructions: "ip backend=... phase=... n=... at=SYMBOL+0xOFF". */
#define MAX_HOT_IPS 8192
static struct {
	uint64_t ip;
	long n[2];
} hot_ips[MAX_HOT_IPS];
static int nhot_ips;

static void count_hot_ip(uint64_t ip, int phase)
{
	int k;

	for (k = 0; k < nhot_ips && hot_ips[k].ip != ip; k++)
		;
	if (k == nhot_ips) {
		if (nhot_ips == MAX_HOT_IPS)
			return;
		hot_ips[nhot_ips++].ip = ip;
	}
	hot_ips[k].n[phase]++;
}

static void report_hot_ips(int phase, const char *name)
{
	for (int shown = 0; shown < 60; shown++) {
		int best = -1, i;

		for (int k = 0; k < nhot_ips; k++)
			if (hot_ips[k].n[phase] && (best < 0 || hot_ips[k].n[phase] > hot_ips[best].n[phase]))
				best = k;
		if (best < 0)
			break;
		i = ksym_index(hot_ips[best].ip);
		printf("ip backend=%s phase=%s n=%ld at=%s+0x%lx\n", backend_module(), name,
		       hot_ips[best].n[phase], ksyms[i].name,
		       (unsigned long)(hot_ips[best].ip - ksyms[i].addr));
		hot_ips[best].n[phase] = 0;
	}
}

/* The innermost frame of a sample's kernel callchain in a vfio module (the
 * backend's function the time is spent under), or -1. */
static int vfio_frame(const char *rec, uint64_t nr)
{
	for (uint64_t k = 0; k < nr; k++) {
		uint64_t ip;
		int i;

		memcpy(&ip, rec + 8 * k, 8);
		if (ip >= (uint64_t)-4095)	/* PERF_CONTEXT_* markers */
			continue;
		i = ksym_index(ip);
		if (i >= 0 && ksyms[i].vfio)
			return i;
	}
	return -1;
}

/* Adds the ring's samples to counts (self, one per kallsyms entry) and
 * under (by the innermost vfio frame); returns how many. Records are copied
 * out first: one may wrap around the ring's end. */
static long sampler_drain(struct sampler *sm, long *counts, long *under, long *lost,
			  int phase)
{
	char *data = (char *)sm->meta + sm->meta->data_offset;
	uint64_t size = sm->meta->data_size, tail = sm->meta->data_tail;
	uint64_t head = __atomic_load_n(&sm->meta->data_head, __ATOMIC_ACQUIRE);
	long n = 0;

	while (tail < head) {
		struct perf_event_header h;
		uint64_t ip;

		static char rec[65536];

		memcpy(&h, data + tail % size, sizeof(h));
		if (!h.size)
			break;
		for (uint64_t k = 0; k < h.size; k++)
			rec[k] = data[(tail + k) % size];
		if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof(h) + 16) {
			uint64_t nr;
			int i;

			memcpy(&ip, rec + sizeof(h), 8);
			memcpy(&nr, rec + sizeof(h) + 8, 8);
			if (nr > (h.size - sizeof(h) - 16) / 8)
				nr = (h.size - sizeof(h) - 16) / 8;
			i = ksym_index(ip);
			if (i >= 0)
				counts[i]++;
			if (i >= 0 && ksyms[i].vfio)
				count_hot_ip(ip, phase);
			i = vfio_frame(rec + sizeof(h) + 16, nr);
			if (i >= 0)
				under[i]++;
			n++;
		} else if (h.type == PERF_RECORD_LOST) {
			(*lost)++;
		}
		tail += h.size;
	}
	__atomic_store_n(&sm->meta->data_tail, tail, __ATOMIC_RELEASE);
	return n;
}

static void sample_top(const char *what, const char *phase, long *counts)
{
	for (int shown = 0; shown < 40; shown++) {
		int best = -1;

		for (int i = 0; i < nksyms; i++)
			if (counts[i] && (best < 0 || counts[i] > counts[best]))
				best = i;
		if (best < 0)
			break;
		printf("%s backend=%s phase=%s n=%ld name=%s\n", what, backend_module(), phase,
		       counts[best], ksyms[best].name);
		counts[best] = 0;
	}
}

static void sample_report(const char *phase, long *counts, long *under, long total,
			  double secs, long calls)
{
	RES("sample", phase, calls);
	printf(" samples=%ld us_per_call=%.3f\n", total, secs / calls * 1e6);
	sample_top("sym", phase, counts);
	sample_top("under", phase, under);
}

/* One round of MAPs (phase 0) or UNMAPs (phase 1) sampled by fd: scalls
 * single pages after the held ones, or scalls / 64 times the whole big
 * buffer (each mapped and unmapped, only the phase's call sampled).
 * Returns the seconds the sampled calls took. */
static double sample_calls(int container, struct buf *b, bool big, int phase, int fd)
{
	uint64_t base = COUNT_IOVA + 1024 * PG, unmapped;
	long calls = big ? (opt.scalls + 63) / 64 : opt.scalls;
	double t = 0, t0 = 0;

	for (long m = 0; m < calls; m++) {
		uint64_t iova = big ? BENCH_IOVA : base + m * PG, size = big ? b->size : PG;
		void *va = big ? b->p : b->p + (1024 + m) * PG;

		for (int op = 0; op < 2; op++) {
			bool sampled = op == phase;

			if (!big && op != phase)
				continue;
			if (sampled && (big || m == 0)) {
				ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
				t0 = now();
			}
			if (op == 0 && dma_map(container, iova, va, size, DMA_RW))
				die_msg("sample: MAP_DMA #%ld failed", m);
			if (op == 1 && (dma_unmap(container, iova, size, 0, &unmapped) ||
					unmapped != size))
				die_msg("sample: UNMAP_DMA #%ld failed", m);
			if (sampled && (big || m == calls - 1)) {
				t += now() - t0;
				ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
			}
		}
	}
	return t;
}

static void section_sample(int container)
{
	bool big = strcmp(opt.skind, "4k");
	long npg = 1024 + opt.scalls, *cnt[2], *under[2], n[2] = { 0, 0 }, lost = 0;
	long calls = big ? (long)opt.srounds * ((opt.scalls + 63) / 64) : (long)opt.srounds * opt.scalls;
	double t[2] = { 0, 0 };
	struct sampler sm[2];
	struct buf held, b;
	char why[128];

	load_kallsyms();
	for (int p = 0; p < 2; p++) {
		cnt[p] = calloc(nksyms, sizeof(long));
		under[p] = calloc(nksyms, sizeof(long));
		if (!cnt[p] || !under[p])
			die_msg("out of memory for sample counts");
	}
	if (!buf_alloc(&held, "4k", npg * PG, why, sizeof(why)))
		die_msg("sample: %s", why);
	if (big && !buf_alloc(&b, opt.skind, (uint64_t)opt.smib << 20, why, sizeof(why)))
		die_msg("sample: %s", why);
	/* 1024 mappings held, as a guest with a vIOMMU has some. */
	for (long m = 0; m < 1024; m++)
		if (dma_map(container, COUNT_IOVA + m * PG, held.p + m * PG, PG, DMA_RW))
			die_msg("sample: MAP_DMA of the held mappings failed");
	sampler_open(&sm[0]);
	sampler_open(&sm[1]);
	for (int r = 0; r < opt.srounds; r++) {
		for (int p = 0; p < 2; p++) {
			t[p] += sample_calls(container, big ? &b : &held, big, p, sm[p].fd);
			n[p] += sampler_drain(&sm[p], cnt[p], under[p], &lost, p);
		}
	}
	if (lost)
		printf("# sample: %ld PERF_RECORD_LOST records\n", lost);
	printf("# sample: kind %s, %s per call\n", opt.skind, big ? "one mapping of smib MiB" : "one page");
	sample_report("map", cnt[0], under[0], n[0], t[0], calls);
	sample_report("unmap", cnt[1], under[1], n[1], t[1], calls);
	report_hot_ips(0, "map");
	report_hot_ips(1, "unmap");
	if (dma_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL))
		die_msg("sample: UNMAP_DMA(ALL) failed");
	if (big)
		buf_free(&b);
	buf_free(&held);
	for (int p = 0; p < 2; p++) {
		free(cnt[p]);
		free(under[p]);
	}
}

/* ---- dirty bitmap ------------------------------------------------------------ */

static long dirty_ctl(int container, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = sizeof(d), .flags = flags };

	return xioctl(container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&d);
}

static void section_dirty(int container)
{
	uint64_t size = (uint64_t)opt.dirty_mib << 20, npages = size / PG;
	size_t bmsize = (npages + 63) / 64 * 8;
	double tget[MAX_ROUNDS], tstart[MAX_ROUNDS], tstop[MAX_ROUNDS], t0;
	uint64_t *bitmap = calloc(1, bmsize);
	struct {
		struct vfio_iommu_type1_dirty_bitmap hdr;
		struct vfio_iommu_type1_dirty_bitmap_get get;
	} req;
	struct buf b;
	char why[128];
	long r;

	if (!bitmap)
		die_msg("dirty: calloc %zu", bmsize);
	buf_alloc(&b, "4k", size, why, sizeof(why));
	r = dma_map(container, BENCH_IOVA, b.p, size, DMA_RW);
	if (r)
		die_msg("dirty: MAP_DMA: %s", strerror(-r));
	/* Each round: START, one GET_BITMAP over the whole mapping, STOP. */
	for (int i = 0; i < opt.drounds; i++) {
		uint64_t set = 0;

		t0 = now();
		r = dirty_ctl(container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
		tstart[i] = now() - t0;
		if (r)
			die_msg("dirty: DIRTY_PAGES START: %s", strerror(-r));
		memset(&req, 0, sizeof(req));
		req.hdr.argsz = sizeof(req);
		req.hdr.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
		req.get.iova = BENCH_IOVA;
		req.get.size = size;
		req.get.bitmap.pgsize = PG;
		req.get.bitmap.size = bmsize;
		req.get.bitmap.data = (__u64 *)bitmap;
		memset(bitmap, 0, bmsize);
		t0 = now();
		r = xioctl(container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&req);
		tget[i] = now() - t0;
		if (r)
			die_msg("dirty: GET_BITMAP: %s", strerror(-r));
		for (size_t w = 0; w < bmsize / 8; w++)
			set += __builtin_popcountll(bitmap[w]);
		/* Pages mapped by a device that pins nothing are all dirty. */
		if (set != npages)
			die_msg("dirty: round %d: %llu of %llu pages dirty", i,
				(unsigned long long)set, (unsigned long long)npages);
		t0 = now();
		r = dirty_ctl(container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
		tstop[i] = now() - t0;
		if (r)
			die_msg("dirty: DIRTY_PAGES STOP: %s", strerror(-r));
	}
	r = dma_unmap(container, BENCH_IOVA, size, 0, NULL);
	if (r)
		die_msg("dirty: UNMAP_DMA: %s", strerror(-r));
	buf_free(&b);
	free(bitmap);
	RES("dirty", "4k", opt.dirty_mib);
	printf(" start_s=%.6f get_s=%.6f stop_s=%.6f\n", median(tstart, opt.drounds),
	       median(tget, opt.drounds), median(tstop, opt.drounds));
	fflush(stdout);
}

/* ---- kernel memory -------------------------------------------------------------- */

struct kmem {
	long slab_kb, vmalloc_kb, iommu_pages;
};

static void kmem_read(struct kmem *k)
{
	vmstat_refresh();
	k->slab_kb = meminfo_kb("Slab");
	k->vmalloc_kb = meminfo_kb("VmallocUsed");
	k->iommu_pages = vmstat_read("nr_iommu_pages");
}

/* Sum of run_record_bytes over every mapping in our debugfs view; -1 if none. */
static long record_bytes_sum(void)
{
	static char view[1 << 20];
	const char *key = "run_record_bytes ";
	long sum = -1;
	char *p = view;

	if (read_view(view, sizeof(view)))
		return -1;
	while ((p = strstr(p, key))) {
		p += strlen(key);
		sum = (sum < 0 ? 0 : sum) + strtol(p, NULL, 10);
	}
	return sum;
}

static void section_kmem(int container)
{
	uint64_t size = (uint64_t)opt.kmem_mib << 20, npages = size / PG;
	double slab[MAX_ROUNDS], vm[MAX_ROUNDS], pt[MAX_ROUNDS], tot[MAX_ROUNDS], rec[MAX_ROUNDS];
	double per_gib = (double)SZ_1G / size;
	bool have_rec = true, have_pt = true;
	struct buf b;
	char why[128];
	uint64_t x = 12345;
	long r;

	/* Fragmented: touch the pages in a scattered order (a permutation by a
	 * multiplier coprime to npages), so physically adjacent pages land at
	 * distant virtual addresses. */
	b.p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b.p == MAP_FAILED)
		die_msg("kmem: mmap: %s", strerror(errno));
	if (madvise(b.p, size, MADV_NOHUGEPAGE))
		die_msg("kmem: madvise: %s", strerror(errno));
	b.size = size;
	b.hugetlb_before = -1;
	(void)why;
	for (uint64_t i = 0; i < npages; i++) {
		x = (x * 2654435761ULL + 1) % npages;	/* LCG: full period when npages is 2^k */
		((char *)b.p)[(npages & (npages - 1) ? i : x) * PG] = 1;
	}
	memset(b.p, 0x5a, size);	/* anything x missed (npages not 2^k) */
	for (int i = 0; i < opt.krounds; i++) {
		struct kmem k0, k1;
		long recb;

		kmem_read(&k0);
		r = dma_map(container, BENCH_IOVA, b.p, size, DMA_RW);
		if (r)
			die_msg("kmem: MAP_DMA: %s", strerror(-r));
		kmem_read(&k1);
		recb = record_bytes_sum();
		r = dma_unmap(container, BENCH_IOVA, size, 0, NULL);
		if (r)
			die_msg("kmem: UNMAP_DMA: %s", strerror(-r));
		slab[i] = (k1.slab_kb - k0.slab_kb) * 1024.0 * per_gib;
		vm[i] = (k1.vmalloc_kb - k0.vmalloc_kb) * 1024.0 * per_gib;
		if (k0.iommu_pages < 0)
			have_pt = false;
		pt[i] = (k1.iommu_pages - k0.iommu_pages) * (double)sysconf(_SC_PAGESIZE) * per_gib;
		tot[i] = slab[i] + vm[i] + (have_pt ? pt[i] : 0);
		if (recb < 0)
			have_rec = false;
		rec[i] = recb * per_gib;
		printf("# kmem round %d: Slab %+ld kB, VmallocUsed %+ld kB, nr_iommu_pages %+ld, run_record_bytes %ld (%llu MiB mapped)\n",
		       i, k1.slab_kb - k0.slab_kb, k1.vmalloc_kb - k0.vmalloc_kb,
		       k1.iommu_pages - k0.iommu_pages, recb, (unsigned long long)opt.kmem_mib);
	}
	buf_free(&b);
	RES("kmem", "4k-frag", opt.kmem_mib);
	printf(" slab_B=%.0f vmalloc_B=%.0f", median(slab, opt.krounds), median(vm, opt.krounds));
	if (have_pt)
		printf(" iommupt_B=%.0f", median(pt, opt.krounds));
	printf(" total_B=%.0f", median(tot, opt.krounds));
	if (have_rec)
		printf(" record_B=%.0f", median(rec, opt.krounds));
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int container, group;

	parse_args(argc, argv);
	printf("# bench: sections %s\n", opt.sections);
	printf("# bench: page_size=%llu thp_size=%llu\n", (unsigned long long)PG,
	       (unsigned long long)thp_size());
	/* kmem first, in a container of its own: a fresh IOMMU domain, whose
	 * page tables hold nothing left over from other sections. */
	if (in_list(opt.sections, "kmem")) {
		container = open_container(&group);
		section_kmem(container);
		close(container);
		close(group);
	}
	container = open_container(&group);
	fflush(stdout);
	if (in_list(opt.sections, "size"))
		section_size(container);
	if (in_list(opt.sections, "count"))
		section_count(container);
	if (in_list(opt.sections, "dirty"))
		section_dirty(container);
	if (in_list(opt.sections, "trace"))
		section_trace(container);
	if (in_list(opt.sections, "sample"))
		section_sample(container);
	close(container);
	close(group);
	if (ring_fd >= 0)
		close(ring_fd);
	return 0;
}
