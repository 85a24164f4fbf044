// SPDX-License-Identifier: GPL-2.0
/*
 * Systematic fault injection into every type1 operation that allocates,
 * pins, maps, attaches or copies to/from user space.
 *
 * Each operation runs in a loop n = 1, 2, ...: fresh state is set up, n is
 * written to /proc/thread-self/fail-nth, the one call is made, and fail-nth
 * is read back (0: the n-th fault point this task reached in the call was
 * failed). failslab and fail_page_alloc (order 0 up, GFP_KERNEL included)
 * and fail_usercopy are armed, so the faults land in vfio core, GUP, the
 * IOMMU driver and the backend alike. The loop ends when the call succeeds
 * without consuming the fault. With our backend a second loop does the
 * same for the module's own fail_function points (vfio_rs_iommu_map,
 * vfio_rs_iommu_attach_group, vfio_rs_pin_user_pages_fast,
 * vfio_rs_pin_remote_page), failing the n-th call of any of them: fail-nth
 * does not see those (see enum sweep).
 *
 * Per operation and loop, a TAP diagnostic gives the fault points tried,
 * the faults injected, how many of those failed the call (with which
 * errnos) and how many the kernel absorbed (the call still succeeded: a
 * fallback, or an allocation that only speeds things up).
 *
 * After an injected failure the call must have returned -1 with an errno,
 * left nothing pinned or accounted (pins and VmLck as before the call), and
 * the container must still work: the same call, retried without faults,
 * succeeds, and a fresh MAP + UNMAP succeeds. Once the state is torn down,
 * FOLL_PIN pins, VmLck and the backend module's refcnt are back to the
 * baseline. New WARNING/BUG/KASAN/lockdep lines in the kernel log are
 * reported with the operation and n that caused them.
 *
 * map_dma_no_map_after_failure traces iommu_map() with kprobe events: a
 * MAP_DMA makes no iommu_map() call after one failed.
 *
 * The last test unloads the backend module (it must go: nothing may hold
 * it) and loads it again for the tests that follow.
 *
 * FAULT_TEST_VERBOSE=1 prints every n with its result and which fault kind
 * fired; FAULT_TEST_STOP_ON_ERROR=1 stops a loop at its first failure;
 * FAULT_TEST_GROUP_RELEASE=1 runs the two group-release tests (see there).
 *
 * Needs the debug kernel (CONFIG_FAULT_INJECTION_DEBUG_FS, FAILSLAB,
 * FAIL_PAGE_ALLOC, FAIL_FUNCTION); SKIPs elsewhere:
 *
 *   scripts/vm run --arch x86_64 --backend rust --flavour debug \
 *       -- ./selftests/fault_test
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <stddef.h>
#include <sys/stat.h>

#define IOVA_SCRATCH	0x30000000ULL	/* the "still works" MAP + UNMAP */
#define NPAGES_BIG	1088		/* > 2 GUP batches of 512 */
#define NPAGES_FAULTIN	32		/* not populated: GUP faults them in */
#define NPAGES_EMU	16
#define NPAGES_UNMAP	128		/* the C module allocates per page region */
#define NMAP_DIRTY	3		/* mappings of one dirty report */
#define NPAGES_DIRTY	4160		/* 65 bitmap words: more than one chunk of 64 */
#define MAX_NTH		4000		/* a runaway guard, never reached */
#define DBGFS		"/sys/kernel/debug"

/* --- small helpers ------------------------------------------------------- */

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* --- fault injection setup ----------------------------------------------- */

/* The knobs we change, with their values under fault injection; the old
 * values are restored at the end of each test. */
static struct knob {
	const char *path;
	const char *value;
	char old[32];
	bool saved;
} knobs[] = {
	/* Fail GFP_KERNEL allocations too: that is what vfio makes. */
	{ .path = DBGFS "/failslab/ignore-gfp-wait", .value = "N" },
	{ .path = DBGFS "/failslab/verbose", .value = "0" },
	{ .path = DBGFS "/fail_page_alloc/ignore-gfp-wait", .value = "N" },
	{ .path = DBGFS "/fail_page_alloc/ignore-gfp-highmem", .value = "N" },
	{ .path = DBGFS "/fail_page_alloc/min-order", .value = "0" },
	{ .path = DBGFS "/fail_page_alloc/verbose", .value = "0" },
	{ .path = DBGFS "/fail_usercopy/verbose", .value = "0" },
	{ .path = DBGFS "/fail_function/verbose", .value = "0" },
};

/* Our module's injection points and the errno each fails with. */
static const struct {
	const char *fn;
	int err;
} fei_points[] = {
	{ "vfio_rs_iommu_map", ENOMEM },
	{ "vfio_rs_iommu_attach_group", EIO },
	{ "vfio_rs_pin_user_pages_fast", EFAULT },
	{ "vfio_rs_pin_remote_page", EFAULT },
};

static bool fault_injection_available(void)
{
	return !access(DBGFS "/failslab", F_OK) && !access(DBGFS "/fail_page_alloc", F_OK) &&
	       !access(DBGFS "/fail_function/inject", F_OK) &&
	       !access("/proc/thread-self/fail-nth", F_OK);
}

static void fei_clear(void)
{
	write_str(DBGFS "/fail_function/inject", "\n");
}

/* 0, or -errno of the first knob or injection point that did not take. */
static int fi_configure(const char **what)
{
	char path[256], val[32];
	int r;

	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		struct knob *k = &knobs[i];

		k->saved = !read_str(k->path, k->old, sizeof(k->old));
		/* FAULT_TEST_VERBOSE=1 logs which kind of fault each n was. */
		if (strstr(k->path, "verbose") && getenv("FAULT_TEST_VERBOSE"))
			r = write_str(k->path, "1");
		else
			r = write_str(k->path, k->value);
		if (r) {
			*what = k->path;
			return r;
		}
	}
	if (backend_is_c())
		return 0;	/* the C module has none of our points */
	fei_clear();
	for (size_t i = 0; i < sizeof(fei_points) / sizeof(fei_points[0]); i++) {
		*what = fei_points[i].fn;
		r = write_str(DBGFS "/fail_function/inject", fei_points[i].fn);
		if (r)
			return r;
		snprintf(path, sizeof(path), DBGFS "/fail_function/%s/retval", fei_points[i].fn);
		snprintf(val, sizeof(val), "%#lx", (unsigned long)-(long)fei_points[i].err);
		r = write_str(path, val);
		if (r)
			return r;
	}
	return 0;
}

static void fi_restore(void)
{
	if (!backend_is_c())
		fei_clear();
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		if (knobs[i].saved)
			write_str(knobs[i].path, knobs[i].old);
}

/* --- fail-nth ------------------------------------------------------------ */

static int fnth_fd = -1;

static void fnth_arm(unsigned int n)
{
	char b[16];
	int len = snprintf(b, sizeof(b), "%u", n);

	if (pwrite(fnth_fd, b, len, 0) != len)
		abort();
}

/*
 * Reads fail-nth back and clears it; true if the armed fault was injected.
 * Reading and clearing are fault points themselves (their copy to or from
 * user space) while the count is still positive: a read that fails with
 * EFAULT means the count was 1, i.e. the call did not consume it.
 */
static bool fnth_disarm(void)
{
	char b[16] = "";
	ssize_t r = pread(fnth_fd, b, sizeof(b) - 1, 0);
	int tries = 0;

	while (pwrite(fnth_fd, "0", 1, 0) != 1 && ++tries < 8)
		;
	return r > 0 && atoi(b) == 0;
}

/* --- the kernel log: new splats name the op and n ------------------------ */

static int kmsg_fd = -1;

static void kmsg_open(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
}

