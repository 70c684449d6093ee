//! The contract: for each line type and event kind, the exact set of
//! fields README documents, as the writer writes them through the types.
//! A field may be added here (and in README); none may disappear. And
//! what the writer writes reads back through the types as it was.
use super::*;
use crate::model::decode::{decoder_for_tests, raw_for_tests};
use crate::model::group::GroupRow;
use crate::model::names::Names;
use crate::model::proxy::{GroupProxy, ProxyView, Side};
use crate::model::{Context, Event};
use crate::output::json::{
    context_line, event_line, event_object, group_line, proxy_line, JsonSink,
};
use crate::output::Sink;
use netmem_common::GroupKey;
use netmem_common::{
    payload, AbortSource, EventKind, OrphanSource, Payload, SockInfo, AF_INET, IPPROTO_TCP,
};
use serde_json::{Map, Value};

mod lax;
mod readme;
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

const README: &str = include_str!("../../../../README.md");

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

/// A line as the writer writes it, checked to read back through the
/// types as itself (the reading path is the recordings').
fn to_object(l: Line) -> Value {
    let v = l.to_value();
    let text = serde_json::to_string(&v).unwrap();
    let back = Line::read(serde_json::from_str(&text).unwrap()).expect("a line");
    assert_eq!(back, l, "{text}");
    assert_eq!(back.to_value(), v);
    v
}

fn written(e: &Event) -> Map<String, Value> {
    let names = Names::default();
    let v = to_object(Line::Event(event_line(e, &names)));
    assert_eq!(Value::Object(event_object(e, &names)), v);
    match v {
        Value::Object(o) => o,
        _ => unreachable!(),
    }
}

