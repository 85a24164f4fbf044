// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_flow: the VFIO user flow, one step at a time, as QEMU or DPDK do it.
 * Used by `make run`; prints each step and its result.
 *
 *   vfio_flow [GROUP]     (default: the first single-device group on vfio-pci)
 */
#include <stdint.h>
#include <sys/mman.h>
#include "vfio_util.h"

static int step_no;

static long step(const char *what, long ret)
{
	printf("  %2d. %-52s -> %s%ld%s%s\n", ++step_no, what,
	       ret < 0 ? "error " : "", ret, ret < 0 ? " " : "",
	       ret < 0 ? strerror(-ret) : "");
	fflush(stdout);
	return ret;
}

int main(int argc, char **argv)
{
	const struct vfio_test_group *g = vfio_test_group_find(1, 0);
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	int container, group, device, id;
	const char *bdf;
	char desc[96];
	void *buf;

	if (!g) {
		fprintf(stderr, "no VFIO group found on vfio-pci\n");
		return 1;
	}
	id = argc > 1 ? atoi(argv[1]) : g->id;
	bdf = g->dev[0];
	printf("VFIO flow with backend module %s, group %d, device %s\n",
	       backend_module(), id, bdf);

	container = open("/dev/vfio/vfio", O_RDWR);
	if (step("open(/dev/vfio/vfio)", container < 0 ? -errno : container) < 0)
		return 1;
	step("VFIO_GET_API_VERSION", xioctl(container, VFIO_GET_API_VERSION, 0));
	step("VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)",
	     xioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	snprintf(desc, sizeof(desc), "open(/dev/vfio/%d)", id);
	group = vfio_open_group(id);
	if (step(desc, group < 0 ? -errno : group) < 0)
		return 1;
	step("VFIO_GROUP_GET_STATUS (flags: 1 = viable)",
	     xioctl(group, VFIO_GROUP_GET_STATUS, (unsigned long)&status) ?: (long)status.flags);
	if (step("VFIO_GROUP_SET_CONTAINER",
		 xioctl(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container)) < 0)
		return 1;
	if (step("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)",
		 xioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) < 0)
		return 1;
	snprintf(desc, sizeof(desc), "VFIO_GROUP_GET_DEVICE_FD(%s)", bdf);
	device = xioctl(group, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)bdf);
	if (step(desc, device) < 0)
		return 1;
	step("VFIO_DEVICE_GET_INFO (num_regions)",
	     xioctl(device, VFIO_DEVICE_GET_INFO, (unsigned long)&dinfo) ?: (long)dinfo.num_regions);

	buf = mmap(NULL, 1 << 21, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map.vaddr = (uintptr_t)buf;
	map.iova = 1 << 24;
	map.size = 1 << 21;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	step("VFIO_IOMMU_MAP_DMA(iova 16 MiB, 2 MiB, read+write)",
	     xioctl(container, VFIO_IOMMU_MAP_DMA, (unsigned long)&map));
	unmap.iova = map.iova;
	unmap.size = map.size;
	step("VFIO_IOMMU_UNMAP_DMA(iova 16 MiB, 2 MiB)",
	     xioctl(container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&unmap) ?: (long)unmap.size);

	close(device);
	step("close(device), close(group): the group leaves", close(group) ? -errno : 0);
	step("close(container)", close(container) ? -errno : 0);
	return 0;
}
