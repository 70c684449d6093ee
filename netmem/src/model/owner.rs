//! Owners: which processes and cgroups hold a group's sockets, the one rule
//! that names a group's main owner, and `--group-by process|cgroup`, a
//! regrouping of the port groups by owner.
//!
//! The rule, written once here: a socket belongs to the processes holding
//! a descriptor on it (a shared socket to each of them; for grouping, to the
//! lowest pid) and to the cgroup it was created in. A socket no process
//! holds (an orphan, a child still in an accept queue, a TIME_WAIT
//! mini-socket) belongs to its port group's main owner: the owner of the
//! group's listener, else the owner holding most of its bytes (then
//! sockets). Kernel counts and events, which are per port group, go to the
//! same main owner.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use netmem_common::{GroupKey, GROUP_CGROUP, GROUP_PROCESS, TCP_LISTEN};

pub use super::row::{CgroupShare, Owners, ProcessShare, MAX_SHOWN};
use super::row::{GroupMem, GroupRow};
use super::types::Memcg;
use super::types::{Cgroup, OwnerTable, SockRecord};

/// `--group-by`: what a group is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// `listen:PORT` and `backend:ADDR:PORT` (the kernel's own grouping)
    #[default]
    Port,
    /// the process holding the sockets (`process:COMM[PID]`)
    Process,
    /// the cgroup v2 the sockets were created in (`cgroup:/PATH`)
    Cgroup,
    /// a proxy's backend, its servers summed (`proxy-backend:NAME`);
    /// other groups by port
    ProxyBackend,
}

impl GroupBy {
    /// Grouping by who holds the sockets: the pass must read owners.
    pub fn by_owner(self) -> bool {
        matches!(self, GroupBy::Process | GroupBy::Cgroup)
    }
}

/// Where an event's owner came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerVia {
    /// Recorded by the kernel in the closing process's context (orphans,
    /// on the tiers that see `tcp_close`).
    Closer,
    /// The socket's own cgroup, read by sock_diag (orphans, polling tier).
    Socket,
    /// The main owner of the event's group.
    Group,
}

impl OwnerVia {
    pub fn name(self) -> &'static str {
        match self {
            OwnerVia::Closer => "closer",
            OwnerVia::Socket => "socket",
            OwnerVia::Group => "group",
        }
    }
}

/// An event's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOwner {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub cgroup: Option<Arc<Cgroup>>,
    /// The cgroup's id, also when its path is not known (yet).
    pub cgroup_id: Option<u64>,
    pub via: OwnerVia,
}

use super::key::id_key as owner_key;
pub use super::key::owner_id;
use super::names::Names;

/// What one pass learned about owners, beside the port groups.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    /// port group -> its main owner, as the chosen `--group-by` kind
    /// (empty when grouping by port)
    pub group_owner: HashMap<GroupKey, GroupKey>,
    /// port group -> its main owner, for events
    pub event_owner: HashMap<GroupKey, EventOwner>,
    /// With `--group-by process|cgroup`: the owner groups' memory, charged
    /// socket by socket.
    pub owner_mem: BTreeMap<GroupKey, GroupMem>,
    /// Owners per owner group (each owner group's own row).
    pub owner_rows: HashMap<GroupKey, Owners>,
    /// The port groups asked for (`--port`, `--backend`): only theirs are
    /// regrouped.
    pub filter: super::filter::Filter,
}

#[derive(Default)]
struct Tally {
    sockets: u64,
    bytes: u64,
    listener: bool,
}

impl Tally {
    fn add(&mut self, bytes: u64, listener: bool) {
        self.sockets += 1;
        self.bytes += bytes;
        self.listener |= listener;
    }
}

/// Per process and per cgroup, the sockets and bytes they hold in one group.
#[derive(Default)]
struct Shares {
    procs: BTreeMap<u32, Tally>,
    cgroups: BTreeMap<u64, Tally>,
    /// Sockets no process holds.
    unheld: u64,
}

impl Shares {
    fn add(&mut self, r: &SockRecord, src: &OwnerTable) {
        let b = bytes_of(r);
        let listener = r.state == TCP_LISTEN;
        let holders = src.holders(r.inode);
        if holders.is_empty() && r.full {
            self.unheld += 1;
        }
        for pid in holders {
            self.procs.entry(*pid).or_default().add(b, listener);
        }
        if r.cgroup_id != 0 {
            self.cgroups
                .entry(r.cgroup_id)
                .or_default()
                .add(b, listener);
        }
    }

