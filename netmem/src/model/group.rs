//! Groups: charges sockets and events to `listen:PORT` / `backend:ADDR:PORT`
//! with the one rule in [`GroupKey::classify`], names them, sums each
//! group's memory and counts, and filters them (`--port`, `--backend`).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, Result};
use netmem_common::{
    Counter, GroupCounters, GroupKey, AF_INET6, GROUP_BACKEND, GROUP_LISTEN, TCP_LISTEN,
    TCP_NEW_SYN_RECV, TCP_TIME_WAIT,
};

use crate::sources::sockdiag::SockRecord;

pub fn ip_bytes(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

pub fn ip_from(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// `10.0.0.2:9001` or `[::1]:9001`.
pub fn endpoint(ip: &IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

pub fn group_name(g: &GroupKey) -> String {
    match g.kind {
        GROUP_LISTEN => format!("listen:{}", g.port),
        GROUP_BACKEND => format!("backend:{}", endpoint(&ip_from(g.family, &g.addr), g.port)),
        _ => "unattributed".to_string(),
    }
}

pub fn group_kind(g: &GroupKey) -> &'static str {
    match g.kind {
        GROUP_LISTEN => "listen",
        GROUP_BACKEND => "backend",
        _ => "unattributed",
    }
}

/// Classifies a sock_diag record.
pub fn group_of(rec: &SockRecord, listening: &HashSet<u16>) -> GroupKey {
    GroupKey::classify(
        rec.family,
        rec.lport,
        listening.contains(&rec.lport),
        &ip_bytes(&rec.remote),
        rec.rport,
    )
}

/// An orphan as sock_diag shows it: no inode (no file refers to it any
/// more) yet still a full socket, i.e. not a TIME_WAIT or request mini-socket.
pub fn is_orphan(rec: &SockRecord) -> bool {
    rec.inode == 0
        && rec.state != TCP_TIME_WAIT
        && rec.state != TCP_NEW_SYN_RECV
        && rec.state != TCP_LISTEN
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
}

impl GroupMem {
    pub fn total(&self) -> u64 {
        self.rmem + self.wmem_queued + self.fwd_alloc
    }
}

/// A group's row: memory from sock_diag plus event counts from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRow {
    pub mem: GroupMem,
    pub counts: [u64; Counter::COUNT],
}

impl GroupRow {
    pub fn count(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }
}

#[derive(Default)]
pub struct Aggregator {
    pub groups: BTreeMap<GroupKey, GroupRow>,
    /// When Some, every orphan of the pass with its group (for the
    /// polling tier of the orphan hook).
    pub orphan_records: Option<Vec<(SockRecord, GroupKey)>>,
}

impl Aggregator {
    pub fn add_socket(&mut self, rec: &SockRecord, listening: &HashSet<u16>) {
        let g = group_of(rec, listening);
        if is_orphan(rec) {
            if let Some(v) = self.orphan_records.as_mut() {
                v.push((rec.clone(), g));
            }
        }
        let row = self.groups.entry(g).or_default();
        let m = &mut row.mem;
        match rec.state {
            TCP_LISTEN => m.listeners += 1,
            TCP_TIME_WAIT => m.time_wait += 1,
            _ => m.sockets += 1,
        }
        m.rmem += rec.rmem_alloc as u64;
        m.wmem_queued += rec.wmem_queued as u64;
        m.fwd_alloc += rec.fwd_alloc as u64;
        m.drops += rec.drops as u64;
        if is_orphan(rec) {
            m.orphans += 1;
            m.orphan_bytes += rec.rmem_alloc as u64 + rec.wmem_queued as u64;
        }
    }

    /// One sock_diag pass: the listening sockets first, so every other
    /// socket can be charged to its group as the dump streams.
    /// `others`: which non-listening states. Returns the listening ports.
    pub fn collect(
        &mut self,
        netns: &crate::sources::netns::Netns,
        others: crate::sources::sockdiag::States,
    ) -> anyhow::Result<HashSet<u16>> {
        use crate::sources::sockdiag::{dump_tcp, States};
        let mut listening = HashSet::new();
        let mut listeners = Vec::new();
        dump_tcp(netns, States::Listening, |r| {
            listening.insert(r.lport);
            listeners.push(r.clone());
        })?;
        for r in &listeners {
            self.add_socket(r, &listening);
        }
        dump_tcp(netns, others, |r| self.add_socket(r, &listening))?;
        Ok(listening)
    }

    pub fn add_counts(&mut self, g: GroupKey, counts: &GroupCounters) {
        let row = self.groups.entry(g).or_default();
        for (a, b) in row.counts.iter_mut().zip(counts.counts.iter()) {
            *a += b;
        }
    }

    /// Rows sorted by memory held, largest first; ties by name.
    pub fn sorted(&self, filter: &Filter) -> Vec<(GroupKey, GroupRow)> {
        let mut v: Vec<_> = self
            .groups
            .iter()
            .filter(|(k, _)| filter.accepts(k))
            .map(|(k, r)| (*k, r.clone()))
            .collect();
        v.sort_by(|a, b| {
            b.1.mem
                .total()
                .cmp(&a.1.mem.total())
                .then(
                    b.1.counts
                        .iter()
                        .sum::<u64>()
                        .cmp(&a.1.counts.iter().sum::<u64>()),
                )
                .then(a.0.cmp(&b.0))
        });
        v
    }
}

/// Difference of two cumulative per-group counter snapshots (kernel
/// counters only grow; a group missing from `prev` started at zero).
pub fn counter_delta(now: &GroupCounters, prev: Option<&GroupCounters>) -> GroupCounters {
    let mut d = *now;
    if let Some(p) = prev {
        for (a, b) in d.counts.iter_mut().zip(p.counts.iter()) {
            *a = a.saturating_sub(*b);
        }
    }
    d
}

/// `--port` and `--backend`: with none given every group is shown.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub ports: Vec<u16>,
    pub backends: Vec<(IpAddr, u16)>,
}

