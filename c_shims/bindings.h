/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything the Rust crate reaches through bindgen (see Kbuild).
 * Read only by bindgen; c_shims/shims.h is the C side's own header.
 */
#include <linux/iommu.h>
#include <linux/vfio.h>
#include "vfio.h"
#include "shims.h"
