// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for emulated-IOMMU (mdev) devices, which reach type1 through
 * pin_pages / unpin_pages / dma_rw from any context, not only from the
 * process that owns the memory.
 *
 * Why C: they work on another process's mm under its mmap_lock
 * (pin_user_pages_remote, kthread_use_mm with copy_{to,from}_user) and on
 * struct vfio_device's ops, none of which the Rust abstractions wrap yet.
 */
#include <linux/error-injection.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include "shims.h"

/*
 * Pins the page at @vaddr of @mm long-term (writable if @write).
 * -ENODEV if the mm is gone, -EINVAL for a VM_PFNMAP address (no struct
 * page to hand out), else GUP's errno.
 */
int vfio_rs_pin_remote_page(struct mm_struct *mm, unsigned long vaddr,
			    bool write, unsigned long *pfn)
{
	struct vm_area_struct *vma;
	struct page *page;
	long ret;

	if (!mmget_not_zero(mm))
		return -ENODEV;
	mmap_read_lock(mm);
	ret = pin_user_pages_remote(mm, vaddr, 1,
				    FOLL_LONGTERM | (write ? FOLL_WRITE : 0),
				    &page, NULL);
	if (ret == 1) {
		*pfn = page_to_pfn(page);
		ret = 0;
	} else {
		if (!ret)
			ret = -EFAULT;
		vma = vma_lookup(mm, vaddr);
		if (vma && (vma->vm_flags & VM_PFNMAP))
			ret = -EINVAL;
	}
	mmap_read_unlock(mm);
	mmput(mm);
	return ret;
}
/* An error-injection point for the tests of pin_pages (see iommu.c). */
ALLOW_ERROR_INJECTION(vfio_rs_pin_remote_page, ERRNO);

/*
 * Copies @count bytes between @data and @vaddr in @mm. Returns the bytes
 * copied (all or nothing), -EPERM if the mm is gone; copies nothing from a
 * process other than @mm's.
 */
long vfio_rs_rw_mm(struct mm_struct *mm, unsigned long vaddr, void *data,
		   size_t count, bool write)
{
	bool kthread = !current->mm;
	long copied = 0;

	if (!mmget_not_zero(mm))
		return -EPERM;
	if (kthread)
		kthread_use_mm(mm);
	if (kthread || current->mm == mm) {
		if (write)
			copied = copy_to_user((void __user *)vaddr, data, count) ? 0 : count;
		else
			copied = copy_from_user(data, (void __user *)vaddr, count) ? 0 : count;
	}
	if (kthread)
		kthread_unuse_mm(mm);
	mmput(mm);
	return copied;
}

bool vfio_rs_device_has_dma_unmap(struct vfio_device *vdev)
{
	return vdev->ops->dma_unmap;
}

void vfio_rs_device_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	vdev->ops->dma_unmap(vdev, iova, length);
}

/*
 * The backend's list of registered devices, linked through the node vfio
 * core keeps in each vfio_device for its IOMMU backend (iommu_entry, as the
 * C module's device_list): registering allocates nothing, so cannot fail.
 * The caller holds the list's lock.
 *
 * Why C: the list_head helpers are static inlines.
 */
void vfio_rs_device_list_init(struct list_head *head)
{
	INIT_LIST_HEAD(head);
}

void vfio_rs_device_list_add(struct list_head *head, struct vfio_device *vdev)
{
	list_add(&vdev->iommu_entry, head);
}

void vfio_rs_device_list_del(struct vfio_device *vdev)
{
	list_del_init(&vdev->iommu_entry);
}

/* The device after @vdev on the list (the first if @vdev is NULL), or NULL. */
struct vfio_device *vfio_rs_device_list_next(struct list_head *head,
					     struct vfio_device *vdev)
{
	struct list_head *next = vdev ? vdev->iommu_entry.next : head->next;

	return next == head ? NULL : list_entry(next, struct vfio_device, iommu_entry);
}
