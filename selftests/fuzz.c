// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz: a deterministic, seeded differential fuzzer of the VFIO container
 * ioctl ABI (type1 backend).
 *
 *   fuzz --seed S --ops N --log FILE [--avoid NAME,...|all] [--trace]
 *
 * The backend under test is $VFIO_BACKEND_MODULE (its refcnt tells which
 * module serves each container: "served=1" after SET_IOMMU).
 *
 * From the seed, a splitmix64 stream generates N operations on one
 * container: VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, GET_INFO, MAP_DMA,
 * UNMAP_DMA (plain, ALL, VADDR, GET_DIRTY_BITMAP), DIRTY_PAGES, groups
 * joining and leaving (three edu groups, one test-mdev group), and the
 * emulated-IOMMU calls of the test mdev (pin/unpin/dma_rw). Arguments are
 * biased towards edge values (0, ~0, unaligned, wrapping sums, near 2^64 and
 * near the aperture ends, bad or read-only user pointers, odd argsz).
 *
 * Each op writes one canonical line to FILE: its arguments, its return
 * value (-errno) and every output field. Run once with each backend
 * (run_fuzz.sh), the two logs must be identical. Nothing in a line depends
 * on the run: user memory sits at fixed addresses (ASLR is turned off by
 * run_fuzz.sh) and is filled from the seed, and the model below is updated
 * only from observed results, so both runs generate the same next op as
 * long as all results so far were equal.
 *
 * The model (groups, mappings, tracking, driver pins) only biases the
 * generator and steers around the known C-module bugs (stale dirty bits:
 * report_trusted(); pins below a mapping: pin_iova_safe(),
 * map_iova_safe(); replay beyond the aperture: attach_aperture_safe());
 * it never predicts a result.
 *
 * --avoid NAME[,NAME] steers around differences between C and ours that
 * are already reported, so that a long run finds new ones (AVOID_*).
 *
 * --trace prints each op to stderr before running it, to find the op that
 * crashes a kernel. At the end the log gets the leak check: outstanding
 * FOLL_PIN pins (vs. the start), VmLck and the backend's refcnt after
 * everything is closed; the exit status is 2 if any is non-zero.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include "fixture.h"

/* Fixed user addresses, the same in every run (ASLR off). Below 2^39 so
 * they exist with any arm64 VA size. */
#define ARENA	0x4000000000ULL	/* user memory DMA is mapped from */
#define SCR	0x4100000000ULL	/* ioctl argument structs and bitmaps */
#define UNMAPPED_VA 0x4200000000ULL
#define KERNEL_VA 0xffff800000000000ULL

/* Arena layout in pages. */
enum {
	A_RW = 0, A_RW_N = 256,		/* read-write, filled from the seed */
	A_RO = 256, A_RO_N = 32,	/* filled, then PROT_READ */
	A_ZERO = 288, A_ZERO_N = 8,	/* PROT_READ, never touched: zero page */
	A_HOLE = 296,			/* unmapped */
	A_RW2 = 297, A_RW2_N = 16,	/* read-write, filled */
	A_NONE = 313,			/* PROT_NONE */
	A_END = 314,
};

/* Scratch layout in pages: argument structs, bitmaps, an unmapped guard
 * right after them (structs and bitmaps that run into it fault), a
 * read-only page for structs the kernel cannot write back to. */
enum { S_ARG = 0, S_BM = 2, S_BM_N = 10, S_GUARD = 12, S_RO = 13, S_END = 15 };

/* Most mappings go at IOVA_BASE (fixture.h) + up to IOVA_SPAN pages. */
#define IOVA_SPAN 256		/* pages */
#define MAXMAP 256
#define MAXPIN 128
#define NGROUPS 4
#define G_MDEV 3
/* Groups in play: NGROUPS, or the three edu groups where the kernel has no
 * mdev core (Debian's arm64 kernels): the mdev's calls are then never made,
 * on either backend. */
static int ngroups = NGROUPS;

/* --- PRNG ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static uint64_t rnd(uint64_t n)
{
	return rnd64() % n;
}

static bool chance(int percent)
{
	return rnd(100) < (uint64_t)percent;
}

/* Half of the ops take only plausible arguments (edge values compound:
 * an op with several random fields almost always fails at the first
 * check, and the container would never get deep into a state). */
static bool sane;

static void rnd_fill(void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd64();
}

static uint64_t fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* --- the log line ---------------------------------------------------------- */

static FILE *logfp;
static bool trace;
static int opno;
static char line[16384];
static size_t ll;

static void lp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void lp(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line + ll, sizeof(line) - ll, fmt, ap);
	va_end(ap);
	if (n > 0)
		ll = ll + n < sizeof(line) ? ll + n : sizeof(line) - 1;
}

static void lhex(const char *key, const void *p, size_t n)
{
	const uint8_t *b = p;

	lp(" %s=", key);
	for (size_t i = 0; i < n; i++)
		lp("%02x", b[i]);
}

static void lbegin(const char *name)
{
	ll = 0;
	line[0] = 0;
	lp("%d %s", opno, name);
}

/* Before the call: with --trace, the op goes to stderr unbuffered, so the
 * last line before a kernel crash names the op that caused it. */
static void lcall(void)
{
	if (trace)
		fprintf(stderr, "fuzz-trace: %s\n", line);
}

static void lend(void)
{
	fprintf(logfp, "%s\n", line);
}

/* --- the model --------------------------------------------------------------- */

struct mapping {
	uint64_t iova, size, vaddr;
	bool vinval;	/* vaddr invalidated (UNMAP_DMA FLAG_VADDR) */
	bool taint;	/* C's bitmap holds stale shifted bits (known C bug 1) */
};

struct group {
	int id;
	int fd;
	bool attached;
};

static struct {
	int container;
	bool iommu, v2, tracking;
	/* The mappings are not known exactly (an unmap failed half-way or
	 * reported another size than simulated): no dirty bitmap words are
	 * compared and no unaligned pin is made until they are known again. */
	bool uncertain;
	struct mapping m[MAXMAP];
	int n;
	struct group g[NGROUPS];
	struct trm_dev mdev;
	struct { uint64_t iova; int n; } pin[MAXPIN];	/* driver pins (a hint) */
	int npin;
	uint64_t aper[8][2];	/* IOVA ranges of the last GET_INFO */
	int naper;
	/* An IOMMU-backed group left while the container stayed: C's IOVA
	 * list is then [0, ~0] (vfio_iommu_aper_expand) and GET_INFO has an
	 * IOVA_RANGE capability even with only emulated groups left. */
	bool expanded;
} M;

/*
 * Differences between C and ours found by this fuzzer and reported; each
 * can be steered around (--avoid NAME,...) so that a long run finds new
 * ones. Drop a name once ours is fixed. The seeds/ops were found by
 * earlier versions of this generator (and with other --avoid sets), so
 * they may not reproduce now; each entry gives the shape.
 * Fixed in ours as of commit 54d4a77 (checked by re-running): aperture,
 * vaddr-end, vinval-remove, aper-errno, detach-dirty, attach-order,
 * bitmap-overflow. Still open there: pinned-dirty (x86_64 seed 2684683119
 * op 1473, no --avoid), unmap-efault (arm64 seed 1098597586 op 1408, no
 * --avoid).
 */
