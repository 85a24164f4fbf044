// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_flow: the VFIO user flow, one step at a time, as QEMU or DPDK do it,
 * ending with a real DMA through the mapping by QEMU's edu device. Used by
 * `make run`; prints each step and its result, and the backend's debugfs
 * view (vfio-type1-rs only) at the interesting moments.
 *
 *   vfio_flow
 */
#include "fixture.h"
#include "edu.h"

#define IOVA IOVA_1G

static int step_no;

static long step(const char *what, long ret)
{
	printf("  %2d. %-58s -> %s%ld%s%s\n", ++step_no, what,
	       ret < 0 ? "error " : "", ret, ret < 0 ? " " : "",
	       ret < 0 ? strerror(-ret) : "");
	fflush(stdout);
	return ret;
}

static void show_view(const char *when)
{
	char line[256];
	FILE *f = fopen(RS_VIEW, "r");

	if (!f)
		return;
	printf("      debugfs view %s:\n", when);
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			printf("        %s", line);
	fclose(f);
}

int main(void)
{
	const struct vfio_test_group *g0 = vfio_test_group_find(1, 0);
	const struct vfio_test_group *g1 = vfio_test_group_find(1, 1);
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	int container, group, group2;
	struct edu dev = { .fd = -1 };
	char desc[128];
	char *buf;

	if (!g0 || !g1) {
		fprintf(stderr, "need two single-device VFIO groups on vfio-pci\n");
		return 1;
	}
	printf("VFIO flow with backend module %s: groups %d (%s) and %d (%s)\n",
	       backend_module(), g0->id, g0->dev[0], g1->id, g1->dev[0]);

	container = open("/dev/vfio/vfio", O_RDWR);
	if (step("open(/dev/vfio/vfio)", container < 0 ? -errno : container) < 0)
		return 1;
	step("VFIO_GET_API_VERSION", xioctl(container, VFIO_GET_API_VERSION, 0));
	step("VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)",
	     xioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	snprintf(desc, sizeof(desc), "open(/dev/vfio/%d)", g0->id);
	group = vfio_open_group(g0->id);
	if (step(desc, group < 0 ? -errno : group) < 0)
		return 1;
	step("VFIO_GROUP_GET_STATUS (flags: 1 = viable)",
	     xioctl(group, VFIO_GROUP_GET_STATUS, (unsigned long)&status) ?: (long)status.flags);
	if (step("VFIO_GROUP_SET_CONTAINER",
		 xioctl(group, VFIO_GROUP_SET_CONTAINER, (unsigned long)&container)) < 0)
		return 1;
	if (step("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): attach, new paging domain",
		 xioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) < 0)
		return 1;
	snprintf(desc, sizeof(desc), "VFIO_GROUP_GET_DEVICE_FD(%s), BAR0 mmap, bus master", g0->dev[0]);
	if (step(desc, edu_open(&dev, group, g0->dev[0])) < 0) {
		fprintf(stderr, "%s\n", dev.err);
		return 1;
	}

	buf = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0, SZ_2M);
	strcpy(buf, "hello from user memory, carried by the edu device's DMA");
	map.vaddr = (uintptr_t)buf;
	map.iova = IOVA;
	map.size = SZ_2M;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	if (step("VFIO_IOMMU_MAP_DMA(iova 1 GiB, 2 MiB, read+write): pin + map",
		 xioctl(container, VFIO_IOMMU_MAP_DMA, (unsigned long)&map)) < 0)
		return 1;
	show_view("after MAP_DMA");

	step("DMA RAM -> edu (iova 1 GiB, 64 bytes)", edu_dma_to_device(&dev, IOVA, 0, 64));
	step("DMA edu -> RAM (iova 1 GiB + 4 KiB, 64 bytes)",
	     edu_dma_from_device(&dev, IOVA + 4096, 0, 64));
	printf("      RAM at +4 KiB now reads: \"%s\"\n", buf + 4096);
	if (strcmp(buf, buf + 4096)) {
		fprintf(stderr, "DMA round trip failed\n");
		return 1;
	}

	snprintf(desc, sizeof(desc), "second group %d joins: merged onto the same domain", g1->id);
	group2 = vfio_group_attach(container, g1->id, 0);
	step(desc, group2);
	show_view("after the second group joined");

	unmap.iova = IOVA;
	unmap.size = SZ_2M;
	step("VFIO_IOMMU_UNMAP_DMA(iova 1 GiB, 2 MiB): unmap, flush, unpin",
	     xioctl(container, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&unmap) ?: (long)unmap.size);
	memset(buf + 8192, 0, 64);
	step("DMA edu -> RAM at the unmapped iova (the IOMMU must refuse)",
	     edu_dma_from_device(&dev, IOVA + 8192, 0, 16));
	printf("      RAM at +8 KiB %s\n", buf[8192] ? "CHANGED: the IOMMU let it through!" :
	       "unchanged: the IOMMU blocked the write (see the fault in dmesg)");

	edu_close(&dev);
	if (group2 >= 0)
		close(group2);
	step("close(device), close(groups): the groups leave", close(group) ? -errno : 0);
	step("close(container)", close(container) ? -errno : 0);
	return buf[8192] ? 1 : 0;
}
