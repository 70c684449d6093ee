//! What the doctor knows of a stretch of time, accumulated from the JSON
//! lines contract itself: a recording (`--from`), a live watch and a single
//! reading all go through [`Window::feed`], so anything `trace --json`
//! recorded is diagnosed exactly as it would have been live.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::contract::{ContextLine, EventLine, GroupLine, Line, NetnsLine, ProxyFields};
use crate::model::proxy::{GroupProxy, Side, SideTune};
use crate::sources::host::Host;
use crate::sources::recording::{
    cut_name, CappedNames, MAX_ABORTS, MAX_DSTS, MAX_GROUPS, MAX_KINDS, MAX_NAME, MAX_PROXY_BYTES,
    OTHER,
};

/// Namespaces whose counters a window keeps (a node with more pods than
/// this has its first ones diagnosed).
pub const MAX_NAMESPACES: usize = 1024;

/// One group's figures: now (the last interval) and at peak.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupFigures {
    pub kind: String,
    pub sockets: u64,
    pub orphans: u64,
    pub orphan_bytes: u64,
    /// rmem + wmem_queued + fwd_alloc, bytes
    pub memory: u64,
    pub peak_memory: u64,
    pub peak_orphans: u64,
    pub peak_orphan_bytes: u64,
    /// Counters summed over the window, by JSON name.
    pub counts: BTreeMap<String, u64>,
    /// Now: receive and send queue bytes (rmem, wmem_queued).
    pub rmem: u64,
    pub wmem: u64,
    /// What the proxy in front calls it, with its buffer settings.
    pub proxy: Option<GroupProxy>,
    /// Its listeners' accept queues, when it has any.
    pub accept: Option<AcceptFigures>,
}

/// A listen group's accept queues over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AcceptFigures {
    pub listeners: u64,
    /// Now: queued, and the backlog (summed over its listeners).
    pub queue: u64,
    pub backlog: u64,
    /// The fullest reading: queued and backlog then.
    pub peak_queue: u64,
    pub peak_backlog: u64,
    /// Readings in which a listener's queue was full.
    pub full_readings: u64,
    /// Its listeners' drops (`listen_drops`) grew by this much over the
    /// window, and were this at the last reading.
    pub drops_grew: u64,
    pub drops: Option<u64>,
}

impl AcceptFigures {
    /// How full the fullest reading was, 1.0 at the backlog.
    pub fn peak_fill(&self) -> f64 {
        self.peak_queue as f64 / self.peak_backlog.max(1) as f64
    }
}

/// A namespace's counters over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetnsWindow {
    pub inode: Option<u64>,
    /// What each counter grew by, summed over the window's readings.
    pub grew: BTreeMap<String, u64>,
    /// The last reading's totals.
    pub totals: BTreeMap<String, u64>,
    /// Its `net.core.somaxconn`, as last read.
    pub somaxconn: Option<u64>,
    /// Readings seen: the first is a baseline (its growth is since a
    /// reading before the window).
    pub readings: u64,
}

/// A group line's proxy fields (see `output::json::lines`), each name at
/// most [`MAX_NAME`] bytes. `kind`: the group line's.
pub fn group_proxy(p: &ProxyFields, kind: Option<&str>) -> Option<GroupProxy> {
    let strings = |l: &Option<Vec<String>>| -> Vec<String> {
        l.iter()
            .flatten()
            .map(|s| cut_name(s, MAX_NAME).into_owned())
            .collect()
    };
    let side = match p.proxy_side.as_deref()? {
        "client" => Side::Client,
        _ => Side::Server,
    };
    let t = p.proxy_tune.clone().unwrap_or_default();
    Some(GroupProxy {
        kind: crate::sources::proxy::kinds::by_name(p.proxy.as_deref()?)
            .map_or("proxy", |k| k.name),
        side,
        frontends: strings(&p.proxy_frontends),
        servers: strings(&p.proxy_servers)
            .into_iter()
            .filter_map(|p| {
                let (b, s) = p.split_once('/')?;
                Some((b.to_string(), s.to_string()))
            })
            .collect(),
        summed: kind == Some("proxy-backend"),
        bufsize: t.bufsize,
        tune: SideTune {
            rcvbuf: t.rcvbuf,
            sndbuf: t.sndbuf,
            known: t.from_configuration.unwrap_or(true),
        },
    })
}

