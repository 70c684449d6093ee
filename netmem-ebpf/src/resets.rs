//! Resets. With reset reasons (6.10+) the kernel says when a reset is
//! tcp_check_oom() aborting a socket: too many orphans or tcp_mem exceeded.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netmem_common::{Counter, EventKind, NO_ARG};

use crate::sock::{arg_at, count, emit, group_of, in_traced_netns, lay, proto_mem, sock_id};

// TP_PROTO(const struct sock *sk, const struct sk_buff *skb[, enum sk_rst_reason reason])
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    if sk == 0 {
        return 0;
    }
    if !in_traced_netns(sk) {
        return 0;
    }
    let id = sock_id(sk);
    let g = group_of(&id);
    count(&g, Counter::Resets);
    if lay!(send_reset_reason_arg) == NO_ARG {
        return 0;
    }
    let reason = arg_at(&ctx, lay!(send_reset_reason_arg)) as u32;
    if reason != lay!(rst_reason_abort_on_memory) {
        return 0;
    }
    let (allocated, mem) = proto_mem(sk);
    count(&g, Counter::MemAborts);
    emit(
        EventKind::AbortOnMemory,
        sk,
        &id,
        &g,
        [reason as i64, allocated, mem[0], mem[1], mem[2]],
    );
    0
}
