//! A cgroup's memory controller figures and the rule that says its
//! sockets are under pressure of their own.
//!
//! On cgroup v2 the kernel charges socket buffers to the socket's memory
//! cgroup (`mem_cgroup_charge_skmem`). When that cgroup, or an ancestor,
//! is at its `memory.max`, `mem_cgroup_under_socket_pressure` makes
//! `tcp_under_memory_pressure` true for its sockets alone: TCP shrinks
//! their windows and buffers although the host's `tcp_mem` is nowhere
//! near. The sources read the figures (`sources::memcg`); this file only
//! holds them and judges them.

use std::collections::HashMap;
use std::sync::Arc;

use netmem_common::GroupKey;

use super::row::GroupRow;

// The records themselves are plain data the sources fill: in
// `types.rs`, beneath the rows that carry them.
pub use super::types::{EffectiveLimit, Memcg, MemcgEvents, TcpKmem};

/// Near its limit from this share of it on.
pub const NEAR_LIMIT: f64 = 0.9;

/// The host's TCP memory, for the rule: what the kernel has charged and
/// `tcp_mem`, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTcp {
    pub allocated_pages: u64,
    pub tcp_mem_pages: [u64; 3],
}

impl HostTcp {
    /// Below `tcp_mem[1]`, where the host itself would start pressure.
    pub fn below_pressure(&self) -> bool {
        self.allocated_pages < self.tcp_mem_pages[1]
    }
}

/// Why a cgroup's sockets are under pressure of their own, when they are:
/// the cgroup holds socket memory, its effective limit is near (or the
/// kernel pushed it back since `before`, the figures of the pass before),
/// while the host's TCP memory is below `tcp_mem[1]`. None when it is
/// not, or when a figure the rule needs is unknown (no guessing).
pub fn local_pressure(m: &Memcg, before: Option<&Memcg>, host: Option<HostTcp>) -> Option<Local> {
    let host = host?;
    let sock = m.sock.filter(|s| *s > 0)?;
    let limit = m.limit.clone()?;
    // The limit's own cgroup counts the pushes back of its whole subtree;
    // compared only when the same cgroup set the limit before.
    let pushed_back = before.is_some_and(|b| {
        m.events.pushed_back_since(&b.events)
            || b.limit.as_ref().is_some_and(|bl| {
                bl.cgroup == limit.cgroup && limit.events.pushed_back_since(&bl.events)
            })
    });
    let near = limit.ratio() >= NEAR_LIMIT;
    if !(near || pushed_back) || !host.below_pressure() {
        return None;
    }
    Some(Local {
        sock,
        limit,
        pushed_back,
        host,
    })
}

/// What [`local_pressure`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    pub sock: u64,
    pub limit: EffectiveLimit,
    /// A `max`, `high` or `sock_throttled` event since the pass before.
    pub pushed_back: bool,
    pub host: HostTcp,
}

impl HostTcp {
    /// From an interval's context; None without tcp_mem.
    pub fn of(c: &super::types::Context) -> Option<HostTcp> {
        Some(HostTcp {
            allocated_pages: c.memory_allocated_pages,
            tcp_mem_pages: c.tcp_mem_pages?,
        })
    }
}

/// The rule over time, for a live run: which cgroups owning shown groups
/// are under local socket pressure in each interval, and which of them
/// began to be (for the event). Keeps only the cgroups of the last
/// interval, so it is as bounded as the groups shown.
#[derive(Clone, Debug, Default)]
pub struct PressureWatch {
    /// cgroup id → its figures last interval, and whether it was under
    /// local pressure then.
    last: HashMap<u64, (Arc<Memcg>, bool)>,
}

/// One cgroup under local pressure in an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct UnderPressure {
    pub cgroup: Arc<super::types::Cgroup>,
    pub memcg: Arc<Memcg>,
    pub local: Local,
    /// It was not in the interval before.
    pub began: bool,
    /// A group it holds a share of (the first met).
    pub group: GroupKey,
}

impl PressureWatch {
    /// The interval's cgroups (every share of every group shown), judged
    /// against the interval before.
    pub fn update(
        &mut self,
        groups: &[(GroupKey, GroupRow)],
        host: Option<HostTcp>,
    ) -> Vec<UnderPressure> {
        let mut now: HashMap<u64, (Arc<Memcg>, bool)> = HashMap::new();
        let mut out = Vec::new();
        for (g, row) in groups {
            for c in row.owners.iter().flat_map(|o| o.cgroups.iter()) {
                let Some(m) = &c.memcg else {
                    continue;
                };
                if now.contains_key(&c.cgroup.id) {
                    continue;
                }
                let before = self.last.get(&c.cgroup.id);
                let local = local_pressure(m, before.map(|b| &*b.0), host);
                now.insert(c.cgroup.id, (m.clone(), local.is_some()));
                if let Some(local) = local {
                    out.push(UnderPressure {
                        cgroup: c.cgroup.clone(),
                        memcg: m.clone(),
                        local,
                        began: !before.is_some_and(|b| b.1),
                        group: *g,
                    });
                }
            }
        }
        self.last = now;
        out
    }
}

