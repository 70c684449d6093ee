//! What the doctor's window keeps of the cgroups' memory controllers: the
//! figures a cgroup group's line or an owners' cgroup share carries
//! (`contract::MemcgFields`), per cgroup, with the intervals in which the
//! model's rule (`model::memcg::local_pressure`) held for it. Bounded
//! like the rest of the window: at most [`MAX_CGROUPS`] cgroups.

use std::collections::BTreeMap;

use crate::contract::{CgroupFields, MemcgFields};
use crate::model::memcg::{local_pressure, EffectiveLimit, HostTcp, Local, Memcg, MemcgEvents};
use crate::sources::recording::{cut_name, MAX_NAME};

/// Cgroups kept; the ones past it are not judged (a host with more
/// cgroups owning shown groups than this is not one the doctor names one
/// by one).
pub const MAX_CGROUPS: usize = 256;

/// One cgroup over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupMem {
    pub pod: Option<String>,
    pub container: Option<String>,
    /// Its figures in the last interval that carried them.
    pub last: Memcg,
    /// `memory.events` as first seen, for the window's increase; and the
    /// limit's cgroup's, with its path then.
    pub first_events: MemcgEvents,
    pub first_limit_events: Option<(String, MemcgEvents)>,
    /// Intervals in which its sockets were under pressure of their own.
    pub local_intervals: u64,
    /// The first such interval's findings, and the one nearest its limit.
    pub first_local: Option<Local>,
    pub worst_local: Option<Local>,
    /// The group lines it owned (its own group's name with `--group-by
    /// cgroup`, else the port groups it holds a share of), at most a few.
    pub groups: Vec<String>,
    /// The interval whose figures `last` holds (to judge once per
    /// interval, and against the interval before).
    interval: u64,
    before: Option<Memcg>,
}

/// Groups named per cgroup at most.
const MAX_GROUPS_NAMED: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct CgroupWindow {
    pub cgroups: BTreeMap<String, CgroupMem>,
}

/// The contract's figures back into the model's record.
pub fn memcg_of(f: &MemcgFields, sock: Option<u64>) -> Memcg {
    Memcg {
        sock,
        current: f.memory_current_bytes,
        max: f.memory_max_bytes.flatten(),
        high: f.memory_high_bytes.flatten(),
        events: MemcgEvents {
            high: f.memory_events_high,
            max: f.memory_events_max,
            oom: f.memory_events_oom,
            oom_kill: f.memory_events_oom_kill,
            sock_throttled: f.memory_events_sock_throttled,
        },
        limit: match (
            f.memory_limit_bytes,
            f.memory_limit_current_bytes,
            &f.memory_limit_cgroup,
        ) {
            (Some(max), Some(current), Some(c)) => Some(EffectiveLimit {
                max,
                current,
                cgroup: cut_name(c, MAX_NAME).into_owned(),
                events: MemcgEvents {
                    max: f.memory_limit_events_max,
                    high: f.memory_limit_events_high,
                    ..Default::default()
                },
            }),
            _ => None,
        },
        tcp_kmem: None,
    }
}

impl CgroupWindow {
    /// One cgroup's figures as a line carried them, in interval
    /// `interval`, for group `group`; `host` is the TCP memory of that
    /// interval's context line.
    pub fn feed(
        &mut self,
        cg: &CgroupFields,
        f: &MemcgFields,
        sock: Option<u64>,
        group: &str,
        interval: u64,
        host: Option<HostTcp>,
    ) {
        let Some(Some(path)) = &cg.cgroup else {
            return;
        };
        if *f == MemcgFields::default() && sock.is_none() {
            return;
        }
        let path = cut_name(path, MAX_NAME);
        if !self.cgroups.contains_key(&*path) && self.cgroups.len() >= MAX_CGROUPS {
            return;
        }
        let c = self.cgroups.entry(path.into_owned()).or_default();
        if c.groups.len() < MAX_GROUPS_NAMED && !c.groups.iter().any(|g| g == group) {
            c.groups.push(cut_name(group, MAX_NAME).into_owned());
        }
        if c.interval == interval && c.interval != 0 {
            // Already judged in this interval (another group's share).
            return;
        }
        let now = memcg_of(f, sock);
        if c.interval == 0 {
            c.first_events = now.events.clone();
        }
        if c.first_limit_events.is_none() {
            c.first_limit_events = now
                .limit
                .as_ref()
                .map(|l| (l.cgroup.clone(), l.events.clone()));
        }
        c.before = (c.interval != 0).then(|| std::mem::take(&mut c.last));
        c.interval = interval;
        c.pod = cg
            .pod
            .clone()
            .flatten()
            .map(|p| cut_name(&p, MAX_NAME).into_owned());
        c.container = cg
            .container
            .clone()
            .flatten()
            .map(|p| cut_name(&p, MAX_NAME).into_owned());
        if let Some(l) = local_pressure(&now, c.before.as_ref(), host) {
            c.local_intervals += 1;
            if c.first_local.is_none() {
                c.first_local = Some(l.clone());
            }
            if c.worst_local
                .as_ref()
                .is_none_or(|w| l.limit.ratio() > w.limit.ratio())
            {
                c.worst_local = Some(l);
            }
        }
        c.last = now;
    }
}

impl CgroupMem {
    /// How much a `memory.events` counter rose over the window.
    pub fn events_increase(&self) -> MemcgEvents {
        increase(&self.last.events, &self.first_events)
    }

    /// The same for the limit's cgroup, when it is another one and set
    /// the limit all along: its path and its increase.
    pub fn limit_events_increase(&self) -> Option<(&str, MemcgEvents)> {
        let (path, first) = self.first_limit_events.as_ref()?;
        let now = self.last.limit.as_ref()?;
        (now.cgroup == *path).then(|| (path.as_str(), increase(&now.events, first)))
    }
}

fn increase(n: &MemcgEvents, f: &MemcgEvents) -> MemcgEvents {
    let d = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b.unwrap_or(0)));
    MemcgEvents {
        high: d(n.high, f.high),
        max: d(n.max, f.max),
        oom: d(n.oom, f.oom),
        oom_kill: d(n.oom_kill, f.oom_kill),
        sock_throttled: d(n.sock_throttled, f.sock_throttled),
    }
}
