//! tcp_check_oom(sk, shift): the function behind "too many orphaned sockets"
//! and "out of memory -- consider tuning tcp_mem". A true return means the
//! caller aborts `sk`. fexit sees arguments and result together; the kprobe
//! tier hands the arguments to its kretprobe by thread.
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use netmem_common::ABORT_FROM_CHECK_OOM;

use crate::sock::{abort_on_memory, save_entry_args, take_entry_args, Entry};

// bool tcp_check_oom([const] struct sock *sk, int shift); ctx[2] is the result.
// bpf_get_func_ret would need 5.17, so the result is read after the arguments.
#[fexit]
pub fn tcp_check_oom_fexit(ctx: FExitContext) -> i32 {
    let ret: u64 = ctx.arg(2);
    if ret as u8 != 0 {
        abort_on_memory(
            ctx.arg(0),
            ctx.arg::<u64>(1) as i32 as i64,
            ABORT_FROM_CHECK_OOM,
        );
    }
    0
}

#[kprobe]
pub fn tcp_check_oom_entry(ctx: ProbeContext) -> u32 {
    save_entry_args(
        Entry::TcpCheckOom,
        [ctx.arg(0).unwrap_or(0), ctx.arg(1).unwrap_or(0)],
    );
    0
}

#[kretprobe]
pub fn tcp_check_oom_return(ctx: RetProbeContext) -> u32 {
    let Some([sk, shift]) = take_entry_args(Entry::TcpCheckOom) else {
        return 0;
    };
    if ctx.ret::<u64>() as u8 != 0 {
        abort_on_memory(sk, shift as i32 as i64, ABORT_FROM_CHECK_OOM);
    }
    0
}