/// An abort on memory with the figures that fired it.
#[derive(Clone, Debug, PartialEq)]
pub struct AbortSeen {
    pub group: String,
    pub cause: String,
    pub orphans: Option<u64>,
    pub max_orphans: Option<u64>,
    pub shift: Option<u64>,
    pub allocated_pages: Option<u64>,
    pub tcp_mem_max: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Window {
    pub host: Option<Host>,
    /// Intervals (context lines) seen; 1 for a single reading.
    pub intervals: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub tcp_mem_pages: Option<[u64; 3]>,
    /// tcp_mem as it was when allocation peaked (a limit can change
    /// during a window; the one in effect at the peak is the one that
    /// mattered).
    pub tcp_mem_at_peak: Option<[u64; 3]>,
    /// The kernel's TCP memory (sockstat `mem`, every namespace), now and
    /// at peak.
    pub allocated_pages: u64,
    pub peak_allocated_pages: u64,
    /// The kernel's orphan count (sockstat, every namespace: what
    /// tcp_check_oom compares), now and at peak. Read at another moment
    /// than the census, so under churn it may be below the groups' sum.
    pub orphans: u64,
    pub peak_orphans: u64,
    /// The census' orphans (sock_diag, the same pass as the groups; the
    /// context line's `orphans_census`, or the groups' sum for a recording
    /// without it), now and at peak: never below the sum of the groups'
    /// orphans of the same interval.
    pub census_orphans: u64,
    pub peak_census_orphans: u64,
    /// What the groups of the last interval hold, bytes (census).
    pub census_memory: u64,
    /// The groups' orphans summed over the interval under way.
    group_orphans: u64,
    pub max_orphans: Option<u64>,
    pub page_size: u64,
    pub under_pressure: bool,
    pub pressure_entered: u64,
    pub pressure_time: Duration,
    /// At most [`MAX_GROUPS`] by name, the rest summed into `other`.
    pub groups: BTreeMap<String, GroupFigures>,
    /// The first [`MAX_ABORTS`] aborts on memory, and the first of each
    /// cause after them, with their figures; `abort_counts` counts them
    /// all.
    pub aborts: Vec<AbortSeen>,
    /// (cause, group) → aborts on memory
    pub abort_counts: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// (group, reason) → memory drops
    pub drops: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// (group, direction) → buffer limit exceeded
    pub exceeded: BTreeMap<(Arc<str>, Arc<str>), u64>,
    pub route_exceptions_inserted: u64,
    pub route_exception_dsts: BTreeMap<String, u64>,
    pub rt6_cached: Option<u64>,
    /// Each namespace's counters, by name (at most [`MAX_NAMESPACES`]).
    pub netns: BTreeMap<String, NetnsWindow>,
    pub lost_events: u64,
    /// The memory controllers of the cgroups that own groups.
    pub cgroups: super::cgroups::CgroupWindow,
    /// What the window holds of what it is fed is bounded whatever the
    /// input (a recording from anyone, hours of `top`): names in length
    /// and number, kinds, destinations, aborts' figures, proxy names.
    names: CappedNames<MAX_GROUPS>,
    kinds: CappedNames<MAX_KINDS>,
    dsts: CappedNames<MAX_DSTS>,
    abort_causes: std::collections::BTreeSet<Arc<str>>,
    proxy_bytes: usize,
    proxies_dropped: u64,
}

/// Bytes a group's proxy names take in memory.
fn proxy_size(p: &GroupProxy) -> usize {
    std::mem::size_of::<GroupProxy>()
        + p.frontends
            .iter()
            .map(|f| std::mem::size_of::<String>() + f.len())
            .sum::<usize>()
        + p.servers
            .iter()
            .map(|(b, s)| 2 * std::mem::size_of::<String>() + b.len() + s.len())
            .sum::<usize>()
}

impl Window {
    /// One line of the contract.
    pub fn feed(&mut self, line: &Line) {
        match line {
            Line::Host(h) => self.host = h.host.clone(),
            Line::Context(c) => self.context(c),
            Line::Group(g) => self.group(g),
            Line::Netns(n) => self.netns(n),
            Line::Event(e) => self.event(e),
            Line::Summary(s) => self.lost_events = s.lost_events.unwrap_or(self.lost_events),
            // probes, proxy, doctor and finding lines carry no figures.
            _ => {}
        }
    }

