// SPDX-License-Identifier: GPL-2.0
/*
 * Retiring a released container. Why C: Tasks RCU has no binding in the
 * kernel crate, and its callbacks take a struct rcu_head.
 *
 * vfio core (Linux 6.12 to 7.3 without patches/linux/0001) reads
 * container->iommu_data and calls vfio_rs_ioctl() under no lock that
 * release waits for. vfio_rs_ioctl() takes a reference of its own first;
 * until then the task runs a few instructions that cannot sleep, so it has
 * not passed a voluntary context switch. A Tasks RCU grace period ends once
 * every task has passed one (where Tasks RCU is absent, the kernel is
 * either not preemptible, and plain RCU's grace period, every CPU having
 * scheduled, covers the same, or the window stays open: see
 * vfio_rs_retire_covers_preemption()). Two grace periods, because vfio
 * core clears container->iommu_data only after release returns: a task
 * asleep when the first one scans may read the pointer after that scan,
 * but not after the first period ends (it cannot end before the releasing
 * task has passed a voluntary switch, after its store); the second waits
 * for such a task. Then every reader holds its own reference.
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include "shims.h"

struct vfio_rs_retire {
	struct rcu_head rcu;
	void *iommu_data;
	bool second;	/* in its second grace period */
};

/* Containers not yet freed: module exit waits for the last one. */
static atomic_t vfio_rs_live = ATOMIC_INIT(0);

struct vfio_rs_retire *vfio_rs_retire_alloc(void)
{
	return kzalloc(sizeof(struct vfio_rs_retire), GFP_KERNEL_ACCOUNT);
}

void vfio_rs_retire_free(struct vfio_rs_retire *r)
{
	kfree(r);
}

static void vfio_rs_retired(struct rcu_head *rcu)
{
	struct vfio_rs_retire *r = container_of(rcu, struct vfio_rs_retire, rcu);

	if (!r->second) {
		r->second = true;
		call_rcu_tasks(&r->rcu, vfio_rs_retired);
		return;
	}
	vfio_rs_container_put(r->iommu_data);
	kfree(r);
}

void vfio_rs_retire_queue(struct vfio_rs_retire *r, void *iommu_data)
{
	r->iommu_data = iommu_data;
	call_rcu_tasks(&r->rcu, vfio_rs_retired);
}

void vfio_rs_live_inc(void)
{
	atomic_inc(&vfio_rs_live);
}

void vfio_rs_live_dec(void)
{
	atomic_dec(&vfio_rs_live);
}

/*
 * Module exit: every retired container's reference dropped (two barriers:
 * the first stage of a retirement queues the second), every container
 * freed (an ioctl may hold the last one: say so if that takes long), then
 * one more grace period for the instructions an ioctl runs after its last
 * reference.
 */
void vfio_rs_retire_drain(void)
{
	unsigned int waited = 0;

	for (int stage = 0; stage < 2; stage++) {
#ifdef CONFIG_TASKS_RCU
		rcu_barrier_tasks();
#else
		rcu_barrier();
#endif
	}
	while (atomic_read(&vfio_rs_live)) {
		if (++waited == 250)
			pr_warn("vfio_iommu_type1_rs: unload waits for %d released containers still in use by an ioctl\n",
				atomic_read(&vfio_rs_live));
		msleep(20);
	}
	synchronize_rcu_tasks();
}

/* Whether a retired container outlives a task preempted in vfio core. */
bool vfio_rs_retire_covers_preemption(void)
{
	return IS_ENABLED(CONFIG_TASKS_RCU) || !IS_ENABLED(CONFIG_PREEMPTION);
}