enum {
	/* After an IOMMU-backed group left a container that keeps an
	 * emulated group, C's GET_INFO reports IOVA_RANGE [0, ~0] (its
	 * vfio_iommu_aper_expand); ours has no IOVA_RANGE capability.
	 * Seed 1 op 57. Avoided: no GET_INFO in that state. */
	AVOID_APERTURE = 1 << 0,
	/* MAP_DMA with vaddr + size == 2^64 (vaddr 0xfffffffffffff000, size
	 * 0x1000): C EFAULT (pinning fails), ours EOVERFLOW. Seed 12 op 213.
	 * Avoided: no such vaddr. */
	AVOID_VADDR_END = 1 << 1,
	/* Unmapping (UNMAP ALL or a plain unmap) mappings whose vaddr was
	 * invalidated (UNMAP FLAG_VADDR): ours still refuses to attach a
	 * group afterwards (EBUSY), C attaches (its vaddr_invalid_count is
	 * dropped in vfio_remove_dma). Seed 10 op 931; random seed
	 * 2837524897 op 181. Avoided: no unmap removes an invalidated
	 * mapping. */
	AVOID_VINVAL_REMOVE = 1 << 2,
	/* A consequence of "aperture": attaching an IOMMU-backed group whose
	 * aperture excludes a mapping made after an IOMMU-backed group left
	 * (only the emulated group there): C's IOVA list is [0, ~0], so
	 * vfio_iommu_aper_conflict() finds the mapping: EINVAL; ours
	 * iommu_map()s it into the new domain: ERANGE, and on arm64 a kernel
	 * WARNING (io-pgtable-arm.c:599, iova beyond the input address
	 * size). x86_64 seed 15 op 388; arm64 random seed 3240206491 op
	 * 1825 (with --avoid all). Avoided: no IOMMU-backed group attaches
	 * then while a mapping reaches 2^39; -ERANGE is logged as -EINVAL.
	 * (In a container that never had an IOMMU-backed group C does the
	 * same as ours, WARNING included: see attach_aperture_safe().) */
	AVOID_APER_ERRNO = 1 << 3,
	/* Detaching an IOMMU-backed (non-pinned-scope) group while dirty
	 * tracking is on: C marks every page of every mapping dirty
	 * (vfio_iommu_populate_bitmap_full); ours does not. Seed 24 op
	 * 896, seed 20 op 507. Canonicalised: those mappings' reports are
	 * not compared until STOP. */
	AVOID_DETACH_DIRTY = 1 << 4,
	/* The same order difference as aper-errno: attaching an IOMMU-backed
	 * group to a container (emulated groups only) that holds a mapping
	 * outside the group's aperture and one whose vaddr cannot be pinned:
	 * C checks the aperture first (EINVAL), ours replays first (EFAULT).
	 * arm64 seed 47 op 811 (with --avoid all). Canonicalised: group_set
	 * -EFAULT is logged as -EINVAL when the container fd was passed. */
	AVOID_ATTACH_ORDER = 1 << 5,
	/* Ours panics (Rust add overflow in UserBitmap::validate) on a dirty
	 * report over a range reaching 2^64 with an odd bitmap pgsize:
	 * DIRTY GET_BITMAP iova=0 size=~0 pgsize=0x966d49e2a25dfa6f
	 * bmsize=8, x86_64 seed 106 op 866 (the known bitmap-size overflow).
	 * Avoided: dirty reports get size PAGE_SIZE when iova + size wraps
	 * or size >= 2^63. */
	AVOID_BITMAP_OVERFLOW = 1 << 6,
	/* A page pinned through the mdev at DIRTY START or at a dirty report
	 * and unpinned before the next report: C reports it dirty there
	 * (vfio_dma_populate_bitmap marks the pinned pages at START and
	 * again after each report), ours does not. Seen on UNMAP_DMA with
	 * GET_DIRTY_BITMAP, whose .dma_unmap notice makes the driver unpin
	 * before the report: seed 114 op 380 (x86_64 and arm64); pinned at
	 * START, unpinned (UNPIN, device close) before GET_BITMAP / unmap:
	 * arm64 seeds 3936772844 op 1524, 3159719575 op 1874.
	 * Canonicalised: a mapping with pins at START or at a report is not
	 * compared in later reports until STOP. */
	AVOID_PINNED_DIRTY = 1 << 7,
	/* UNMAP_DMA with GET_DIRTY_BITMAP into a bitmap the kernel cannot
	 * write, over several mappings of which a later one has mdev pins:
	 * C fails (EFAULT) at the first mapping's bitmap copy and leaves the
	 * later ones alone; ours has already sent the .dma_unmap notice for
	 * the pinned one (the driver unpinned 8 pages). arm64 seed
	 * 1098597586 op 1471. Avoided: no unwritable bitmap for a dirty
	 * unmap while the driver holds pins. */
	AVOID_UNMAP_EFAULT = 1 << 8,
	/* Linux 6.12's C module cannot find a mapping that ends at 2^64
	 * (vfio_find_dma() computes iova + size, which wraps to 0), and its
	 * UNMAP_DMA of a range ending there unmaps nothing (7.x fixed both;
	 * ours has neither bug). Its aperture check misses for the same
	 * reason: after an IOMMU-backed group left (IOVA list [0, ~0]), a
	 * group whose aperture excludes a mapping attaches and the driver
	 * refuses the replay (VT-d: EFAULT, "iommu width (39) is not
	 * sufficient"), where 7.x and ours answer EINVAL (x86_64 seed
	 * 747469790 op 235 on 6.12). Avoided: no MAP or UNMAP range ending
	 * at exactly 2^64, no attach then while a mapping reaches 2^39. On by
	 * itself where the kernel's type1 predates the fix (built without
	 * TYPE1_C_EOVERFLOW). */
	AVOID_TOP_END = 1 << 9,
	/* Linux 6.12's C module matches a driver pin to its page by exact
	 * iova (vfio_find_vpfn()), so a pin at an unaligned iova is counted
	 * twice in locked_vm when an IOMMU-backed group then attaches (the
	 * replay does not see it is pinned already), and that page stays
	 * accounted after everything is closed (VmLck 8 kB left, x86_64 seed
	 * 556127919 op 1667 on 6.12). 7.x looks pins up by range; ours too.
	 * Avoided: no unaligned pin while an IOMMU-backed group is attached,
	 * no such group attaches while one is held. On by itself where the
	 * kernel's type1 predates the fix (built without TYPE1_C_EOVERFLOW). */
	AVOID_UNALIGNED_VPFN = 1 << 10,
};

static const char *const avoid_names[] = { "aperture", "vaddr-end", "vinval-remove",
					   "aper-errno", "detach-dirty", "attach-order",
					   "bitmap-overflow", "pinned-dirty", "unmap-efault", "top-end",
					   "unaligned-vpfn" };
#ifdef TYPE1_C_EOVERFLOW
static unsigned int avoid;
#else
static unsigned int avoid = AVOID_TOP_END | AVOID_UNALIGNED_VPFN;
#endif

/* See AVOID_TOP_END: a range ending at 2^64 is moved so that it wraps
 * (both answer E_WRAP) or is unaligned (both EINVAL). */
static bool avoid_top_end(__u64 iova, __u64 size)
{
	return (avoid & AVOID_TOP_END) && size && iova + size == 0;
}

/* See AVOID_BITMAP_OVERFLOW. */
static void avoid_bitmap_overflow(__u64 iova, __u64 *size)
{
	if ((avoid & AVOID_BITMAP_OVERFLOW) && (iova + *size < iova || *size >> 63))
		*size = PG;
}

static const char *expected_module, *other_module;

static void model_forget_container(void)
{
	M.iommu = M.v2 = M.tracking = M.uncertain = M.expanded = false;
	M.n = 0;
	M.npin = 0;
}

static int nattached(void)
{
	int n = 0;

	for (int i = 0; i < ngroups; i++)
		n += M.g[i].attached;
	return n;
}

static bool iommu_groups_attached(void)
{
	for (int i = 0; i < ngroups; i++)
		if (i != G_MDEV && M.g[i].attached)
			return true;
	return false;
}

