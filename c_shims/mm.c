// SPDX-License-Identifier: GPL-2.0
/*
 * Page-frame helpers for the Rust crate.
 *
 * Why C: page_to_pfn() and pfn_to_page() are macros whose definition
 * depends on the memory model (SPARSEMEM_VMEMMAP, ...).
 */
#include <linux/error-injection.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/mm_inline.h>
#include <linux/uaccess.h>
#include "shims.h"

unsigned long vfio_rs_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

struct page *vfio_rs_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

/*
 * The pfns behind @vaddr when it lies in a VM_PFNMAP vma of the current
 * process (e.g. another device's BAR mapped by vfio-pci), faulting the
 * mapping in if needed. Returns how many pfns from *@pfn on are contiguous
 * within that mapping's block (at most @npages), 0 if @vaddr is not in a
 * VM_PFNMAP vma, or -errno. Only non-struct-page (or reserved) pfns count,
 * as in the C module: they are mapped without pinning.
 *
 * Why C: follow_pfnmap_start() walks a vma under mmap_lock with a stack
 * struct of page-table internals that the Rust mm abstractions do not wrap.
 */
long vfio_rs_pfnmap_lookup(unsigned long vaddr, unsigned long npages,
			   bool write, unsigned long *pfn)
{
	struct mm_struct *mm = current->mm;
	struct follow_pfnmap_args args;
	struct vm_area_struct *vma;
	long ret;

	mmap_read_lock(mm);
retry:
	vma = vma_lookup(mm, vaddr);
	ret = 0;
	if (vma && (vma->vm_flags & VM_PFNMAP)) {
		args = (struct follow_pfnmap_args) { .vma = vma, .address = vaddr };
		ret = follow_pfnmap_start(&args);
		if (ret) {
			bool unlocked = false;

			ret = fixup_user_fault(mm, vaddr, FAULT_FLAG_REMOTE |
					       (write ? FAULT_FLAG_WRITE : 0), &unlocked);
			if (unlocked)
				goto retry;
			if (!ret)
				ret = follow_pfnmap_start(&args);
		}
		if (!ret) {
			*pfn = args.pfn;
			if ((write && !args.writable) ||
			    (pfn_valid(*pfn) && !PageReserved(pfn_to_page(*pfn))))
				ret = -EFAULT;
			else
#ifdef VFIO_RS_HAVE_PFNMAP_ADDR_MASK
				ret = min_t(long, npages,
					    ((*pfn | (~args.addr_mask >> PAGE_SHIFT)) + 1) - *pfn);
#else
				ret = 1;	/* Linux 6.12: one page per lookup, as its C module */
#endif
			follow_pfnmap_end(&args);
		}
	}
	mmap_read_unlock(mm);
	return ret;
}

/*
 * pin_user_pages_fast() as an error-injection point (see c_shims/iommu.c):
 * the debug kernel's tests make GUP fail half way through a mapping.
 */
int vfio_rs_pin_user_pages_fast(unsigned long start, int nr_pages,
				unsigned int gup_flags, struct page **pages)
{
	return pin_user_pages_fast(start, nr_pages, gup_flags, pages);
}
ALLOW_ERROR_INJECTION(vfio_rs_pin_user_pages_fast, ERRNO);

/*
 * How many of @pages, from the first, are pfn-contiguous (n >= 1): where
 * the memmap is one array (FLATMEM, SPARSEMEM_VMEMMAP: x86_64, arm64),
 * contiguous page pointers are contiguous pfns, compared eight a step (a
 * huge page's 512 in 64 steps: the loop was 15% of a THP MAP under TCG);
 * the rest, and every page elsewhere, pfn by pfn.
 * Why C: page_to_pfn() is a macro.
 */
