// SPDX-License-Identifier: GPL-2.0

//! Pinning user memory for DMA: long-term pins, grouped into physically
//! contiguous runs, with `locked_vm` accounting against RLIMIT_MEMLOCK.
//!
//! Lock order: called with the container lock held; takes the mm's
//! `mmap_lock` (inside GUP and the `locked_vm` charge).

use kernel::mm::Mm;
use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::task::Task;

use crate::bindings;

/// Who a mapping's memory belongs to: the process that created it, charged
/// in its `locked_vm` for what is pinned (with the task and CAP_IPC_LOCK
/// of the time of the mapping, as the C module).
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) mm: ARef<Mm>,
    task: ARef<Task>,
    lock_cap: bool,
}

impl Owner {
    /// The calling process (its thread group leader, as the C module).
    ///
    /// # Errors
    ///
    /// `ENODEV` from a context without an mm.
    pub(crate) fn current() -> Result<Self> {
        let cur = kernel::current!();
        let mm = cur.mm().map(|mm| ARef::<Mm>::from(&**mm)).ok_or(ENODEV)?;
        let task = ARef::from(cur.group_leader());
        // SAFETY: no preconditions.
        let lock_cap = unsafe { bindings::vfio_rs_capable_ipc_lock() };
        Ok(Self { mm, task, lock_cap })
    }

    /// Charges (`npage > 0`) or releases pages of `locked_vm`.
    ///
    /// # Errors
    ///
    /// `ENOMEM` over RLIMIT_MEMLOCK without CAP_IPC_LOCK; `ESRCH` if the
    /// mm has no users left.
    pub(crate) fn lock_acct(&self, npage: i64) -> Result {
        // SAFETY: `mm` and `task` are held by references.
        let ret = unsafe {
            bindings::vfio_rs_lock_acct(
                self.mm.as_raw().cast(),
                npage as c_long,
                self.task.as_ptr().cast(),
                self.lock_cap,
            )
        };
        kernel::error::to_result(ret)
    }
}

/// How many `struct page *` one GUP call fills: one page of pointers.
pub(crate) const BATCH_PAGES: usize = PAGE_SIZE / core::mem::size_of::<*mut bindings::page>();

/// A physically contiguous run of pages.
#[derive(Clone, Copy)]
pub(crate) struct PfnRun {
    pub(crate) pfn: usize,
    pub(crate) npages: usize,
    /// `false` for pfns of a VM_PFNMAP range (a device BAR): mapped
    /// without a pin and not accounted, as the C module does.
    pub(crate) pinned: bool,
}

/// Scratch space for one GUP call, allocated before the container lock.
pub(crate) struct PageBatch {
    pages: KVec<*mut bindings::page>,
}

impl PageBatch {
    pub(crate) fn new() -> Result<Self> {
        let mut pages = KVec::with_capacity(BATCH_PAGES, GFP_KERNEL)?;
        pages.resize(BATCH_PAGES, core::ptr::null_mut(), GFP_KERNEL)?;
        Ok(Self { pages })
    }
}

/// The user pages behind one mapping, pinned long-term and accounted in the
/// owner's `locked_vm`.
///
/// # Invariants
///
/// Every page of every pinned run in `runs` holds one pin taken by `pin`;
/// `locked` pages are charged to `owner`. Both are given back once, by
/// `drop`.
pub(crate) struct PinnedPages {
    runs: KVVec<PfnRun>,
    npages: usize,
    owner: Owner,
    locked: usize,
    writable: bool,
}

// SAFETY: the pins and the mm reference may be dropped from any thread.
unsafe impl Send for PinnedPages {}

