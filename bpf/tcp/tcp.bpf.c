// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * kernelscope tcp probe: connection lifecycle from tracepoints only.
 *
 * Attribution: most state changes run in softirq, where `current` is whatever
 * task the interrupt landed on. The owner (tgid, tid, comm, cgroup) is taken
 * only in task context -- CLOSE->SYN_SENT runs inside connect(), and the
 * accept()/accept4() syscall exit sees the new socket -- and remembered per
 * socket in `sockets`. Softirq-side events use the remembered owner or are
 * flagged KS_F_OWNER_UNKNOWN; they never report the interrupted task.
 */
#include "ks_bpf.h"
#include "tcp.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

/* Skip connections whose destination is loopback (127/8, ::1, ::ffff:127/104). */
const volatile bool ignore_loopback = false;

#ifndef KS_MAX_SOCKETS
#define KS_MAX_SOCKETS 65536
#endif

struct sock_info {
	__u64 birth_ns;       /* CLOSE->SYN_SENT (active) or LISTEN->SYN_RECV (passive), 0 = unseen */
	__u64 established_ns; /* ->ESTABLISHED, 0 = unseen */
	__u64 cgroup_id;
	__u64 cookie;
	__u32 tgid;
	__u32 tid;
	char comm[KS_COMM_LEN];
	__u8 has_owner;
	__u8 passive;
	__u8 _pad[6];
};

/* Socket pointer -> owner and timestamps. Entries are removed when the socket
 * is destroyed (tcp_destroy_sock) and overwritten when a new connection starts
 * at a reused address; the LRU bounds the map if a removal is missed. Its size
 * is the agent's probes.max_sockets (set before load). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, struct sock_info);
} sockets SEC(".maps");

/*
 * Per-CPU counters of the `sockets` table. An LRU map evicts silently (there is
 * no hook for it), so these count what can be counted exactly: entries added
 * for a new key and entries removed. inserted - deleted is the number of
 * entries the table would hold without evictions: it equals the table's size
 * until the table fills, and past max_entries the difference is at least the
 * number of live sockets whose owner the LRU evicted.
 */
enum ks_sock_stat {
	KS_SOCK_INSERTED = 0, /* new key added (an overwrite of an existing key is not counted) */
	KS_SOCK_DELETED = 1,  /* existing key removed */
	KS_SOCK_INSERT_FAILED = 2, /* bpf_map_update_elem failed: owner not remembered */
	KS_SOCK_STAT_MAX = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KS_SOCK_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} socket_stats SEC(".maps");

/* Keeps struct ks_tcp_event in the object's BTF so user space can check its layout. */
const struct ks_tcp_event *ks_btf_tcp_event __attribute__((unused));

#define KS_ENOENT 2
#define KS_EEXIST 17

/* Inserts or overwrites the entry of a socket, counting new keys. */
static __always_inline void sockets_put(__u64 key, const struct sock_info *info)
{
	long err = bpf_map_update_elem(&sockets, &key, info, BPF_NOEXIST);

	if (err == -KS_EEXIST) {
		err = bpf_map_update_elem(&sockets, &key, info, BPF_EXIST);
		if (err == -KS_ENOENT) /* removed meanwhile */
			err = bpf_map_update_elem(&sockets, &key, info, BPF_NOEXIST);
		else if (err == 0)
			return;
	}
	if (err == 0)
		ks_count(&socket_stats, KS_SOCK_INSERTED);
	else
		ks_count(&socket_stats, KS_SOCK_INSERT_FAILED);
}

static __always_inline void sockets_del(__u64 key)
{
	if (bpf_map_delete_elem(&sockets, &key) == 0)
		ks_count(&socket_stats, KS_SOCK_DELETED);
}

static __always_inline bool is_v4_mapped(const __u8 *a)
{
	__u64 lo;
	__u16 mid;

	__builtin_memcpy(&lo, a, 8);
	__builtin_memcpy(&mid, a + 8, 2);
	return lo == 0 && mid == 0 && a[10] == 0xff && a[11] == 0xff;
}

/* ::1, or ::ffff:127.0.0.0/104 (v4-mapped loopback) */
static __always_inline bool is_v6_loopback(const __u8 *a)
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if (hi == 0 && lo == bpf_cpu_to_be64(1))
		return true;
	return is_v4_mapped(a) && a[12] == 127;
}

static __always_inline void unmap_v4(__u8 *a)
{
	__u32 v4;

	__builtin_memcpy(&v4, a + 12, 4);
	__builtin_memset(a, 0, 16);
	__builtin_memcpy(a, &v4, 4);
}

