// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_rs_test_mdev: a tiny mediated device for the vfio-type1-rs selftests.
 *
 * The type1 backend's emulated-IOMMU interface (pin_pages, unpin_pages,
 * dma_rw, register_device + the .dma_unmap notification) is only reachable
 * from a kernel driver. This module is that driver, reduced to a command
 * interface that user space (selftests/emulated_test.c) drives through the
 * VFIO device fd:
 *
 *   pwrite(devfd, &cmd, n, 0)  runs one command (struct trm_cmd below);
 *   pread(devfd, &res, n, 0)   returns its result (struct trm_result) plus
 *                              the device's .dma_unmap counters.
 *
 * Region 0 (VFIO_DEVICE_GET_REGION_INFO index 0, offset 0) is that command
 * window; it is the only region. The layouts are duplicated in
 * emulated_test.c: keep both in sync.
 *
 * Every page the driver pins is tracked (one table entry per pin reference)
 * so that UNPIN, the .dma_unmap callback and close_device can give back
 * exactly what was taken: vfio requires an emulated-IOMMU driver to unpin
 * everything in a range it is told about, and the type1 backend BUG()s after
 * ten retries otherwise.
 *
 * Locking. Two locks, so that nothing the .dma_unmap callback waits for is
 * held across a call into the backend:
 *
 *   cmd_lock   (mutex) serialises commands, reads of the result and
 *              open/close. It is held across vfio_pin_pages,
 *              vfio_unpin_pages and vfio_dma_rw (which take the backend's
 *              lock: C's iommu->lock, ours Container::inner) and is never
 *              taken by the .dma_unmap callback.
 *   pins_lock  (spinlock) guards the pin table, the in-flight pin and the
 *              counters. Held only around that bookkeeping: never across a
 *              vfio call, never while taking another lock.
 *
 * The C backend calls .dma_unmap with iommu->device_list_lock held, a lock
 * it takes under iommu->lock (vfio_notify_dma_unmap, register_device,
 * unregister_device). A driver lock taken in the callback and held across
 * vfio_pin_pages/vfio_dma_rw (iommu->lock) closes a cycle: this driver used
 * to hold one `lock` for both, and lockdep reported
 *   &s->lock -> &iommu->lock -> &iommu->device_list_lock -> &s->lock.
 * The callback now takes pins_lock only. What is left is the C module's
 * own cycle, which no driver can avoid: the unpins vfio requires in the
 * callback take iommu->lock under device_list_lock, against iommu->lock ->
 * device_list_lock above. Lockdep reports it on the first callback that
 * unpins, and it deadlocks when another unmap that must notify (or a
 * device open) takes iommu->lock meanwhile (stress.concurrent_unmaps, which
 * skips C for this). Ours (Devices::list -> our locks -> Container::inner)
 * has no such cycle.
 *
 * A page is pinned in the backend before it is in the table (between
 * vfio_pin_pages returning and the record) and stays pinned after it left
 * it (UNPIN, or another callback or close, between taking the entries and
 * vfio_unpin_pages). A callback for a range with such a page waits (on
 * pins_wq, pins_lock dropped) until the record or the unpin is done, then
 * unpins what the table holds: C re-checks right after the callback and,
 * if pages are still pinned, calls it again, at most ten times, then BUG()s.
 * The wait is for a thread that needs only the backend's lock, which the
 * backend dropped before calling us. On ours nothing holding that lock
 * waits for Devices::list, so the wait ends. On C it does not cure the
 * cycle above, it hides it from lockdep (wait_event is not tracked): a
 * callback (device_list_lock held) waiting for a PIN/UNPIN/close that waits
 * for iommu->lock, held by a second notifying unmap or a register/
 * unregister_device that waits for device_list_lock, is the same
 * three-thread deadlock, reachable only under the C module's own cycle (no
 * test runs that schedule on C; review of this rewrite, 2026-12-07).
 */
#include <linux/completion.h>
#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/wait.h>

#define TRM_NAME "vfio_rs_test_mdev"

