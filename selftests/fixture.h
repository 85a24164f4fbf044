/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one fixture header of the vfio-type1-rs kselftests: everything a test
 * needs besides the edu driver (edu.h).
 *
 *  1. VFIO groups and containers: find the groups the test VM provides
 *     (scripts/vm), open and attach them; the backend module under test
 *     ($VFIO_BACKEND_MODULE, set by the VM's init): refcnt, unload, load.
 *  2. Leak accounting (outstanding FOLL_PIN pins, this process's VmLck and
 *     the backend module's refcnt: a baseline taken in FIXTURE_SETUP and
 *     compared in FIXTURE_TEARDOWN after every fd is closed), the backend's
 *     module parameters, and thin MAP_DMA / UNMAP_DMA / DIRTY_PAGES /
 *     GET_INFO wrappers returning -errno.
 *  3. For the tests: which backend runs (backend_is_c(), BUG_C()), the
 *     common IOVAs and sizes, container/group setup in one call, and the
 *     test mdev driver's command ABI (selftests/mdev/vfio_rs_test_mdev.c)
 *     with helpers to load it, create an mdev and open and drive it.
 *
 * Include it after kselftest_harness.h: the helpers that ASSERT (leak
 * baseline and check, fixture setup) exist only when the harness is
 * included; the rest is plain C for programs with their own main().
 *
 * vfio_util.h and leak_util.h are thin includes of parts 1 and 1-2 only
 * (FIXTURE_PART 1 or 2): the names they always offered, and none of
 * part 3, which programs including them may define themselves.
 */

/* ---- 1. VFIO groups, containers, the backend module --------------------- */
#ifndef FIXTURE_VFIO_H
#define FIXTURE_VFIO_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/vfio.h>

#define MAX_GROUPS 16
#define MAX_GROUP_DEVICES 8

struct vfio_test_group {
	int id;
	int ndev;                              /* devices bound to vfio-pci */
	char dev[MAX_GROUP_DEVICES][32];       /* their BDFs */
};

/* The groups whose devices are bound to vfio-pci, sorted by group id. */
static inline int vfio_test_groups(struct vfio_test_group *groups, int max)
{
	DIR *d = opendir("/sys/bus/pci/drivers/vfio-pci");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX], link[PATH_MAX];
		ssize_t len;
		int id, i;

		if (!strchr(e->d_name, ':'))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = 0;
		id = atoi(strrchr(link, '/') + 1);
		for (i = 0; i < n && groups[i].id != id; i++)
			;
		if (i == n) {
			if (n == max)
				continue;
			memset(&groups[n], 0, sizeof(groups[n]));
			groups[n++].id = id;
		}
		if (groups[i].ndev < MAX_GROUP_DEVICES)
			snprintf(groups[i].dev[groups[i].ndev++], 32, "%.31s", e->d_name);
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (groups[j].id < groups[i].id) {
				struct vfio_test_group t = groups[i];
				groups[i] = groups[j];
				groups[j] = t;
			}
	return n;
}

/* The k-th group with exactly one device (min_devices == 1) or with at
 * least min_devices devices; NULL if there is none. */
static inline const struct vfio_test_group *
vfio_test_group_find(int min_devices, int k)
{
	static struct vfio_test_group groups[MAX_GROUPS];
	int n = vfio_test_groups(groups, MAX_GROUPS);

	for (int i = 0; i < n; i++) {
		bool match = min_devices == 1 ? groups[i].ndev == 1
					      : groups[i].ndev >= min_devices;
		if (match && k-- == 0)
			return &groups[i];
	}
	return NULL;
}

static inline int vfio_open_group(int id)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	return open(path, O_RDWR);
}

/* Opens the group and checks it is viable; -errno on failure. */
static inline int vfio_open_viable_group(int id)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	int fd = vfio_open_group(id);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st) || !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		close(fd);
		return -EBUSY;
	}
	return fd;
}