/* Full sockets only: request and timewait socks share sock_common but not tcp_sock. */
static __always_inline bool is_full_sock(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/* Fills family, ports and addresses from the socket. Returns true if the
 * destination is loopback. */
static __always_inline bool fill_tuple(struct ks_tcp_event *e, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	/* At CLOSE an auto-bound port is already released (skc_num = 0); inet_sport keeps it. */
	if (!e->sport && is_full_sock(sk))
		e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->family = family;
	if (family == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
		return (d & 0xff) == 127;
	}
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		if (is_v4_mapped(e->daddr)) {
			unmap_v4(e->daddr);
			if (is_v4_mapped(e->saddr))
				unmap_v4(e->saddr);
			e->family = AF_INET;
			e->hdr.flags |= KS_F_V4_MAPPED;
			return e->daddr[0] == 127;
		}
		return is_v6_loopback(e->daddr);
	}
	return false;
}

static __always_inline __u32 sock_netns_ino(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);

	return cg ? BPF_CORE_READ(cg, kn, id) : 0;
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline void fill_tcp_stats(struct ks_tcp_event *e, const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
}

/*
 * Reserve and fill a TCP event whose owner comes from `info` (never from
 * current). Returns NULL when filtered out or the ring is full; the caller
 * fills the type-specific fields and submits.
 */
static __always_inline struct ks_tcp_event *
new_sock_event(const struct sock *sk, const struct sock_info *info, __u16 type, __u64 now)
{
	bool known = info && info->has_owner;
	__u64 cgroup_id;
	struct ks_tcp_event *e;
	bool full;

	if (!known && target_tgid != 0)
		return NULL;
	if (known && !ks_tgid_wanted(info->tgid))
		return NULL;
	/* sk_cgrp_data is in struct sock: a timewait or request sock (e.g. a reset sent
	 * from TIME_WAIT) is smaller and has none, its cgroup stays 0 (unknown). */
	full = is_full_sock(sk);
	cgroup_id = known ? info->cgroup_id : full ? sock_cgroup_id(sk) : 0;
	if (!ks_cgroup_wanted(cgroup_id))
		return NULL;

	e = ks_reserve(sizeof(*e));
	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = now;
	e->hdr.type = type;
	e->hdr.cgroup_id = cgroup_id;
	if (info && info->passive)
		e->hdr.flags |= KS_F_PASSIVE;
	e->hdr.netns_ino = sock_netns_ino(sk);
	if (known) {
		e->hdr.tgid = info->tgid;
		e->hdr.tid = info->tid;
		__builtin_memcpy(e->hdr.comm, info->comm, KS_COMM_LEN);
	} else {
		e->hdr.flags |= KS_F_OWNER_UNKNOWN;
		if (full)
			e->hdr.flags |= KS_F_CGROUP_FROM_SOCKET;
	}
	e->sock_cookie = info && info->cookie ? info->cookie
					      : BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (fill_tuple(e, sk) && ignore_loopback) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return NULL;
	}
	return e;
}

static __always_inline void remember_current_owner(struct sock_info *info)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	info->tgid = pid_tgid >> 32;
	info->tid = (__u32)pid_tgid;
	info->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(info->comm, sizeof(info->comm));
	info->has_owner = 1;
}

static __always_inline void set_duration(struct ks_tcp_event *e, __u64 now, __u64 since)
{
	if (since && now > since)
		e->duration_ns = now - since;
	else
		e->hdr.flags |= KS_F_DURATION_UNKNOWN;
}

/* CLOSE->SYN_SENT: runs inside connect(), so current is the owner. */
static __always_inline void on_connect_start(const struct sock *sk, __u64 key, __u64 now)
{
	struct sock_info info = {};

	if (!ks_tgid_wanted(bpf_get_current_pid_tgid() >> 32))
		return;
	info.birth_ns = now;
	info.cookie = bpf_get_socket_cookie((void *)sk);
	remember_current_owner(&info);
	sockets_put(key, &info);
}

static __always_inline void on_connect_done(const struct sock *sk, __u64 key, __u64 now,
					    int newstate)
{
	struct sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	bool ok = newstate == TCP_ESTABLISHED;
	struct ks_tcp_event *e;

	e = new_sock_event(sk, info, ok ? KS_EV_TCP_CONNECT : KS_EV_TCP_CONNECT_FAIL, now);
	if (e) {
		e->oldstate = TCP_SYN_SENT;
		e->newstate = newstate;
		set_duration(e, now, info ? info->birth_ns : 0);
		fill_tcp_stats(e, sk);
		if (!ok)
			e->error = BPF_CORE_READ(sk, sk_err);
		ks_submit(e, e->hdr.type);
	}
	if (!info)
		return;
	if (ok)
		info->established_ns = now;
	else
		sockets_del(key);
}

