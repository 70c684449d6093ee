//! The plain records the sources read and the model's rules work on: a
//! socket as sock_diag reports it, a cgroup, the kernel's global context,
//! and what is known of who holds which socket. Data only: filling them is
//! the sources' job (`sources::sockdiag`, `sources::procfs`,
//! `sources::owners`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

/// One socket as sock_diag reports it. Memory figures are those of `ss -m`
/// (r, t, f, w, d) and are zero where the kernel sent none (TIME_WAIT,
/// NEW_SYN_RECV).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockRecord {
    pub family: u8,
    /// IPPROTO_TCP or IPPROTO_UDP
    pub protocol: u8,
    /// A full socket: the kernel sent its SK_MEMINFO. TIME_WAIT and
    /// NEW_SYN_RECV mini-sockets have none, and a TIME_WAIT socket in its
    /// FIN_WAIT2 substate is reported as FIN_WAIT2, so this tells them apart.
    pub full: bool,
    pub state: u8,
    pub local: IpAddr,
    pub lport: u16,
    pub remote: IpAddr,
    pub rport: u16,
    pub inode: u32,
    /// The kernel's socket cookie: stable identity across dumps.
    pub cookie: u64,
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    pub wmem_queued: u32,
    pub drops: u32,
    /// The cgroup v2 the socket was created in (INET_DIAG_CGROUP_ID,
    /// Linux 5.8+): set at socket(), inherited by accepted sockets from
    /// their listener, not moved when the process migrates. 0: not sent
    /// (older kernel, or a TIME_WAIT / SYN_RECV mini-socket).
    pub cgroup_id: u64,
    /// The network namespace the socket was dumped from (its inode).
    pub netns: u32,
    /// The socket's owner (inet_diag's `idiag_uid`: the creator's fsuid):
    /// `check` believes a listener on serve's port only if it is root's or
    /// its own.
    pub uid: u32,
    /// inet_diag's `idiag_rqueue`: for a listener, its accept queue
    /// (connections completed and not yet accepted, `sk_ack_backlog`);
    /// otherwise bytes not yet read (TCP) or queued (UDP).
    pub rqueue: u32,
    /// inet_diag's `idiag_wqueue`: for a listener, its backlog (the
    /// accept queue's limit, `sk_max_ack_backlog`: listen()'s argument
    /// capped at `net.core.somaxconn`); otherwise bytes not yet acked.
    pub wqueue: u32,
}

/// One cgroup v2, named by its path under the cgroup2 mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    /// `/system.slice/haproxy.service`; `/` for the root.
    pub path: String,
    /// The container id the path carries (docker, containerd, CRI-O,
    /// podman), shortened to 12 hex digits as `docker ps` shows it.
    pub container: Option<String>,
    /// The Kubernetes pod UID the path carries.
    pub pod: Option<String>,
}

/// Global TCP memory context, once per interval and per snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// net.ipv4.tcp_mem: min, pressure, max (pages); global, so read from
    /// the initial namespace when netmem runs in another one
    pub tcp_mem_pages: Option<[u64; 3]>,
    /// TCP memory the kernel has charged (pages), sockstat's `mem`
    pub memory_allocated_pages: u64,
    /// The kernel's orphan count (sockstat `orphan`): global, and read
    /// before the census, so under churn it may be below the groups' sum.
    pub orphans: u64,
    /// The census' orphans: every group's of the same pass (sock_diag,
    /// before any filter), so never below the sum of the groups shown.
    /// None where no census ran.
    pub orphans_census: Option<u64>,
    /// The census tier that read the groups (`bpf_iter`, `sock_diag`);
    /// None where no census ran.
    pub census: Option<&'static str>,
    pub max_orphans: Option<u64>,
    /// IPv4 TCP sockets in use (sockstat `TCP: inuse`), per namespace
    pub sockets_inuse: u64,
    /// IPv6 TCP sockets in use (sockstat6 `TCP6: inuse`), per namespace
    pub tcp6_inuse: u64,
    pub tw: u64,
    pub page_size: u64,
    /// UDP sockets in use, IPv4 and IPv6 (sockstat `UDP`, sockstat6 `UDP6`)
    pub udp_inuse: u64,
    /// UDP memory the kernel has charged (pages), sockstat's `UDP: mem`
    pub udp_memory_allocated_pages: u64,
    /// net.ipv4.udp_mem: min, pressure, max (pages); global
    pub udp_mem_pages: Option<[u64; 3]>,
}

