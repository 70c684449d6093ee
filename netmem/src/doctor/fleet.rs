//! The doctor over a fleet: what `netmem serve` exported to Prometheus,
//! read back into one [`State`] per instance and judged by the very rules
//! of the host doctor, then ranked and compared across hosts. Pure: what
//! to ask ([`queries`]) and what the answers mean ([`state_of`],
//! [`judge`]); asking is `sources::prometheus`.
//!
//! Each instance's series become lines of the JSON contract, fed to a
//! [`Window`](super::Window) as a recording's are: a first interval holding the
//! window's peaks (and each counter as it was at the window's start), a
//! second holding the figures at its end, with the counters' growth over
//! the window. A rule therefore reads "at peak" and "now" as it does for
//! a recording.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{diagnose, Finding, Report, Severity, State};
use crate::contract::series::{GROUP_COUNTS, HOST_INFO, MEMORY_TOTAL, PAGE_SIZE, SYSCTL_INFO};
use crate::contract::Line;
use crate::model::netns::NETNS_COUNTERS;
use crate::sources::host::Host;
use crate::sources::prometheus::Sample;
use netmem_common::Counter;
use netmem_common::EventKind;

/// One instance's answers, by query key.
pub type Series = BTreeMap<String, Vec<Sample>>;

/// node_exporter's RAM, matched to netmem's instance by host name.
const NODE_RAM: &str = "node_ram";

/// Labels netmem puts on its own series: a selector on one of them picks
/// part of a host's series (its groups, one namespace), and the rest of
/// the host would look empty. Only the scrape's labels (instance, job,
/// whatever the scrape config adds) select hosts.
pub const OWN_LABELS: &[&str] = &[
    "group",
    "kind",
    "queue",
    "cause",
    "direction",
    "reason",
    "netns",
    "inode",
    "threshold",
    "protocol",
    "family",
    "hook",
    "tier",
    "version",
    "setting",
    "proxy",
    "side",
    "frontend",
    "backend",
    "server",
    "process",
    "pid",
    "cgroup",
    "container",
    "pod",
    "limit_cgroup",
    "event",
    "sysctl",
    "value",
    "kernel_release",
    "hostname",
    "group_by",
    "rhash_entries",
    "__name__",
];

/// `--match`: a series selector's label matchers (`{job="netmem"}` or
/// `job="netmem"`), each `label OP "value"` on a label of the scrape.
/// Prometheus itself judges the values (a regular expression).
pub fn matchers(selector: &str) -> Result<String> {
    let s = selector.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(s)
        .trim();
    let example = "e.g. --match '{job=\"netmem\",instance=~\"lb.*\"}'";
    let mut rest = inner;
    while !rest.is_empty() {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        let after = after.trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| after.starts_with(op));
        let (true, Some(op)) = (
            !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
            op,
        ) else {
            bail!("--match {selector:?}: give label matchers only ({example})");
        };
        if OWN_LABELS.contains(&name) {
            bail!(
                "--match {selector:?}: `{name}` is a label of netmem's own series, not of a host: a host matched by it would look empty. Match on the scrape's labels (instance, job, ...)"
            );
        }
        let value = after[op.len()..].trim_start();
        let Some(body) = value.strip_prefix('"') else {
            bail!("--match {selector:?}: a value is quoted (\"...\") ({example})");
        };
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            bail!("--match {selector:?}: a quote is not closed");
        };
        rest = body[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            bail!("--match {selector:?}: give label matchers only ({example})");
        }
    }
    Ok(inner.to_string())
}

