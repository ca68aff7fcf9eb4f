// SPDX-License-Identifier: GPL-2.0
/* Test program for the agent's libbpf bridge (agent/native): emits one fixed 64-byte record per
 * sys_enter of a filtered process, so the bridge can be exercised without the real probes.
 * Also carries deliberately optional programs (autoload off, `?` sections) used by the tests and
 * by the capability probe: a counter-only variant, a program the verifier rejects, a kprobe and a
 * syscall tracepoint. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "selftest.h"

char LICENSE[] SEC("license") = "GPL";

/* Filters, written by user space before load. 0 / -1 mean "any". */
const volatile __u32 targ_tgid = 0;
const volatile __s64 targ_syscall = -1;
/* 0: never wake the consumer (it polls on a timer); N: force a wakeup on every Nth record */
const volatile __u32 wake_every = 0;
const volatile __u64 cookie = 0;
/* Also count events per thread in `tid_hits` (a hash map the tests iterate). */
const volatile __u8 track_tids = 0;

/* Records are only reached through pointers, which clang does not describe in BTF; this unused
 * global makes `struct selftest_event` visible so user space can check its decoder against it. */
struct selftest_event *btf_anchor_selftest_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SELFTEST_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* tid -> number of matching syscalls; only filled when track_tids is set */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} tid_hits SEC(".maps");

/* a plain array so tests can read a non-per-CPU value: [0] = matching calls (when track_tids) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline int matches(__s64 nr, __u64 pid_tgid)
{
	if (targ_tgid && (__u32)(pid_tgid >> 32) != targ_tgid)
		return 0;
	if (targ_syscall >= 0 && nr != targ_syscall)
		return 0;
	return 1;
}

SEC("raw_tp/sys_enter")
int emit_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__s64 nr = (__s64)ctx->args[1];
	struct selftest_event *e;
	__u32 key = SELFTEST_STAT_EMITTED;
	__u64 *seq, flags = BPF_RB_NO_WAKEUP;

	if (!matches(nr, pid_tgid))
		return 0;

	if (track_tids) {
		__u32 tid = (__u32)pid_tgid, zero = 0;
		__u64 one = 1, *hits = bpf_map_lookup_elem(&tid_hits, &tid);

		if (hits)
			__sync_fetch_and_add(hits, 1);
		else
			bpf_map_update_elem(&tid_hits, &tid, &one, BPF_NOEXIST);
		hits = bpf_map_lookup_elem(&totals, &zero);
		if (hits)
			__sync_fetch_and_add(hits, 1);
	}

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(SELFTEST_STAT_RESERVE_FAILED);
		return 0;
	}
	seq = bpf_map_lookup_elem(&stats, &key);
	e->seq = 0;
	if (seq)
		e->seq = (*seq)++;
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->syscall_nr = nr;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->cookie = cookie;
	e->cpu = bpf_get_smp_processor_id();
	e->_pad = 0;
	if (wake_every && e->seq % wake_every == 0)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	return 0;
}

/* Same filter, no record: the "counter only" cost in the benchmark. */
SEC("?raw_tp/sys_enter")
int count_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (matches((__s64)ctx->args[1], bpf_get_current_pid_tgid()))
		stat_inc(SELFTEST_STAT_EMITTED);
	return 0;
}

/* Deliberately invalid: dereferences a map lookup without a NULL check, so the verifier rejects
 * it. Only enabled by the load-failure test. */
SEC("?raw_tp/sys_enter")
int bad_unchecked_lookup(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 key = 0;
	/* a hash map: recent verifiers know that constant in-range array lookups cannot fail */
	__u64 *v = bpf_map_lookup_elem(&tid_hits, &key);

	*v += 1;
	return 0;
}

/* Optional variants the capability probe reports on: kprobes may be absent, and classic
 * tracepoints need tracefs to resolve their id. */
SEC("?kprobe/__x64_sys_getppid")
int kprobe_getppid(void *ctx)
{
	stat_inc(SELFTEST_STAT_EMITTED);
	return 0;
}

SEC("?tracepoint/syscalls/sys_enter_getppid")
int tp_enter_getppid(void *ctx)
{
	stat_inc(SELFTEST_STAT_EMITTED);
	return 0;
}