/// What the sources know of who holds which socket: socket inode to the
/// processes with a descriptor on it, pid to its name, cgroup id to its
/// path. Filled by `sources::owners::OwnerSource` (which keeps it between
/// passes as a cache), read by the one owner rule in `model::owner`.
#[derive(Clone, Debug, Default)]
pub struct OwnerTable {
    /// socket inode -> processes holding it (sorted, deduplicated)
    pub by_inode: HashMap<u32, Vec<u32>>,
    pub comm: HashMap<u32, String>,
    pub cgroups: HashMap<u64, Arc<Cgroup>>,
}

impl OwnerTable {
    /// A table that already knows its answers, for tests: (socket inode,
    /// holders), (pid, comm), (cgroup id, path).
    pub fn known(
        holders: &[(u32, &[u32])],
        comms: &[(u32, &str)],
        cgroups: &[(u64, &str)],
    ) -> OwnerTable {
        OwnerTable {
            by_inode: holders.iter().map(|(i, p)| (*i, p.to_vec())).collect(),
            comm: comms.iter().map(|(p, c)| (*p, c.to_string())).collect(),
            cgroups: cgroups
                .iter()
                .map(|(id, path)| (*id, Arc::new(Cgroup::at(*id, path.to_string()))))
                .collect(),
        }
    }

    /// The processes holding socket `inode`, lowest pid first.
    pub fn holders(&self, inode: u32) -> &[u32] {
        self.by_inode.get(&inode).map_or(&[], |v| v.as_slice())
    }

    pub fn comm(&self, pid: u32) -> &str {
        self.comm.get(&pid).map_or("?", |s| s.as_str())
    }

    pub fn cgroup(&self, id: u64) -> Option<Arc<Cgroup>> {
        self.cgroups.get(&id).cloned()
    }
}