impl PinnedPages {
    /// Pins `npages` pages of the current process at `vaddr`, charged to
    /// `owner`, and calls
    /// `map_run(offset, run)` for each physically contiguous run as soon as
    /// it is complete (`offset` is in bytes from `vaddr`). With
    /// `single_pages` every run is one page (the `disable_hugepages`
    /// parameter).
    ///
    /// # Errors
    ///
    /// GUP's errno (`EFAULT` for an unmapped or read-only range), `ENOMEM`
    /// when `locked_vm` would pass RLIMIT_MEMLOCK without CAP_IPC_LOCK, or
    /// `map_run`'s. Also returns how many bytes `map_run` mapped. On error
    /// the partly pinned pages come back with the error: the caller unmaps
    /// what was mapped, then drops them (unpin after unmap).
    pub(crate) fn pin(
        owner: Owner,
        vaddr: u64,
        npages: usize,
        writable: bool,
        single_pages: bool,
        batch: &mut PageBatch,
        mut map_run: impl FnMut(u64, PfnRun) -> Result,
    ) -> (core::result::Result<Self, (Error, Self)>, u64) {
        let mut pinned = PinnedPages {
            runs: KVVec::new(),
            npages: 0,
            owner,
            locked: 0,
            writable,
        };
        let mut mapped_runs = 0usize;
        let mut mapped_bytes = 0u64;
        let mut step = || -> Result {
            while pinned.npages < npages {
                pinned.pin_batch(vaddr, npages, writable, single_pages, batch)?;
                // Every run but the last is complete: the last may still grow.
                let complete = if pinned.npages == npages {
                    pinned.runs.len()
                } else {
                    pinned.runs.len() - 1
                };
                while mapped_runs < complete {
                    let run = pinned.runs[mapped_runs];
                    map_run(mapped_bytes, run)?;
                    mapped_bytes += (run.npages as u64) << PAGE_SHIFT;
                    mapped_runs += 1;
                }
            }
            Ok(())
        };
        let res = step();
        match res {
            Ok(()) => (Ok(pinned), mapped_bytes),
            Err(e) => (Err((e, pinned)), mapped_bytes),
        }
    }

    /// Pins the next batch of pages and appends them to `runs`; returns how
    /// many were pinned. On error nothing of this batch stays pinned.
    fn pin_batch(
        &mut self,
        vaddr: u64,
        npages: usize,
        writable: bool,
        single_pages: bool,
        batch: &mut PageBatch,
    ) -> Result<usize> {
        let want = (npages - self.npages).min(BATCH_PAGES);
        // Room for every page of the batch as a run of its own, so that
        // recording cannot fail once pages are pinned.
        self.runs.reserve(want, GFP_KERNEL)?;
        let addr = vaddr + ((self.npages as u64) << PAGE_SHIFT);
        let mut flags = bindings::FOLL_LONGTERM;
        if writable {
            flags |= bindings::FOLL_WRITE;
        }
        // SAFETY: `batch.pages` has room for `BATCH_PAGES >= want` entries;
        // GUP fills at most `want` of them. `want` fits in c_int.
        let got = unsafe {
            bindings::pin_user_pages_fast(
                addr as c_ulong,
                want as c_int,
                flags,
                batch.pages.as_mut_ptr(),
            )
        };
        if got <= 0 {
            let gup_err = if got == 0 {
                EFAULT
            } else {
                Error::from_errno(got)
            };
            return self.add_pfnmap(addr, npages - self.npages, writable, gup_err);
        }
        // `0 < got <= want`.
        let got = got as usize;
        let ret = self.owner.lock_acct(got as i64);
        if let Err(err) = ret {
            for &p in &batch.pages[..got] {
                // SAFETY: `p` was pinned just above and is recorded nowhere.
                unsafe { bindings::unpin_user_page_range_dirty_lock(p, 1, false) };
            }
            if err == ENOMEM {
                // SAFETY: reads current's rlimit.
                let limit = unsafe { bindings::vfio_rs_rlimit_memlock() };
                pr_warn!("map: RLIMIT_MEMLOCK ({}) exceeded\n", limit);
            }
            return Err(err);
        }
        self.locked += got;
        // Walk the batch a contiguous stretch at a time, so that huge pages
        // cost one pfn lookup per stretch rather than one per page.
        let mut i = 0;
        while i < got {
            let rest = &mut batch.pages[i..got];
            // SAFETY: `rest[0]` is a valid pinned page.
            let pfn = unsafe { bindings::vfio_rs_page_to_pfn(rest[0]) } as usize;
            let n = if single_pages {
                1
            } else {
                // SAFETY: `rest` holds `rest.len() >= 1` valid page pointers.
                let n = unsafe {
                    bindings::vfio_rs_pages_contiguous(rest.as_mut_ptr(), rest.len() as c_ulong)
                };
                // `1 <= n <= rest.len()`.
                n as usize
            };
            match self.runs.last_mut() {
                Some(run) if !single_pages && run.pinned && run.pfn + run.npages == pfn => {
                    run.npages += n
                }
                // Cannot fail: capacity reserved above (one run per page at most).
                _ => self.runs.push(
                    PfnRun {
                        pfn,
                        npages: n,
                        pinned: true,
                    },
                    GFP_KERNEL,
                )?,
            }
            self.npages += n;
            i += n;
        }
        Ok(got)
    }

