//! Groups: charges sockets and events to `listen:PORT` / `backend:ADDR:PORT`
//! with the one rule in [`GroupKey::classify`] and sums each group's
//! memory and counts. Their names are [`super::names::Names::group_name`]'s.

use std::collections::{BTreeMap, HashSet};

use netmem_common::{
    GroupCounters, GroupKey, GROUP_BACKEND, GROUP_CGROUP, GROUP_LISTEN, GROUP_PROCESS,
    GROUP_PROXY_BACKEND, TCP_LISTEN,
};

use super::types::SockRecord;

pub use super::key::{endpoint, ip_bytes, ip_from};

pub fn group_kind(g: &GroupKey) -> &'static str {
    match g.kind {
        GROUP_LISTEN => "listen",
        GROUP_BACKEND => "backend",
        GROUP_PROCESS => "process",
        GROUP_CGROUP => "cgroup",
        GROUP_PROXY_BACKEND => "proxy-backend",
        _ => "unattributed",
    }
}

pub use super::filter::{parse_backend, Filter};
pub use super::row::{is_orphan, GroupMem, GroupRow};

/// Classifies a sock_diag record.
pub fn group_of(rec: &SockRecord, listening: &HashSet<u16>) -> GroupKey {
    GroupKey::classify(
        rec.family,
        rec.lport,
        listening.contains(&rec.lport),
        &ip_bytes(&rec.remote),
        rec.rport,
    )
    .in_netns(rec.netns)
}

#[derive(Default)]
pub struct Aggregator {
    pub groups: BTreeMap<GroupKey, GroupRow>,
    /// When Some, every orphan of the pass with its group (for the
    /// polling tier of the orphan hook).
    pub orphan_records: Option<Vec<(SockRecord, GroupKey)>>,
    /// Listening ports that still had sockets of their own (accepted
    /// connections, orphans) in the pass.
    pub listen_ports_in_use: HashSet<u16>,
    /// When Some, every socket of the pass with its group, for the owners.
    pub sockets: Option<Vec<(SockRecord, GroupKey)>>,
    /// Who owns the groups, when asked (see [`super::owner`]).
    pub attribution: Option<super::owner::Attribution>,
    /// Set when the groups' sockets and memory come from an earlier census
    /// (see `sources::census`): how old they are.
    pub census_age: Option<std::time::Duration>,
    /// Each namespace's TCP counters as the pass read them (namespace
    /// inode, every counter by name), for [`super::netns::NetnsFigures`].
    pub netns_counters: Vec<(u32, std::collections::BTreeMap<String, u64>)>,
    /// The same, with their growth since the previous pass: what the
    /// interval reports.
    pub netns: Vec<super::netns::NetnsFigures>,
}

impl Aggregator {
    /// One group's sums from the in-kernel census (its key already in its
    /// namespace). Returns whether the group has a TCP listener: the
    /// kernel's walk found its port listening.
    pub fn add_census(&mut self, g: GroupKey, mem: GroupMem) -> bool {
        let listening = g.kind == GROUP_LISTEN && mem.listeners > 0;
        // As add_socket: a listen group with any socket but its listeners.
        if g.kind == GROUP_LISTEN && mem.sockets + mem.time_wait > 0 {
            self.listen_ports_in_use.insert(g.port);
        }
        self.groups.entry(g).or_default().mem.absorb(&mem);
        listening
    }

    pub fn add_socket(&mut self, rec: &SockRecord, listening: &HashSet<u16>) {
        let g = group_of(rec, listening);
        if g.kind == GROUP_LISTEN && rec.state != TCP_LISTEN {
            self.listen_ports_in_use.insert(rec.lport);
        }
        if is_orphan(rec) {
            if let Some(v) = self.orphan_records.as_mut() {
                v.push((rec.clone(), g));
            }
        }
        if let Some(v) = self.sockets.as_mut() {
            v.push((rec.clone(), g));
        }
        self.groups.entry(g).or_default().mem.add(rec);
    }

    /// Takes in another pass's aggregate (another namespace's).
    pub fn merge(&mut self, o: Aggregator) {
        for (k, r) in o.groups {
            let row = self.groups.entry(k).or_default();
            row.mem.absorb(&r.mem);
            for (a, b) in row.counts.iter_mut().zip(r.counts.iter()) {
                *a += b;
            }
        }
        if let (Some(a), Some(b)) = (self.orphan_records.as_mut(), o.orphan_records) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (self.sockets.as_mut(), o.sockets) {
            a.extend(b);
        }
        self.listen_ports_in_use.extend(o.listen_ports_in_use);
        self.netns_counters.extend(o.netns_counters);
    }

    pub fn add_counts(&mut self, g: GroupKey, counts: &GroupCounters) {
        let row = self.groups.entry(g).or_default();
        for (a, b) in row.counts.iter_mut().zip(counts.counts.iter()) {
            *a += b;
        }
    }

    /// Names the groups after the proxies in front (counts added, so the
    /// kernel's groups the pass did not see are named too), then
    /// regroups them. Called once, when the pass's counts are in.
    pub fn finish(
        &mut self,
        by: super::owner::GroupBy,
        filter: &Filter,
        proxies: &[std::sync::Arc<super::proxy::ProxyView>],
        names: &super::names::Names,
    ) {
        super::proxy::name_groups(&mut self.groups, proxies);
        self.regroup(by, filter, names);
    }

