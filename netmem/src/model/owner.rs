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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use netmem_common::{GroupKey, GROUP_CGROUP, GROUP_PROCESS, TCP_LISTEN};

use super::group::{GroupMem, GroupRow};
use crate::sources::owners::{Cgroup, OwnerSource};
use crate::sources::sockdiag::SockRecord;

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

/// Names the model cannot derive from a key alone: namespaces, processes
/// and cgroups. Filled by the sources as they learn them, read by
/// [`super::group::group_name`] on any thread.
#[derive(Default)]
struct Registry {
    /// The namespace whose groups carry no `@NAME` suffix.
    default_netns: u32,
    /// `--netns all`: groups say which namespace they are in.
    all: bool,
    netns: HashMap<u32, String>,
    processes: HashMap<u32, String>,
    cgroups: HashMap<u64, Arc<Cgroup>>,
}

static REGISTRY: RwLock<Option<Registry>> = RwLock::new(None);

fn with<T>(f: impl FnOnce(&Registry) -> T) -> T {
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    match r.as_ref() {
        Some(r) => f(r),
        None => f(&Registry::default()),
    }
}

fn with_mut(f: impl FnOnce(&mut Registry)) {
    let mut r = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    f(r.get_or_insert_with(Registry::default))
}

/// The namespace reported without a suffix (the traced one, or netmem's
/// own with `--netns all`).
pub fn set_default_netns(inum: u32) {
    with_mut(|r| r.default_netns = inum);
}

/// `--netns all` is on: every group names its namespace.
pub fn set_all_namespaces(all: bool) {
    with_mut(|r| r.all = all);
}

pub fn all_namespaces() -> bool {
    with(|r| r.all)
}

pub fn name_netns(inum: u32, name: &str) {
    with_mut(|r| {
        r.netns.insert(inum, name.to_string());
    });
}

/// `@NAME` for a group outside the default namespace, else empty.
pub fn netns_suffix(inum: u32) -> String {
    with(|r| {
        if inum == 0 || inum == r.default_netns {
            String::new()
        } else {
            match r.netns.get(&inum) {
                Some(n) => format!("@{n}"),
                None => format!("@netns:{inum}"),
            }
        }
    })
}

/// The namespace's name, as groups show it (`host` for the default one).
pub fn netns_name(inum: u32) -> String {
    with(|r| {
        if inum == r.default_netns {
            "host".to_string()
        } else {
            r.netns
                .get(&inum)
                .cloned()
                .unwrap_or_else(|| format!("netns:{inum}"))
        }
    })
}

pub fn cgroup(id: u64) -> Option<Arc<Cgroup>> {
    with(|r| r.cgroups.get(&id).cloned())
}

pub fn register_cgroup(c: Arc<Cgroup>) {
    with_mut(|r| {
        r.cgroups.insert(c.id, c);
    });
}

pub fn comm(pid: u32) -> Option<String> {
    with(|r| r.processes.get(&pid).cloned())
}

/// The id an owner group carries in its key.
pub fn owner_id(k: &GroupKey) -> u64 {
    u64::from_ne_bytes(k.addr[..8].try_into().expect("8 bytes"))
}

fn owner_key(kind: u8, id: u64, netns: u32) -> GroupKey {
    let mut addr = [0u8; 16];
    addr[..8].copy_from_slice(&id.to_ne_bytes());
    GroupKey {
        addr,
        port: 0,
        kind,
        family: 0,
        netns,
    }
}

/// `process:haproxy[1234]`, `cgroup:/system.slice/haproxy.service`, or
/// `(none)` when nothing owns the sockets.
pub fn owner_group_name(k: &GroupKey) -> String {
    let id = owner_id(k);
    match k.kind {
        GROUP_PROCESS if id == 0 => "process:(none)".to_string(),
        GROUP_PROCESS => format!(
            "process:{}[{id}]",
            comm(id as u32).unwrap_or_else(|| "?".into())
        ),
        _ if id == 0 => "cgroup:(none)".to_string(),
        _ => match cgroup(id) {
            Some(c) => format!("cgroup:{}", c.path),
            None => format!("cgroup:{id}"),
        },
    }
}

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
}

