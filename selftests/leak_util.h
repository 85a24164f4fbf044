/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the type1 ABI selftests (info_test, map_test):
 *
 *  - leak accounting: outstanding FOLL_PIN pins (nr_foll_pin_acquired -
 *    nr_foll_pin_released in /proc/vmstat), this process's VmLck and the
 *    backend module's refcnt, taken as a baseline in FIXTURE_SETUP and
 *    compared in FIXTURE_TEARDOWN after every fd is closed;
 *  - backend module parameters (/sys/module/$VFIO_BACKEND_MODULE/parameters);
 *  - thin MAP_DMA / UNMAP_DMA / GET_INFO wrappers returning -errno.
 *
 * Include after kselftest_harness.h and vfio_util.h.
 */
#ifndef LEAK_UTIL_H
#define LEAK_UTIL_H

#include <stdint.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include "vfio_util.h"

#define SZ_4K  0x1000UL
#define SZ_2M  0x200000UL
#define SZ_1G  0x40000000UL

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

/* A "Key:  N kB" line of /proc/self/status in kB; -1 if absent. */
static inline long proc_status_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

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

static inline long vmlck_kb(void)
{
	return proc_status_kb("VmLck");
}

struct leak_baseline {
	long pins;
	long vmlck;
};

static inline void leak_baseline_take(struct __test_metadata *_metadata,
				      struct leak_baseline *b)
{
	b->pins = pins_outstanding();
	b->vmlck = vmlck_kb();
	ASSERT_NE(LONG_MIN, b->pins) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_GE(b->vmlck, 0) TH_LOG("no VmLck in /proc/self/status");
}

/* Call after every container/group/device fd of the test is closed. */
static inline void leak_check(struct __test_metadata *_metadata,
			      const struct leak_baseline *b)
{
	EXPECT_EQ(b->pins, pins_outstanding()) TH_LOG("FOLL_PIN pins leaked");
	EXPECT_EQ(b->vmlck, vmlck_kb()) TH_LOG("VmLck not back to baseline");
	EXPECT_EQ(0, backend_refcnt()) TH_LOG("%s refcnt not back to 0", backend_module());
}

/* A /proc/meminfo field in kB; -1 if absent. */
static inline long meminfo_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/* Backend module parameter; -1 on failure. */
static inline long backend_param_read(const char *param)
{
	char path[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", backend_module(), param);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* 0 or -errno. */
static inline int write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY), n, r = 0;

	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	if (write(fd, buf, n) != n)
		r = -errno;
	close(fd);
	return r;
}

static inline int backend_param_write(const char *param, long v)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", backend_module(), param);
	return write_long(path, v);
}

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

/* --- type1 ioctl wrappers ------------------------------------------------ */

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

#endif
