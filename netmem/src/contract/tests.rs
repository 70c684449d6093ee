//! The contract: for each line type and event kind, the exact set of
//! fields README documents, as the writer writes them through the types.
//! A field may be added here (and in README); none may disappear. And
//! what the writer writes reads back through the types as it was.
use super::*;
use crate::model::decode::{decoder_for_tests, raw_for_tests};
use crate::model::group::GroupRow;
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
    let v = to_object(Line::Event(event_line(e)));
    assert_eq!(Value::Object(event_object(e)), v);
    match v {
        Value::Object(o) => o,
        _ => unreachable!(),
    }
}

fn object_of_group(ts: &str, g: &GroupKey, row: &GroupRow, live: bool, tw: bool) -> Value {
    to_object(Line::Group(group_line(ts, g, row, live, tw)))
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
    let line = to_object(Line::Proxy(proxy_line("t", &view)));
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

/// Old or damaged lines read as the string-keyed readers read them: a
/// mistyped field is absent, the rest of the line still reads.
#[test]
fn lax_lines_keep_what_reads() {
    let l = Line::read(serde_json::json!({
        "type": "group", "group": "g", "sockets": "x", "orphans": -1,
        "rmem_bytes": 1.5, "wmem_queued_bytes": 7, "proxy_frontends": ["a", 3, "b"],
        "owners": {"processes": [1, {"comm": "c"}]}
    }))
    .unwrap();
    let Line::Group(g) = l else {
        panic!("a group line")
    };
    assert_eq!(g.group.as_deref(), Some("g"));
    assert_eq!((g.sockets, g.orphans, g.rmem_bytes), (None, None, None));
    assert_eq!(g.memory(), 7);
    assert_eq!(g.proxy.proxy_frontends, Some(vec!["a".into(), "b".into()]));
    let p = g.owners.unwrap().processes.unwrap();
    assert_eq!(
        (p[0].comm.as_deref(), p[1].comm.as_deref()),
        (None, Some("c"))
    );
    assert_eq!(
        Line::read(serde_json::json!({"type": "newer"})),
        Some(Line::Other)
    );
    assert_eq!(Line::read(serde_json::json!({"type": 1})), None);
    assert_eq!(Line::read(serde_json::json!([1])), None);
    let e = Line::read(
        serde_json::json!({"type": "event", "event": "abort_on_memory",
        "orphans": 18446744073709551615u64, "shift": -1, "tcp_mem_pages": [1, -2]}),
    )
    .unwrap();
    let Line::Event(e) = e else {
        panic!("an event line")
    };
    let b = e.body;
    assert_eq!(b.orphans.flatten().and_then(|n| n.u64()), Some(u64::MAX));
    assert_eq!(b.orphans.flatten().and_then(|n| n.i64()), None);
    assert_eq!(b.shift.flatten().and_then(|n| n.i64()), Some(-1));
    assert_eq!(b.tcp_mem_pages.as_ref().and_then(|p| p.triple()), None);
    assert_eq!(b.tcp_mem_pages.and_then(|p| p.max_i64()), None);
}

/// Every key of `v`, nested objects' (and lists' objects') included, but
/// not the keys of a map of figures by name (`cached`), which takes any.
fn all_keys(v: &Value, into: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                into.insert(k.clone());
                if k != "cached" {
                    all_keys(v, into);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| all_keys(v, into)),
        _ => {}
    }
}

