//! Resets. With reset reasons (6.10+) the kernel says when a reset is
//! tcp_check_oom() aborting a socket; that is the tracepoint tier of the
//! tcp_check_oom hook, used when neither fexit nor kretprobe can attach.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netmem_common::{AbortSource, Counter, Setting, NO_ARG};

use crate::oom::report_abort;
use crate::sock::{arg_at, count, group_of, lay, setting, Direct, Fields};

// TP_PROTO(const struct sock *sk, const struct sk_buff *skb[, enum sk_rst_reason reason])
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    if sk == 0 {
        return 0;
    }
    let s = Direct(sk);
    let Some(netns) = s.traced_netns() else {
        return 0;
    };
    let id = s.id(netns);
    count(&group_of(&id), Counter::Resets);
    if lay!(send_reset_reason_arg) == NO_ARG || setting(Setting::AbortsFromResets) == 0 {
        return 0;
    }
    let reason = arg_at(&ctx, lay!(send_reset_reason_arg)) as u32;
    if reason == lay!(rst_reason_abort_on_memory) {
        report_abort(sk, &id, -1, AbortSource::Reset);
    }
    0
}