/// What to ask, `(key, PromQL)`: every figure the rules read, over the
/// `since` before the time asked at. `inner`: [`matchers`]' result.
pub fn queries(inner: &str, since: Duration) -> Vec<(String, String)> {
    let r = format!("{}s", since.as_secs().max(60));
    // A peak over the window: a subquery at about 1,000 steps (at most a
    // minute apart, at least a second), fine enough for the scrape
    // intervals people run.
    let step = format!("{}s", (since.as_secs() / 1000).clamp(1, 60));
    let sel = |name: &str, extra: &str| -> String {
        let m: Vec<&str> = [extra, inner]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        format!("netmem_{name}{{{}}}", m.join(","))
    };
    let last = |name: &str| format!("last_over_time({}[{r}])", sel(name, ""));
    let peak = |name: &str| format!("max_over_time({}[{r}])", sel(name, ""));
    let grew = |name: &str, extra: &str| format!("increase({}[{r}])", sel(name, extra));
    // A group's count over the window. A group's series is born with its
    // group's first interval, often the one with its first count
    // (increase() over a series born at 3000 sees none of them): a series
    // with no sample before the window counts whole; the others by their
    // increase. Only what grew: a fleet's zero series stay on the server.
    let counted = |name: &str| {
        let s = sel(name, "");
        format!(
            "(last_over_time({s}[{r}]) unless last_over_time({s}[{r}] offset {r})) > 0 or increase({s}[{r}]) > 0"
        )
    };
    // A group's gauges as they are now (a group gone before the end of
    // the window has no "now"), and at their peak.
    let now = |name: &str| sel(name, "");
    let mut q: Vec<(String, String)> = vec![
        ("host_info".into(), last(&format!("{HOST_INFO}_info"))),
        ("sysctl".into(), last(&format!("{SYSCTL_INFO}_info"))),
        ("ram".into(), last(&format!("{MEMORY_TOTAL}_bytes"))),
        ("page".into(), last(&format!("{PAGE_SIZE}_bytes"))),
        (
            NODE_RAM.into(),
            format!("last_over_time(node_memory_MemTotal_bytes[{r}])"),
        ),
        ("tcp_mem".into(), last("tcp_memory_limit_bytes")),
        ("alloc".into(), last("tcp_memory_allocated_bytes")),
        ("alloc_peak".into(), peak("tcp_memory_allocated_bytes")),
        ("orphans".into(), last("tcp_orphans")),
        ("orphans_peak".into(), peak("tcp_orphans")),
        ("census".into(), last("census_orphans")),
        ("census_peak".into(), peak("census_orphans")),
        ("max_orphans".into(), last("tcp_max_orphans")),
        ("pressure".into(), last("tcp_memory_pressure")),
        (
            "pressure_s".into(),
            grew("tcp_memory_pressure_seconds_total", ""),
        ),
        (
            "pressure_in".into(),
            grew(
                "events_total",
                &format!("kind=\"{}\"", EventKind::PressureEnter.name()),
            ),
        ),
        ("aborts".into(), grew("aborts_on_memory_total", "")),
        ("lost".into(), grew("events_lost_total", "")),
        (
            "routes_in".into(),
            grew("route_exceptions_inserted_total", ""),
        ),
        ("routes_cached".into(), last("route_exceptions_cached")),
        ("g_mem".into(), now("group_memory_bytes")),
        (
            "g_mem_peak".into(),
            format!(
                "max_over_time(sum by (instance, job, group, kind) ({})[{r}:{step}])",
                sel("group_memory_bytes", "")
            ),
        ),
        ("g_sockets".into(), now("group_sockets")),
        ("g_orphans".into(), now("group_orphans")),
        ("g_orphans_peak".into(), peak("group_orphans")),
        ("g_orphan_bytes".into(), now("group_orphan_bytes")),
        ("g_orphan_bytes_peak".into(), peak("group_orphan_bytes")),
        ("g_listeners".into(), now("group_listeners")),
        ("g_aq".into(), now("group_accept_queue")),
        ("g_aq_peak".into(), peak("group_accept_queue")),
        ("g_backlog".into(), now("group_accept_backlog")),
        ("g_ld".into(), last("group_listen_drops_total")),
        ("g_ld_grew".into(), counted("group_listen_drops_total")),
        ("g_proxy".into(), now("group_proxy_info")),
        ("g_proxy_buf".into(), now("group_proxy_buffer_bytes")),
        ("g_aborts".into(), counted("group_aborts_on_memory_total")),
        ("g_drops".into(), counted("group_memory_drops_total")),
        (
            "g_exceeded".into(),
            counted("group_buffer_limit_exceeded_total"),
        ),
        ("last_ts".into(), last("last_interval_timestamp_seconds")),
        // The scrape's own verdict on the target, now (none when the
        // target is gone from the scrape config).
        (
            "up".into(),
            format!(
                "up{{{inner}}} and on (instance, job) {}",
                last("build_info")
            ),
        ),
        (
            "readings".into(),
            format!(
                "count_over_time({}[{r}:{step}])",
                sel("last_interval_timestamp_seconds", "")
            ),
        ),
        (
            "g_full".into(),
            format!(
                "count_over_time(({} > {})[{r}:{step}])",
                sel("group_accept_queue", ""),
                sel("group_accept_backlog", "")
            ),
        ),
        ("netns_somaxconn".into(), last("netns_somaxconn")),
        ("netns_info".into(), last("netns_info")),
    ];
    for (_, name, _) in GROUP_COUNTS {
        q.push((format!("count:{name}"), counted(&format!("{name}_total"))));
    }
    for c in NETNS_COUNTERS {
        let m = format!("netns_{}_total", c.metric);
        q.push((format!("netns:{}", c.name), last(&m)));
        q.push((format!("netns+:{}", c.name), grew(&m, "")));
    }
    q
}

/// What to ask when nothing matched: every instance with a netmem, to
/// name them.
pub fn present(since: Duration) -> Vec<(String, String)> {
    vec![(
        "present".into(),
        format!(
            "group by (instance, job) (last_over_time(netmem_build_info[{}s]))",
            since.as_secs().max(60)
        ),
    )]
}

/// A count from a counter's growth: `increase()` extrapolates to the
/// window's edges, so 2.9 aborts were 3.
fn whole(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

struct Reader<'a>(&'a Series);

impl Reader<'_> {
    fn all(&self, key: &str) -> &[Sample] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }
    fn one(&self, key: &str) -> Option<f64> {
        self.all(key).first().map(|s| s.value)
    }
    fn by(&self, key: &str, label: &str) -> BTreeMap<String, f64> {
        self.all(key)
            .iter()
            .map(|s| (s.label(label).to_string(), s.value))
            .collect()
    }
    /// (group, kind) → value
    fn groups(&self, key: &str) -> BTreeMap<(String, String), f64> {
        let mut m = BTreeMap::new();
        for s in self.all(key) {
            let k = (s.label("group").to_string(), s.label("kind").to_string());
            *m.entry(k).or_insert(0.0) += s.value;
        }
        m
    }
}

/// The host an instance runs on (`lb1:9464` → `lb1`), to find its
/// node_exporter's series (`lb1:9100`).
fn host_part(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => instance,
    }
}

