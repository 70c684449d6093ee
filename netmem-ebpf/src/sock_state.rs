//! Connection lifecycle: frequent, so only counted in the kernel, plus the
//! listening-port set the grouping rule needs.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netmem_common::{payload, Counter, Setting, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN};

use crate::orphans::orphan_state;
use crate::sock::{
    count, emit, group_of, lay, now_ns, read, setting, traced_id, Fields, Sock, LISTEN_PORTS,
};

// TP_PROTO(const struct sock *sk, const int oldstate, const int newstate)
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let newstate = ctx.arg::<u64>(2) as u8;
    if newstate == TCP_CLOSE && setting(Setting::OrphansTracked) != 0 {
        orphan_state(ctx.arg::<u64>(0), ctx.arg::<u64>(1) as u8, newstate);
    }
    // Most transitions are not counted: return before touching the socket.
    if newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE && newstate != TCP_LISTEN {
        return 0;
    }
    let s = Sock::read(ctx.arg::<u64>(0));
    let Some(netns) = s.traced_netns() else {
        return 0;
    };
    if !s.is_tcp() {
        return 0;
    }
    let id = s.id(netns);
    if newstate == TCP_LISTEN {
        if let Some(v) = LISTEN_PORTS.get_ptr_mut(id.lport as u32) {
            // SAFETY: an array slot, valid for the program's run; an aligned
            // u64 store cannot tear.
            unsafe { *v = now_ns() };
        }
        return 0;
    }
    let c = if newstate == TCP_ESTABLISHED {
        Counter::Established
    } else {
        Counter::Closed
    };
    count(&group_of(&id), c);
    0
}

// TP_PROTO(struct sock *sk). Runs before the write queue is purged, so any
// queued bytes seen here are data the kernel is about to throw away.
#[raw_tracepoint(tracepoint = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    // Queued memory alone misleads: a socket that got only a FIN still has
    // that skb charged. Sequence space alone misleads too: tcp_disconnect()
    // moves write_seq a window ahead. Data is lost when both say so (a FIN
    // counts one in sequence space). Most sockets die empty: two reads.
    let wq: i32 = read(sk, lay!(sk_wmem_queued));
    let rq: i32 = read(sk, lay!(sk_rmem_alloc));
    if wq <= 0 && rq <= 0 {
        return 0;
    }
    // Sequence space only for the queue that holds something, and the
    // namespace only once data is known to be lost: most sockets die with
    // just their FIN queued, which this settles in two more reads.
    let data = |n: u32| if n > 1 && n < (1 << 31) { n as i64 } else { 0 };
    let unread = if rq > 0 {
        data(read::<u32>(sk, lay!(tcp_rcv_nxt)).wrapping_sub(read(sk, lay!(tcp_copied_seq))))
    } else {
        0
    };
    let unacked = if wq > 0 {
        data(read::<u32>(sk, lay!(tcp_write_seq)).wrapping_sub(read(sk, lay!(tcp_snd_una))))
    } else {
        0
    };
    if unread == 0 && unacked == 0 {
        return 0;
    }
    let Some(id) = traced_id(sk) else {
        return 0;
    };
    let g = group_of(&id);
    count(&g, Counter::DestroyedWithData);
    let p = payload::DestroyWithData {
        unread_bytes: unread,
        unacked_bytes: unacked,
    };
    emit(sk, &id, &g, p);
    0
}
