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
use crate::compat::{
    current_mm, current_mm_and_leader, eoverflow, mm_raw, task_raw, MmRef, TaskRef,
};
use crate::runs::page_bytes;
use crate::runs::Backing;
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

    /// Whether the calling process's mm is the one charged.
    fn is_callers(&self) -> bool {
        mm_raw(&self.mm) == current_mm()
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
    /// physically contiguous chunk, a reader those of one GUP batch (and,
    /// in the owner's process, those it pinned and has not charged yet):
    /// from another process the answers differ when the caller's room lies
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
/// Every page of every pinned run in `runs` holds one pin taken by a
/// [`PinReader`]; `locked` pages are charged to `owner` (those the reader
/// charged and those taken over from device pins as a credit). Both are
/// given back once, by `drop` or `unpin_keeping`.
pub(crate) struct PinnedPages {
    /// The runs read so far, in IOVA order.
    runs: RunList,
    owner: Owner,
    locked: usize,
    writable: bool,
}

// SAFETY: the pins and the mm reference may be dropped from any thread.
unsafe impl Send for PinnedPages {}

impl PinnedPages {
    /// Nothing pinned yet, but `credit` pages charged to `owner` already:
    /// device pins of the same memory hand their charge over (C's
    /// `vfio_pin_pages_remote()` charges only pages no device pinned), so
    /// the limit sees what C's check does. A [`PinReader`] fills it.
    pub(crate) fn new(owner: Owner, writable: bool, credit: usize) -> Self {
        // INVARIANT: no runs; the `credit` pages are charged already.
        Self {
            runs: RunList::new(),
            owner,
            locked: credit,
            writable,
        }
    }

    /// Records the completed `run`. Room for it was reserved.
    ///
    /// # Errors
    ///
    /// `ENOMEM` where no room was reserved: only for the open run a
    /// dropped reader records after an error; the run's pins are given
    /// back then (it was never mapped), their charge stays in `locked`,
    /// given back by `drop`.
    fn record(&mut self, run: PfnRun) -> Result<PfnRun> {
        if self.runs.push(run) {
            return Ok(run);
        }
        unpin_run(run, self.writable);
        Err(ENOMEM)
    }

    /// The runs, in IOVA order (once read whole).
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
    if run.backing() != Backing::Pinned {
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
        for run in self.runs.iter() {
            unpin_run(run, self.writable);
        }
        self.owner.uncharge(self.locked);
    }
}

/// Pages a reader pins before it charges them (64 MiB): one `locked_vm`
/// update (a `mmap_lock` write) per 64 MiB a MAP pins rather than one per
/// GUP batch (2 MiB of 4 KiB pages). The caller's limit is still checked
/// per batch, as C does per page, counting what is not charged yet; a MAP
/// racing another of the same process may pin up to this much past the
/// limit before its charge fails (and unpins), where C's window is a
/// physically contiguous chunk.
const CHARGE_PAGES: usize = 1 << (26 - PAGE_SHIFT);

/// Reads the user memory of a mapping as physically contiguous runs
/// (iommufd's `pfn_reader`): pins a GUP batch at a time, charges it to the
/// owner (in one update per [`CHARGE_PAGES`] and at the end), and hands out
/// each run once it is complete, so that MAP is a plain loop. A run is
/// recorded in the [`PinnedPages`] before it is handed out; what is pinned
/// but not handed out when the reader is dropped (an error stopped the
/// caller) is recorded then: dropping the `PinnedPages`
/// unpins all of it, after the caller unmapped what it mapped.
///
/// # Invariants
///
/// `batch.pages[page..]` in stretches `batch.lens[stretch..count]` and
/// `pfnmap` are read (counted in `read`) but neither recorded nor in
/// `open`; `pinned.runs` has room for one run per such stretch. `open` is
/// read and not recorded. Pinned pages among them hold one pin each.
/// Pinned pages read are charged to `pinned`'s owner (in `pinned.locked`)
/// but for `uncharged` of them (which the limit checks counted) and those
/// the credit covered; `uncharged` stays 0 unless the caller is the
/// owner's process (`deferred`). After an error the reader is only
/// dropped, and these counts no longer matter.
pub(crate) struct PinReader<'a> {
    pinned: &'a mut PinnedPages,
    batch: &'a mut PageBatch,
    vaddr: u64,
    npages: usize,
    single_pages: bool,
    /// Pages of `pinned`'s charge (device pins') not set against pinned
    /// pages yet.
    credit: usize,
    /// Pages pinned or looked up so far.
    read: usize,
    /// Pinned pages read but not charged yet (fewer than `CHARGE_PAGES`).
    uncharged: usize,
    /// Whether charges wait for `CHARGE_PAGES`: only in the owner's own
    /// process, whose limit check then counts them. From another process
    /// (a replay) each batch is charged at once, so that the owner's limit
    /// answers where C's does.
    deferred: bool,
    /// The run being grown: contiguous with what comes next, maybe.
    open: Option<PfnRun>,
    page: usize,
    stretch: usize,
    count: usize,
    /// A VM_PFNMAP stretch GUP could not pin.
    pfnmap: Option<PfnRun>,
}