/* vfio core releases the container's IOMMU when its last group leaves. */
static void group_left(int i)
{
	M.g[i].attached = false;
	if (i != G_MDEV && M.iommu) {
		M.expanded = true;
		for (int k = 0; M.tracking && (avoid & AVOID_DETACH_DIRTY) && k < M.n; k++)
			M.m[k].taint = true;
	}
	if (!nattached())
		model_forget_container();
}

static void map_add(uint64_t iova, uint64_t size, uint64_t vaddr)
{
	int i;

	if (M.n == MAXMAP) {
		M.uncertain = true;
		return;
	}
	for (i = M.n; i > 0 && M.m[i - 1].iova > iova; i--)
		M.m[i] = M.m[i - 1];
	M.m[i] = (struct mapping){ .iova = iova, .size = size, .vaddr = vaddr };
	M.n++;
}

static void map_del(int i)
{
	memmove(&M.m[i], &M.m[i + 1], (M.n - i - 1) * sizeof(M.m[0]));
	M.n--;
}

static uint64_t map_end(const struct mapping *m)
{
	return m->iova + m->size - 1;
}

static bool overlaps(const struct mapping *m, uint64_t iova, uint64_t last)
{
	return m->iova <= last && map_end(m) >= iova;
}

/*
 * The mappings vfio_dma_do_unmap() (C) walks for [iova, last]: from the
 * first one overlapping the range while they start in it; v1 stops at one
 * starting below iova. Sets sel[i]; returns their total size.
 */
static uint64_t unmap_select(uint64_t iova, uint64_t last, bool v2, bool *sel)
{
	uint64_t total = 0;

	memset(sel, 0, M.n * sizeof(*sel));	/* v1 may stop early */
	for (int i = 0; i < M.n; i++) {
		if (map_end(&M.m[i]) < iova || M.m[i].iova > last)
			continue;
		if (!v2 && iova > M.m[i].iova)
			break;
		sel[i] = true;
		total += M.m[i].size;
	}
	return total;
}

/* --- user memory and argument placement ------------------------------------- */

static void *map_fixed(uint64_t addr, uint64_t len, int prot)
{
	void *p = mmap((void *)(uintptr_t)addr, len, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED || (uint64_t)(uintptr_t)p != addr) {
		fprintf(stderr, "fuzz: cannot map %#llx: %m\n", (unsigned long long)addr);
		exit(1);
	}
	/* Small pages only, so that page sizes never depend on the run. */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

static void memory_setup(void)
{
	map_fixed(ARENA, A_HOLE * PG, PROT_READ | PROT_WRITE);
	rnd_fill((void *)(uintptr_t)ARENA, A_ZERO * PG);
	mprotect((void *)(uintptr_t)(ARENA + A_RO * PG), (A_HOLE - A_RO) * PG, PROT_READ);
	map_fixed(ARENA + A_RW2 * PG, A_RW2_N * PG, PROT_READ | PROT_WRITE);
	rnd_fill((void *)(uintptr_t)(ARENA + A_RW2 * PG), A_RW2_N * PG);
	map_fixed(ARENA + A_NONE * PG, PG, PROT_NONE);
	map_fixed(SCR, S_GUARD * PG, PROT_READ | PROT_WRITE);
	map_fixed(SCR + S_RO * PG, PG, PROT_READ);
}

static void *scr(int page)
{
	return (void *)(uintptr_t)(SCR + page * PG);
}

/* Where an op's argument struct goes: the scratch page (mostly), across
 * the end of the scratch area into the unmapped guard, the read-only page,
 * or a pointer to nothing. */
struct argp {
	char kind;	/* o ok, s straddles the guard, r read-only, b bogus */
	uint8_t *p;	/* user pointer passed to the ioctl */
	size_t room;	/* bytes readable at p */
};

static struct argp arg_place(size_t len)
{
	const uint64_t bogus[] = { 0, KERNEL_VA, UNMAPPED_VA, ARENA + A_NONE * PG };
	struct argp a = { 'o', scr(S_ARG), 2 * PG };
	int r = sane ? 100 : rnd(100);

	if (r < 4 && len > 1) {
		a.kind = 's';
		a.room = 1 + rnd(len - 1);
		a.p = (uint8_t *)scr(S_GUARD) - a.room;
	} else if (r < 8) {
		a.kind = 'r';
		a.p = scr(S_RO);
		a.room = PG;
	} else if (r < 11) {
		a.kind = 'b';
		a.p = (uint8_t *)(uintptr_t)bogus[rnd(4)];
		a.room = 0;
	}
	return a;
}

/* Copies the struct built in buf to where the ioctl will read it. */
static void arg_commit(struct argp *a, const void *buf, size_t len)
{
	size_t n = len < a->room ? len : a->room;

	if (a->kind == 'r') {
		mprotect(a->p, PG, PROT_READ | PROT_WRITE);
		memset(a->p, 0, PG);
		memcpy(a->p, buf, n);
		mprotect(a->p, PG, PROT_READ);
	} else if (a->kind != 'b') {
		memcpy(a->p, buf, n);
	}
}

/* Copies what the kernel may have written back into buf. */
static void arg_readback(const struct argp *a, void *buf, size_t len)
{
	if (a->kind != 'b')
		memcpy(buf, a->p, len < a->room ? len : a->room);
}

static void log_arg(const struct argp *a)
{
	lp(" at=%c", a->kind);
	if (a->kind == 's')
		lp("%zu", a->room);
	if (a->kind == 'b')
		lp("%llx", (unsigned long long)(uintptr_t)a->p);
}

static uint32_t argsz_pick(uint32_t exact)
{
	int r = sane ? 0 : rnd(100);

	if (r < 80)
		return exact;
	if (r < 85)
		return exact - 1;
	if (r < 88)
		return 0;
	if (r < 92)
		return rnd(exact);
	if (r < 97)
		return exact + rnd(64);
	return (uint32_t)rnd64();
}

/* --- edge-value pickers ------------------------------------------------------ */

static const struct mapping *any_mapping(void)
{
	return M.n ? &M.m[rnd(M.n)] : NULL;
}

static uint64_t iova_pick(void)
{
	const struct mapping *m = any_mapping();
	static const uint64_t far[] = { 1ULL << 32, 1ULL << 39, 1ULL << 47, 1ULL << 48,
					0xfee00000ULL, 0x8000000ULL };
	int r = sane ? 0 : rnd(100);

	if (r < 40)
		return IOVA_BASE + rnd(IOVA_SPAN) * PG;
	if (r < 55 && m) {
		uint64_t v = chance(50) ? m->iova : m->iova + m->size;
		static const int64_t d[] = { 0, 0, -1, 1 };

		return v + d[rnd(4)] * PG;
	}
	if (r < 58)
		return 0;
	if (r < 62)
		return ~0ULL - rnd(4) * PG - (chance(50) ? PG - 1 : 0);
	if (r < 66 && M.naper) {
		int i = rnd(M.naper);

		return chance(50) ? M.aper[i][0] - (chance(50) ? PG : 0)
				  : M.aper[i][1] + 1 - (chance(50) ? PG : 0);
	}
	if (r < 70)
		return far[rnd(6)] - (chance(50) ? PG : 0);
	if (r < 75)
		return rnd64();
	if (r < 80)
		return IOVA_BASE + rnd(IOVA_SPAN * PG);
	return IOVA_BASE + rnd(16 * IOVA_SPAN) * PG;
}

static uint64_t size_pick(uint64_t iova)
{
	int r = sane ? 0 : rnd(100);

	if (r < 50)
		return (1 + rnd(16)) * PG;
	if (r < 60)
		return (1 + rnd(IOVA_SPAN)) * PG;
	if (r < 63)
		return 0;
	if (r < 66)
		return ~0ULL;
	if (r < 68)
		return chance(50) ? 1 : PG - 1;
	if (r < 72)
		return -iova + (chance(50) ? PG : 0);	/* wraps to exactly 0, or past */
	if (r < 75)
		return 1ULL << 40;
	if (r < 80)
		return rnd(16) * PG + 1 + rnd(PG - 1);
	if (r < 85)
		return rnd64();
	return PG;
}

/* A user address for size bytes. Mostly read-write arena memory with room
 * for the size; sometimes read-only, zero-page, holes, bogus. */
static uint64_t vaddr_pick(uint64_t size)
{
	uint64_t np = size / PG;
	int r = sane ? rnd(70) : rnd(100);

	if (r < 70)
		return ARENA + (A_RW + rnd(np < A_RW_N ? A_RW_N - np : 1)) * PG;
	if (r < 75)
		return ARENA + (A_RO + rnd(A_RO_N)) * PG;
	if (r < 78)
		return ARENA + (A_ZERO + rnd(A_ZERO_N)) * PG;
	if (r < 80)
		return ARENA + (A_HOLE - rnd(4)) * PG;
	if (r < 82)
		return ARENA + A_NONE * PG;
	if (r < 85)
		return ARENA + (A_RW2 + rnd(A_RW2_N)) * PG;
	if (r < 87)
		return ARENA + rnd(A_RW_N * PG);
	if (r < 89)
		return 0;
	if (r < 91)
		return KERNEL_VA;
	if (r < 93)
		return UNMAPPED_VA;
	if (r < 95)
		return ~0ULL - PG + 1;
	return rnd64();
}

/* --- backend checks ---------------------------------------------------------- */

/* The container is served by the backend under test and not the other
 * one (vfio core falls back to the next backend if one refuses). */
static bool served_by_expected(void)
{
	return sysfs_module_refcnt(expected_module) >= 1 && sysfs_module_refcnt(other_module) <= 0;
}

/* --- container ops ------------------------------------------------------------ */

static void op_check_extension(void)
{
	static const unsigned long ids[] = { VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU,
		VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, VFIO_NOIOMMU_IOMMU };
	unsigned long id = chance(60) ? ids[rnd(6)] : chance(70) ? rnd(16) : rnd64();

	lbegin("check_extension");
	lp(" id=%#lx", id);
	lcall();
	lp(" -> %ld", xioctl(M.container, VFIO_CHECK_EXTENSION, id));
	lend();
}

static void op_set_iommu(void)
{
	static const unsigned long odd[] = { 0, VFIO_SPAPR_TCE_IOMMU, 6, 7, VFIO_NOIOMMU_IOMMU };
	unsigned long type = sane || chance(90) ?
			     (chance(25) ? VFIO_TYPE1_IOMMU : VFIO_TYPE1v2_IOMMU) :
			     chance(80) ? odd[rnd(5)] : rnd64();
	long r;

	lbegin("set_iommu");
	lp(" type=%#lx", type);
	lcall();
	r = xioctl(M.container, VFIO_SET_IOMMU, type);
	lp(" -> %ld", r);
	if (!r) {
		M.iommu = true;
		M.v2 = type != VFIO_TYPE1_IOMMU; /* 6 is v2 too (nesting on 6.12) */
		lp(" served=%d", served_by_expected());
	}
	lend();
}

/* Remembers the IOVA ranges of a complete GET_INFO for iova_pick(). */
static void learn_iova_ranges(const uint8_t *buf, uint32_t len)
{
	const struct vfio_iommu_type1_info *info = (const void *)buf;
	uint32_t off = info->cap_offset;

	if (!(info->flags & VFIO_IOMMU_INFO_CAPS))
		return;
	for (int hops = 0; off && off + 16 <= len && hops < 16; hops++) {
		const struct vfio_info_cap_header *h = (const void *)(buf + off);

		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			const struct vfio_iommu_type1_info_cap_iova_range *c = (const void *)h;

			M.naper = 0;
			for (uint32_t i = 0; i < c->nr_iovas && M.naper < 8 &&
			     off + 16 + (i + 1) * 16 <= len; i++) {
				M.aper[M.naper][0] = c->iova_ranges[i].start;
				M.aper[M.naper++][1] = c->iova_ranges[i].end;
			}
		}
		off = h->next;
	}
}

