//! Orphan accounting: a socket is born an orphan when its owner closes it
//! before the connection is done (`__tcp_close` returning with the socket not
//! CLOSE, or `inet_child_forget` for a child nobody accepted) and dies in
//! `inet_csk_destroy_sock`.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use netmem_common::TCP_CLOSE;

use crate::sock::{lay, orphan_born, orphan_gone, read, save_entry_args, take_entry_args, Entry};

pub const FROM_TCP_CLOSE: i64 = 0;
pub const FROM_CHILD_FORGET: i64 = 1;

/// At the end of __tcp_close the caller (tcp_close) still holds `sk`, so it
/// is safe to read; a socket not yet CLOSE lives on as an orphan.
#[inline(always)]
fn after_close(sk: u64) {
    if read::<u8>(sk, lay!(sk_state)) != TCP_CLOSE {
        orphan_born(sk, FROM_TCP_CLOSE);
    }
}

// void __tcp_close(struct sock *sk, long timeout)
#[fexit]
pub fn tcp_close_fexit(ctx: FExitContext) -> i32 {
    after_close(ctx.arg(0));
    0
}

#[kprobe]
pub fn tcp_close_entry(ctx: ProbeContext) -> u32 {
    save_entry_args(Entry::TcpClose, [ctx.arg(0).unwrap_or(0), 0]);
    0
}

#[kretprobe]
pub fn tcp_close_return(_ctx: RetProbeContext) -> u32 {
    if let Some([sk, _]) = take_entry_args(Entry::TcpClose) {
        after_close(sk);
    }
    0
}

// void inet_child_forget(struct sock *sk, struct request_sock *req, struct sock *child)
#[fentry]
pub fn child_forget_fentry(ctx: FEntryContext) -> i32 {
    orphan_born(ctx.arg(2), FROM_CHILD_FORGET);
    0
}

#[kprobe]
pub fn child_forget_kprobe(ctx: ProbeContext) -> u32 {
    orphan_born(ctx.arg(2).unwrap_or(0), FROM_CHILD_FORGET);
    0
}

// void inet_csk_destroy_sock(struct sock *sk)
#[fentry]
pub fn destroy_sock_fentry(ctx: FEntryContext) -> i32 {
    orphan_gone(ctx.arg(0));
    0
}

#[kprobe]
pub fn destroy_sock_kprobe(ctx: ProbeContext) -> u32 {
    orphan_gone(ctx.arg(0).unwrap_or(0));
    0
}
