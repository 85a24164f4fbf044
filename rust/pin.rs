// SPDX-License-Identifier: GPL-2.0

//! Pinning user memory for DMA: long-term pins, grouped into physically
//! contiguous runs, with `locked_vm` accounting against RLIMIT_MEMLOCK.
//!
//! Lock order: called with the container lock held; takes the mm's
//! `mmap_lock` (inside GUP and the `locked_vm` charge).

use kernel::ffi::{c_int, c_long, c_ulong};
use kernel::page::PAGE_SHIFT;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

#[cfg(not(vfio_rs_vec_ext))]
use crate::compat::VecExt;

use crate::bindings;
use crate::compat::{current_mm_and_leader, eoverflow, mm_raw, task_raw, MmRef, TaskRef};
use crate::runs::page_bytes;
use crate::runs::PfnRun;
use crate::runs::RunList;
use crate::runs::MAX_RUN_PAGES;

/// Who a mapping's memory belongs to: the process that created it, charged
/// in its `locked_vm` for what is pinned (with the task and CAP_IPC_LOCK
/// of the time of the mapping, as the C module).
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) mm: MmRef,
    task: TaskRef,
    lock_cap: bool,
}

impl Owner {
    /// The calling process (its thread group leader, as the C module).
    ///
    /// # Errors
    ///
    /// `ENODEV` from a context without an mm.
    pub(crate) fn current() -> Result<Self> {
        let (mm, task) = current_mm_and_leader().ok_or(ENODEV)?;
        // SAFETY: no preconditions.
        let lock_cap = unsafe { bindings::vfio_rs_capable_ipc_lock() };
        Ok(Self { mm, task, lock_cap })
    }

    /// Whether `other` charges the same mm.
    pub(crate) fn same_mm(&self, other: &Owner) -> bool {
        mm_raw(&self.mm) == mm_raw(&other.mm)
    }

    /// Charges `npages` pages to the owner's `locked_vm`.
    ///
    /// # Errors
    ///
    /// `ENOMEM` over RLIMIT_MEMLOCK without CAP_IPC_LOCK; `ESRCH` if the
    /// mm has no users left.
    pub(crate) fn charge(&self, npages: usize) -> Result {
        self.acct(pages(npages)?, true)
    }

    /// Gives `npages` pages of `locked_vm` back. If the owner's mm has no
    /// users left there is nothing to give back (as in the C module).
    pub(crate) fn uncharge(&self, npages: usize) {
        if let Ok(n) = pages(npages) {
            // `n >= 0`, so its negation cannot overflow.
            let _ = self.acct(n.wrapping_neg(), true);
        }
    }

    /// Charges pages just pinned by the map or replay path, which runs in
    /// an ioctl: the owner's mm is charged even if it has no users left
    /// (a mapping outliving its process), as the C module does there.
    ///
    /// # Errors
    ///
    /// `ENOMEM` over RLIMIT_MEMLOCK without CAP_IPC_LOCK.
    fn charge_pinned(&self, npages: usize) -> Result {
        self.acct(pages(npages)?, false)
    }