static void op_get_info(void)
{
	static uint8_t buf[2 * 4096];
	uint32_t want = chance(50) ? 4096 : chance(50) ? 16 + rnd(2) * 8 : rnd(320);
	uint32_t argsz = chance(90) ? want : (uint32_t)rnd64();
	struct argp a = arg_place(sizeof(buf));
	size_t shown = argsz < 512 ? argsz : 512;
	long r;

	if ((avoid & AVOID_APERTURE) && M.expanded && !iommu_groups_attached()) {
		lbegin("get_info skipped (--avoid aperture)");
		lend();
		return;
	}
	rnd_fill(buf, sizeof(buf));
	memcpy(buf, &argsz, 4);
	memcpy(scr(S_ARG), buf, sizeof(buf));	/* untouched bytes compare too */
	arg_commit(&a, buf, sizeof(buf));
	lbegin("get_info");
	lp(" argsz=%u", argsz);
	log_arg(&a);
	lcall();
	r = xioctl(M.container, VFIO_IOMMU_GET_INFO, (unsigned long)a.p);
	lp(" -> %ld", r);
	arg_readback(&a, buf, sizeof(buf));
	if (a.kind != 'b') {
		lhex("out", buf, shown < a.room ? shown : a.room);
		lp(" h=%016llx", (unsigned long long)fnv(buf, a.room < sizeof(buf) ? a.room : sizeof(buf)));
	}
	if (!r && a.kind == 'o' && argsz >= 4096)
		learn_iova_ranges(buf, 4096);
	lend();
}

/* Unaligned MAP iovas collide with unaligned driver pins: see
 * pin_iova_safe(). A page-aligned mapping starting inside the page after
 * an unaligned pinned iova X would make C find the wrong mapping when X is
 * unpinned (WARN, leaked pin, then BUG in the unmap retry loop). */
static bool map_iova_safe(uint64_t iova)
{
	for (int i = 0; i < M.npin; i++)
		for (int k = 0; k < M.pin[i].n; k++) {
			uint64_t x = M.pin[i].iova + k * PG;

			if (x % PG && iova > x && iova - x < PG)
				return false;
		}
	return true;
}