    /// With `--group-by process|cgroup`, the port groups (counts added)
    /// become owner groups; with `proxy-backend`, a backend's servers one
    /// group (its key from `names`).
    pub fn regroup(
        &mut self,
        by: super::owner::GroupBy,
        filter: &Filter,
        names: &super::names::Names,
    ) {
        if by == super::owner::GroupBy::ProxyBackend {
            let groups = std::mem::take(&mut self.groups);
            self.groups = super::proxy::regroup(groups, filter, names);
        } else if let Some(a) = &self.attribution {
            let groups = std::mem::take(&mut self.groups);
            self.groups = super::owner::regroup(groups, a, by);
        }
    }

    /// Rows sorted by memory held, largest first; ties by name. Empty
    /// groups only with `--all`, or when asked for by `--port`/`--backend`.
    /// Consumes the pass: the rows move instead of being copied, which on a
    /// busy host halves the interval's transient memory.
    pub fn into_sorted(self, filter: &Filter) -> Vec<(GroupKey, GroupRow)> {
        let named = !filter.ports.is_empty() || !filter.backends.is_empty();
        let mut v: Vec<_> = self
            .groups
            .into_iter()
            .filter(|(k, r)| filter.accepts(k) && (filter.all || named || !r.is_empty()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{
        AF_INET, AF_INET6, IPPROTO_TCP, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
        TCP_LAST_ACK, TCP_TIME_WAIT,
    };
    use std::net::IpAddr;

    fn group_name(k: &GroupKey) -> String {
        crate::model::names::Names::default().group_name(k)
    }

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
            protocol: IPPROTO_TCP,
            full: state != TCP_TIME_WAIT,
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
            cgroup_id: 0,
            netns: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 0,
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
        let l = &agg.groups[&group_of(
            &rec(8080, "1.1.1.1", 1, TCP_ESTABLISHED, 1, 0, 0),
            &listening,
        )]
            .mem;
        assert_eq!(
            (l.sockets, l.listeners, l.wmem_queued, l.fwd_alloc, l.drops),
            (1, 1, 1000, 20, 2)
        );
        let names: Vec<String> = agg
            .into_sorted(&Filter::default())
            .iter()
            .map(|(k, _)| group_name(k))
            .collect();
        assert_eq!(names, vec!["listen:8080", "backend:10.0.0.2:9001"]);
    }

    #[test]
    fn accept_queue_children_are_not_orphans() {
        use netmem_common::{TCP_CLOSE_WAIT, TCP_SYN_RECV};
        for st in [TCP_ESTABLISHED, TCP_SYN_RECV, TCP_CLOSE_WAIT] {
            assert!(
                !is_orphan(&rec(80, "127.0.0.2", 5000, st, 0, 3000, 100)),
                "{st}"
            );
        }
        for st in [TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSING, TCP_LAST_ACK] {
            assert!(
                is_orphan(&rec(80, "127.0.0.2", 5000, st, 0, 3000, 100)),
                "{st}"
            );
        }
        // A TIME_WAIT socket in its FIN_WAIT2 substate: no SK_MEMINFO.
        let mut tw = rec(80, "127.0.0.2", 5000, TCP_FIN_WAIT2, 0, 0, 0);
        tw.full = false;
        assert!(!is_orphan(&tw));
        // UDP sockets are never orphans.
        let mut udp = rec(5353, "0.0.0.0", 0, 7, 0, 0, 0);
        udp.protocol = netmem_common::IPPROTO_UDP;
        assert!(!is_orphan(&udp));
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
    fn deltas_of_cumulative_counters() {
        let mut a = GroupCounters::default();
        a.counts[2] = 10;
        let mut b = a;
        b.counts[2] = 25;
        assert_eq!(counter_delta(&b, Some(&a)).counts[2], 15);
        assert_eq!(counter_delta(&b, None).counts[2], 25);
    }

    #[test]
    fn empty_groups_only_when_asked() {
        let listening: HashSet<u16> = [1, 2].into();
        let mut agg = Aggregator::default();
        let bare = |port| SockRecord {
            fwd_alloc: 0,
            drops: 0,
            ..rec(port, "0.0.0.0", 0, TCP_LISTEN, 1, 0, 0)
        };
        agg.add_socket(&bare(1), &listening);
        agg.add_socket(&bare(2), &listening);
        agg.add_socket(
            &rec(2, "127.0.0.9", 9, TCP_ESTABLISHED, 1, 10, 0),
            &listening,
        );
        let names = |f: &Filter| -> Vec<String> {
            let pass = Aggregator {
                groups: agg.groups.clone(),
                ..Default::default()
            };
            pass.into_sorted(f)
                .iter()
                .map(|(k, _)| group_name(k))
                .collect()
        };
        assert_eq!(names(&Filter::default()), vec!["listen:2"]);
        let all = Filter {
            all: true,
            ..Default::default()
        };
        assert_eq!(names(&all), vec!["listen:2", "listen:1"]);
        let one = Filter {
            ports: vec![1],
            ..Default::default()
        };
        assert_eq!(names(&one), vec!["listen:1"]);
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
            .into_sorted(&Filter::default())
            .iter()
            .map(|(k, _)| group_name(k))
            .collect();
        assert_eq!(names, vec!["listen:2", "listen:1"]);
    }
}
