//! `netmem serve`'s output: the model, kept as Prometheus series.
//!
//! [`MetricsSink`] turns each interval (and the events between) into one
//! immutable [`Exposition`] and publishes it; scrapes only encode the latest
//! one ([`metrics`]) and never touch the kernel or sock_diag ([`http`]).
//!
//! Cardinality: at most `max_groups` groups keep a `group` label of their
//! own, the ones holding the most memory; the rest are summed into
//! `group="other"`. Counts wait for the interval's ranking and go to the
//! label their group gets then, so every series only grows and the sum over
//! groups misses nothing: a group that leaves the top hands what it counted
//! since the last publication to `other`, and its series end (they go stale
//! in Prometheus instead of piling up).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use netmem_common::{Counter, GroupKey};

use crate::hooks::HookStatus;
use crate::model::group::{group_kind, GroupMem, GroupRow};
use crate::model::names::Names;
use crate::model::{Body, Event, Interval};
use crate::output::Sink;
use crate::sources::procfs::Context;

mod cgroups;
pub mod http;
pub mod metrics;

pub use cgroups::CgroupSeries;

/// Where a group's counts go: its own label, or `other`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Slot {
    Group(GroupKey),
    Other,
}

/// The counts that have no event: taken from the kernel's per-group
/// counters. Every other count is of the events themselves, which every
/// tier produces (the polling tier has no kernel counters); what the ring
/// buffer lost is `netmem_events_lost_total`.
const WITHOUT_EVENTS: [Counter; 3] = [Counter::Established, Counter::Closed, Counter::Resets];

/// Cumulative counts of one exported label value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Indexed by [`Counter`].
    pub counts: [u64; Counter::COUNT],
    /// Aborts on memory by cause (from the events: the kernel counter has
    /// no cause).
    pub aborts: BTreeMap<&'static str, u64>,
    /// Buffer limit exceeded, by direction.
    pub exceeded: BTreeMap<&'static str, u64>,
    /// Memory drops, by the kernel's drop reason.
    pub drops: BTreeMap<String, u64>,
}

impl Totals {
    fn absorb(&mut self, o: &Totals) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        for (k, v) in &o.aborts {
            *self.aborts.entry(k).or_default() += v;
        }
        for (k, v) in &o.exceeded {
            *self.exceeded.entry(k).or_default() += v;
        }
        for (k, v) in &o.drops {
            *self.drops.entry(k.clone()).or_default() += v;
        }
    }

    pub fn count(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    /// Counts one event of a kind these totals keep; others are ignored.
    fn add(&mut self, body: &Body) {
        let counter = match body {
            Body::AbortOnMemory(a) => {
                *self.aborts.entry(a.cause.name()).or_default() += 1;
                Counter::MemAborts
            }
            Body::ExceedBufLimit { direction, .. } => {
                *self.exceeded.entry(direction.name()).or_default() += 1;
                Counter::ExceedBufLimit
            }
            Body::SkbDrop { reason, .. } => {
                if let Some(n) = self.drops.get_mut(reason) {
                    *n += 1;
                } else {
                    self.drops.insert(reason.clone(), 1);
                }
                Counter::SkbDrops
            }
            Body::RcvqueueFull { .. } => Counter::RcvqueueFull,
            Body::OrphanBorn { .. } => Counter::OrphansBorn,
            Body::OrphanGone { .. } => Counter::OrphansGone,
            Body::DestroyWithData { .. } => Counter::DestroyedWithData,
            _ => return,
        };
        self.counts[counter as usize] += 1;
    }
}

/// One exported group: `group` and `kind` label values, its memory now and
/// its counts so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSeries {
    pub group: String,
    pub kind: &'static str,
    pub mem: GroupMem,
    pub totals: Totals,
    /// `netmem_group_owner_info`'s labels, with `--owners`, `--group-by`
    /// or `--netns all`.
    pub owner: Option<OwnerLabels>,
    /// A cgroup group's `memory.stat` `sock`, for the cross-check.
    pub memcg_sock: Option<u64>,
    /// What the proxy in front calls it, and its buffer settings.
    pub proxy: Option<std::sync::Arc<crate::model::proxy::GroupProxy>>,
}

/// Who holds a group, as label values (empty when unknown): its largest
/// process and cgroup, and its namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerLabels {
    pub netns: String,
    pub process: String,
    pub pid: String,
    pub cgroup: String,
    pub container: String,
    pub pod: String,
}