static bool kmsg_is_splat(const char *msg)
{
	static const char *const pat[] = {
		"WARNING:", "BUG:", "KASAN", "Oops", "kernel BUG",
		"possible circular locking", "inconsistent lock state",
		"possible recursive locking", "suspicious RCU usage",
		"sleeping function called from invalid context", "DEBUG_LOCKS_WARN_ON",
		"Unable to handle kernel", "general protection fault",
	};

	for (size_t i = 0; i < sizeof(pat) / sizeof(pat[0]); i++)
		if (strstr(msg, pat[i]))
			return true;
	return false;
}

/* Number of splat lines logged since the last call; prints them. */
static int kmsg_new_splats(const char *op, unsigned int n)
{
	char rec[2048];
	int splats = 0, trace = 0;
	ssize_t len;

	if (kmsg_fd < 0)
		return 0;
	for (;;) {
		len = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: go on */
		if (len <= 0)
			break;
		rec[len] = 0;
		if (kmsg_is_splat(rec)) {
			splats++;
			trace = 60;	/* and the stack trace that follows */
		}
		if (getenv("FAULT_TEST_VERBOSE") && strstr(rec, "FAULT_INJECTION")) {
			char *name = strstr(rec, "name ");

			ksft_print_msg("%s n=%u: injected into %.40s\n", op, n, name ? name + 5 : rec);
		}
		if (trace > 0) {
			char *msg = strchr(rec, ';');

			trace--;
			ksft_print_msg("%s n=%u: kernel: %s", op, n, msg ? msg + 1 : rec);
		}
	}
	return splats;
}

/* --- the container under test -------------------------------------------- */

struct fctx {
	int container;
	int group;		/* edu group 0 */
	int group2;		/* edu group 1 */
	int mgroup;		/* the mdev's group */
	struct trm_dev mdev;	/* the mdev: uuid, group id, device fd, region */
	char *buf;		/* the buffer the op maps */
	size_t len;
	bool buf_faultin;	/* fresh unpopulated buffer every iteration */
	bool buf_hugetlb;
	char *scratch;		/* one page for the "still works" check */
	long pins0, lck0;	/* just before the armed call */
	long avail0;		/* DMA_AVAIL after setup (emulated dirty ops) */
	uint64_t bm[(NPAGES_BIG + 63) / 64];
	struct trm_result res;
	long old_nr_huge;
	const char *nr_huge_path;
	long old_disable_hp;	/* disable_hugepages to restore, or -1 */
};

static int group_open(int idx)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, idx);

	return g ? vfio_open_viable_group(g->id) : -ENODEV;
}

static long set_container(int group, int container)
{
	return xioctl(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container);
}

static long map_buf(struct fctx *c)
{
	return dma_map(c->container, IOVA_BASE, c->buf, c->len, DMA_RW);
}

static void *anon_populated(size_t len)
{
	char *p = mmap_aligned(len, PG, PROT_READ | PROT_WRITE);

	if (p) {
		madvise(p, len, MADV_NOHUGEPAGE);
		memset(p, 0x5a, len);
	}
	return p;
}

static void buf_free(struct fctx *c)
{
	if (c->buf)
		munmap(c->buf, c->len);
	c->buf = NULL;
}

/* A fresh, never touched buffer: the pin has to fault every page in. */
static int buf_fresh(struct fctx *c)
{
	buf_free(c);
	c->buf = mmap_aligned(c->len, PG, PROT_READ | PROT_WRITE);
	if (!c->buf)
		return -ENOMEM;
	madvise(c->buf, c->len, MADV_NOHUGEPAGE);
	return 0;
}