fn object_of_group(ts: &str, g: &GroupKey, row: &GroupRow, live: bool, tw: bool) -> Value {
    to_object(Line::Group(group_line(
        ts,
        g,
        row,
        live,
        tw,
        &Names::default(),
    )))
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
    let known = crate::model::names::Names::default();
    let d = decoder_for_tests(&names, &known);
    let mut sock = SockInfo::default();
    if with_sock {
        sock.present = 1;
        sock.family = AF_INET;
        sock.protocol = IPPROTO_TCP;
    }
    written(&d.decode(&raw_for_tests(p, sock)).unwrap())
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
                "cause_inferred",
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
    covered.extend([
        EventKind::RouteException,
        EventKind::Synthetic,
        // Judged in userspace: pinned in `contract_cgroup_pressure_fields`.
        EventKind::CgroupSocketPressure,
    ]);
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
    let snap = object_of_group("t", &g, &GroupRow::default(), false, true);
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
    let live = object_of_group("t", &g, &GroupRow::default(), true, false);
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
    let p = object_of_group("t", &g, &named, false, true);
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
    let line = to_object(Line::Proxy(proxy_line("t", &view, &Names::default())));
    keys(line.as_object().unwrap());
    let c = to_object(Line::Context(context_line("t", &Context::default())));
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

/// A listen group carries its accept queue; a netns line its counters
/// and their growth, each read back through the types.
#[test]
fn contract_accept_queue_and_netns_fields() {
    use crate::model::netns::NetnsFigures;
    let g = GroupKey::classify(AF_INET, 8080, true, &[0; 16], 0);
    let mut row = GroupRow::default();
    row.mem.listeners = 1;
    row.mem.accept_queue = 5;
    row.mem.accept_backlog = 4;
    row.mem.accept_full = 1;
    row.mem.listen_drops = 9;
    let l = object_of_group("t", &g, &row, false, true);
    for (k, v) in [
        ("accept_queue", 5),
        ("accept_backlog", 4),
        ("accept_full", 1),
        ("listen_drops", 9),
    ] {
        assert_eq!(l[k], v, "{l}");
    }
    // Without a listener, none of them.
    let bare = object_of_group("t", &g, &GroupRow::default(), false, true);
    assert!(bare.get("accept_queue").is_none(), "{bare}");
    let read = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    let first = NetnsFigures::since(7, &read(&[("ListenOverflows", 3)]), None);
    let f = NetnsFigures::since(7, &read(&[("ListenOverflows", 5)]), Some(&first.totals));
    let names = Names::default();
    names.name_netns(7, "web");
    let line = Line::Netns(crate::output::json::netns_line("t", &f, &names));
    let v = to_object(line.clone());
    assert_eq!(
        keys(v.as_object().unwrap()),
        want(&[&["type", "ts", "netns", "netns_inode", "counters", "delta"]])
    );
    assert_eq!(v["netns"], "web");
    assert_eq!(v["delta"]["ListenOverflows"], 2);
    assert_eq!(Line::read(v), Some(line));
    let at_first = to_object(Line::Netns(crate::output::json::netns_line(
        "t", &first, &names,
    )));
    assert_eq!(at_first["delta"], Value::Null);
}

/// `cgroup_socket_pressure`: the cgroup as its owner, the host's TCP
/// memory, and the cgroup's memory controller; and a cgroup group's line
/// (and each owners' cgroup share) carries the same figures.
#[test]
fn contract_cgroup_pressure_fields() {
    use crate::model::memcg::{EffectiveLimit, HostTcp, Local, Memcg, MemcgEvents, TcpKmem};
    use crate::model::row::{CgroupShare, Owners};
    use crate::model::types::Cgroup;
    use std::sync::Arc;
    let limit = EffectiveLimit {
        max: 32 << 20,
        current: 31 << 20,
        cgroup: "/pod".into(),
        events: MemcgEvents {
            max: Some(2),
            high: Some(1),
            ..Default::default()
        },
    };
    let memcg = Arc::new(Memcg {
        sock: Some(8 << 20),
        current: Some(20 << 20),
        max: None,
        high: None,
        events: MemcgEvents {
            high: Some(0),
            max: Some(7),
            oom: Some(0),
            oom_kill: Some(0),
            sock_throttled: Some(3),
        },
        limit: Some(limit.clone()),
        tcp_kmem: Some(TcpKmem {
            limit: None,
            usage: Some(4096),
            failcnt: Some(0),
        }),
    });
    let cgroup = Arc::new(Cgroup::at(42, "/pod/ctr".into()));
    let g = crate::model::key::id_key(netmem_common::GROUP_CGROUP, 42, 0);
    let up = crate::model::memcg::UnderPressure {
        cgroup: cgroup.clone(),
        memcg: memcg.clone(),
        local: Local {
            sock: 8 << 20,
            limit,
            pushed_back: true,
            host: HostTcp {
                allocated_pages: 10,
                tcp_mem_pages: [100, 200, 300],
            },
        },
        began: true,
        group: g,
    };
    let e = written(&up.event(std::time::SystemTime::now()));
    let memcg_fields = [
        "memory_current_bytes",
        "memory_max_bytes",
        "memory_high_bytes",
        "memory_limit_bytes",
        "memory_limit_current_bytes",
        "memory_limit_cgroup",
        "memory_limit_events_max",
        "memory_limit_events_high",
        "memory_events_high",
        "memory_events_max",
        "memory_events_oom",
        "memory_events_oom_kill",
        "memory_events_sock_throttled",
        "tcp_kmem_limit_bytes",
        "tcp_kmem_usage_bytes",
        "tcp_kmem_failcnt",
    ];
    assert_eq!(
        keys(&e),
        want(&[
            EVENT_HEAD,
            &[
                "owner",
                "allocated_pages",
                "tcp_mem_pages",
                "memcg_sock_bytes",
                "pushed_back"
            ],
            &memcg_fields
        ])
    );
    assert_eq!(e["event"], "cgroup_socket_pressure");
    assert_eq!(e["owner"]["cgroup"], "/pod/ctr");
    assert_eq!(e["memory_max_bytes"], Value::Null);
    assert_eq!(e["memory_limit_cgroup"], "/pod");
    let row = GroupRow {
        owners: Some(Box::new(Owners {
            cgroups: vec![CgroupShare {
                cgroup,
                sockets: 1,
                bytes: 1,
                memcg_sock: memcg.sock,
                memcg: Some(memcg),
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let v = object_of_group("t", &g, &row, false, true);
    for f in memcg_fields {
        assert!(v.get(f).is_some(), "group line lacks {f}: {v}");
        assert!(
            v["owners"]["cgroups"][0].get(f).is_some(),
            "cgroup share lacks {f}: {v}"
        );
    }
    assert_eq!(v["memory_limit_bytes"], 32 << 20);
}

/// The doctor's lines carry the model's finding as it serialises, with
/// `type` and `rank`, and read back through the types.
#[test]
fn contract_doctor_and_finding_fields() {
    use crate::doctor::{Evidence, Finding, Report, Scope, Severity};
    let f = Finding {
        id: "orphans",
        severity: Severity::Critical,
        fired: true,
        title: "t".into(),
        evidence: vec![Evidence {
            name: "n".into(),
            value: "v".into(),
        }],
        explanation: "e".into(),
        action: vec!["a".into()],
        scope: Scope::Group,
        group: Some("listen:80".into()),
        group_proxy: None,
        nearness: 1.0,
        priority: 0,
    };
    let mut sink = JsonSink::new(Vec::new());
    sink.report(&Report {
        source: "s".into(),
        kernel_release: "6.1".into(),
        namespace: "host".into(),
        unreadable: vec!["u".into()],
        findings: vec![f.clone()],
    })
    .unwrap();
    let text = String::from_utf8(sink.get_mut().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut want_finding = serde_json::to_value(&f).unwrap();
    want_finding["type"] = "finding".into();
    want_finding["rank"] = 1.into();
    assert_eq!(lines[1], want_finding);
    assert_eq!(
        keys(lines[0].as_object().unwrap()),
        want(&[&[
            "type",
            "source",
            "kernel_release",
            "namespace",
            "unreadable",
            "findings"
        ]])
    );
    keys(lines[1].as_object().unwrap());
    for v in lines {
        let l = Line::read(v.clone()).unwrap();
        assert_eq!(to_object(l), v);
    }
}

#[test]
fn contract_fleet_fields() {
    use crate::doctor::fleet::{FleetReport, GroupAcross, HostFigures, HostShare, Judged, Shared};
    use crate::doctor::{Report, Severity};
    let report = Report {
        source: "s".into(),
        kernel_release: "6.1".into(),
        namespace: "host".into(),
        unreadable: vec![],
        findings: vec![],
    };
    let r = FleetReport {
        source: "Prometheus".into(),
        instances: vec![Judged {
            instance: "lb1".into(),
            report,
            figures: HostFigures {
                tcp_memory_of_max: Some(0.5),
                orphans_of_threshold: Some(0.1),
                ..Default::default()
            },
        }],
        shared: vec![Shared {
            id: "tcp_mem.ram",
            severity: Severity::Warn,
            fired: false,
            hosts: vec!["lb1".into()],
            of: 1,
            example: "t".into(),
        }],
        groups: vec![GroupAcross {
            group: "listen:443".into(),
            kind: "listen".into(),
            peak_memory_bytes: 1,
            hosts: vec![HostShare {
                instance: "lb1".into(),
                memory_bytes: 1,
                peak_memory_bytes: 1,
                peak_orphans: 0,
                sockets: 1,
            }],
        }],
        notes: vec!["n".into()],
    };
    let mut sink = JsonSink::new(Vec::new());
    sink.fleet(&r).unwrap();
    let text = String::from_utf8(sink.get_mut().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["fleet", "doctor", "fleet_finding", "fleet_group"]);
    let fields = |v: &Value| keys(v.as_object().unwrap());
    assert_eq!(
        fields(&lines[0]),
        want(&[&["type", "source", "instances", "notes", "hosts"]])
    );
    assert_eq!(
        fields(&lines[0]["hosts"][0]),
        want(&[&[
            "instance",
            "worst",
            "peak_tcp_memory_bytes",
            "tcp_memory_of_max",
            "peak_orphans",
            "orphans_of_threshold",
            "peak_held_bytes",
            "peak_census_orphans",
            "aborts"
        ]])
    );
    assert_eq!(lines[1]["instance"], "lb1");
    assert_eq!(
        fields(&lines[2]),
        want(&[&["type", "id", "severity", "fired", "hosts", "of", "example"]])
    );
    assert_eq!(
        fields(&lines[3]),
        want(&[&["type", "group", "kind", "peak_memory_bytes", "hosts"]])
    );
    fields(&lines[3]["hosts"][0]);
    for v in lines {
        let l = Line::read(v.clone()).unwrap();
        assert_eq!(to_object(l), v);
    }
}

/// Every count a live group line has is a field of the types, by the
/// counter's own name.
#[test]
fn every_counter_is_a_field() {
    let mut c = Counts::default();
    for (i, k) in netmem_common::Counter::ALL.iter().enumerate() {
        *c.get_mut(*k).expect("a field per counter") = Some(i as u64);
    }
    let v = serde_json::to_value(&c).unwrap();
    for (i, k) in netmem_common::Counter::ALL.iter().enumerate() {
        assert_eq!(v[k.name()], i as u64);
        assert_eq!(c.get(*k), Some(i as u64));
    }
}

/// The flight recorder's lines: the incident (trigger) line and the
/// census's socket line, as the recorder writes them.
#[test]
fn contract_incident_and_socket_fields() {
    let l = Line::Incident(IncidentLine {
        ts: Some("t".into()),
        id: Some("2026-12-06T21-03-04Z-manual".into()),
        cause: Some("manual".into()),
        detail: Some("d".into()),
        started: Some(true),
    });
    let v = to_object(l);
    assert_eq!(
        keys(v.as_object().unwrap()),
        want(&[&["type", "ts", "id", "cause", "detail", "started"]])
    );
    let r = crate::model::types::SockRecord {
        family: AF_INET,
        protocol: IPPROTO_TCP,
        full: true,
        state: 1,
        local: "127.0.0.1".parse().unwrap(),
        lport: 80,
        remote: "127.0.0.2".parse().unwrap(),
        rport: 4000,
        inode: 1,
        cookie: 1,
        rmem_alloc: 1,
        rcvbuf: 1,
        wmem_alloc: 1,
        sndbuf: 1,
        fwd_alloc: 1,
        wmem_queued: 1,
        drops: 0,
        cgroup_id: 0,
        netns: 0,
        rqueue: 0,
        wqueue: 0,
        uid: 0,
    };
    let v = to_object(Line::Socket(crate::output::json::socket_line(
        "t",
        "listen:80",
        &r,
    )));
    assert_eq!(
        keys(v.as_object().unwrap()),
        want(&[&["type", "ts", "group"], SOCK_FIELDS])
    );
    assert_eq!(v["local"], "127.0.0.1:80");
    assert_eq!(v["state"], "ESTABLISHED");
}