/// The answers by instance, then by query key. An instance that two
/// jobs scrape (two netmem on one address, or one target scraped twice)
/// is two, `JOB/INSTANCE`, rather than one with its figures summed.
/// node_exporter's RAM stays under its own instance (see [`node_ram`]).
pub fn by_instance(samples: Vec<(String, Sample)>) -> BTreeMap<String, Series> {
    let mut jobs: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (k, s) in &samples {
        // Every query keeps `job` (a sum is by it too).
        if k != NODE_RAM && !s.label("job").is_empty() {
            jobs.entry(s.label("instance").to_string())
                .or_default()
                .insert(s.label("job").to_string());
        }
    }
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for (key, s) in samples {
        let instance = s.label("instance");
        let name = match jobs.get(instance) {
            Some(j) if j.len() > 1 && key != NODE_RAM => format!("{}/{instance}", s.label("job")),
            _ => instance.to_string(),
        };
        out.entry(name).or_default().entry(key).or_default().push(s);
    }
    out
}

/// node_exporter's RAM, by the host part of its instance.
pub fn node_ram(fetched: &BTreeMap<String, Series>) -> BTreeMap<String, u64> {
    fetched
        .iter()
        .filter_map(|(i, s)| {
            let ram = Reader(s).one(NODE_RAM)?;
            Some((host_part(i).to_string(), ram as u64))
        })
        .collect()
}

/// The instances netmem's series came from (node_exporter's alone are
/// not one).
pub fn instances(fetched: &BTreeMap<String, Series>) -> Vec<&String> {
    fetched
        .iter()
        .filter(|(_, s)| s.keys().any(|k| k != NODE_RAM))
        .map(|(i, _)| i)
        .collect()
}

/// One instance's series as the doctor's [`State`]: its host line from
/// the exported facts, and its window from two synthetic intervals (see
/// the module's comment). `start`/`end`: the window's bounds, RFC 3339.
/// The window asked about: its bounds, RFC 3339, and its end in Unix
/// seconds.
#[derive(Clone, Debug)]
pub struct Span {
    pub start: String,
    pub end: String,
    pub end_unix: f64,
}

/// A host whose last interval is older than this before the window's end
/// has stopped reporting, even where `up` does not say so (a target gone
/// from the scrape config). Above any scrape interval people run.
pub const SILENT: f64 = 180.0;

/// One instance read back: its state, and when its netmem's last
/// interval was when that is [`SILENT`] or more before the window's end.
pub struct Read {
    pub state: State,
    pub silent_since: Option<f64>,
}

