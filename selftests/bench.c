// SPDX-License-Identifier: GPL-2.0
/*
 * bench: VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA throughput for one large
 * range, against whichever backend serves new containers. Not a test (not in
 * run_tests.sh, not in `make check`): scripts/bench runs it in one VM boot
 * with the C module and with ours and compares the two. Under QEMU TCG only
 * such ratios mean anything.
 *
 *   bench [ROUNDS [SIZE_MIB [CASES]]]   defaults: 5 1024 4k,thp,hugetlb
 *
 * One container, one single-device group, TYPE1v2. For each case the buffer
 * is allocated and touched once, then mapped at IOVA 0x40000000 and unmapped
 * ROUNDS times; MAP_DMA and UNMAP_DMA are timed separately (CLOCK_MONOTONIC)
 * and the medians are printed, in MB/s (10^6 bytes), one line per case:
 *
 *   case=<4k|thp|hugetlb> backend=<module> map_MBps=<median> unmap_MBps=<median> rounds=N
 *
 * or "case=hugetlb skipped: <why>". Lines starting with '#' are details
 * (per-round times, how much of the buffer THP really covered). The backend
 * is $VFIO_BACKEND_MODULE; bench checks that its refcnt is > 0 once the
 * container is set up, and that the other type1 module does not hold it;
 * and (untimed, from /proc/vmstat's nr_foll_pin_*) that every page is pinned
 * after MAP_DMA and unpinned when UNMAP_DMA has returned.
 * Any failed ioctl or setup step aborts with exit status 1.
 */
#include <stdarg.h>
#include <time.h>
#include "fixture.h"

#define BENCH_IOVA IOVA_1G
#define MAX_ROUNDS 100

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

/* Opens the container on the first single-device group, TYPE1v2, and checks
 * that the backend under test serves it. */
static int open_container(void)
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
	/* The group fd stays open (leaked on purpose) until exit. */
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

static void run_case(int container, const char *name, void *buf, uint64_t size, int rounds)
{
	double tmap[MAX_ROUNDS], tunmap[MAX_ROUNDS], map_mbps[MAX_ROUNDS], unmap_mbps[MAX_ROUNDS];
	double t0;
	long pins0 = pins_outstanding(), pins, r;
	uint64_t unmapped;

	if (pins0 == LONG_MIN)
		printf("# case=%s no nr_foll_pin_* in /proc/vmstat: pins not checked\n", name);
	for (int i = 0; i < rounds; i++) {
		t0 = now();
		r = dma_map(container, BENCH_IOVA, buf, size, DMA_RW);
		tmap[i] = now() - t0;
		if (r)
			die_msg("case %s round %d: MAP_DMA(iova 0x%llx, %llu bytes): %s", name, i,
				BENCH_IOVA, (unsigned long long)size, strerror(-r));
		/* Not timed: every page is pinned once while mapped, and unpinned
		 * when UNMAP_DMA returns (nothing deferred). */
		pins = pins_outstanding();
		if (pins0 != LONG_MIN && pins - pins0 != (long)(size / SZ_4K))
			die_msg("case %s round %d: %ld pages pinned after MAP_DMA, expected %llu",
				name, i, pins - pins0, (unsigned long long)(size / SZ_4K));
		unmapped = UINT64_MAX;
		t0 = now();
		r = dma_unmap(container, BENCH_IOVA, size, 0, &unmapped);
		tunmap[i] = now() - t0;
		if (r)
			die_msg("case %s round %d: UNMAP_DMA: %s", name, i, strerror(-r));
		if (unmapped != size)
			die_msg("case %s round %d: UNMAP_DMA unmapped %llu bytes, not %llu", name,
				i, (unsigned long long)unmapped, (unsigned long long)size);
		pins = pins_outstanding();
		if (pins0 != LONG_MIN && pins != pins0)
			die_msg("case %s round %d: %ld pins outstanding after UNMAP_DMA, expected %ld",
				name, i, pins, pins0);
		map_mbps[i] = size / tmap[i] / 1e6;
		unmap_mbps[i] = size / tunmap[i] / 1e6;
	}
	printf("# case=%s map_s=", name);
	for (int i = 0; i < rounds; i++)
		printf("%s%.4f", i ? "," : "", tmap[i]);
	printf(" unmap_s=");
	for (int i = 0; i < rounds; i++)
		printf("%s%.4f", i ? "," : "", tunmap[i]);
	printf("\n");
	printf("case=%s backend=%s map_MBps=%.1f unmap_MBps=%.1f rounds=%d\n", name,
	       backend_module(), median(map_mbps, rounds), median(unmap_mbps, rounds), rounds);
	fflush(stdout);
}

