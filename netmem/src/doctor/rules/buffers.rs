//! Per-connection buffers: aborts for memory, what one connection holds,
//! and the buffer limits that let it.

use super::proxy::group_hint;
use crate::doctor::{bytes, Finding, Scope, Severity, State};

pub fn aborts(s: &State) -> Option<Finding> {
    let w = &s.window;
    let nstat = s.host.nstat.get("TCPAbortOnMemory").copied();
    if w.aborts.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        "aborts",
        Severity::Critical,
        format!(
            "{} sockets aborted on memory in the window",
            w.aborts_where(|_| true)
        ),
    );
    f.fired = true;
    for ((cause, group), n) in &w.abort_counts {
        f.ev(format!("{n} aborts, cause {cause}"), group);
    }
    let first = &w.aborts[0];
    let fig = |v: Option<u64>| v.map_or("?".into(), |x| x.to_string());
    let figures = [
        first.orphans,
        first.shift,
        first.max_orphans,
        first.allocated_pages,
        first.tcp_mem_max,
    ];
    // Counted without their figures (a Prometheus counter's growth):
    // nothing to show but question marks.
    if figures.iter().any(Option::is_some) {
        f.ev(
            "first abort's figures",
            format!(
                "orphans {} << shift {} vs tcp_max_orphans {}; allocated {} vs tcp_mem[2] {} pages",
                fig(first.orphans),
                fig(first.shift),
                fig(first.max_orphans),
                fig(first.allocated_pages),
                fig(first.tcp_mem_max)
            ),
        );
    }
    // Where they happened: each namespace counts its own.
    for (ns, n) in &w.netns {
        if let Some(v) = n.grew.get("TCPAbortOnMemory").filter(|v| **v > 0) {
            f.ev(
                format!("TCPAbortOnMemory in namespace {ns} in the window"),
                v,
            );
        }
    }
    if let Some(n) = nstat {
        f.ev("TCPAbortOnMemory since boot", n);
    }
    f.group = Some(first.group.clone());
    f.scope = Scope::Group;
    f.explanation = "tcp_check_oom() aborted these sockets with a reset: the peer sees a connection reset and any unsent data is lost. The cause names which of its two tests fired, with the figures it compared.".into();
    f.action
        .push("see the finding for the limit named by the cause (orphans or tcp_mem)".into());
    Some(f)
}