/* ioctl returning -errno on failure, like the kernel does. */
static inline long xioctl(int fd, unsigned long req, unsigned long arg)
{
	long r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

/* Opens group id into container (setting the IOMMU type if iommu_type is
 * non-zero); returns the group fd or -errno. */
static inline int vfio_group_attach(int container, int id, unsigned long iommu_type)
{
	int fd = vfio_open_viable_group(id);
	long r;

	if (fd < 0)
		return fd;
	r = xioctl(fd, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container);
	if (!r && iommu_type)
		r = xioctl(container, VFIO_SET_IOMMU, iommu_type);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

/* A number read from a file; -1 if unreadable. */
static inline long read_long(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* A module's reference count (/sys/module/M/refcnt); -1 if not loaded. */
static inline int sysfs_module_refcnt(const char *module)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", module);
	return read_long(path);
}

static inline const char *backend_module(void)
{
	const char *m = getenv("VFIO_BACKEND_MODULE");

	return m ? m : "vfio_iommu_type1_rs";
}

/* The backend module's reference count; -1 if not loaded. */
static inline int backend_refcnt(void)
{
	return sysfs_module_refcnt(backend_module());
}

/* delete_module(2) without waiting; -errno on failure. */
static inline int backend_unload(void)
{
	return syscall(__NR_delete_module, backend_module(), O_NONBLOCK) ? -errno : 0;
}

static inline int backend_load(void)
{
	const char *cmd = getenv("VFIO_BACKEND_LOAD");

	return cmd ? system(cmd) : -1;
}

#endif /* FIXTURE_VFIO_H */

/* ---- 2. Leak accounting, module parameters, type1 ioctls ---------------- */
#if (!defined(FIXTURE_PART) || FIXTURE_PART >= 2) && !defined(FIXTURE_LEAK_H)
#define FIXTURE_LEAK_H

#include <sys/utsname.h>

#define SZ_4K  0x1000UL
#define SZ_64K 0x10000UL
#define SZ_2M  0x200000UL
#define SZ_1G  0x40000000UL

/* The kernel's base page size: 4 KiB, or 16 or 64 KiB on arm64 kernels
 * built so (arm64 servers). Every size, alignment, count and bitmap
 * granule in the suite that is about pages comes from it (PG); SZ_4K is
 * only ever a size that is not a page. */
static inline uint64_t page_size_bytes(void)
{
	static uint64_t pg;

	if (!pg)
		pg = (uint64_t)sysconf(_SC_PAGESIZE);
	return pg;
}

/* Pages of [0, bytes), rounded up. */
static inline uint64_t pages_of(uint64_t bytes)
{
	return (bytes + page_size_bytes() - 1) / page_size_bytes();
}

/* The THP (PMD) size the kernel reports: 2 MiB with 4 KiB pages, 32 MiB
 * with 16 KiB, 512 MiB with 64 KiB; 0 if THP is not built in. */
static inline uint64_t thp_size(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
	unsigned long long v = 0;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

/* Whether the kernel offers hugetlb pages of size bytes (a
 * /sys/kernel/mm/hugepages/hugepages-<kB>kB directory): 2 MiB exists with
 * 4 KiB pages (PMD) and with 64 KiB pages (contiguous PTEs). */
static inline bool hugetlb_size_offered(uint64_t size)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB",
		 (unsigned long long)(size >> 10));
	return access(path, F_OK) == 0;
}

/* Flush the per-cpu vmstat deltas into the global counters, so that
 * /proc/vmstat is exact (root only; ignored if sysctl is missing). */
static inline void vmstat_refresh(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	if (fd >= 0) {
		ssize_t r = write(fd, "1\n", 2);	/* best effort */

		(void)r;
		close(fd);
	}
}

/* A /proc/vmstat counter; -1 if absent. */
static inline long vmstat_read(const char *name)
{
	char key[64];
	long v, r = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name)) {
			r = v;
			break;
		}
	fclose(f);
	return r;
}

/* FOLL_PIN pins currently held system-wide (acquired - released). */
static inline long pins_outstanding(void)
{
	long a, r;

	vmstat_refresh();
	a = vmstat_read("nr_foll_pin_acquired");
	r = vmstat_read("nr_foll_pin_released");
	if (a < 0 || r < 0)
		return LONG_MIN;
	return a - r;
}

