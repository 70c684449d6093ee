//! JSON lines: the documented contract (README, "JSON lines"). Field names
//! and meanings only grow; `tests::contract` pins every line type's fields.

use std::io::Write;

use anyhow::Result;
use netmem_common::{Counter, GroupKey, GROUP_BACKEND, GROUP_CGROUP, GROUP_PROCESS};
use serde_json::{json, Map, Value};

use super::Sink;
use crate::format::rfc3339;
use crate::hooks::HookStatus;
use crate::model::event::{family_name, state_name, Abort, Body, ProtoMem, Protocol};
use crate::model::group::{group_kind, group_name, ip_from, GroupRow};
use crate::model::owner;
use crate::model::proxy::{GroupProxy, ProxyView, Side};
use crate::model::{Context, Event, Interval, Summary};

pub struct JsonSink<W: Write> {
    out: W,
    /// The proxies naming groups (`kind (source)`), for the probes line.
    proxies: Vec<String>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink {
            out,
            proxies: Vec::new(),
        }
    }

    /// The writer, e.g. to take what was written to a buffer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn line(&mut self, v: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn host(&mut self, h: &crate::sources::host::Host) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.line(&json!({"type": "host", "ts": ts, "host": h}))
    }

    fn report(&mut self, r: &crate::doctor::Report) -> Result<()> {
        self.line(&json!({
            "type": "doctor", "source": r.source, "kernel_release": r.kernel_release,
            "namespace": r.namespace, "unreadable": r.unreadable, "findings": r.findings.len(),
        }))?;
        for (i, f) in r.findings.iter().enumerate() {
            let mut v = serde_json::to_value(f)?;
            v["type"] = json!("finding");
            v["rank"] = json!(i + 1);
            self.line(&v)?;
        }
        self.flush()
    }

    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.line(&json!({"type": "probes", "ts": ts, "hooks": hooks, "proxies": self.proxies}))?;
        self.flush()
    }

    fn probe_report(&mut self, hooks: &[HookStatus]) -> Result<()> {
        for h in hooks {
            self.line(&serde_json::to_value(h)?)?;
        }
        self.flush()
    }

    fn proxies(&mut self, p: &[std::sync::Arc<ProxyView>]) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.proxies.clear();
        for v in p {
            self.line(&proxy_object(&ts, v))?;
            if v.map.is_some() {
                self.proxies.push(v.describe_source());
            }
        }
        self.flush()
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        self.line(&Value::Object(event_object(e)))
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        for v in interval_objects(i) {
            self.line(&v)?;
        }
        self.flush()
    }

    fn summary(&mut self, s: &Summary) -> Result<()> {
        use netmem_common::Stat;
        let ts = rfc3339(s.ts.unwrap_or_else(std::time::SystemTime::now));
        self.line(&json!({
            "type": "summary", "ts": ts, "events": s.events,
            "lost_events": s.stat(Stat::RingbufLost),
            "events_suppressed": s.events_suppressed,
            "events_unread_at_exit": s.events_unread_at_exit,
            "group_map_full": s.stat(Stat::GroupMapFull),
            "orphan_map_full": s.stat(Stat::OrphanMapFull),
            "duration_s": (s.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        }))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// An interval's lines: its context, then one line per group, each built
/// as it is taken (at 1000+ groups, building them all first held
/// megabytes at once).
pub fn interval_objects(i: &Interval) -> impl Iterator<Item = Value> + '_ {
    let ts = rfc3339(i.ts);
    let mut c = context_object(&ts, &i.context);
    if let Some(l) = &i.live {
        let r = &l.routes;
        c["lost_events"] = json!(l.loss.lost_events);
        c["events_suppressed"] = json!(l.loss.events_suppressed);
        c["group_map_full"] = json!(l.loss.group_map_full);
        c["memory_pressure"] = json!(l.memory_pressure);
        // 0: the groups below were read this interval.
        c["census_age_ms"] = json!(l.census_age.map_or(0, |a| a.as_millis() as u64));
        c["route_exceptions"] = json!({
            "inserted": r.inserted,
            "per_s": (r.per_s() * 100.0).round() / 100.0,
            "by_dst": r.by_dst.iter().map(|(d, n)| json!({"dst": d, "count": n})).collect::<Vec<_>>(),
            "rt6_cached": r.rt6_cached,
            "cached": r.cached,
        });
    }
    std::iter::once(c).chain(
        i.groups
            .iter()
            .map(move |(g, row)| group_object(&ts, g, row, i.live.is_some(), i.time_wait_counted)),
    )
}

pub fn context_object(ts: &str, c: &Context) -> Value {
    json!({
        "type": "context", "ts": ts,
        "tcp_mem_pages": c.tcp_mem_pages, "memory_allocated_pages": c.memory_allocated_pages,
        "orphans": c.orphans, "orphans_census": c.orphans_census, "max_orphans": c.max_orphans,
        "sockets_inuse": c.sockets_inuse, "tw": c.tw, "page_size": c.page_size,
        "tcp6_inuse": c.tcp6_inuse, "udp_inuse": c.udp_inuse,
        "udp_memory_allocated_pages": c.udp_memory_allocated_pages, "udp_mem_pages": c.udp_mem_pages,
    })
}

/// One group line. `time_wait`: whether the pass counted TIME_WAIT
/// sockets (else the field is null).
pub fn group_object(ts: &str, g: &GroupKey, row: &GroupRow, live: bool, time_wait: bool) -> Value {
    let m = &row.mem;
    let mut o = Map::new();
    o.insert("type".into(), json!("group"));
    o.insert("ts".into(), json!(ts));
    o.insert("group".into(), json!(group_name(g)));
    o.insert("kind".into(), json!(group_kind(g)));
    o.insert("port".into(), json!(g.port));
    if g.kind == GROUP_BACKEND {
        o.insert("addr".into(), json!(ip_from(g.family, &g.addr).to_string()));
    }
    netns_fields(g, &mut o);
    owner_group_fields(g, row, &mut o);
    if let Some(p) = &row.proxy {
        proxy_fields(p, &mut o);
    }
    if let Some(w) = &row.owners {
        o.insert("owners".into(), owners_json(w));
    }
    for (k, v) in [
        ("sockets", m.sockets),
        ("listeners", m.listeners),
        ("time_wait", m.time_wait),
        ("orphans", m.orphans),
        ("rmem_bytes", m.rmem),
        ("wmem_queued_bytes", m.wmem_queued),
        ("fwd_alloc_bytes", m.fwd_alloc),
        ("orphan_bytes", m.orphan_bytes),
        ("drops", m.drops),
    ] {
        o.insert(k.into(), json!(v));
    }
    if !time_wait {
        // Skipped by the pass (see sockdiag::States::Buffered).
        o.insert("time_wait".into(), Value::Null);
    }
    if live {
        for c in Counter::ALL {
            o.insert(c.name().into(), json!(row.count(*c)));
        }
    }
    Value::Object(o)
}

/// What the proxy calls a group (or an event's group), and its buffer
/// settings for that side. The first name is in `proxy_frontend` /
/// `proxy_backend` / `proxy_server`; the lists hold every one when the
/// kernel's group is shared.
fn proxy_fields(p: &GroupProxy, o: &mut Map<String, Value>) {
    o.insert("proxy".into(), json!(p.kind));
    o.insert("proxy_side".into(), json!(p.side.name()));
    match p.side {
        Side::Client => {
            o.insert("proxy_frontend".into(), json!(p.frontend()));
            o.insert("proxy_frontends".into(), json!(p.frontends));
        }
        Side::Server => {
            o.insert("proxy_backend".into(), json!(p.backend()));
            o.insert("proxy_server".into(), json!(p.server()));
            o.insert("proxy_servers".into(), json!(p.server_paths()));
        }
    }
    o.insert(
        "proxy_tune".into(),
        json!({"bufsize": p.bufsize, "rcvbuf": p.tune.rcvbuf, "sndbuf": p.tune.sndbuf,
               "from_configuration": p.tune.known}),
    );
}

/// A `proxy` line: where a proxy was read, what it named, its settings,
/// and what could not be read.
pub fn proxy_object(ts: &str, v: &ProxyView) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("proxy"));
    o.insert("ts".into(), json!(ts));
    o.insert("proxy".into(), json!(v.kind));
    o.insert("source".into(), json!(v.source));
    if owner::all_namespaces() {
        o.insert("netns".into(), json!(owner::netns_name(v.netns)));
        o.insert("netns_inode".into(), json!(v.netns));
    }
    o.insert("named".into(), json!(v.map.is_some()));
    o.insert("problems".into(), json!(v.problems));
    if let Some(m) = &v.map {
        let mut fe: std::collections::BTreeMap<&str, std::collections::BTreeSet<u16>> =
            Default::default();
        for l in &m.listeners {
            fe.entry(&l.frontend).or_default().insert(l.port);
        }
        let frontends: Vec<Value> = fe
            .iter()
            .map(|(n, ports)| json!({"name": n, "ports": ports}))
            .collect();
        let backends: Vec<Value> = m
            .backends
            .iter()
            .map(|(b, from)| {
                let servers: Vec<Value> = m
                    .servers
                    .iter()
                    .filter(|s| &s.backend == b)
                    .map(|s| json!({"name": s.server, "addr": s.addr.to_string()}))
                    .collect();
                json!({"name": b, "frontends": from, "servers": servers})
            })
            .collect();
        o.insert("frontends".into(), Value::Array(frontends));
        o.insert("backends".into(), Value::Array(backends));
        use crate::model::proxy::Side;
        let t = &m.tune;
        let (c, s) = (t.side(Side::Client), t.side(Side::Server));
        o.insert(
            "tune".into(),
            json!({
                "bufsize": t.buffer(),
                "rcvbuf_client": c.rcvbuf, "sndbuf_client": c.sndbuf,
                "rcvbuf_server": s.rcvbuf, "sndbuf_server": s.sndbuf,
                "from_configuration": s.known,
            }),
        );
        o.insert("origin".into(), json!(m.origin));
        o.insert("notes".into(), json!(m.notes));
    }
    Value::Object(o)
}

