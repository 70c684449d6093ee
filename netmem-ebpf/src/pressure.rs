//! TCP memory pressure: entered when tcp_mem[1] is crossed, left when usage
//! falls under tcp_mem[0]. Both functions take the socket that crossed.
use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};

use crate::sock::memory_pressure;

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