/* --- the user-space ABI (mirrored in selftests/emulated_test.c) --------- */

enum trm_op {
	TRM_OP_NOP = 0,		/* nothing; refreshes the counters in the result */
	TRM_OP_PIN = 1,		/* vfio_pin_pages(iova, npage, prot) */
	TRM_OP_UNPIN = 2,	/* vfio_unpin_pages(iova, npage) of pages we pinned */
	TRM_OP_DMA_READ = 3,	/* vfio_dma_rw(iova, len, write=false) -> res.data */
	TRM_OP_DMA_WRITE = 4,	/* vfio_dma_rw(iova, len, write=true) <- cmd.data */
	TRM_OP_RESET_COUNTERS = 5,
	/* The unmap gate: lets a test change the mappings at a known point,
	 * while the backend waits for a .dma_unmap (its lock dropped). Used
	 * by regress_test.c, which defines these three itself. */
	TRM_OP_GATE_ARM = 6,	/* the next .dma_unmap stops at the gate */
	TRM_OP_GATE_WAIT = 7,	/* returns once one is there (ETIMEDOUT: 10 s) */
	TRM_OP_GATE_OPEN = 8,	/* lets it go on (and disarms) */
};

/* A gated .dma_unmap goes on by itself after this, so no test can wedge. */
#define TRM_GATE_TIMEOUT	(10 * HZ)

#define TRM_DATA_MAX	8192	/* DMA_RW payload (two pages at 4K, less than one at 64K) */
#define TRM_PEEK_BYTES	64	/* PIN: bytes of the first pinned page returned */

struct trm_cmd {
	__u32 op;
	__u32 prot;	/* PIN: IOMMU_READ (1) | IOMMU_WRITE (2) */
	__u64 iova;
	__s32 npage;	/* PIN / UNPIN */
	__u32 len;	/* DMA_READ / DMA_WRITE */
	__u8 data[];	/* DMA_WRITE: len bytes */
};

struct trm_result {
	__s64 ret;		/* the vfio call's return value (or -errno) */
	__u64 unmap_calls;	/* .dma_unmap callbacks since open/reset */
	__u64 last_unmap_iova;	/* arguments of the last .dma_unmap */
	__u64 last_unmap_len;
	__u64 unmap_unpinned;	/* pages unpinned by .dma_unmap callbacks */
	__u64 pinned;		/* pin references the driver holds now */
	__u8 data[TRM_DATA_MAX]; /* PIN: first TRM_PEEK_BYTES of page 0;
				  * DMA_READ: the bytes read */
};

/* --- driver state ------------------------------------------------------- */

/* One pin reference: the type1 backend counts references per iova, so a
 * page pinned twice needs two entries and two unpins. An entry with an
 * owner is being unpinned by that owner (UNPIN, a callback or close),
 * outside pins_lock: nobody else touches it until the owner frees it. */
struct trm_pin {
	u64 iova;
	struct page *page;	/* NULL: free slot */
	const void *owner;	/* NULL: pinned and idle */
};

/* Enough for a full VFIO_PIN_PAGES_MAX_ENTRIES pin plus a second one. */
#define TRM_MAX_PINS	(2 * VFIO_PIN_PAGES_MAX_ENTRIES)

struct trm_state {
	struct vfio_device vdev;
	/* Commands, result reads, open/close; see "Locking" at the top.
	 * Order: cmd_lock -> the backend's lock (inside the vfio calls);
	 * never taken by .dma_unmap. Guards res and cmdbuf. */
	struct mutex cmd_lock;
	/* The table, the in-flight pin and the counters; held only around
	 * bookkeeping (never across a vfio call or another lock). */
	spinlock_t pins_lock;
	wait_queue_head_t pins_wq;	/* a pin recorded or an owned entry freed */
	struct trm_pin *pins;	/* TRM_MAX_PINS slots, page == NULL: free */
	unsigned int npins;	/* slots in use, owned ones included */
	/* The PIN command between vfio_pin_pages and its record (commands
	 * are serialised, so there is at most one). */
	bool pinning;
	u64 pin_iova;
	int pin_npage;
	u64 unmap_calls, last_unmap_iova, last_unmap_len, unmap_unpinned;
	/* The unmap gate, outside both locks: GATE_WAIT blocks, and the
	 * gated callback must not hold what GATE_OPEN takes. */
	atomic_t gate_armed;
	struct completion gate_reached, gate_open;
	struct trm_result res;	/* result of the last command */
	u8 cmdbuf[sizeof(struct trm_cmd) + TRM_DATA_MAX];
};