/// With `--netns all`: the group's namespace, by name and inode.
fn netns_fields(g: &GroupKey, o: &mut Map<String, Value>) {
    if owner::all_namespaces() && g.netns != 0 {
        o.insert("netns".into(), json!(owner::netns_name(g.netns)));
        o.insert("netns_inode".into(), json!(g.netns));
    }
}

fn cgroup_fields(c: &crate::sources::owners::Cgroup, o: &mut Map<String, Value>) {
    o.insert("cgroup".into(), json!(c.path));
    o.insert("cgroup_id".into(), json!(c.id));
    o.insert("container".into(), json!(c.container));
    o.insert("pod".into(), json!(c.pod));
}

/// An owner group's own identity (`--group-by process|cgroup`).
fn owner_group_fields(g: &GroupKey, row: &GroupRow, o: &mut Map<String, Value>) {
    let id = owner::owner_id(g);
    match g.kind {
        GROUP_PROCESS => {
            o.insert("pid".into(), json!((id != 0).then_some(id)));
            o.insert("comm".into(), json!(owner::comm(id as u32)));
        }
        GROUP_CGROUP => {
            match owner::cgroup(id) {
                Some(c) => cgroup_fields(&c, o),
                None => {
                    o.insert("cgroup".into(), Value::Null);
                }
            }
            // The cross-check: what the memory controller charged the
            // cgroup for sockets, beside what its sockets hold.
            let memcg = row
                .owners
                .as_ref()
                .and_then(|w| w.cgroups.iter().find(|c| c.cgroup.id == id))
                .and_then(|c| c.memcg_sock);
            o.insert("memcg_sock_bytes".into(), json!(memcg));
        }
        _ => {}
    }
}