    /// Largest first, at most [`MAX_SHOWN`] of each.
    fn owners(
        self,
        src: &OwnerTable,
        memcg_of: &mut impl FnMut(u64) -> Option<Arc<Memcg>>,
    ) -> Owners {
        fn largest<K: Copy + Ord>(t: BTreeMap<K, Tally>) -> (Vec<(K, Tally)>, u64) {
            let mut v: Vec<_> = t.into_iter().collect();
            v.sort_by(|a, b| (b.1.bytes, b.1.sockets, a.0).cmp(&(a.1.bytes, a.1.sockets, b.0)));
            let more = v.len().saturating_sub(MAX_SHOWN) as u64;
            v.truncate(MAX_SHOWN);
            (v, more)
        }
        let (procs, more_processes) = largest(self.procs);
        let (cgroups, more_cgroups) = largest(self.cgroups);
        Owners {
            processes: procs
                .into_iter()
                .map(|(pid, t)| ProcessShare {
                    pid,
                    comm: src.comm(pid).to_string(),
                    sockets: t.sockets,
                    bytes: t.bytes,
                })
                .collect(),
            more_processes,
            cgroups: cgroups
                .into_iter()
                .filter_map(|(id, t)| {
                    let memcg = memcg_of(id);
                    Some(CgroupShare {
                        cgroup: src.cgroup(id)?,
                        sockets: t.sockets,
                        bytes: t.bytes,
                        memcg_sock: memcg.as_ref().and_then(|m| m.sock),
                        memcg,
                    })
                })
                .collect(),
            more_cgroups,
            unheld: self.unheld,
        }
    }
}

fn bytes_of(r: &SockRecord) -> u64 {
    r.rmem_alloc as u64 + r.wmem_queued as u64 + r.fwd_alloc as u64
}

/// The main owner among `t`: a listener's first, else most bytes, then
/// most sockets, then the lowest id.
fn main_of<K: Copy + Ord>(t: &BTreeMap<K, Tally>) -> Option<K> {
    t.iter()
        .max_by(|a, b| {
            (a.1.listener, a.1.bytes, a.1.sockets)
                .cmp(&(b.1.listener, b.1.bytes, b.1.sockets))
                .then(b.0.cmp(a.0))
        })
        .map(|(k, _)| *k)
}

/// Fills each port group's owners from the pass's sockets, and with
/// `by` other than port, the owner groups' memory. `src` is what the
/// sources know of the sockets' holders (brought up to date for these
/// sockets first); `memcg` reads a cgroup's memory controller
/// (`memory.stat` `sock`, its limits and events), asked once per cgroup
/// shown. The processes and cgroups met are
/// registered in `names`, which names the owner groups.
pub fn attribute(
    groups: &mut BTreeMap<GroupKey, GroupRow>,
    sockets: &[(SockRecord, GroupKey)],
    src: &OwnerTable,
    memcg_read: &mut dyn FnMut(u64) -> Option<Arc<Memcg>>,
    by: GroupBy,
    names: &Names,
) -> Attribution {
    let mut per_group: HashMap<GroupKey, Shares> = HashMap::new();
    for (r, g) in sockets {
        per_group.entry(*g).or_default().add(r, src);
    }
    names.learn(
        per_group
            .values()
            .flat_map(|s| s.procs.keys().map(|pid| (*pid, src.comm(*pid).to_string()))),
        per_group
            .values()
            .flat_map(|s| s.cgroups.keys().filter_map(|id| src.cgroup(*id))),
    );
    let mut out = Attribution::default();
    let mut memcg: HashMap<u64, Option<Arc<Memcg>>> = HashMap::new();
    let mut memcg_of = |id: u64| memcg.entry(id).or_insert_with(|| memcg_read(id)).clone();
    for (g, row) in groups.iter_mut() {
        let shares = per_group.remove(g).unwrap_or_default();
        let main_pid = main_of(&shares.procs);
        let main_cg = main_of(&shares.cgroups);
        out.event_owner.insert(
            *g,
            EventOwner {
                pid: main_pid,
                comm: main_pid.and_then(|p| names.comm(p)),
                cgroup: main_cg.and_then(|c| names.cgroup(c)),
                cgroup_id: main_cg,
                via: OwnerVia::Group,
            },
        );
        let main = match by {
            GroupBy::Port | GroupBy::ProxyBackend => None,
            GroupBy::Process => Some(owner_key(
                GROUP_PROCESS,
                main_pid.unwrap_or(0) as u64,
                g.netns,
            )),
            GroupBy::Cgroup => Some(owner_key(GROUP_CGROUP, main_cg.unwrap_or(0), g.netns)),
        };
        if let Some(k) = main {
            out.group_owner.insert(*g, k);
        }
        row.owners = Some(Box::new(shares.owners(src, &mut memcg_of)));
    }
    if !by.by_owner() {
        return out;
    }
    // Owner groups, socket by socket: a socket goes to its own owner when
    // it has one, else to its port group's main owner.
    let mut per_owner: HashMap<GroupKey, Shares> = HashMap::new();
    for (r, g) in sockets {
        let own = match by {
            GroupBy::Process => src
                .holders(r.inode)
                .first()
                .map(|pid| owner_key(GROUP_PROCESS, *pid as u64, g.netns)),
            _ => (r.cgroup_id != 0 && src.cgroup(r.cgroup_id).is_some())
                .then(|| owner_key(GROUP_CGROUP, r.cgroup_id, g.netns)),
        };
        let Some(k) = own.or_else(|| out.group_owner.get(g).copied()) else {
            continue;
        };
        out.owner_mem.entry(k).or_default().add(r);
        per_owner.entry(k).or_default().add(r, src);
    }
    for (k, shares) in per_owner {
        out.owner_rows.insert(k, shares.owners(src, &mut memcg_of));
    }
    out
}