static struct trm_state *to_trm(struct vfio_device *vdev)
{
	return container_of(vdev, struct trm_state, vdev);
}

/* An idle tracked reference of iova. pins_lock held. */
static struct trm_pin *trm_find_pin(struct trm_state *s, u64 iova)
{
	int j;

	for (j = 0; j < TRM_MAX_PINS; j++)
		if (s->pins[j].page && !s->pins[j].owner && s->pins[j].iova == iova)
			return &s->pins[j];
	return NULL;
}

static bool trm_in_range(u64 addr, u64 iova, u64 len)
{
	return addr - iova < len;
}

/* Whether a page of [iova, iova + len) is pinned in the backend but not
 * idle in the table: being recorded (the in-flight PIN) or being unpinned
 * (an owned entry). pins_lock held. */
static bool trm_range_busy(struct trm_state *s, u64 iova, u64 len)
{
	int i, j;

	for (j = 0; j < TRM_MAX_PINS; j++)
		if (s->pins[j].page && s->pins[j].owner &&
		    trm_in_range(s->pins[j].iova, iova, len))
			return true;
	if (s->pinning)
		for (i = 0; i < s->pin_npage; i++)
			if (trm_in_range(s->pin_iova + (u64)i * PAGE_SIZE, iova, len))
				return true;
	return false;
}

/* Takes one idle reference for each page of [iova, iova+npage pages) for
 * @owner: returns false and changes nothing unless every page has one.
 * pins_lock held. */
static bool trm_claim_pages(struct trm_state *s, u64 iova, int npage, const void *owner)
{
	int i;

	if (npage <= 0 || npage > VFIO_PIN_PAGES_MAX_ENTRIES)
		return false;
	for (i = 0; i < npage; i++)
		if (!trm_find_pin(s, iova + (u64)i * PAGE_SIZE))
			return false;
	for (i = 0; i < npage; i++)
		trm_find_pin(s, iova + (u64)i * PAGE_SIZE)->owner = owner;
	return true;
}

/* Takes every idle reference in [iova, iova + len) for @owner, once no page
 * of it is busy (see trm_range_busy); returns how many. pins_lock held
 * (dropped while waiting). */
static unsigned int trm_claim_range(struct trm_state *s, u64 iova, u64 len, const void *owner)
{
	unsigned int n = 0;
	int j;

	wait_event_cmd(s->pins_wq, !trm_range_busy(s, iova, len),
		       spin_unlock(&s->pins_lock), spin_lock(&s->pins_lock));
	for (j = 0; j < TRM_MAX_PINS; j++) {
		struct trm_pin *p = &s->pins[j];

		if (p->page && !p->owner && trm_in_range(p->iova, iova, len)) {
			p->owner = owner;
			n++;
		}
	}
	return n;
}

/* Frees the slots @owner took (their pages unpinned) and wakes waiters. */
static void trm_release_claimed(struct trm_state *s, const void *owner)
{
	int j;

	spin_lock(&s->pins_lock);
	for (j = 0; j < TRM_MAX_PINS; j++) {
		struct trm_pin *p = &s->pins[j];

		if (p->page && p->owner == owner) {
			p->page = NULL;
			p->owner = NULL;
			s->npins--;
		}
	}
	spin_unlock(&s->pins_lock);
	wake_up_all(&s->pins_wq);
}

/* Unpins, one page at a time and without pins_lock, the @n references
 * @owner took with trm_claim_range, then frees their slots. */
