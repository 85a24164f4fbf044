/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the C shim and the Rust crate, in both directions.
 */
#ifndef VFIO_RS_SHIMS_H
#define VFIO_RS_SHIMS_H

#include <linux/types.h>
#include "vfio.h"

struct iommu_group;
struct iommu_domain;
struct iommu_iotlb_gather;
struct page;

/*
 * C -> Rust. The backend's callbacks are not here: rust/ops.rs builds the
 * vfio_iommu_driver_ops table itself.
 */
struct seq_file;
/* Drops vfio core's reference to a released container (c_shims/retire.c). */
void vfio_rs_container_put(void *iommu_data);
/* Linux 6.12: the debugfs view's seq_file show, in rust/debugfs.rs. */
int vfio_rs_containers_show(struct seq_file *m, void *v);

/* Rust -> C: defined in c_shims/{ops,iommu,mm,emulated,params,debugfs}.c. */
bool vfio_rs_domain_enforce_cache_coherency(struct iommu_domain *domain);
const void *vfio_rs_domain_ops(struct iommu_domain *domain);
unsigned long vfio_rs_domain_pgsize_bitmap(struct iommu_domain *domain);
void vfio_rs_domain_aperture(struct iommu_domain *domain, u64 *start, u64 *end);
struct device;
const char *vfio_rs_dev_name(struct device *dev);
struct iommu_domain *vfio_rs_paging_domain_alloc(struct device *dev);
int vfio_rs_iommu_map(struct iommu_domain *domain, unsigned long iova,
		      phys_addr_t paddr, size_t size, int prot);
int vfio_rs_iommu_attach_group(struct iommu_domain *domain,
			       struct iommu_group *group);
int vfio_rs_pin_user_pages_fast(unsigned long start, int nr_pages,
				unsigned int gup_flags, struct page **pages);
void vfio_rs_iotlb_gather_init(struct iommu_iotlb_gather *gather);
void vfio_rs_iotlb_sync(struct iommu_domain *domain,
			struct iommu_iotlb_gather *gather);
unsigned long vfio_rs_page_to_pfn(struct page *page);
struct page *vfio_rs_pfn_to_page(unsigned long pfn);
unsigned long vfio_rs_pages_contiguous(struct page **pages, unsigned long n);
bool vfio_rs_access_ok(unsigned long addr, unsigned long size);
unsigned long vfio_rs_rlimit_memlock(void);
bool vfio_rs_caller_over_memlock(unsigned long npage);
void vfio_rs_trace_attach(u32 container, int group, bool merged, u32 replayed, u64 pgsizes);
void vfio_rs_trace_detach(u32 container, int group, bool domain_freed);
void vfio_rs_trace_map(u32 container, u64 iova, u64 size, u32 runs, u32 domains);
void vfio_rs_trace_unmap(u32 container, u64 iova, u64 last, u32 mappings, u64 bytes);
struct mm_struct;
struct task_struct;
int vfio_rs_pin_remote_page(struct mm_struct *mm, unsigned long vaddr,
			    bool write, unsigned long *pfn);
struct mm_struct *vfio_rs_mm_grab_current(void);
void vfio_rs_mm_grab(struct mm_struct *mm);
void vfio_rs_mm_drop(struct mm_struct *mm);
struct task_struct *vfio_rs_task_get_leader(void);
void vfio_rs_task_get(struct task_struct *t);
void vfio_rs_task_put(struct task_struct *t);
int vfio_rs_lock_acct(struct mm_struct *mm, long npage,
		      struct task_struct *task, bool lock_cap, bool async);
long vfio_rs_rw_mm(struct mm_struct *mm, unsigned long vaddr, void *data,
		   size_t count, bool write);
bool vfio_rs_capable_ipc_lock(void);
bool vfio_rs_device_has_dma_unmap(struct vfio_device *vdev);
void vfio_rs_device_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length);
void vfio_rs_device_list_init(struct list_head *head);
void vfio_rs_device_list_add(struct list_head *head, struct vfio_device *vdev);
void vfio_rs_device_list_del(struct vfio_device *vdev);
struct vfio_device *vfio_rs_device_list_next(struct list_head *head,
					     struct vfio_device *vdev);
long vfio_rs_pfnmap_lookup(unsigned long vaddr, unsigned long npages,
			   bool write, unsigned long *pfn);
bool vfio_rs_param_allow_unsafe_interrupts(void);
bool vfio_rs_param_disable_hugepages(void);
unsigned int vfio_rs_param_dma_entry_limit(void);
bool vfio_rs_param_verbose(void);
struct vfio_rs_retire;
struct vfio_rs_retire *vfio_rs_retire_alloc(void);
void vfio_rs_retire_free(struct vfio_rs_retire *r);
void vfio_rs_retire_queue(struct vfio_rs_retire *r, void *iommu_data);
void vfio_rs_live_inc(void);
void vfio_rs_live_dec(void);
void vfio_rs_retire_drain(void);
bool vfio_rs_retire_covers_preemption(void);
/* Linux 6.12 only (debugfs.c is built where the kernel crate lacks debugfs). */
void vfio_rs_debugfs_create(void);
void vfio_rs_debugfs_remove(void);

#endif