/* The first "Key:  N kB" line of a /proc file (status, meminfo) in kB;
 * -1 if absent. */
static inline long proc_file_kb(const char *path, const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A "Key:  N kB" line of /proc/self/status in kB; -1 if absent. */
static inline long proc_status_kb(const char *key)
{
	return proc_file_kb("/proc/self/status", key);
}

/* A /proc/meminfo field in kB; -1 if absent. */
static inline long meminfo_kb(const char *key)
{
	return proc_file_kb("/proc/meminfo", key);
}

static inline long vmlck_kb(void)
{
	return proc_status_kb("VmLck");
}

struct leak_baseline {
	long pins;
	long vmlck;
};

#ifdef __KSELFTEST_HARNESS_H
static inline void leak_baseline_take(struct __test_metadata *_metadata,
				      struct leak_baseline *b)
{
	b->pins = pins_outstanding();
	b->vmlck = vmlck_kb();
	ASSERT_NE(LONG_MIN, b->pins) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_GE(b->vmlck, 0) TH_LOG("no VmLck in /proc/self/status");
}

/* Pins and VmLck are back to the baseline; call after every fd that could
 * hold them (container, group, device) is closed. */
static inline void leak_check_pins(struct __test_metadata *_metadata,
				   const struct leak_baseline *b)
{
	EXPECT_EQ(b->pins, pins_outstanding()) TH_LOG("FOLL_PIN pins leaked");
	EXPECT_EQ(b->vmlck, vmlck_kb()) TH_LOG("VmLck not back to baseline");
}

/* The same and the backend module unreferenced: call after every
 * container/group/device fd of the test is closed. */
static inline void leak_check(struct __test_metadata *_metadata,
			      const struct leak_baseline *b)
{
	leak_check_pins(_metadata, b);
	EXPECT_EQ(0, backend_refcnt()) TH_LOG("%s refcnt not back to 0", backend_module());
}
#endif

static inline void backend_param_path(char *path, size_t len, const char *param)
{
	snprintf(path, len, "/sys/module/%s/parameters/%s", backend_module(), param);
}

/* Backend module parameter; -1 on failure. */
static inline long backend_param_read(const char *param)
{
	char path[256];

	backend_param_path(path, sizeof(path), param);
	return read_long(path);
}

/* A bool backend module parameter (reads as Y or N, accepts 1 and 0 too);
 * -1 if unreadable. */
static inline long backend_param_read_bool(const char *param)
{
	char path[256], c = 0;
	FILE *f;

	backend_param_path(path, sizeof(path), param);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, " %c", &c) != 1)
		c = 0;
	fclose(f);
	return c == 'Y' || c == '1' ? 1 : c == 'N' || c == '0' ? 0 : -1;
}

/* Writes len bytes of buf to path in one write(), the file opened with
 * O_WRONLY | flags; 0 or -errno. */
static inline int write_file_flags(const char *path, const void *buf, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | flags), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != (ssize_t)len)
		r = -errno;
	close(fd);
	return r;
}

/* Writes len bytes of buf to path in one write(); 0 or -errno. */
static inline int write_file(const char *path, const void *buf, size_t len)
{
	return write_file_flags(path, buf, len, O_TRUNC);
}

/* 0 or -errno. */
static inline int write_long(const char *path, long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", v);

	return write_file(path, buf, n);
}

static inline int backend_param_write(const char *param, long v)
{
	char path[256];

	backend_param_path(path, sizeof(path), param);
	return write_long(path, v);
}

static inline long dma_map(int container, uint64_t iova, void *vaddr, uint64_t size,
			   uint32_t flags)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = flags,
		.vaddr = (uintptr_t)vaddr, .iova = iova, .size = size,
	};

	return xioctl(container, VFIO_IOMMU_MAP_DMA, (unsigned long)&m);
}

