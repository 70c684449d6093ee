//! The census in the kernel: a TCP and a UDP socket iterator (bpf_iter,
//! 5.9+) that sum every socket of one namespace into its group, with the
//! same grouping rule and the same per-socket figures sock_diag reports, so
//! user space reads one record per group instead of one per socket.
//!
//! The kernel walks a namespace's sockets when user space reads an
//! iterator made in that namespace (the iterator matches sockets against
//! its maker's namespace). TCP's walk visits the listening hash before the
//! established one, so every listening port of the pass is marked in
//! [`CENSUS_LISTEN`] before any connection is classified; UDP's pass runs
//! after TCP's, in the same generation, and sees the same ports.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::map,
    maps::{Array, HashMap},
};
use netmem_common::{
    CensusRow, GroupKey, CENSUS_GEN, CENSUS_GROUPS_MAX, CENSUS_OVERFLOW, CENSUS_SETTINGS_LEN,
    CENSUS_TIME_WAIT, TCP_CLOSING, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN,
    TCP_NEW_SYN_RECV, TCP_TIME_WAIT,
};

use crate::sock::{drops, lay, read, Fields, Sock};

/// BPF_F_NO_PREALLOC: the map holds as many groups as the host has, not
/// its ceiling (65,536 preallocated rows would pin 10 MB). Iterator
/// programs may use run-time allocated hashes on every kernel that has
/// iterators (the verifier warns only for kprobe/tracepoint types).
const NO_PREALLOC: u32 = 1;

/// One pass' groups; user space takes them out (lookup-and-delete) after
/// each pass.
#[map]
pub static CENSUS_GROUPS: HashMap<GroupKey, CensusRow> =
    HashMap::with_max_entries(CENSUS_GROUPS_MAX, NO_PREALLOC);

/// Per local port, the generation of the last pass that saw it listening
/// (or that user space marked sticky): never cleared, a new generation
/// makes every older mark stale at once.
#[map]
pub static CENSUS_LISTEN: Array<u32> = Array::with_max_entries(65536, 0);

/// [`CENSUS_GEN`], [`CENSUS_TIME_WAIT`] (user space) and
/// [`CENSUS_OVERFLOW`] (set here).
#[map]
pub static CENSUS_SETTINGS: Array<u32> = Array::with_max_entries(CENSUS_SETTINGS_LEN, 0);

// struct bpf_iter__tcp { struct bpf_iter_meta *meta; struct sock_common *sk_common; uid_t uid; }
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/tcp")]
pub fn census_tcp(ctx: *mut c_void) -> u32 {
    census(ctx, true);
    0
}

// struct bpf_iter__udp { struct bpf_iter_meta *meta; struct udp_sock *udp_sk; uid_t uid; int bucket; }
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/udp")]
pub fn census_udp(ctx: *mut c_void) -> u32 {
    census(ctx, false);
    0
}

#[inline(always)]
fn setting(i: u32) -> u32 {
    CENSUS_SETTINGS.get(i).copied().unwrap_or(0)
}

#[inline(always)]
fn census(ctx: *mut c_void, tcp: bool) {
    // Both contexts hold the socket second. Copied out as a plain value:
    // the programs read every field at the offsets user space resolved
    // (LAYOUT), through the checked helper, as the other hooks do.
    // SAFETY: a checked helper copy of the context's second word; a fault
    // reads as zero, which ends this call like the walk's final one.
    let sk: u64 =
        unsafe { bpf_probe_read_kernel((ctx as *const u64).wrapping_add(1)) }.unwrap_or(0);
    if sk == 0 {
        // The walk's last call (no socket): nothing to add.
        return;
    }
    let gen = setting(CENSUS_GEN);
    let s = Sock::read(sk);
    let mut state: u8 = s.get(lay!(sk_state));
    // TIME_WAIT and request mini-sockets end after sock_common: no memory
    // figures, and sock_diag reports a TIME_WAIT one in its substate.
    let mini = state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV;
    if state == TCP_TIME_WAIT {
        state = read(sk, lay!(tw_substate));
        if state == TCP_TIME_WAIT && setting(CENSUS_TIME_WAIT) == 0 {
            return;
        }
    }
    let id = s.id(0);
    if tcp && state == TCP_LISTEN {
        if let Some(v) = CENSUS_LISTEN.get_ptr_mut(id.lport as u32) {
            // SAFETY: an array slot, valid for the program's run.
            unsafe { *v = gen };
        }
    }
    let listening = CENSUS_LISTEN
        .get(id.lport as u32)
        .is_some_and(|v| *v == gen);
    let key = GroupKey::classify(id.family, id.lport, listening, &id.raddr, id.rport);
    let row = match CENSUS_GROUPS.get_ptr_mut(&key) {
        Some(r) => r,
        None => {
            let _ = CENSUS_GROUPS.insert(&key, &CensusRow::default(), 0);
            match CENSUS_GROUPS.get_ptr_mut(&key) {
                Some(r) => r,
                None => {
                    if let Some(v) = CENSUS_SETTINGS.get_ptr_mut(CENSUS_OVERFLOW) {
                        // SAFETY: an array slot, valid for the program's run.
                        unsafe { *v = 1 };
                    }
                    return;
                }
            }
        }
    };
    // SAFETY: a map value valid for the program's run; one reader walks a
    // pass at a time (user space serialises passes), so no other writer.
    let row = unsafe { &mut *row };
    match state {
        TCP_LISTEN if tcp => {
            let queued: u32 = read(sk, lay!(sk_ack_backlog));
            let backlog: u32 = read(sk, lay!(sk_max_ack_backlog));
            row.listeners += 1;
            row.accept_queue += queued as u64;
            row.accept_backlog += backlog as u64;
            row.accept_full += (queued > backlog) as u64;
            row.listen_drops += drops(sk) as u32 as u64;
        }
        TCP_LISTEN => row.listeners += 1,
        TCP_TIME_WAIT => row.time_wait += 1,
        _ => row.sockets += 1,
    }
    if mini {
        return;
    }
    // The figures sock_diag's SK_MEMINFO carries, as u32 as it sends them.
    let rmem = read::<i32>(sk, lay!(sk_rmem_alloc)) as u32 as u64;
    let wq = read::<i32>(sk, lay!(sk_wmem_queued)) as u32 as u64;
    row.rmem += rmem;
    row.wmem_queued += wq;
    row.fwd_alloc += read::<i32>(sk, lay!(sk_forward_alloc)) as u32 as u64;
    row.drops += drops(sk) as u32 as u64;
    // An orphan as the kernel counts one: closed by its application (no
    // `struct socket`: sock_diag's inode 0) and on its way out.
    if tcp
        && matches!(
            state,
            TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING | TCP_LAST_ACK
        )
        && read::<u64>(sk, lay!(sk_socket)) == 0
    {
        row.orphans += 1;
        row.orphan_bytes += rmem + wq;
    }
}
