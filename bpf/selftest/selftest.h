/* Record emitted by selftest.bpf.c; keep aligned with agent/src/sources/probes.ts (selftest layout)
 * and tests/unit/native-object.test.ts, which checks this layout against the object's BTF. */
#ifndef KSCOPE_SELFTEST_H
#define KSCOPE_SELFTEST_H

#define SELFTEST_COMM_LEN 16

struct selftest_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 tgid;
	__u32 tid;
	__u64 seq;        /* per-CPU sequence number, lets consumers count gaps */
	__s64 syscall_nr;
	char comm[SELFTEST_COMM_LEN];
	__u64 cookie;     /* echo of the `cookie` global: proves rodata writes reach the kernel */
	__u32 cpu;
	__u32 _pad;
};

/* indexes into the per-CPU `stats` array */
enum selftest_stat {
	SELFTEST_STAT_EMITTED = 0,
	SELFTEST_STAT_RESERVE_FAILED = 1,
	SELFTEST_STAT_MAX = 2,
};

#endif