    fn context(&mut self, v: &ContextLine) {
        self.intervals += 1;
        if self.first_ts.is_none() {
            self.first_ts = v.ts.clone();
        }
        self.last_ts = v.ts.clone();
        let tcp_mem = v.tcp_mem_pages.as_ref().and_then(|p| p.triple());
        self.tcp_mem_pages = tcp_mem.or(self.tcp_mem_pages);
        self.allocated_pages = v.memory_allocated_pages.unwrap_or(0);
        if self.allocated_pages >= self.peak_allocated_pages || self.tcp_mem_at_peak.is_none() {
            self.peak_allocated_pages = self.allocated_pages;
            self.tcp_mem_at_peak = tcp_mem.or(self.tcp_mem_at_peak);
        }
        self.orphans = v.orphans.unwrap_or(0);
        self.peak_orphans = self.peak_orphans.max(self.orphans);
        self.census_orphans = v.orphans_census.unwrap_or(0);
        self.peak_census_orphans = self.peak_census_orphans.max(self.census_orphans);
        self.census_memory = 0;
        self.group_orphans = 0;
        self.max_orphans = v.max_orphans.or(self.max_orphans);
        self.page_size = v.page_size.unwrap_or(4096);
        self.under_pressure = v.memory_pressure.unwrap_or(false);
        self.lost_events = v.lost_events.unwrap_or(self.lost_events);
        let r = v.route_exceptions.clone().unwrap_or_default();
        self.route_exceptions_inserted = self
            .route_exceptions_inserted
            .saturating_add(r.inserted.unwrap_or(0));
        for d in r.by_dst.iter().flatten() {
            let (Some(dst), Some(n)) = (&d.dst, d.count) else {
                continue;
            };
            let dst = self.dsts.get(dst);
            match self.route_exception_dsts.get_mut(&*dst) {
                Some(c) => *c = c.saturating_add(n),
                None => {
                    self.route_exception_dsts.insert(dst.to_string(), n);
                }
            }
        }
        self.rt6_cached = r.rt6_cached.or(self.rt6_cached);
        // A new interval: "now" figures start again.
        for g in self.groups.values_mut() {
            g.sockets = 0;
            g.orphans = 0;
            g.orphan_bytes = 0;
            g.memory = 0;
        }
    }