#define DMA_RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* Returns 0 / -errno; *unmapped gets the struct's size field afterwards
 * (left as UINT64_MAX sentinel by the caller's choice if not written). */
static inline long dma_unmap(int container, uint64_t iova, uint64_t size, uint32_t flags,
			     uint64_t *unmapped)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .flags = flags, .iova = iova, .size = size,
	};
	long r = xioctl(container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&u);

	if (unmapped)
		*unmapped = u.size;
	return r;
}

/* UNMAP_DMA with GET_DIRTY_BITMAP of [iova, iova + size) at pgsize into
 * data (bmsize bytes); 0 or -errno. */
static inline long dma_unmap_bitmap(int container, uint64_t iova, uint64_t size,
				    uint64_t pgsize, uint64_t bmsize, void *data)
{
	struct {
		struct vfio_iommu_type1_dma_unmap u;
		struct vfio_bitmap b;
	} a = {
		.u = { .argsz = sizeof(a), .flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		       .iova = iova, .size = size },
		.b = { .pgsize = pgsize, .size = bmsize, .data = data },
	};

	return xioctl(container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&a);
}

/* VFIO_IOMMU_DIRTY_PAGES with flags (START or STOP); 0 or -errno. */
static inline long dirty_pages(int container, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = sizeof(d), .flags = flags };

	return xioctl(container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&d);
}

/* DIRTY_PAGES GET_BITMAP of [iova, iova + size) at pgsize into data (bmsize
 * bytes); 0 or -errno. */
static inline long dirty_get_bitmap(int container, uint64_t iova, uint64_t size,
				    uint64_t pgsize, uint64_t bmsize, void *data)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap hdr;
		struct vfio_iommu_type1_dirty_bitmap_get get;
	} a = {
		.hdr = { .argsz = sizeof(a), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.get = { .iova = iova, .size = size,
			 .bitmap = { .pgsize = pgsize, .size = bmsize, .data = data } },
	};

	return xioctl(container, VFIO_IOMMU_DIRTY_PAGES, (unsigned long)&a);
}

/* Full VFIO_IOMMU_GET_INFO into buf (bufsz bytes); 0 or -errno. */
static inline long iommu_get_info(int container, void *buf, uint32_t bufsz)
{
	struct vfio_iommu_type1_info *info = buf;

	memset(buf, 0, bufsz);
	info->argsz = bufsz;
	return xioctl(container, VFIO_IOMMU_GET_INFO, (unsigned long)buf);
}

/* The capability with this id in a GET_INFO result, NULL if absent. */
static inline struct vfio_info_cap_header *
iommu_info_cap(void *buf, uint32_t bufsz, uint16_t id)
{
	struct vfio_iommu_type1_info *info = buf;
	uint32_t off;
	int hops = 0;

	if (!(info->flags & VFIO_IOMMU_INFO_CAPS))
		return NULL;
	for (off = info->cap_offset; off && off + sizeof(struct vfio_info_cap_header) <= bufsz;
	     hops++) {
		struct vfio_info_cap_header *h = (void *)((char *)buf + off);

		if (hops > 16)
			return NULL;
		if (h->id == id)
			return h;
		off = h->next;
	}
	return NULL;
}

/* The DMA_AVAIL capability's avail; -1 if missing or GET_INFO failed. */
static inline long iommu_dma_avail(int container)
{
	char buf[4096];
	struct vfio_iommu_type1_info_dma_avail *c;

	if (iommu_get_info(container, buf, sizeof(buf)))
		return -1;
	c = (void *)iommu_info_cap(buf, sizeof(buf), VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	return c ? (long)c->avail : -1;
}

static inline bool arch_is_arm64(void)
{
#ifdef __aarch64__
	return true;
#else
	return false;
#endif
}

/* Anonymous private mapping of size bytes aligned to align; NULL on failure.
 * The unused head/tail are unmapped; free with munmap(p, size). */
static inline void *mmap_aligned(size_t size, size_t align, int prot)
{
	size_t len = size + align;
	char *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, a - p);
	if (p + len > a + size)
		munmap(a + size, p + len - (a + size));
	return a;
}

