// SPDX-License-Identifier: GPL-2.0
/*
 * The vfio_iommu_driver_ops table of vfio-iommu-type1-rs.
 *
 * Why C: struct vfio_iommu_driver_ops and vfio_register_iommu_driver() are
 * declared only in the private drivers/vfio/vfio.h, which the kernel crate's
 * bindings do not cover. Every callback is the Rust function itself.
 */
#include <linux/module.h>
#include "vfio.h"
#include "shims.h"

static const struct vfio_iommu_driver_ops vfio_rs_ops = {
	.name		= "vfio-iommu-type1-rs",
	.owner		= THIS_MODULE,
	.open		= vfio_rs_open,
	.release	= vfio_rs_release,
	.ioctl		= vfio_rs_ioctl,
	.attach_group	= vfio_rs_attach_group,
	.detach_group	= vfio_rs_detach_group,
	.group_iommu_domain = vfio_rs_group_iommu_domain,
	.pin_pages	= vfio_rs_pin_pages,
	.unpin_pages	= vfio_rs_unpin_pages,
	.register_device = vfio_rs_register_device,
	.unregister_device = vfio_rs_unregister_device,
	.dma_rw		= vfio_rs_dma_rw,
};

int vfio_rs_register(void)
{
	return vfio_register_iommu_driver(&vfio_rs_ops);
}

void vfio_rs_unregister(void)
{
	vfio_unregister_iommu_driver(&vfio_rs_ops);
}
