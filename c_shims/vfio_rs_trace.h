/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of vfio-type1-rs: what happened at attach, merge, replay,
 * map, unmap and detach. Enable with
 *   echo 1 > /sys/kernel/tracing/events/vfio_type1_rs/enable
 *
 * Why C: trace events are defined with the TRACE_EVENT() macros.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vfio_type1_rs

#if !defined(_VFIO_RS_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _VFIO_RS_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(vfio_rs_attach,
	TP_PROTO(u32 container, int group, bool merged, u32 replayed, u64 pgsizes),
	TP_ARGS(container, group, merged, replayed, pgsizes),
	TP_STRUCT__entry(
		__field(u32, container)
		__field(int, group)
		__field(bool, merged)
		__field(u32, replayed)
		__field(u64, pgsizes)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->group = group;
		__entry->merged = merged;
		__entry->replayed = replayed;
		__entry->pgsizes = pgsizes;
	),
	TP_printk("container=%u group=%d %s replayed=%u pgsizes=%#llx",
		  __entry->container, __entry->group,
		  __entry->merged ? "merged" : "new-domain",
		  __entry->replayed, __entry->pgsizes)
);

TRACE_EVENT(vfio_rs_detach,
	TP_PROTO(u32 container, int group, bool domain_freed),
	TP_ARGS(container, group, domain_freed),
	TP_STRUCT__entry(
		__field(u32, container)
		__field(int, group)
		__field(bool, domain_freed)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->group = group;
		__entry->domain_freed = domain_freed;
	),
	TP_printk("container=%u group=%d%s", __entry->container, __entry->group,
		  __entry->domain_freed ? " domain-freed" : "")
);

TRACE_EVENT(vfio_rs_map,
	TP_PROTO(u32 container, u64 iova, u64 size, u32 runs, u32 domains),
	TP_ARGS(container, iova, size, runs, domains),
	TP_STRUCT__entry(
		__field(u32, container)
		__field(u64, iova)
		__field(u64, size)
		__field(u32, runs)
		__field(u32, domains)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->size = size;
		__entry->runs = runs;
		__entry->domains = domains;
	),
	TP_printk("container=%u iova=%#llx size=%#llx runs=%u domains=%u",
		  __entry->container, __entry->iova, __entry->size,
		  __entry->runs, __entry->domains)
);

TRACE_EVENT(vfio_rs_unmap,
	TP_PROTO(u32 container, u64 iova, u64 last, u32 mappings, u64 bytes),
	TP_ARGS(container, iova, last, mappings, bytes),
	TP_STRUCT__entry(
		__field(u32, container)
		__field(u64, iova)
		__field(u64, last)
		__field(u32, mappings)
		__field(u64, bytes)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->last = last;
		__entry->mappings = mappings;
		__entry->bytes = bytes;
	),
	TP_printk("container=%u range=%#llx-%#llx mappings=%u bytes=%#llx",
		  __entry->container, __entry->iova, __entry->last,
		  __entry->mappings, __entry->bytes)
);

#endif

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE vfio_rs_trace
#include <trace/define_trace.h>