static void op_map(void)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m) };
	const struct mapping *old = NULL;
	int r = rnd(100);
	struct argp a;
	long ret;

	if (r < 8 && M.n) {		/* FLAG_VADDR: a fresh vaddr for a mapping */
		old = any_mapping();
		for (int i = 0; i < 4 && !old->vinval; i++)
			old = any_mapping();
		m.flags = VFIO_DMA_MAP_FLAG_VADDR;
		if (!sane && chance(10))
			m.flags |= VFIO_DMA_MAP_FLAG_READ;
		m.iova = old->iova;
		m.size = sane || chance(90) ? old->size : size_pick(m.iova);
	} else {
		static const uint32_t fl[] = { 3, 3, 3, 3, 3, 3, 1, 1, 2, 0,
					       VFIO_DMA_MAP_FLAG_VADDR, 3 | 8 };

		m.flags = sane ? 3 : chance(97) ? fl[rnd(12)] : (uint32_t)rnd64();
		m.iova = chance(50) ? IOVA_BASE + rnd(IOVA_SPAN) * PG : iova_pick();
		m.size = chance(60) ? (1 + rnd(16)) * PG : size_pick(m.iova);
	}
	m.vaddr = vaddr_pick(m.size);
	if ((avoid & AVOID_VADDR_END) && m.size && m.vaddr + m.size == 0)
		m.vaddr = UNMAPPED_VA;
	if (!map_iova_safe(m.iova) || avoid_top_end(m.iova, m.size))
		m.iova |= 1;	/* rejected early by both, as unaligned */
	m.argsz = argsz_pick(sizeof(m));
	a = arg_place(sizeof(m));
	arg_commit(&a, &m, sizeof(m));
	lbegin("map");
	lp(" argsz=%u flags=%#x iova=%#llx size=%#llx vaddr=%#llx", m.argsz, m.flags,
	   (unsigned long long)m.iova, (unsigned long long)m.size, (unsigned long long)m.vaddr);
	log_arg(&a);
	lcall();
	ret = xioctl(M.container, VFIO_IOMMU_MAP_DMA, (unsigned long)a.p);
	lp(" -> %ld", ret);
	lend();
	if (ret)
		return;
	if (!(m.flags & VFIO_DMA_MAP_FLAG_VADDR)) {
		map_add(m.iova, m.size, m.vaddr);
		return;
	}
	for (int i = 0; i < M.n; i++)
		if (M.m[i].iova == m.iova) {
			M.m[i].vinval = false;
			M.m[i].vaddr = m.vaddr;
		}
}

/* --- dirty bitmaps -------------------------------------------------------------- */

struct bitmap_arg {
	uint64_t pgsize, size, data;
};

static uint64_t bm_bytes(uint64_t size, uint64_t pgsize)
{
	uint64_t np = size / pgsize;

	return (np + 63) / 64 * 8;
}

static void bitmap_pick(struct bitmap_arg *b, uint64_t size)
{
	static const uint64_t odd_pg[] = { 1, 0, 0x966d49e2a25dfa6fULL, 512, 8192, 1ULL << 21 };
	uint64_t need;
	int r;

	b->pgsize = sane || chance(85) ? PG : odd_pg[rnd(6)];
	need = b->pgsize ? bm_bytes(size, b->pgsize) : 8;
	r = sane ? 0 : rnd(100);
	b->size = r < 70 ? need : r < 75 ? need + 8 * rnd(4) : r < 80 ? need - 8 :
		  r < 84 ? 0 : r < 88 ? ~0ULL : r < 92 ? 0x10000008ULL : rnd64();
	r = sane ? 0 : rnd(100);
	if (r < 80)
		b->data = (uintptr_t)scr(S_BM) + 8 * rnd(8);
	else if (r < 84)
		b->data = (uintptr_t)scr(S_GUARD) - 8 * rnd(4);	/* runs into the guard */
	else if (r < 87)
		b->data = (uintptr_t)scr(S_RO);
	else if (r < 90)
		b->data = (uintptr_t)scr(S_BM) + 1 + rnd(7);	/* unaligned */
	else if (r < 93)
		b->data = 0;
	else if (r < 96)
		b->data = KERNEL_VA;
	else
		b->data = UNMAPPED_VA;
}

static uint64_t bm_prefill;

static void bm_prepare(void)
{
	uint64_t *w = scr(S_BM);

	bm_prefill = chance(80) ? 0 : rnd64();
	for (size_t i = 0; i < S_BM_N * PG / 8; i++)
		w[i] = bm_prefill;
}

/* The bitmap area after a report: a hash and the words that changed. */
static void bm_log(bool trusted)
{
	const uint64_t *w = scr(S_BM);
	size_t nw = S_BM_N * PG / 8, shown = 0, changed = 0;

	if (!trusted) {
		lp(" bm=tainted");
		return;
	}
	lp(" bm=%016llx", (unsigned long long)fnv(w, nw * 8));
	for (size_t i = 0; i < nw; i++) {
		if (w[i] == bm_prefill)
			continue;
		if (shown++ < 24)
			lp(" w%zu=%llx", i, (unsigned long long)w[i]);
		changed++;
	}
	if (changed > shown)
		lp(" +%zu", changed - shown);
}

/*
 * Known C bug 1: reporting a mapping whose first bit is not at a word
 * boundary of the user bitmap (shift != 0) leaves stale shifted bits in
 * C's kernel bitmap, which later reports of that mapping show. A report is
 * trusted (its words compared) unless it covers a mapping tainted so; it
 * taints the mappings it reports at a non-zero shift, until DIRTY STOP.
 */
static bool report_trusted(const bool *sel)
{
	if (M.uncertain)
		return false;
	for (int i = 0; i < M.n; i++)
		if (sel[i] && M.m[i].taint)
			return false;
	return true;
}

/* Whether the driver may hold a pin in the mapping (the pin list is a
 * superset: entries stay until unpinned exactly). */
static bool mapping_pinned(const struct mapping *m)
{
	for (int k = 0; k < M.npin; k++)
		if (M.pin[k].iova <= map_end(m) &&
		    M.pin[k].iova + M.pin[k].n * PG > m->iova)
			return true;
	return false;
}

static void report_taint(const bool *sel, uint64_t base)
{
	for (int i = 0; i < M.n; i++) {
		if (!sel[i])
			continue;
		if (M.m[i].iova >= base && ((M.m[i].iova - base) / PG) % 64)
			M.m[i].taint = true;
		if ((avoid & AVOID_PINNED_DIRTY) && mapping_pinned(&M.m[i]))
			M.m[i].taint = true;
	}
}

/* --- UNMAP_DMA ------------------------------------------------------------------- */

struct unmap_arg {
	struct vfio_iommu_type1_dma_unmap u;
	struct bitmap_arg b;
};

/* iova/size for an unmap or GET_BITMAP: mostly whole mappings (at least
 * exact_pct percent) or a span of them, else edge values. */
static void range_pick(__u64 *iova, __u64 *size, int exact_pct)
{
	int r = rnd(100);

	if (r < exact_pct && M.n) {
		int i = rnd(M.n);

		*iova = M.m[i].iova;
		*size = M.m[i].size;
	} else if (r < exact_pct + 20 && M.n) {
		int i = rnd(M.n), j = i + rnd(M.n - i);

		*iova = M.m[i].iova;
		*size = M.m[j].iova + M.m[j].size - *iova;
	} else if (r < exact_pct + 30) {
		*iova = IOVA_BASE;
		*size = IOVA_SPAN * PG;
	} else {
		*iova = iova_pick();
		*size = size_pick(*iova);
	}
}

static void unmap_model(const struct unmap_arg *ua, long ret, const bool *sel, uint64_t total)
{
	uint32_t f = ua->u.flags;

	if (ret == -EFAULT) {
		M.uncertain = true;	/* may have failed half-way */
		/* or only at the copy back: assume the vaddrs invalidated */
		for (int i = 0; (f & VFIO_DMA_UNMAP_FLAG_VADDR) && i < M.n; i++)
			M.m[i].vinval |= sel[i];
		return;
	}
	if (ret)
		return;
	if (ua->u.size != total)
		M.uncertain = true;
	for (int i = M.n - 1; i >= 0; i--) {
		if (!sel[i])
			continue;
		if (f & VFIO_DMA_UNMAP_FLAG_VADDR)
			M.m[i].vinval = true;
		else
			map_del(i);
	}
	if ((f & VFIO_DMA_UNMAP_FLAG_ALL) && !(f & VFIO_DMA_UNMAP_FLAG_VADDR) && !M.uncertain)
		M.n = 0;
	if (!M.n)
		M.uncertain = false;	/* nothing left: known again */
}

/* Whether the bitmap words of the selected mappings, reported from base,
 * fall in the bitmap area (from its start). */