/* Container with the first edu group, TYPE1v2 set. */
static int setup_edu_container(struct fctx *c)
{
	c->container = open("/dev/vfio/vfio", O_RDWR);
	if (c->container < 0)
		return -errno;
	c->group = group_open(0);
	if (c->group < 0)
		return c->group;
	if (set_container(c->group, c->container))
		return -errno;
	return xioctl(c->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
}

static void teardown_all(struct fctx *c)
{
	trm_close(&c->mdev);
	close_fd(&c->group2);
	close_fd(&c->group);
	close_fd(&c->mgroup);
	close_fd(&c->container);
}

/* The fresh MAP + UNMAP that shows the container still works. */
static long still_works(struct fctx *c)
{
	uint64_t sz = 0;
	long r = dma_map(c->container, IOVA_SCRATCH, c->scratch, PG, DMA_RW);

	if (r)
		return r;
	r = dma_unmap(c->container, IOVA_SCRATCH, PG, 0, &sz);
	return r ? r : sz == PG ? 0 : -ERANGE;
}

/* --- the mdev ------------------------------------------------------------ */

static int mdev_create(struct fctx *c)
{
	int r = trm_load();

	return r ? r : trm_create(&c->mdev);
}

/* Container with the mdev's (emulated) group, TYPE1v2, the device open. */
static int setup_emu_container(struct fctx *c)
{
	int r;

	c->container = open("/dev/vfio/vfio", O_RDWR);
	if (c->container < 0)
		return -errno;
	c->mgroup = vfio_open_viable_group(c->mdev.group_id);
	if (c->mgroup < 0)
		return c->mgroup;
	if (set_container(c->mgroup, c->container))
		return -errno;
	if (xioctl(c->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -errno;
	r = trm_open(&c->mdev, c->mgroup);
	return r < 0 ? r : 0;
}

/* Sends one command (read-write pins); -errno if the write itself failed. */
static long mdev_send(struct fctx *c, uint32_t op, uint64_t iova, int npage,
		      const void *data, uint32_t len)
{
	return trm_send(&c->mdev, op, iova, npage, TRM_PROT_READ | TRM_PROT_WRITE, data, len);
}

/* The last command's vfio result: 0 or -errno (pin: 0 if all pinned). */
static long trm_result(struct fctx *c, long sent, long expect)
{
	long r = sent ? sent : trm_recv(&c->mdev, &c->res);

	if (r)
		return r;
	if (c->res.ret < 0)
		return c->res.ret;
	return c->res.ret == expect ? 0 : -ERANGE;
}

/* --- operations ---------------------------------------------------------- */

/*
 * One operation under test. setup builds the state before the armed call;
 * call makes it (returns 0 or -errno; runs with the fault armed, so it
 * must make no other system call); result turns what call did into 0 or
 * -errno once disarmed; check asserts the state after the call, success or
 * failure; ready (optional) completes the state after a successful retry so
 * that MAP works (attach ops).
 */
struct fop {
	const char *name;
	int (*setup)(struct fctx *c);
	long (*call)(struct fctx *c);
	long (*result)(struct fctx *c, long r);
	const char *(*check)(struct fctx *c, long r);
	int (*ready)(struct fctx *c);
};

static const char *check_none(struct fctx *c, long r)
{
	return NULL;
}

/* Pins and VmLck moved by exactly npages on success, not at all on failure. */
static const char *check_pinned(struct fctx *c, long r, long npages, long lck_kb)
{
	long pins = pins_outstanding(), lck = vmlck_kb();

	if (r == 0 && (pins != c->pins0 + npages || lck != c->lck0 + lck_kb))
		return "success but pins/VmLck did not grow by the mapping";
	if (r != 0 && (pins != c->pins0 || lck != c->lck0))
		return "failed but pins/VmLck changed";
	return NULL;
}

/* MAP_DMA of c->buf at IOVA_BASE. */
static int setup_map(struct fctx *c)
{
	if (c->buf_faultin && buf_fresh(c))
		return -ENOMEM;
	return setup_edu_container(c);
}

static long call_map(struct fctx *c)
{
	return map_buf(c);
}

static const char *check_map(struct fctx *c, long r)
{
	const char *why = check_pinned(c, r, c->len / PG, c->len / 1024);
	uint64_t sz = 1;

	if (why || !r)
		return why;
	/* Nothing of the failed mapping may remain in the tree. */
	if (dma_unmap(c->container, IOVA_BASE, c->len, 0, &sz) || sz)
		return "failed MAP_DMA left a mapping behind";
	return NULL;
}

/* UNMAP_DMA with GET_DIRTY_BITMAP of a mapping while tracking is on. */
static int setup_unmap_dirty(struct fctx *c)
{
	int r = setup_edu_container(c);

	if (r || (r = map_buf(c)))
		return r;
	return dirty_pages(c->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
}

static long call_unmap_dirty(struct fctx *c)
{
	memset(c->bm, 0, sizeof(c->bm));
	return dma_unmap_bitmap(c->container, IOVA_BASE, c->len, PG, sizeof(c->bm), c->bm);
}

/* Every page of the mapping reported dirty (the group is not "pinned"). */
static bool bitmap_full(struct fctx *c)
{
	size_t npages = c->len / PG;

	for (size_t i = 0; i < npages; i++)
		if (!(c->bm[i / 64] >> (i % 64) & 1))
			return false;
	return true;
}

static const char *check_unmap_dirty(struct fctx *c, long r)
{
	long pins = pins_outstanding(), npages = c->len / PG;

	if (r == 0)
		return pins != c->pins0 - npages ? "unmapped but pins not released" :
		       !bitmap_full(c) ? "bitmap not all dirty" : NULL;
	/* A failure either left the mapping whole or removed all of it. */
	if (pins != c->pins0 && pins != c->pins0 - npages)
		return "failed unmap released part of the mapping's pins";
	return NULL;
}

/* DIRTY_PAGES START with a mapping. */
static int setup_dirty_start(struct fctx *c)
{
	int r = setup_edu_container(c);

	return r ? r : map_buf(c);
}

static long call_dirty_start(struct fctx *c)
{
	return dirty_pages(c->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
}

static const char *check_dirty_start(struct fctx *c, long r)
{
	return pins_outstanding() != c->pins0 ? "DIRTY_PAGES START changed the pins" : NULL;
}

/* DIRTY_PAGES GET_BITMAP of a mapping while tracking is on. */
static long call_get_bitmap(struct fctx *c)
{
	memset(c->bm, 0, sizeof(c->bm));
	return dirty_get_bitmap(c->container, IOVA_BASE, c->len, PG, sizeof(c->bm), c->bm);
}

static const char *check_get_bitmap(struct fctx *c, long r)
{
	if (pins_outstanding() != c->pins0)
		return "GET_BITMAP changed the pins";
	return r == 0 && !bitmap_full(c) ? "bitmap not all dirty" : NULL;
}

/* SET_CONTAINER of the first group (vfio core only: no backend yet). */
static int setup_set_container(struct fctx *c)
{
	c->container = open("/dev/vfio/vfio", O_RDWR);
	if (c->container < 0)
		return -errno;
	c->group = group_open(0);
	return c->group < 0 ? c->group : 0;
}

static long call_set_container(struct fctx *c)
{
	return set_container(c->group, c->container);
}

static int ready_set_iommu(struct fctx *c)
{
	return xioctl(c->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
}

/* SET_IOMMU with one group: the backend opens and attaches a new domain. */
static int setup_set_iommu(struct fctx *c)
{
	int r = setup_set_container(c);

	return r ? r : set_container(c->group, c->container) ? -errno : 0;
}

static long call_set_iommu(struct fctx *c)
{
	return xioctl(c->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
}

/* A second group joins a container that has a domain and a mapping: merge
 * into the domain, or (if the move fails) a new domain and a replay. */
static int setup_second_group(struct fctx *c)
{
	int r = setup_edu_container(c);

	if (r || (r = map_buf(c)))
		return r;
	c->group2 = group_open(1);
	return c->group2 < 0 ? c->group2 : 0;
}

static long call_second_group(struct fctx *c)
{
	return set_container(c->group2, c->container);
}

static const char *check_second_group(struct fctx *c, long r)
{
	/* The mapping's pages are pinned once, whatever the domains. */
	return pins_outstanding() != c->pins0 ? "attach changed the pins" : NULL;
}

/* Plain UNMAP_DMA of the whole mapping. */
static long call_unmap(struct fctx *c)
{
	return dma_unmap(c->container, IOVA_BASE, c->len, 0, NULL);
}

static const char *check_unmap(struct fctx *c, long r)
{
	long pins = pins_outstanding(), npages = c->len / PG;

	if (r == 0)
		return pins != c->pins0 - npages ? "unmapped but pins not released" : NULL;
	return pins != c->pins0 && pins != c->pins0 - npages ?
	       "failed unmap released part of the mapping's pins" : NULL;
}

/* Closing the fd of one of two groups (merged into one domain) detaches it
 * from the backend; the other group keeps the container working. */
static int setup_two_groups(struct fctx *c)
{
	int r = setup_second_group(c);

	return r ? r : set_container(c->group2, c->container) ? -errno : 0;
}

static long call_close_group2(struct fctx *c)
{
	long r = close(c->group2) ? -errno : 0;

	c->group2 = -1;
	return r;
}

static const char *check_detach(struct fctx *c, long r)
{
	if (pins_outstanding() != c->pins0)
		return "detaching a group changed the mapping's pins";
	return still_works(c) ? "container broken after the detach" : NULL;
}

/* Closing the fd of the only group releases the backend's container:
 * every mapping is unmapped and unpinned. */
static long call_close_group(struct fctx *c)
{
	long r = close(c->group) ? -errno : 0;

	c->group = -1;
	return r;
}

static const char *check_release(struct fctx *c, long r)
{
	long npages = c->len / PG;

	if (pins_outstanding() != c->pins0 - npages || vmlck_kb() != c->lck0 - npages * (long)(PG / 1024))
		return "release left pins or locked_vm behind";
	return NULL;
}

/* An edu group joins a container that so far has only the mdev group and
 * a mapping of which the mdev pinned 4 pages: the first domain, and every
 * page of the mapping is pinned and mapped into it (pin-on-attach). */
static int setup_pin_on_attach(struct fctx *c)
{
	int r = setup_emu_container(c);

	if (r || (r = map_buf(c)))
		return r;
	r = trm_result(c, mdev_send(c, TRM_OP_PIN, IOVA_BASE, 4, NULL, 0), 4);
	if (r)
		return r;
	c->group = group_open(0);
	return c->group < 0 ? c->group : 0;
}

static long call_pin_on_attach(struct fctx *c)
{
	return set_container(c->group, c->container);
}

static const char *check_pin_on_attach(struct fctx *c, long r)
{
	long pins = pins_outstanding(), lck = vmlck_kb(), npages = c->len / PG;

	/* The 4 mdev-pinned pages are accounted already. */
	if (r == 0 && (pins != c->pins0 + npages || lck != c->lck0 + (npages - 4) * (long)(PG / 1024)))
		return "attached but the mapping is not pinned and accounted once";
	if (r != 0 && (pins != c->pins0 || lck != c->lck0))
		return "failed attach changed pins/VmLck";
	return NULL;
}

/* vfio_pin_pages of NPAGES_EMU pages in an emulated-only container. */
static int setup_emu(struct fctx *c)
{
	int r = setup_emu_container(c);

	return r ? r : map_buf(c);
}

static long call_emu_pin(struct fctx *c)
{
	return mdev_send(c, TRM_OP_PIN, IOVA_BASE, NPAGES_EMU, NULL, 0);
}

static long result_emu_pin(struct fctx *c, long r)
{
	return trm_result(c, r, NPAGES_EMU);
}

/* The pin references the driver holds now; -1 if it cannot be asked. */
static long trm_pinned(struct fctx *c)
{
	if (trm_run(&c->mdev, TRM_OP_NOP, 0, 0, 0, NULL, 0, &c->res))
		return -1;
	return c->res.pinned;
}

static const char *check_emu_pin(struct fctx *c, long r)
{
	long held = trm_pinned(c);

	if (r == 0)
		return held != NPAGES_EMU ? "driver does not hold the pins" :
		       check_pinned(c, 0, NPAGES_EMU, NPAGES_EMU * PG / 1024);
	if (held != 0)
		return "failed pin_pages left pins with the driver";
	return check_pinned(c, r, 0, 0);
}

/* Closing the mdev's fd while it holds NPAGES_EMU pins: its close_device
 * unpins them through the backend, which must take them all back. */
static int setup_emu_pinned(struct fctx *c)
{
	int r = setup_emu(c);

	return r ? r : trm_result(c, mdev_send(c, TRM_OP_PIN, IOVA_BASE, NPAGES_EMU, NULL, 0),
				  NPAGES_EMU);
}

static long call_close_dev(struct fctx *c)
{
	long r = close(c->mdev.fd) ? -errno : 0;

	c->mdev.fd = -1;
	return r;
}

static const char *check_close_dev(struct fctx *c, long r)
{
	if (pins_outstanding() != c->pins0 - NPAGES_EMU ||
	    vmlck_kb() != c->lck0 - (long)(NPAGES_EMU * PG / 1024))
		return "device close left pins or locked_vm behind";
	return still_works(c) ? "container broken after the device closed" : NULL;
}

/* vfio_dma_rw of 8 KiB from 2 KiB below a page boundary: it spans pages
 * (three with 4 KiB pages, two with 64 KiB). */
static uint8_t rw_data[TRM_DATA_MAX];
#define RW_OFF (PG - 2048)

static long call_emu_write(struct fctx *c)
{
	return mdev_send(c, TRM_OP_DMA_WRITE, IOVA_BASE + RW_OFF, 0, rw_data, sizeof(rw_data));
}

static long call_emu_read(struct fctx *c)
{
	return mdev_send(c, TRM_OP_DMA_READ, IOVA_BASE + RW_OFF, 0, NULL, sizeof(rw_data));
}

static long result_emu_rw(struct fctx *c, long r)
{
	return trm_result(c, r, 0);
}

static const char *check_emu_write(struct fctx *c, long r)
{
	if (r == 0 && memcmp(c->buf + RW_OFF, rw_data, sizeof(rw_data)))
		return "dma_rw write succeeded but the memory differs";
	return check_pinned(c, r, 0, 0);
}

static const char *check_emu_read(struct fctx *c, long r)
{
	if (r == 0 && memcmp(c->res.data, c->buf + RW_OFF, sizeof(rw_data)))
		return "dma_rw read succeeded but the data differs";
	return check_pinned(c, r, 0, 0);
}

/* GET_BITMAP and UNMAP with a bitmap over NMAP_DIRTY mappings of an
 * emulated-only container: each mapping is reported from its own record
 * (the pages dma_rw wrote), in turn. A failure other than EFAULT must come
 * before the first mapping is reported or removed. */
static uint64_t dbm[NMAP_DIRTY * NPAGES_DIRTY / 64];

#define DIRTY_MSIZE ((uint64_t)NPAGES_DIRTY * PG)

/* The bit of page j (0 or 1) that dma_rw writes in mapping i: one in the
 * mapping's first bitmap word, one in its 65th. */
static size_t dirty_bit(int i, int j)
{
	return (size_t)i * NPAGES_DIRTY + (j ? 4096 + i : 1 + i);
}

static int setup_emu_dirty(struct fctx *c)
{
	int r = setup_emu_container(c);

	for (int i = 0; !r && i < NMAP_DIRTY; i++)
		r = dma_map(c->container, IOVA_BASE + i * DIRTY_MSIZE, c->buf + i * DIRTY_MSIZE,
			    DIRTY_MSIZE, DMA_RW);
	if (!r)
		r = dirty_pages(c->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
	for (int i = 0; !r && i < NMAP_DIRTY * 2; i++)
		r = trm_result(c, mdev_send(c, TRM_OP_DMA_WRITE,
					    IOVA_BASE + dirty_bit(i / 2, i % 2) * PG, 0,
					    "written", 8), 0);
	c->avail0 = iommu_dma_avail(c->container);
	return r;
}

/* Whether dbm holds exactly the pages dma_rw wrote. */
static bool dbm_as_written(void)
{
	for (size_t b = 0; b < NMAP_DIRTY * NPAGES_DIRTY; b++) {
		bool want = false;

		for (int i = 0; i < NMAP_DIRTY * 2; i++)
			want |= b == dirty_bit(i / 2, i % 2);
		if (want != (bool)(dbm[b / 64] >> (b % 64) & 1))
			return false;
	}
	return true;
}

static long call_get_bitmap_emu(struct fctx *c)
{
	memset(dbm, 0, sizeof(dbm));
	return dirty_get_bitmap(c->container, IOVA_BASE, NMAP_DIRTY * DIRTY_MSIZE, PG,
				sizeof(dbm), dbm);
}

static long call_unmap_dirty_emu(struct fctx *c)
{
	memset(dbm, 0, sizeof(dbm));
	return dma_unmap_bitmap(c->container, IOVA_BASE, NMAP_DIRTY * DIRTY_MSIZE, PG,
				sizeof(dbm), dbm);
}

/* After a failure: every mapping still reports what was written (none was
 * reported and started over). */
static const char *check_records_kept(struct fctx *c)
{
	if (call_get_bitmap_emu(c))
		return "GET_BITMAP after the failure failed";
	return dbm_as_written() ? NULL : "failed call lost some mappings' dirty pages";
}

static const char *check_get_bitmap_emu(struct fctx *c, long r)
{
	if (r == 0)
		return dbm_as_written() ? NULL : "bitmap is not the pages written";
	/* A fault writing the bitmap may come after earlier mappings were
	 * reported and started over, as in C. */
	return r == -EFAULT ? NULL : check_records_kept(c);
}

static const char *check_unmap_dirty_emu(struct fctx *c, long r)
{
	long avail = iommu_dma_avail(c->container);

	if (r == 0)
		return avail != c->avail0 + NMAP_DIRTY ? "unmapped but mappings remain" :
		       !dbm_as_written() ? "bitmap is not the pages written" : NULL;
	/* As in C, a fault writing the bitmap (or the reply) may come after
	 * earlier mappings were removed. */
	if (r == -EFAULT)
		return NULL;
	if (avail != c->avail0)
		return "failed unmap removed some mappings";
	return check_records_kept(c);
}

/* --- the loop ------------------------------------------------------------ */

struct fstats {
	unsigned int tried, injected, failed, absorbed;
	int errnos[16], counts[16], nerr;
};

static void stats_errno(struct fstats *s, int e)
{
	int i;

	for (i = 0; i < s->nerr && s->errnos[i] != e; i++)
		;
	if (i == s->nerr) {
		if (s->nerr == 16)
			return;
		s->errnos[s->nerr++] = e;
	}
	s->counts[i]++;
}

static void stats_print(const char *op, const char *nth, const struct fstats *s)
{
	char buf[256] = "";
	size_t off = 0;

	for (int i = 0; i < s->nerr && off < sizeof(buf); i++)
		off += snprintf(buf + off, sizeof(buf) - off, "%s%s x%d", i ? ", " : "",
				strerrorname_np(s->errnos[i]) ?: "?", s->counts[i]);
	ksft_print_msg("%s [%s]: %u fault points tried, %u injected: %u failed with an errno (%s), %u absorbed (call succeeded)\n",
		       op, nth, s->tried, s->injected, s->failed, buf, s->absorbed);
}

/*
 * How the n-th fault is armed. fail-nth counts every fault point the task
 * reaches, but not fail_function's: its kprobes fire from the int3 trap,
 * which runs as NMI (in_task() is false) unless kprobes go through ftrace.
 * So our module's points get a sweep of their own: fail_function with
 * probability 100, times 1 and space n fails the n-th call of any of them
 * (the first n - 1 only use up space); times back at 0 means it fired.
 */
enum sweep { SWEEP_FAIL_NTH, SWEEP_FAIL_FUNCTION };

static const char *const sweep_name[] = { "fail-nth", "fail_function" };

static void fei_arm(unsigned int n)
{
	char v[16];

	snprintf(v, sizeof(v), "%u", n);
	write_str(DBGFS "/fail_function/space", v);
	write_str(DBGFS "/fail_function/times", "1");
	write_str(DBGFS "/fail_function/probability", "100");
}

static bool fei_disarm(void)
{
	write_str(DBGFS "/fail_function/probability", "0");
	return read_long(DBGFS "/fail_function/times") == 0;
}

static void arm(enum sweep how, unsigned int n)
{
	if (how == SWEEP_FAIL_NTH)
		fnth_arm(n);
	else
		fei_arm(n);
}

static bool disarm(enum sweep how)
{
	return how == SWEEP_FAIL_NTH ? fnth_disarm() : fei_disarm();
}

/* After a failed call: the same call without a fault succeeds, and the
 * container still maps and unmaps. */
static void after_failure(struct __test_metadata *_metadata, struct fctx *c,
			  const struct fop *op, unsigned int n, long r)
{
	long r2 = op->call(c);

	if (op->result)
		r2 = op->result(c, r2);
	EXPECT_EQ(0, r2) TH_LOG("%s n=%u: retry after %s failed: %s", op->name, n,
				strerror(-r), strerror(-r2));
	if (!r2 && op->ready)
		EXPECT_EQ(0, op->ready(c)) TH_LOG("%s n=%u: not ready", op->name, n);
	r2 = still_works(c);
	EXPECT_EQ(0, r2) TH_LOG("%s n=%u: MAP+UNMAP after failure: %s", op->name, n,
				strerror(-r2));
}

static void sweep(struct __test_metadata *_metadata, struct fctx *c, const struct fop *op,
		  enum sweep how)
{
	long pins_base = pins_outstanding(), lck_base = vmlck_kb();
	const char *nth = sweep_name[how];
	struct fstats s = { 0 };
	unsigned int n;
	const char *why;
	bool injected;
	long r;

	kmsg_new_splats(op->name, 0);
	for (n = 1; n <= MAX_NTH; n++) {
		c->container = c->group = c->group2 = c->mgroup = c->mdev.fd = -1;
		r = op->setup(c);
		ASSERT_EQ(0, r) TH_LOG("%s n=%u: setup failed: %s", op->name, n, strerror(-r));
		c->pins0 = pins_outstanding();
		c->lck0 = vmlck_kb();

		arm(how, n);
		r = op->call(c);
		injected = disarm(how);
		if (op->result)
			r = op->result(c, r);

		s.tried++;
		if (getenv("FAULT_TEST_VERBOSE"))
			ksft_print_msg("%s %s=%u: %s, r=%ld\n", op->name, nth, n,
				       injected ? "injected" : "not injected", r);
		if (injected) {
			s.injected++;
			if (r) {
				s.failed++;
				stats_errno(&s, (int)-r);
			} else {
				s.absorbed++;
			}
		}
		EXPECT_TRUE(r == 0 || (r < 0 && r > -4096))
			TH_LOG("%s %s=%u: odd result %ld", op->name, nth, n, r);
		why = op->check(c, r);
		EXPECT_EQ(NULL, why) TH_LOG("%s %s=%u (%s, r=%ld): %s", op->name, nth, n,
					    injected ? "injected" : "not injected", r, why);
		if (r)
			after_failure(_metadata, c, op, n, r);
		teardown_all(c);
		EXPECT_EQ(pins_base, pins_outstanding())
			TH_LOG("%s %s=%u: FOLL_PIN pins leaked", op->name, nth, n);
		EXPECT_EQ(lck_base, vmlck_kb())
			TH_LOG("%s %s=%u: VmLck leaked", op->name, nth, n);
		EXPECT_EQ(0, backend_refcnt())
			TH_LOG("%s %s=%u: module refcnt", op->name, nth, n);
		EXPECT_EQ(0, kmsg_new_splats(op->name, n))
			TH_LOG("%s: kernel splat (reproducer: this op, %s=%u)", op->name, nth, n);
		if (!injected) {
			EXPECT_EQ(0, r) TH_LOG("%s %s=%u: failed without an injected fault: %s",
					       op->name, nth, n, strerror(-r));
			break;
		}
		if (_metadata->exit_code != KSFT_PASS && getenv("FAULT_TEST_STOP_ON_ERROR"))
			break;
	}
	EXPECT_GT((unsigned int)MAX_NTH, n) TH_LOG("%s: never ran out of fault points", op->name);
	stats_print(op->name, nth, &s);
}

/*
 * Linux 6.12's should_fail() draws from the crng (get_random_u32_below())
 * even at probability 100; from fail_function's kprobe, which fires in the
 * int3 trap (NMI context), lockdep reports crngs.lock as "inconsistent lock
 * state" and then turns itself off for the rest of the boot. Later kernels
 * draw from prandom; scripts/build-selftests probes lib/fault-inject.c
 * (FAULT_INJECT_PRANDOM). There the sweep is not run, and each operation
 * says so.
 */
#ifdef FAULT_INJECT_PRANDOM
#define FAIL_FUNCTION_SAFE true
#else
#define FAIL_FUNCTION_SAFE false
#endif

/* Both sweeps (fail_function only with our backend: the points are ours). */
static void fault_loop(struct __test_metadata *_metadata, struct fctx *c,
		       const struct fop *op)
{
	c->scratch = anon_populated(PG);
	ASSERT_NE(NULL, c->scratch);
	sweep(_metadata, c, op, SWEEP_FAIL_NTH);
	if (!backend_is_c() && FAIL_FUNCTION_SAFE)
		sweep(_metadata, c, op, SWEEP_FAIL_FUNCTION);
	else if (!backend_is_c())
		ksft_print_msg("%s [fail_function]: not run: this kernel's should_fail() takes the crng lock in the kprobe's NMI context (a lockdep report of its own, Linux 6.12)\n",
			       op->name);
	munmap(c->scratch, PG);
}

/* --- no IOMMU work after a failed iommu_map ------------------------------- */

/*
 * kprobe events on iommu_map()'s entry and return (both backends call it
 * once per run and domain), recorded in a tracing instance of their own,
 * only for this process, on the global clock (the task may move between
 * CPUs mid-call). A MAP_DMA must not call iommu_map() again once a call
 * failed: a later run would be mapped at the failed run's IOVA.
 */
#define TRACEFS		"/sys/kernel/tracing"
#define MT_GROUP	"vfio_fault_map"
#define MT_INSTANCE	TRACEFS "/instances/" MT_GROUP

static struct {
	bool on;
	unsigned int failed;	/* failed iommu_map() calls seen, all n */
	unsigned int calls;	/* iommu_map() calls seen, all n */
} mt;

static int mt_kprobe(const char *line)
{
	return write_file_flags(TRACEFS "/kprobe_events", line, strlen(line), O_APPEND);
}

static void mt_clean(void)
{
	write_str(MT_INSTANCE "/events/" MT_GROUP "/enable", "0");
	rmdir(MT_INSTANCE);
	mt_kprobe("-:" MT_GROUP "/map_in\n");
	mt_kprobe("-:" MT_GROUP "/map_out\n");
	mt.on = false;
}

/* 0, or -errno with *what saying which step failed. */
static int mt_setup(const char **what)
{
	char pid[16];
	int r;

	mt_clean();
	snprintf(pid, sizeof(pid), "%d", getpid());
	*what = "kprobe_events (needs CONFIG_KPROBE_EVENTS, kretprobes)";
	r = mt_kprobe("p:" MT_GROUP "/map_in iommu_map\n");
	if (!r)
		r = mt_kprobe("r:" MT_GROUP "/map_out iommu_map ret=$retval:s32\n");
	if (r)
		return r;
	*what = MT_INSTANCE;
	if (mkdir(MT_INSTANCE, 0755))
		return -errno;
	r = write_str(MT_INSTANCE "/buffer_size_kb", "4096");
	if (!r)
		r = write_str(MT_INSTANCE "/trace_clock", "global");
	if (!r)
		r = write_str(MT_INSTANCE "/set_event_pid", pid);
	if (!r)
		r = write_str(MT_INSTANCE "/events/" MT_GROUP "/enable", "1");
	mt.on = !r;
	return r;
}

/*
 * Scans the calls since the buffer was last cleared: NULL, or why not. A
 * lost event (buffer overrun) would hide a call: that fails too.
 */
static const char *mt_scan(void)
{
	char line[512];
	bool failed = false;
	const char *why = NULL;
	FILE *f = fopen(MT_INSTANCE "/trace", "r");

	if (!f)
		return "cannot read the iommu_map trace";
	while (fgets(line, sizeof(line), f)) {
		const char *ret = strstr(line, " ret=");
		unsigned long kept, written;

		if (sscanf(line, "# entries-in-buffer/entries-written: %lu/%lu", &kept, &written) == 2 &&
		    kept != written)
			why = "iommu_map trace lost events";
		if (strstr(line, " map_in: ")) {
			mt.calls++;
			if (failed)
				why = "iommu_map() called again after an iommu_map() failed";
		} else if (strstr(line, " map_out: ") && ret && atoi(ret + 5) != 0) {
			failed = true;
			mt.failed++;
		}
	}
	fclose(f);
	return why;
}

/* MAP_DMA as setup_map, from an empty trace. */
static int setup_map_traced(struct fctx *c)
{
	int r = setup_map(c);

	return r ? r : write_str(MT_INSTANCE "/trace", "");
}

static const char *check_map_traced(struct fctx *c, long r)
{
	const char *why = mt_scan();

	return why ? why : check_map(c, r);
}

/* Faulted in odd pages first, then even ones: no two neighbours are
 * physically adjacent, so a GUP batch holds many runs. */
static void *anon_scattered(size_t len)
{
	char *p = mmap_aligned(len, PG, PROT_READ | PROT_WRITE);

	if (!p)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t off = PG; off < len; off += 2 * PG)
		p[off] = 1;
	for (size_t off = 0; off < len; off += 2 * PG)
		p[off] = 1;
	return p;
}

/* --- the tests ----------------------------------------------------------- */

FIXTURE(fault) {
	struct fctx c;
	struct leak_baseline base;
};

FIXTURE_SETUP(fault)
{
	const char *what = "";
	int r;

	memset(&self->c, 0, sizeof(self->c));
	self->c.container = self->c.group = self->c.group2 = -1;
	self->c.mgroup = self->c.mdev.fd = -1;
	self->c.old_nr_huge = -1;
	self->c.old_disable_hp = -1;
	if (!fault_injection_available())
		SKIP(return, "no fault injection (needs the debug kernel: FAULT_INJECTION_DEBUG_FS, FAILSLAB, FAIL_PAGE_ALLOC, FAIL_FUNCTION)");
	ASSERT_EQ(0, backend_refcnt()) TH_LOG("backend %s not loaded or in use", backend_module());
	leak_baseline_take(_metadata, &self->base);
	r = fi_configure(&what);
	ASSERT_EQ(0, r) TH_LOG("cannot arm %s: %s", what, strerror(-r));
	fnth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	ASSERT_GE(fnth_fd, 0);
	kmsg_open();
}

FIXTURE_TEARDOWN(fault)
{
	if (!fault_injection_available())
		return;
	fi_restore();
	teardown_all(&self->c);
	buf_free(&self->c);
	trm_remove(&self->c.mdev);
	if (self->c.old_nr_huge >= 0)
		write_long(self->c.nr_huge_path, self->c.old_nr_huge);
	if (self->c.old_disable_hp >= 0)
		backend_param_write("disable_hugepages", self->c.old_disable_hp);
	if (mt.on)
		mt_clean();
	close_fd(&fnth_fd);
	close_fd(&kmsg_fd);
	leak_check(_metadata, &self->base);
}

static void small_4k(struct __test_metadata *_metadata, struct fctx *c)
{
	c->len = NPAGES_UNMAP * PG;
	c->buf = anon_populated(c->len);
	ASSERT_NE(NULL, c->buf);
}

static void big_4k(struct __test_metadata *_metadata, struct fctx *c)
{
	c->len = NPAGES_BIG * PG;
	c->buf = anon_populated(c->len);
	ASSERT_NE(NULL, c->buf);
}

/* 600 s: its fail_function sweep fails each of its GUP and iommu_map calls
 * in turn (NPAGES_BIG pages, most of them a run of their own), which took
 * over 300 s under KASAN and TCG while other VMs ran beside it. */
TEST_F_TIMEOUT(fault, map_dma_4k, 600)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "map_dma_4k", .setup = setup_map,
		.call = call_map, .check = check_map });
}

TEST_F_TIMEOUT(fault, map_dma_4k_fault_in, 300)
{
	self->c.len = NPAGES_FAULTIN * PG;
	self->c.buf_faultin = true;
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "map_dma_4k_fault_in",
		.setup = setup_map, .call = call_map, .check = check_map });
}

TEST_F_TIMEOUT(fault, map_dma_thp, 300)
{
	struct fctx *c = &self->c;
	long thp0 = meminfo_kb("AnonHugePages");
	uint64_t thp = thp_size();

	/* Two THPs: 2 x 2 MiB with 4 KiB pages, 2 x 512 MiB with 64 KiB. */
	if (!thp)
		SKIP(return, "no THP (hpage_pmd_size unreadable)");
	if (2 * thp > meminfo_kb("MemAvailable") * 1024ULL / 2)
		SKIP(return, "two THPs of %llu MiB need more than half the available memory",
		     (unsigned long long)(thp >> 20));
	c->len = 2 * thp;
	c->buf = mmap_aligned(c->len, thp, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, c->buf);
	if (madvise(c->buf, c->len, MADV_HUGEPAGE))
		SKIP(return, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
	memset(c->buf, 0x22, c->len);
	if (meminfo_kb("AnonHugePages") < thp0 + (long)(2 * thp >> 10))
		SKIP(return, "no THP was allocated");
	fault_loop(_metadata, c, &(struct fop){ .name = "map_dma_thp", .setup = setup_map,
		.call = call_map, .check = check_map });
}

TEST_F_TIMEOUT(fault, map_dma_hugetlb, 300)
{
	/* The 2 MiB pool by its own controls: the default hugepage size
	 * (/proc/sys/vm/nr_hugepages, HugePages_Free) is 512 MiB with 64 KiB
	 * pages, where 2 MiB are contiguous PTEs. */
#define POOL_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"
	struct fctx *c = &self->c;
	long old;

	if (!hugetlb_size_offered(SZ_2M))
		SKIP(return, "the kernel offers no 2 MiB hugetlb pages");
	c->nr_huge_path = POOL_2M "nr_hugepages";
	old = read_long(c->nr_huge_path);
	if (old < 0)
		SKIP(return, "no nr_hugepages control");
	c->old_nr_huge = old;
	if (write_long(c->nr_huge_path, old + 2) || read_long(POOL_2M "free_hugepages") < 2)
		SKIP(return, "cannot reserve two 2M hugepages");
	c->len = 2 * SZ_2M;
	c->buf = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (c->buf == MAP_FAILED) {
		c->buf = NULL;
		SKIP(return, "mmap(MAP_HUGETLB): %s", strerror(errno));
	}
	memset(c->buf, 0x33, c->len);
	fault_loop(_metadata, c, &(struct fop){ .name = "map_dma_hugetlb", .setup = setup_map,
		.call = call_map, .check = check_map });
}

/*
 * MAP_DMA under fail-nth with iommu_map() traced: once a call failed, no
 * other follows (the C module stops at the first failure). With
 * disable_hugepages every page is a run of its own, so a GUP batch has
 * runs after the failed one whatever the memory; then the same without,
 * on scattered 4 KiB pages.
 */
TEST_F_TIMEOUT(fault, map_dma_no_map_after_failure, 300)
{
	struct fctx *c = &self->c;
	const char *what = "";
	int r = mt_setup(&what);

	if (r) {
		mt_clean();
		SKIP(return, "cannot trace iommu_map: %s: %s", what, strerror(-r));
	}
	c->old_disable_hp = backend_param_read_bool("disable_hugepages");
	ASSERT_LE(0, c->old_disable_hp);
	c->len = NPAGES_BIG * PG;
	c->buf = anon_scattered(c->len);
	ASSERT_NE(NULL, c->buf);
	c->scratch = anon_populated(PG);
	ASSERT_NE(NULL, c->scratch);
	for (int single = 1; single >= 0; single--) {
		ASSERT_EQ(0, backend_param_write("disable_hugepages", single));
		sweep(_metadata, c, &(struct fop){
			.name = single ? "map_dma_single_pages" : "map_dma_scattered",
			.setup = setup_map_traced, .call = call_map, .check = check_map_traced },
		      SWEEP_FAIL_NTH);
	}
	munmap(c->scratch, PG);
	ksft_print_msg("iommu_map: %u calls traced, %u failed\n", mt.calls, mt.failed);
	EXPECT_GT(mt.failed, 0u) TH_LOG("no iommu_map() failed: nothing was checked");
}

TEST_F_TIMEOUT(fault, unmap_dma_dirty_bitmap, 300)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "unmap_dma_dirty_bitmap",
		.setup = setup_unmap_dirty, .call = call_unmap_dirty,
		.check = check_unmap_dirty });
}

