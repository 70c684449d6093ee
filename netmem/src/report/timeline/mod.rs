//! A recording as series over time, read from the JSON-lines contract: the
//! global figures and every group's memory and orphans per interval, the
//! events, and the statistics a report shows (peak, mean, p95). Everything
//! a plot or table shows is computed here; the printers only draw it.
//!
//! Lines are fed one at a time as the recording streams, and what is held
//! is bounded whatever the recording (see `sources::recording`'s caps):
//! groups and namespaces by name up to a number, the rest summed into
//! `other`; at most [`MAX_POINTS`] intervals, neighbours merged in pairs
//! (keeping each figure's peak) past it; events counted per interval, and
//! the first [`MAX_MARKS`] aborts and pressure periods held to draw.
//!
//! Here the types and the feeding; `figures.rs` computes what a report
//! shows from them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

mod figures;
#[cfg(test)]
mod tests;

use crate::contract::lax::Int;
use crate::contract::{ContextLine, EventLine, GroupLine, IncidentLine, Line};
use crate::sources::host::Host;
use crate::sources::recording::{
    cut_name, CappedNames, MAX_GROUPS, MAX_KINDS, MAX_MARKS, MAX_NAME, MAX_NAMESPACES,
    MAX_PENDING_EVENTS, MAX_POINTS,
};

/// One group in one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupPoint {
    /// rmem + wmem_queued + fwd_alloc, bytes
    pub memory: u64,
    pub orphans: u64,
    /// Its listeners' accept queues and backlogs (0 without a listener).
    pub accept_queue: u64,
    pub accept_backlog: u64,
}

impl GroupPoint {
    fn peak(&mut self, o: &GroupPoint) {
        self.memory = self.memory.max(o.memory);
        self.orphans = self.orphans.max(o.orphans);
        // The fuller reading, queue and backlog together.
        if o.accept_fill() > self.accept_fill() {
            (self.accept_queue, self.accept_backlog) = (o.accept_queue, o.accept_backlog);
        }
    }

    /// Queued as a share of the backlog, 1.0 at it (0 without a listener).
    pub fn accept_fill(&self) -> f64 {
        if self.accept_backlog == 0 {
            0.0
        } else {
            self.accept_queue as f64 / self.accept_backlog as f64
        }
    }
}

/// One interval, or (past [`MAX_POINTS`]) neighbouring intervals merged,
/// each figure at its peak over them.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Seconds since the recording's first interval (the last one's, when
    /// merged).
    pub t: f64,
    /// tcp_mem min, pressure, max, bytes.
    pub tcp_mem: Option<[u64; 3]>,
    /// TCP memory charged, bytes.
    pub allocated: u64,
    pub orphans: u64,
    pub max_orphans: Option<u64>,
    pub pressure: bool,
    pub routes_inserted: u64,
    pub routes_cached: Option<u64>,
    pub groups: BTreeMap<Arc<str>, GroupPoint>,
    /// Memory of all groups per namespace (one, unless traced with
    /// `--netns all`), bytes: the namespace's own total beside the
    /// host-wide `allocated`.
    pub namespaces: BTreeMap<Arc<str>, u64>,
    /// Events by kind: those after the previous point, up to `t`.
    pub events: BTreeMap<Arc<str>, u64>,
    /// Handshakes dropped on full accept queues (ListenOverflows grown,
    /// every namespace read).
    pub listen_overflows: u64,
    /// Intervals merged into this point: 1 until a recording passes
    /// [`MAX_POINTS`].
    pub span: u64,
}

