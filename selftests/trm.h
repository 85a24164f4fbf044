/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The command ABI of the test mdev driver (selftests/mdev/vfio_rs_test_mdev.c)
 * and plain helpers (no kselftest harness) to load the driver, create and
 * remove an mdev instance, open its device and run commands on it.
 *
 * The layouts mirror vfio_rs_test_mdev.c (and emulated_test.c): keep them
 * in sync. Every helper returns 0 (or a count / fd) or -errno.
 */
#ifndef TRM_H
#define TRM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/vfio.h>

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
	uint64_t unmap_calls;
	uint64_t last_unmap_iova;
	uint64_t last_unmap_len;
	uint64_t unmap_unpinned;
	uint64_t pinned;
	uint8_t data[TRM_DATA_MAX];
};

/* An mdev instance of the test driver. */
struct trm_dev {
	char uuid[40];
	int group_id;
	int fd;			/* device fd, -1 when closed */
	uint64_t region;	/* offset of the command region */
};

static inline int trm_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		r = -errno;
	close(fd);
	return r;
}

/* Loads mdev and the test driver unless its parent already exists. The
 * module is $VFIO_RS_TEST_MDEV_KO, or test-mdev/vfio_rs_test_mdev.ko in the
 * working directory, its parent, or /vmtest. */
static inline int trm_load(void)
{
	const char *paths[] = { getenv("VFIO_RS_TEST_MDEV_KO"), TRM_KO_DEFAULT,
				"../test-mdev/vfio_rs_test_mdev.ko",
				"/vmtest/test-mdev/vfio_rs_test_mdev.ko" };
	int fd = -1, r;

	if (!access(TRM_PARENT, F_OK))
		return 0;
	if (system("modprobe mdev"))
		return -ENOENT;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && fd < 0; i++)
		if (paths[i])
			fd = open(paths[i], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	r = syscall(__NR_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return r == -EEXIST ? 0 : r;
}

/* Creates an mdev with a fresh uuid and finds its (emulated) group. */
static inline int trm_create(struct trm_dev *d)
{
	char path[256], link[256];
	ssize_t n;
	FILE *f;
	int r;

	d->fd = -1;
	f = fopen("/proc/sys/kernel/random/uuid", "r");
	if (!f)
		return -errno;
	r = fscanf(f, "%36s", d->uuid) == 1 ? 0 : -EIO;
	fclose(f);
	if (r)
		return r;
	r = trm_write_str(TRM_TYPE_CREATE, d->uuid);
	if (r)
		return r;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", d->uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -errno;
	link[n] = 0;
	d->group_id = atoi(strrchr(link, '/') + 1);
	return 0;
}

/* Removes the mdev; its device fd must be closed (remove waits for it). */
static inline int trm_remove(struct trm_dev *d)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", d->uuid);
	return trm_write_str(path, "1");
}

/* Opens the device through its group fd (attached to a container with an
 * IOMMU set) and finds the command region; returns the fd or -errno. */
static inline int trm_open(struct trm_dev *d, int group)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 0 };
	int fd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, d->uuid);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &reg)) {
		int r = -errno;

		close(fd);
		return r;
	}
	d->fd = fd;
	d->region = reg.offset;
	return fd;
}

static inline void trm_close(struct trm_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* Runs one command and reads its result into *r; 0 or -errno of the
 * pwrite/pread itself (the vfio call's result is r->ret). */
static inline int trm_run(struct trm_dev *d, uint32_t op, uint64_t iova, int32_t npage,
			  uint32_t prot, const void *data, uint32_t len, struct trm_result *r)
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
	if (pwrite(d->fd, &u, n, d->region) != (ssize_t)n)
		return -errno;
	if (pread(d->fd, r, sizeof(*r), d->region) != (ssize_t)sizeof(*r))
		return -errno;
	return 0;
}

#endif