TEST_F_TIMEOUT(fault, dirty_pages_start, 300)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "dirty_pages_start",
		.setup = setup_dirty_start, .call = call_dirty_start,
		.check = check_dirty_start });
}

TEST_F_TIMEOUT(fault, dirty_pages_get_bitmap, 300)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "dirty_pages_get_bitmap",
		.setup = setup_unmap_dirty, .call = call_get_bitmap,
		.check = check_get_bitmap });
}

TEST_F_TIMEOUT(fault, attach_set_container, 300)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "attach_set_container",
		.setup = setup_set_container, .call = call_set_container,
		.check = check_none, .ready = ready_set_iommu });
}

TEST_F_TIMEOUT(fault, attach_set_iommu, 300)
{
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "attach_set_iommu",
		.setup = setup_set_iommu, .call = call_set_iommu, .check = check_none });
}

TEST_F_TIMEOUT(fault, attach_second_group, 300)
{
	if (!vfio_test_group_find(1, 1))
		SKIP(return, "needs two single-device groups");
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "attach_second_group",
		.setup = setup_second_group, .call = call_second_group,
		.check = check_second_group });
}

/* 600 s: the same sweep as map_dma_4k's, through the pin on attach. */
TEST_F_TIMEOUT(fault, attach_pin_on_attach, 600)
{
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "attach_pin_on_attach",
		.setup = setup_pin_on_attach, .call = call_pin_on_attach,
		.check = check_pin_on_attach });
}