    /// C's `vfio_pin_pages_remote()` also holds the pages it pins against
    /// the caller's own `locked_vm` and RLIMIT_MEMLOCK (unless the owner
    /// had CAP_IPC_LOCK): a replay from another process (a group attached
    /// by it) answers ENOMEM over that process's limit. From the owner's
    /// process this is the owner's check again. C sums the pages of one
    /// physically contiguous chunk, this those of one GUP batch: from
    /// another process the answers differ when the caller's room lies
    /// between the two sums.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if `npages` more would pass the caller's limit.
    fn check_caller_limit(&self, npages: usize) -> Result {
        // As C, nothing to charge is never refused (even over the limit).
        if npages == 0 || self.lock_cap {
            return Ok(());
        }
        // SAFETY: runs in the ioctl's process context; no other preconditions.
        if unsafe { bindings::vfio_rs_caller_over_memlock(npages as c_ulong) } {
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Turns a charge of `from` pages into one of `to` pages with one
    /// `locked_vm` update, as the C module's one net `vfio_lock_acct()`
    /// (the limit applies only if it grows). Returns the pages charged
    /// then: `to`, or, if the update failed (fatal signal, mm without
    /// users, over the limit), what of `from` there is for `to`; the rest
    /// of `from` then stays charged to nobody, as in C.
    pub(crate) fn recharge(&self, from: usize, to: usize) -> usize {
        let delta = pages(to).and_then(|t| Ok(t.wrapping_sub(pages(from)?)));
        // Both are `>= 0`, so the difference cannot overflow.
        match delta.and_then(|d| self.acct(d, true)) {
            Ok(()) => to,
            Err(_) => from.min(to),
        }
    }

    /// Adds `delta` pages (taken back if negative) to `locked_vm`; no
    /// update at all for none, as the C module's `vfio_lock_acct()`.
    fn acct(&self, delta: c_long, async_: bool) -> Result {
        if delta == 0 {
            return Ok(());
        }
        // SAFETY: `mm` and `task` are held by references (`mmgrab` and a
        // task reference), so both stay valid even after the process exits.
        let ret = unsafe {
            bindings::vfio_rs_lock_acct(
                mm_raw(&self.mm),
                delta,
                task_raw(&self.task),
                self.lock_cap,
                async_,
            )
        };
        kernel::error::to_result(ret)
    }
}

/// `npages` as a `locked_vm` page count.
fn pages(npages: usize) -> Result<c_long> {
    c_long::try_from(npages).map_err(|_| ENOMEM)
}

/// The caller's RLIMIT_MEMLOCK, in bytes, for warnings.
pub(crate) fn memlock_limit() -> c_ulong {
    // SAFETY: reads current's rlimit; no preconditions.
    unsafe { bindings::vfio_rs_rlimit_memlock() }
}

impl Owner {
    /// Copies `buf.len()` bytes from the owner's memory at `vaddr` (from
    /// its own process or a kernel thread).
    ///
    /// # Errors
    ///
    /// `EFAULT` (not everything copied, or another process), `EPERM` (the
    /// mm is gone).
    pub(crate) fn read_user(&self, vaddr: u64, buf: &mut [u8]) -> Result {
        self.copy(vaddr, buf.as_mut_ptr(), buf.len(), false)
    }

    /// Copies `buf` to the owner's memory at `vaddr`; errors as `read_user`.
    pub(crate) fn write_user(&self, vaddr: u64, buf: &[u8]) -> Result {
        // The shim only reads through the pointer when writing to user.
        self.copy(vaddr, buf.as_ptr().cast_mut(), buf.len(), true)
    }

    fn copy(&self, vaddr: u64, data: *mut u8, len: usize, write: bool) -> Result {
        // SAFETY: `data[..len]` is a live buffer borrowed by the caller (a
        // mutable borrow when the shim writes to it, i.e. `!write`); `mm`
        // is held by this owner.
        let copied = unsafe {
            bindings::vfio_rs_rw_mm(mm_raw(&self.mm), vaddr as c_ulong, data.cast(), len, write)
        };
        match copied {
            0 => Err(EFAULT),
            n if n < 0 => Err(Error::from_errno(n as c_int)),
            _ => Ok(()),
        }
    }
}

/// One user page pinned long-term on its own (for an emulated device);
/// unpinned on drop, marked dirty if it was pinned writable.
///
/// # Invariants
///
/// `pfn` holds one long-term pin taken by `pin_remote`.
pub(crate) struct PinnedPage {
    pfn: usize,
    writable: bool,
}

impl PinnedPage {
    /// Pins the page at `vaddr` of the owner's mm, from any context.
    ///
    /// # Errors
    ///
    /// `ENODEV` (the mm is gone), `EINVAL` (a VM_PFNMAP address: no struct
    /// page to hand out), GUP's errno.
    pub(crate) fn pin_remote(owner: &Owner, vaddr: u64, writable: bool) -> Result<Self> {
        let mut pfn: c_ulong = 0;
        // SAFETY: `mm` is held by `owner`; `pfn` is a live local.
        let ret = unsafe {
            bindings::vfio_rs_pin_remote_page(
                mm_raw(&owner.mm),
                vaddr as c_ulong,
                writable,
                &mut pfn,
            )
        };
        kernel::error::to_result(ret)?;
        // INVARIANT: the shim took one long-term pin on `pfn`.
        Ok(Self {
            pfn: pfn as usize,
            writable,
        })
    }

    /// The pinned page, for the driver.
    pub(crate) fn page(&self) -> *mut bindings::page {
        pfn_to_page(self.pfn)
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: `pfn` holds our pin (type invariant), given back once.
        unsafe { bindings::unpin_user_page_range_dirty_lock(self.page(), 1, self.writable) };
    }
}

/// How many `struct page *` one GUP call fills: one page of pointers.
pub(crate) const BATCH_PAGES: usize = PAGE_SIZE / core::mem::size_of::<*mut bindings::page>();

/// Scratch space for one GUP call, allocated with the container.
pub(crate) struct PageBatch {
    pages: KVec<*mut bindings::page>,
    /// The lengths of the batch's physically contiguous stretches.
    lens: KVec<u16>,
}

// SAFETY: only scratch space: the pointers are written by GUP and read
// back by the same call, never kept between calls.
unsafe impl Send for PageBatch {}

impl PageBatch {
    pub(crate) fn new() -> Result<Self> {
        let mut pages = KVec::with_capacity(BATCH_PAGES, GFP_KERNEL_ACCOUNT)?;
        pages.resize(BATCH_PAGES, core::ptr::null_mut(), GFP_KERNEL_ACCOUNT)?;
        let mut lens = KVec::with_capacity(BATCH_PAGES, GFP_KERNEL_ACCOUNT)?;
        lens.resize(BATCH_PAGES, 0u16, GFP_KERNEL_ACCOUNT)?;
        Ok(Self { pages, lens })
    }

    /// Splits the first `got` pages into physically contiguous stretches
    /// (one page each with `single_pages`); returns how many, their lengths
    /// in `lens`. One scan, so that huge pages cost one pfn lookup per
    /// stretch rather than one per page.
    fn scan(&mut self, got: usize, single_pages: bool) -> usize {
        let pages = self.pages.get(..got).unwrap_or(&[]);
        let (mut i, mut count) = (0usize, 0usize);
        while let Some(rest) = pages.get(i..).filter(|r| !r.is_empty()) {
            let n = stretch_len(rest, single_pages);
            if let Some(len) = self.lens.get_mut(count) {
                // `n <= BATCH_PAGES` fits in u16.
                *len = n as u16;
            }
            i = i.saturating_add(n);
            count = count.saturating_add(1);
        }
        count
    }
}

/// The user pages behind one mapping, pinned long-term and accounted in the
/// owner's `locked_vm`.
///
/// # Invariants
///
/// Every page of every pinned run in `runs` and in `open` holds one pin
/// taken by `fill`; `locked` pages are charged to `owner` (those `fill`
/// charged and those taken over from device pins as a credit; `credit` of
/// them are not set against pinned pages yet). Both are given back once,
/// by `drop` or `unpin_keeping`. `npages` counts the pages of `runs` and
/// `open`.
/// No run is longer than `MAX_RUN_PAGES`, so each is one record.
pub(crate) struct PinnedPages {
    /// The completed runs, mapped already.
    runs: RunList,
    /// The last run while `fill` may still grow it (not mapped yet).
    open: Option<PfnRun>,
    npages: usize,
    owner: Owner,
    locked: usize,
    credit: usize,
    writable: bool,
}

// SAFETY: the pins and the mm reference may be dropped from any thread.
unsafe impl Send for PinnedPages {}

impl PinnedPages {
    /// Nothing pinned yet; what [`Self::fill`] pins is charged to `owner`,
    /// but for the first `credit` pages: device pins of the same memory
    /// hand their charge over (C's `vfio_pin_pages_remote()` charges only
    /// pages no device pinned), so the limit sees what C's check does.
    pub(crate) fn new(owner: Owner, writable: bool, credit: usize) -> Self {
        // INVARIANT: no runs; the `credit` pages are charged already.
        Self {
            runs: RunList::new(),
            open: None,
            npages: 0,
            owner,
            locked: credit,
            credit,
            writable,
        }
    }

    /// Pins `npages` pages of the current process at `vaddr` and calls
    /// `map_run(run)` for each physically contiguous run, in order, as soon
    /// as it is complete. With `single_pages` every run is one page (the
    /// `disable_hugepages` parameter).
    ///
    /// # Errors
    ///
    /// GUP's errno (`EFAULT` for an unmapped or read-only range), `ENOMEM`
    /// when `locked_vm` would pass RLIMIT_MEMLOCK without CAP_IPC_LOCK, or
    /// `map_run`'s. What was pinned stays in `self` until it is dropped, so
    /// a caller drops whatever `map_run` mapped (a `Mapped` guard declared
    /// after `self`) before `self`.
    pub(crate) fn fill(
        &mut self,
        vaddr: u64,
        npages: usize,
        single_pages: bool,
        batch: &mut PageBatch,
        mut map_run: impl FnMut(PfnRun) -> Result,
    ) -> Result {
        while self.npages < npages {
            self.pin_batch(vaddr, npages, single_pages, batch, &mut map_run)?;
        }
        // The last run is complete too.
        self.runs.reserve(1)?;
        if let Some(run) = self.open.take() {
            self.close(run, &mut map_run)?;
        }
        self.runs.trim();
        Ok(())
    }

    /// Records the completed `run` and maps it. Room for it was reserved.
    fn close(&mut self, run: PfnRun, map_run: &mut impl FnMut(PfnRun) -> Result) -> Result {
        if !self.runs.push(run) {
            // Not reached: room was reserved. Give the run's pins back now.
            // Their charge stays in `locked`, given back by `drop`.
            unpin_run(run, self.writable);
            self.npages = self.npages.saturating_sub(run.npages());
            return Err(ENOMEM);
        }
        map_run(run)
    }

    /// Pins the next batch of pages and appends them to `runs`. On error
    /// nothing of this batch stays pinned.
    fn pin_batch(
        &mut self,
        vaddr: u64,
        npages: usize,
        single_pages: bool,
        batch: &mut PageBatch,
        map_run: &mut impl FnMut(PfnRun) -> Result,
    ) -> Result {
        let left = npages.saturating_sub(self.npages);
        let want = left.min(BATCH_PAGES);
        // A VM_PFNMAP range adds at most one run (and closes the open one).
        self.runs.reserve(1)?;
        let addr = vaddr.checked_add(page_bytes(self.npages)).ok_or(EFAULT)?;
        let got = match self.gup(addr, want, batch) {
            Ok(got) => got,
            Err(gup_err) => return self.add_pfnmap(addr, left, single_pages, gup_err, map_run),
        };
        // Room for a run per contiguous stretch of the batch (each closes
        // the one before; the last stays open), so that recording cannot
        // fail once the pages are pinned and charged.
        let count = batch.scan(got, single_pages);
        let pages = batch.pages.get(..got).unwrap_or(&[]);
        let lens = batch.lens.get(..count).unwrap_or(&[]);
        let reserved = self.runs.reserve(count);
        if let Err(err) = reserved.and_then(|()| self.charge_batch(got)) {
            for &p in pages {
                // SAFETY: `p` was pinned just above and is recorded nowhere.
                unsafe { bindings::unpin_user_page_range_dirty_lock(p, 1, false) };
            }
            return Err(err);
        }
        self.record(pages, lens, single_pages, map_run)
    }

    /// Charges `got` newly pinned pages but for what is left of the credit.
    ///
    /// # Errors
    ///
    /// `ENOMEM` over RLIMIT_MEMLOCK, `EINTR` (fatal signal): nothing
    /// charged, the credit unused.
    fn charge_batch(&mut self, got: usize) -> Result {
        let covered = self.credit.min(got);
        let due = got.saturating_sub(covered);
        // Only the limit check logs, as in C (not a failed allocation),
        // and as C the limit in whole pages.
        self.owner.check_caller_limit(due).inspect_err(|_| {
            let limit = memlock_limit() >> PAGE_SHIFT << PAGE_SHIFT;
            pr_warn!("map: RLIMIT_MEMLOCK ({}) exceeded\n", limit);
        })?;
        self.owner.charge_pinned(due)?;
        // INVARIANT: `due` more pages charged; `covered` credit used up.
        self.credit = self.credit.saturating_sub(covered);
        self.locked = self.locked.saturating_add(due);
        Ok(())
    }

    /// Pins up to `want` pages at `addr` into `batch`; returns how many.
    ///
    /// # Errors
    ///
    /// GUP's errno (`EFAULT` when it pinned nothing).
    fn gup(&self, addr: u64, want: usize, batch: &mut PageBatch) -> Result<usize> {
        let mut flags = bindings::FOLL_LONGTERM;
        if self.writable {
            flags |= bindings::FOLL_WRITE;
        }
        let pages = batch.pages.get_mut(..want).ok_or(EINVAL)?;
        // SAFETY: `pages` has room for `want` entries; GUP fills at most
        // `want` of them. `want <= BATCH_PAGES` fits in c_int.
        let got = unsafe {
            bindings::vfio_rs_pin_user_pages_fast(
                addr as c_ulong,
                want as c_int,
                flags,
                pages.as_mut_ptr(),
            )
        };
        match usize::try_from(got) {
            Ok(n) if n > 0 => Ok(n.min(want)),
            Ok(_) => Err(EFAULT),
            // GUP answers EOVERFLOW for a range ending at 2^64 (the last
            // page of the address space); no vma can be there, so this is
            // EFAULT, as the C module's pin_user_pages_remote() says.
            Err(_) if Error::from_errno(got) == eoverflow() => Err(EFAULT),
            Err(_) => Err(Error::from_errno(got)),
        }
    }

    /// Appends the pinned `pages`, a stretch of `lens` pages at a time.
    /// Room for one run per stretch was reserved. Every page is recorded
    /// (so that drop unpins it) even if mapping a completed run fails, but
    /// nothing is mapped after that failure, as in the C module: a later
    /// run would land at the failed run's IOVA. The first error is
    /// returned.
    fn record(
        &mut self,
        pages: &[*mut bindings::page],
        lens: &[u16],
        single_pages: bool,
        map_run: &mut impl FnMut(PfnRun) -> Result,
    ) -> Result {
        let mut result = Ok(());
        let mut i = 0usize;
        for &n in lens {
            let Some(&first) = pages.get(i) else {
                break;
            };
            // SAFETY: `first` is a valid pinned page.
            let pfn = unsafe { bindings::vfio_rs_page_to_pfn(first) } as usize;
            // SAFETY: GUP pinned these `n` contiguous pages for us; they go
            // into this `PinnedPages` (or back, by `close`), which unpins
            // only after the flows unmapped them (`Mapped` is dropped first).
            let run = unsafe { PfnRun::new(pfn, usize::from(n), true) };
            if result.is_ok() {
                result = self.push_pages(run, single_pages, map_run);
            } else {
                // Recorded only; should even that fail, `close` gave the
                // run's pins back.
                let _ = self.push_pages(run, single_pages, &mut |_| Ok(()));
            }
            i = i.saturating_add(usize::from(n));
        }
        result
    }

    /// Adds `run` (pinned or not, at most `MAX_RUN_PAGES` pages): it grows
    /// the open run when contiguous with it and the sum stays within
    /// `MAX_RUN_PAGES`, else the open run is complete (recorded and mapped)
    /// and `run` becomes the open one. The pages count as ours either way.
    /// The cap makes every completed run one record, which is all the room
    /// the callers reserve.
    fn push_pages(
        &mut self,
        run: PfnRun,
        single_pages: bool,
        map_run: &mut impl FnMut(PfnRun) -> Result,
    ) -> Result {
        self.npages = self.npages.saturating_add(run.npages());
        if let Some(open) = self.open.as_mut() {
            if !single_pages && open.absorb(&run) {
                return Ok(());
            }
        }
        match self.open.replace(run) {
            Some(done) => self.close(done, map_run),
            None => Ok(()),
        }
    }

    /// GUP refused `addr`: if it lies in a VM_PFNMAP range, records the
    /// contiguous pfns there (unpinned, unaccounted); otherwise fails with
    /// GUP's error.
    fn add_pfnmap(
        &mut self,
        addr: u64,
        left: usize,
        single_pages: bool,
        gup_err: Error,
        map_run: &mut impl FnMut(PfnRun) -> Result,
    ) -> Result {
        let mut pfn: c_ulong = 0;
        // SAFETY: runs in the ioctl's process context; `pfn` is a live local.
        let n = unsafe {
            bindings::vfio_rs_pfnmap_lookup(
                addr as c_ulong,
                left as c_ulong,
                self.writable,
                &mut pfn,
            )
        };
        match usize::try_from(n) {
            Ok(0) => Err(gup_err),
            // One page at a time with `disable_hugepages`, as the C module;
            // at most one record's worth otherwise (the rest comes next).
            Ok(n) => {
                let npages = if single_pages {
                    1
                } else {
                    n.min(left).min(MAX_RUN_PAGES)
                };
                // SAFETY: `vfio_rs_pfnmap_lookup` found these `npages` pfns
                // mapped by a VM_PFNMAP vma of the caller's mm: device
                // memory, mapped without a pin, as the C module does.
                let run = unsafe { PfnRun::new(pfn as usize, npages, false) };
                self.push_pages(run, single_pages, map_run)
            }
            Err(_) => Err(Error::from_errno(n as c_int)),
        }
    }

    /// The runs, in IOVA order (once `fill` is done).
    pub(crate) fn runs(&self) -> &RunList {
        &self.runs
    }

    /// Moves the `locked_vm` charge to `new` (VADDR update from a new
    /// process).
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the new owner is over its RLIMIT_MEMLOCK.
    pub(crate) fn change_owner(&mut self, new: Owner) -> Result {
        if new.same_mm(&self.owner) {
            return Ok(());
        }
        new.charge(self.locked)?;
        self.owner.uncharge(self.locked);
        self.owner = new;
        Ok(())
    }
}

fn unpin_run(run: PfnRun, dirty: bool) {
    if !run.pinned() {
        return;
    }
    // SAFETY: `run.pfn()` is a valid pfn of a page we pinned.
    let page = unsafe { bindings::vfio_rs_pfn_to_page(run.pfn() as c_ulong) };
    // SAFETY: the `run.npages()` pages starting at `page` are contiguous
    // and each holds one of our pins.
    unsafe { bindings::unpin_user_page_range_dirty_lock(page, run.npages() as c_ulong, dirty) };
}

impl PinnedPages {
    /// Unpins everything but leaves `keep` pages of the charge to the
    /// caller (device pins of the same memory): the rest is given back
    /// (or the difference charged) in one `locked_vm` update. Returns the
    /// pages the caller is charged for then (see [`Owner::recharge`]).
    pub(crate) fn unpin_keeping(mut self, keep: usize) -> usize {
        let kept = self.owner.recharge(self.locked, keep);
        // INVARIANT: the charge is the caller's now; `drop` only unpins.
        self.locked = 0;
        kept
    }
}

impl Drop for PinnedPages {
    /// Unpins (marking writable pages dirty: the device may have written
    /// them) and unaccounts. Callers unmap from every IOMMU domain and flush
    /// the IOTLB first.
    fn drop(&mut self) {
        for run in Iterator::chain(self.runs.iter(), self.open) {
            unpin_run(run, self.writable);
        }
        self.owner.uncharge(self.locked);
    }
}

/// How many of `pages` (pinned), from the first, are physically
/// contiguous; 1 with `single_pages` (at least 1 in any case).
fn stretch_len(pages: &[*mut bindings::page], single_pages: bool) -> usize {
    if single_pages || pages.len() <= 1 {
        return 1;
    }
    // SAFETY: `pages` holds `pages.len() >= 2` valid page pointers; the
    // helper only reads them.
    let n = unsafe {
        bindings::vfio_rs_pages_contiguous(pages.as_ptr().cast_mut(), pages.len() as c_ulong)
    };
    (n as usize).clamp(1, pages.len())
}

/// The `struct page` of `pfn` (which has one: a page GUP returned).
pub(crate) fn pfn_to_page(pfn: usize) -> *mut bindings::page {
    // SAFETY: pure address arithmetic on the memory map; the result is
    // dereferenced only by callers that pinned the page.
    unsafe { bindings::vfio_rs_pfn_to_page(pfn as c_ulong) }
}

/// Converts a pfn to the physical address `iommu_map` takes.
pub(crate) fn pfn_to_phys(pfn: usize) -> u64 {
    (pfn as u64).wrapping_shl(PAGE_SHIFT as u32)
}