pub fn state_of(instance: &str, s: &Series, node_ram: &BTreeMap<String, u64>, span: &Span) -> Read {
    let (start, end) = (span.start.as_str(), span.end.as_str());
    let r = Reader(s);
    let mut state = State::default();
    // Its address as Prometheus labels it (the name may be JOB/INSTANCE).
    let address = s
        .values()
        .flatten()
        .map(|x| x.label("instance"))
        .find(|i| !i.is_empty())
        .unwrap_or(instance);
    // The host line.
    let info = r.all("host_info").first();
    let label = |l: &str| {
        info.map(|i| i.label(l))
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let page = r.one("page").map_or(4096, |p| p as u64).max(1);
    let mut host = Host {
        kernel_release: label("kernel_release").unwrap_or_default(),
        page_size: page,
        mem_total_bytes: r
            .one("ram")
            .map(|v| v as u64)
            .or_else(|| node_ram.get(host_part(address)).copied()),
        sysctls: r
            .all("sysctl")
            .iter()
            .map(|s| (s.label("sysctl").to_string(), s.label("value").to_string()))
            .collect(),
        hostname: label("hostname"),
        netns: label("netns"),
        group_by: label("group_by"),
        rhash_entries: label("rhash_entries"),
        ..Default::default()
    };
    if info.is_none() {
        state.unreadable.push(format!(
            "{instance} exports no netmem_{HOST_INFO}_info (a netmem serve older than the fleet doctor): the kernel and the sysctls the rules read are unknown"
        ));
    }
    if host.mem_total_bytes.is_none() {
        state.unreadable.push(format!(
            "{instance}: RAM unknown (neither netmem_{MEMORY_TOTAL}_bytes nor node_exporter's node_memory_MemTotal_bytes on its host)"
        ));
    }
    // The traced namespace's counters stand for the host's nstat.
    let traced = host.netns.clone().unwrap_or_else(|| "host".into());
    let aborts_total = r.all("netns:TCPAbortOnMemory");
    if let Some(v) = aborts_total
        .iter()
        .find(|s| s.label("netns") == traced)
        .or(aborts_total.first())
    {
        host.nstat.insert("TCPAbortOnMemory".into(), v.value as u64);
    }
    let pages = |bytes: f64| (bytes.max(0.0) as u64) / page;
    let tcp_mem = r.by("tcp_mem", "threshold");
    let tcp_mem_pages = match (
        tcp_mem.get("min"),
        tcp_mem.get("pressure"),
        tcp_mem.get("max"),
    ) {
        (Some(a), Some(b), Some(c)) => Some([pages(*a), pages(*b), pages(*c)]),
        _ => None,
    };
    let cached = r.by("routes_cached", "family");
    let context = |ts: &str, alloc: &str, orphans: &str, census: &str, inserted: u64| {
        let mut c = json!({
            "type": "context",
            "ts": ts,
            "tcp_mem_pages": tcp_mem_pages,
            "memory_allocated_pages": r.one(alloc).map(pages),
            "orphans": r.one(orphans).map(|v| v as u64),
            "orphans_census": r.one(census).map(|v| v as u64),
            "max_orphans": r.one("max_orphans").map(|v| v as u64),
            "page_size": page,
            "memory_pressure": r.one("pressure").is_some_and(|v| v > 0.0),
            "lost_events": whole(r.one("lost").unwrap_or(0.0)),
        });
        c["route_exceptions"] = json!({
            "inserted": inserted,
            "rt6_cached": cached.get("ipv6").map(|v| *v as u64),
        });
        c
    };
    let routes_in = r
        .by("routes_in", "family")
        .values()
        .copied()
        .map(whole)
        .sum();
    let mut lines = vec![context(
        start,
        "alloc_peak",
        "orphans_peak",
        "census_peak",
        0,
    )];
    // The first interval: the peaks, and each listener's drops as they
    // were at the window's start.
    let peak_mem = r.groups("g_mem_peak");
    let (aq_peak, backlog, listeners) = (
        r.groups("g_aq_peak"),
        r.groups("g_backlog"),
        r.groups("g_listeners"),
    );
    let (ld, ld_grew) = (r.groups("g_ld"), r.groups("g_ld_grew"));
    let (orph_peak, orph_bytes_peak) =
        (r.groups("g_orphans_peak"), r.groups("g_orphan_bytes_peak"));
    for (k, mem) in &peak_mem {
        let mut g = group_line(k, start);
        g["fwd_alloc_bytes"] = json!(*mem as u64);
        g["orphans"] = json!(orph_peak.get(k).map(|v| *v as u64));
        g["orphan_bytes"] = json!(orph_bytes_peak.get(k).map(|v| *v as u64));
        if let Some(l) = listeners.get(k).filter(|l| **l > 0.0) {
            let (q, b) = (
                aq_peak.get(k).copied().unwrap_or(0.0),
                backlog.get(k).copied().unwrap_or(0.0),
            );
            g["listeners"] = json!(*l as u64);
            g["accept_queue"] = json!(q as u64);
            g["accept_backlog"] = json!(b as u64);
            g["accept_full"] = json!(u64::from(q > b));
            if let Some(d) = ld.get(k) {
                let at_start = (*d - ld_grew.get(k).copied().unwrap_or(0.0)).max(0.0);
                g["listen_drops"] = json!(at_start.round() as u64);
            }
        }
        lines.push(g);
    }
    // The second: the end of the window, with what each group counted.
    lines.push(context(end, "alloc", "orphans", "census", routes_in));
    let mem = r.all("g_mem");
    let mut now: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    for s in mem {
        let k = (s.label("group").to_string(), s.label("kind").to_string());
        let field = match s.label("queue") {
            "rmem" => "rmem_bytes",
            "wmem_queued" => "wmem_queued_bytes",
            "fwd_alloc" => "fwd_alloc_bytes",
            _ => continue,
        };
        now.entry(k)
            .or_default()
            .insert(field.into(), json!(s.value as u64));
    }
    let mut put = |key: &str, field: &str| {
        for (k, v) in r.groups(key) {
            now.entry(k)
                .or_default()
                .insert(field.into(), json!(whole(v)));
        }
    };
    put("g_sockets", "sockets");
    put("g_orphans", "orphans");
    put("g_orphan_bytes", "orphan_bytes");
    put("g_listeners", "listeners");
    put("g_aq", "accept_queue");
    put("g_backlog", "accept_backlog");
    put("g_ld", "listen_drops");
    for (c, name, _) in GROUP_COUNTS {
        put(&format!("count:{name}"), c.name());
    }
    // The counts exported by label (reason, direction, cause), summed as
    // a group line counts them.
    for (key, c) in [
        ("g_drops", Counter::SkbDrops),
        ("g_exceeded", Counter::ExceedBufLimit),
        ("g_aborts", Counter::MemAborts),
    ] {
        put(key, c.name());
    }
    let proxies = proxy_fields(&r);
    for (k, fields) in now {
        let mut g = group_line(&k, end);
        if let (Some(q), Some(b)) = (fields.get("accept_queue"), fields.get("accept_backlog")) {
            g["accept_full"] = json!(u64::from(q.as_u64() > b.as_u64()));
        }
        for (f, v) in fields {
            g[f] = v;
        }
        if let Some(p) = proxies.get(&k) {
            for (f, v) in p {
                g[f] = v.clone();
            }
        }
        lines.push(g);
    }
    // Each namespace: its counters at the window's start, then at its end
    // with their growth.
    let somaxconn = r.by("netns_somaxconn", "netns");
    // Each namespace's (counters, their growth).
    type Counters = (Map<String, Value>, Map<String, Value>);
    let mut spaces: BTreeMap<String, Counters> = BTreeMap::new();
    for c in NETNS_COUNTERS {
        let grew = r.by(&format!("netns+:{}", c.name), "netns");
        for (ns, total) in r.by(&format!("netns:{}", c.name), "netns") {
            let d = whole(grew.get(&ns).copied().unwrap_or(0.0));
            let (counters, delta) = spaces.entry(ns).or_default();
            counters.insert(c.name.into(), json!(total as u64));
            delta.insert(c.name.into(), json!(d));
        }
    }
    for (ns, (counters, delta)) in spaces {
        let before: Map<String, Value> = counters
            .iter()
            .map(|(k, v)| {
                let d = delta.get(k).and_then(Value::as_u64).unwrap_or(0);
                (k.clone(), json!(v.as_u64().unwrap_or(0).saturating_sub(d)))
            })
            .collect();
        let line = |ts: &str, counters: Map<String, Value>, delta: Option<&Map<String, Value>>| {
            json!({"type": "netns", "ts": ts, "netns": ns, "counters": counters, "delta": delta,
                   "somaxconn": somaxconn.get(&ns).map(|v| *v as u64)})
        };
        lines.push(line(start, before, None));
        lines.push(line(end, counters, Some(&delta)));
    }
    let w = &mut state.window;
    for l in lines {
        if let Some(l) = Line::read(l) {
            w.feed(&l);
        }
    }
    // Events counted by the counters: aborts by cause and group (those
    // of no exported group are the host-wide count's rest), drops,
    // buffer limits; time under pressure.
    let mut by_cause: BTreeMap<String, u64> = r
        .by("aborts", "cause")
        .into_iter()
        .map(|(c, v)| (c, whole(v)))
        .collect();
    for x in r.all("g_aborts") {
        let n = whole(x.value);
        let cause = x.label("cause");
        w.count_events("abort_on_memory", x.label("group"), cause, n);
        if let Some(left) = by_cause.get_mut(cause) {
            *left = left.saturating_sub(n);
        }
    }
    for (cause, n) in by_cause {
        w.count_events("abort_on_memory", "unattributed", &cause, n);
    }
    for x in r.all("g_drops") {
        w.count_events(
            "skb_drop",
            x.label("group"),
            x.label("reason"),
            whole(x.value),
        );
    }
    for x in r.all("g_exceeded") {
        w.count_events(
            "exceed_buf_limit",
            x.label("group"),
            x.label("direction"),
            whole(x.value),
        );
    }
    let entered = whole(r.by("pressure_in", "kind").values().sum());
    for _ in 0..entered.min(10_000) {
        w.feed_value(json!({"type": "event", "event": "memory_pressure_enter"}));
    }
    if let Some(secs) = r.one("pressure_s").filter(|s| *s > 0.0) {
        w.feed_value(json!({"type": "event", "event": "memory_pressure_leave", "duration_ms": secs * 1000.0}));
    }
    // The window's readings are Prometheus's (the subquery's steps with a
    // figure), not the two intervals fed above; so are the readings in
    // which a listener's queue was full.
    if let Some(n) = r.one("readings").filter(|n| *n >= 1.0) {
        w.intervals = n as u64;
    }
    for ((group, _), n) in r.groups("g_full") {
        if let Some(a) = w.groups.get_mut(&group).and_then(|g| g.accept.as_mut()) {
            a.full_readings = n as u64;
        }
    }
    state.unreadable.extend(w.dropped());
    // Silent: the last scrape failed (`up` 0), or its last interval is
    // long past (a target dropped from the scrape config has no `up`).
    let failing = r.one("up").is_some_and(|u| u == 0.0);
    let silent_since = r
        .one("last_ts")
        .filter(|t| failing || span.end_unix - t >= SILENT);
    if let Some(t) = silent_since {
        state.unreadable.push(format!(
            "{instance} has reported nothing since {}: its figures \"now\" are its last ones",
            crate::format::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0)))
        ));
    }
    state.host = host;
    Read {
        state,
        silent_since,
    }
}

