//! TCP memory pressure: entered when tcp_mem[1] is crossed, left when usage
//! falls under tcp_mem[0]. Both functions take the socket that crossed.
use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use netmem_common::{payload, Counter};

use crate::sock::{count, emit, group_of, lay, proto_mem, read, Direct, Fields};

// void tcp_enter_memory_pressure(struct sock *sk)
#[fentry]
pub fn pressure_enter_fentry(ctx: FEntryContext) -> i32 {
    memory_pressure(ctx.arg(0), true);
    0
}

#[kprobe]
pub fn pressure_enter_kprobe(ctx: ProbeContext) -> u32 {
    memory_pressure(ctx.arg(0).unwrap_or(0), true);
    0
}

// void tcp_leave_memory_pressure(struct sock *sk)
#[fentry]
pub fn pressure_leave_fentry(ctx: FEntryContext) -> i32 {
    memory_pressure(ctx.arg(0), false);
    0
}

#[kprobe]
pub fn pressure_leave_kprobe(ctx: ProbeContext) -> u32 {
    memory_pressure(ctx.arg(0).unwrap_or(0), false);
    0
}

/// Streamed only on a real transition, since the kernel calls enter on
/// every allocation while over tcp_mem[1].
#[inline(always)]
fn memory_pressure(sk: u64, enter: bool) {
    if sk == 0 {
        return;
    }
    let prot: u64 = read(sk, lay!(sk_prot));
    let flag_ptr: u64 = read(prot, lay!(proto_memory_pressure));
    let under = read::<u64>(flag_ptr, 0) != 0;
    if under == enter {
        return;
    }
    let s = Direct(sk);
    let id = s.id(s.netns());
    let g = group_of(&id);
    let (allocated_pages, mem) = proto_mem(sk);
    if enter {
        count(&g, Counter::PressureEntered);
        let p = payload::PressureEnter {
            allocated_pages,
            mem0: mem[0],
            mem1: mem[1],
            mem2: mem[2],
        };
        emit(sk, &id, &g, p);
    } else {
        let p = payload::PressureLeave {
            allocated_pages,
            mem0: mem[0],
            mem1: mem[1],
            mem2: mem[2],
        };
        emit(sk, &id, &g, p);
    }
}