#endif /* FIXTURE_LEAK_H */

/* ---- 3. For the tests ---------------------------------------------------- */
#if !defined(FIXTURE_PART) && !defined(FIXTURE_H)
#define FIXTURE_H

/* IOVAs valid in both arches' IOMMU apertures, and below 4 GiB: edu's
 * dma_mask. */
#define IOVA_BASE	0x10000000ULL
#define IOVA_1G		0x40000000ULL
/* One base page (page_size_bytes()): not a constant expression. */
#define PG		page_size_bytes()

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

/* The backend the VM loaded ($VFIO_BACKEND: "rust" or "c"). */
static inline bool backend_is(const char *name)
{
	const char *b = getenv("VFIO_BACKEND");

	return b && !strcmp(b, name);
}

static inline bool backend_is_c(void)
{
	return backend_is("c");
}

static inline bool backend_is_rust(void)
{
	return backend_is("rust");
}

/* SKIP the rest of a test, unless an EXPECT already failed: the harness's
 * SKIP would overwrite that failure with a skip. */
#define SKIP_REST(statement, fmt, ...) do {				\
	if (_metadata->exit_code == KSFT_FAIL) {			\
		statement;						\
	}								\
	SKIP(statement, fmt, ##__VA_ARGS__);				\
} while (0)

/* The value each backend must give where the C module has a bug. */
#define BUG_C(c_value, rust_value) (backend_is_c() ? (c_value) : (rust_value))

/*
 * Where the C module differs by kernel (scripts/build-selftests probes the
 * kernel's vfio_iommu_type1.c, as Kbuild does for our module):
 * E_WRAP: the errno for a range past 2^64: EOVERFLOW from Linux 7.2 on,
 * EINVAL on 6.12 (before type1's overflow rework).
 * BUG_C_OLD: on 6.12 the C module cannot find a mapping that ends at 2^64
 * (vfio_find_dma() computes iova + size, which wraps to 0), so it cannot
 * pin, copy through or unmap it; 7.x fixed that; ours never had it.
 */
#ifdef TYPE1_C_EOVERFLOW
#define E_WRAP EOVERFLOW
#define BUG_C_OLD(c_value, value) (value)
#else
#define E_WRAP EINVAL
#define BUG_C_OLD(c_value, value) BUG_C(c_value, value)
#endif
#ifdef TYPE1_C_NESTING
#define TYPE1_NESTING_ADVERTISED 1
#else
#define TYPE1_NESTING_ADVERTISED 0
#endif

/* 0 or -errno. */
static inline int write_str(const char *path, const char *s)
{
	return write_file(path, s, strlen(s));
}

/* vfio-type1-rs's debugfs view of its containers. */
#define RS_VIEW "/sys/kernel/debug/vfio_iommu_type1_rs/containers"

/* Reads the whole view into buf as a string; -errno on failure. */
static inline int read_view(char *buf, size_t len)
{
	int fd = open(RS_VIEW, O_RDONLY);
	size_t off = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (off < len - 1 && (n = read(fd, buf + off, len - 1 - off)) > 0)
		off += n;
	buf[off] = 0;
	close(fd);
	return 0;
}