fn owners_json(w: &owner::Owners) -> Value {
    let procs: Vec<Value> = w
        .processes
        .iter()
        .map(|p| json!({"pid": p.pid, "comm": p.comm, "sockets": p.sockets, "bytes": p.bytes}))
        .collect();
    let cgs: Vec<Value> = w
        .cgroups
        .iter()
        .map(|c| {
            let mut v = Map::new();
            cgroup_fields(&c.cgroup, &mut v);
            v.insert("sockets".into(), json!(c.sockets));
            v.insert("bytes".into(), json!(c.bytes));
            v.insert("memcg_sock_bytes".into(), json!(c.memcg_sock));
            Value::Object(v)
        })
        .collect();
    json!({
        "processes": procs,
        "more_processes": w.more_processes,
        "cgroups": cgs,
        "more_cgroups": w.more_cgroups,
        "unheld_sockets": w.unheld,
    })
}

fn mem_key(m: &ProtoMem) -> &'static str {
    if m.protocol == Protocol::Udp {
        "udp_mem_pages"
    } else {
        "tcp_mem_pages"
    }
}

/// Every field of an event, named as the contract says. The text sink
/// prints the same list, so both outputs say the same thing.
pub fn event_object(e: &Event) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("type".into(), json!("event"));
    o.insert("ts".into(), json!(rfc3339(e.ts)));
    o.insert("event".into(), json!(e.body.kind().name()));
    o.insert("tier".into(), json!(e.tier.map_or("none", |t| t.name())));
    if let Some(g) = &e.group {
        o.insert("group".into(), json!(group_name(g)));
        netns_fields(g, &mut o);
    }
    if let Some(p) = &e.proxy {
        proxy_fields(p, &mut o);
    }
    if let Some(w) = &e.owner {
        let mut v = Map::new();
        v.insert("pid".into(), json!(w.pid));
        v.insert("comm".into(), json!(w.comm));
        v.insert("cgroup_id".into(), json!(w.cgroup_id));
        if let Some(c) = &w.cgroup {
            cgroup_fields(c, &mut v);
        }
        v.insert("via".into(), json!(w.via.name()));
        o.insert("owner".into(), Value::Object(v));
    }
    if let Some(s) = &e.sock {
        o.insert("local".into(), json!(s.local.to_string()));
        o.insert("remote".into(), json!(s.remote.to_string()));
        o.insert("protocol".into(), json!(s.protocol.name()));
        o.insert("state".into(), json!(state_name(s.state)));
        for (k, v) in [
            ("rmem_alloc", s.rmem_alloc),
            ("rcvbuf", s.rcvbuf),
            ("wmem_queued", s.wmem_queued),
            ("wmem_alloc", s.wmem_alloc),
            ("sndbuf", s.sndbuf),
            ("fwd_alloc", s.fwd_alloc),
            ("sk_drops", s.drops),
        ] {
            o.insert(k.into(), json!(v));
        }
    }
    body_fields(&e.body, &mut o);
    o
}