/* LISTEN->SYN_RECV (child socket created, softirq): owner unknown until accept. */
static __always_inline void on_passive_child(const struct sock *sk, __u64 key, __u64 now)
{
	struct sock_info info = {};

	info.birth_ns = now;
	info.passive = 1;
	info.cookie = bpf_get_socket_cookie((void *)sk);
	sockets_put(key, &info);
}

static __always_inline void on_passive_established(const struct sock *sk, __u64 key, __u64 now)
{
	struct sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	struct sock_info fresh = {};

	if (info) {
		info->established_ns = now;
		return;
	}
	fresh.established_ns = now;
	fresh.passive = 1;
	fresh.cookie = bpf_get_socket_cookie((void *)sk);
	sockets_put(key, &fresh);
}

/*
 * bytes_acked / bytes_received advance with snd_una / rcv_nxt, so they also
 * count the SYN (active opener only: a passive child starts at isn + 1) and
 * the FINs. Take those sequence numbers out so the fields are payload bytes.
 */
static __always_inline void fill_payload_bytes(struct ks_tcp_event *e, const struct sock *sk,
					       const struct sock_info *info, int oldstate)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	unsigned long sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	bool fin_sent = oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
			oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK;

	if (!info)
		e->hdr.flags |= KS_F_BYTES_APPROX;
	else if (!info->passive && acked > 0)
		acked -= 1; /* our SYN */
	/* In these states our FIN is in the sequence space; acked iff snd_una reached write_seq. */
	if (fin_sent && acked > 0 && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		acked -= 1;
	/* SOCK_DONE is set by tcp_fin(): the peer's FIN advanced rcv_nxt. */
	if ((sk_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) && received > 0)
		received -= 1;
	e->bytes_acked = acked;
	e->bytes_received = received;
}

static __always_inline void on_close(const struct sock *sk, __u64 key, __u64 now, int oldstate)
{
	struct sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	struct ks_tcp_event *e;

	/* A passive child that never got established is a dropped handshake, not a connection. */
	if (oldstate != TCP_SYN_RECV) {
		e = new_sock_event(sk, info, KS_EV_TCP_CLOSE, now);
		if (e) {
			e->oldstate = oldstate;
			e->newstate = TCP_CLOSE;
			/* The connection's life: from ESTABLISHED (the handshake is the
			 * connect / accept span's), or from the SYN for a socket closed
			 * before it got there. */
			set_duration(e, now, info ? (info->established_ns ? info->established_ns : info->birth_ns) : 0);
			fill_tcp_stats(e, sk);
			fill_payload_bytes(e, sk, info, oldstate);
			ks_submit(e, KS_EV_TCP_CLOSE);
		}
	}
	/* The entry lives on until tcp_destroy_sock: a close with SO_LINGER 0 sends its RST
	 * (tcp_disconnect) after the state is already CLOSE, and that RST has the same owner. */
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ks_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key = (__u64)sk;
	__u64 now;

	if (!is_tcp(sk))
		return 0;
	now = bpf_ktime_get_ns();

	if (newstate == TCP_SYN_SENT) {
		if (oldstate == TCP_CLOSE)
			on_connect_start(sk, key, now);
	} else if (oldstate == TCP_SYN_SENT) {
		if (newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE)
			on_connect_done(sk, key, now, newstate);
	} else if (newstate == TCP_SYN_RECV) {
		if (oldstate == TCP_LISTEN)
			on_passive_child(sk, key, now);
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		on_passive_established(sk, key, now);
	} else if (newstate == TCP_CLOSE) {
		if (oldstate != TCP_LISTEN)
			on_close(sk, key, now, oldstate);
	} else if (newstate == TCP_LISTEN) {
		/* Not tracked; drop whatever a freed socket at this address left behind. */
		sockets_del(key);
	}
	return 0;
}

/* The socket is being freed: forget it. (Without this hook the LRU still bounds the map.) */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(ks_tcp_destroy_sock, struct sock *sk)
{
	sockets_del((__u64)sk);
	return 0;
}

/* accept()/accept4() exit: task context of the accepting process. Finds the
 * new socket from the returned fd and makes the caller its owner. */