/* The IOMMU a PCI device is behind (its sysfs iommu link's name). */
static inline int pci_dev_iommu(const char *bdf, char *name, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = 0;
	snprintf(name, len, "%.*s", (int)len - 1, strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
	return 0;
}

/*
 * The first single-device group (a) and the first single-device group
 * behind another IOMMU (b); false if every group is behind a's IOMMU.
 */
static inline bool groups_on_two_iommus(struct vfio_test_group *a, struct vfio_test_group *b,
					char *iommu_a, char *iommu_b, size_t len)
{
	static struct vfio_test_group groups[MAX_GROUPS];
	int n = vfio_test_groups(groups, MAX_GROUPS);
	bool have_a = false;

	for (int i = 0; i < n; i++) {
		char name[128];

		if (groups[i].ndev != 1 || pci_dev_iommu(groups[i].dev[0], name, sizeof(name)))
			continue;
		if (!have_a) {
			*a = groups[i];
			snprintf(iommu_a, len, "%s", name);
			have_a = true;
		} else if (strcmp(name, iommu_a)) {
			*b = groups[i];
			snprintf(iommu_b, len, "%s", name);
			return true;
		}
	}
	return false;
}

/* Our debugfs view: the index of the domain group gid is in, -1 if none
 * ("  domain K: ..., groups G1 G2 ..." lines). */
static inline int view_domain_of(int gid)
{
	static char view[1 << 16];

	if (read_view(view, sizeof(view)))
		return -1;
	for (char *p = view; (p = strstr(p, "\n  domain ")); p++) {
		char *eol = strchr(p + 1, '\n'), *g = strstr(p, ", groups ");
		int k = atoi(p + strlen("\n  domain "));

		if (!g || (eol && g > eol))
			continue;
		g += strlen(", groups ");
		while (g && (!eol || g < eol)) {
			char *end;
			long v = strtol(g, &end, 10);

			if (end == g)
				break;
			if (v == gid)
				return k;
			g = end;
		}
	}
	return -1;
}

/* UNMAP_DMA; the bytes unmapped or -errno. */
static inline long long dma_unmap_bytes(int container, uint64_t iova, uint64_t size,
					uint32_t flags)
{
	uint64_t sz = 0;
	long r = dma_unmap(container, iova, size, flags, &sz);

	return r ? r : (long long)sz;
}

#ifdef __KSELFTEST_HARNESS_H
/* The backend is loaded and no container uses it. */
static inline void backend_assert_idle(struct __test_metadata *_metadata)
{
	ASSERT_EQ(0, backend_refcnt()) TH_LOG("backend %s not loaded or in use", backend_module());
}

/* A new container fd. */
static inline int fixture_container(struct __test_metadata *_metadata)
{
	int fd = open("/dev/vfio/vfio", O_RDWR);

	ASSERT_GE(fd, 0) TH_LOG("open /dev/vfio/vfio: %m");
	return fd;
}

/* Opens the k-th single-device vfio-pci group (viable); *gp gets its
 * description if gp. */
static inline int fixture_group(struct __test_metadata *_metadata, int k,
				const struct vfio_test_group **gp)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, k);
	int fd;

	ASSERT_NE(NULL, g) TH_LOG("no single-device group #%d bound to vfio-pci", k);
	fd = vfio_open_viable_group(g->id);
	ASSERT_GE(fd, 0) TH_LOG("group %d: %s", g->id, strerror(-fd));
	if (gp)
		*gp = g;
	return fd;
}

/* VFIO_GROUP_SET_CONTAINER. */
static inline void fixture_join(struct __test_metadata *_metadata, int group, int container)
{
	ASSERT_EQ(0, xioctl(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container));
}

/*
 * The start of most fixtures: *container a new container, *group the first
 * single-device vfio-pci group (described in *gp if gp); the group joins the
 * container if join, and VFIO_SET_IOMMU(iommu_type) follows if iommu_type.
 * Both fds are -1 until opened, for the teardown.
 */
static inline void fixture_open(struct __test_metadata *_metadata, int *container, int *group,
				const struct vfio_test_group **gp, bool join,
				unsigned long iommu_type)
{
	*container = *group = -1;
	*container = fixture_container(_metadata);
	*group = fixture_group(_metadata, 0, gp);
	if (join)
		fixture_join(_metadata, *group, *container);
	if (iommu_type)
		ASSERT_EQ(0, xioctl(*container, VFIO_SET_IOMMU, iommu_type));
}
#endif

/* Closes *fd if open and marks it closed. */
static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the test mdev driver (selftests/mdev/vfio_rs_test_mdev.c) ----------
 *
 * pwrite(devfd, &cmd, n, region) runs one command, pread(devfd, &res, n,
 * region) returns its result. The layouts mirror vfio_rs_test_mdev.c: keep
 * them in sync.
 */
