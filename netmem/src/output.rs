//! Renders groups, events, context and summaries as JSON lines (the
//! documented contract) or as a human table.

use std::io::Write;
use std::time::SystemTime;

use netmem_common::{
    AbortArg, Counter, Event, EventKind, GroupKey, ABORT_FROM_CHECK_OOM, ABORT_FROM_RESET,
    AF_INET6, COUNTER_NAMES, GROUP_BACKEND, IPPROTO_TCP, IPPROTO_UDP, TCP_STATE_NAMES,
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
        // Trace's interval pass skips TIME_WAIT (see sockdiag::States::Buffered).
        o.insert("time_wait".into(), Value::Null);
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

/// What decoding an event needs beyond the record itself.
pub struct EventContext<'a> {
    pub drop_reason: &'a dyn Fn(u32) -> String,
    /// SOCK_MIN_SNDBUF on this kernel (tcp_check_oom's tcp_mem test)
    pub sock_min_sndbuf: i64,
    /// procfs figures for what the kernel side could not read
    pub max_orphans: Option<i64>,
    pub orphans: Option<i64>,
    /// tier serving the event's hook
    pub tier: &'a dyn Fn(&Event) -> &'static str,
}

/// tcp_check_oom()'s two tests, on the figures of the moment:
/// (too many orphans, out of tcp_mem). Unknown figures test false.
pub fn abort_cause(
    orphans: Option<i64>,
    shift: i64,
    max_orphans: Option<i64>,
    allocated: i64,
    tcp_mem_max: i64,
    wmem_queued: i64,
    sock_min_sndbuf: i64,
) -> (bool, bool) {
    let too_many = match (orphans, max_orphans) {
        (Some(o), Some(m)) => (o << shift.clamp(0, 16)) > m,
        _ => false,
    };
    let out_of_mem = wmem_queued > sock_min_sndbuf && tcp_mem_max > 0 && allocated > tcp_mem_max;
    (too_many, out_of_mem)
}

pub fn cause_name(c: (bool, bool)) -> &'static str {
    match c {
        (true, true) => "orphans+tcp_mem",
        (true, false) => "orphans",
        (false, true) => "tcp_mem",
        (false, false) => "unknown",
    }
}

/// How an orphan's life ended, from the state it left for CLOSE.
pub fn orphan_end(last_state: u8, aborted_on_memory: bool) -> &'static str {
    use netmem_common::{TCP_CLOSING, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_TIME_WAIT};
    if aborted_on_memory {
        return "aborted_on_memory";
    }
    match last_state {
        0 => "unknown",
        TCP_LAST_ACK | TCP_CLOSING | TCP_FIN_WAIT2 | TCP_TIME_WAIT => "graceful",
        _ => "reset_or_timeout",
    }
}

fn known(v: i64) -> Option<i64> {
    (v >= 0).then_some(v)
}