    fn netns(&mut self, v: &NetnsLine) {
        let Some(name) = v.netns.netns.as_deref() else {
            return;
        };
        let name = cut_name(name, MAX_NAME);
        if !self.netns.contains_key(&*name) && self.netns.len() >= MAX_NAMESPACES {
            return;
        }
        let n = self.netns.entry(name.into_owned()).or_default();
        n.inode = v.netns.netns_inode.or(n.inode);
        n.somaxconn = v.somaxconn.or(n.somaxconn);
        n.readings += 1;
        let known = |k: &String| crate::model::netns::counter(k).is_some();
        // The window's first reading of a namespace is where it starts,
        // as a group's first reading is: what grew before it is not the
        // window's.
        let first = n.readings == 1;
        for (k, d) in v.delta.iter().flatten().filter(|(k, _)| known(k) && !first) {
            let g = n.grew.entry(k.clone()).or_default();
            *g = g.saturating_add(*d);
        }
        n.totals = v
            .counters
            .iter()
            .flatten()
            .filter(|(k, _)| known(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
    }

    /// What counter `name` grew by in every namespace read, summed.
    pub fn netns_grew(&self, name: &str) -> u64 {
        self.netns
            .values()
            .filter_map(|n| n.grew.get(name))
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    fn group(&mut self, v: &GroupLine) {
        let Some(name) = &v.group else {
            return;
        };
        self.cgroup_figures(v, name);
        let name = self.names.get(name);
        let folded = self.names.is_other(&name);
        if !self.groups.contains_key(&*name) {
            self.groups
                .insert(name.to_string(), GroupFigures::default());
        }
        let Some(g) = self.groups.get_mut(&*name) else {
            return;
        };
        let n = |f: Option<u64>| f.unwrap_or(0);
        let memory = v.memory();
        if folded {
            // Every group past the cap, summed: its figures of this
            // interval add up.
            g.kind = OTHER.to_string();
            g.sockets = g.sockets.saturating_add(n(v.sockets));
            g.orphans = g.orphans.saturating_add(n(v.orphans));
            g.orphan_bytes = g.orphan_bytes.saturating_add(n(v.orphan_bytes));
            g.rmem = g.rmem.saturating_add(n(v.rmem_bytes));
            g.wmem = g.wmem.saturating_add(n(v.wmem_queued_bytes));
            g.memory = g.memory.saturating_add(memory);
        } else {
            g.kind = cut_name(v.kind.as_deref().unwrap_or(""), MAX_NAME).into_owned();
            g.sockets = n(v.sockets);
            g.orphans = n(v.orphans);
            g.orphan_bytes = n(v.orphan_bytes);
            g.rmem = n(v.rmem_bytes);
            g.wmem = n(v.wmem_queued_bytes);
            g.memory = memory;
            if let Some(p) = group_proxy(&v.proxy, v.kind.as_deref()) {
                let old = g.proxy.as_ref().map_or(0, proxy_size);
                let new = proxy_size(&p);
                if self.proxy_bytes - old + new <= MAX_PROXY_BYTES {
                    self.proxy_bytes = self.proxy_bytes - old + new;
                    g.proxy = Some(p);
                } else {
                    self.proxies_dropped += 1;
                }
            }
        }
        if let (false, Some(listeners)) = (folded, v.listeners.filter(|n| *n > 0)) {
            let a = g.accept.get_or_insert_with(Default::default);
            a.listeners = listeners;
            a.queue = n(v.accept_queue);
            a.backlog = n(v.accept_backlog);
            let fill = |q: u64, b: u64| q as f64 / b.max(1) as f64;
            if a.peak_backlog == 0 || fill(a.queue, a.backlog) > fill(a.peak_queue, a.peak_backlog)
            {
                (a.peak_queue, a.peak_backlog) = (a.queue, a.backlog);
            }
            a.full_readings += (n(v.accept_full) > 0) as u64;
            if let Some(d) = v.listen_drops {
                // A listener replaced starts again from 0: what it counts
                // then is growth too.
                let grew = match a.drops {
                    Some(before) if d >= before => d - before,
                    Some(_) => d,
                    None => 0,
                };
                a.drops_grew = a.drops_grew.saturating_add(grew);
                a.drops = Some(d);
            }
        }
        g.peak_memory = g.peak_memory.max(g.memory);
        // A part never exceeds its whole: the census total of this
        // interval is at least what its groups hold.
        self.census_memory = self.census_memory.saturating_add(memory);
        self.group_orphans = self.group_orphans.saturating_add(n(v.orphans));
        self.census_orphans = self.census_orphans.max(self.group_orphans);
        self.peak_census_orphans = self.peak_census_orphans.max(self.census_orphans);
        g.peak_orphans = g.peak_orphans.max(g.orphans);
        g.peak_orphan_bytes = g.peak_orphan_bytes.max(g.orphan_bytes);
        for c in netmem_common::Counter::ALL {
            if let Some(n) = v.counts.get(*c) {
                let count = g.counts.entry(c.name().to_string()).or_default();
                *count = count.saturating_add(n);
            }
        }
    }

    /// The cgroups' memory controllers a group line carries: its own
    /// (`--group-by cgroup`) and its owners' cgroup shares.
    fn cgroup_figures(&mut self, v: &GroupLine, name: &str) {
        let host = self
            .tcp_mem_pages
            .map(|tcp_mem_pages| crate::model::memcg::HostTcp {
                allocated_pages: self.allocated_pages,
                tcp_mem_pages,
            });
        let at = self.intervals;
        self.cgroups.feed(
            &v.cgroup,
            &v.memcg,
            v.memcg_sock_bytes.flatten(),
            name,
            at,
            host,
        );
        for c in v.owners.iter().flat_map(|o| o.cgroups.iter().flatten()) {
            self.cgroups
                .feed(&c.cgroup, &c.memcg, c.memcg_sock_bytes, name, at, host);
        }
    }

    fn event(&mut self, v: &EventLine) {
        let mut group = || self.names.get(v.group.as_deref().unwrap_or("unattributed"));
        let mut kind = |k: &Option<String>, or: &str| self.kinds.get(k.as_deref().unwrap_or(or));
        let b = &v.body;
        let figure = |f: &Option<Option<crate::contract::lax::Int>>| f.flatten()?.u64();
        match v.event.as_deref() {
            Some("abort_on_memory") => {
                let group = group();
                let cause = kind(&b.cause, "unknown");
                let first_of_cause = self.abort_causes.insert(cause.clone());
                *self
                    .abort_counts
                    .entry((cause.clone(), group.clone()))
                    .or_default() += 1;
                // The rules cite the first abort of each cause.
                if self.aborts.len() < MAX_ABORTS || first_of_cause {
                    self.aborts.push(AbortSeen {
                        group: group.to_string(),
                        cause: cause.to_string(),
                        orphans: figure(&b.orphans),
                        max_orphans: figure(&b.max_orphans),
                        shift: figure(&b.shift),
                        allocated_pages: b.allocated_pages.and_then(|n| n.u64()),
                        tcp_mem_max: b
                            .tcp_mem_pages
                            .as_ref()
                            .and_then(|p| p.triple())
                            .map(|m| m[2]),
                    })
                }
            }
            Some("skb_drop") => {
                let reason = kind(&b.reason, "?");
                *self.drops.entry((group(), reason)).or_default() += 1;
            }
            Some("exceed_buf_limit") => {
                let dir = kind(&b.direction, "?");
                *self.exceeded.entry((group(), dir)).or_default() += 1;
            }
            Some("memory_pressure_enter") => self.pressure_entered += 1,
            Some("memory_pressure_leave") => {
                // A duration no clock gives (negative, NaN, past u64
                // seconds) adds nothing.
                if let Some(d) = b
                    .duration_ms
                    .flatten()
                    .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
                {
                    self.pressure_time = self.pressure_time.saturating_add(d);
                }
            }
            _ => {}
        }
    }

    /// `n` events of a kind counted elsewhere (a Prometheus counter's
    /// growth), without their figures: `abort_on_memory` by cause,
    /// `skb_drop` by reason, `exceed_buf_limit` by direction (`label`).
    /// The same maps and caps as events read one by one.
    pub fn count_events(&mut self, event: &str, group: &str, label: &str, n: u64) {
        if n == 0 {
            return;
        }
        let group = self.names.get(group);
        let label = self.kinds.get(label);
        let map = match event {
            "abort_on_memory" => {
                if self.abort_causes.insert(label.clone()) || self.aborts.len() < MAX_ABORTS {
                    self.aborts.push(AbortSeen {
                        group: group.to_string(),
                        cause: label.to_string(),
                        orphans: None,
                        max_orphans: None,
                        shift: None,
                        allocated_pages: None,
                        tcp_mem_max: None,
                    });
                }
                let c = self.abort_counts.entry((label, group)).or_default();
                *c = c.saturating_add(n);
                return;
            }
            "skb_drop" => &mut self.drops,
            "exceed_buf_limit" => &mut self.exceeded,
            _ => return,
        };
        let c = map.entry((group, label)).or_default();
        *c = c.saturating_add(n);
    }

    /// A line built as JSON, read as a recording's is (one that is not
    /// a line of the contract is ignored, as a recording's would be).
    pub fn feed_value(&mut self, v: serde_json::Value) {
        if let Some(l) = Line::read(v) {
            self.feed(&l);
        }
    }

    /// A test's line, read as a recording's is.
    #[cfg(test)]
    pub fn feed_json(&mut self, v: serde_json::Value) {
        self.feed(&Line::read(v).expect("a line of the contract"));
    }

    /// Aborts on memory whose cause passes `f`, every one (held or not).
    pub fn aborts_where(&self, f: impl Fn(&str) -> bool) -> u64 {
        self.abort_counts
            .iter()
            .filter(|((c, _), _)| f(c))
            .map(|(_, n)| n)
            .sum()
    }

    /// What the window did not keep of what it was fed, one sentence
    /// each; none for anything of ordinary size.
    pub fn dropped(&self) -> Vec<String> {
        let mut w = self.names.dropped("group", "groups");
        w.extend(self.kinds.dropped(
            "event kind, abort cause or drop reason",
            "event kinds, abort causes and drop reasons",
        ));
        w.extend(self.dsts.dropped(
            "route exception destination",
            "route exception destinations",
        ));
        if self.proxies_dropped > 0 {
            w.push(format!(
                "proxy names were not kept for {} (more than {} of them)",
                crate::format::count(self.proxies_dropped, "group line", "group lines"),
                crate::format::human_bytes(MAX_PROXY_BYTES as u64)
            ));
        }
        w
    }

    /// A group as people know it: `backend app, server app3
    /// (backend:10.0.3.17:9001)` when a proxy names it, else its name.
    pub fn label(&self, name: &str) -> String {
        match self.groups.get(name).and_then(|g| g.proxy.as_ref()) {
            Some(p) => format!("{} ({name})", p.describe()),
            None => name.to_string(),
        }
    }

    /// Groups with a nonzero `key`, largest first (ties by name).
    fn top_by(&self, key: fn(&GroupFigures) -> u64) -> Vec<(&String, &GroupFigures)> {
        let mut v: Vec<_> = self.groups.iter().filter(|(_, g)| key(g) > 0).collect();
        v.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then(a.0.cmp(b.0)));
        v
    }

    /// Groups by memory held now, largest first.
    pub fn top_memory(&self) -> Vec<(&String, &GroupFigures)> {
        self.top_by(|g| g.memory)
    }

    /// Groups by memory at their own peak, most first: who held the
    /// memory when it mattered, in a recording that ends after the load
    /// was gone.
    pub fn top_peak_memory(&self) -> Vec<(&String, &GroupFigures)> {
        self.top_by(|g| g.peak_memory)
    }

    /// Groups by orphans at peak, most first.
    pub fn top_orphans(&self) -> Vec<(&String, &GroupFigures)> {
        self.top_by(|g| g.peak_orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A window fed thousands of groups and aborts holds at most its caps,
    /// and still counts everything.
    #[test]
    fn the_window_holds_its_caps_and_counts_the_rest() {
        let mut w = Window::default();
        w.feed_json(json!({"type":"context","ts":"t"}));
        for i in 0..MAX_GROUPS + 10 {
            w.feed_json(json!({"type":"group","group":format!("g{i}"),"rmem_bytes":1,"orphans":2,"sockets":1}));
        }
        for i in 0..3 * MAX_ABORTS {
            let cause = if i == 2 * MAX_ABORTS {
                "tcp_mem"
            } else {
                "orphans"
            };
            w.feed_json(
                json!({"type":"event","event":"abort_on_memory","group":"g1","cause":cause}),
            );
        }
        w.feed_json(json!({"type":"event","event":"memory_pressure_leave","duration_ms":-5.0}));
        w.feed_json(json!({"type":"event","event":"memory_pressure_leave","duration_ms":1e300}));
        assert_eq!(w.groups.len(), MAX_GROUPS + 1);
        let other = &w.groups[OTHER];
        assert_eq!((other.sockets, other.memory, other.orphans), (10, 10, 20));
        assert_eq!(w.census_memory, MAX_GROUPS as u64 + 10);
        assert_eq!(w.census_orphans, 2 * (MAX_GROUPS as u64 + 10));
        assert_eq!(w.aborts.len(), MAX_ABORTS + 1);
        assert_eq!(w.aborts.last().unwrap().cause, "tcp_mem");
        assert_eq!(
            w.aborts_where(|c| c == "orphans"),
            3 * MAX_ABORTS as u64 - 1
        );
        assert_eq!(w.aborts_where(|_| true), 3 * MAX_ABORTS as u64);
        assert_eq!(w.pressure_time, Duration::ZERO);
        assert_eq!(
            w.dropped(),
            [format!(
                "10 groups past the first {MAX_GROUPS} were summed into \"other\""
            )]
        );
    }
}