static bool bitmap_fits(const bool *sel, uint64_t base)
{
	if (M.uncertain)
		return false;
	for (int i = 0; i < M.n; i++)
		if (sel[i] && (M.m[i].iova < base ||
			       (map_end(&M.m[i]) - base) / PG / 8 + 8 > S_BM_N * PG))
			return false;
	return true;
}

static void op_unmap(void)
{
	static const uint32_t fl[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_ALL,
		VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_DMA_UNMAP_FLAG_VADDR,
		VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR,
		VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 1u << 3 };
	struct unmap_arg ua = { 0 };
	bool sel[MAXMAP], bitmap;
	uint64_t total, last;
	struct argp a;
	long ret;

	ua.u.flags = sane ? fl[rnd(17)] : chance(97) ? fl[rnd(20)] : (uint32_t)rnd64();
	bitmap = ua.u.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	if ((ua.u.flags & VFIO_DMA_UNMAP_FLAG_ALL) && (sane || chance(85))) {
		ua.u.iova = ua.u.size = 0;
	} else {
		range_pick(&ua.u.iova, &ua.u.size, 30);
		if (avoid_top_end(ua.u.iova, ua.u.size))
			ua.u.size += PG;
	}
	if (bitmap && !sane && chance(10)) {
		/* the whole IOVA space: bitmap sizes overflow */
		ua.u.iova = 0;
		ua.u.size = chance(50) ? ~0ULL : -PG;
	}
	if (bitmap) {
		avoid_bitmap_overflow(ua.u.iova, &ua.u.size);
		bitmap_pick(&ua.b, ua.u.size);
		if ((avoid & AVOID_UNMAP_EFAULT) && M.npin)
			ua.b.data = (uintptr_t)scr(S_BM);
	}
	ua.u.argsz = argsz_pick(bitmap ? sizeof(ua) : sizeof(ua.u));
	bm_prepare();
	a = arg_place(sizeof(ua));
	arg_commit(&a, &ua, sizeof(ua));

	/* What C would walk, for the model and the bitmap taint. */
	if (ua.u.flags & VFIO_DMA_UNMAP_FLAG_ALL)
		last = ~0ULL;
	else
		last = ua.u.size ? ua.u.iova + ua.u.size - 1 : ua.u.iova;
	if (last < ua.u.iova)
		last = ~0ULL;
	total = unmap_select(ua.u.iova, last, M.v2 || (ua.u.flags & VFIO_DMA_UNMAP_FLAG_ALL), sel);
	if (bitmap && (avoid & AVOID_UNMAP_EFAULT) && M.npin && !bitmap_fits(sel, ua.u.iova)) {
		lbegin("unmap skipped (--avoid unmap-efault)");
		lend();
		return;
	}
	if ((avoid & AVOID_VINVAL_REMOVE) && !(ua.u.flags & VFIO_DMA_UNMAP_FLAG_VADDR))
		for (int i = 0; i < M.n; i++)
			if (sel[i] && M.m[i].vinval) {
				lbegin("unmap skipped (--avoid vinval-remove)");
				lend();
				return;
			}

	lbegin("unmap");
	lp(" argsz=%u flags=%#x iova=%#llx size=%#llx", ua.u.argsz, ua.u.flags,
	   (unsigned long long)ua.u.iova, (unsigned long long)ua.u.size);
	if (bitmap)
		lp(" pgsize=%#llx bmsize=%#llx data=%#llx", (unsigned long long)ua.b.pgsize,
		   (unsigned long long)ua.b.size, (unsigned long long)ua.b.data);
	log_arg(&a);
	lcall();
	ret = xioctl(M.container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)a.p);
	lp(" -> %ld", ret);
	arg_readback(&a, &ua, sizeof(ua));
	if (a.kind != 'b')
		lp(" out.size=%#llx", (unsigned long long)ua.u.size);
	if (bitmap) {
		bm_log(report_trusted(sel));
		report_taint(sel, ua.u.iova);
	}
	lend();
	unmap_model(&ua, ret, sel, total);
}

/* --- DIRTY_PAGES ----------------------------------------------------------------- */

struct dirty_arg {
	struct vfio_iommu_type1_dirty_bitmap d;
	struct {
		__u64 iova, size;
		struct bitmap_arg b;
	} get;
};

static void op_dirty(void)
{
	static const uint32_t odd[] = { 0, VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
		VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
		VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, 1u << 3, 7 };
	struct dirty_arg da = { 0 };
	bool sel[MAXMAP] = { 0 }, get;
	uint64_t last;
	struct argp a;
	int r = rnd(100);
	long ret;

	da.d.flags = r < 25 ? VFIO_IOMMU_DIRTY_PAGES_FLAG_START :
		     r < 37 ? VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP :
		     r < 90 || sane ? VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP :
		     chance(80) ? odd[rnd(5)] : (uint32_t)rnd64();
	get = da.d.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	if (get) {
		/* A report based at its mapping's iova (bit 0) keeps the
		 * mapping comparable (see report_trusted()). */
		range_pick(&da.get.iova, &da.get.size, 50);
		if (!sane && chance(10)) {
			da.get.iova = 0;
			da.get.size = chance(50) ? ~0ULL : -PG;
		}
		avoid_bitmap_overflow(da.get.iova, &da.get.size);
		bitmap_pick(&da.get.b, da.get.size);
	}
	da.d.argsz = argsz_pick(get ? sizeof(da) : sizeof(da.d));
	bm_prepare();
	a = arg_place(sizeof(da));
	arg_commit(&a, &da, sizeof(da));

	last = da.get.size ? da.get.iova + da.get.size - 1 : da.get.iova;
	if (last < da.get.iova)
		last = ~0ULL;
	for (int i = 0; get && i < M.n; i++)
		sel[i] = overlaps(&M.m[i], da.get.iova, last);

	lbegin("dirty");
	lp(" argsz=%u flags=%#x", da.d.argsz, da.d.flags);
	if (get)
		lp(" iova=%#llx size=%#llx pgsize=%#llx bmsize=%#llx data=%#llx",
		   (unsigned long long)da.get.iova, (unsigned long long)da.get.size,
		   (unsigned long long)da.get.b.pgsize, (unsigned long long)da.get.b.size,
		   (unsigned long long)da.get.b.data);
	log_arg(&a);
	lcall();
	ret = xioctl(M.container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)a.p);
	lp(" -> %ld", ret);
	if (get) {
		bm_log(report_trusted(sel));
		report_taint(sel, da.get.iova);
	}
	lend();
	if (ret)
		return;
	if (da.d.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
		/* New bitmaps (if not tracking yet) start with the pinned
		 * pages marked: see AVOID_PINNED_DIRTY. */
		for (int i = 0; !M.tracking && (avoid & AVOID_PINNED_DIRTY) && i < M.n; i++)
			M.m[i].taint |= mapping_pinned(&M.m[i]);
		M.tracking = true;
	}
	if (da.d.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
		M.tracking = false;
		for (int i = 0; i < M.n; i++)
			M.m[i].taint = false;	/* STOP frees the bitmaps */
	}
}

/* --- groups and the container ------------------------------------------------------ */

/*
 * Known C bug 3: in a container that so far had only emulated groups, C's
 * IOVA list is empty, so attaching an IOMMU-backed group skips the
 * aperture check and replays mappings beyond the domain's aperture into
 * it: ERANGE, and on arm64 a kernel WARNING (io-pgtable-arm.c:599) from
 * user space. Ours does the same; never generated. With --avoid
 * aper-errno neither is the case after an IOMMU-backed group left.
 * Mappings below 2^39 are inside every aperture of the test VMs.
 */
/* See AVOID_UNALIGNED_VPFN. */
static bool unaligned_pin_held(void)
{
	for (int k = 0; k < M.npin; k++)
		if (M.pin[k].iova % PG)
			return true;
	return false;
}