/// The kind-specific fields. One match arm per kind on purpose, like the
/// decoder: each kind's fields read in one place.
fn body_fields(b: &Body, o: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    match b {
        Body::ExceedBufLimit {
            allocated_pages,
            direction,
            mem,
        } => {
            put("allocated_pages", json!(allocated_pages));
            put("direction", json!(direction.name()));
            put(mem_key(mem), json!(mem.pages));
        }
        Body::RcvqueueFull { truesize } => put("truesize", json!(truesize)),
        Body::AbortOnMemory(a) => abort_fields(a, o),
        Body::SkbDrop {
            reason,
            truesize,
            len,
        } => {
            put("reason", json!(reason));
            put("truesize", json!(truesize));
            put("len", json!(len));
        }
        Body::DestroyWithData {
            unread_bytes,
            unacked_bytes,
        } => {
            put("unread_bytes", json!(unread_bytes));
            put("unacked_bytes", json!(unacked_bytes));
        }
        Body::OrphanBorn { bytes, via } => {
            put("bytes", json!(bytes));
            put("via", json!(via.map_or("unknown", |v| v.name())));
        }
        Body::OrphanGone {
            lifetime,
            bytes_at_birth,
            last_state,
            ended,
        } => {
            put(
                "lifetime_ms",
                json!(lifetime.map(|d| d.as_nanos() as f64 / 1e6)),
            );
            put("bytes_at_birth", json!(bytes_at_birth));
            put("last_state", json!(state_name(*last_state)));
            put("ended", json!(ended.name()));
        }
        Body::PressureEnter {
            allocated_pages,
            tcp_mem_pages,
        } => {
            put("allocated_pages", json!(allocated_pages));
            put("tcp_mem_pages", json!(tcp_mem_pages));
        }
        Body::PressureLeave {
            allocated_pages,
            tcp_mem_pages,
            duration,
        } => {
            put("allocated_pages", json!(allocated_pages));
            put("tcp_mem_pages", json!(tcp_mem_pages));
            put(
                "duration_ms",
                json!(duration.map(|d| d.as_nanos() as f64 / 1e6)),
            );
        }
        Body::RouteException(r) => {
            put("family", json!(family_name(r.family)));
            put("dst", json!(r.dst.to_string()));
            put("gateway", json!(r.gateway.map(|g| g.to_string())));
            put("dev", json!(r.dev));
            put("pmtu", json!(r.pmtu));
            put(
                "exception",
                json!(if r.is_pmtu() { "pmtu" } else { "redirect" }),
            );
        }
        Body::Synthetic { seq } => put("seq", json!(seq)),
    }
}

