//! A recording as series over time, read from the JSON-lines contract: the
//! global figures and every group's memory and orphans per interval, the
//! events, and the statistics a report shows (peak, mean, p95). Everything
//! a plot or table shows is computed here; the printers only draw it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use crate::sources::host::Host;

/// One group in one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupPoint {
    /// rmem + wmem_queued + fwd_alloc, bytes
    pub memory: u64,
    pub orphans: u64,
}

/// One interval.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Seconds since the recording's first interval.
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
    pub groups: BTreeMap<String, GroupPoint>,
    /// Memory of all groups per namespace (one, unless traced with
    /// `--netns all`), bytes: the namespace's own total beside the
    /// host-wide `allocated`.
    pub namespaces: BTreeMap<String, u64>,
}

/// One streamed event.
#[derive(Clone, Debug)]
pub struct Event {
    pub t: f64,
    pub kind: String,
    pub group: Option<String>,
    /// The abort's cause, for aborts on memory.
    pub cause: Option<String>,
    /// The line as recorded (every figure).
    pub line: Value,
}

/// Peak, mean and 95th percentile of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub peak: f64,
    pub mean: f64,
    pub p95: f64,
}

impl Stats {
    pub fn of(v: &[f64]) -> Stats {
        if v.is_empty() {
            return Stats::default();
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let idx = ((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len()) - 1;
        Stats {
            peak: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
            p95: s[idx],
        }
    }
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
    pub events: Vec<Event>,
    /// From the summary line when the recording ended cleanly.
    pub events_received: Option<u64>,
    pub lost_events: u64,
    pub interval_s: f64,
    /// The last owners seen per group.
    pub owners: BTreeMap<String, String>,
    /// The proxy's name last seen per group.
    pub proxies: BTreeMap<String, String>,
}

/// The namespace of a recording made before the host line named it.
pub const UNNAMED_NAMESPACE: &str = "the traced namespace";

fn ts(v: &Value) -> Option<SystemTime> {
    humantime::parse_rfc3339(v["ts"].as_str()?).ok()
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

fn triple(v: &Value) -> Option<[u64; 3]> {
    let a = v.as_array()?;
    Some([
        a.first()?.as_u64()?,
        a.get(1)?.as_u64()?,
        a.get(2)?.as_u64()?,
    ])
}

impl Timeline {
    /// From the contract's lines, in order. Lines of kinds a report does
    /// not show (doctor output, say) are ignored.
    pub fn from_lines(lines: &[Value]) -> Timeline {
        let mut tl = Timeline::default();
        for v in lines {
            match v["type"].as_str() {
                Some("host") => tl.host = serde_json::from_value(v["host"].clone()).ok(),
                Some("probes") => {
                    tl.hooks = v["hooks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|h| {
                            (
                                h["hook"].as_str().unwrap_or("?").to_string(),
                                h["tier"].as_str().unwrap_or("none").to_string(),
                            )
                        })
                        .collect()
                }
                Some("context") => tl.context(v),
                Some("group") => tl.group(v),
                Some("event") => {
                    if tl.start.is_none() {
                        tl.start = ts(v);
                    }
                    tl.events.push(Event {
                        t: secs(tl.start, ts(v)),
                        kind: v["event"].as_str().unwrap_or("?").to_string(),
                        group: v["group"].as_str().map(str::to_string),
                        cause: v["cause"].as_str().map(str::to_string),
                        line: v.clone(),
                    })
                }
                Some("summary") => {
                    tl.events_received = v["events"].as_u64();
                    tl.lost_events = tl.lost_events.max(v["lost_events"].as_u64().unwrap_or(0));
                }
                _ => {}
            }
        }
        // A part never exceeds its whole: the kernel's count is read at
        // another moment than the census, so the groups' sum bounds it.
        for p in tl.points.iter_mut() {
            p.orphans = p.orphans.max(p.groups.values().map(|g| g.orphans).sum());
        }
        let gaps: Vec<f64> = tl.points.windows(2).map(|w| w[1].t - w[0].t).collect();
        tl.interval_s = Stats::of(&gaps).mean;
        tl
    }

    fn context(&mut self, v: &Value) {
        let t = ts(v);
        if self.start.is_none() {
            self.start = t;
        }
        let page = v["page_size"].as_u64().unwrap_or(4096);
        let r = &v["route_exceptions"];
        let cached = r["cached"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            .filter(|_| r["cached"].as_object().is_some_and(|m| !m.is_empty()))
            .or_else(|| r["rt6_cached"].as_u64());
        self.lost_events = self.lost_events.max(v["lost_events"].as_u64().unwrap_or(0));
        self.points.push(Point {
            t: secs(self.start, t),
            tcp_mem: triple(&v["tcp_mem_pages"]).map(|m| m.map(|p| p * page)),
            allocated: v["memory_allocated_pages"].as_u64().unwrap_or(0) * page,
            // The kernel's (sockstat) or the census' (same pass as the
            // groups), whichever is larger.
            orphans: v["orphans"]
                .as_u64()
                .unwrap_or(0)
                .max(v["orphans_census"].as_u64().unwrap_or(0)),
            max_orphans: v["max_orphans"].as_u64(),
            pressure: v["memory_pressure"].as_bool().unwrap_or(false),
            routes_inserted: r["inserted"].as_u64().unwrap_or(0),
            routes_cached: cached,
            groups: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        });
    }

    fn group(&mut self, v: &Value) {
        let Some(p) = self.points.last_mut() else {
            return;
        };
        let Some(name) = v["group"].as_str() else {
            return;
        };
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let o = &v["owners"];
        let process = o["processes"][0]["comm"]
            .as_str()
            .map(|c| format!("{c}[{}]", o["processes"][0]["pid"]));
        let cgroup = o["cgroups"][0]["cgroup"].as_str().map(str::to_string);
        if let Some(p) = crate::doctor::window::group_proxy(v) {
            self.proxies.insert(name.to_string(), p.describe());
        }
        if process.is_some() || cgroup.is_some() {
            let both: Vec<String> = process.into_iter().chain(cgroup).collect();
            self.owners.insert(name.to_string(), both.join(" "));
        }
        let memory = n("rmem_bytes") + n("wmem_queued_bytes") + n("fwd_alloc_bytes");
        // Under `--netns all` each group names its namespace; otherwise
        // the host line names the one traced.
        let ns = v["netns"]
            .as_str()
            .map(str::to_string)
            .or_else(|| self.host.as_ref()?.netns.clone())
            .unwrap_or_else(|| UNNAMED_NAMESPACE.to_string());
        *p.namespaces.entry(ns).or_default() += memory;
        p.groups.insert(
            name.to_string(),
            GroupPoint {
                memory,
                orphans: n("orphans"),
            },
        );
    }

    /// The namespaces whose groups were recorded, largest peak total first.
    pub fn namespaces(&self) -> Vec<(String, Stats)> {
        let mut names: Vec<&String> = self
            .points
            .iter()
            .flat_map(|p| p.namespaces.keys())
            .collect();
        names.sort();
        names.dedup();
        let mut out: Vec<(String, Stats)> = names
            .into_iter()
            .map(|n| {
                let v: Vec<f64> = self
                    .points
                    .iter()
                    .map(|p| p.namespaces.get(n).copied().unwrap_or(0) as f64)
                    .collect();
                (n.clone(), Stats::of(&v))
            })
            .collect();
        out.sort_by(|a, b| b.1.peak.total_cmp(&a.1.peak).then(a.0.cmp(&b.0)));
        out
    }

    /// Seconds from the first to the last interval.
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.t)
    }

    /// Every group's figures, largest peak memory first.
    pub fn groups(&self) -> Vec<GroupSummary> {
        let mut names: BTreeMap<&str, GroupSummary> = BTreeMap::new();
        for p in &self.points {
            for g in p.groups.keys() {
                names.entry(g).or_default();
            }
        }
        for e in &self.events {
            if let Some(g) = &e.group {
                *names
                    .entry(g)
                    .or_default()
                    .events
                    .entry(e.kind.clone())
                    .or_default() += 1;
            }
        }
        let mut out: Vec<GroupSummary> = names
            .into_iter()
            .map(|(name, mut s)| {
                let series = |f: fn(&GroupPoint) -> u64| -> Vec<f64> {
                    self.points
                        .iter()
                        .map(|p| p.groups.get(name).map_or(0, f) as f64)
                        .collect()
                };
                s.group = name.to_string();
                s.owner = self.owners.get(name).cloned();
                s.proxy = self.proxies.get(name).cloned();
                s.memory = Stats::of(&series(|g| g.memory));
                s.orphans = Stats::of(&series(|g| g.orphans));
                s
            })
            .collect();
        out.sort_by(|a, b| {
            b.memory
                .peak
                .total_cmp(&a.memory.peak)
                .then(b.orphans.peak.total_cmp(&a.orphans.peak))
                .then(a.group.cmp(&b.group))
        });
        out
    }

    /// The groups a plot names, the largest `n` by peak memory (or by peak
    /// orphans with `by_orphans`); the rest are drawn as "other".
    pub fn top_groups(&self, n: usize, by_orphans: bool) -> Vec<String> {
        let mut g = self.groups();
        if by_orphans {
            g.retain(|s| s.orphans.peak > 0.0);
            g.sort_by(|a, b| b.orphans.peak.total_cmp(&a.orphans.peak));
        } else {
            g.retain(|s| s.memory.peak > 0.0);
        }
        g.into_iter().take(n).map(|s| s.group).collect()
    }

    /// Periods under TCP memory pressure, (from, to) in seconds: from the
    /// enter/leave events when there are any, else from the intervals'
    /// flag.
    pub fn pressure_spans(&self) -> Vec<(f64, f64)> {
        let mut spans = Vec::new();
        let mut open: Option<f64> = None;
        let enter_leave: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.kind == "memory_pressure_enter" || e.kind == "memory_pressure_leave")
            .collect();
        if !enter_leave.is_empty() {
            for e in enter_leave {
                match (e.kind.as_str(), open) {
                    ("memory_pressure_enter", None) => open = Some(e.t),
                    ("memory_pressure_leave", Some(t0)) => {
                        spans.push((t0, e.t));
                        open = None;
                    }
                    // Left before the recording began.
                    ("memory_pressure_leave", None) => spans.push((0.0, e.t)),
                    _ => {}
                }
            }
        } else {
            for p in &self.points {
                match (p.pressure, open) {
                    (true, None) => open = Some((p.t - self.interval_s).max(0.0)),
                    (false, Some(t0)) => {
                        spans.push((t0, p.t));
                        open = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(t0) = open {
            spans.push((t0, self.duration()));
        }
        spans
    }

    /// Events per second of each kind, per interval: (kind, [(t, rate)]).
    /// An event counts in the first interval that ends at or after it.
    pub fn event_rates(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        let n = self.points.len();
        let mut counts: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for e in &self.events {
            let i = self.points.partition_point(|p| p.t < e.t);
            if i < n {
                counts.entry(e.kind.as_str()).or_insert_with(|| vec![0; n])[i] += 1;
            }
        }
        counts
            .into_iter()
            .map(|(k, c)| {
                let series = self
                    .points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let width = if i > 0 {
                            p.t - self.points[i - 1].t
                        } else {
                            self.interval_s
                        };
                        let v = c[i] as f64;
                        (p.t, if width > 0.0 { v / width } else { v })
                    })
                    .collect();
                (k.to_string(), series)
            })
            .collect()
    }

    /// The aborts on memory, in order.
    pub fn aborts(&self) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.kind == "abort_on_memory")
            .collect()
    }

