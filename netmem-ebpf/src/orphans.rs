//! Orphan accounting: a socket is born an orphan when its owner closes it
//! before the connection is done (`__tcp_close` returning with the socket not
//! CLOSE, or `inet_child_forget` for a child nobody accepted) and dies in
//! `inet_csk_destroy_sock`.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use netmem_common::{
    payload, Counter, OrphanInfo, OrphanSource, Stat, TCP_CLOSE, TCP_CLOSING, TCP_FIN_WAIT1,
    TCP_FIN_WAIT2, TCP_LAST_ACK,
};

use crate::sock::{
    count, emit, group_of, lay, now_ns, read, save_entry_args, stat, take_entry_args, traced_id,
    Direct, Entry, Fields,
};

/// Live orphans by socket address: birth time, bytes and group, so their
/// death can report a lifetime. Bounded; a full map is counted.
#[map]
pub static ORPHANS: HashMap<u64, OrphanInfo> = HashMap::with_max_entries(65536, 0);

/// At the end of __tcp_close the caller (tcp_close) still holds `sk`, so it
/// is safe to read; a socket not yet CLOSE lives on as an orphan.
#[inline(always)]
fn after_close(sk: u64) {
    if read::<u8>(sk, lay!(sk_state)) != TCP_CLOSE {
        orphan_born(sk, OrphanSource::TcpClose);
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
    orphan_born(ctx.arg(2), OrphanSource::ChildForget);
    0
}

#[kprobe]
pub fn child_forget_kprobe(ctx: ProbeContext) -> u32 {
    orphan_born(ctx.arg(2).unwrap_or(0), OrphanSource::ChildForget);
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

/// `sk` was just orphaned by its owner, with `bytes` still queued.
#[inline(always)]
fn orphan_born(sk: u64, source: OrphanSource) {
    if sk == 0 {
        return;
    }
    let Some(id) = traced_id(sk) else {
        return;
    };
    let g = group_of(&id);
    count(&g, Counter::OrphansBorn);
    let bytes = read::<i32>(sk, lay!(sk_wmem_queued)) as i64;
    // __tcp_close runs in the closing process's context, so the current
    // task is the owner; a child nobody accepted is forgotten by whoever
    // closed the listener, so its owner is not recorded.
    let (pid, cgroup, comm) = match source {
        OrphanSource::TcpClose => current_owner(),
        _ => (0, 0, [0; 16]),
    };
    let info = OrphanInfo {
        born_ns: now_ns(),
        bytes,
        group: g,
        last_state: 0,
        aborted_on_memory: 0,
        _pad: [0; 2],
        owner_pid: pid,
        owner_cgroup: cgroup,
    };
    if ORPHANS.insert(&sk, &info, 0).is_err() {
        stat(Stat::OrphanMapFull);
    }
    let p = payload::OrphanBorn {
        bytes,
        source: source as i64,
        owner_pid: pid as i64,
        owner_cgroup: cgroup as i64,
        owner_comm0: i64::from_ne_bytes([
            comm[0], comm[1], comm[2], comm[3], comm[4], comm[5], comm[6], comm[7],
        ]),
        owner_comm1: i64::from_ne_bytes([
            comm[8], comm[9], comm[10], comm[11], comm[12], comm[13], comm[14], comm[15],
        ]),
    };
    emit(sk, &id, &g, p);
}

/// The current process: tgid, cgroup v2 id and comm.
#[inline(always)]
fn current_owner() -> (u32, u64, [u8; 16]) {
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: bpf_get_current_cgroup_id has no preconditions (4.18+, the
    // oldest kernel with the tiers that reach here).
    let cgroup = unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() };
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
    (tgid, cgroup, comm)
}

/// tcp_check_oom aborted `sk`: if it is a tracked orphan, its death says so.
#[inline(always)]
pub fn mark_aborted(sk: u64) {
    if let Some(o) = ORPHANS.get_ptr_mut(&sk) {
        // SAFETY: a map value pointer from the kernel, valid while this
        // program runs; a one-byte flag store cannot tear.
        unsafe { (*o).aborted_on_memory = 1 };
    }
}

/// Called from inet_sock_set_state: remembers how a tracked orphan reached
/// CLOSE. Only the states a closed socket passes through are looked up:
/// resets of live connections and failed connects skip the map.
#[inline(always)]
pub fn orphan_state(sk: u64, old: u8, new: u8) {
    if new != TCP_CLOSE
        || !matches!(
            old,
            TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_LAST_ACK | TCP_CLOSING
        )
    {
        return;
    }
    if let Some(o) = ORPHANS.get_ptr_mut(&sk) {
        // SAFETY: as in mark_aborted: a valid map value, a one-byte store.
        unsafe { (*o).last_state = old };
    }
}

/// `sk` is being destroyed; if it was a tracked orphan, report its life.
#[inline(always)]
fn orphan_gone(sk: u64) {
    // SAFETY: the value is copied out at once; the socket is being
    // destroyed by this very call path, so nothing else updates its entry.
    let Some(o) = (unsafe { ORPHANS.get(&sk) }) else {
        return;
    };
    let o = *o;
    let _ = ORPHANS.remove(&sk);
    count(&o.group, Counter::OrphansGone);
    let id = Direct(sk).id(o.group.netns);
    let p = payload::OrphanGone {
        lifetime_ns: (now_ns() - o.born_ns) as i64,
        bytes_at_birth: o.bytes,
        last_state: o.last_state as i64,
        aborted_on_memory: o.aborted_on_memory as i64,
        owner_pid: o.owner_pid as i64,
        owner_cgroup: o.owner_cgroup as i64,
    };
    emit(sk, &id, &o.group, p);
}