impl Point {
    /// `next`, the interval after, merged in: peaks kept, events added.
    fn merge(&mut self, next: Point) {
        self.t = next.t;
        self.tcp_mem = next.tcp_mem.or(self.tcp_mem);
        self.allocated = self.allocated.max(next.allocated);
        self.orphans = self.orphans.max(next.orphans);
        self.max_orphans = next.max_orphans.or(self.max_orphans);
        self.pressure |= next.pressure;
        self.routes_inserted = self.routes_inserted.max(next.routes_inserted);
        self.routes_cached = self.routes_cached.max(next.routes_cached);
        for (g, p) in next.groups {
            self.groups.entry(g).or_default().peak(&p);
        }
        for (n, m) in next.namespaces {
            let e = self.namespaces.entry(n).or_default();
            *e = (*e).max(m);
        }
        for (k, n) in next.events {
            let e = self.events.entry(k).or_default();
            *e = e.saturating_add(n);
        }
        self.listen_overflows = self.listen_overflows.saturating_add(next.listen_overflows);
        self.span += next.span;
    }
}

/// An abort on memory, with the figures that fired it.
#[derive(Clone, Debug)]
pub struct Event {
    pub t: f64,
    pub kind: String,
    pub group: Option<Arc<str>>,
    /// The abort's cause.
    pub cause: Option<String>,
    /// Its figures, as recorded.
    pub figures: AbortFigures,
}

/// What an abort's line says of the moment it fired.
#[derive(Clone, Debug, Default)]
pub struct AbortFigures {
    pub orphans: Option<i64>,
    pub max_orphans: Option<i64>,
    pub shift: Option<i64>,
    pub allocated_pages: Option<i64>,
    pub tcp_mem_max: Option<i64>,
    pub local: Option<String>,
    pub remote: Option<String>,
}

/// Peak, mean and 95th percentile of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub peak: f64,
    pub mean: f64,
    pub p95: f64,
}

/// A group's figures over the whole recording.
#[derive(Clone, Debug, Default)]
pub struct GroupSummary {
    pub group: String,
    pub memory: Stats,
    pub orphans: Stats,
    /// Events by kind.
    pub events: BTreeMap<String, u64>,
    /// Who held it last (recordings made with `--owners` or `--group-by`):
    /// its largest process and cgroup as the contract's `owners` object
    /// names them.
    pub owner: Option<String>,
    /// What the proxy in front called it last (`backend app, server app3`).
    pub proxy: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub host: Option<Host>,
    /// (hook, tier or "none")
    pub hooks: Vec<(String, String)>,
    pub start: Option<SystemTime>,
    pub points: Vec<Point>,
    /// Intervals read (more than `points` once they are merged).
    pub intervals: u64,
    /// Event lines read.
    pub events_recorded: u64,
    /// From the summary line when the recording ended cleanly.
    pub events_received: Option<u64>,
    pub lost_events: u64,
    pub interval_s: f64,
    /// The last owners seen per group.
    pub owners: BTreeMap<Arc<str>, String>,
    /// The proxy's name last seen per group.
    pub proxies: BTreeMap<Arc<str>, String>,
    /// Aborts on memory read, and the first [`MAX_MARKS`] of them.
    pub aborts_seen: u64,
    aborts: Vec<Event>,
    abort_causes: BTreeMap<Arc<str>, u64>,
    /// The flight recorder's triggers, when the recording is an incident
    /// file: the first starts it, later ones extended it (the first
    /// [`MAX_MARKS`]).
    pub triggers: Vec<TriggerMark>,
    /// Events by group and kind.
    group_events: BTreeMap<Arc<str>, BTreeMap<Arc<str>, u64>>,
    /// Pressure periods from the enter/leave events, and the one open.
    spans: Vec<(f64, f64)>,
    open: Option<f64>,
    enter_leave: bool,
    spans_merged: bool,
    /// The interval being read (its group lines follow its context line).
    current: Option<Point>,
    /// Events after the last interval, waiting for the one they fall in.
    pending: Vec<(f64, Arc<str>)>,
    pending_over: BTreeMap<Arc<str>, u64>,
    /// Intervals per point: doubles each time the points are halved.
    stride: u64,
    first_t: Option<f64>,
    names: CappedNames<MAX_GROUPS>,
    namespace_names: CappedNames<MAX_NAMESPACES>,
    kinds: CappedNames<MAX_KINDS>,
}