static void trm_unpin_claimed(struct trm_state *s, const void *owner, unsigned int n)
{
	int j;

	for (j = 0; j < TRM_MAX_PINS && n; j++) {
		u64 iova;

		spin_lock(&s->pins_lock);
		if (!s->pins[j].page || s->pins[j].owner != owner) {
			spin_unlock(&s->pins_lock);
			continue;
		}
		iova = s->pins[j].iova;	/* ours: stays until we free it */
		spin_unlock(&s->pins_lock);
		vfio_unpin_pages(&s->vdev, iova, 1);
		n--;
	}
	trm_release_claimed(s, owner);
}

static void trm_do_pin(struct trm_state *s, const struct trm_cmd *c)
{
	struct page **pages;
	int n = c->npage, ret, i, j;
	bool valid = n > 0 && n <= VFIO_PIN_PAGES_MAX_ENTRIES;
	void *va;

	pages = kcalloc(clamp_t(int, n, 1, VFIO_PIN_PAGES_MAX_ENTRIES + 1),
			sizeof(*pages), GFP_KERNEL);
	if (!pages) {
		s->res.ret = -ENOMEM;
		return;
	}
	/* vfio core limits a call to VFIO_PIN_PAGES_MAX_ENTRIES (-E2BIG past
	 * it) and rejects 0; pass such requests through to get its errno but
	 * never allocate more than that. Slots only free up meanwhile (the
	 * only other writers are callbacks), so a fit now fits at the record. */
	spin_lock(&s->pins_lock);
	if (valid && s->npins + n > TRM_MAX_PINS) {
		spin_unlock(&s->pins_lock);
		kfree(pages);
		s->res.ret = -ENOSPC;
		return;
	}
	/* From here until the record a callback for this range waits. */
	if (valid) {
		s->pinning = true;
		s->pin_iova = c->iova;
		s->pin_npage = n;
	}
	spin_unlock(&s->pins_lock);

	ret = vfio_pin_pages(&s->vdev, c->iova, n, c->prot, pages);
	s->res.ret = ret;
	if (ret > 0) {
		/* Prove the page is the process's: the test compares these
		 * bytes with what it wrote at that address. (Still ours: a
		 * callback waits for the record below.) */
		va = kmap_local_page(pages[0]);
		memcpy(s->res.data, va, TRM_PEEK_BYTES);
		kunmap_local(va);
	}
	spin_lock(&s->pins_lock);
	for (i = 0, j = 0; i < ret; i++) {
		while (s->pins[j].page)
			j++;
		s->pins[j].iova = c->iova + (u64)i * PAGE_SIZE;
		s->pins[j].page = pages[i];
		s->pins[j].owner = NULL;
		s->npins++;
	}
	s->pinning = false;
	spin_unlock(&s->pins_lock);
	wake_up_all(&s->pins_wq);
	kfree(pages);
}

static void trm_do_unpin(struct trm_state *s, const struct trm_cmd *c)
{
	bool ok;

	/* Only unpin what this driver pinned: type1 WARNs on an unpin of an
	 * unmapped iova, and an unpin of someone else's reference would
	 * corrupt its count. The entries stay (owned: a callback for their
	 * range waits) until the backend has them back. */
	spin_lock(&s->pins_lock);
	ok = trm_claim_pages(s, c->iova, c->npage, c);
	spin_unlock(&s->pins_lock);
	if (!ok) {
		s->res.ret = -ENOENT;
		return;
	}
	vfio_unpin_pages(&s->vdev, c->iova, c->npage);
	trm_release_claimed(s, c);
	s->res.ret = c->npage;
}

/* --- vfio_device_ops ---------------------------------------------------- */

static int trm_init_dev(struct vfio_device *vdev)
{
	struct trm_state *s = to_trm(vdev);

	mutex_init(&s->cmd_lock);
	spin_lock_init(&s->pins_lock);
	init_waitqueue_head(&s->pins_wq);
	atomic_set(&s->gate_armed, 0);
	init_completion(&s->gate_reached);
	init_completion(&s->gate_open);
	s->pins = kcalloc(TRM_MAX_PINS, sizeof(*s->pins), GFP_KERNEL);
	return s->pins ? 0 : -ENOMEM;
}

