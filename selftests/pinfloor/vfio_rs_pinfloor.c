// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_rs_pinfloor: the pin-only floor of selftests/bench. It does what
 * io_uring_register(IORING_REGISTER_BUFFERS) does to a buffer, and nothing
 * of the IOMMU: charge the pages to the caller's locked_vm, pin them all
 * with one pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) into a kvmalloc'ed
 * page array; unpin releases them with unpin_user_pages(). bench times it
 * next to MAP_DMA of the same memory when io_uring is not built in.
 *
 * /dev/vfio_rs_pinfloor, one buffer per open file:
 *   ioctl(fd, PINFLOOR_PIN, &(struct pinfloor_req){ vaddr, size })
 *   ioctl(fd, PINFLOOR_UNPIN)        (also done on close)
 * Not part of the module under test; a benchmark aid only.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

struct pinfloor_req {
	__u64 vaddr;
	__u64 size;
};

#define PINFLOOR_PIN	_IOW('p', 1, struct pinfloor_req)
#define PINFLOOR_UNPIN	_IO('p', 2)

struct pinfloor {
	struct mutex lock;
	struct page **pages;
	unsigned long npages;
	struct mm_struct *mm;
};

static int pinfloor_open(struct inode *inode, struct file *file)
{
	struct pinfloor *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	mutex_init(&p->lock);
	file->private_data = p;
	return 0;
}

static long pinfloor_unpin(struct pinfloor *p)
{
	if (!p->pages)
		return -ENOENT;
	unpin_user_pages(p->pages, p->npages);
	account_locked_vm(p->mm, p->npages, false);
	mmdrop(p->mm);
	kvfree(p->pages);
	p->pages = NULL;
	p->npages = 0;
	p->mm = NULL;
	return 0;
}

static long pinfloor_pin(struct pinfloor *p, const struct pinfloor_req *r)
{
	unsigned long n = r->size >> PAGE_SHIFT, done = 0;
	struct page **pages;
	long ret;

	if (p->pages)
		return -EBUSY;
	if (!n || ((r->vaddr | r->size) & ~PAGE_MASK))
		return -EINVAL;
	pages = kvmalloc_array(n, sizeof(*pages), GFP_KERNEL_ACCOUNT);
	if (!pages)
		return -ENOMEM;
	ret = account_locked_vm(current->mm, n, true);
	if (ret)
		goto free;
	while (done < n) {
		int want = min_t(unsigned long, n - done, INT_MAX >> 1);

		ret = pin_user_pages_fast(r->vaddr + (done << PAGE_SHIFT), want,
					  FOLL_WRITE | FOLL_LONGTERM, pages + done);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			unpin_user_pages(pages, done);
			account_locked_vm(current->mm, n, false);
			goto free;
		}
		done += ret;
	}
	mmgrab(current->mm);
	p->mm = current->mm;
	p->pages = pages;
	p->npages = n;
	return 0;
free:
	kvfree(pages);
	return ret;
}

static long pinfloor_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct pinfloor *p = file->private_data;
	struct pinfloor_req r;
	long ret;

	switch (cmd) {
	case PINFLOOR_PIN:
		if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
			return -EFAULT;
		mutex_lock(&p->lock);
		ret = pinfloor_pin(p, &r);
		mutex_unlock(&p->lock);
		return ret;
	case PINFLOOR_UNPIN:
		mutex_lock(&p->lock);
		ret = pinfloor_unpin(p);
		mutex_unlock(&p->lock);
		return ret;
	}
	return -ENOTTY;
}

static int pinfloor_release(struct inode *inode, struct file *file)
{
	struct pinfloor *p = file->private_data;

	pinfloor_unpin(p);
	kfree(p);
	return 0;
}

static const struct file_operations pinfloor_fops = {
	.owner = THIS_MODULE,
	.open = pinfloor_open,
	.release = pinfloor_release,
	.unlocked_ioctl = pinfloor_ioctl,
};

static struct miscdevice pinfloor_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vfio_rs_pinfloor",
	.fops = &pinfloor_fops,
};

module_misc_device(pinfloor_dev);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("selftests/bench pin-only floor: FOLL_LONGTERM pin + locked_vm, no IOMMU");
