// SPDX-License-Identifier: GPL-2.0
/*
 * iommu core helpers for the Rust crate.
 *
 * Why C: struct iommu_domain and its ops table are opaque to the crate's
 * bindings (kept small on purpose), and the ops call is not exported as a
 * function.
 */
#include <linux/iommu.h>
#include "shims.h"

bool vfio_rs_domain_enforce_cache_coherency(struct iommu_domain *domain)
{
	return domain->ops->enforce_cache_coherency &&
	       domain->ops->enforce_cache_coherency(domain);
}