impl UnderPressure {
    /// The event that says it began, at `ts`: its group the one it holds
    /// a share of, its owner the cgroup.
    pub fn event(&self, ts: std::time::SystemTime) -> super::Event {
        super::Event {
            ts,
            hook: None,
            tier: None,
            group: Some(self.group),
            sock: None,
            owner: Some(super::owner::EventOwner {
                pid: None,
                comm: None,
                cgroup: Some(self.cgroup.clone()),
                cgroup_id: Some(self.cgroup.id),
                via: super::owner::OwnerVia::Group,
            }),
            proxy: None,
            body: super::Body::CgroupSocketPressure {
                memcg: self.memcg.clone(),
                local: self.local.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memcg(sock: u64, current: u64, max: u64, ev_max: u64) -> Memcg {
        Memcg {
            sock: Some(sock),
            current: Some(current),
            max: Some(max),
            events: MemcgEvents {
                max: Some(ev_max),
                ..Default::default()
            },
            limit: Some(EffectiveLimit {
                max,
                current,
                cgroup: "/pod".into(),
                events: MemcgEvents {
                    max: Some(ev_max),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    const HOST: HostTcp = HostTcp {
        allocated_pages: 100,
        tcp_mem_pages: [1000, 2000, 3000],
    };

    #[test]
    fn near_the_limit_with_sockets_while_the_host_is_not() {
        let m = memcg(5 << 20, 29 << 20, 30 << 20, 0);
        let l = local_pressure(&m, None, Some(HOST)).unwrap();
        assert_eq!(l.sock, 5 << 20);
        assert!(!l.pushed_back);
        // The host under pressure itself: not local.
        let busy = HostTcp {
            allocated_pages: 2500,
            ..HOST
        };
        assert_eq!(local_pressure(&m, None, Some(busy)), None);
        // No socket memory: the cgroup's trouble is not its sockets'.
        assert_eq!(
            local_pressure(&memcg(0, 29 << 20, 30 << 20, 0), None, Some(HOST)),
            None
        );
        // Unknown host figures: nothing said.
        assert_eq!(local_pressure(&m, None, None), None);
    }

    #[test]
    fn pushed_back_counts_even_below_the_share() {
        let before = memcg(1 << 20, 10 << 20, 30 << 20, 4);
        let now = memcg(1 << 20, 12 << 20, 30 << 20, 9);
        assert!(
            local_pressure(&now, Some(&before), Some(HOST))
                .unwrap()
                .pushed_back
        );
        assert_eq!(local_pressure(&now, Some(&now), Some(HOST)), None);
        // A counter that went down (the cgroup made again) says nothing.
        assert_eq!(local_pressure(&before, Some(&now), Some(HOST)), None);
    }

    /// The watch says a cgroup began once, while it stays under pressure,
    /// and again after it left.
    #[test]
    fn the_watch_says_when_it_begins() {
        use crate::model::row::{CgroupShare, Owners};
        let cg = Arc::new(crate::model::types::Cgroup::at(5, "/pod".into()));
        let groups = |m: Memcg| {
            let row = GroupRow {
                owners: Some(Box::new(Owners {
                    cgroups: vec![CgroupShare {
                        cgroup: cg.clone(),
                        sockets: 1,
                        bytes: 1,
                        memcg_sock: m.sock,
                        memcg: Some(Arc::new(m)),
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            };
            vec![(GroupKey::default(), row)]
        };
        let mut w = PressureWatch::default();
        let began = |w: &mut PressureWatch, m: Memcg| -> Vec<bool> {
            w.update(&groups(m), Some(HOST))
                .iter()
                .map(|p| p.began)
                .collect()
        };
        let near = memcg(5 << 20, 29 << 20, 30 << 20, 0);
        let far = memcg(5 << 20, 10 << 20, 30 << 20, 0);
        assert_eq!(began(&mut w, near.clone()), [true]);
        assert_eq!(began(&mut w, near.clone()), [false]);
        assert_eq!(began(&mut w, far), Vec::<bool>::new());
        assert_eq!(began(&mut w, near), [true]);
    }

    #[test]
    fn a_zero_limit_has_no_ratio() {
        let l = EffectiveLimit {
            max: 0,
            current: 5,
            cgroup: "/".into(),
            events: MemcgEvents::default(),
        };
        assert_eq!(l.ratio(), 0.0);
    }
}
