//! The one layer that reads the system for a pass: what the model's rules
//! then group, name and count. Every socket dump, listener read, owner
//! lookup (`/proc/*/fd`, the cgroup tree, `memory.stat`), namespace walk,
//! proxy read and the census budget are started from here:
//!
//! - [`census`]: an interval's (or a snapshot's) pass: the traced
//!   namespace or every one, the census budget, the owners, the proxies.
//! - [`collect`]: one namespace's sock_diag pass into an [`Aggregator`].
//! - [`listening_ports`]: the listeners the engine seeds the kernel with.
//! - [`sockets_of`] and [`DrillDown`]: `top`'s drill-down, on a worker
//!   thread of its own so the UI thread never dumps.
//! - [`monotonic_ns`]: the clock a pass and the kernel's events share.
//!
//! The model does no I/O: it gets what is read here as plain values
//! (`model::types`).

use std::collections::HashSet;
use std::sync::mpsc::{channel, Receiver, Sender};

use anyhow::Result;
use netmem_common::TCP_LISTEN;

use crate::hooks::census::KernelCensus;
use crate::model::group::{group_of, GroupMem};
use crate::model::names::Names;
use crate::model::types::SockRecord;
use crate::model::Aggregator;
use crate::sources::netns::{Namespaces, Netns};
use crate::sources::sockdiag::{dump_tcp, Families, NoHandler, Presence, SockDiag, States};

pub mod census;

/// CLOCK_MONOTONIC in ns: the kernel's event timestamps' clock.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The TCP ports with a listener in `netns` now.
pub fn listening_ports(netns: &Netns) -> Result<Vec<u16>> {
    let mut listening = Vec::new();
    dump_tcp(netns, States::Listening, |r| listening.push(r.lport))?;
    Ok(listening)
}

/// One sock_diag pass, TCP then UDP, each table dumped once: the kernel
/// sends a family's listening sockets before any other, so every other
/// socket is charged to its group as the dump streams. `others`: which
/// non-listening TCP states. `sticky`: ports whose listener closed while
/// its accepted connections live on (the trace keeps them); their sockets
/// stay with `listen:PORT`. Returns the ports with a listening socket now.
/// A kernel without UDP sock_diag is noted once and its UDP sockets left
/// out.
pub fn collect(
    agg: &mut Aggregator,
    netns: &Netns,
    others: States,
    sticky: &HashSet<u16>,
) -> Result<HashSet<u16>> {
    collect_present(agg, netns, others, sticky, Presence::ALL)
}

/// [`collect`], dumping only the tables `present` says hold sockets.
pub fn collect_present(
    agg: &mut Aggregator,
    netns: &Netns,
    others: States,
    sticky: &HashSet<u16>,
    present: Presence,
) -> Result<HashSet<u16>> {
    let diag = SockDiag::open(netns)?;
    let mut listening = HashSet::new();
    let mut ports = sticky.clone();
    if present.tcp.any() {
        diag.tcp(present.tcp, others.with_listeners(), |r| {
            if r.state == TCP_LISTEN {
                listening.insert(r.lport);
                ports.insert(r.lport);
            }
            agg.add_socket(r, &ports)
        })?;
    }
    if present.udp.any() {
        udp_by_sock_diag(agg, &diag, present, &ports)?;
    }
    Ok(listening)
}

/// One namespace's pass by the in-kernel census: the kernel walks its
/// sockets and sums each group (TCP, then UDP when that iterator loaded;
/// else UDP by sock_diag, grouped by the ports TCP's walk found
/// listening). With the orphan poller on (`agg.orphan_records`) and
/// `orphans_present` (sockstat counts orphans), the orphans are dumped
/// too. Returns the ports with a listening socket now.
pub fn collect_in_kernel(
    agg: &mut Aggregator,
    kernel: &mut KernelCensus,
    netns: &Netns,
    sticky: &HashSet<u16>,
    time_wait: bool,
    present: Presence,
    orphans_present: bool,
) -> Result<HashSet<u16>> {
    let inum = netns.inum()?;
    let rows = kernel.pass(netns, sticky, time_wait, present.udp.any())?;
    let mut listening = HashSet::new();
    for (key, row) in rows {
        if agg.add_census(key.in_netns(inum), GroupMem::from_census(&row)) {
            listening.insert(key.port);
        }
    }
    let udp = present.udp.any() && !kernel.has_udp();
    // The orphan poller follows each orphan: those alone by sock_diag
    // (only the closing states are sent), while sockstat counts any.
    let orphans = agg.orphan_records.is_some() && orphans_present;
    if udp || orphans {
        let diag = SockDiag::open(netns)?;
        let mut ports = sticky.clone();
        ports.extend(listening.iter().copied());
        if udp {
            udp_by_sock_diag(agg, &diag, present, &ports)?;
        }
        if let Some(records) = agg.orphan_records.as_mut().filter(|_| orphans) {
            diag.tcp(Families::BOTH, States::Closing, |r| {
                if crate::model::group::is_orphan(r) {
                    records.push((r.clone(), group_of(r, &ports)));
                }
            })?;
        }
    }
    Ok(listening)
}

