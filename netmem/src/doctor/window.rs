//! What the doctor knows of a stretch of time, accumulated from the JSON
//! lines contract itself: a recording (`--from`), a live watch and a single
//! reading all go through [`Window::feed`], so anything `trace --json`
//! recorded is diagnosed exactly as it would have been live.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::model::proxy::{GroupProxy, Side, SideTune};
use crate::sources::host::Host;

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
}

/// A group line's proxy fields (see `output::json::proxy_fields`).
pub fn group_proxy(v: &Value) -> Option<GroupProxy> {
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let side = match v["proxy_side"].as_str()? {
        "client" => Side::Client,
        _ => Side::Server,
    };
    let t = &v["proxy_tune"];
    Some(GroupProxy {
        kind: match v["proxy"].as_str()? {
            "haproxy" => "haproxy",
            _ => "proxy",
        },
        side,
        frontends: strings("proxy_frontends"),
        servers: strings("proxy_servers")
            .into_iter()
            .filter_map(|p| {
                let (b, s) = p.split_once('/')?;
                Some((b.to_string(), s.to_string()))
            })
            .collect(),
        summed: v["kind"] == "proxy-backend",
        bufsize: u(&t["bufsize"]),
        tune: SideTune {
            rcvbuf: u(&t["rcvbuf"]),
            sndbuf: u(&t["sndbuf"]),
            known: t["from_configuration"].as_bool().unwrap_or(true),
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
    pub groups: BTreeMap<String, GroupFigures>,
    pub aborts: Vec<AbortSeen>,
    /// (group, reason) → memory drops
    pub drops: BTreeMap<(String, String), u64>,
    /// (group, direction) → buffer limit exceeded
    pub exceeded: BTreeMap<(String, String), u64>,
    pub route_exceptions_inserted: u64,
    pub route_exception_dsts: BTreeMap<String, u64>,
    pub rt6_cached: Option<u64>,
    pub lost_events: u64,
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn triple(v: &Value) -> Option<[u64; 3]> {
    let a = v.as_array()?;
    Some([u(a.first()?)?, u(a.get(1)?)?, u(a.get(2)?)?])
}

impl Window {
    /// One JSON line of the contract.
    pub fn feed(&mut self, v: &Value) {
        match v["type"].as_str() {
            Some("host") => {
                self.host = serde_json::from_value(v["host"].clone()).ok();
            }
            Some("context") => self.context(v),
            Some("group") => self.group(v),
            Some("event") => self.event(v),
            Some("summary") => {
                self.lost_events = u(&v["lost_events"]).unwrap_or(self.lost_events);
            }
            // probes, doctor and finding lines carry no figures.
            _ => {}
        }
    }

    fn context(&mut self, v: &Value) {
        self.intervals += 1;
        if self.first_ts.is_none() {
            self.first_ts = v["ts"].as_str().map(String::from);
        }
        self.last_ts = v["ts"].as_str().map(String::from);
        self.tcp_mem_pages = triple(&v["tcp_mem_pages"]).or(self.tcp_mem_pages);
        self.allocated_pages = u(&v["memory_allocated_pages"]).unwrap_or(0);
        if self.allocated_pages >= self.peak_allocated_pages || self.tcp_mem_at_peak.is_none() {
            self.peak_allocated_pages = self.allocated_pages;
            self.tcp_mem_at_peak = triple(&v["tcp_mem_pages"]).or(self.tcp_mem_at_peak);
        }
        self.orphans = u(&v["orphans"]).unwrap_or(0);
        self.peak_orphans = self.peak_orphans.max(self.orphans);
        self.census_orphans = u(&v["orphans_census"]).unwrap_or(0);
        self.peak_census_orphans = self.peak_census_orphans.max(self.census_orphans);
        self.census_memory = 0;
        self.group_orphans = 0;
        self.max_orphans = u(&v["max_orphans"]).or(self.max_orphans);
        self.page_size = u(&v["page_size"]).unwrap_or(4096);
        self.under_pressure = v["memory_pressure"].as_bool().unwrap_or(false);
        self.lost_events = u(&v["lost_events"]).unwrap_or(self.lost_events);
        let r = &v["route_exceptions"];
        self.route_exceptions_inserted += u(&r["inserted"]).unwrap_or(0);
        if let Some(by) = r["by_dst"].as_array() {
            for d in by {
                if let (Some(dst), Some(n)) = (d["dst"].as_str(), u(&d["count"])) {
                    *self
                        .route_exception_dsts
                        .entry(dst.to_string())
                        .or_default() += n;
                }
            }
        }
        self.rt6_cached = u(&r["rt6_cached"]).or(self.rt6_cached);
        // A new interval: "now" figures start again.
        for g in self.groups.values_mut() {
            g.sockets = 0;
            g.orphans = 0;
            g.orphan_bytes = 0;
            g.memory = 0;
        }
    }

    fn group(&mut self, v: &Value) {
        let Some(name) = v["group"].as_str() else {
            return;
        };
        let g = self.groups.entry(name.to_string()).or_default();
        g.kind = v["kind"].as_str().unwrap_or("").to_string();
        g.sockets = u(&v["sockets"]).unwrap_or(0);
        g.orphans = u(&v["orphans"]).unwrap_or(0);
        g.orphan_bytes = u(&v["orphan_bytes"]).unwrap_or(0);
        g.rmem = u(&v["rmem_bytes"]).unwrap_or(0);
        g.wmem = u(&v["wmem_queued_bytes"]).unwrap_or(0);
        g.proxy = group_proxy(v).or(g.proxy.take());
        g.memory = ["rmem_bytes", "wmem_queued_bytes", "fwd_alloc_bytes"]
            .iter()
            .filter_map(|k| u(&v[*k]))
            .sum();
        g.peak_memory = g.peak_memory.max(g.memory);
        // A part never exceeds its whole: the census total of this
        // interval is at least what its groups hold.
        self.census_memory += g.memory;
        self.group_orphans += g.orphans;
        self.census_orphans = self.census_orphans.max(self.group_orphans);
        self.peak_census_orphans = self.peak_census_orphans.max(self.census_orphans);
        g.peak_orphans = g.peak_orphans.max(g.orphans);
        g.peak_orphan_bytes = g.peak_orphan_bytes.max(g.orphan_bytes);
        for c in netmem_common::Counter::ALL {
            if let Some(n) = u(&v[c.name()]) {
                *g.counts.entry(c.name().to_string()).or_default() += n;
            }
        }
    }

    fn event(&mut self, v: &Value) {
        let group = v["group"].as_str().unwrap_or("unattributed").to_string();
        match v["event"].as_str() {
            Some("abort_on_memory") => self.aborts.push(AbortSeen {
                group,
                cause: v["cause"].as_str().unwrap_or("unknown").to_string(),
                orphans: u(&v["orphans"]),
                max_orphans: u(&v["max_orphans"]),
                shift: u(&v["shift"]),
                allocated_pages: u(&v["allocated_pages"]),
                tcp_mem_max: triple(&v["tcp_mem_pages"]).map(|m| m[2]),
            }),
            Some("skb_drop") => {
                let reason = v["reason"].as_str().unwrap_or("?").to_string();
                *self.drops.entry((group, reason)).or_default() += 1;
            }
            Some("exceed_buf_limit") => {
                let dir = v["direction"].as_str().unwrap_or("?").to_string();
                *self.exceeded.entry((group, dir)).or_default() += 1;
            }
            Some("memory_pressure_enter") => self.pressure_entered += 1,
            Some("memory_pressure_leave") => {
                if let Some(ms) = v["duration_ms"].as_f64() {
                    self.pressure_time += Duration::from_secs_f64(ms / 1000.0);
                }
            }
            _ => {}
        }
    }

    /// A group as people know it: `backend app, server app3
    /// (backend:10.0.3.17:9001)` when a proxy names it, else its name.
    pub fn label(&self, name: &str) -> String {
        match self.groups.get(name).and_then(|g| g.proxy.as_ref()) {
            Some(p) => format!("{} ({name})", p.describe()),
            None => name.to_string(),
        }
    }

    /// Groups by memory held now, largest first.
    pub fn top_memory(&self) -> Vec<(&String, &GroupFigures)> {
        let mut v: Vec<_> = self.groups.iter().filter(|(_, g)| g.memory > 0).collect();
        v.sort_by(|a, b| b.1.memory.cmp(&a.1.memory).then(a.0.cmp(b.0)));
        v
    }

    /// Groups by orphans at peak, most first.
    pub fn top_orphans(&self) -> Vec<(&String, &GroupFigures)> {
        let mut v: Vec<_> = self
            .groups
            .iter()
            .filter(|(_, g)| g.peak_orphans > 0)
            .collect();
        v.sort_by(|a, b| b.1.peak_orphans.cmp(&a.1.peak_orphans).then(a.0.cmp(b.0)));
        v
    }
}
