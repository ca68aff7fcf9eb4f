/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Event layout of the tcp probe. Mirrored in agent/src/decode/layouts.ts. */
#ifndef KS_TCP_H
#define KS_TCP_H

#include "event_common.h"

/*
 * One layout for every TCP event type; unused fields are zero.
 *   duration_ns: CONNECT      SYN_SENT -> ESTABLISHED (connect latency)
 *                CONNECT_FAIL SYN_SENT -> CLOSE
 *                ACCEPT       ESTABLISHED -> accept() return (time in the accept queue)
 *                CLOSE        connection lifetime (SYN_SENT / SYN_RECV -> CLOSE)
 *   error:       CONNECT_FAIL sk_err (e.g. 111 ECONNREFUSED, 110 ETIMEDOUT)
 *                RESET_SENT   enum sk_rst_reason (-1 when the kernel has none)
 *   srtt_us:     smoothed RTT in microseconds (tcp_sock.srtt_us >> 3); for ACCEPT
 *                this is the SYN-ACK round trip.
 *   bytes_acked / bytes_received: payload bytes (tcp_sock counters with the
 *                SYN and FIN sequence numbers taken out), CLOSE only.
 *   addresses:   network byte order; AF_INET uses the first 4 bytes.
 *   ports:       host byte order.
 */
struct ks_tcp_event {
	struct ks_event_header hdr;
	__u64 sock_cookie;     /* socket cookie, same value for all events of a connection */
	__u64 duration_ns;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u32 srtt_us;
	__u32 total_retrans;
	__s32 error;
	__u16 family;          /* AF_INET (2) or AF_INET6 (10) */
	__u16 sport;
	__u16 dport;
	__u8 oldstate;         /* TCP state before the transition (state for retransmit/reset) */
	__u8 newstate;
	__u32 _pad0;
	__u8 saddr[16];
	__u8 daddr[16];
};

_Static_assert(sizeof(struct ks_tcp_event) == 136, "ks_tcp_event size");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, sock_cookie) == 48, "sock_cookie");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, duration_ns) == 56, "duration_ns");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, bytes_acked) == 64, "bytes_acked");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, bytes_received) == 72, "bytes_received");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, srtt_us) == 80, "srtt_us");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, total_retrans) == 84, "total_retrans");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, error) == 88, "error");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, family) == 92, "family");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, sport) == 94, "sport");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, dport) == 96, "dport");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, oldstate) == 98, "oldstate");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, newstate) == 99, "newstate");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, _pad0) == 100, "_pad0");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, saddr) == 104, "saddr");
_Static_assert(__builtin_offsetof(struct ks_tcp_event, daddr) == 120, "daddr");

#endif /* KS_TCP_H */