fn group_line((group, kind): &(String, String), ts: &str) -> Value {
    json!({"type": "group", "ts": ts, "group": group, "kind": kind})
}

/// A group line's proxy fields from `netmem_group_proxy_info` and
/// `netmem_group_proxy_buffer_bytes`.
fn proxy_fields(r: &Reader) -> BTreeMap<(String, String), Map<String, Value>> {
    let mut out: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    let split = |s: &str| -> Vec<String> {
        s.split('+')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    for s in r.all("g_proxy") {
        let k = (s.label("group").to_string(), s.label("kind").to_string());
        let server = s.label("server");
        let servers: Vec<String> = match server {
            "" => Vec::new(),
            srv => split(s.label("backend"))
                .into_iter()
                .map(|b| format!("{b}/{srv}"))
                .collect(),
        };
        let f = out.entry(k).or_default();
        f.insert("proxy".into(), json!(s.label("proxy")));
        f.insert("proxy_side".into(), json!(s.label("side")));
        f.insert("proxy_frontends".into(), json!(split(s.label("frontend"))));
        f.insert("proxy_servers".into(), json!(servers));
    }
    let mut tune: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    for s in r.all("g_proxy_buf") {
        let k = (s.label("group").to_string(), s.label("kind").to_string());
        tune.entry(k)
            .or_default()
            .insert(s.label("setting").to_string(), json!(s.value as u64));
    }
    for (k, t) in tune {
        if let Some(f) = out.get_mut(&k) {
            f.insert("proxy_tune".into(), Value::Object(t));
        }
    }
    out
}

/// One instance judged.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    pub instance: String,
    pub report: Report,
    pub figures: HostFigures,
}

/// What a fleet's operator compares hosts by, over the window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostFigures {
    /// The kernel's TCP memory at its peak, and as a fraction of tcp_mem[2].
    pub peak_tcp_memory_bytes: u64,
    pub tcp_memory_of_max: Option<f64>,
    /// The kernel's orphans at their peak, and as a fraction of the first
    /// abort threshold (tcp_max_orphans / 4).
    pub peak_orphans: u64,
    pub orphans_of_threshold: Option<f64>,
    /// What the groups held at their peaks (summed), and the census'
    /// orphans at peak: the traced namespace's own.
    pub peak_held_bytes: u64,
    pub peak_census_orphans: u64,
    /// Aborts on memory over the window, all causes.
    pub aborts: u64,
}