/// A flight recorder trigger in the recording (an `incident` line).
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerMark {
    /// Seconds from the recording's start.
    pub t: f64,
    pub at: Option<SystemTime>,
    pub id: String,
    pub cause: String,
    pub detail: String,
    /// The trigger that started the incident (not one that extended it).
    pub started: bool,
}

/// The namespace of a recording made before the host line named it.
pub const UNNAMED_NAMESPACE: &str = "the traced namespace";

fn ts(ts: &Option<String>) -> Option<SystemTime> {
    humantime::parse_rfc3339(ts.as_deref()?).ok()
}

fn secs(start: Option<SystemTime>, t: Option<SystemTime>) -> f64 {
    match (start, t) {
        (Some(s), Some(t)) => t
            .duration_since(s)
            .map(|d| d.as_secs_f64())
            .unwrap_or_else(|e| -e.duration().as_secs_f64()),
        _ => 0.0,
    }
}

impl Timeline {
    /// From the contract's lines, in order.
    pub fn from_lines(lines: &[Line]) -> Timeline {
        let mut tl = Timeline::default();
        for v in lines {
            tl.feed(v);
        }
        tl.finish();
        tl
    }

    /// One line of the contract. Lines of kinds a report does not show
    /// (doctor output, say) are ignored.
    pub fn feed(&mut self, line: &Line) {
        match line {
            Line::Host(h) => self.host = h.host.clone(),
            Line::Probes(p) => {
                self.hooks = p
                    .hooks
                    .iter()
                    .flatten()
                    .map(|h| {
                        let s = |f: &Option<String>, or: &str| {
                            cut_name(f.as_deref().unwrap_or(or), MAX_NAME).into_owned()
                        };
                        (s(&h.hook, "?"), s(&h.tier, "none"))
                    })
                    .collect()
            }
            Line::Context(c) => self.context(c),
            Line::Group(g) => self.group(g),
            Line::Netns(n) => {
                if let Some(p) = self.current.as_mut() {
                    p.listen_overflows =
                        p.listen_overflows.saturating_add(n.grew("ListenOverflows"));
                }
            }
            Line::Event(e) => self.event(e),
            Line::Incident(i) => self.incident(i),
            Line::Summary(s) => {
                self.events_received = s.events;
                self.lost_events = self.lost_events.max(s.lost_events.unwrap_or(0));
            }
            _ => {}
        }
    }

    /// After the last line.
    pub fn finish(&mut self) {
        self.close();
        if let Some(t0) = self.open.take() {
            let end = self.duration();
            self.span(t0, end);
        }
        // The mean gap between intervals: the gaps add up to the duration.
        self.interval_s = match (self.first_t, self.intervals) {
            (Some(t0), n) if n > 1 => (self.duration() - t0) / (n - 1) as f64,
            _ => 0.0,
        };
    }

