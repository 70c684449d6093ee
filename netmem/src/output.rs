//! Renders groups, events, context and summaries as JSON lines (the
//! documented contract) or as a human table.

use std::io::Write;
use std::time::SystemTime;

use netmem_common::{
    Counter, Event, EventKind, GroupKey, COUNTER_NAMES, GROUP_BACKEND, IPPROTO_TCP, IPPROTO_UDP,
    TCP_STATE_NAMES,
};
use serde_json::{json, Map, Value};

use crate::attribution::{endpoint, group_kind, group_name, ip_from, GroupRow};
use crate::procfs::Context;

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Human-readable byte count (`12.3M`), binary units.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

pub fn group_json(ts: &str, g: &GroupKey, row: &GroupRow, with_counts: bool) -> Value {
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
    if with_counts {
        for (name, v) in COUNTER_NAMES.iter().zip(row.counts.iter()) {
            o.insert((*name).into(), json!(v));
        }
    }
    Value::Object(o)
}

pub fn context_json(ts: &str, c: &Context) -> Value {
    json!({
        "type": "context", "ts": ts,
        "tcp_mem_pages": c.tcp_mem_pages, "memory_allocated_pages": c.memory_allocated_pages,
        "orphans": c.orphans, "max_orphans": c.max_orphans,
        "sockets_inuse": c.sockets_inuse, "tw": c.tw, "page_size": c.page_size,
    })
}

pub fn context_text(c: &Context) -> String {
    let p = c.page_size;
    let tcp_mem = match c.tcp_mem_pages {
        Some(m) => format!(
            "{}/{}/{}",
            human_bytes(m[0] * p),
            human_bytes(m[1] * p),
            human_bytes(m[2] * p)
        ),
        None => "?".to_string(),
    };
    let max_orphans = c.max_orphans.map_or("?".to_string(), |m| m.to_string());
    format!(
        "tcp_mem {tcp_mem} (min/pressure/max)  allocated {}  orphans {}/{max_orphans}  inuse {}  tw {}",
        human_bytes(c.memory_allocated_pages * p),
        c.orphans,
        c.sockets_inuse,
        c.tw
    )
}

pub fn table(rows: &[(GroupKey, GroupRow)], with_counts: bool) -> String {
    let mut s = format!(
        "{:<28} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "GROUP", "SOCKS", "ORPH", "RMEM", "WMEMQ", "FWD", "ORPH_B", "DROPS"
    );
    if with_counts {
        s += &format!(
            " {:>6} {:>6} {:>6} {:>7} {:>6} {:>6}",
            "EXCEED", "RQFULL", "ABORT", "SKBDROP", "NEW", "CLOSED"
        );
    }
    s.push('\n');
    for (g, r) in rows {
        let m = &r.mem;
        s += &format!(
            "{:<28} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
            group_name(g),
            m.sockets,
            m.orphans,
            human_bytes(m.rmem),
            human_bytes(m.wmem_queued),
            human_bytes(m.fwd_alloc),
            human_bytes(m.orphan_bytes),
            m.drops
        );
        if with_counts {
            let c = &r.counts;
            s += &format!(
                " {:>6} {:>6} {:>6} {:>7} {:>6} {:>6}",
                c[Counter::ExceedBufLimit as usize],
                c[Counter::RcvqueueFull as usize],
                c[Counter::MemAborts as usize],
                c[Counter::SkbDrops as usize],
                c[Counter::Established as usize],
                c[Counter::Closed as usize]
            );
        }
        s.push('\n');
    }
    s
}