#[derive(Default)]
struct Tally {
    sockets: u64,
    bytes: u64,
    listener: bool,
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
/// `by` other than port, the owner groups' memory.
pub fn attribute(
    groups: &mut BTreeMap<GroupKey, GroupRow>,
    sockets: &[(SockRecord, GroupKey)],
    src: &mut OwnerSource,
    by: GroupBy,
) -> Attribution {
    let inodes: HashSet<u32> = sockets.iter().map(|(r, _)| r.inode).collect();
    let cgroups: HashSet<u64> = sockets.iter().map(|(r, _)| r.cgroup_id).collect();
    src.refresh(&inodes, &cgroups);
    // Per group: per process and per cgroup tallies.
    let mut procs: HashMap<GroupKey, BTreeMap<u32, Tally>> = HashMap::new();
    let mut cgs: HashMap<GroupKey, BTreeMap<u64, Tally>> = HashMap::new();
    let mut unheld: HashMap<GroupKey, u64> = HashMap::new();
    for (r, g) in sockets {
        let b = bytes_of(r);
        let listener = r.state == TCP_LISTEN;
        let holders = src.holders(r.inode);
        if holders.is_empty() && r.full {
            *unheld.entry(*g).or_default() += 1;
        }
        for pid in holders {
            let t = procs.entry(*g).or_default().entry(*pid).or_default();
            t.sockets += 1;
            t.bytes += b;
            t.listener |= listener;
        }
        if r.cgroup_id != 0 {
            let t = cgs.entry(*g).or_default().entry(r.cgroup_id).or_default();
            t.sockets += 1;
            t.bytes += b;
            t.listener |= listener;
        }
    }
    with_mut(|reg| {
        for t in procs.values() {
            for pid in t.keys() {
                reg.processes.insert(*pid, src.comm(*pid).to_string());
            }
        }
        for t in cgs.values() {
            for id in t.keys() {
                if let Some(c) = src.cgroup(*id) {
                    reg.cgroups.insert(*id, c);
                }
            }
        }
    });
    let mut out = Attribution::default();
    let mut memcg: HashMap<u64, Option<u64>> = HashMap::new();
    let mut memcg_of = |id: u64| *memcg.entry(id).or_insert_with(|| src.memcg_sock(id));
    for (g, row) in groups.iter_mut() {
        let p = procs.remove(g).unwrap_or_default();
        let c = cgs.remove(g).unwrap_or_default();
        let main_pid = main_of(&p);
        let main_cg = main_of(&c);
        out.event_owner.insert(
            *g,
            EventOwner {
                pid: main_pid,
                comm: main_pid.and_then(comm),
                cgroup: main_cg.and_then(cgroup),
                cgroup_id: main_cg,
                via: OwnerVia::Group,
            },
        );
        match by {
            GroupBy::Port => {}
            GroupBy::Process => {
                out.group_owner.insert(
                    *g,
                    owner_key(GROUP_PROCESS, main_pid.unwrap_or(0) as u64, g.netns),
                );
            }
            GroupBy::Cgroup => {
                out.group_owner
                    .insert(*g, owner_key(GROUP_CGROUP, main_cg.unwrap_or(0), g.netns));
            }
        }
        let mut o = Owners {
            unheld: unheld.get(g).copied().unwrap_or(0),
            ..Default::default()
        };
        let mut pv: Vec<_> = p.into_iter().collect();
        pv.sort_by(|a, b| (b.1.bytes, b.1.sockets, a.0).cmp(&(a.1.bytes, a.1.sockets, b.0)));
        o.more_processes = pv.len().saturating_sub(MAX_SHOWN) as u64;
        o.processes = pv
            .into_iter()
            .take(MAX_SHOWN)
            .map(|(pid, t)| ProcessShare {
                pid,
                comm: src.comm(pid).to_string(),
                sockets: t.sockets,
                bytes: t.bytes,
            })
            .collect();
        let mut cv: Vec<_> = c.into_iter().collect();
        cv.sort_by(|a, b| (b.1.bytes, b.1.sockets, a.0).cmp(&(a.1.bytes, a.1.sockets, b.0)));
        o.more_cgroups = cv.len().saturating_sub(MAX_SHOWN) as u64;
        o.cgroups = cv
            .into_iter()
            .take(MAX_SHOWN)
            .filter_map(|(id, t)| {
                Some(CgroupShare {
                    cgroup: src.cgroup(id)?,
                    sockets: t.sockets,
                    bytes: t.bytes,
                    memcg_sock: memcg_of(id),
                })
            })
            .collect();
        row.owners = Some(Box::new(o));
    }
    if by == GroupBy::Port {
        return out;
    }
    // Owner groups, socket by socket: a socket goes to its own owner when
    // it has one, else to its port group's main owner.
    let mut shares: HashMap<GroupKey, (BTreeMap<u32, Tally>, BTreeMap<u64, Tally>)> =
        HashMap::new();
    for (r, g) in sockets {
        let fallback = out.group_owner.get(g).copied();
        let own = match by {
            GroupBy::Process => src
                .holders(r.inode)
                .first()
                .map(|pid| owner_key(GROUP_PROCESS, *pid as u64, g.netns)),
            _ => (r.cgroup_id != 0 && src.cgroup(r.cgroup_id).is_some())
                .then(|| owner_key(GROUP_CGROUP, r.cgroup_id, g.netns)),
        };
        let Some(k) = own.or(fallback) else { continue };
        out.owner_mem.entry(k).or_default().add(r);
        let (p, c) = shares.entry(k).or_default();
        let b = bytes_of(r);
        for pid in src.holders(r.inode) {
            let t = p.entry(*pid).or_default();
            t.sockets += 1;
            t.bytes += b;
        }
        if r.cgroup_id != 0 {
            let t = c.entry(r.cgroup_id).or_default();
            t.sockets += 1;
            t.bytes += b;
        }
    }
    for (k, (p, c)) in shares {
        let mut o = Owners::default();
        let mut pv: Vec<_> = p.into_iter().collect();
        pv.sort_by(|a, b| (b.1.bytes, a.0).cmp(&(a.1.bytes, b.0)));
        o.more_processes = pv.len().saturating_sub(MAX_SHOWN) as u64;
        o.processes = pv
            .into_iter()
            .take(MAX_SHOWN)
            .map(|(pid, t)| ProcessShare {
                pid,
                comm: src.comm(pid).to_string(),
                sockets: t.sockets,
                bytes: t.bytes,
            })
            .collect();
        let mut cv: Vec<_> = c.into_iter().collect();
        cv.sort_by(|a, b| (b.1.bytes, a.0).cmp(&(a.1.bytes, b.0)));
        o.more_cgroups = cv.len().saturating_sub(MAX_SHOWN) as u64;
        o.cgroups = cv
            .into_iter()
            .take(MAX_SHOWN)
            .filter_map(|(id, t)| {
                Some(CgroupShare {
                    cgroup: src.cgroup(id)?,
                    sockets: t.sockets,
                    bytes: t.bytes,
                    memcg_sock: memcg_of(id),
                })
            })
            .collect();
        out.owner_rows.insert(k, o);
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
        GroupBy::Port => g,
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
        GroupBy::Port => return groups,
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