    fn context(&mut self, v: &ContextLine) {
        self.close();
        let t = ts(&v.ts);
        if self.start.is_none() {
            self.start = t;
        }
        let page = v.page_size.unwrap_or(4096);
        let r = v.route_exceptions.clone().unwrap_or_default();
        let cached = r
            .cached
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.values().flatten().fold(0u64, |a, b| a.saturating_add(*b)))
            .or(r.rt6_cached);
        self.lost_events = self.lost_events.max(v.lost_events.unwrap_or(0));
        let t = secs(self.start, t);
        self.first_t.get_or_insert(t);
        self.intervals += 1;
        let mut p = Point {
            t,
            tcp_mem: v
                .tcp_mem_pages
                .as_ref()
                .and_then(|p| p.triple())
                .map(|m| m.map(|p| p.saturating_mul(page))),
            allocated: v.memory_allocated_pages.unwrap_or(0).saturating_mul(page),
            // The kernel's (sockstat) or the census' (same pass as the
            // groups), whichever is larger.
            orphans: v.orphans.unwrap_or(0).max(v.orphans_census.unwrap_or(0)),
            max_orphans: v.max_orphans,
            pressure: v.memory_pressure.unwrap_or(false),
            routes_inserted: r.inserted.unwrap_or(0),
            routes_cached: cached,
            span: 1,
            ..Default::default()
        };
        // The events waiting that fall in it (an event counts in the first
        // interval that ends at or after it).
        let mut events = BTreeMap::new();
        self.pending.retain(|(et, k)| {
            let mine = *et <= t;
            if mine {
                *events.entry(k.clone()).or_default() += 1;
            }
            !mine
        });
        for (k, n) in std::mem::take(&mut self.pending_over) {
            *events.entry(k).or_default() += n;
        }
        p.events = events;
        self.current = Some(p);
    }

    /// The interval read is complete: into the points, merged when there
    /// are enough.
    fn close(&mut self) {
        let Some(mut p) = self.current.take() else {
            return;
        };
        // A part never exceeds its whole: the kernel's count is read at
        // another moment than the census, so the groups' sum bounds it.
        let sum = p
            .groups
            .values()
            .map(|g| g.orphans)
            .fold(0u64, u64::saturating_add);
        p.orphans = p.orphans.max(sum);
        let stride = self.stride.max(1);
        match self.points.last_mut() {
            Some(last) if last.span < stride => last.merge(p),
            _ => self.points.push(p),
        }
        if self.points.len() >= MAX_POINTS {
            let old = std::mem::take(&mut self.points);
            let mut it = old.into_iter();
            while let Some(mut a) = it.next() {
                if let Some(b) = it.next() {
                    a.merge(b);
                }
                self.points.push(a);
            }
            self.stride = stride * 2;
        }
    }

    fn group(&mut self, v: &GroupLine) {
        let Some(p) = self.current.as_mut() else {
            return;
        };
        let Some(name) = &v.group else {
            return;
        };
        let name = self.names.get(name);
        let folded = self.names.is_other(&name);
        if !folded {
            let o = v.owners.clone().unwrap_or_default();
            let first = o.processes.unwrap_or_default().into_iter().next();
            let process = first.as_ref().and_then(|f| {
                let pid = f.pid.map_or("?".into(), |p| p.to_string());
                f.comm.as_ref().map(|c| format!("{c}[{pid}]"))
            });
            let cgroup = o
                .cgroups
                .unwrap_or_default()
                .into_iter()
                .next()
                .and_then(|c| c.cgroup.cgroup.flatten());
            if let Some(p) = crate::doctor::window::group_proxy(&v.proxy, v.kind.as_deref()) {
                self.proxies
                    .insert(name.clone(), cut_name(&p.describe(), MAX_NAME).into_owned());
            }
            if process.is_some() || cgroup.is_some() {
                let both: Vec<String> = process.into_iter().chain(cgroup).collect();
                self.owners.insert(
                    name.clone(),
                    cut_name(&both.join(" "), 2 * MAX_NAME).into_owned(),
                );
            }
        }
        let memory = v.memory();
        // Under `--netns all` each group names its namespace; otherwise
        // the host line names the one traced.
        let ns = match v.netns.netns.as_deref() {
            Some(ns) => self.namespace_names.get(ns),
            None => match self.host.as_ref().and_then(|h| h.netns.as_deref()) {
                Some(ns) => self.namespace_names.get(ns),
                None => self.namespace_names.get(UNNAMED_NAMESPACE),
            },
        };
        let total = p.namespaces.entry(ns).or_default();
        *total = total.saturating_add(memory);
        let point = GroupPoint {
            memory,
            orphans: v.orphans.unwrap_or(0),
            accept_queue: v.accept_queue.unwrap_or(0),
            accept_backlog: v.accept_backlog.unwrap_or(0),
        };
        if folded {
            // Every group past the cap, summed.
            let g = p.groups.entry(name).or_default();
            g.memory = g.memory.saturating_add(point.memory);
            g.orphans = g.orphans.saturating_add(point.orphans);
        } else {
            p.groups.insert(name, point);
        }
    }

    fn incident(&mut self, v: &IncidentLine) {
        if self.triggers.len() >= MAX_MARKS {
            return;
        }
        let at = ts(&v.ts);
        let s = |f: &Option<String>| cut_name(f.as_deref().unwrap_or("?"), MAX_NAME).into_owned();
        self.triggers.push(TriggerMark {
            t: secs(self.start, at),
            at,
            id: s(&v.id),
            cause: s(&v.cause),
            detail: s(&v.detail),
            started: v.started.unwrap_or(false),
        });
    }

    fn event(&mut self, v: &EventLine) {
        let at = ts(&v.ts);
        if self.start.is_none() {
            self.start = at;
        }
        let t = secs(self.start, at);
        self.events_recorded += 1;
        let kind = self.kinds.get(v.event.as_deref().unwrap_or("?"));
        let group = v.group.as_deref().map(|g| self.names.get(g));
        if let Some(g) = &group {
            let n = self
                .group_events
                .entry(g.clone())
                .or_default()
                .entry(kind.clone())
                .or_default();
            *n = n.saturating_add(1);
        }
        self.place(t, kind.clone());
        match &*kind {
            "abort_on_memory" => {
                self.aborts_seen += 1;
                let b = &v.body;
                let cause = self.kinds.get(b.cause.as_deref().unwrap_or("?"));
                *self.abort_causes.entry(cause).or_default() += 1;
                if self.aborts.len() < MAX_MARKS {
                    let i = |f: Option<Int>| f?.i64();
                    let s = |f: &Option<String>| {
                        f.as_deref().map(|s| cut_name(s, MAX_NAME).into_owned())
                    };
                    self.aborts.push(Event {
                        t,
                        kind: kind.to_string(),
                        group,
                        cause: s(&b.cause),
                        figures: AbortFigures {
                            orphans: i(b.orphans.flatten()),
                            max_orphans: i(b.max_orphans.flatten()),
                            shift: i(b.shift.flatten()),
                            allocated_pages: i(b.allocated_pages),
                            tcp_mem_max: b.tcp_mem_pages.as_ref().and_then(|p| p.max_i64()),
                            local: s(&v.sock.local),
                            remote: s(&v.sock.remote),
                        },
                    });
                }
            }
            "memory_pressure_enter" => {
                self.enter_leave = true;
                self.open.get_or_insert(t);
            }
            "memory_pressure_leave" => {
                self.enter_leave = true;
                // Left before the recording began, when none is open.
                let t0 = self.open.take().unwrap_or(0.0);
                self.span(t0, t);
            }
            _ => {}
        }
    }

    /// Counts an event in the interval it falls in: one read already, or
    /// one to come.
    fn place(&mut self, t: f64, kind: Arc<str>) {
        let held = self.points.last().map_or(f64::NEG_INFINITY, |p| p.t);
        let target = if t <= held {
            let i = self.points.partition_point(|p| p.t < t);
            Some(&mut self.points[i])
        } else {
            match self.current.as_mut() {
                Some(c) if t <= c.t => Some(c),
                _ => None,
            }
        };
        match target {
            Some(p) => {
                let n = p.events.entry(kind).or_default();
                *n = n.saturating_add(1);
            }
            None if self.pending.len() < MAX_PENDING_EVENTS => self.pending.push((t, kind)),
            // More events than any interval has: counted in the next.
            None => {
                let n = self.pending_over.entry(kind).or_default();
                *n = n.saturating_add(1);
            }
        }
    }

    /// A pressure period; past [`MAX_MARKS`] of them, neighbours join.
    fn span(&mut self, t0: f64, t1: f64) {
        self.spans.push((t0, t1));
        if self.spans.len() >= MAX_MARKS {
            self.spans = self
                .spans
                .chunks(2)
                .map(|c| (c[0].0, c[c.len() - 1].1))
                .collect();
            self.spans_merged = true;
        }
    }
}
