//! The pipeline benchmark's producer: on each `raw_syscalls:sys_enter` of
//! the benchmark's own thread group and chosen syscall, stream a batch of
//! synthetic events through the same reserve/submit path (and the same loss
//! counter) as every real hook. Attached only by `cargo xtask bench`.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use netmem_common::{payload, GroupKey, Payload, Setting, Stat, EVENT_HEAD};

use crate::sock::{arg_at, emit_at, now_ns, setting, stat_add};

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
    let batch = setting(Setting::SyntheticBatch).min(MAX_BATCH);
    // Counted before the batch: every event generated is then either
    // received or counted lost, whatever the reader has done meanwhile.
    stat_add(Stat::SyntheticGenerated, batch as u64);
    // One clock read per batch: this measures the ring and its reader, and
    // a clock read (about 35 ns on the CI VM) is each real hook's own cost.
    let now = now_ns();
    for i in 0..MAX_BATCH {
        if i >= batch {
            break;
        }
        let p = payload::Synthetic { seq: i as i64 };
        emit_at(
            now,
            payload::Synthetic::KIND,
            &GroupKey::UNATTRIBUTED,
            p.into_args(),
            EVENT_HEAD,
            |_| {},
        );
    }
    0
}