    /// A global figure's statistics over the intervals.
    pub fn global(&self, f: fn(&Point) -> u64) -> Stats {
        Stats::of(&self.points.iter().map(|p| f(p) as f64).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines() -> Vec<Value> {
        vec![
            json!({"type":"host","ts":"2026-11-29T10:00:00Z","host":{"kernel_release":"6.1","page_size":4096,"mem_total_bytes":null,"sysctls":{"net.ipv4.tcp_wmem":"4096 16384 4194304"},"nstat":{},"rhash_entries":null,"netns":"rig"}}),
            json!({"type":"probes","ts":"2026-11-29T10:00:00Z","hooks":[{"hook":"orphans","tier":"fentry"}]}),
            json!({"type":"context","ts":"2026-11-29T10:00:01Z","tcp_mem_pages":[10,20,30],"memory_allocated_pages":5,"orphans":0,"max_orphans":100,"page_size":4096,"memory_pressure":false}),
            json!({"type":"group","ts":"2026-11-29T10:00:01Z","group":"listen:80","rmem_bytes":0,"wmem_queued_bytes":1000,"fwd_alloc_bytes":0,"orphans":0}),
            json!({"type":"event","ts":"2026-11-29T10:00:01.5Z","event":"abort_on_memory","group":"listen:80","cause":"orphans"}),
            json!({"type":"context","ts":"2026-11-29T10:00:02Z","tcp_mem_pages":[10,20,30],"memory_allocated_pages":7,"orphans":4,"max_orphans":100,"page_size":4096,"memory_pressure":true}),
            json!({"type":"group","ts":"2026-11-29T10:00:02Z","group":"listen:80","rmem_bytes":0,"wmem_queued_bytes":3000,"fwd_alloc_bytes":0,"orphans":4}),
            json!({"type":"group","ts":"2026-11-29T10:00:02Z","group":"backend:10.0.0.1:9000","rmem_bytes":500,"wmem_queued_bytes":0,"fwd_alloc_bytes":0,"orphans":0}),
            json!({"type":"summary","ts":"2026-11-29T10:00:02Z","events":1,"lost_events":0}),
        ]
    }

    #[test]
    fn series_and_statistics() {
        let tl = Timeline::from_lines(&lines());
        assert_eq!(tl.points.len(), 2);
        assert_eq!(tl.points[1].t, 1.0);
        assert_eq!(
            tl.points[0].tcp_mem,
            Some([10 * 4096, 20 * 4096, 30 * 4096])
        );
        assert_eq!(tl.points[1].allocated, 7 * 4096);
        assert_eq!(tl.hooks, [("orphans".to_string(), "fentry".to_string())]);
        let g = tl.groups();
        assert_eq!(g[0].group, "listen:80");
        assert_eq!(g[0].memory.peak, 3000.0);
        assert_eq!(g[0].memory.mean, 2000.0);
        assert_eq!(g[0].orphans.peak, 4.0);
        assert_eq!(g[0].events.get("abort_on_memory"), Some(&1));
        assert_eq!(g[1].memory.mean, 250.0, "absent intervals count as 0");
        assert_eq!(tl.aborts()[0].cause.as_deref(), Some("orphans"));
        // The namespace's total: both groups, named as the host line says.
        assert_eq!(tl.points[1].namespaces["rig"], 3500);
        assert_eq!(tl.namespaces()[0].0, "rig");
        assert_eq!(tl.namespaces()[0].1.peak, 3500.0);
        assert_eq!(tl.pressure_spans(), [(0.0, 1.0)]);
        let rates = tl.event_rates();
        assert_eq!(rates["abort_on_memory"][1], (1.0, 1.0));
    }

    #[test]
    fn all_sockets_orphans_never_below_a_group() {
        // sockstat said 8 before the dump found 9 on listen:8080.
        let mut l = lines();
        l[5]["orphans"] = json!(3);
        l[6]["orphans"] = json!(9);
        assert_eq!(Timeline::from_lines(&l).points[1].orphans, 9);
        l[5]["orphans_census"] = json!(11);
        assert_eq!(Timeline::from_lines(&l).points[1].orphans, 11);
    }

    #[test]
    fn p95_of_twenty() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Stats::of(&v);
        assert_eq!((s.peak, s.p95, s.mean), (20.0, 19.0, 10.5));
    }
}
