// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters, with the C module's names, defaults and permissions.
 *
 * Why C: Rust's module! params have no sysfs entry (perm 0) and cannot be
 * changed at run time, while vfio_iommu_type1's are root-writable in
 * /sys/module/.../parameters and users rely on that.
 */
#include <linux/limits.h>
#include <linux/module.h>
#include "shims.h"

/* Why C: module! takes `authors: [..]` from 6.13 on and `author: ".."` before;
 * this one line serves every kernel. */
MODULE_AUTHOR("vfio-type1-rs developers");

static bool allow_unsafe_interrupts;
module_param(allow_unsafe_interrupts, bool, 0644);
MODULE_PARM_DESC(allow_unsafe_interrupts,
		 "Enable VFIO IOMMU support for on platforms without interrupt remapping support.");

static bool disable_hugepages;
module_param(disable_hugepages, bool, 0644);
MODULE_PARM_DESC(disable_hugepages,
		 "Disable VFIO IOMMU support for IOMMU hugepages.");

static unsigned int dma_entry_limit = U16_MAX;
module_param(dma_entry_limit, uint, 0644);
MODULE_PARM_DESC(dma_entry_limit,
		 "Maximum number of user DMA mappings per container (65535).");

static bool verbose;
module_param(verbose, bool, 0644);
MODULE_PARM_DESC(verbose,
		 "Log each attach, merge, replay and detach (vfio-type1-rs only).");

bool vfio_rs_param_allow_unsafe_interrupts(void) { return READ_ONCE(allow_unsafe_interrupts); }
bool vfio_rs_param_disable_hugepages(void) { return READ_ONCE(disable_hugepages); }
unsigned int vfio_rs_param_dma_entry_limit(void) { return READ_ONCE(dma_entry_limit); }
bool vfio_rs_param_verbose(void) { return READ_ONCE(verbose); }
