// SPDX-License-Identifier: GPL-2.0
/*
 * The debugfs view of the containers on kernels whose Rust crate has no
 * kernel::debugfs (Linux 6.12; Kbuild builds this file only there):
 * /sys/kernel/debug/vfio_iommu_type1_rs/containers, whose text
 * vfio_rs_containers_show() in rust/debugfs.rs writes.
 *
 * Why C: 6.12's kernel crate wraps neither debugfs nor seq_file, and a
 * struct file_operations is easiest had from DEFINE_SHOW_ATTRIBUTE.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include "shims.h"

static struct dentry *vfio_rs_debugfs_dir;

DEFINE_SHOW_ATTRIBUTE(vfio_rs_containers);

void vfio_rs_debugfs_create(void)
{
	vfio_rs_debugfs_dir = debugfs_create_dir("vfio_iommu_type1_rs", NULL);
	debugfs_create_file("containers", 0400, vfio_rs_debugfs_dir, NULL,
			    &vfio_rs_containers_fops);
}

/* Returns once no read of the file is running. */
void vfio_rs_debugfs_remove(void)
{
	debugfs_remove_recursive(vfio_rs_debugfs_dir);
}