unsigned long vfio_rs_pages_contiguous(struct page **pages, unsigned long n)
{
	/* With a memmap per section, contiguous pointers prove nothing. */
	const bool one_memmap = !IS_ENABLED(CONFIG_SPARSEMEM) ||
				IS_ENABLED(CONFIG_SPARSEMEM_VMEMMAP);
	unsigned long i = 1;

	while (one_memmap && i + 8 <= n && pages[i + 7] == pages[0] + i + 7 &&
	       pages[i] == pages[0] + i && pages[i + 1] == pages[0] + i + 1 &&
	       pages[i + 2] == pages[0] + i + 2 && pages[i + 3] == pages[0] + i + 3 &&
	       pages[i + 4] == pages[0] + i + 4 && pages[i + 5] == pages[0] + i + 5 &&
	       pages[i + 6] == pages[0] + i + 6)
		i += 8;
	for (; i < n; i++)
		if (page_to_pfn(pages[i]) != page_to_pfn(pages[0]) + i)
			break;
	return i;
}

/* Why C: rlimit() is a static inline. */
unsigned long vfio_rs_rlimit_memlock(void)
{
	return rlimit(RLIMIT_MEMLOCK);
}

/*
 * Whether @npage more pages would pass the caller's RLIMIT_MEMLOCK in its
 * own mm (read unlocked, as the C module's vfio_pin_pages_remote() does).
 * Why C: rlimit() is a static inline and mm_struct is opaque to the crate.
 */
bool vfio_rs_caller_over_memlock(unsigned long npage)
{
	struct mm_struct *mm = current->mm;

	return mm && mm->locked_vm + npage > rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
}

/* Why C: access_ok() is an arch macro. */
bool vfio_rs_access_ok(unsigned long addr, unsigned long size)
{
	return access_ok((void __user *)addr, size);
}

/*
 * Charges (@npage > 0) or releases @npage pages of @mm's locked_vm on
 * behalf of @task (the mapping's owner); -ENOMEM over RLIMIT_MEMLOCK
 * without @lock_cap. With @async (any context but the map and replay
 * paths), -ESRCH if the mm has no users left; without, the mm is charged
 * even then, as the C module's vfio_lock_acct(..., async=false) does.
 * An error-injection point (see c_shims/iommu.c): the debug kernel's tests
 * fail it with -EINTR, as a fatal signal does while mmap_lock is contended.
 *
 * Why C: __account_locked_vm() needs mmap_lock held for writing.
 */
int vfio_rs_lock_acct(struct mm_struct *mm, long npage,
		      struct task_struct *task, bool lock_cap, bool async)
{
	int ret;

	if (!npage)
		return 0;
	if (async && !mmget_not_zero(mm))
		return -ESRCH;
	ret = mmap_write_lock_killable(mm);
	if (!ret) {
		ret = __account_locked_vm(mm, abs(npage), npage > 0, task, lock_cap);
		mmap_write_unlock(mm);
	}
	if (async)
		mmput(mm);
	return ret;
}
ALLOW_ERROR_INJECTION(vfio_rs_lock_acct, ERRNO);

/* Why C: capable() is not wrapped yet. */
bool vfio_rs_capable_ipc_lock(void)
{
	return capable(CAP_IPC_LOCK);
}


/*
 * References on the mm and the thread-group leader a mapping is charged to.
 * Why C: Linux 6.12's kernel crate has no Mm, ARef or Task::mm()
 * (rust/compat.rs uses these there; 7.x uses the kernel crate's own), and
 * mmgrab()/mmdrop()/get_task_struct() are static inlines.
 */
struct mm_struct *vfio_rs_mm_grab_current(void)
{
	struct mm_struct *mm = current->mm;

	if (mm)
		mmgrab(mm);
	return mm;
}

void vfio_rs_mm_grab(struct mm_struct *mm)
{
	mmgrab(mm);
}

void vfio_rs_mm_drop(struct mm_struct *mm)
{
	mmdrop(mm);
}

struct task_struct *vfio_rs_task_get_leader(void)
{
	struct task_struct *t = current->group_leader;

	get_task_struct(t);
	return t;
}

void vfio_rs_task_get(struct task_struct *t)
{
	get_task_struct(t);
}

void vfio_rs_task_put(struct task_struct *t)
{
	put_task_struct(t);
}
