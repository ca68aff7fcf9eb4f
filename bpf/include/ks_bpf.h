/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * BPF-side helpers shared by the probes: the `events` ring buffer, loss and
 * per-type counters, the wakeup policy, and the common filters. Included once
 * per object (it defines maps and globals).
 */
#ifndef KS_BPF_H
#define KS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "event_common.h"

/* ---- configuration, set by the loader before load (rodata) ---- */

/* Only report events owned by this process (0 = every process). */
const volatile __u32 target_tgid = 0;
/* Only report events whose cgroup v2 id is this one (0 = every cgroup). */
const volatile __u64 target_cgroup_id = 0;
/* Records are submitted without waking the reader; once this many bytes are
 * pending a wakeup is forced. The reader also drains on its poll timeout.
 * Waking on every record costs ~2 us/event in this VM (measured.md, A). */
const volatile __u32 wakeup_bytes = 256 * 1024;

#ifndef KS_RINGBUF_BYTES
#define KS_RINGBUF_BYTES (8 * 1024 * 1024)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KS_RINGBUF_BYTES);
} events SEC(".maps");

/* [0] = ring buffer reserve failures (lost events). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* [type] = records submitted, per enum ks_event_type. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KS_EV_TYPE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} emitted_events SEC(".maps");

static __always_inline void ks_count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

/* Reserve a record; counts a loss when the ring is full. */
static __always_inline void *ks_reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	if (!rec)
		ks_count(&lost_events, 0);
	return rec;
}

/* Submit without a wakeup unless the backlog passed wakeup_bytes. */
static __always_inline void ks_submit(void *rec, __u16 type)
{
	__u64 pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 flags = pending >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	ks_count(&emitted_events, type);
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline __u64 ks_task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline __u32 ks_task_netns_ino(struct task_struct *task)
{
	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

static __always_inline bool ks_tgid_wanted(__u32 tgid)
{
	return target_tgid == 0 || target_tgid == tgid;
}

static __always_inline bool ks_cgroup_wanted(__u64 cgroup_id)
{
	return target_cgroup_id == 0 || target_cgroup_id == cgroup_id;
}

/* Header for an event whose owner is the current task (task context only). */
static __always_inline void ks_fill_header_current(struct ks_event_header *hdr, __u16 type,
						   __u64 ts, __u64 cgroup_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* not bpf_get_current_task_btf(): that helper needs 5.11, and only CO-RE reads follow */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	hdr->ts_ns = ts;
	hdr->cgroup_id = cgroup_id;
	hdr->tgid = pid_tgid >> 32;
	hdr->tid = (__u32)pid_tgid;
	hdr->netns_ino = ks_task_netns_ino(task);
	hdr->type = type;
	hdr->flags = 0;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
}

#endif /* KS_BPF_H */