    /// GUP refused `addr`: if it lies in a VM_PFNMAP range, records the
    /// contiguous pfns there (unpinned, unaccounted) and returns how many;
    /// otherwise fails with GUP's error.
    fn add_pfnmap(
        &mut self,
        addr: u64,
        left: usize,
        writable: bool,
        gup_err: Error,
    ) -> Result<usize> {
        let mut pfn: c_ulong = 0;
        // SAFETY: runs in the ioctl's process context; `pfn` is a live local.
        let n = unsafe {
            bindings::vfio_rs_pfnmap_lookup(addr as c_ulong, left as c_ulong, writable, &mut pfn)
        };
        if n == 0 {
            return Err(gup_err);
        }
        if n < 0 {
            return Err(Error::from_errno(n as c_int));
        }
        // `0 < n <= left`.
        let n = n as usize;
        match self.runs.last_mut() {
            Some(run) if !run.pinned && run.pfn + run.npages == pfn => run.npages += n,
            // Cannot fail: the caller reserved room for one more run.
            _ => self.runs.push(
                PfnRun {
                    pfn,
                    npages: n,
                    pinned: false,
                },
                GFP_KERNEL,
            )?,
        }
        self.npages += n;
        Ok(n)
    }

    pub(crate) fn runs(&self) -> &[PfnRun] {
        &self.runs
    }

    /// Moves the `locked_vm` charge to `new` (VADDR update from a new
    /// process).
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the new owner is over its RLIMIT_MEMLOCK.
    pub(crate) fn change_owner(&mut self, new: Owner) -> Result {
        if new.mm.as_raw() == self.owner.mm.as_raw() {
            return Ok(());
        }
        new.lock_acct(self.locked as i64)?;
        // The old mm may have no users left: nothing to give back then.
        let _ = self.owner.lock_acct(-(self.locked as i64));
        self.owner = new;
        Ok(())
    }
}

fn unpin_run(run: PfnRun, dirty: bool) {
    if !run.pinned {
        return;
    }
    // SAFETY: `run.pfn` is a valid pfn of a page we pinned.
    let page = unsafe { bindings::vfio_rs_pfn_to_page(run.pfn as c_ulong) };
    // SAFETY: the `run.npages` pages starting at `page` are contiguous and
    // each holds one of our pins.
    unsafe { bindings::unpin_user_page_range_dirty_lock(page, run.npages as c_ulong, dirty) };
}

impl Drop for PinnedPages {
    /// Unpins (marking writable pages dirty: the device may have written
    /// them) and unaccounts. Callers unmap from every IOMMU domain and flush
    /// the IOTLB first.
    fn drop(&mut self) {
        for run in self.runs.iter() {
            unpin_run(*run, self.writable);
        }
        // The owner's mm may have no users left: nothing to give back then.
        let _ = self.owner.lock_acct(-(self.locked as i64));
    }
}

/// Converts a pfn to the physical address `iommu_map` takes.
pub(crate) fn pfn_to_phys(pfn: usize) -> u64 {
    (pfn as u64) << PAGE_SHIFT
}