static void trm_release_dev(struct vfio_device *vdev)
{
	struct trm_state *s = to_trm(vdev);

	kfree(s->pins);
	mutex_destroy(&s->cmd_lock);
}

static int trm_open_device(struct vfio_device *vdev)
{
	struct trm_state *s = to_trm(vdev);

	/* Each open starts with fresh counters and result. */
	mutex_lock(&s->cmd_lock);
	spin_lock(&s->pins_lock);
	s->unmap_calls = s->last_unmap_iova = s->last_unmap_len = 0;
	s->unmap_unpinned = 0;
	spin_unlock(&s->pins_lock);
	memset(&s->res, 0, sizeof(s->res));
	mutex_unlock(&s->cmd_lock);
	return 0;
}

static void trm_close_device(struct vfio_device *vdev)
{
	struct trm_state *s = to_trm(vdev);
	unsigned int n;
	u8 token;	/* its address tags the entries this call takes */

	/* The device is still open for vfio here (open_count == 1), so pins
	 * left by the test are given back now rather than leaked. A callback
	 * running meanwhile (an unmap from another fd) keeps what it took and
	 * gives it back itself; claim_range waits for that. */
	mutex_lock(&s->cmd_lock);
	spin_lock(&s->pins_lock);
	n = trm_claim_range(s, 0, U64_MAX, &token);
	spin_unlock(&s->pins_lock);
	trm_unpin_claimed(s, &token, n);
	mutex_unlock(&s->cmd_lock);
}

/* Called by type1 (vfio_notify_dma_unmap) before it removes a mapping that
 * has pages pinned through us: we must unpin them all. */
static void trm_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct trm_state *s = to_trm(vdev);
	unsigned int n;
	u8 token;	/* its address tags the entries this call takes */

	if (atomic_cmpxchg(&s->gate_armed, 1, 0) == 1) {
		complete(&s->gate_reached);
		wait_for_completion_timeout(&s->gate_open, TRM_GATE_TIMEOUT);
	}
	/* pins_lock only (see "Locking"): cmd_lock may be held by a command
	 * waiting in the backend for iommu->lock, whose holder may wait for
	 * the device_list_lock we are called under. */
	spin_lock(&s->pins_lock);
	s->unmap_calls++;
	s->last_unmap_iova = iova;
	s->last_unmap_len = length;
	n = trm_claim_range(s, iova, length, &token);
	s->unmap_unpinned += n;
	spin_unlock(&s->pins_lock);
	trm_unpin_claimed(s, &token, n);
}

static int trm_get_region_info(struct vfio_device *vdev, struct vfio_region_info *info,
			       struct vfio_info_cap *caps);

#ifndef TRM_HAVE_REGION_INFO_CAPS
/* Kernels whose vfio core leaves VFIO_DEVICE_GET_REGION_INFO to the driver. */
static long trm_ioctl_region_info(struct vfio_device *vdev, unsigned long arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;
	int ret;

	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	ret = trm_get_region_info(vdev, &info, NULL);
	if (ret)
		return ret;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}
#endif

static long trm_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	struct vfio_device_info info;
	unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);

#ifndef TRM_HAVE_REGION_INFO_CAPS
	if (cmd == VFIO_DEVICE_GET_REGION_INFO)
		return trm_ioctl_region_info(vdev, arg);
#endif
	if (cmd != VFIO_DEVICE_GET_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PLATFORM;
	info.num_regions = 1;
	info.num_irqs = 0;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}

/* VFIO_DEVICE_GET_REGION_INFO is handled by vfio core through this op. */
static int trm_get_region_info(struct vfio_device *vdev, struct vfio_region_info *info,
			       struct vfio_info_cap *caps)
{
	if (info->index != 0)
		return -EINVAL;
	info->offset = 0;
	info->size = sizeof(struct trm_cmd) + TRM_DATA_MAX;
	info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	return 0;
}

