//! A socket hitting its buffer limits: rare in health, the first sign of
//! memory trouble, so every occurrence is streamed.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netmem_common::{payload, Counter};

use crate::sock::{count, emit, group_of, lay, proto_mem, read, traced_id};

// TP_PROTO(struct sock *sk, struct proto *prot, long allocated, int kind)
#[raw_tracepoint(tracepoint = "sock_exceed_buf_limit")]
pub fn sock_exceed_buf_limit(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    let Some(id) = traced_id(sk) else {
        return 0;
    };
    let allocated = ctx.arg::<u64>(2) as i64;
    let kind = ctx.arg::<u64>(3) as i64;
    let g = group_of(&id);
    let (_, mem) = proto_mem(sk);
    count(&g, Counter::ExceedBufLimit);
    let p = payload::ExceedBufLimit {
        allocated_pages: allocated,
        direction: kind,
        mem0: mem[0],
        mem1: mem[1],
        mem2: mem[2],
    };
    emit(sk, &id, &g, p);
    0
}

// TP_PROTO(struct sock *sk, struct sk_buff *skb)
#[raw_tracepoint(tracepoint = "sock_rcvqueue_full")]
pub fn sock_rcvqueue_full(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    let Some(id) = traced_id(sk) else {
        return 0;
    };
    let skb = ctx.arg::<u64>(1);
    let truesize: u32 = read(skb, lay!(skb_truesize));
    let g = group_of(&id);
    count(&g, Counter::RcvqueueFull);
    let p = payload::RcvqueueFull {
        truesize: truesize as i64,
    };
    emit(sk, &id, &g, p);
    0
}