TEST_F_TIMEOUT(fault, emulated_pin_pages, 300)
{
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	self->c.len = NPAGES_EMU * PG;
	self->c.buf = anon_populated(self->c.len);
	ASSERT_NE(NULL, self->c.buf);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_pin_pages",
		.setup = setup_emu, .call = call_emu_pin, .result = result_emu_pin,
		.check = check_emu_pin });
}

TEST_F_TIMEOUT(fault, emulated_dma_rw, 300)
{
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	self->c.len = NPAGES_EMU * PG;
	self->c.buf = anon_populated(self->c.len);
	ASSERT_NE(NULL, self->c.buf);
	for (size_t i = 0; i < sizeof(rw_data); i++)
		rw_data[i] = (uint8_t)(i * 7 + 1);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_dma_write",
		.setup = setup_emu, .call = call_emu_write, .result = result_emu_rw,
		.check = check_emu_write });
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_dma_read",
		.setup = setup_emu, .call = call_emu_read, .result = result_emu_rw,
		.check = check_emu_read });
}

TEST_F_TIMEOUT(fault, emulated_dirty_bitmap_mappings, 300)
{
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	self->c.len = NMAP_DIRTY * DIRTY_MSIZE;
	self->c.buf = mmap_aligned(self->c.len, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->c.buf);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_get_bitmap_mappings",
		.setup = setup_emu_dirty, .call = call_get_bitmap_emu,
		.check = check_get_bitmap_emu });
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_unmap_bitmap_mappings",
		.setup = setup_emu_dirty, .call = call_unmap_dirty_emu,
		.check = check_unmap_dirty_emu });
}

