//! The orphan hook's polling tier: orphans appearing and vanishing between
//! consecutive sock_diag dumps, by socket cookie.

use std::collections::HashMap;

use netmem_common::{payload, Event, GroupKey, OrphanSource};

use super::{raw_event, sock_info};
use crate::sources::sockdiag::SockRecord;

/// Orphans from consecutive sock_diag dumps, by socket cookie.
#[derive(Default)]
pub struct OrphanDiff {
    live: HashMap<u64, (GroupKey, u64, i64, u64)>,
    seen: HashMap<u64, (GroupKey, SockRecord)>,
    /// The first dump only learns what exists: those orphans were born
    /// before netmem looked, and their lifetimes are unknown.
    primed: bool,
}

impl OrphanDiff {
    /// Called for every orphan of the current dump.
    pub fn observe(&mut self, rec: &SockRecord, group: GroupKey) {
        self.seen.insert(rec.cookie, (group, rec.clone()));
    }

    /// Ends a dump taken at `now_ns`: orphans new since the last one are
    /// born, those that vanished are gone (lifetime known to one interval).
    pub fn finish(&mut self, now_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        let seen = std::mem::take(&mut self.seen);
        if !std::mem::replace(&mut self.primed, true) {
            self.live = seen
                .into_iter()
                .map(|(c, (g, r))| (c, (g, u64::MAX, r.wmem_queued as i64, r.cgroup_id)))
                .collect();
            return out;
        }
        let gone: Vec<u64> = self
            .live
            .keys()
            .filter(|c| !seen.contains_key(c))
            .copied()
            .collect();
        for c in gone {
            let (g, born, bytes, cgroup) = self.live.remove(&c).expect("listed");
            let p = payload::OrphanGone {
                lifetime_ns: if born == u64::MAX {
                    -1
                } else {
                    now_ns.saturating_sub(born) as i64
                },
                bytes_at_birth: bytes,
                owner_cgroup: cgroup as i64,
                ..Default::default()
            };
            out.push(raw_event(p, now_ns, g));
        }
        for (c, (g, rec)) in seen {
            if self.live.contains_key(&c) {
                continue;
            }
            let bytes = rec.wmem_queued as i64;
            self.live.insert(c, (g, now_ns, bytes, rec.cgroup_id));
            // No process owns an orphan any more; its cgroup is still the
            // socket's own (sock_diag reports it after close).
            let p = payload::OrphanBorn {
                bytes,
                source: OrphanSource::SockDiag as i64,
                owner_cgroup: rec.cgroup_id as i64,
                ..Default::default()
            };
            let mut e = raw_event(p, now_ns, g);
            e.sock = sock_info(&rec);
            out.push(e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{EventKind, AF_INET};

    #[test]
    fn births_and_deaths() {
        let rec = |cookie| SockRecord {
            family: AF_INET,
            protocol: netmem_common::IPPROTO_TCP,
            full: true,
            state: 4,
            local: "127.0.0.1".parse().unwrap(),
            lport: 80,
            remote: "127.0.0.1".parse().unwrap(),
            rport: 5000,
            inode: 0,
            cookie,
            rmem_alloc: 0,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 0,
            wmem_queued: 1000,
            drops: 0,
            cgroup_id: 0,
            netns: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 0,
        };
        let g = GroupKey::UNATTRIBUTED;
        let mut d = OrphanDiff::default();
        d.observe(&rec(9), g);
        assert!(d.finish(50).is_empty(), "the first dump only primes");
        d.observe(&rec(1), g);
        d.observe(&rec(2), g);
        let e = d.finish(100);
        // 9 vanished with an unknown lifetime; 1 and 2 were born.
        assert_eq!(e.len(), 3);
        let gone: payload::OrphanGone = e[0].payload().unwrap();
        assert_eq!(gone.lifetime_ns, -1);
        assert!(e[1..]
            .iter()
            .all(|e| e.kind == EventKind::OrphanBorn as u32));
        d.observe(&rec(2), g);
        let e = d.finish(350);
        assert_eq!(e.len(), 1);
        let gone: payload::OrphanGone = e[0].payload().unwrap();
        assert_eq!((gone.lifetime_ns, gone.bytes_at_birth), (250, 1000));
    }
}