static __always_inline int on_accept_exit(long ret)
{
	struct task_struct *task;
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	const struct sock *sk;
	struct sock_info *info, fresh = {};
	struct ks_tcp_event *e;
	__u16 family;
	__u64 key, now;

	if (ret < 0)
		return 0;
	if (!ks_tgid_wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	task = bpf_get_current_task_btf();
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u64)ret >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[ret]) || !file)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || !is_tcp(sk))
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	now = bpf_ktime_get_ns();
	key = (__u64)sk;
	info = bpf_map_lookup_elem(&sockets, &key);
	if (!info) {
		/* Established before the probe was attached: owner known from now on. */
		fresh.passive = 1;
		fresh.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		remember_current_owner(&fresh);
		sockets_put(key, &fresh);
		info = bpf_map_lookup_elem(&sockets, &key);
		if (!info)
			return 0;
	} else {
		remember_current_owner(info);
	}

	e = new_sock_event(sk, info, KS_EV_TCP_ACCEPT, now);
	if (!e)
		return 0;
	/* Header from the accepting thread itself. */
	e->hdr.tid = (__u32)bpf_get_current_pid_tgid();
	e->oldstate = TCP_SYN_RECV;
	e->newstate = BPF_CORE_READ(sk, __sk_common.skc_state);
	set_duration(e, now, info->established_ns);
	fill_tcp_stats(e, sk);
	ks_submit(e, KS_EV_TCP_ACCEPT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int ks_sys_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int ks_sys_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

/* Fallback when syscall tracepoints are unavailable (no CONFIG_FTRACE_SYSCALLS
 * or no tracefs). Off by default: it runs on every syscall exit. */
#define KS_NR_accept 43   /* x86_64 */
#define KS_NR_accept4 288 /* x86_64 */
SEC("?raw_tp/sys_exit")
int BPF_PROG(ks_raw_sys_exit_accept, struct pt_regs *regs, long ret)
{
	long nr = BPF_CORE_READ(regs, orig_ax);

	if (nr != KS_NR_accept && nr != KS_NR_accept4)
		return 0;
	return on_accept_exit(ret);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ks_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;
	struct ks_tcp_event *e;
	__u8 state;

	if (!sk)
		return 0;
	info = bpf_map_lookup_elem(&sockets, &key);
	e = new_sock_event(sk, info, KS_EV_TCP_RETRANSMIT, bpf_ktime_get_ns());
	if (!e)
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->oldstate = state;
	e->newstate = state;
	if (is_full_sock(sk))
		fill_tcp_stats(e, sk);
	ks_submit(e, KS_EV_TCP_RETRANSMIT);
	return 0;
}

/* RST sent for a packet that matched no socket: tuple from the packet itself
 * (reversed, as the reset travels back). No owner. */
static __always_inline int reset_without_socket(const struct sk_buff *skb, __s32 reason)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	struct tcphdr tcp;
	struct ks_tcp_event *e;
	__u8 ver = 0;

	if (target_tgid != 0 || target_cgroup_id != 0)
		return 0;
	if (bpf_probe_read_kernel(&ver, 1, head + nh))
		return 0;
	ver >>= 4;
	if (ver != 4 && ver != 6)
		return 0;
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return 0;

	e = ks_reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.type = KS_EV_TCP_RESET_SENT;
	e->hdr.flags = KS_F_OWNER_UNKNOWN;
	e->hdr.netns_ino = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	e->sport = bpf_ntohs(tcp.dest);
	e->dport = bpf_ntohs(tcp.source);
	if (ver == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			goto drop;
		e->family = AF_INET;
		__builtin_memcpy(e->saddr, &ip.daddr, 4);
		__builtin_memcpy(e->daddr, &ip.saddr, 4);
		if (ignore_loopback && e->daddr[0] == 127)
			goto drop;
	} else {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			goto drop;
		e->family = AF_INET6;
		__builtin_memcpy(e->saddr, &ip6.daddr, 16);
		__builtin_memcpy(e->daddr, &ip6.saddr, 16);
		if (ignore_loopback && is_v6_loopback(e->daddr))
			goto drop;
	}
	e->error = reason;
	ks_submit(e, KS_EV_TCP_RESET_SENT);
	return 0;
drop:
	bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(ks_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;
	struct ks_tcp_event *e;
	__s32 reason = -1;
	__u8 state;

	/* The reason argument exists since 6.10; CO-RE drops this read on older kernels. */
	if (bpf_core_type_exists(enum sk_rst_reason))
		reason = (__s32)ctx[2];
	if (!sk)
		return skb ? reset_without_socket(skb, reason) : 0;
	info = bpf_map_lookup_elem(&sockets, &key);
	e = new_sock_event(sk, info, KS_EV_TCP_RESET_SENT, bpf_ktime_get_ns());
	if (!e)
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->oldstate = state;
	e->newstate = state;
	e->error = reason;
	if (is_full_sock(sk))
		fill_tcp_stats(e, sk);
	ks_submit(e, KS_EV_TCP_RESET_SENT);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(ks_tcp_receive_reset, struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct sock_info *info;
	struct ks_tcp_event *e;
	__u8 state;

	if (!sk)
		return 0;
	info = bpf_map_lookup_elem(&sockets, &key);
	e = new_sock_event(sk, info, KS_EV_TCP_RESET_RECEIVED, bpf_ktime_get_ns());
	if (!e)
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->oldstate = state;
	e->newstate = state;
	fill_tcp_stats(e, sk);
	ks_submit(e, KS_EV_TCP_RESET_RECEIVED);
	return 0;
}