impl OwnerLabels {
    fn of(
        g: &netmem_common::GroupKey,
        row: &crate::model::GroupRow,
        names: &Names,
    ) -> Option<OwnerLabels> {
        let all = names.all_namespaces();
        if row.owners.is_none() && !all {
            return None;
        }
        let mut l = OwnerLabels {
            netns: if all {
                names.netns_name(g.netns)
            } else {
                String::new()
            },
            ..Default::default()
        };
        if let Some(w) = &row.owners {
            if let Some(p) = w.processes.first() {
                l.process = p.comm.clone();
                l.pid = p.pid.to_string();
            }
            if let Some(c) = w.cgroups.first() {
                l.cgroup = c.cgroup.path.clone();
                l.container = c.cgroup.container.clone().unwrap_or_default();
                l.pod = c.cgroup.pod.clone().unwrap_or_default();
            }
        }
        Some(l)
    }
}

/// The global figures of the latest interval.
#[derive(Clone, Debug)]
pub struct Global {
    pub ts: SystemTime,
    pub context: Context,
    pub memory_pressure: bool,
    pub pressure_time: Duration,
    pub gather_time: Duration,
    /// Zero when the groups were read at this interval (`--census-budget`).
    pub census_age: Duration,
    /// Route exceptions inserted since netmem started, by family.
    pub routes_inserted: BTreeMap<&'static str, u64>,
    /// Cached routes (exceptions) per family, where a dump or
    /// /proc/net/rt6_stats says.
    pub routes_cached: BTreeMap<&'static str, u64>,
    pub lost_events: u64,
    pub events_suppressed: u64,
    pub group_map_full: u64,
    /// The groups' TIME_WAIT counts were taken (`--time-wait`).
    pub time_wait_counted: bool,
    /// Each namespace's counters, under its name.
    pub netns: Vec<NetnsSeries>,
}

/// A namespace's counters and the name its series carry.
#[derive(Clone, Debug)]
pub struct NetnsSeries {
    pub name: String,
    pub figures: crate::model::netns::NetnsFigures,
}

/// Everything one scrape shows, as of the latest interval. Immutable once
/// published.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    /// Bumped on every publication (a scrape's cache key).
    pub generation: u64,
    pub interval: Duration,
    /// (hook, its tier or "none")
    pub probes: Vec<(&'static str, &'static str)>,
    /// None until the first interval.
    pub global: Option<Global>,
    /// Largest first; `other` last when present.
    pub groups: Vec<GroupSeries>,
    /// Groups the interval had, and how many of them were folded.
    pub groups_seen: usize,
    pub groups_folded: usize,
    /// Events received so far, by kind.
    pub events: BTreeMap<&'static str, u64>,
    /// Every event counted so far, with a group or without: the host-wide
    /// series, which exist from the first publication on (so an alert's
    /// `increase()` sees the first abort of any group, even one born with
    /// it).
    pub host: Totals,
    /// When the last abort on memory of each cause was (the event's time),
    /// for a check over a window that serve's counters since its start
    /// cannot give (`netmem check --window`).
    pub last_abort: BTreeMap<&'static str, SystemTime>,
    /// The cgroups owning exported groups, with their memory controllers.
    pub cgroups: Vec<CgroupSeries>,
    /// The host line's facts (kernel, RAM, page size, the sysctls the
    /// doctor reads), as read when netmem started: what `doctor
    /// --prometheus` needs to judge a host it cannot log into.
    pub facts: Option<Arc<crate::sources::host::Host>>,
}

/// What the HTTP side reads: the latest exposition, and its own counters.
#[derive(Debug, Default)]
pub struct Shared {
    current: Mutex<Option<Arc<Exposition>>>,
    pub http: HttpStats,
    /// The flight recorder's incidents, when it runs (`/incidents`, and
    /// their metrics).
    pub incidents: std::sync::OnceLock<Arc<crate::output::incidents::Incidents>>,
    /// The live doctor's latest findings (the live page).
    pub live: Arc<crate::output::live::LiveFindings>,
}

impl Shared {
    /// The latest publication; None before the probes are attached.
    pub fn latest(&self) -> Option<Arc<Exposition>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, e: Exposition) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(e));
    }
}

/// The HTTP side's own figures, exported with the metrics: kept in
/// [`Shared`] beside the exposition, counted by [`http`] and encoded by
/// [`metrics`].
#[derive(Debug, Default)]
pub struct HttpStats {
    last_scrape_ns: AtomicU64,
    scrapes: AtomicU64,
    rejected: AtomicU64,
}