/// Decodes a ring buffer record into the documented JSON event.
pub fn event_json(ts: &str, e: &Event, cx: &EventContext) -> Option<Value> {
    let kind = EventKind::from_u32(e.kind)?;
    let s = &e.sock;
    let mut o = Map::new();
    o.insert("type".into(), json!("event"));
    o.insert("ts".into(), json!(ts));
    o.insert("event".into(), json!(kind.name()));
    o.insert("tier".into(), json!((cx.tier)(e)));
    if kind != EventKind::RouteException {
        o.insert("group".into(), json!(group_name(&e.group)));
    }
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
            let arg = |i: AbortArg| a[i as usize];
            let (orphans, orphans_src) = match known(arg(AbortArg::Orphans)) {
                Some(v) => (Some(v), "kernel"),
                None => (cx.orphans, "sockstat"),
            };
            let (max_orphans, max_src) = match known(arg(AbortArg::MaxOrphans)) {
                Some(v) => (Some(v), "kernel"),
                None => (cx.max_orphans, "procfs"),
            };
            let shift = known(arg(AbortArg::Shift));
            let allocated = arg(AbortArg::Allocated);
            let mem2 = arg(AbortArg::Mem2);
            let cause = abort_cause(
                orphans,
                shift.unwrap_or(0),
                max_orphans,
                allocated,
                mem2,
                s.wmem_queued as i64,
                cx.sock_min_sndbuf,
            );
            o.insert("cause".into(), json!(cause_name(cause)));
            o.insert(
                "via".into(),
                json!(match arg(AbortArg::Source) {
                    ABORT_FROM_CHECK_OOM => "tcp_check_oom",
                    ABORT_FROM_RESET => "tcp_send_reset reason TCP_ABORT_ON_MEMORY",
                    _ => "nstat TCPAbortOnMemory",
                }),
            );
            o.insert("orphans".into(), json!(orphans));
            o.insert("orphans_source".into(), json!(orphans_src));
            o.insert("shift".into(), json!(shift));
            o.insert("max_orphans".into(), json!(max_orphans));
            o.insert("max_orphans_source".into(), json!(max_src));
            o.insert("allocated_pages".into(), json!(allocated));
            o.insert(
                mem_key.into(),
                json!([arg(AbortArg::Mem0), arg(AbortArg::Mem1), mem2]),
            );
            o.insert("sock_min_sndbuf".into(), json!(cx.sock_min_sndbuf));
        }
        EventKind::SkbDrop => {
            o.insert("reason".into(), json!((cx.drop_reason)(a[0] as u32)));
            o.insert("truesize".into(), json!(a[1]));
            o.insert("len".into(), json!(a[2]));
        }
        EventKind::DestroyWithData => {
            o.insert("unread_bytes".into(), json!(a[0]));
            o.insert("unacked_bytes".into(), json!(a[1]));
        }
        EventKind::Synthetic => {
            o.insert("seq".into(), json!(a[0]));
        }
        EventKind::OrphanBorn => {
            o.insert("bytes".into(), json!(a[0]));
            o.insert(
                "via".into(),
                json!(match a[1] {
                    0 => "tcp_close",
                    1 => "inet_child_forget",
                    _ => "sock_diag",
                }),
            );
        }
        EventKind::OrphanGone => {
            o.insert(
                "lifetime_ms".into(),
                json!(known(a[0]).map(|ns| ns as f64 / 1e6)),
            );
            o.insert("bytes_at_birth".into(), json!(a[1]));
            o.insert("last_state".into(), json!(state_name(a[2] as u8)));
            o.insert("ended".into(), json!(orphan_end(a[2] as u8, a[3] != 0)));
        }
        EventKind::PressureEnter | EventKind::PressureLeave => {
            o.insert("allocated_pages".into(), json!(a[0]));
            o.insert("tcp_mem_pages".into(), json!([a[1], a[2], a[3]]));
        }
        EventKind::RouteException => {
            let r = &e.route;
            let fam = a[0] as u8;
            o.insert(
                "family".into(),
                json!(if fam == AF_INET6 { "ipv6" } else { "ipv4" }),
            );
            o.insert("dst".into(), json!(ip_from(fam, &r.dst).to_string()));
            let gw = ip_from(fam, &r.gateway);
            o.insert(
                "gateway".into(),
                json!((!gw.is_unspecified()).then(|| gw.to_string())),
            );
            let dev: Vec<u8> = r.dev.iter().copied().take_while(|&b| b != 0).collect();
            o.insert(
                "dev".into(),
                json!((!dev.is_empty()).then(|| String::from_utf8_lossy(&dev).into_owned())),
            );
            o.insert("pmtu".into(), json!(a[1]));
            o.insert(
                "exception".into(),
                json!(if a[1] > 0 { "pmtu" } else { "redirect" }),
            );
        }
    }
    Some(Value::Object(o))
}