fn abort_fields(a: &Abort, o: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    put("cause", json!(a.cause.name()));
    put("via", json!(a.via.map_or("unknown", |v| v.name())));
    put("orphans", json!(a.orphans));
    put("orphans_source", json!(a.orphans_source.name()));
    put("shift", json!(a.shift));
    put("max_orphans", json!(a.max_orphans));
    put("max_orphans_source", json!(a.max_orphans_source.name()));
    put("allocated_pages", json!(a.allocated_pages));
    put(mem_key(&a.mem), json!(a.mem.pages));
    put("sock_min_sndbuf", json!(a.sock_min_sndbuf));
    if let Some((orphans, mem)) = a.kernel_log {
        put(
            "kernel_log",
            json!({"too_many_orphans": orphans, "out_of_tcp_mem": mem}),
        );
    }
}

#[cfg(test)]
mod tests {
    //! The contract: for each line type and event kind, the exact set of
    //! fields README documents. A field may be added here (and in README);
    //! none may disappear.
    use super::*;
    use crate::model::decode::{decoder_for_tests, raw_for_tests};
    use netmem_common::{
        payload, AbortSource, EventKind, OrphanSource, Payload, SockInfo, AF_INET, IPPROTO_TCP,
    };
    use std::collections::BTreeSet;

    const SOCK_FIELDS: &[&str] = &[
        "local",
        "remote",
        "protocol",
        "state",
        "rmem_alloc",
        "rcvbuf",
        "wmem_queued",
        "wmem_alloc",
        "sndbuf",
        "fwd_alloc",
        "sk_drops",
    ];
    const EVENT_HEAD: &[&str] = &["type", "ts", "event", "tier", "group"];

    const README: &str = include_str!("../../../README.md");

    /// Every field a line has is documented in README's JSON section.
    fn keys(v: &Map<String, Value>) -> BTreeSet<String> {
        let json = &README[README
            .find("## JSON lines")
            .expect("README has its JSON section")..];
        for k in v.keys() {
            assert!(
                json.contains(&format!("`{k}`")) || json.contains(&format!("`\"{k}\"`")),
                "README's JSON section does not name `{k}`"
            );
        }
        v.keys().cloned().collect()
    }

    fn want(parts: &[&[&str]]) -> BTreeSet<String> {
        parts
            .iter()
            .flat_map(|p| p.iter())
            .map(|s| s.to_string())
            .collect()
    }

