//! A group's row: its memory as sock_diag reports it, the kernel's
//! counts, who holds its sockets and what the proxy in front calls it.
//! Plain data beneath the rules that fill it (grouping and aggregation in
//! `group.rs`, the owner rule in `owner.rs`, proxy names in `proxy.rs`),
//! so each of them imports downwards only.

use std::sync::Arc;

use netmem_common::{
    Counter, IPPROTO_TCP, TCP_CLOSING, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN,
    TCP_TIME_WAIT,
};

use super::proxy::named::GroupProxy;
use super::types::{Cgroup, SockRecord};

/// An orphan as the kernel counts one (tcp_orphan_count): a full TCP
/// socket its application has closed. No inode alone is not enough:
/// children still waiting in a listener's accept queue have none either,
/// and sit in ESTABLISHED, SYN_RECV or CLOSE_WAIT, while a closed socket
/// has moved on to FIN_WAIT1/2, CLOSING or LAST_ACK. `full` excludes the
/// TIME_WAIT mini-sockets that sock_diag reports in their FIN_WAIT2 substate.
pub fn is_orphan(rec: &SockRecord) -> bool {
    rec.protocol == IPPROTO_TCP
        && rec.inode == 0
        && rec.full
        && matches!(
            rec.state,
            TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSING | TCP_LAST_ACK
        )
}

/// One group's memory as sock_diag reports it, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMem {
    pub sockets: u64,
    pub listeners: u64,
    pub time_wait: u64,
    pub orphans: u64,
    pub rmem: u64,
    pub wmem_queued: u64,
    pub fwd_alloc: u64,
    /// rmem + wmem_queued held by orphans
    pub orphan_bytes: u64,
    pub drops: u64,
    /// Its listeners' accept queues: connections the kernel completed
    /// that the application has not accepted yet.
    pub accept_queue: u64,
    /// Its listeners' backlogs (the accept queues' limits).
    pub accept_backlog: u64,
    /// Listeners whose accept queue is full: the kernel drops the next
    /// SYN and the next completed handshake (`sk_acceptq_is_full`: more
    /// queued than the backlog).
    pub accept_full: u64,
    /// Its listeners' drops (`sk_drops` of a listening socket: every
    /// ListenDrops of the namespace, ListenOverflows included, is counted
    /// on the listener it happened to), since each listener was created.
    pub listen_drops: u64,
}

impl GroupMem {
    /// Charges one socket.
    pub fn add(&mut self, rec: &SockRecord) {
        match rec.state {
            TCP_LISTEN if rec.protocol == IPPROTO_TCP => {
                self.listeners += 1;
                self.accept_queue += rec.rqueue as u64;
                self.accept_backlog += rec.wqueue as u64;
                self.accept_full += (rec.rqueue > rec.wqueue) as u64;
                self.listen_drops += rec.drops as u64;
            }
            TCP_LISTEN => self.listeners += 1,
            TCP_TIME_WAIT => self.time_wait += 1,
            _ => self.sockets += 1,
        }
        self.rmem += rec.rmem_alloc as u64;
        self.wmem_queued += rec.wmem_queued as u64;
        self.fwd_alloc += rec.fwd_alloc as u64;
        self.drops += rec.drops as u64;
        if is_orphan(rec) {
            self.orphans += 1;
            self.orphan_bytes += rec.rmem_alloc as u64 + rec.wmem_queued as u64;
        }
    }

    pub fn total(&self) -> u64 {
        self.rmem + self.wmem_queued + self.fwd_alloc
    }

    /// A group's sums as the in-kernel census made them: the same figures
    /// [`GroupMem::add`] sums per socket (netmem-ebpf's census.rs applies
    /// its rules in the kernel).
    pub fn from_census(r: &netmem_common::CensusRow) -> GroupMem {
        GroupMem {
            sockets: r.sockets,
            listeners: r.listeners,
            time_wait: r.time_wait,
            orphans: r.orphans,
            rmem: r.rmem,
            wmem_queued: r.wmem_queued,
            fwd_alloc: r.fwd_alloc,
            orphan_bytes: r.orphan_bytes,
            drops: r.drops,
            accept_queue: r.accept_queue,
            accept_backlog: r.accept_backlog,
            accept_full: r.accept_full,
            listen_drops: r.listen_drops,
        }
    }

    /// Adds another group's figures (groups summed into one).
    pub fn absorb(&mut self, o: &GroupMem) {
        self.sockets += o.sockets;
        self.listeners += o.listeners;
        self.time_wait += o.time_wait;
        self.orphans += o.orphans;
        self.rmem += o.rmem;
        self.wmem_queued += o.wmem_queued;
        self.fwd_alloc += o.fwd_alloc;
        self.orphan_bytes += o.orphan_bytes;
        self.drops += o.drops;
        self.accept_queue += o.accept_queue;
        self.accept_backlog += o.accept_backlog;
        self.accept_full += o.accept_full;
        self.listen_drops += o.listen_drops;
    }
}

/// A group's row: memory from sock_diag plus event counts from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRow {
    pub mem: GroupMem,
    pub counts: [u64; Counter::COUNT],
    /// Who holds its sockets, when asked (`--owners`, `--group-by`).
    pub owners: Option<Box<Owners>>,
    /// What the proxy in front calls it (`--haproxy`, or one found running).
    pub proxy: Option<Arc<GroupProxy>>,
}

impl GroupRow {
    pub fn count(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    /// Nothing to report: no sockets (a bare listener does not count), no
    /// memory, no drops and no events.
    pub fn is_empty(&self) -> bool {
        let m = &self.mem;
        m.sockets == 0
            && m.orphans == 0
            && m.time_wait == 0
            && m.total() == 0
            && m.drops == 0
            && self.counts.iter().all(|&c| c == 0)
    }
}

/// One process's share of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessShare {
    pub pid: u32,
    pub comm: String,
    pub sockets: u64,
    /// rmem + wmem_queued + fwd_alloc of the sockets it holds
    pub bytes: u64,
}

/// One cgroup's share of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupShare {
    pub cgroup: Arc<Cgroup>,
    pub sockets: u64,
    pub bytes: u64,
    /// The cgroup's own `memory.stat` `sock` (all its sockets, whatever
    /// their group), for the cross-check; None without a v2 memory
    /// controller.
    pub memcg_sock: Option<u64>,
    /// The cgroup's memory controller (current, limits, events, the limit
    /// that applies on the way up), read in the same pass; None without
    /// one.
    pub memcg: Option<Arc<super::types::Memcg>>,
}

/// Who holds a group's sockets, largest share first (at most
/// [`MAX_SHOWN`] of each; the rest are counted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owners {
    pub processes: Vec<ProcessShare>,
    pub more_processes: u64,
    pub cgroups: Vec<CgroupShare>,
    pub more_cgroups: u64,
    /// Sockets no process holds (orphans, accept queue children), charged
    /// to the group's main owner.
    pub unheld: u64,
}

pub const MAX_SHOWN: usize = 8;
