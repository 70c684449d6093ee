//! The pipeline benchmark's producer: on each `raw_syscalls:sys_enter` of
//! the benchmark's own thread group and chosen syscall, stream a batch of
//! synthetic events through the same reserve/submit path (and the same loss
//! counter) as every real hook. Attached only by `cargo xtask bench`.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use netmem_common::{payload, Event, Payload, Setting, Stat, EVENT_HEAD, N_ARGS};

use crate::sock::{arg_at, now_ns, setting, stat, stat_add, wake_flags, EVENTS};

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
        emit_seq(now, i as i64);
    }
    0
}

/// One synthetic record: a head whose group is unattributed and whose only
/// argument is `seq`, through the same reserve/submit path and loss counter
/// as `sock::emit_at`. Written word by word with volatile stores: copied
/// as a value, LLVM zeroes the seven unused arguments with a call to a
/// byte-wise memset, which in a loop of 256 passes the verifier's
/// million-instruction budget.
#[inline(always)]
fn emit_seq(now: u64, seq: i64) {
    let Some(mut entry) = EVENTS.reserve_bytes(EVENT_HEAD, 0) else {
        stat(Stat::RingbufLost);
        return;
    };
    let e = entry.as_mut_ptr().cast::<Event>();
    // SAFETY: the reservation is EVENT_HEAD bytes, 8-aligned and owned by
    // this program until submit; every store lies in the head (ts, kind,
    // pad, the 24-byte group as 4-byte words, args).
    unsafe {
        core::ptr::write_volatile(&raw mut (*e).ts_ns, now);
        core::ptr::write_volatile(&raw mut (*e).kind, payload::Synthetic::KIND as u32);
        core::ptr::write_volatile(&raw mut (*e)._pad, 0);
        let g = (&raw mut (*e).group).cast::<u32>();
        let mut k = 0;
        while k < core::mem::size_of::<netmem_common::GroupKey>() / 4 {
            core::ptr::write_volatile(g.add(k), 0);
            k += 1;
        }
        let a = (&raw mut (*e).args).cast::<i64>();
        core::ptr::write_volatile(a, seq);
        let mut k = 1;
        while k < N_ARGS {
            core::ptr::write_volatile(a.add(k), 0);
            k += 1;
        }
    }
    entry.submit(wake_flags(EVENT_HEAD, now));
}
