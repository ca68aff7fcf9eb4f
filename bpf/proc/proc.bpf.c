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

/*
 * Before 6.16 (upstream 3e816361e94a) the tracepoint has one argument, the task; since then it
 * also passes group_dead and has its own trace_event_raw_sched_process_exit (with a group_dead
 * field), which tells the two apart at load time. Older kernels reject a program that reads an
 * argument the tracepoint does not have, so ctx[1] is only read behind that CO-RE check (the
 * other branch is dead code the verifier never sees).
 */
struct trace_event_raw_sched_process_exit___v616 {
	bool group_dead;
} __attribute__((preserve_access_index));

/* Fallback dedup: processes (tgid + start time of the leader) already reported as exited. */
struct exit_key {
	__u32 tgid;
	__u32 _pad;
	__u64 start_time;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct exit_key);
	__type(value, __u8);
} exit_seen SEC(".maps");

/*
 * Without the argument: do_exit() decrements signal->live before the tracepoint fires (on
 * every kernel), so the last thread sees 0. Threads of an exit_group() die concurrently, and a
 * sibling that reaches the tracepoint after the last decrement sees 0 too; the first of them
 * to claim the process in exit_seen reports it, the others are dropped.
 */
static __always_inline bool group_dead_fallback(struct task_struct *p, __u64 start)
{
	struct exit_key key = {};
	__u8 one = 1;

	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return false;
	key.tgid = BPF_CORE_READ(p, tgid);
	key.start_time = start;
	return bpf_map_update_elem(&exit_seen, &key, &one, BPF_NOEXIST) == 0;
}

/* Fires once per exiting thread; group_dead marks the last one, i.e. the exit of the whole
 * process. The only declared argument is the task (see above for group_dead). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ks_sched_process_exit, struct task_struct *p)
{
	__u64 cgroup_id, now, start;
	struct ks_proc_event *e;
	bool group_dead;
	__s32 code;

	if (bpf_core_field_exists(struct trace_event_raw_sched_process_exit___v616, group_dead)) {
		group_dead = (bool)ctx[1];
		if (!group_dead)
			return 0;
		start = BPF_CORE_READ(p, group_leader, start_time);
	} else {
		start = BPF_CORE_READ(p, group_leader, start_time);
		if (!group_dead_fallback(p, start))
			return 0;
	}
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

/*
 * mark_victim changed in 6.8 (backported to some stable kernels): before, its only argument is
 * the victim's pid (TP_PROTO(int pid)); since, it is (struct task_struct *task, uid_t uid), and
 * its trace_event_raw_mark_victim gained uid, comm, total_vm, rss fields. The field tells which
 * prototype this kernel has.
 */
struct trace_event_raw_mark_victim___v68 {
	unsigned int uid;
} __attribute__((preserve_access_index));

/* mm->rss_stat before 6.2: one struct of atomic counters (since: an array of percpu_counter). */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

/* rss_stat[]: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES; anon + file + shmem. */
static __always_inline __u64 mm_rss_pages(struct mm_struct *mm)
{
	struct mm_struct___pre62 *old = (void *)mm;

	if (bpf_core_field_exists(mm->rss_stat[0].count))
		return BPF_CORE_READ(mm, rss_stat[0].count) + BPF_CORE_READ(mm, rss_stat[1].count) +
		       BPF_CORE_READ(mm, rss_stat[3].count);
	if (bpf_core_field_exists(old->rss_stat.count))
		return BPF_CORE_READ(old, rss_stat.count[0].counter) +
		       BPF_CORE_READ(old, rss_stat.count[1].counter) +
		       BPF_CORE_READ(old, rss_stat.count[3].counter);
	return 0;
}

/* Before 6.8 only the pid is known (the victim is not current): header tgid = tid = that pid
 * (a thread id when the chosen thread is not the leader), no comm, cgroup, uid or memory. */
static __always_inline int mark_victim_pid_only(__s32 pid)
{
	struct ks_proc_event *e;

	if (target_cgroup_id != 0 || !ks_tgid_wanted(pid))
		return 0;
	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.type = KS_EV_PROC_OOM_VICTIM;
	e->hdr.tgid = pid;
	e->hdr.tid = pid;
	ks_submit(e, KS_EV_PROC_OOM_VICTIM);
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
	__u32 tgid;

	if (!bpf_core_field_exists(struct trace_event_raw_mark_victim___v68, uid))
		return mark_victim_pid_only((__s32)ctx[0]);
	tgid = BPF_CORE_READ(task, tgid);
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
		e->rss_pages = mm_rss_pages(mm);
	}
	ks_submit(e, KS_EV_PROC_OOM_VICTIM);
	return 0;
}