/// A namespace's UDP sockets by sock_diag; a kernel without UDP sock_diag
/// is noted once and its UDP sockets left out.
fn udp_by_sock_diag(
    agg: &mut Aggregator,
    diag: &SockDiag,
    present: Presence,
    ports: &HashSet<u16>,
) -> Result<()> {
    if let Err(e) = diag.udp(present.udp, |r| agg.add_socket(r, ports)) {
        match e.downcast_ref::<NoHandler>() {
            Some(n) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| log::warn!("{n}; UDP sockets are left out"));
            }
            None => return Err(e),
        }
    }
    Ok(())
}

/// The TCP sockets of the port group named `name` (as
/// [`Names::group_name`] writes it with `names`), largest memory first:
/// one pass of sock_diag (of every namespace with `all`), grouped by the
/// same rule as every table. The TIME_WAIT sockets only with `time_wait`:
/// a group's row does not count them as sockets, and under churn they
/// outnumber the rest by thousands. An owner group (`--group-by`) has none
/// listed here.
pub fn sockets_of(
    netns: &Netns,
    all: bool,
    name: &str,
    time_wait: bool,
    names: &Names,
) -> Result<Vec<SockRecord>> {
    let mut namespaces = Namespaces::default();
    let spaces: Vec<&Netns> = if all {
        namespaces.discover()?.into_iter().map(|(n, _)| n).collect()
    } else {
        vec![netns]
    };
    let mut out = Vec::new();
    for ns in spaces {
        let mut listening = HashSet::new();
        dump_tcp(ns, States::Listening, |r| {
            listening.insert(r.lport);
        })?;
        let states = if time_wait {
            States::AllButListening
        } else {
            States::Buffered
        };
        dump_tcp(ns, states, |r| {
            if names.group_name(&group_of(r, &listening)) == name {
                out.push(r.clone());
            }
        })?;
    }
    let mem = |r: &SockRecord| r.rmem_alloc as u64 + r.wmem_queued as u64 + r.fwd_alloc as u64;
    out.sort_by_key(|r| std::cmp::Reverse(mem(r)));
    Ok(out)
}

/// A drill-down's answer: the group, whether TIME_WAIT sockets were
/// asked for, and the sockets (none when the dump failed).
pub type Drilled = (String, bool, Vec<SockRecord>);

/// `top`'s drill-down dumps on a thread of its own: the UI thread asks and
/// keeps drawing, and takes the answer when it comes. The thread ends
/// when this is dropped.
pub struct DrillDown {
    ask: Sender<(String, bool, Names)>,
    answers: Receiver<Drilled>,
}

impl DrillDown {
    pub fn start(netns: Netns, all: bool) -> Result<DrillDown> {
        let (ask, asked) = channel::<(String, bool, Names)>();
        let (answer, answers) = channel();
        std::thread::Builder::new()
            .name("netmem-drill".into())
            .spawn(move || {
                for (group, time_wait, names) in asked {
                    let socks =
                        sockets_of(&netns, all, &group, time_wait, &names).unwrap_or_default();
                    if answer.send((group, time_wait, socks)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(DrillDown { ask, answers })
    }

    /// Asks for `group`'s sockets (with TIME_WAIT ones when `time_wait`),
    /// the group named as `names` names it.
    pub fn ask(&self, group: &str, time_wait: bool, names: &Names) {
        let _ = self.ask.send((group.to_string(), time_wait, names.clone()));
    }

    /// An answer that came, if any (never waits).
    pub fn answer(&self) -> Option<Drilled> {
        self.answers.try_recv().ok()
    }
}