impl HttpStats {
    pub fn last_scrape_seconds(&self) -> f64 {
        self.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    /// A scrape is answered: counted before its own figures are encoded.
    fn scraped(&self) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
    }
    /// How long the scrape just answered took.
    fn took(&self, d: Duration) {
        self.last_scrape_ns
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The [`Sink`] behind `netmem serve`.
pub struct MetricsSink {
    shared: Arc<Shared>,
    max_groups: usize,
    interval: Duration,
    /// Intervals a group that left the pass keeps its series.
    linger: u64,
    /// Intervals published so far.
    tick: u64,
    /// The last interval each group was in the pass or counted something.
    last_seen: HashMap<GroupKey, u64>,
    generation: u64,
    probes: Vec<(&'static str, &'static str)>,
    /// Counted since the last publication, by group; settled to the
    /// group's label or to `other` when the interval is published.
    pending: HashMap<Slot, Totals>,
    /// Published, cumulative.
    totals: HashMap<Slot, Totals>,
    events: BTreeMap<&'static str, u64>,
    /// Every event, counted as it comes (published with the next interval).
    host: Totals,
    /// When each cause's last abort on memory was.
    last_abort: BTreeMap<&'static str, SystemTime>,
    routes_inserted: BTreeMap<&'static str, u64>,
    suppressed: u64,
    /// The run's names (see [`Sink::names`]).
    names: Names,
    /// The cgroups of this interval's exported groups, and the rule's
    /// state between intervals.
    cgroups: Vec<CgroupSeries>,
    memcg_watch: crate::model::memcg::PressureWatch,
    /// The host line (see [`Sink::host`]).
    facts: Option<Arc<crate::sources::host::Host>>,
}

impl MetricsSink {
    /// `linger`: how long a group that disappeared keeps its series (with
    /// its last counts and no memory), so that a scraper slower than the
    /// interval still sees what a short-lived group counted.
    pub fn new(
        shared: Arc<Shared>,
        max_groups: usize,
        interval: Duration,
        linger: Duration,
    ) -> MetricsSink {
        MetricsSink {
            shared,
            max_groups,
            interval,
            linger: (linger.as_secs_f64() / interval.as_secs_f64()).ceil() as u64,
            tick: 0,
            last_seen: HashMap::new(),
            generation: 0,
            probes: Vec::new(),
            pending: HashMap::new(),
            totals: HashMap::new(),
            events: BTreeMap::new(),
            host: Totals::default(),
            last_abort: BTreeMap::new(),
            routes_inserted: BTreeMap::new(),
            suppressed: 0,
            names: Names::default(),
            cgroups: Vec::new(),
            memcg_watch: Default::default(),
            facts: None,
        }
    }

    fn publish(&mut self, global: Option<Global>, groups: Vec<GroupSeries>, seen: usize) {
        self.generation += 1;
        let folded = seen.saturating_sub(self.max_groups);
        self.shared.publish(Exposition {
            generation: self.generation,
            interval: self.interval,
            probes: self.probes.clone(),
            global,
            groups,
            groups_seen: seen,
            groups_folded: folded,
            events: self.events.clone(),
            host: self.host.clone(),
            last_abort: self.last_abort.clone(),
            cgroups: std::mem::take(&mut self.cgroups),
            facts: self.facts.clone(),
        });
    }

    /// Settles the counts of an interval whose groups, largest first, are
    /// `groups`, and returns the series to export and how many groups
    /// ranked. Groups no longer in the pass (their last sockets closed, as
    /// after an abort) rank after every group in it, most recently seen
    /// first, with no memory: they keep their name and counts for
    /// `linger` intervals while there is room.
    fn fold(&mut self, groups: &[(GroupKey, GroupRow)]) -> (Vec<GroupSeries>, usize) {
        self.tick += 1;
        let now = self.tick;
        for (g, _) in groups {
            self.last_seen.insert(*g, now);
        }
        for s in self.pending.keys() {
            if let Slot::Group(g) = s {
                self.last_seen.insert(*g, now);
            }
        }
        let linger = self.linger;
        self.last_seen.retain(|_, t| now - *t <= linger);
        let present: HashSet<GroupKey> = groups.iter().map(|(g, _)| *g).collect();
        let mut gone: Vec<(u64, GroupKey)> = self
            .last_seen
            .iter()
            .filter(|(g, _)| !present.contains(g))
            .map(|(g, t)| (*t, *g))
            .collect();
        gone.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let empty = GroupRow::default();
        let ranked: Vec<(GroupKey, &GroupRow)> = groups
            .iter()
            .map(|(g, r)| (*g, r))
            .chain(gone.into_iter().map(|(_, g)| (g, &empty)))
            .collect();
        let top: HashSet<GroupKey> = ranked
            .iter()
            .take(self.max_groups)
            .map(|(g, _)| *g)
            .collect();
        for (g, row) in &ranked {
            let p = self.pending.entry(Slot::Group(*g)).or_default();
            for c in WITHOUT_EVENTS {
                p.counts[c as usize] += row.count(c);
            }
        }
        for (slot, p) in std::mem::take(&mut self.pending) {
            let dest = match slot {
                Slot::Group(g) if top.contains(&g) => slot,
                _ => Slot::Other,
            };
            self.totals.entry(dest).or_default().absorb(&p);
        }
        self.totals.retain(|s, _| match s {
            Slot::Group(g) => top.contains(g),
            Slot::Other => true,
        });
        let mut out = Vec::with_capacity(top.len() + 1);
        let mut other = GroupMem::default();
        for (n, (g, row)) in ranked.iter().enumerate() {
            if n < self.max_groups {
                let memcg_sock = (g.kind == netmem_common::GROUP_CGROUP)
                    .then(|| {
                        let id = crate::model::owner::owner_id(g);
                        let w = row.owners.as_ref()?;
                        w.cgroups.iter().find(|c| c.cgroup.id == id)?.memcg_sock
                    })
                    .flatten();
                out.push(GroupSeries {
                    group: self.names.group_name(g),
                    kind: group_kind(g),
                    mem: row.mem.clone(),
                    totals: self.totals.entry(Slot::Group(*g)).or_default().clone(),
                    owner: OwnerLabels::of(g, row, &self.names),
                    memcg_sock,
                    proxy: row.proxy.clone(),
                });
            } else {
                other.absorb(&row.mem);
            }
        }
        if let Some(t) = self.totals.get(&Slot::Other) {
            out.push(GroupSeries {
                group: "other".into(),
                kind: "other",
                mem: other,
                totals: t.clone(),
                owner: None,
                memcg_sock: None,
                proxy: None,
            });
        }
        (out, ranked.len())
    }
}

impl Sink for MetricsSink {
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
    }

    fn host(&mut self, h: &crate::sources::host::Host) -> Result<()> {
        self.facts = Some(Arc::new(h.clone()));
        Ok(())
    }

    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        self.probes = hooks
            .iter()
            .map(|h| (h.hook, h.tier.map_or("none", |t| t.name())))
            .collect();
        // Live from here on: a scrape sees the probes before the first
        // interval's figures.
        self.publish(None, Vec::new(), 0);
        Ok(())
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        *self.events.entry(e.body.kind().name()).or_default() += 1;
        self.host.add(&e.body);
        if let Body::AbortOnMemory(a) = &e.body {
            let last = self.last_abort.entry(a.cause.name()).or_insert(e.ts);
            *last = (*last).max(e.ts);
        }
        if let Some(g) = &e.group {
            self.pending
                .entry(Slot::Group(*g))
                .or_default()
                .add(&e.body);
        }
        Ok(())
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        let Some(live) = &i.live else {
            return Ok(());
        };
        for (k, n) in &live.routes.by_family {
            *self.routes_inserted.entry(k).or_default() += n;
        }
        self.suppressed += live.loss.events_suppressed;
        let mut cached: BTreeMap<&'static str, u64> = live
            .routes
            .cached
            .iter()
            .map(|(k, v)| (*k, *v as u64))
            .collect();
        if let Some(n) = live.routes.rt6_cached {
            cached.entry("ipv6").or_insert(n);
        }
        let global = Global {
            ts: i.ts,
            context: i.context.clone(),
            memory_pressure: live.memory_pressure,
            pressure_time: live.pressure_time,
            gather_time: live.gather_time,
            census_age: live.census_age.unwrap_or_default(),
            routes_inserted: self.routes_inserted.clone(),
            routes_cached: cached,
            time_wait_counted: i.time_wait_counted,
            lost_events: live.loss.lost_events,
            events_suppressed: self.suppressed,
            group_map_full: live.loss.group_map_full,
            netns: i
                .netns
                .iter()
                .map(|f| NetnsSeries {
                    name: self.names.netns_label(f.inum),
                    figures: f.clone(),
                })
                .collect(),
        };
        let top = &i.groups[..i.groups.len().min(self.max_groups)];
        self.cgroups = cgroups::cgroup_series(
            top,
            crate::model::memcg::HostTcp::of(&i.context),
            &mut self.memcg_watch,
        );
        let (groups, seen) = self.fold(&i.groups);
        self.publish(Some(global), groups, seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