/// Words README's JSON section writes in backticks that are values (or
/// kinds, tiers, sysctls), not fields; and a few fields README names
/// under another line type (`tw` of the context line, by a group's
/// `time_wait`).
const README_VALUES: &[&str] = &[
    "abort_on_memory",
    "aborted_on_memory",
    "all",
    "backend",
    "cgroup",
    "client",
    "closer",
    "destroy_with_data",
    "exceed_buf_limit",
    "fentry",
    "global",
    "graceful",
    "haproxy",
    "host",
    "inet_child_forget",
    "ipv4",
    "ipv6",
    "kernel",
    "kprobe",
    "listen",
    "memory_pressure_enter",
    "memory_pressure_leave",
    "null",
    "orphan_born",
    "orphan_gone",
    "pmtu",
    "polling",
    "port",
    "procfs",
    "process",
    "proxy-backend",
    "recv",
    "redirect",
    "reset_or_timeout",
    "route_exception",
    "rcvqueue_full",
    "send",
    "server",
    "skb_drop",
    "sock",
    "sock_diag",
    "socket",
    "sockstat",
    "tcp_close",
    "tcp_disconnect",
    "tcp_mem",
    "tcp_send_reset",
    "tracepoint",
    "tw",
    "unattributed",
    "unknown",
    "false",
];

/// README's JSON section, line type by line type: each field it names
/// (a backticked name, or the names in a backticked `{...}` or `[{...}]`)
/// is a field of that type (what the types write when every field is
/// there), so README and the types cannot drift apart. The doctor's
/// bullet also describes its finding lines.
#[test]
fn every_field_readme_names_is_in_the_types() {
    let json = &README[README.find("## JSON lines").unwrap()..];
    let json = &json[..json[3..].find("\n## ").map_or(json.len(), |e| e + 3)];
    let mut host = BTreeSet::new();
    all_keys(
        &serde_json::to_value(crate::sources::host::Host::default()).unwrap(),
        &mut host,
    );
    let ident = |w: &str| {
        w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut missing = Vec::new();
    for chunk in json.split("\n- `\"").skip(1) {
        let tag = &chunk[..chunk.find('"').unwrap()];
        let mut words = BTreeSet::new();
        // The chunk starts inside the tag's backticks.
        for span in chunk.split('`').step_by(2).skip(1) {
            if ident(span) {
                words.insert(span);
            } else if span.starts_with('{') || span.starts_with("[{") {
                // Without the prose in parentheses.
                let mut bare = String::new();
                let mut depth = 0;
                for c in span.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        c if depth == 0 => bare.push(c),
                        _ => {}
                    }
                }
                words.extend(
                    bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| ident(w))
                        .map(|w| &span[span.find(w).unwrap()..][..w.len()]),
                );
            }
        }
        // Each field in turn of every JSON type, nested objects' too:
        // what reads is written.
        let mut fields = BTreeSet::new();
        let plain = [
            serde_json::json!("s"),
            serde_json::json!(1),
            serde_json::json!(true),
            serde_json::json!([1, 2, 3]),
            serde_json::json!(["s"]),
        ];
        let every = |t: &Value| -> Map<String, Value> {
            words.iter().map(|w| (w.to_string(), t.clone())).collect()
        };
        let mut tries: Vec<Value> = plain.to_vec();
        for t in &plain {
            let one = Value::Object(every(t));
            let list = Value::Array(vec![one.clone()]);
            // Two levels down (`route_exceptions.by_dst[].dst`).
            tries.push(Value::Object(every(&list)));
            tries.extend([one, list]);
        }
        let tags: &[&str] = if tag == "doctor" {
            &["doctor", "finding"]
        } else {
            &[tag]
        };
        for tag in tags {
            for t in &tries {
                let mut o = every(t);
                o.insert("type".into(), (*tag).into());
                let l = Line::read(Value::Object(o)).unwrap();
                assert_ne!(l, Line::Other, "README's {tag:?} is no line type");
                all_keys(&l.to_value(), &mut fields);
            }
        }
        for w in words {
            let known = fields.contains(w)
                || README_VALUES.contains(&w)
                // `{name: value}`: how README says a map of sysctls.
                || (tag == "host" && (host.contains(w) || ["name", "counter", "value"].contains(&w)));
            if !known {
                missing.push(format!("{tag}: {w}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README names fields the types lack: {missing:?}"
    );
}