    fn decode<P: Payload>(p: P, with_sock: bool) -> Map<String, Value> {
        let names = |r: u32| format!("R{r}");
        let d = decoder_for_tests(&names);
        let mut sock = SockInfo::default();
        if with_sock {
            sock.present = 1;
            sock.family = AF_INET;
            sock.protocol = IPPROTO_TCP;
        }
        event_object(&d.decode(&raw_for_tests(p, sock)).unwrap())
    }

    #[test]
    fn contract_event_fields() {
        let cases: Vec<(EventKind, Map<String, Value>, Vec<&str>)> = vec![
            (
                EventKind::ExceedBufLimit,
                decode(payload::ExceedBufLimit::default(), true),
                vec!["allocated_pages", "direction", "tcp_mem_pages"],
            ),
            (
                EventKind::RcvqueueFull,
                decode(payload::RcvqueueFull::default(), true),
                vec!["truesize"],
            ),
            (
                EventKind::AbortOnMemory,
                decode(
                    payload::AbortOnMemory {
                        source: AbortSource::CheckOom as i64,
                        ..Default::default()
                    },
                    true,
                ),
                vec![
                    "cause",
                    "via",
                    "orphans",
                    "orphans_source",
                    "shift",
                    "max_orphans",
                    "max_orphans_source",
                    "allocated_pages",
                    "tcp_mem_pages",
                    "sock_min_sndbuf",
                ],
            ),
            (
                EventKind::SkbDrop,
                decode(payload::SkbDrop::default(), true),
                vec!["reason", "truesize", "len"],
            ),
            (
                EventKind::DestroyWithData,
                decode(payload::DestroyWithData::default(), true),
                vec!["unread_bytes", "unacked_bytes"],
            ),
            (
                EventKind::OrphanBorn,
                decode(
                    payload::OrphanBorn {
                        source: OrphanSource::SockDiag as i64,
                        ..Default::default()
                    },
                    true,
                ),
                vec!["bytes", "via"],
            ),
            (
                EventKind::OrphanGone,
                decode(payload::OrphanGone::default(), true),
                vec!["lifetime_ms", "bytes_at_birth", "last_state", "ended"],
            ),
            (
                EventKind::PressureEnter,
                decode(payload::PressureEnter::default(), true),
                vec!["allocated_pages", "tcp_mem_pages"],
            ),
            (
                EventKind::PressureLeave,
                decode(payload::PressureLeave::default(), true),
                vec!["allocated_pages", "tcp_mem_pages", "duration_ms"],
            ),
        ];
        // Every kind a hook streams is pinned here: a new kind fails this
        // test until its fields are listed (and documented in README).
        let mut covered: Vec<EventKind> = cases.iter().map(|c| c.0).collect();
        covered.extend([EventKind::RouteException, EventKind::Synthetic]);
        for k in EventKind::ALL {
            assert!(covered.contains(k), "{k:?} has no contract case");
        }
        for (kind, got, fields) in cases {
            assert_eq!(got["event"], kind.name());
            assert_eq!(
                keys(&got),
                want(&[EVENT_HEAD, SOCK_FIELDS, &fields]),
                "{kind:?}"
            );
        }
        let r = decode(
            payload::RouteException {
                family: AF_INET as i64,
                pmtu: 1280,
            },
            false,
        );
        assert_eq!(
            keys(&r),
            want(&[
                &["type", "ts", "event", "tier"],
                &["family", "dst", "gateway", "dev", "pmtu", "exception"]
            ])
        );
        assert_eq!(r["exception"], "pmtu");
        assert_eq!(r["gateway"], Value::Null);
        let d = decode(
            payload::SkbDrop {
                reason: 6,
                truesize: 768,
                len: 100,
            },
            true,
        );
        assert_eq!(d["reason"], "R6");
        assert_eq!(d["tier"], "tracepoint");
        let o = decode(
            payload::OrphanBorn {
                bytes: 5,
                source: OrphanSource::TcpClose as i64,
                ..Default::default()
            },
            true,
        );
        assert_eq!(o["via"], "tcp_close");
        let a = decode(
            payload::AbortOnMemory {
                source: AbortSource::Nstat as i64,
                shift: -1,
                ..Default::default()
            },
            true,
        );
        assert_eq!(a["via"], "nstat TCPAbortOnMemory");
        assert_eq!(a["shift"], Value::Null);
    }