impl HostFigures {
    fn of(s: &State) -> HostFigures {
        let w = &s.window;
        let page = s.page();
        let limit = s.tcp_mem().map(|m| m[2] * page).filter(|m| *m > 0);
        let peak_tcp_memory_bytes = w.peak_allocated_pages.saturating_mul(page);
        let threshold = s.max_orphans().map(|m| m / 4).filter(|m| *m > 0);
        HostFigures {
            peak_tcp_memory_bytes,
            tcp_memory_of_max: limit.map(|l| peak_tcp_memory_bytes as f64 / l as f64),
            peak_orphans: w.peak_orphans,
            orphans_of_threshold: threshold.map(|t| w.peak_orphans as f64 / t as f64),
            peak_held_bytes: w
                .groups
                .values()
                .fold(0u64, |a, g| a.saturating_add(g.peak_memory)),
            peak_census_orphans: w.peak_census_orphans,
            aborts: w.aborts_where(|_| true),
        }
    }
}

impl Judged {
    /// The instance's worst finding, for ranking: what fired, then
    /// severity, then nearness to its limit; then how many findings at
    /// warn or above.
    /// Among hosts alike, the one whose groups held the most at their
    /// peak (orphans first): where the trouble was in the window.
    fn rank_key(&self) -> (bool, Severity, u64, usize, u64, u64) {
        let f = self.report.findings.first();
        (
            f.is_some_and(|f| f.fired),
            f.map_or(Severity::Ok, |f| f.severity),
            f.map_or(0, |f| (f.nearness * 1e6) as u64),
            self.report
                .findings
                .iter()
                .filter(|f| f.severity >= Severity::Warn)
                .count(),
            self.figures.peak_census_orphans,
            self.figures.peak_held_bytes,
        )
    }

    pub fn worst(&self) -> Severity {
        self.report
            .findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    pub fn count(&self, sev: Severity) -> usize {
        self.report
            .findings
            .iter()
            .filter(|f| f.severity == sev)
            .count()
    }
}

/// A finding several hosts share: same rule, same severity.
#[derive(Clone, Debug, Serialize)]
pub struct Shared {
    pub id: &'static str,
    pub severity: Severity,
    pub fired: bool,
    /// The hosts with it, worst first (as ranked).
    pub hosts: Vec<String>,
    /// Of how many judged.
    pub of: usize,
    /// The first host's title: the numbers are that host's.
    pub example: String,
}

/// One host's share of a group found on several.
#[derive(Clone, Debug, Serialize)]
pub struct HostShare {
    pub instance: String,
    pub memory_bytes: u64,
    pub peak_memory_bytes: u64,
    pub peak_orphans: u64,
    pub sockets: u64,
}

/// A group by name across hosts (`listen:443` on 12 hosts), hosts by
/// their peak, most first.
#[derive(Clone, Debug, Serialize)]
pub struct GroupAcross {
    pub group: String,
    pub kind: String,
    pub peak_memory_bytes: u64,
    pub hosts: Vec<HostShare>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    pub source: String,
    /// Worst first.
    pub instances: Vec<Judged>,
    pub shared: Vec<Shared>,
    /// The groups holding the most at their peak, summed over hosts.
    pub groups: Vec<GroupAcross>,
    /// What Prometheus does not hold, so no rule judged.
    pub notes: Vec<String>,
}

/// What the host doctor reads that `serve` does not export.
pub const NOT_JUDGED: &[&str] = &[
    "the kernel log (run `netmem doctor` on a host for its memory messages)",
    "each abort's own figures (the orphans and tcp_mem at the moment it fired: a recording has them)",
    "cgroups' memory controllers (the NetmemCgroupSocketPressure alert watches them)",
];

/// Groups across hosts shown.
pub const MAX_GROUPS_ACROSS: usize = 10;

/// Every instance's state judged by the host doctor's rules, ranked;
/// the findings they share; the groups across them.
pub fn judge(source: String, states: Vec<(String, Read)>, span: &Span) -> FleetReport {
    let mut groups: BTreeMap<(String, String), GroupAcross> = BTreeMap::new();
    let mut instances: Vec<Judged> = Vec::new();
    for (instance, read) in states {
        let state = read.state;
        for (name, g) in &state.window.groups {
            if g.peak_memory == 0 && g.peak_orphans == 0 {
                continue;
            }
            let e = groups
                .entry((name.clone(), g.kind.clone()))
                .or_insert_with(|| GroupAcross {
                    group: name.clone(),
                    kind: g.kind.clone(),
                    peak_memory_bytes: 0,
                    hosts: Vec::new(),
                });
            e.peak_memory_bytes = e.peak_memory_bytes.saturating_add(g.peak_memory);
            e.hosts.push(HostShare {
                instance: instance.clone(),
                memory_bytes: g.memory,
                peak_memory_bytes: g.peak_memory,
                peak_orphans: g.peak_orphans,
                sockets: g.sockets,
            });
        }
        let mut findings = diagnose(&state);
        if let Some(t) = read.silent_since {
            findings.insert(0, silent(&instance, t, span));
        }
        instances.push(Judged {
            figures: HostFigures::of(&state),
            report: Report {
                source: format!("instance {instance}"),
                kernel_release: state.host.kernel_release.clone(),
                namespace: state.host.traced_netns().unwrap_or_else(|| "?".into()),
                unreadable: state.unreadable.clone(),
                findings,
            },
            instance,
        });
    }
    instances.sort_by(|a, b| {
        b.rank_key()
            .cmp(&a.rank_key())
            .then(a.instance.cmp(&b.instance))
    });
    let mut shared: Vec<Shared> = Vec::new();
    for j in &instances {
        // What hosts share that needs a look (an info finding on every
        // host that holds memory says nothing of the fleet).
        for f in &j.report.findings {
            if f.severity < Severity::Warn {
                continue;
            }
            match shared
                .iter_mut()
                .find(|s| s.id == f.id && s.severity == f.severity)
            {
                Some(s) => {
                    if !s.hosts.contains(&j.instance) {
                        s.hosts.push(j.instance.clone());
                    }
                    s.fired |= f.fired;
                }
                None => shared.push(Shared {
                    id: f.id,
                    severity: f.severity,
                    fired: f.fired,
                    hosts: vec![j.instance.clone()],
                    of: 0,
                    example: f.title.clone(),
                }),
            }
        }
    }
    let of = instances.len();
    for s in shared.iter_mut() {
        s.of = of;
    }
    shared.sort_by(|a, b| {
        b.fired
            .cmp(&a.fired)
            .then(b.severity.cmp(&a.severity))
            .then(b.hosts.len().cmp(&a.hosts.len()))
            .then(a.id.cmp(b.id))
    });
    let mut groups: Vec<GroupAcross> = groups.into_values().collect();
    for g in groups.iter_mut() {
        g.hosts.sort_by(|a, b| {
            b.peak_memory_bytes
                .cmp(&a.peak_memory_bytes)
                .then(a.instance.cmp(&b.instance))
        });
    }
    groups.sort_by(|a, b| {
        b.peak_memory_bytes
            .cmp(&a.peak_memory_bytes)
            .then(a.group.cmp(&b.group))
    });
    groups.truncate(MAX_GROUPS_ACROSS);
    FleetReport {
        source,
        instances,
        shared,
        groups,
        notes: NOT_JUDGED.iter().map(|s| s.to_string()).collect(),
    }
}

/// A host that stopped reporting: its figures end at its last interval.
fn silent(instance: &str, t: f64, span: &Span) -> Finding {
    let at = crate::format::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0)));
    let ago = Duration::from_secs((span.end_unix - t).max(0.0) as u64);
    let mut f = Finding::new(
        "fleet.silent",
        Severity::Warn,
        format!(
            "{instance} has reported nothing for {} (its last interval: {at})",
            humantime::format_duration(ago)
        ),
    );
    f.ev("last interval", &at).ev("the window's end", &span.end);
    f.explanation = "netmem serve on the host stopped, or Prometheus stopped scraping it: its figures end at its last interval, and nothing after is judged. NetmemDown alerts on it.".into();
    f.action.push(format!(
        "check the target (`up{{instance=\"{instance}\"}}` in Prometheus) and `systemctl status netmem` on the host"
    ));
    f.nearness = 1.0;
    f
}