/// Decodes a ring buffer record into the documented JSON event.
pub fn event_json(ts: &str, e: &Event, drop_reason: &dyn Fn(u32) -> String) -> Option<Value> {
    let kind = EventKind::from_u32(e.kind)?;
    let s = &e.sock;
    let mut o = Map::new();
    o.insert("type".into(), json!("event"));
    o.insert("ts".into(), json!(ts));
    o.insert("event".into(), json!(kind.name()));
    o.insert("group".into(), json!(group_name(&e.group)));
    if s.present != 0 {
        o.insert(
            "local".into(),
            json!(endpoint(&ip_from(s.family, &s.laddr), s.lport)),
        );
        o.insert(
            "remote".into(),
            json!(endpoint(&ip_from(s.family, &s.raddr), s.rport)),
        );
        o.insert("protocol".into(), json!(proto_name(s.protocol)));
        o.insert(
            "state".into(),
            json!(TCP_STATE_NAMES
                .get(s.state as usize)
                .copied()
                .unwrap_or("UNKNOWN")),
        );
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
    let a = &e.args;
    let mem_key = if s.protocol == IPPROTO_UDP {
        "udp_mem_pages"
    } else {
        "tcp_mem_pages"
    };
    match kind {
        EventKind::ExceedBufLimit => {
            o.insert("allocated_pages".into(), json!(a[0]));
            o.insert(
                "direction".into(),
                json!(if a[1] == 0 { "send" } else { "recv" }),
            );
            o.insert(mem_key.into(), json!([a[2], a[3], a[4]]));
        }
        EventKind::RcvqueueFull => {
            o.insert("truesize".into(), json!(a[0]));
        }
        EventKind::AbortOnMemory => {
            o.insert("reason".into(), json!("TCP_ABORT_ON_MEMORY"));
            o.insert("allocated_pages".into(), json!(a[1]));
            o.insert(mem_key.into(), json!([a[2], a[3], a[4]]));
            // tcp_check_oom(): tcp_mem when the protocol is over its hard
            // limit, otherwise the orphan limit fired.
            o.insert(
                "cause".into(),
                json!(if a[4] > 0 && a[1] > a[4] {
                    "tcp_mem"
                } else {
                    "orphans"
                }),
            );
        }
        EventKind::SkbDrop => {
            o.insert("reason".into(), json!(drop_reason(a[0] as u32)));
            o.insert("truesize".into(), json!(a[1]));
            o.insert("len".into(), json!(a[2]));
        }
        EventKind::DestroyWithData => {}
    }
    Some(Value::Object(o))
}

fn proto_name(p: u8) -> &'static str {
    match p {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        _ => "other",
    }
}

/// One line per event for humans, built from the JSON form so both outputs
/// say the same thing.
pub fn event_text(v: &Value) -> String {
    let o = v.as_object().expect("event object");
    let mut s = format!(
        "{} {:<17} {:<24}",
        o["ts"].as_str().unwrap_or(""),
        o["event"].as_str().unwrap_or(""),
        o["group"].as_str().unwrap_or("")
    );
    for (k, val) in o {
        if matches!(k.as_str(), "type" | "ts" | "event" | "group") {
            continue;
        }
        match val {
            Value::String(x) => s += &format!(" {k}={x}"),
            other => s += &format!(" {k}={other}"),
        }
    }
    s
}

pub fn emit_line(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{SockInfo, AF_INET, GROUP_LISTEN};

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(2048), "2.0K");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5M");
    }

    #[test]
    fn drop_event_json() {
        let mut sock = SockInfo {
            family: AF_INET,
            lport: 5353,
            rport: 0,
            protocol: IPPROTO_UDP,
            present: 1,
            rmem_alloc: 4608,
            ..Default::default()
        };
        sock.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let e = Event {
            ts_ns: 1,
            kind: EventKind::SkbDrop as u32,
            cpu: 0,
            sock,
            group: GroupKey {
                addr: [0; 16],
                port: 5353,
                kind: GROUP_LISTEN,
                family: 0,
            },
            args: [6, 768, 100, 0, 0],
        };
        let v = event_json("t", &e, &|r| format!("R{r}")).unwrap();
        assert_eq!(v["event"], "skb_drop");
        assert_eq!(v["group"], "listen:5353");
        assert_eq!(v["local"], "127.0.0.1:5353");
        assert_eq!(v["reason"], "R6");
        assert_eq!(v["rmem_alloc"], 4608);
        assert!(event_text(&v).contains("reason=R6"));
    }

    #[test]
    fn abort_cause_from_figures() {
        let mut e = Event {
            ts_ns: 0,
            kind: EventKind::AbortOnMemory as u32,
            cpu: 0,
            sock: SockInfo::default(),
            group: GroupKey::UNATTRIBUTED,
            args: [13, 500, 100, 200, 300],
        };
        assert_eq!(
            event_json("t", &e, &|_| String::new()).unwrap()["cause"],
            "tcp_mem"
        );
        e.args[1] = 10;
        assert_eq!(
            event_json("t", &e, &|_| String::new()).unwrap()["cause"],
            "orphans"
        );
    }
}