static ssize_t trm_read(struct vfio_device *vdev, char __user *buf, size_t count,
			loff_t *ppos)
{
	struct trm_state *s = to_trm(vdev);
	ssize_t ret = count;

	if (*ppos != 0 || count > sizeof(s->res))
		return -EINVAL;
	mutex_lock(&s->cmd_lock);
	spin_lock(&s->pins_lock);
	s->res.unmap_calls = s->unmap_calls;
	s->res.last_unmap_iova = s->last_unmap_iova;
	s->res.last_unmap_len = s->last_unmap_len;
	s->res.unmap_unpinned = s->unmap_unpinned;
	s->res.pinned = s->npins;
	spin_unlock(&s->pins_lock);
	if (copy_to_user(buf, &s->res, count))
		ret = -EFAULT;
	mutex_unlock(&s->cmd_lock);
	return ret;
}

/* The gate commands: 0 or -errno. Run without cmd_lock (GATE_WAIT blocks). */
static int trm_gate(struct trm_state *s, u32 op)
{
	switch (op) {
	case TRM_OP_GATE_ARM:
		reinit_completion(&s->gate_reached);
		reinit_completion(&s->gate_open);
		atomic_set(&s->gate_armed, 1);
		return 0;
	case TRM_OP_GATE_WAIT:
		return wait_for_completion_timeout(&s->gate_reached, TRM_GATE_TIMEOUT) ?
		       0 : -ETIMEDOUT;
	default:
		atomic_set(&s->gate_armed, 0);
		complete(&s->gate_open);
		return 0;
	}
}

static ssize_t trm_write(struct vfio_device *vdev, const char __user *buf, size_t count,
			 loff_t *ppos)
{
	struct trm_state *s = to_trm(vdev);
	struct trm_cmd *c = (struct trm_cmd *)s->cmdbuf;
	ssize_t ret = count;
	u32 op;

	if (*ppos != 0 || count < sizeof(*c) || count > sizeof(s->cmdbuf))
		return -EINVAL;
	if (get_user(op, (const u32 __user *)buf))
		return -EFAULT;
	if (op >= TRM_OP_GATE_ARM && op <= TRM_OP_GATE_OPEN)
		return trm_gate(s, op) ?: count;
	mutex_lock(&s->cmd_lock);
	if (copy_from_user(s->cmdbuf, buf, count)) {
		ret = -EFAULT;
		goto out;
	}
	memset(&s->res, 0, sizeof(s->res));
	switch (c->op) {
	case TRM_OP_NOP:
		break;
	case TRM_OP_PIN:
		trm_do_pin(s, c);
		break;
	case TRM_OP_UNPIN:
		trm_do_unpin(s, c);
		break;
	case TRM_OP_DMA_READ:
	case TRM_OP_DMA_WRITE:
		/* A write needs its payload in this same write(2). */
		if (c->len > TRM_DATA_MAX ||
		    (c->op == TRM_OP_DMA_WRITE && count < sizeof(*c) + c->len)) {
			ret = -EINVAL;
			break;
		}
		/* vfio_dma_rw copies to/from the mapping's user address with
		 * copy_{to,from}_user: this runs in the test process, whose
		 * mm is the mapping's. */
		if (c->op == TRM_OP_DMA_WRITE)
			s->res.ret = vfio_dma_rw(vdev, c->iova, c->data, c->len, true);
		else
			s->res.ret = vfio_dma_rw(vdev, c->iova, s->res.data, c->len, false);
		break;
	case TRM_OP_RESET_COUNTERS:
		spin_lock(&s->pins_lock);
		s->unmap_calls = s->last_unmap_iova = s->last_unmap_len = 0;
		s->unmap_unpinned = 0;
		spin_unlock(&s->pins_lock);
		break;
	default:
		ret = -EINVAL;
	}
out:
	mutex_unlock(&s->cmd_lock);
	return ret;
}

