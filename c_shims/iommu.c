// SPDX-License-Identifier: GPL-2.0
/*
 * iommu core helpers for the Rust crate.
 *
 * Why C: struct iommu_domain is opaque to the crate's bindings (kept small
 * on purpose), its ops are reached through a table the core exports no
 * function for, and the IOTLB gather helpers are static inlines.
 */
#include <linux/device.h>
#include <linux/iommu.h>
#include "shims.h"

bool vfio_rs_domain_enforce_cache_coherency(struct iommu_domain *domain)
{
	return domain->ops->enforce_cache_coherency &&
	       domain->ops->enforce_cache_coherency(domain);
}

/* Domains can be merged only when driven by the same driver ops. */
const void *vfio_rs_domain_ops(struct iommu_domain *domain)
{
	return domain->ops;
}

unsigned long vfio_rs_domain_pgsize_bitmap(struct iommu_domain *domain)
{
	return domain->pgsize_bitmap;
}

void vfio_rs_domain_aperture(struct iommu_domain *domain, u64 *start, u64 *end)
{
	*start = domain->geometry.aperture_start;
	*end = domain->geometry.aperture_end;
}

/* Why C: dev_name() is a static inline. */
const char *vfio_rs_dev_name(struct device *dev)
{
	return dev_name(dev);
}

void vfio_rs_iotlb_gather_init(struct iommu_iotlb_gather *gather)
{
	iommu_iotlb_gather_init(gather);
}

void vfio_rs_iotlb_sync(struct iommu_domain *domain,
			struct iommu_iotlb_gather *gather)
{
	iommu_iotlb_sync(domain, gather);
}