static bool attach_aperture_safe(int i)
{
	bool far = M.uncertain;

	if (i == G_MDEV || !M.iommu || iommu_groups_attached())
		return true;
	for (int k = 0; k < M.n; k++)
		far |= map_end(&M.m[k]) >> 39 != 0;
	if (!far)
		return true;
	return M.expanded && !(avoid & (AVOID_APER_ERRNO | AVOID_TOP_END));
}

static void op_group_set(int i)
{
	int bad = -1, *p = &M.container;
	long r;

	if (!attach_aperture_safe(i)) {
		lbegin("group_set skipped (aperture)");
		lend();
		return;
	}
	if (i != G_MDEV && (avoid & AVOID_UNALIGNED_VPFN) && unaligned_pin_held()) {
		lbegin("group_set skipped (unaligned pin held)");
		lend();
		return;
	}
	if (chance(4))
		p = &bad;
	else if (chance(3))
		p = NULL;
	lbegin("group_set");
	lp(" g=%d fd=%s", i, p == &M.container ? "container" : p ? "-1" : "NULL");
	lcall();
	r = xioctl(M.g[i].fd, VFIO_GROUP_SET_CONTAINER, (unsigned long)p);
	if ((avoid & AVOID_APER_ERRNO) && r == -ERANGE)
		r = -EINVAL;
	if ((avoid & AVOID_ATTACH_ORDER) && r == -EFAULT && p == &M.container)
		r = -EINVAL;
	lp(" -> %ld", r);
	lend();
	if (!r)
		M.g[i].attached = true;
}

static void op_group_unset(int i)
{
	long r;

	lbegin("group_unset");
	lp(" g=%d", i);
	lcall();
	r = xioctl(M.g[i].fd, VFIO_GROUP_UNSET_CONTAINER, 0);
	lp(" -> %ld", r);
	lend();
	if (!r)
		group_left(i);
}

static void dev_close(void)
{
	if (M.mdev.fd >= 0) {
		trm_close(&M.mdev);
		M.npin = 0;	/* close_device unpinned everything */
	}
}

/* Closing an attached group's fd detaches it. The mdev group's fd stays
 * open while its device is (a device fd holds its group anyway). */
static void op_group_reopen(int i)
{
	lbegin("group_reopen");
	lp(" g=%d", i);
	lcall();
	close(M.g[i].fd);
	if (M.g[i].attached)
		group_left(i);
	M.g[i].fd = vfio_open_group(M.g[i].id);
	lp(" -> %d", M.g[i].fd >= 0 ? 0 : -errno);
	lend();
	if (M.g[i].fd < 0)
		exit(1);
}

static void container_close_all(void)
{
	dev_close();
	for (int i = 0; i < ngroups; i++) {
		close(M.g[i].fd);
		M.g[i].attached = false;
	}
	close(M.container);
	model_forget_container();
}

static int container_open_all(void)
{
	M.container = open("/dev/vfio/vfio", O_RDWR);
	if (M.container < 0)
		return -errno;
	for (int i = 0; i < ngroups; i++) {
		M.g[i].fd = vfio_open_viable_group(M.g[i].id);
		if (M.g[i].fd < 0)
			return M.g[i].fd;
	}
	return 0;
}

static void op_container_reopen(void)
{
	int r;

	lbegin("container_reopen");
	lcall();
	container_close_all();
	r = container_open_all();
	lp(" -> %d", r);
	lend();
	if (r)
		exit(1);
}

/* --- the test mdev ------------------------------------------------------------------ */

static void op_dev_open(void)
{
	int r;

	lbegin("dev_open");
	lcall();
	dev_close();
	r = trm_open(&M.mdev, M.g[G_MDEV].fd);
	lp(" -> %d", r < 0 ? r : 0);
	lend();
}

static void op_dev_close(void)
{
	lbegin("dev_close");
	lcall();
	dev_close();
	lend();
}

static void log_result(int r, const struct trm_result *res)
{
	lp(" -> %d ret=%lld calls=%llu last=%#llx/%#llx unpinned=%llu pinned=%llu", r,
	   (long long)res->ret, (unsigned long long)res->unmap_calls,
	   (unsigned long long)res->last_unmap_iova, (unsigned long long)res->last_unmap_len,
	   (unsigned long long)res->unmap_unpinned, (unsigned long long)res->pinned);
	if (!r && !res->pinned)
		M.npin = 0;	/* the driver holds none: the pin list is exact again */
}

/*
 * Known C bug 2: pin_pages at an iova X that is not page aligned and lies
 * less than a page below a mapping M (M->iova in (X, X + PAGE)) pins the
 * user page before M's vaddr in C (vfio_find_dma(X, PAGE_SIZE) finds M and
 * X - M->iova underflows); ours says EINVAL. Never ask for that shape.
 */
static bool pin_iova_safe(uint64_t iova, int npage)
{
	if (!(iova % PG) || npage <= 0 || npage > 512)
		return true;
	if (M.uncertain || ((avoid & AVOID_UNALIGNED_VPFN) && iommu_groups_attached()))
		return false;
	for (int k = 0; k < npage; k++) {
		uint64_t x = iova + k * PG;

		for (int i = 0; i < M.n; i++)
			if (M.m[i].iova > x && M.m[i].iova - x < PG)
				return false;
	}
	return true;
}

/* An iova inside a mapping (mostly page aligned), else an edge value. */
static uint64_t dev_iova_pick(bool aligned)
{
	const struct mapping *m = any_mapping();

	if (m && chance(70)) {
		uint64_t off = rnd(m->size);

		return m->iova + (aligned ? off / PG * PG : off);
	}
	return iova_pick();
}

static void op_pin(void)
{
	static const uint32_t prots[] = { 3, 3, 3, 3, 3, 3, 1, 1, 2, 2, 0, 4 };
	static struct trm_result res;
	uint64_t iova = dev_iova_pick(sane || chance(85));
	int r = sane ? rnd(70) : rnd(100), ret;
	int32_t npage = r < 70 ? 1 + (int)rnd(8) : r < 80 ? 1 + (int)rnd(512) : r < 85 ? 0 :
			r < 90 ? -1 : r < 95 ? 513 : (int32_t)rnd64();
	uint32_t prot = prots[sane ? rnd(10) : rnd(12)];

	if (!pin_iova_safe(iova, npage))
		iova -= iova % PG;
	if (M.npin == MAXPIN) {
		/* A pin the list could not hold would escape map_iova_safe(). */
		lbegin("pin skipped (pin list full)");
		lend();
		return;
	}
	lbegin("pin");
	lp(" iova=%#llx npage=%d prot=%u", (unsigned long long)iova, npage, prot);
	lcall();
	ret = trm_run(&M.mdev, TRM_OP_PIN, iova, npage, prot, NULL, 0, &res);
	log_result(ret, &res);
	if (!ret && res.ret > 0) {
		lhex("peek", res.data, 32);
		M.pin[M.npin].iova = iova;
		M.pin[M.npin++].n = res.ret;
	}
	lend();
}

static void op_unpin(void)
{
	static struct trm_result res;
	uint64_t iova;
	int32_t npage;
	int ret, k = -1;

	if (M.npin && chance(75)) {
		k = rnd(M.npin);
		iova = M.pin[k].iova;
		npage = chance(80) ? M.pin[k].n : 1 + (int)rnd(M.pin[k].n);
	} else {
		iova = dev_iova_pick(true);
		npage = chance(80) ? 1 + (int)rnd(8) : (int32_t)rnd64();
	}
	lbegin("unpin");
	lp(" iova=%#llx npage=%d", (unsigned long long)iova, npage);
	lcall();
	ret = trm_run(&M.mdev, TRM_OP_UNPIN, iova, npage, 0, NULL, 0, &res);
	log_result(ret, &res);
	lend();
	/* k is gone if log_result() found the driver without pins. */
	if (k < 0 || k >= M.npin || ret || res.ret != npage)
		return;
	/* The driver unpinned the first npage pages of this pin. */
	M.pin[k].iova += npage * PG;
	M.pin[k].n -= npage;
	if (!M.pin[k].n)
		M.pin[k] = M.pin[--M.npin];
}