/// The group an event of port group `g` belongs to under `by`: the owner
/// the kernel recorded for its socket when there is one, else the port
/// group's main owner as of the last pass, else `(none)` (a group no pass
/// has seen yet).
pub fn event_group(
    g: GroupKey,
    own: Option<&EventOwner>,
    a: Option<&Attribution>,
    by: GroupBy,
) -> GroupKey {
    let recorded = own.filter(|o| o.via != OwnerVia::Group);
    match by {
        GroupBy::Port | GroupBy::ProxyBackend => g,
        GroupBy::Process => recorded
            .and_then(|o| o.pid)
            .map(|p| owner_key(GROUP_PROCESS, p as u64, g.netns))
            .or_else(|| a?.group_owner.get(&g).copied())
            .unwrap_or_else(|| owner_key(GROUP_PROCESS, 0, g.netns)),
        GroupBy::Cgroup => recorded
            .and_then(|o| o.cgroup_id)
            .map(|c| owner_key(GROUP_CGROUP, c, g.netns))
            .or_else(|| a?.group_owner.get(&g).copied())
            .unwrap_or_else(|| owner_key(GROUP_CGROUP, 0, g.netns)),
    }
}

/// The port groups' rows regrouped by owner: memory from the owner
/// groups' own sockets, counts from each port group's main owner.
pub fn regroup(
    groups: BTreeMap<GroupKey, GroupRow>,
    a: &Attribution,
    by: GroupBy,
) -> BTreeMap<GroupKey, GroupRow> {
    let kind = match by {
        GroupBy::Port | GroupBy::ProxyBackend => return groups,
        GroupBy::Process => GROUP_PROCESS,
        GroupBy::Cgroup => GROUP_CGROUP,
    };
    let mut out: BTreeMap<GroupKey, GroupRow> = a
        .owner_mem
        .iter()
        .map(|(k, m)| {
            (
                *k,
                GroupRow {
                    mem: m.clone(),
                    owners: a.owner_rows.get(k).cloned().map(Box::new),
                    ..Default::default()
                },
            )
        })
        .collect();
    for (g, row) in groups {
        if !a.filter.accepts(&g) {
            continue;
        }
        // A group that only counted (no socket left in the pass) has no
        // known owner.
        let k = a
            .group_owner
            .get(&g)
            .copied()
            .unwrap_or_else(|| owner_key(kind, 0, g.netns));
        if row.counts.iter().all(|c| *c == 0) && !out.contains_key(&k) {
            continue;
        }
        let r = out.entry(k).or_default();
        for (x, y) in r.counts.iter_mut().zip(row.counts.iter()) {
            *x += y;
        }
    }
    out
}

#[cfg(test)]
#[path = "owner_tests.rs"]
mod tests;