TEST_F_TIMEOUT(fault, unmap_dma, 300)
{
	small_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "unmap_dma",
		.setup = setup_dirty_start, .call = call_unmap, .check = check_unmap });
}

/*
 * Closing a vfio-pci group's fd ends in vfio core's
 * iommu_group_release_dma_owner(), whose re-attach of the default domain
 * must succeed (iommu.c: WARN_ON in __iommu_group_set_domain_nofail) but
 * allocates in intel-iommu: a fault injected there WARNs with either
 * backend. Opt-in (FAULT_TEST_GROUP_RELEASE=1) so that the debug kernel's
 * WARN check stays meaningful.
 */
static bool group_release_opted_in(void)
{
	return getenv("FAULT_TEST_GROUP_RELEASE") != NULL;
}

#define GROUP_RELEASE_SKIP "faults in vfio core's release_dma_owner WARN in the iommu core (either backend); FAULT_TEST_GROUP_RELEASE=1 runs it"

TEST_F_TIMEOUT(fault, detach_group, 300)
{
	if (!group_release_opted_in())
		SKIP(return, GROUP_RELEASE_SKIP);
	if (!vfio_test_group_find(1, 1))
		SKIP(return, "needs two single-device groups");
	big_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "detach_group",
		.setup = setup_two_groups, .call = call_close_group2,
		.check = check_detach });
}