impl<'a> PinReader<'a> {
    /// Reads `npages` pages of the current process at `vaddr` into
    /// `pinned`, made by `PinnedPages::new` with the same `credit`. With
    /// `single_pages` every run is one page (the `disable_hugepages`
    /// parameter).
    pub(crate) fn new(
        pinned: &'a mut PinnedPages,
        credit: usize,
        vaddr: u64,
        npages: usize,
        single_pages: bool,
        batch: &'a mut PageBatch,
    ) -> Self {
        let deferred = pinned.owner.is_callers();
        // Nothing read into `pinned` before: all it has charged is credit.
        let credit = if pinned.runs.count() == 0 {
            credit.min(pinned.locked)
        } else {
            0
        };
        // INVARIANT: nothing read yet.
        Self {
            pinned,
            batch,
            vaddr,
            npages,
            single_pages,
            credit,
            read: 0,
            uncharged: 0,
            deferred,
            open: None,
            page: 0,
            stretch: 0,
            count: 0,
            pfnmap: None,
        }
    }

    /// The next complete run, recorded in the `PinnedPages` already; `None`
    /// once every page is read.
    ///
    /// # Errors
    ///
    /// GUP's errno (`EFAULT` for an unmapped or read-only range), `ENOMEM`
    /// when `locked_vm` would pass RLIMIT_MEMLOCK without CAP_IPC_LOCK or
    /// an allocation fails.
    pub(crate) fn next_run(&mut self) -> Result<Option<PfnRun>> {
        loop {
            if let Some(run) = self.take_pending() {
                if let Some(done) = self.grow(run) {
                    return self.pinned.record(done).map(Some);
                }
                continue;
            }
            if self.read >= self.npages {
                // Everything is read: charged, the last run complete too;
                // then there is no more.
                self.flush_charge()?;
                let Some(last) = self.open.take() else {
                    self.pinned.runs.trim();
                    return Ok(None);
                };
                if let Err(e) = self.pinned.runs.reserve(1) {
                    self.open = Some(last);
                    return Err(e);
                }
                return self.pinned.record(last).map(Some);
            }
            self.read_more()?;
        }
    }

    /// Takes the next read stretch (pinned pages, or a pfnmap one).
    fn take_pending(&mut self) -> Option<PfnRun> {
        if let Some(run) = self.pfnmap.take() {
            return Some(run);
        }
        if self.stretch >= self.count {
            return None;
        }
        let n = usize::from(*self.batch.lens.get(self.stretch)?);
        let first = *self.batch.pages.get(self.page)?;
        self.stretch = self.stretch.saturating_add(1);
        self.page = self.page.saturating_add(n);
        // SAFETY: `first` is a valid pinned page.
        let pfn = unsafe { bindings::vfio_rs_page_to_pfn(first) } as usize;
        // SAFETY: GUP pinned these `n` contiguous pages for us; they go into
        // the `PinnedPages` (or back, by `record`), which unpins only after
        // the flows unmapped them (their `Mapped` guard is dropped first).
        Some(unsafe { PfnRun::new(pfn, n, Backing::Pinned) })
    }

    /// Adds `run` to the open run when contiguous with it and the sum stays
    /// within `MAX_RUN_PAGES` (so each complete run is one record, all the
    /// room reserved); else `run` is the open one now and the one before
    /// is complete: returned.
    fn grow(&mut self, run: PfnRun) -> Option<PfnRun> {
        if let Some(open) = self.open.as_mut() {
            if !self.single_pages && open.absorb(&run) {
                return None;
            }
        }
        self.open.replace(run)
    }

    /// Pins the next batch of pages, or finds a VM_PFNMAP stretch where GUP
    /// refuses. On error nothing of this batch stays pinned.
    fn read_more(&mut self) -> Result {
        let left = self.npages.saturating_sub(self.read);
        let want = left.min(BATCH_PAGES);
        // A VM_PFNMAP range adds at most one run (and closes the open one).
        self.pinned.runs.reserve(1)?;
        let addr = self
            .vaddr
            .checked_add(page_bytes(self.read))
            .ok_or(EFAULT)?;
        let got = match gup(addr, want, self.pinned.writable, self.batch) {
            Ok(got) => got,
            Err(gup_err) => return self.read_pfnmap(addr, left, gup_err),
        };
        // Room for a run per contiguous stretch of the batch (each closes
        // the one before; the last stays open), so that recording cannot
        // fail once the pages are pinned and charged.
        let count = self.batch.scan(got, self.single_pages);
        let reserved = self.pinned.runs.reserve(count);
        if let Err(err) = reserved.and_then(|()| self.charge(got)) {
            for &p in self.batch.pages.get(..got).unwrap_or(&[]) {
                // SAFETY: `p` was pinned just above and is recorded nowhere.
                unsafe { bindings::unpin_user_page_range_dirty_lock(p, 1, false) };
            }
            return Err(err);
        }
        // INVARIANT: the batch's stretches are read, room made for each.
        (self.page, self.stretch, self.count) = (0, 0, count);
        self.read = self.read.saturating_add(got);
        Ok(())
    }