static void case_4k(int container, uint64_t size, int rounds)
{
	void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		die_msg("case 4k: mmap %llu bytes: %s", (unsigned long long)size, strerror(errno));
	if (madvise(buf, size, MADV_NOHUGEPAGE))
		die_msg("case 4k: madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	memset(buf, 0x5a, size);
	printf("# case=4k AnonHugePages=%ld kB\n", anon_huge_kb());
	run_case(container, "4k", buf, size, rounds);
	if (munmap(buf, size))
		die_msg("case 4k: munmap: %s", strerror(errno));
}

static void case_thp(int container, uint64_t size, int rounds)
{
	const char *path = "/sys/kernel/mm/transparent_hugepage/enabled";
	char mode[32];
	void *buf;

	if (sysfs_choice(path, mode, sizeof(mode)))
		die_msg("case thp: cannot read %s (THP not built in?)", path);
	if (strcmp(mode, "always") && strcmp(mode, "madvise")) {
		if (write_str(path, "madvise"))
			die_msg("case thp: THP is '%s' and writing 'madvise' to %s failed", mode,
				path);
		printf("# case=thp THP was '%s', set to 'madvise'\n", mode);
	}
	buf = mmap_aligned(size, SZ_2M, PROT_READ | PROT_WRITE);
	if (!buf)
		die_msg("case thp: mmap %llu bytes: %s", (unsigned long long)size, strerror(errno));
	if (madvise(buf, size, MADV_HUGEPAGE))
		die_msg("case thp: madvise(MADV_HUGEPAGE): %s", strerror(errno));
	memset(buf, 0x5a, size);
	printf("# case=thp AnonHugePages=%ld kB of %llu kB\n", anon_huge_kb(),
	       (unsigned long long)size >> 10);
	run_case(container, "thp", buf, size, rounds);
	if (munmap(buf, size))
		die_msg("case thp: munmap: %s", strerror(errno));
}

static void case_hugetlb(int container, uint64_t size, int rounds)
{
	const char *path = "/proc/sys/vm/nr_hugepages";
	long want = size / SZ_2M + 4, before = read_long(path), got;
	void *buf;

	if (before < 0) {
		printf("case=hugetlb skipped: cannot read %s\n", path);
		return;
	}
	if (before < want && write_long(path, want)) {
		printf("case=hugetlb skipped: cannot write %ld to %s\n", want, path);
		return;
	}
	got = read_long(path);
	if (got < want) {
		printf("case=hugetlb skipped: only %ld of %ld 2 MiB huge pages available\n", got,
		       want);
		write_long(path, before);
		return;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (buf == MAP_FAILED) {
		printf("case=hugetlb skipped: mmap(MAP_HUGETLB|MAP_HUGE_2MB): %s\n",
		       strerror(errno));
		write_long(path, before);
		return;
	}
	memset(buf, 0x5a, size);
	run_case(container, "hugetlb", buf, size, rounds);
	if (munmap(buf, size))
		die_msg("case hugetlb: munmap: %s", strerror(errno));
	if (write_long(path, before))
		die_msg("case hugetlb: cannot restore %s to %ld", path, before);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	long size_mib = argc > 2 ? atol(argv[2]) : 1024;
	const char *cases = argc > 3 ? argv[3] : "4k,thp,hugetlb";
	uint64_t size = (uint64_t)size_mib << 20;
	char list[64], *c, *save;
	int container;

	if (rounds < 1 || rounds > MAX_ROUNDS || size_mib < 2 || size_mib % 2)
		die_msg("usage: bench [ROUNDS 1..%d [SIZE_MIB, even [CASES]]]", MAX_ROUNDS);
	container = open_container();
	printf("# bench: %d rounds of %ld MiB at iova 0x%llx, cases %s\n", rounds, size_mib,
	       BENCH_IOVA, cases);
	fflush(stdout);
	snprintf(list, sizeof(list), "%s", cases);
	for (c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
		if (!strcmp(c, "4k"))
			case_4k(container, size, rounds);
		else if (!strcmp(c, "thp"))
			case_thp(container, size, rounds);
		else if (!strcmp(c, "hugetlb"))
			case_hugetlb(container, size, rounds);
		else
			die_msg("unknown case '%s' (4k, thp, hugetlb)", c);
	}
	close(container);
	return 0;
}
