/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vfio-type1-rs kselftests: find the VFIO groups the
 * test VM provides (scripts/vm), open containers and groups, and look at the
 * backend module under test (named by $VFIO_BACKEND_MODULE, set by the VM's
 * init).
 */
#ifndef VFIO_UTIL_H
#define VFIO_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

static inline const char *backend_module(void)
{
	const char *m = getenv("VFIO_BACKEND_MODULE");

	return m ? m : "vfio_iommu_type1_rs";
}

/* The backend module's reference count (/sys/module/M/refcnt); -1 if not
 * loaded. */
static inline int backend_refcnt(void)
{
	char path[128];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", backend_module());
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
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

#endif
