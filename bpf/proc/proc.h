/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Event layouts of the proc probe. Mirrored in agent/src/decode/layouts.ts. */
#ifndef KS_PROC_H
#define KS_PROC_H

#include "event_common.h"

#define KS_FILENAME_LEN 256

/*
 * EXIT, FORK and OOM_VICTIM. The header describes:
 *   EXIT        the exiting process (tid = the last thread to exit)
 *   FORK        the parent (the forking thread); child_pid is the new process
 *   OOM_VICTIM  the victim (not the task that ran the OOM killer)
 * ppid is always the parent process of hdr.tgid.
 */
struct ks_proc_event {
	struct ks_event_header hdr;
	__u64 duration_ns;     /* EXIT: process lifetime (start_time of the leader -> exit) */
	__u64 total_vm_pages;  /* OOM_VICTIM: mm->total_vm */
	__u64 rss_pages;       /* OOM_VICTIM: anon + file + shmem pages */
	__u32 ppid;
	__u32 child_pid;       /* FORK: pid of the new process */
	__s32 exit_code;       /* EXIT: wait(2) status: exit status << 8 | terminating signal */
	__s32 oom_score_adj;   /* OOM_VICTIM */
	__u32 uid;             /* real uid of the process */
	__u32 _pad0;
};

_Static_assert(sizeof(struct ks_proc_event) == 96, "ks_proc_event size");
_Static_assert(__builtin_offsetof(struct ks_proc_event, duration_ns) == 48, "duration_ns");
_Static_assert(__builtin_offsetof(struct ks_proc_event, total_vm_pages) == 56, "total_vm_pages");
_Static_assert(__builtin_offsetof(struct ks_proc_event, rss_pages) == 64, "rss_pages");
_Static_assert(__builtin_offsetof(struct ks_proc_event, ppid) == 72, "ppid");
_Static_assert(__builtin_offsetof(struct ks_proc_event, child_pid) == 76, "child_pid");
_Static_assert(__builtin_offsetof(struct ks_proc_event, exit_code) == 80, "exit_code");
_Static_assert(__builtin_offsetof(struct ks_proc_event, oom_score_adj) == 84, "oom_score_adj");
_Static_assert(__builtin_offsetof(struct ks_proc_event, uid) == 88, "uid");
_Static_assert(__builtin_offsetof(struct ks_proc_event, _pad0) == 92, "_pad0");

/* EXEC: the header is the process after exec (new comm). */
struct ks_exec_event {
	struct ks_event_header hdr;
	__u32 ppid;
	__u32 old_tid;         /* thread that called execve (differs from tgid when a non-leader thread execs) */
	__u32 uid;
	__u16 filename_len;    /* bytes in filename, without the NUL */
	__u16 _pad0;
	char filename[KS_FILENAME_LEN]; /* path as passed to execve, NUL-terminated */
};

_Static_assert(sizeof(struct ks_exec_event) == 320, "ks_exec_event size");
_Static_assert(__builtin_offsetof(struct ks_exec_event, ppid) == 48, "ppid");
_Static_assert(__builtin_offsetof(struct ks_exec_event, old_tid) == 52, "old_tid");
_Static_assert(__builtin_offsetof(struct ks_exec_event, uid) == 56, "uid");
_Static_assert(__builtin_offsetof(struct ks_exec_event, filename_len) == 60, "filename_len");
_Static_assert(__builtin_offsetof(struct ks_exec_event, _pad0) == 62, "_pad0");
_Static_assert(__builtin_offsetof(struct ks_exec_event, filename) == 64, "filename");

#endif /* KS_PROC_H */