static const struct vfio_device_ops trm_dev_ops = {
	.name = "vfio-rs-test-mdev",
	.init = trm_init_dev,
	.release = trm_release_dev,
	.open_device = trm_open_device,
	.close_device = trm_close_device,
	.read = trm_read,
	.write = trm_write,
	.ioctl = trm_ioctl,
#ifdef TRM_HAVE_REGION_INFO_CAPS
	.get_region_info_caps = trm_get_region_info,
#endif
	/* Having .dma_unmap is what makes vfio register the device with the
	 * backend (type1's register_device) and allows vfio_pin_pages. */
	.dma_unmap = trm_dma_unmap,
	/* Required by vfio when CONFIG_IOMMUFD is set; NULL stubs otherwise. */
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};

/* --- mdev driver and parent --------------------------------------------- */

static int trm_probe(struct mdev_device *mdev)
{
	struct trm_state *s;
	int ret;

	s = vfio_alloc_device(trm_state, vdev, &mdev->dev, &trm_dev_ops);
	if (IS_ERR(s))
		return PTR_ERR(s);
	/* An emulated-IOMMU group of its own: the backend attaches it as
	 * VFIO_EMULATED_IOMMU (no IOMMU domain; DMA only via pin/rw). */
	ret = vfio_register_emulated_iommu_dev(&s->vdev);
	if (ret) {
		vfio_put_device(&s->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, s);
	return 0;
}

static void trm_remove(struct mdev_device *mdev)
{
	struct trm_state *s = dev_get_drvdata(&mdev->dev);

	/* Waits until the device fd is closed (close_device unpinned). */
	vfio_unregister_group_dev(&s->vdev);
	vfio_put_device(&s->vdev);
}

static struct mdev_driver trm_driver = {
	.device_api = VFIO_DEVICE_API_PLATFORM_STRING,
	.max_instances = 4,
	.driver = {
		.name = TRM_NAME,
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = trm_probe,
	.remove = trm_remove,
};

/* The one type: /sys/class/mdev_bus/vfio_rs_test_mdev/mdev_supported_types/
 * vfio_rs_test_mdev-1 (the directory is "<parent's class>-<sysfs_name>"). */
static struct mdev_type trm_type = {
	.sysfs_name = "1",
	.pretty_name = "vfio-type1-rs test device",
};
static struct mdev_type *trm_types[] = { &trm_type };

/* mdev devices hang off a parent struct device; it needs a class (or bus)
 * to appear in sysfs and to name the type directory. */
static const struct class trm_class = { .name = TRM_NAME };
static struct device trm_parent_dev;
static struct mdev_parent trm_parent;

static void trm_parent_release(struct device *dev)
{
	/* Static object: nothing to free. */
}

static int __init trm_init(void)
{
	int ret;

	ret = mdev_register_driver(&trm_driver);
	if (ret)
		return ret;
	ret = class_register(&trm_class);
	if (ret)
		goto err_driver;
	trm_parent_dev.class = &trm_class;
	trm_parent_dev.release = trm_parent_release;
	dev_set_name(&trm_parent_dev, TRM_NAME);
	ret = device_register(&trm_parent_dev);
	if (ret)
		goto err_put;
	ret = mdev_register_parent(&trm_parent, &trm_parent_dev, &trm_driver,
				   trm_types, ARRAY_SIZE(trm_types));
	if (ret)
		goto err_device;
	return 0;

err_device:
	device_del(&trm_parent_dev);
err_put:
	put_device(&trm_parent_dev);
	class_unregister(&trm_class);
err_driver:
	mdev_unregister_driver(&trm_driver);
	return ret;
}

static void __exit trm_exit(void)
{
	/* Removes every mdev still present (trm_remove for each). */
	mdev_unregister_parent(&trm_parent);
	device_unregister(&trm_parent_dev);
	class_unregister(&trm_class);
	mdev_unregister_driver(&trm_driver);
}

module_init(trm_init);
module_exit(trm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test mdev driving the VFIO type1 emulated-IOMMU interface");