#define TRM_PARENT "/sys/class/mdev_bus/vfio_rs_test_mdev"
#define TRM_TYPE_CREATE TRM_PARENT "/mdev_supported_types/vfio_rs_test_mdev-1/create"
#define TRM_KO_DEFAULT "./test-mdev/vfio_rs_test_mdev.ko"

/* IOMMU_READ / IOMMU_WRITE of <linux/iommu.h>: the prot of vfio_pin_pages. */
#define TRM_PROT_READ  1
#define TRM_PROT_WRITE 2

enum trm_op {
	TRM_OP_NOP = 0,		/* nothing; refreshes the counters in the result */
	TRM_OP_PIN = 1,		/* vfio_pin_pages(iova, npage, prot) */
	TRM_OP_UNPIN = 2,	/* vfio_unpin_pages(iova, npage) of pages it pinned */
	TRM_OP_DMA_READ = 3,	/* vfio_dma_rw(iova, len, write=false) -> res.data */
	TRM_OP_DMA_WRITE = 4,	/* vfio_dma_rw(iova, len, write=true) <- cmd.data */
	TRM_OP_RESET_COUNTERS = 5,
};

#define TRM_DATA_MAX	8192	/* DMA_RW payload */
#define TRM_PEEK_BYTES	64	/* PIN: bytes of the first pinned page returned */
#define TRM_MAX_PINS	1024	/* 2 * VFIO_PIN_PAGES_MAX_ENTRIES */

struct trm_cmd {
	uint32_t op;
	uint32_t prot;
	uint64_t iova;
	int32_t npage;
	uint32_t len;
	uint8_t data[];
};

struct trm_result {
	int64_t ret;
	int64_t unmap_calls;		/* .dma_unmap notices received */
	uint64_t last_unmap_iova;
	uint64_t last_unmap_len;
	int64_t unmap_unpinned;		/* pages unpinned by those notices */
	int64_t pinned;			/* pages the device holds pinned */
	uint8_t data[TRM_DATA_MAX];
};

/* An mdev instance of the test driver. */
struct trm_dev {
	char uuid[40];
	int group_id;
	int fd;			/* device fd, -1 when closed */
	uint64_t region;	/* offset of the command region */
};

/* Loads mdev and the test driver unless its parent already exists. The
 * module is $VFIO_RS_TEST_MDEV_KO, or test-mdev/vfio_rs_test_mdev.ko in the
 * working directory, its parent (run_tests.sh runs from selftests/), or
 * /vmtest. */