impl Filter {
    pub fn accepts(&self, g: &GroupKey) -> bool {
        if self.ports.is_empty() && self.backends.is_empty() {
            return true;
        }
        match g.kind {
            GROUP_LISTEN => self.ports.contains(&g.port),
            GROUP_BACKEND => {
                let ip = ip_from(g.family, &g.addr);
                self.backends
                    .iter()
                    .any(|(a, p)| *p == g.port && normalize(a) == ip)
            }
            _ => false,
        }
    }
}

fn normalize(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
        v4 => *v4,
    }
}

/// Parses `--backend` values: `10.0.0.2:9001` or `[::1]:9001`.
pub fn parse_backend(s: &str) -> Result<(IpAddr, u16)> {
    let sa: std::net::SocketAddr = s.parse().map_err(|_| {
        anyhow!("invalid backend {s:?}: expected ADDR:PORT such as 10.0.0.2:9001 or [::1]:9001")
    })?;
    Ok((sa.ip(), sa.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{AF_INET, TCP_ESTABLISHED, TCP_FIN_WAIT1};

    fn rec(
        lport: u16,
        remote: &str,
        rport: u16,
        state: u8,
        inode: u32,
        w: u32,
        r: u32,
    ) -> SockRecord {
        let remote: IpAddr = remote.parse().unwrap();
        SockRecord {
            family: if remote.is_ipv4() { AF_INET } else { AF_INET6 },
            state,
            local: "127.0.0.1".parse().unwrap(),
            lport,
            remote,
            rport,
            inode,
            cookie: rport as u64,
            rmem_alloc: r,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 10,
            wmem_queued: w,
            drops: 1,
        }
    }

    #[test]
    fn frontend_and_backend_sides_of_one_connection() {
        let listening: HashSet<u16> = [8080].into();
        let mut agg = Aggregator::default();
        // accepted socket on the proxy's frontend
        agg.add_socket(
            &rec(8080, "127.0.0.1", 40000, TCP_ESTABLISHED, 7, 1000, 0),
            &listening,
        );
        // the proxy's connection to a backend
        agg.add_socket(
            &rec(41000, "10.0.0.2", 9001, TCP_ESTABLISHED, 8, 0, 500),
            &listening,
        );
        agg.add_socket(&rec(8080, "0.0.0.0", 0, TCP_LISTEN, 9, 0, 0), &listening);
        let names: Vec<String> = agg
            .sorted(&Filter::default())
            .iter()
            .map(|(k, _)| group_name(k))
            .collect();
        assert_eq!(names, vec!["listen:8080", "backend:10.0.0.2:9001"]);
        let l = &agg.groups[&group_of(
            &rec(8080, "1.1.1.1", 1, TCP_ESTABLISHED, 1, 0, 0),
            &listening,
        )]
            .mem;
        assert_eq!(
            (l.sockets, l.listeners, l.wmem_queued, l.fwd_alloc, l.drops),
            (1, 1, 1000, 20, 2)
        );
    }

    #[test]
    fn orphans_and_their_bytes() {
        let listening: HashSet<u16> = [80].into();
        let mut agg = Aggregator::default();
        agg.add_socket(
            &rec(80, "127.0.0.2", 5000, TCP_FIN_WAIT1, 0, 3000, 100),
            &listening,
        );
        agg.add_socket(
            &rec(80, "127.0.0.2", 5001, TCP_TIME_WAIT, 0, 0, 0),
            &listening,
        );
        agg.add_socket(
            &rec(80, "127.0.0.2", 5002, TCP_ESTABLISHED, 44, 7, 0),
            &listening,
        );
        let m = &agg.groups.values().next().unwrap().mem;
        assert_eq!(
            (m.orphans, m.orphan_bytes, m.sockets, m.time_wait),
            (1, 3100, 2, 1)
        );
    }

    #[test]
    fn ipv6_backend_name_and_filter() {
        let listening = HashSet::new();
        let g = group_of(
            &rec(40000, "::1", 9001, TCP_ESTABLISHED, 1, 0, 0),
            &listening,
        );
        assert_eq!(group_name(&g), "backend:[::1]:9001");
        let f = Filter {
            ports: vec![],
            backends: vec![parse_backend("[::1]:9001").unwrap()],
        };
        assert!(f.accepts(&g));
        let f = Filter {
            ports: vec![9001],
            backends: vec![],
        };
        assert!(!f.accepts(&g));
    }

    #[test]
    fn v4_mapped_backend_filter() {
        let g = group_of(
            &rec(40000, "::ffff:10.0.0.2", 9001, TCP_ESTABLISHED, 1, 0, 0),
            &HashSet::new(),
        );
        assert_eq!(group_name(&g), "backend:10.0.0.2:9001");
        let f = Filter {
            ports: vec![],
            backends: vec![parse_backend("[::ffff:10.0.0.2]:9001").unwrap()],
        };
        assert!(f.accepts(&g));
    }

    #[test]
    fn bad_backend_is_explained() {
        let e = parse_backend("10.0.0.2").unwrap_err().to_string();
        assert!(e.contains("ADDR:PORT"), "{e}");
    }

    #[test]
    fn deltas_of_cumulative_counters() {
        let mut a = GroupCounters::default();
        a.counts[2] = 10;
        let mut b = a;
        b.counts[2] = 25;
        assert_eq!(counter_delta(&b, Some(&a)).counts[2], 15);
        assert_eq!(counter_delta(&b, None).counts[2], 25);
    }

    #[test]
    fn sorted_by_memory() {
        let listening: HashSet<u16> = [1, 2].into();
        let mut agg = Aggregator::default();
        agg.add_socket(
            &rec(1, "127.0.0.9", 9, TCP_ESTABLISHED, 1, 10, 0),
            &listening,
        );
        agg.add_socket(
            &rec(2, "127.0.0.9", 9, TCP_ESTABLISHED, 1, 5000, 0),
            &listening,
        );
        let names: Vec<String> = agg
            .sorted(&Filter::default())
            .iter()
            .map(|(k, _)| group_name(k))
            .collect();
        assert_eq!(names, vec!["listen:2", "listen:1"]);
    }
}