    /// Counts `got` newly pinned pages against the limit but for what is
    /// left of the credit, and charges them once `CHARGE_PAGES` are due.
    ///
    /// # Errors
    ///
    /// `ENOMEM` over RLIMIT_MEMLOCK, `EINTR` (fatal signal): the caller
    /// gives the `got` pages back.
    fn charge(&mut self, got: usize) -> Result {
        let covered = self.credit.min(got);
        let due = got.saturating_sub(covered);
        // As C's vfio_pin_pages_remote(): what this call pinned and has not
        // charged counts too. Only the limit check logs, as in C (not a
        // failed allocation), and as C the limit in whole pages.
        let counted = self.uncharged.saturating_add(due);
        self.pinned
            .owner
            .check_caller_limit(counted)
            .inspect_err(|_| {
                let limit = memlock_limit() >> PAGE_SHIFT << PAGE_SHIFT;
                pr_warn!("map: RLIMIT_MEMLOCK ({}) exceeded\n", limit);
            })?;
        // INVARIANT: `covered` credit used up; `due` more to charge.
        self.credit = self.credit.saturating_sub(covered);
        self.uncharged = counted;
        if !self.deferred || self.uncharged >= CHARGE_PAGES {
            self.flush_charge()?;
        }
        Ok(())
    }

    /// Charges the pages counted but not charged yet, in one update.
    ///
    /// # Errors
    ///
    /// `ENOMEM` (the owner's limit), `EINTR`: nothing charged; those pages
    /// stay uncharged (and are unpinned with the mapping).
    fn flush_charge(&mut self) -> Result {
        self.pinned.owner.charge_pinned(self.uncharged)?;
        // INVARIANT: charged now, so counted in `locked`.
        self.pinned.locked = self.pinned.locked.saturating_add(self.uncharged);
        self.uncharged = 0;
        Ok(())
    }

    /// GUP refused `addr`: if it lies in a VM_PFNMAP range, reads the
    /// contiguous pfns there (unpinned, unaccounted); otherwise fails with
    /// GUP's error.
    fn read_pfnmap(&mut self, addr: u64, left: usize, gup_err: Error) -> Result {
        let mut pfn: c_ulong = 0;
        // SAFETY: runs in the ioctl's process context; `pfn` is a live local.
        let n = unsafe {
            bindings::vfio_rs_pfnmap_lookup(
                addr as c_ulong,
                left as c_ulong,
                self.pinned.writable,
                &mut pfn,
            )
        };
        let found = match usize::try_from(n) {
            Ok(0) => return Err(gup_err),
            Ok(found) => found,
            Err(_) => return Err(Error::from_errno(n as c_int)),
        };
        // One page at a time with `disable_hugepages`, as the C module; at
        // most one record's worth otherwise (the rest comes next).
        let npages = if self.single_pages {
            1
        } else {
            found.min(left).min(MAX_RUN_PAGES)
        };
        // SAFETY: `vfio_rs_pfnmap_lookup` found these `npages` pfns mapped
        // by a VM_PFNMAP vma of the caller's mm: device memory, mapped
        // without a pin, as the C module does.
        self.pfnmap = Some(unsafe { PfnRun::new(pfn as usize, npages, Backing::Pfnmap) });
        self.read = self.read.saturating_add(npages);
        Ok(())
    }
}

impl Drop for PinReader<'_> {
    /// Records what was read but not handed out, so that the `PinnedPages`
    /// unpins it (runs it has no room for are unpinned here).
    fn drop(&mut self) {
        while let Some(run) = self.take_pending() {
            if let Some(done) = self.grow(run) {
                let _ = self.pinned.record(done);
            }
        }
        if let Some(run) = self.open.take() {
            let _ = self.pinned.record(run);
        }
    }
}

/// Pins up to `want` pages at `addr` into `batch`; returns how many.
///
/// # Errors
///
/// GUP's errno (`EFAULT` when it pinned nothing).
fn gup(addr: u64, want: usize, writable: bool, batch: &mut PageBatch) -> Result<usize> {
    let mut flags = bindings::FOLL_LONGTERM;
    if writable {
        flags |= bindings::FOLL_WRITE;
    }
    let pages = batch.pages.get_mut(..want).ok_or(EINVAL)?;
    // SAFETY: `pages` has room for `want` entries; GUP fills at most `want`
    // of them. `want <= BATCH_PAGES` fits in c_int.
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
        // GUP answers EOVERFLOW for a range ending at 2^64 (the last page
        // of the address space); no vma can be there, so this is EFAULT, as
        // the C module's pin_user_pages_remote() says.
        Err(_) if Error::from_errno(got) == eoverflow() => Err(EFAULT),
        Err(_) => Err(Error::from_errno(got)),
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
