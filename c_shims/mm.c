// SPDX-License-Identifier: GPL-2.0
/*
 * Page-frame helpers for the Rust crate.
 *
 * Why C: page_to_pfn() and pfn_to_page() are macros whose definition
 * depends on the memory model (SPARSEMEM_VMEMMAP, ...).
 */
#include <linux/mm.h>
#include "shims.h"

unsigned long vfio_rs_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

struct page *vfio_rs_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}
