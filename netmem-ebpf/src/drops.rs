//! Packet drops for memory reasons (receive buffer full, protocol memory
//! limit, backlog, out-of-order pruning). kfree_skb fires for every drop in
//! the system, so the reason is checked against the BTF-resolved mask before
//! anything else is read.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netmem_common::{payload, Counter, GroupKey, NO_ARG};

use crate::sock::{
    arg_at, count, drop_reason_selected, emit, group_of, lay, read, traced_id, SockId,
};

// TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason[, struct sock *rx_sk])
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> i32 {
    if lay!(kfree_skb_reason_arg) == NO_ARG {
        return 0;
    }
    let reason = arg_at(&ctx, lay!(kfree_skb_reason_arg)) as u32;
    if !drop_reason_selected(reason) {
        return 0;
    }
    let skb = ctx.arg::<u64>(0);
    let mut sk = if lay!(kfree_skb_rx_sk_arg) == NO_ARG {
        0
    } else {
        arg_at(&ctx, lay!(kfree_skb_rx_sk_arg))
    };
    if sk == 0 {
        sk = read(skb, lay!(skb_sk));
    }
    let id = if sk == 0 {
        SockId {
            family: 0,
            lport: 0,
            rport: 0,
            raddr: [0; 16],
            netns: 0,
        }
    } else {
        match traced_id(sk) {
            Some(id) => id,
            None => return 0,
        }
    };
    let g = if sk == 0 {
        GroupKey::UNATTRIBUTED
    } else {
        group_of(&id)
    };
    let truesize: u32 = read(skb, lay!(skb_truesize));
    let len: u32 = read(skb, lay!(skb_len));
    count(&g, Counter::SkbDrops);
    let p = payload::SkbDrop {
        reason: reason as i64,
        truesize: truesize as i64,
        len: len as i64,
    };
    emit(sk, &id, &g, p);
    0
}