pub fn per_connection(s: &State) -> Option<Finding> {
    let w = &s.window;
    let [_, _, max] = s.tcp_mem()?;
    let limit = max.saturating_mul(s.page());
    let rmem = s.host.numbers("net.ipv4.tcp_rmem")?;
    let wmem = s.host.numbers("net.ipv4.tcp_wmem")?;
    let (r1, r2, w1, w2) = (*rmem.get(1)?, *rmem.get(2)?, *wmem.get(1)?, *wmem.get(2)?);
    let top = w.top_memory();
    let (name, g) = top.iter().find(|(_, g)| g.sockets > 0)?;
    let avg = g.memory / g.sockets.max(1);
    let sockets: u64 = w.groups.values().map(|g| g.sockets).sum();
    let at_avg = limit / avg.max(1);
    let at_default = limit / (r1 + w1).max(1);
    let at_max = limit / (r2 + w2).max(1);
    let severity = if at_avg < sockets.saturating_mul(2) || at_max < sockets {
        Severity::Warn
    } else {
        Severity::Info
    };
    let mut f = Finding::new(
        "buffers.per_connection",
        severity,
        format!(
            "{} holds {} per socket: tcp_mem[2] is reached at about {at_avg} such sockets",
            w.label(name),
            bytes(avg)
        ),
    );
    f.group = Some(name.to_string());
    f.scope = Scope::Group;
    f.nearness = sockets as f64 / at_avg.max(1) as f64;
    f.ev(
        name.to_string(),
        format!("{} sockets, {} held", g.sockets, bytes(g.memory)),
    )
    .ev("sockets now (all groups)", sockets)
    .ev("sockets to reach tcp_mem[2] at this average", at_avg)
    .ev(
        "... at the tcp_rmem/tcp_wmem defaults",
        format!("{at_default} ({} + {})", bytes(r1), bytes(w1)),
    )
    .ev(
        "... at their maxima",
        format!("{at_max} ({} + {})", bytes(r2), bytes(w2)),
    );
    f.explanation = "Socket memory is per connection times connections: a proxy holds two sockets per client. Maximum buffer sizes bound what the busiest few sockets can take; when a few hundred sockets at maximum would exhaust tcp_mem, one slow client class can starve the rest.".into();
    if at_max < sockets {
        // Each socket's share of tcp_mem[2], split between receive and
        // send in today's proportion; only lowered, never raised.
        let budget = limit / sockets.max(1);
        let (rmin, wmin) = (
            rmem.first().copied().unwrap_or(4096),
            wmem.first().copied().unwrap_or(4096),
        );
        let new_r2 = (budget * r2 / (r2 + w2).max(1)).max(r1);
        let new_w2 = (budget * w2 / (r2 + w2).max(1)).max(w1);
        if new_r2 < r2 {
            f.action.push(format!("sysctl -w net.ipv4.tcp_rmem=\"{rmin} {r1} {new_r2}\"  # per namespace: {sockets} sockets at maximum then fit tcp_mem[2]"));
        }
        if new_w2 < w2 {
            f.action.push(format!(
                "sysctl -w net.ipv4.tcp_wmem=\"{wmin} {w1} {new_w2}\"  # per namespace"
            ));
        }
    }
    if severity >= Severity::Warn {
        f.action.push(format!(
            "{}: cap {}",
            w.label(name),
            group_hint(w, name, Some(limit / sockets.max(1)))
        ));
    }
    Some(f)
}

pub fn buffer_limits(s: &State) -> Vec<Finding> {
    let w = &s.window;
    let mut out = Vec::new();
    for (name, g) in &w.groups {
        let exceed = g.counts.get("exceed_buf_limit").copied().unwrap_or(0);
        let rq = g.counts.get("rcvqueue_full").copied().unwrap_or(0);
        let drops = g.counts.get("skb_drops").copied().unwrap_or(0);
        if exceed + rq + drops == 0 {
            continue;
        }
        let mut f = Finding::new(
            "buffers.limits",
            Severity::Warn,
            format!("{} hit buffer limits: {exceed} times the protocol limit, {rq} full receive queues, {drops} memory drops", w.label(name)),
        );
        f.fired = true;
        f.group = Some(name.clone());
        f.scope = Scope::Group;
        f.nearness = (exceed + rq + drops) as f64;
        f.ev(
            "exceed_buf_limit (protocol memory: tcp_mem / udp_mem)",
            exceed,
        )
        .ev("rcvqueue_full (the socket's receive buffer, SO_RCVBUF)", rq)
        .ev("skb_drops (memory-related drops)", drops);
        for ((grp, reason), n) in &w.drops {
            if **grp == **name {
                f.ev(format!("drop reason {reason}"), n);
            }
        }
        for ((grp, direction), n) in &w.exceeded {
            if **grp == **name {
                f.ev(format!("protocol limit exceeded, {direction}"), n);
            }
        }
        f.explanation = "Packets were refused because a buffer was full: a receive queue at its SO_RCVBUF (the application reads too slowly or set a small buffer), or the protocol's global limit (tcp_mem or udp_mem). Drops force retransmits on TCP and lose datagrams on UDP.".into();
        if rq > 0
            || w.drops
                .keys()
                .any(|(g, r)| **g == **name && r.contains("RCVBUF"))
        {
            f.action.push(format!("{name}: read faster, or raise its SO_RCVBUF (bounded by net.core.rmem_max, now {})", s.host.sysctls.get("net.core.rmem_max").map_or("?", String::as_str)));
        }
        if exceed > 0 {
            f.action
                .push("the protocol limit: see the tcp_mem finding (or udp_mem for UDP)".into());
        }
        out.push(f);
    }
    out
}