    #[test]
    fn contract_host_fields() {
        let mut sink = JsonSink::new(Vec::new());
        sink.host(&crate::sources::host::Host::default()).unwrap();
        let v: Value = serde_json::from_slice(sink.get_mut()).unwrap();
        assert_eq!(
            keys(v.as_object().unwrap()),
            want(&[&["type", "ts", "host"]])
        );
        assert_eq!(
            keys(v["host"].as_object().unwrap()),
            want(&[&[
                "kernel_release",
                "page_size",
                "mem_total_bytes",
                "sysctls",
                "nstat",
                "rhash_entries",
                "hostname",
                "netmem_version",
                "netns",
                "netns_inode",
                "group_by",
                "owners",
                "interval_ms",
            ]])
        );
    }

    #[test]
    fn contract_group_and_context_fields() {
        let mem = [
            "type",
            "ts",
            "group",
            "kind",
            "port",
            "sockets",
            "listeners",
            "time_wait",
            "orphans",
            "rmem_bytes",
            "wmem_queued_bytes",
            "fwd_alloc_bytes",
            "orphan_bytes",
            "drops",
        ];
        let g = GroupKey::classify(
            AF_INET,
            40000,
            false,
            &[10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            9001,
        );
        let snap = group_object("t", &g, &GroupRow::default(), false, true);
        assert_eq!(keys(snap.as_object().unwrap()), want(&[&mem, &["addr"]]));
        assert_eq!(snap["group"], "backend:10.0.0.2:9001");
        let counts = [
            "established",
            "closed",
            "exceed_buf_limit",
            "rcvqueue_full",
            "mem_aborts",
            "skb_drops",
            "resets",
            "destroyed_with_data",
            "orphans_born",
            "orphans_gone",
            "pressure_entered",
        ];
        let live = group_object("t", &g, &GroupRow::default(), true, false);
        assert_eq!(
            keys(live.as_object().unwrap()),
            want(&[&mem, &["addr"], &counts])
        );
        assert_eq!(live["time_wait"], Value::Null);
        // Named by a proxy: its fields, each documented.
        let named = GroupRow {
            proxy: Some(std::sync::Arc::new(GroupProxy {
                kind: "haproxy",
                side: Side::Server,
                frontends: Vec::new(),
                servers: vec![("app".into(), "app3".into())],
                summed: false,
                bufsize: Some(16384),
                tune: Default::default(),
            })),
            ..Default::default()
        };
        let p = group_object("t", &g, &named, false, true);
        let proxy = [
            "proxy",
            "proxy_side",
            "proxy_backend",
            "proxy_server",
            "proxy_servers",
            "proxy_tune",
        ];
        assert_eq!(
            keys(p.as_object().unwrap()),
            want(&[&mem, &["addr"], &proxy])
        );
        assert_eq!(p["proxy_servers"], serde_json::json!(["app/app3"]));
        let view = ProxyView::new(
            "haproxy",
            "test".into(),
            0,
            Some(Default::default()),
            Vec::new(),
        );
        let line = proxy_object("t", &view);
        keys(line.as_object().unwrap());
        let c = context_object("t", &Context::default());
        assert_eq!(
            keys(c.as_object().unwrap()),
            want(&[&[
                "type",
                "ts",
                "tcp_mem_pages",
                "memory_allocated_pages",
                "orphans",
                "orphans_census",
                "max_orphans",
                "sockets_inuse",
                "tw",
                "page_size",
                "tcp6_inuse",
                "udp_inuse",
                "udp_memory_allocated_pages",
                "udp_mem_pages"
            ]])
        );
    }
}