TEST_F_TIMEOUT(fault, release_last_group, 300)
{
	if (!group_release_opted_in())
		SKIP(return, GROUP_RELEASE_SKIP);
	small_4k(_metadata, &self->c);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "release_last_group",
		.setup = setup_dirty_start, .call = call_close_group,
		.check = check_release });
}

TEST_F_TIMEOUT(fault, emulated_close_device, 300)
{
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	self->c.len = NPAGES_EMU * PG;
	self->c.buf = anon_populated(self->c.len);
	ASSERT_NE(NULL, self->c.buf);
	fault_loop(_metadata, &self->c, &(struct fop){ .name = "emulated_close_device",
		.setup = setup_emu_pinned, .call = call_close_dev,
		.check = check_close_dev });
}

/* --- a charge move is one locked_vm update ------------------------------ */

#include <sys/resource.h>
#include <sys/wait.h>
#include <linux/capability.h>

#define CM_NPAGES	16	/* the mapping */
#define CM_PIN		4	/* of which the mdev pins the first */

/* Drops CAP_IPC_LOCK (so that RLIMIT_MEMLOCK applies); 0 or -errno. */
static int cm_drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/* Only vfio_rs_lock_acct, failing with -EINTR; 0 or -errno. */
static int cm_inject_eintr(void)
{
	char val[32];
	int r;

	fei_clear();
	r = write_str(DBGFS "/fail_function/inject", "vfio_rs_lock_acct");
	if (r)
		return r;
	snprintf(val, sizeof(val), "%#lx", (unsigned long)-(long)EINTR);
	return write_str(DBGFS "/fail_function/vfio_rs_lock_acct/retval", val);
}