impl Cgroup {
    /// The cgroup `id` at `path`, with the container and pod ids the path
    /// carries.
    pub fn at(id: u64, path: String) -> Cgroup {
        let (container, pod) = container_of(&path);
        Cgroup {
            id,
            path,
            container,
            pod,
        }
    }
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container id and pod UID a cgroup path carries, for the layouts of
/// the systemd and cgroupfs drivers of docker, containerd, CRI-O, podman
/// and the kubelet:
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID>.slice/cri-containerd-<ID>.scope`,
/// `/kubepods/burstable/pod<UID>/<ID>`, `/system.slice/docker-<ID>.scope`,
/// `/docker/<ID>`, `/machine.slice/libpod-<ID>.scope`.
pub fn container_of(path: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for seg in path.split('/') {
        let base = seg
            .strip_suffix(".scope")
            .or_else(|| seg.strip_suffix(".slice"))
            .unwrap_or(seg);
        let id = base.rsplit_once('-').map_or(base, |(_, id)| id);
        if is_hex_id(id) {
            container = Some(id[..12].to_string());
        }
        if let Some(at) = base.rfind("pod") {
            let uid = base[at + 3..].replace('_', "-");
            let looks_like_uid = uid.len() == 36
                && uid.bytes().filter(|b| *b == b'-').count() == 4
                && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
            if looks_like_uid {
                pod = Some(uid);
            }
        }
    }
    (container, pod)
}

// A cgroup's memory controller, as `sources::memcg` reads it (the rule
// that judges it is `memcg.rs`).

/// `memory.events`' counters (cumulative since the cgroup was made).
/// `sock_throttled` exists from Linux 6.19 on; older kernels do not
/// write it and it stays None.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemcgEvents {
    pub high: Option<u64>,
    pub max: Option<u64>,
    pub oom: Option<u64>,
    pub oom_kill: Option<u64>,
    pub sock_throttled: Option<u64>,
}

impl MemcgEvents {
    /// The counters by the name `memory.events` gives them.
    pub fn named(&self) -> [(&'static str, Option<u64>); 5] {
        [
            ("high", self.high),
            ("max", self.max),
            ("oom", self.oom),
            ("oom_kill", self.oom_kill),
            ("sock_throttled", self.sock_throttled),
        ]
    }

    /// Whether a counter that says the cgroup was pushed back (`max`,
    /// `high`, `sock_throttled`) rose since `before`. A counter that went
    /// down (the cgroup was made again under the same path) says nothing.
    pub fn pushed_back_since(&self, before: &MemcgEvents) -> bool {
        let rose = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if a > b);
        rose(self.max, before.max)
            || rose(self.high, before.high)
            || rose(self.sock_throttled, before.sock_throttled)
    }
}

/// The limit that applies to a cgroup: among it and its ancestors, the
/// one with a `memory.max` and the least room left under it (a charge
/// fails at the first counter on the way up that is full, so the tightest
/// is the one that pushes back first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveLimit {
    /// That cgroup's `memory.max`, bytes.
    pub max: u64,
    /// That cgroup's `memory.current`, bytes.
    pub current: u64,
    /// Its path under the cgroup2 mount: the cgroup itself or an
    /// ancestor (a pod's slice).
    pub cgroup: String,
    /// That cgroup's `memory.events`: a charge pushed back by an
    /// ancestor's limit is counted there (and above), not in the
    /// descendant whose socket asked.
    pub events: MemcgEvents,
}

impl EffectiveLimit {
    /// current / max, 0 for a limit of 0 (nothing can be charged: a
    /// ratio would be infinite, and the events tell the rest).
    pub fn ratio(&self) -> f64 {
        if self.max == 0 {
            return 0.0;
        }
        self.current as f64 / self.max as f64
    }
}

/// cgroup v1's TCP accounting (`memory.kmem.tcp.*`, bytes), where the v1
/// memory controller is mounted: a separate counter and limit for TCP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpKmem {
    /// None: no limit (the kernel writes a huge number for "unlimited").
    pub limit: Option<u64>,
    pub usage: Option<u64>,
    pub failcnt: Option<u64>,
}

/// One cgroup's memory controller, read once per pass. Every figure is
/// None when its file is absent or unreadable (no memory controller
/// there, a cgroup gone meanwhile, a file that is not a number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memcg {
    /// `memory.stat` `sock`: socket buffers charged to it, bytes.
    pub sock: Option<u64>,
    /// `memory.current`, bytes.
    pub current: Option<u64>,
    /// `memory.max`, bytes; None for `max` (no limit of its own).
    pub max: Option<u64>,
    /// `memory.high`, bytes; None for `max`.
    pub high: Option<u64>,
    pub events: MemcgEvents,
    /// The limit that applies (its own or an ancestor's); None when no
    /// cgroup on the way up has one.
    pub limit: Option<EffectiveLimit>,
    /// cgroup v1's TCP accounting, on a v1 or hybrid host.
    pub tcp_kmem: Option<TcpKmem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_and_pod_ids_from_paths() {
        let id = "4f1c0c2b3f5a9d0e8b7c6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f";
        let uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let sd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        );
        assert_eq!(
            container_of(&sd),
            (Some(id[..12].to_string()), Some(uid.to_string()))
        );
        let fs = format!("/kubepods/burstable/pod{uid}/{id}");
        assert_eq!(
            container_of(&fs),
            (Some(id[..12].to_string()), Some(uid.to_string()))
        );
        for p in [
            format!("/system.slice/docker-{id}.scope"),
            format!("/docker/{id}"),
            format!("/machine.slice/libpod-{id}.scope"),
            format!("/system.slice/crio-{id}.scope"),
        ] {
            assert_eq!(container_of(&p), (Some(id[..12].to_string()), None), "{p}");
        }
        assert_eq!(container_of("/system.slice/haproxy.service"), (None, None));
        assert_eq!(container_of("/"), (None, None));
    }
}
