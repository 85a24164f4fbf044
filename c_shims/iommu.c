// SPDX-License-Identifier: GPL-2.0
/*
 * iommu core helpers for the Rust crate.
 *
 * Why C: struct iommu_domain is opaque to the crate's bindings (kept small
 * on purpose), its ops are reached through a table the core exports no
 * function for, and the IOTLB gather helpers are static inlines.
 */
#include <linux/device.h>
#include <linux/error-injection.h>
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

/* Why C: a static inline around iommu_paging_domain_alloc_flags() from 6.13
 * on, an exported function before; the C module calls this name on both. */
struct iommu_domain *vfio_rs_paging_domain_alloc(struct device *dev)
{
	return iommu_paging_domain_alloc(dev);
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

/*
 * Error-injection points (ALLOW_ERROR_INJECTION): on the debug kernel,
 * fail_function can make these fail on demand, so the tests reach the
 * unwinding of a map or an attach that fails part way, which allocation
 * failures alone cannot (iommu_map may succeed without allocating).
 *
 * Why C: ALLOW_ERROR_INJECTION() is a C macro that records the function in
 * a section of the module.
 */
int vfio_rs_iommu_map(struct iommu_domain *domain, unsigned long iova,
		      phys_addr_t paddr, size_t size, int prot)
{
	return iommu_map(domain, iova, paddr, size, prot, GFP_KERNEL_ACCOUNT);
}
ALLOW_ERROR_INJECTION(vfio_rs_iommu_map, ERRNO);

int vfio_rs_iommu_attach_group(struct iommu_domain *domain,
			       struct iommu_group *group)
{
	return iommu_attach_group(domain, group);
}
ALLOW_ERROR_INJECTION(vfio_rs_iommu_attach_group, ERRNO);
