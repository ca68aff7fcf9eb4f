// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * kernelscope proc probe: process exec, exit, fork and OOM victims, from
 * tp_btf tracepoints. exec/exit/fork run in the context of the task they
 * describe (or its parent, for fork); mark_victim does not, so its header is
 * built from the victim task, not from current.
 */
#include "ks_bpf.h"
#include "proc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KS_SIGNAL_GROUP_EXIT 0x00000004 /* signal_struct.flags bit (include/linux/sched/signal.h) */

/* Keep both layouts in the object's BTF so user space can check them. */
const struct ks_proc_event *ks_btf_proc_event __attribute__((unused));
const struct ks_exec_event *ks_btf_exec_event __attribute__((unused));

/* Fills the header from a task that is not necessarily current. */
static __always_inline void fill_header_task(struct ks_event_header *hdr, struct task_struct *task,
					     __u16 type, __u64 now, __u64 cgroup_id)
{
	hdr->ts_ns = now;
	hdr->cgroup_id = cgroup_id;
	hdr->tgid = BPF_CORE_READ(task, tgid);
	hdr->tid = BPF_CORE_READ(task, pid);
	hdr->netns_ino = ks_task_netns_ino(task);
	hdr->type = type;
	hdr->flags = 0;
	BPF_CORE_READ_INTO(&hdr->comm, task, comm);
}

static __always_inline __u32 parent_tgid(struct task_struct *task)
{
	return BPF_CORE_READ(task, real_parent, tgid);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ks_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgroup_id, now;
	struct ks_exec_event *e;
	const char *filename;
	long n;

	if (!ks_tgid_wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (!ks_cgroup_wanted(cgroup_id))
		return 0;
	now = bpf_ktime_get_ns();
	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	ks_fill_header_current(&e->hdr, KS_EV_PROC_EXEC, now, cgroup_id);
	e->ppid = parent_tgid(p);
	e->old_tid = old_pid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->_pad0 = 0;
	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	if (n <= 0) {
		e->filename[0] = 0;
		n = 1;
	}
	e->filename_len = n - 1;
	if (n == sizeof(e->filename))
		e->hdr.flags |= KS_F_TRUNCATED;
	ks_submit(e, KS_EV_PROC_EXEC);
	return 0;
}

/* Fires once per exiting thread; group_dead marks the last one, i.e. the exit
 * of the whole process. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ks_sched_process_exit, struct task_struct *p, bool group_dead)
{
	struct task_struct *leader;
	__u64 cgroup_id, now, start;
	struct ks_proc_event *e;
	__s32 code;

	if (!group_dead)
		return 0;
	if (!ks_tgid_wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (!ks_cgroup_wanted(cgroup_id))
		return 0;
	now = bpf_ktime_get_ns();
	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	ks_fill_header_current(&e->hdr, KS_EV_PROC_EXIT, now, cgroup_id);
	leader = BPF_CORE_READ(p, group_leader);
	start = BPF_CORE_READ(leader, start_time);
	if (start && now > start)
		e->duration_ns = now - start;
	else
		e->hdr.flags |= KS_F_DURATION_UNKNOWN;
	code = BPF_CORE_READ(p, exit_code);
	/* A thread killed by another thread's exit_group() carries the group's code. */
	if (BPF_CORE_READ(p, signal, flags) & KS_SIGNAL_GROUP_EXIT)
		code = BPF_CORE_READ(p, signal, group_exit_code);
	e->exit_code = code;
	e->ppid = parent_tgid(p);
	e->uid = (__u32)bpf_get_current_uid_gid();
	ks_submit(e, KS_EV_PROC_EXIT);
	return 0;
}

/* New processes only; new threads (CLONE_THREAD) are not reported. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ks_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 cgroup_id, now;
	struct ks_proc_event *e;
	__u32 child_pid = BPF_CORE_READ(child, pid);

	if (child_pid != BPF_CORE_READ(child, tgid))
		return 0;
	if (!ks_tgid_wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (!ks_cgroup_wanted(cgroup_id))
		return 0;
	now = bpf_ktime_get_ns();
	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	ks_fill_header_current(&e->hdr, KS_EV_PROC_FORK, now, cgroup_id);
	e->child_pid = child_pid;
	e->ppid = parent_tgid(parent);
	e->uid = (__u32)bpf_get_current_uid_gid();
	ks_submit(e, KS_EV_PROC_FORK);
	return 0;
}

/* The OOM killer chose `task`. current is whoever hit the limit (or the
 * reaper), so everything is read from the victim. */
SEC("tp_btf/mark_victim")
int BPF_PROG(ks_mark_victim, struct task_struct *task)
{
	__u64 cgroup_id, now;
	struct ks_proc_event *e;
	struct mm_struct *mm;
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (!ks_tgid_wanted(tgid))
		return 0;
	cgroup_id = ks_task_cgroup_id(task);
	if (!ks_cgroup_wanted(cgroup_id))
		return 0;
	now = bpf_ktime_get_ns();
	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	fill_header_task(&e->hdr, task, KS_EV_PROC_OOM_VICTIM, now, cgroup_id);
	e->ppid = parent_tgid(task);
	e->uid = BPF_CORE_READ(task, real_cred, uid.val);
	e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	mm = BPF_CORE_READ(task, mm);
	if (mm) {
		e->total_vm_pages = BPF_CORE_READ(mm, total_vm);
		/* rss_stat[]: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES */
		e->rss_pages = BPF_CORE_READ(mm, rss_stat[0].count) +
			       BPF_CORE_READ(mm, rss_stat[1].count) +
			       BPF_CORE_READ(mm, rss_stat[3].count);
	}
	ks_submit(e, KS_EV_PROC_OOM_VICTIM);
	return 0;
}
