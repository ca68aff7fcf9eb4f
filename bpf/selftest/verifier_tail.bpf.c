// SPDX-License-Identifier: GPL-2.0
/* Test program for the bridge's libbpf log capture: the verifier rejects it only after a long
 * straight path, so its log (several KiB, printed by libbpf in one call) ends with the reason.
 * The bridge must keep that end; the test (tests/e2e/native-bpf-lifecycle.test.ts) checks it. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("raw_tp/sys_enter")
int rejected_after_long_path(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 acc = ctx->args[1];
	__u32 key = 0;
	__u64 *v;

	/* ~600 verified instructions, one log line each, before the bad access */
#pragma unroll
	for (int i = 0; i < 200; i++) {
		acc = acc * 31 + i;
		asm volatile("" : "+r"(acc));
	}
	v = bpf_map_lookup_elem(&counts, &key);
	*v += acc; /* no NULL check: "invalid mem access 'map_value_or_null'" */
	return 0;
}
