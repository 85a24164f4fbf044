// SPDX-License-Identifier: GPL-2.0

//! Trace events (`/sys/kernel/tracing/events/vfio_type1_rs/`), defined in
//! `c_shims/vfio_rs_trace.h`. Each costs a call and a static-key test when
//! disabled.

use crate::bindings;

/// A group was attached: onto an existing domain (`merged`) or a new one
/// into which `replayed` mappings were mapped.
pub(crate) fn attach(container: u32, group: i32, merged: bool, replayed: u32, pgsizes: u64) {
    // SAFETY: plain values; the event copies them.
    unsafe { bindings::vfio_rs_trace_attach(container, group, merged, replayed, pgsizes) };
}

/// A group was detached; its domain was freed if it was the last one there.
pub(crate) fn detach(container: u32, group: i32, domain_freed: bool) {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_trace_detach(container, group, domain_freed) };
}

/// A mapping was made, as `runs` contiguous runs in `domains` domains.
pub(crate) fn map(container: u32, iova: u64, size: u64, runs: u32, domains: u32) {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_trace_map(container, iova, size, runs, domains) };
}

/// An unmap of `[iova, last]` removed `mappings` mappings, `bytes` bytes.
pub(crate) fn unmap(container: u32, iova: u64, last: u64, mappings: u32, bytes: u64) {
    // SAFETY: as above.
    unsafe { bindings::vfio_rs_trace_unmap(container, iova, last, mappings, bytes) };
}
