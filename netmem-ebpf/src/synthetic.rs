//! The pipeline benchmark's producer: on each `raw_syscalls:sys_enter` of
//! the benchmark's own thread group and chosen syscall, stream a batch of
//! synthetic events through the same reserve/submit path (and the same loss
//! counter) as every real hook. Attached only by `cargo xtask bench`.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use netmem_common::{payload, GroupKey, Payload, RouteInfo, Setting, SockInfo, Stat};

use crate::sock::{arg_at, emit_with, setting, stat};

/// Largest batch per syscall: bounds the loop for the verifier.
const MAX_BATCH: u32 = 256;

// sys_enter(struct pt_regs *regs, long id)
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn synthetic_sys_enter(ctx: RawTracePointContext) -> i32 {
    let tgid = setting(Setting::SyntheticTgid);
    if tgid == 0 || (bpf_get_current_pid_tgid() >> 32) as u32 != tgid {
        return 0;
    }
    if arg_at(&ctx, 1) != setting(Setting::SyntheticSyscall) as u64 {
        return 0;
    }
    let batch = setting(Setting::SyntheticBatch);
    for i in 0..MAX_BATCH {
        if i >= batch {
            break;
        }
        stat(Stat::SyntheticGenerated);
        let p = payload::Synthetic { seq: i as i64 };
        emit_with(
            payload::Synthetic::KIND,
            &GroupKey::UNATTRIBUTED,
            p.into_args(),
            |e| {
                e.sock = SockInfo::default();
                e.route = RouteInfo::default();
            },
        );
    }
    0
}
