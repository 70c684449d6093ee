//! tcp_check_oom(sk, shift): the function behind "too many orphaned sockets"
//! and "out of memory -- consider tuning tcp_mem". A true return means the
//! caller aborts `sk`. fexit sees arguments and result together; the kprobe
//! tier hands the arguments to its kretprobe by thread; the tracepoint tier
//! is `tcp_send_reset` with reason TCP_ABORT_ON_MEMORY (resets.rs).
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use netmem_common::{payload, AbortSource, Counter, ORPHANS_CACHE, ORPHANS_PERCPU_COUNTER};

use crate::sock::{
    count, emit, group_of, lay, proto_mem, read, save_entry_args, take_entry_args, traced_id,
    Entry, SockId,
};

// bool tcp_check_oom([const] struct sock *sk, int shift); ctx[2] is the result.
// bpf_get_func_ret would need 5.17, so the result is read after the arguments.
#[fexit]
pub fn tcp_check_oom_fexit(ctx: FExitContext) -> i32 {
    let ret: u64 = ctx.arg(2);
    if ret as u8 != 0 {
        abort_on_memory(
            ctx.arg(0),
            ctx.arg::<u64>(1) as i32 as i64,
            AbortSource::CheckOom,
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
        abort_on_memory(sk, shift as i32 as i64, AbortSource::CheckOom);
    }
    0
}

/// The figures tcp_check_oom compared, read at the moment it answered, and
/// the event that says which limit fired. `shift` is -1 when unknown (the
/// reset tracepoint does not carry it).
#[inline(always)]
pub fn abort_on_memory(sk: u64, shift: i64, source: AbortSource) {
    if sk == 0 {
        return;
    }
    let Some(id) = traced_id(sk) else {
        return;
    };
    report_abort(sk, &id, shift, source);
}

/// [`abort_on_memory`] once the socket is known to be traced.
#[inline(always)]
pub fn report_abort(sk: u64, id: &SockId, shift: i64, source: AbortSource) {
    let g = group_of(id);
    count(&g, Counter::MemAborts);
    crate::orphans::mark_aborted(sk);
    let (allocated, mem) = proto_mem(sk);
    let max_addr = lay!(max_orphans_addr);
    let max_orphans = if max_addr != 0 {
        read::<i32>(max_addr, 0) as i64
    } else {
        -1
    };
    let p = payload::AbortOnMemory {
        shift,
        orphans: orphan_count(),
        max_orphans,
        allocated_pages: allocated,
        mem0: mem[0],
        mem1: mem[1],
        mem2: mem[2],
        source: source as i64,
    };
    emit(sk, id, &g, p);
}

/// The orphan figure tcp_too_many_orphans() compares, in the counter shape
/// userspace found in BTF; -1 when this kernel's shape or address is unknown.
#[inline(always)]
fn orphan_count() -> i64 {
    let addr = lay!(orphans_addr);
    if addr == 0 {
        return -1;
    }
    match lay!(orphan_shape) {
        ORPHANS_CACHE => read::<i32>(addr, 0) as i64,
        ORPHANS_PERCPU_COUNTER => read::<i64>(addr, lay!(percpu_counter_count)),
        _ => -1,
    }
}