/// A finding as one line of a list: `[WARN] tcp_mem.ram: TITLE`.
pub fn headline(f: &Finding) -> String {
    format!(
        "[{}] {}: {}",
        f.severity.name().to_uppercase(),
        f.id,
        f.title
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    fn span() -> Span {
        Span {
            start: "t0".into(),
            end: "t1".into(),
            end_unix: 1e9,
        }
    }

    fn series(rows: Vec<(&str, Vec<Sample>)>) -> Series {
        rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// A host as its serve exports it: 4 GiB of RAM, tcp_mem above
    /// RAM/3, 12 orphan aborts over the window of which 10 on one group.
    fn lb(orphans_peak: f64) -> Series {
        let page = 4096.0;
        series(vec![
            (
                "host_info",
                vec![sample(
                    &[("kernel_release", "6.1.0"), ("netns", "host")],
                    1.0,
                )],
            ),
            (
                "sysctl",
                vec![
                    sample(
                        &[
                            ("sysctl", "net.ipv4.tcp_mem"),
                            ("value", "100000 400000 600000"),
                        ],
                        1.0,
                    ),
                    sample(
                        &[("sysctl", "net.ipv4.tcp_max_orphans"), ("value", "1024")],
                        1.0,
                    ),
                ],
            ),
            ("ram", vec![sample(&[], 4.0 * (1u64 << 30) as f64)]),
            ("page", vec![sample(&[], page)]),
            (
                "tcp_mem",
                vec![
                    sample(&[("threshold", "min")], 100000.0 * page),
                    sample(&[("threshold", "pressure")], 400000.0 * page),
                    sample(&[("threshold", "max")], 600000.0 * page),
                ],
            ),
            ("alloc", vec![sample(&[], 1000.0 * page)]),
            ("alloc_peak", vec![sample(&[], 5000.0 * page)]),
            ("orphans", vec![sample(&[], 3.0)]),
            ("orphans_peak", vec![sample(&[], orphans_peak)]),
            ("max_orphans", vec![sample(&[], 1024.0)]),
            (
                "aborts",
                vec![
                    sample(&[("cause", "orphans")], 11.6),
                    sample(&[("cause", "tcp_mem")], 0.0),
                ],
            ),
            (
                "g_aborts",
                vec![sample(
                    &[
                        ("group", "listen:443"),
                        ("kind", "listen"),
                        ("cause", "orphans"),
                    ],
                    10.2,
                )],
            ),
            (
                "g_mem_peak",
                vec![sample(&[("group", "listen:443"), ("kind", "listen")], 9e6)],
            ),
            (
                "g_mem",
                vec![sample(
                    &[
                        ("group", "listen:443"),
                        ("kind", "listen"),
                        ("queue", "wmem_queued"),
                    ],
                    1e6,
                )],
            ),
            (
                "g_sockets",
                vec![sample(&[("group", "listen:443"), ("kind", "listen")], 40.0)],
            ),
            (
                "netns:TCPAbortOnMemory",
                vec![sample(&[("netns", "host")], 50.0)],
            ),
            (
                "netns+:TCPAbortOnMemory",
                vec![sample(&[("netns", "host")], 11.8)],
            ),
        ])
    }

    #[test]
    fn a_hosts_series_become_the_window_the_rules_read() {
        let s = state_of("lb1:9464", &lb(300.0), &BTreeMap::new(), &span()).state;
        let w = &s.window;
        assert_eq!(s.host.kernel_release, "6.1.0");
        assert_eq!(s.host.number("net.ipv4.tcp_max_orphans"), Some(1024));
        assert_eq!(s.host.nstat.get("TCPAbortOnMemory"), Some(&50));
        assert_eq!((w.allocated_pages, w.peak_allocated_pages), (1000, 5000));
        assert_eq!((w.orphans, w.peak_orphans), (3, 300));
        // 12 aborts by cause (increase() extrapolated), 10 of them the
        // group's: the other 2 are no exported group's.
        assert_eq!(w.aborts_where(|c| c == "orphans"), 12);
        let unattributed = w
            .abort_counts
            .iter()
            .find(|((_, g), _)| &**g == "unattributed");
        assert_eq!(unattributed.map(|(_, n)| *n), Some(2));
        let g = &w.groups["listen:443"];
        assert_eq!(
            (g.memory, g.peak_memory, g.sockets),
            (1_000_000, 9_000_000, 40)
        );
        assert_eq!(w.netns["host"].grew.get("TCPAbortOnMemory"), Some(&12));
        let ids: Vec<&str> = diagnose(&s).iter().map(|f| f.id).collect();
        assert_eq!(ids[0], "orphans", "{ids:?}");
        let aborts = diagnose(&s).into_iter().find(|f| f.id == "aborts").unwrap();
        assert!(
            aborts.evidence.iter().all(|e| !e.value.contains('?')),
            "figures Prometheus does not have are not shown as unknowns: {:?}",
            aborts.evidence
        );
        assert!(ids.contains(&"tcp_mem.ram"), "{ids:?}");
    }

    #[test]
    fn findings_hosts_share_are_said_once_with_their_hosts() {
        let ram = BTreeMap::new();
        let states = vec![
            (
                "a".to_string(),
                state_of("a", &lb(100.0), &ram, &span()).state,
            ),
            (
                "b".to_string(),
                state_of("b", &lb(900.0), &ram, &span()).state,
            ),
        ];
        let states: Vec<(String, Read)> = states
            .into_iter()
            .map(|(i, state)| {
                (
                    i,
                    Read {
                        state,
                        silent_since: None,
                    },
                )
            })
            .chain([(
                "c".to_string(),
                Read {
                    state: State::default(),
                    silent_since: None,
                },
            )])
            .collect();
        let r = judge("test".into(), states, &span());
        let order: Vec<&str> = r.instances.iter().map(|j| j.instance.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"], "nearest its orphan limit first");
        let ram = r.shared.iter().find(|s| s.id == "tcp_mem.ram").unwrap();
        assert_eq!(
            (ram.hosts.clone(), ram.of),
            (vec!["b".to_string(), "a".to_string()], 3)
        );
        let g = &r.groups[0];
        assert_eq!(
            (g.group.as_str(), g.hosts.len(), g.peak_memory_bytes),
            ("listen:443", 2, 18_000_000)
        );
        assert!(r.instances[0].figures.orphans_of_threshold.unwrap() > 3.0);
    }

    #[test]
    fn a_selector_is_label_matchers_only() {
        assert_eq!(matchers("{job=\"netmem\"}").unwrap(), "job=\"netmem\"");
        assert_eq!(matchers(" job=~\"lb.*\" ").unwrap(), "job=~\"lb.*\"");
        assert_eq!(matchers("").unwrap(), "");
        assert_eq!(matchers("{a=\"}{)(\"}").unwrap(), "a=\"}{)(\"");
        assert!(matchers("{a=\"x\"}) or vector(1)").is_err());
        assert!(matchers("{a=\"x}").is_err());
        assert_eq!(
            matchers("{job!=\"a\\\"b\", instance!~\"x.*\"}").unwrap(),
            "job!=\"a\\\"b\", instance!~\"x.*\""
        );
        // A metric name, or a label of netmem's own series (a host
        // matched by it would look empty).
        for bad in [
            "netmem_tcp_orphans",
            "{group=\"listen:443\"}",
            "netns=\"a\"",
            "{1a=\"x\"}",
            "{a=x}",
        ] {
            assert!(matchers(bad).is_err(), "{bad}");
        }
        let e = matchers("{group=\"listen:443\"}").unwrap_err().to_string();
        assert!(e.contains("a label of netmem's own series"), "{e}");
        let q = queries("job=\"n\"", Duration::from_secs(3600));
        assert!(
            q.iter()
                .all(|(_, q)| q.contains("job=\"n\"") || q.contains("node_memory")),
            "{q:?}"
        );
        assert!(q
            .iter()
            .any(|(_, q)| q.contains("netmem_tcp_memory_limit_bytes{job=\"n\"}[3600s]")));
    }

    #[test]
    fn node_exporters_ram_is_found_by_host() {
        let mut f: BTreeMap<String, Series> = BTreeMap::new();
        f.insert(
            "lb1:9100".into(),
            series(vec![(NODE_RAM, vec![sample(&[], 8e9)])]),
        );
        f.insert(
            "lb1:9464".into(),
            series(vec![("alloc", vec![sample(&[], 1.0)])]),
        );
        assert_eq!(instances(&f), ["lb1:9464"]);
        let ram = node_ram(&f);
        let s = state_of("lb1:9464", &f["lb1:9464"], &ram, &span()).state;
        assert_eq!(s.host.mem_total_bytes, Some(8_000_000_000));
    }
}