static inline int trm_load(void)
{
	const char *paths[] = { getenv("VFIO_RS_TEST_MDEV_KO"), TRM_KO_DEFAULT,
				"../test-mdev/vfio_rs_test_mdev.ko",
				"/vmtest/test-mdev/vfio_rs_test_mdev.ko" };
	int fd = -1, r;

	if (!access(TRM_PARENT, F_OK))
		return 0;
	/* No mdev core: a kernel where nothing selects CONFIG_VFIO_MDEV
	 * (Debian's arm64 kernel has no mdev driver), as scripts/vm tells
	 * the guest (VFIO_TEST_NO_MDEV=1); elsewhere a failed modprobe is a
	 * failure, not a reason to run without the mdev. */
	if (system("modprobe mdev 2>/dev/null")) {
		const char *no_mdev = getenv("VFIO_TEST_NO_MDEV");

		return no_mdev && no_mdev[0] == '1' ? -ENODEV : -EIO;
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && fd < 0; i++)
		if (paths[i])
			fd = open(paths[i], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	r = syscall(__NR_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return r == -EEXIST ? 0 : r;
}

/* The VM runs a kernel without patches/linux/0001 (scripts/vm sets
 * VFIO_TEST_CORE_UNPATCHED for Debian's kernel and VFIO_RS_CORE_PATCHES=0):
 * vfio core releases the backend under running container ioctls. */
static inline bool vfio_core_unpatched(void)
{
	const char *v = getenv("VFIO_TEST_CORE_UNPATCHED");

	return v && v[0] == '1';
}

/* The test mdev in a fixture or test: loaded, or SKIP where the kernel has
 * no mdev core (trm_load's -ENODEV), saying so. */
#define TRM_LOAD_OR_SKIP() do {								\
	int trm_r_ = trm_load();							\
											\
	if (trm_r_ == -ENODEV)								\
		SKIP(return, "this kernel has no mdev core (CONFIG_VFIO_MDEV: no driver selects it, as in Debian's arm64 kernel)"); \
	ASSERT_EQ(0, trm_r_) TH_LOG("cannot load mdev + %s", TRM_KO_DEFAULT);	\
} while (0)

/* Creates an mdev with a fresh uuid and finds its (emulated) group; 0 or
 * -errno (-EEXIST if it was created but its group was not found). */
static inline int trm_create(struct trm_dev *d)
{
	char path[256], link[256];
	ssize_t n;
	FILE *f;
	int r;

	d->fd = -1;
	d->uuid[0] = 0;
	f = fopen("/proc/sys/kernel/random/uuid", "r");
	if (!f)
		return -errno;
	r = fscanf(f, "%36s", d->uuid) == 1 ? 0 : -EIO;
	fclose(f);
	if (!r)
		r = write_str(TRM_TYPE_CREATE, d->uuid);
	if (r) {
		d->uuid[0] = 0;
		return r;
	}
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", d->uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -EEXIST;
	link[n] = 0;
	d->group_id = atoi(strrchr(link, '/') + 1);
	return 0;
}

/* Removes the mdev if trm_create() made one; its device fd must be closed
 * (remove waits for it). */
static inline int trm_remove(struct trm_dev *d)
{
	char path[256];

	if (!d->uuid[0])
		return 0;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", d->uuid);
	return write_str(path, "1");
}

/* Opens the device through its group fd (attached to a container with an
 * IOMMU set) and finds the command region; returns the fd or -errno. */
static inline int trm_open(struct trm_dev *d, int group)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 0 };
	int fd = xioctl(group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)d->uuid);
	long r;

	if (fd < 0)
		return fd;
	r = xioctl(fd, VFIO_DEVICE_GET_REGION_INFO, (unsigned long)&reg);
	if (r) {
		close(fd);
		return r;
	}
	d->fd = fd;
	d->region = reg.offset;
	return fd;
}

/* Closes the device fd if open. */
static inline void trm_close(struct trm_dev *d)
{
	close_fd(&d->fd);
}

/* Runs one command: its pwrite() and no other system call (fault_test arms
 * a fault around exactly this); 0 or -errno of the pwrite. Not thread-safe
 * (one static command buffer). */
static inline int trm_send(struct trm_dev *d, uint32_t op, uint64_t iova, int32_t npage,
			   uint32_t prot, const void *data, uint32_t len)
{
	static union {
		struct trm_cmd c;
		uint8_t bytes[sizeof(struct trm_cmd) + TRM_DATA_MAX];
	} u;
	size_t n = sizeof(u.c);

	memset(&u.c, 0, sizeof(u.c));
	u.c.op = op;
	u.c.iova = iova;
	u.c.npage = npage;
	u.c.prot = prot;
	u.c.len = len;
	if (data) {
		memcpy(u.c.data, data, len);
		n += len;
	}
	return pwrite(d->fd, &u, n, d->region) == (ssize_t)n ? 0 : -errno;
}

/* Reads the last command's result into *r; 0 or -errno of the pread. */
static inline int trm_recv(struct trm_dev *d, struct trm_result *r)
{
	return pread(d->fd, r, sizeof(*r), d->region) == (ssize_t)sizeof(*r) ? 0 : -errno;
}

/* Runs one command and reads its result into *r; 0 or -errno of the
 * pwrite/pread itself (the vfio call's result is r->ret). */
static inline int trm_run(struct trm_dev *d, uint32_t op, uint64_t iova, int32_t npage,
			  uint32_t prot, const void *data, uint32_t len, struct trm_result *r)
{
	int e = trm_send(d, op, iova, npage, prot, data, len);

	return e ? e : trm_recv(d, r);
}

#endif /* FIXTURE_H */
