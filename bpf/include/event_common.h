/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Header shared by every kernelscope event layout. The TypeScript decoder
 * (agent/src/decode/layouts.ts) mirrors these offsets and checks them against
 * the object's BTF at startup, so any change here must be made there too.
 * All fields are fixed width with explicit padding; offsets are asserted.
 */
#ifndef KS_EVENT_COMMON_H
#define KS_EVENT_COMMON_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define KS_COMM_LEN 16

/* Event types. Numbering is global across objects so one decoder can dispatch. */
enum ks_event_type {
	KS_EV_TCP_CONNECT = 1,       /* SYN_SENT -> ESTABLISHED (active open) */
	KS_EV_TCP_CONNECT_FAIL = 2,  /* SYN_SENT -> CLOSE, error = sk_err */
	KS_EV_TCP_ACCEPT = 3,        /* accept()/accept4() returned an established socket */
	KS_EV_TCP_CLOSE = 4,         /* * -> CLOSE of an established connection */
	KS_EV_TCP_RETRANSMIT = 5,    /* tcp:tcp_retransmit_skb */
	KS_EV_TCP_RESET_SENT = 6,    /* tcp:tcp_send_reset, error = enum sk_rst_reason */
	KS_EV_TCP_RESET_RECEIVED = 7,/* tcp:tcp_receive_reset */
	KS_EV_PROC_EXEC = 16,        /* sched:sched_process_exec (ks_exec_event layout) */
	KS_EV_PROC_EXIT = 17,        /* sched:sched_process_exit, whole process only */
	KS_EV_PROC_FORK = 18,        /* sched:sched_process_fork, new processes only */
	KS_EV_PROC_OOM_VICTIM = 19,  /* oom:mark_victim */
	KS_EV_TYPE_MAX = 24,         /* size of the per-type counter array */
};

/* hdr.flags bits */
enum ks_event_flags {
	/* The task that owns the socket is unknown (state change ran in softirq and
	 * no task-context hook saw the socket): tgid/tid/comm are zero, never the
	 * interrupted task's. */
	KS_F_OWNER_UNKNOWN = 1 << 0,
	/* cgroup_id came from the socket (sk_cgrp_data, its creator's cgroup), not
	 * from a task. Only set together with KS_F_OWNER_UNKNOWN. */
	KS_F_CGROUP_FROM_SOCKET = 1 << 1,
	/* AF_INET6 socket talking to a v4-mapped peer; addresses reported as AF_INET. */
	KS_F_V4_MAPPED = 1 << 2,
	/* The start of the measured interval was not seen (socket or process older
	 * than the probe); duration_ns is 0. */
	KS_F_DURATION_UNKNOWN = 1 << 3,
	/* exec: filename did not fit and was cut. */
	KS_F_TRUNCATED = 1 << 4,
	/* tcp close: the socket predates the probe, so whether this side sent the
	 * SYN is unknown; bytes_acked may be one too high. */
	KS_F_BYTES_APPROX = 1 << 5,
	/* tcp: the socket was created passively (accepted, the server side), as the
	 * probe saw it enter SYN_RECV or ESTABLISHED from a listener. Absent for
	 * sockets the probe never saw created. */
	KS_F_PASSIVE = 1 << 6,
};

struct ks_event_header {
	__u64 ts_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id;      /* cgroup v2 id (kernfs id = inode of the cgroup dir) */
	__u32 tgid;           /* process id (owner), 0 if unknown */
	__u32 tid;            /* thread id (owner), 0 if unknown */
	__u32 netns_ino;      /* network namespace inode */
	__u16 type;           /* enum ks_event_type */
	__u16 flags;          /* enum ks_event_flags */
	char comm[KS_COMM_LEN];
};

_Static_assert(sizeof(struct ks_event_header) == 48, "ks_event_header size");
_Static_assert(__builtin_offsetof(struct ks_event_header, cgroup_id) == 8, "cgroup_id");
_Static_assert(__builtin_offsetof(struct ks_event_header, tgid) == 16, "tgid");
_Static_assert(__builtin_offsetof(struct ks_event_header, tid) == 20, "tid");
_Static_assert(__builtin_offsetof(struct ks_event_header, netns_ino) == 24, "netns_ino");
_Static_assert(__builtin_offsetof(struct ks_event_header, type) == 28, "type");
_Static_assert(__builtin_offsetof(struct ks_event_header, flags) == 30, "flags");
_Static_assert(__builtin_offsetof(struct ks_event_header, comm) == 32, "comm");

#endif /* KS_EVENT_COMMON_H */
