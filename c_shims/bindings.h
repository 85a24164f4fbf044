/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything the Rust crate reaches through bindgen (see Kbuild).
 * Read only by bindgen; c_shims/shims.h is the C side's own header.
 */
#include <linux/iommu.h>
#include <linux/seq_file.h>
#include <linux/vfio.h>
#include "vfio.h"
#include "shims.h"

/* Linux 6.12 names type 6 VFIO_TYPE1_NESTING_IOMMU (uapi: the number is ABI). */
#ifndef __VFIO_RESERVED_TYPE1_NESTING_IOMMU
#define __VFIO_RESERVED_TYPE1_NESTING_IOMMU 6
#endif