/* The emulated container, CM_NPAGES mapped (with the edu group attached
 * first if edu), the first CM_PIN pinned by the mdev; NULL or why not. */
static const char *cm_setup(struct fctx *c, bool edu, bool rlimited)
{
	c->len = CM_NPAGES * PG;
	c->buf = mmap_aligned(c->len, PG, PROT_READ | PROT_WRITE);
	if (!c->buf || setup_emu_container(c))
		return "setup: emulated container";
	memset(c->buf, 0x5a, c->len);
	if (edu && ((c->group = group_open(0)) < 0 || set_container(c->group, c->container)))
		return "setup: edu group";
	if (rlimited && cm_drop_ipc_lock())
		return "setup: dropping CAP_IPC_LOCK";
	if (map_buf(c))
		return "setup: MAP_DMA";
	if (trm_result(c, mdev_send(c, TRM_OP_PIN, IOVA_BASE, CM_PIN, NULL, 0), CM_PIN))
		return "setup: pin_pages";
	return NULL;
}

/* The device unpins its pages: VmLck must go down by exactly them. */
static const char *cm_unpin(struct fctx *c, long lck)
{
	if (trm_result(c, mdev_send(c, TRM_OP_UNPIN, IOVA_BASE, CM_PIN, NULL, 0), CM_PIN))
		return "unpin_pages failed";
	return vmlck_kb() != lck - CM_PIN * (long)PG / 1024 ?
	       "unpinning the device's pages did not give back exactly their charge" : NULL;
}

/* The last IOMMU group leaves, the n-th vfio_rs_lock_acct call failed. */
static const char *cm_detach(struct fctx *c, unsigned int n, bool *injected)
{
	long lck0 = vmlck_kb(), kb = PG / 1024, lck;
	const char *why = cm_setup(c, true, false);

	if (why)
		return why;
	if (vmlck_kb() != lck0 + CM_NPAGES * kb)
		return "setup: VmLck is not the mapping";
	fei_arm(n);
	if (xioctl(c->group, VFIO_GROUP_UNSET_CONTAINER, 0))
		return "UNSET_CONTAINER failed";
	*injected = fei_disarm();
	lck = vmlck_kb();
	/* C: one update; if it failed, nothing changed (the rest of the
	 * mapping's charge stays with nobody: this mm goes with the child). */
	if (lck != lck0 + (*injected ? CM_NPAGES : CM_PIN) * kb)
		return *injected ? "the detach's failed update changed VmLck (the device's pages uncharged?)" :
		       "after the detach VmLck is not the device's pages";
	return cm_unpin(c, lck);
}

/* An IOMMU group joins over RLIMIT_MEMLOCK (the limit is the device's
 * pages), the n-th vfio_rs_lock_acct call failed: the join fails either
 * way and the device's pages stay charged. */
static const char *cm_attach(struct fctx *c, unsigned int n, bool *injected)
{
	long lck0 = vmlck_kb(), kb = PG / 1024;
	struct rlimit rl = { .rlim_cur = (lck0 + CM_PIN * kb) * 1024 };
	const char *why = cm_setup(c, false, true);

	if (why)
		return why;
	rl.rlim_max = rl.rlim_cur;
	if (vmlck_kb() != lck0 + CM_PIN * kb || setrlimit(RLIMIT_MEMLOCK, &rl))
		return "setup: VmLck is not the device's pages, or setrlimit";
	c->group = group_open(0);
	if (c->group < 0)
		return "setup: edu group";
	fei_arm(n);
	if (!set_container(c->group, c->container))
		return "the join over RLIMIT_MEMLOCK succeeded";
	*injected = fei_disarm();
	if (vmlck_kb() != lck0 + CM_PIN * kb)
		return "a failed join changed VmLck (the device's pages uncharged?)";
	return cm_unpin(c, vmlck_kb());
}

/* Runs fn in a child process (its mm takes what a failed update leaves
 * charged to nobody, as C would); NULL or why not. */
static const char *cm_in_child(struct fctx *c, unsigned int n, bool *injected,
			       const char *(*fn)(struct fctx *, unsigned int, bool *))
{
	static struct { char why[160]; bool injected; } out;
	int p[2], st;
	pid_t pid;

	if (pipe(p))
		return "pipe";
	memset(&out, 0, sizeof(out));
	pid = fork();
	if (pid == 0) {
		const char *why = fn(c, n, &out.injected);

		snprintf(out.why, sizeof(out.why), "%s", why ? why : "");
		_exit(write(p[1], &out, sizeof(out)) == sizeof(out) ? 0 : 1);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &out, sizeof(out)) != sizeof(out))
		snprintf(out.why, sizeof(out.why), "the child died");
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	fei_disarm();	/* should the child have stopped before it did */
	*injected = out.injected;
	return out.why[0] ? out.why : NULL;
}

/*
 * When the first IOMMU domain comes or the last goes, the charge of the
 * pages an emulated device pinned moves between its pins and the
 * mapping's full pin. The C module makes one locked_vm update of it
 * (vfio_pin_pages_remote() charges the pages no device pinned;
 * vfio_iommu_unmap_unpin_reaccount() and the replay unwind one net
 * vfio_lock_acct()): if that fails (-EINTR, a fatal signal while mmap_lock
 * is contended) nothing changed. Here the n-th call of vfio_rs_lock_acct
 * fails with -EINTR, n = 1, 2, ... until none is reached: after the detach
 * the device's pages are charged, after a join that failed over
 * RLIMIT_MEMLOCK still charged, and unpinning them gives back exactly
 * them. vfio-type1-rs made two updates there (give back, then charge
 * again): a failure of the second left the device's pages uncharged.
 * Our backend only (the point is ours); each n in a child process.
 */
TEST_F_TIMEOUT(fault, charge_move_one_update, 300)
{
	static const struct {
		const char *name;
		const char *(*fn)(struct fctx *, unsigned int, bool *);
	} cases[] = { { "detach", cm_detach }, { "attach", cm_attach } };
	bool injected = true;
	const char *why;
	unsigned int n;
	int r;

	if (backend_is_c())
		SKIP(return, "the fault point is our backend's (vfio_rs_lock_acct)");
	if (!FAIL_FUNCTION_SAFE)
		SKIP(return, "fail_function is not safe on this kernel (see FAIL_FUNCTION_SAFE)");
	ASSERT_EQ(0, mdev_create(&self->c)) TH_LOG("cannot create a test mdev");
	r = cm_inject_eintr();
	ASSERT_EQ(0, r) TH_LOG("cannot inject into vfio_rs_lock_acct: %s", strerror(-r));
	for (unsigned int i = 0; i < 2; i++) {
		for (n = 1, injected = true; injected && n < 20; n++) {
			why = cm_in_child(&self->c, n, &injected, cases[i].fn);
			EXPECT_EQ(NULL, why) TH_LOG("%s, lock_acct call %u failed (%s): %s",
						    cases[i].name, n,
						    injected ? "injected" : "not reached", why);
		}
		ksft_print_msg("%s: %u lock_acct calls failed in turn\n", cases[i].name, n - 2);
		EXPECT_FALSE(injected);
	}
}

/* After all of the above nothing may hold the backend: it unloads. Loaded
 * again for the tests that follow. */
TEST_F_TIMEOUT(fault, backend_unloads, 300)
{
	int r, i;

	/* A test killed on timeout may still be letting go of its fds. */
	for (i = 0; i < 100 && backend_refcnt() > 0; i++)
		usleep(100000);
	ASSERT_EQ(0, backend_refcnt());
	fi_restore();	/* no kprobe left on the module */
	r = backend_unload();
	EXPECT_EQ(0, r) TH_LOG("rmmod %s: %s", backend_module(), strerror(-r));
	if (!r)
		ASSERT_EQ(0, backend_load()) TH_LOG("reloading %s failed", backend_module());
	EXPECT_EQ(0, backend_refcnt());
}

TEST_HARNESS_MAIN