static void op_dma_rw(bool write)
{
	static uint8_t data[TRM_DATA_MAX];
	static struct trm_result res;
	uint64_t iova = dev_iova_pick(chance(50));
	int r = sane ? rnd(80) : rnd(100), ret;
	/* One page, up to the driver's payload (a 64 KiB page exceeds it). */
	uint32_t pg_len = PG < TRM_DATA_MAX ? PG : TRM_DATA_MAX;
	uint32_t len = r < 60 ? 1 + rnd(256) : r < 80 ? 1 + rnd(TRM_DATA_MAX) :
		       r < 85 ? 0 : r < 90 ? pg_len : TRM_DATA_MAX;

	if (write)
		rnd_fill(data, len);
	lbegin(write ? "dma_write" : "dma_read");
	lp(" iova=%#llx len=%u", (unsigned long long)iova, len);
	if (write)
		lp(" data=%016llx", (unsigned long long)fnv(data, len));
	lcall();
	ret = trm_run(&M.mdev, write ? TRM_OP_DMA_WRITE : TRM_OP_DMA_READ, iova, 0, 0,
		      write ? data : NULL, len, &res);
	log_result(ret, &res);
	if (!write && !ret) {
		lp(" read=%016llx", (unsigned long long)fnv(res.data, len));
		lhex("head", res.data, len < 16 ? len : 16);
	}
	lend();
}

static void op_dev_nop(void)
{
	static struct trm_result res;
	int ret;

	lbegin("dev_nop");
	lcall();
	ret = trm_run(&M.mdev, TRM_OP_NOP, 0, 0, 0, NULL, 0, &res);
	log_result(ret, &res);
	lend();
}

/* The process writes to its own memory (what dma_read sees next). */
static void op_touch(void)
{
	uint64_t page = chance(85) ? A_RW + rnd(A_RW_N) : A_RW2 + rnd(A_RW2_N);
	uint64_t off = rnd(PG), len = 1 + rnd(PG - off);

	lbegin("touch");
	lp(" va=%#llx len=%#llx", (unsigned long long)(ARENA + page * PG + off),
	   (unsigned long long)len);
	rnd_fill((void *)(uintptr_t)(ARENA + page * PG + off), len);
	lend();
}

/* --- the generator ---------------------------------------------------------------- */

static int group_pick(bool attached)
{
	int i = rnd(ngroups);

	for (int k = 0; k < ngroups && M.g[i].attached != attached; k++)
		i = (i + 1) % ngroups;
	return i;
}

/* One op. The weights favour calls that can succeed in the current state,
 * but every call is also made where it must fail. */
static void step(void)
{
	bool dev = M.mdev.fd >= 0;
	int r = rnd(1000);

	sane = chance(50);
	if (!nattached() && r < 900) {
		op_group_set(chance(70) ? group_pick(false) : (int)rnd(ngroups));
		return;
	}
	if (!M.iommu && r < 700) {
		r < 500 ? op_set_iommu() : op_group_set(group_pick(false));
		return;
	}
	if (M.g[G_MDEV].attached && M.iommu && !dev && r < 300) {
		op_dev_open();
		return;
	}
	r = rnd(1000);
	if (r < 30)
		op_check_extension();
	else if (r < 45)
		op_set_iommu();
	else if (r < 90)
		op_get_info();
	else if (r < 300)
		op_map();
	else if (r < 430)
		op_unmap();
	else if (r < 530)
		op_dirty();
	else if (r < 560)
		op_group_set(group_pick(false));
	else if (r < 580)
		op_group_unset(chance(80) ? group_pick(true) : (int)rnd(ngroups));
	else if (r < 585)
		op_group_reopen(dev ? rnd(G_MDEV) : rnd(ngroups));
	else if (r < 588)
		op_container_reopen();
	else if (r < 600)
		ngroups == NGROUPS ? op_dev_open() : op_check_extension();
	else if (r < 610)
		dev ? op_dev_close() : op_check_extension();
	else if (r < 630)
		op_touch();
	else if (!dev)
		op_map();	/* keep the mix when the device is closed */
	else if (r < 760)
		op_pin();
	else if (r < 840)
		op_unpin();
	else if (r < 910)
		op_dma_rw(false);
	else if (r < 980)
		op_dma_rw(true);
	else
		op_dev_nop();
}

/* --- setup and the end check --------------------------------------------------------- */

static int groups_find(void)
{
	const struct vfio_test_group *g[3] = { vfio_test_group_find(1, 0),
		vfio_test_group_find(1, 1), vfio_test_group_find(2, 0) };

	for (int i = 0; i < 3; i++) {
		if (!g[i])
			return -ENODEV;
		M.g[i].id = g[i]->id;
	}
	if (trm_load() == -ENODEV) {
		ngroups = G_MDEV;
		return 0;
	}
	if (trm_create(&M.mdev))
		return -ENODEV;
	M.g[G_MDEV].id = M.mdev.group_id;
	return 0;
}

static void avoid_parse(const char *list)
{
	for (unsigned int k = 0; k < sizeof(avoid_names) / sizeof(avoid_names[0]); k++)
		if (strstr(list, avoid_names[k]) || !strcmp(list, "all"))
			avoid |= 1u << k;
}

static void usage(void)
{
	fprintf(stderr, "usage: fuzz --seed S --ops N --log FILE [--trace] [--avoid NAMES]\n"
		"  backend under test: $VFIO_BACKEND_MODULE (default vfio_iommu_type1_rs)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = 1;
	long ops = 500, pins0, pins, lck;
	const char *logpath = NULL;
	int refcnt;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			ops = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--log") && i + 1 < argc)
			logpath = argv[++i];
		else if (!strcmp(argv[i], "--trace"))
			trace = true;
		else if (!strcmp(argv[i], "--avoid") && i + 1 < argc)
			avoid_parse(argv[++i]);
		else
			usage();
	}
	if (!logpath)
		usage();
	logfp = fopen(logpath, "w");
	if (!logfp)
		return 1;
	expected_module = backend_module();
	other_module = strcmp(expected_module, "vfio_iommu_type1") ? "vfio_iommu_type1"
								    : "vfio_iommu_type1_rs";
	rng_state = seed;
	memory_setup();
	if (groups_find()) {
		fprintf(stderr, "fuzz: need 3 edu groups and the test mdev\n");
		return 1;
	}
	pins0 = pins_outstanding();
	if (container_open_all()) {
		fprintf(stderr, "fuzz: cannot open the container and groups: %m\n");
		return 1;
	}
	M.mdev.fd = -1;
	fprintf(logfp, "fuzz seed=%llu ops=%ld pg=%llu%s\n", (unsigned long long)seed, ops,
		(unsigned long long)PG, ngroups == NGROUPS ? "" : " (no mdev core: no mdev group)");
	for (opno = 0; opno < ops; opno++)
		step();
	container_close_all();
	if (ngroups == NGROUPS)
		trm_remove(&M.mdev);
	pins = pins_outstanding() - pins0;
	lck = vmlck_kb();
	refcnt = backend_refcnt();
	fprintf(logfp, "end pins=%ld vmlck=%ld refcnt=%d\n", pins, lck, refcnt);
	fclose(logfp);
	return pins || lck || refcnt ? 2 : 0;
}