fn state_name(s: u8) -> &'static str {
    TCP_STATE_NAMES
        .get(s as usize)
        .copied()
        .unwrap_or("UNKNOWN")
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

    fn cx<'a>(names: &'a dyn Fn(u32) -> String) -> EventContext<'a> {
        EventContext {
            drop_reason: names,
            sock_min_sndbuf: 4608,
            max_orphans: Some(100),
            orphans: Some(7),
            tier: &|_| "tracepoint",
        }
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
            args: [6, 768, 100, 0, 0, 0, 0, 0],
            route: Default::default(),
        };
        let names = |r| format!("R{r}");
        let v = event_json("t", &e, &cx(&names)).unwrap();
        assert_eq!(v["event"], "skb_drop");
        assert_eq!(v["group"], "listen:5353");
        assert_eq!(v["local"], "127.0.0.1:5353");
        assert_eq!(v["reason"], "R6");
        assert_eq!(v["rmem_alloc"], 4608);
        assert_eq!(v["tier"], "tracepoint");
        assert!(event_text(&v).contains("reason=R6"));
    }

    #[test]
    fn abort_cause_rules() {
        // orphans << shift > max_orphans
        assert_eq!(
            abort_cause(Some(60), 1, Some(100), 0, 10, 0, 4608),
            (true, false)
        );
        assert_eq!(
            abort_cause(Some(60), 0, Some(100), 0, 10, 0, 4608),
            (false, false)
        );
        // tcp_mem needs queued data above SOCK_MIN_SNDBUF too
        assert_eq!(
            abort_cause(Some(0), 0, Some(100), 50, 10, 9000, 4608),
            (false, true)
        );
        assert_eq!(
            abort_cause(Some(0), 0, Some(100), 50, 10, 100, 4608),
            (false, false)
        );
        assert_eq!(
            abort_cause(Some(5), 0, Some(0), 50, 10, 9000, 4608),
            (true, true)
        );
        assert_eq!(abort_cause(None, 0, None, 0, 0, 0, 4608), (false, false));
        assert_eq!(cause_name((true, true)), "orphans+tcp_mem");
    }

    #[test]
    fn abort_event_uses_kernel_figures_then_procfs() {
        let mut e = Event {
            ts_ns: 0,
            kind: EventKind::AbortOnMemory as u32,
            cpu: 0,
            sock: SockInfo {
                present: 1,
                wmem_queued: 100_000,
                ..Default::default()
            },
            group: GroupKey::UNATTRIBUTED,
            args: [0, 3, 2, 10, 1, 2, 1000, ABORT_FROM_CHECK_OOM],
            route: Default::default(),
        };
        let names = |_| String::new();
        let v = event_json("t", &e, &cx(&names)).unwrap();
        assert_eq!(v["cause"], "orphans");
        assert_eq!(v["orphans_source"], "kernel");
        assert_eq!(v["via"], "tcp_check_oom");
        e.args = [-1, -1, -1, 5000, 1, 2, 1000, ABORT_FROM_RESET];
        let v = event_json("t", &e, &cx(&names)).unwrap();
        assert_eq!(v["cause"], "tcp_mem");
        assert_eq!(v["orphans"], 7);
        assert_eq!(v["max_orphans_source"], "procfs");
        assert_eq!(v["shift"], Value::Null);
    }

    #[test]
    fn route_event_json() {
        let mut route = netmem_common::RouteInfo::default();
        route.dst[..4].copy_from_slice(&[10, 2, 0, 2]);
        route.dev[..4].copy_from_slice(b"veth");
        let e = Event {
            ts_ns: 0,
            kind: EventKind::RouteException as u32,
            cpu: 0,
            sock: SockInfo::default(),
            group: GroupKey::UNATTRIBUTED,
            args: [netmem_common::AF_INET as i64, 1280, 0, 0, 0, 0, 0, 0],
            route,
        };
        let names = |_| String::new();
        let v = event_json("t", &e, &cx(&names)).unwrap();
        assert_eq!(v["dst"], "10.2.0.2");
        assert_eq!(v["gateway"], Value::Null);
        assert_eq!(v["dev"], "veth");
        assert_eq!(v["exception"], "pmtu");
        assert!(v.get("group").is_none());
    }

    #[test]
    fn orphan_endings() {
        assert_eq!(orphan_end(netmem_common::TCP_LAST_ACK, false), "graceful");
        assert_eq!(
            orphan_end(netmem_common::TCP_FIN_WAIT1, false),
            "reset_or_timeout"
        );
        assert_eq!(
            orphan_end(netmem_common::TCP_FIN_WAIT1, true),
            "aborted_on_memory"
        );
    }
}
