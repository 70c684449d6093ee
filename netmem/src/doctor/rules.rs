//! The rules. Each reads the [`State`] and returns findings with their
//! evidence; none guesses: a rule whose figures are unknown says nothing,
//! and the command lines it proposes carry computed values.

use super::{bytes, Finding, LogSeen, Scope, Severity, State};
use crate::sources::kernel_log::LogMessage;

/// tcp_mem in the kernel's own proportions (tcp_mem[0..2] = 3:4:6 of its
/// computed limit): min and pressure from a chosen max.
/// "at peak" over a window of intervals; "now" for a single reading, which
/// has no peak to speak of.
fn at_peak(w: &super::Window) -> &'static str {
    if w.intervals > 1 {
        "at peak"
    } else {
        "now"
    }
}

fn tcp_mem_line(max: u64) -> String {
    format!(
        "sysctl -w net.ipv4.tcp_mem=\"{} {} {}\"",
        max / 2,
        max * 2 / 3,
        max
    )
}

/// What a group's holder can change, said in the proxy's terms: a frontend
/// (`listen:`) holds what it sends to clients and reads from them; a backend
/// what it reads from servers. When HAProxy names the group, the setting of
/// that side holding the most (send or receive queues), with its value now
/// and, given `budget` (bytes per socket), the value to set.
fn group_hint(w: &super::Window, group: &str, budget: Option<u64>) -> String {
    if let Some((g, p)) = w
        .groups
        .get(group)
        .and_then(|g| Some((g, g.proxy.as_ref()?)))
    {
        let side = p.side.name();
        let (knob, now, sysctl) = if g.wmem >= g.rmem {
            (format!("tune.sndbuf.{side}"), p.tune.sndbuf, "tcp_wmem")
        } else {
            (format!("tune.rcvbuf.{side}"), p.tune.rcvbuf, "tcp_rmem")
        };
        let now = match (now, p.tune.known) {
            (Some(b), _) => bytes(b),
            (None, true) => format!("unset: the kernel grows each socket up to {sysctl}'s maximum"),
            (None, false) => {
                "not known: netmem read only HAProxy's runtime API, not its configuration".into()
            }
        };
        // Below HAProxy's own buffer a socket cannot take one full buffer.
        let floor = p.bufsize.unwrap_or(16384);
        return match budget {
            Some(b) => format!(
                "its {side}-side sockets: HAProxy `{knob} {}` in the global section (now {now}; tune.bufsize {})",
                b.max(floor),
                bytes(floor)
            ),
            None => format!(
                "its {side}-side sockets with HAProxy's {knob} (now {now}; tune.bufsize {})",
                bytes(floor)
            ),
        };
    }
    if group.starts_with("listen:") {
        "its accepted connections' buffers (a proxy's client side: HAProxy tune.sndbuf.client / tune.rcvbuf.client)".into()
    } else if group.starts_with("backend:") {
        "its outgoing connections' buffers (a proxy's server side: HAProxy tune.rcvbuf.server / tune.sndbuf.server)".into()
    } else {
        // An owner group (--group-by process|cgroup) holds both sides.
        "its sockets' buffers, on both sides (group by port to see which side holds them)".into()
    }
}

/// What to run so the next incident leaves the figures a kernel log
/// cannot: `what` names them.
fn learn_more(what: &str) -> String {
    format!(
        "to learn {what}: keep `netmem record -o FILE` running (or `netmem serve` with Prometheus scraping it) and run `netmem doctor --from FILE` after the next incident; while one is under way, `netmem doctor --watch 60s`"
    )
}

/// The kernel log's lines of one message, for evidence: `"too many
/// orphaned sockets", 1 line, at Nov 29 03:12:01 (/var/log/kern.log)`.
fn log_evidence(s: &State, m: LogMessage, seen: &LogSeen) -> String {
    format!(
        "\"{}\", {} ({})",
        m.pattern(),
        seen.describe(),
        s.kernel_log_source.as_deref().unwrap_or("?").escape_debug()
    )
}

pub fn orphans(s: &State) -> Option<Finding> {
    let w = &s.window;
    // tcp_max_orphans as it is at the end of what was looked at ...
    let now = s.max_orphans()?;
    // The kernel's count (sockstat, every namespace: what tcp_check_oom
    // compares) and the census' (sock_diag, the same pass as the groups)
    // are read at different moments, so either may catch a peak the other
    // missed: the larger is what the limit is judged by, and each is said
    // as what it is.
    let kernel_peak = w.peak_orphans.max(w.orphans);
    let census_peak = w.peak_census_orphans.max(w.census_orphans);
    let peak = kernel_peak.max(census_peak);
    let log = s.kernel_log.get(&LogMessage::TooManyOrphans);
    let aborts: Vec<_> = w
        .aborts
        .iter()
        .filter(|a| a.cause.contains("orphans"))
        .collect();
    // ... and as the first abort saw it, the limit that mattered.
    let max = aborts.first().and_then(|a| a.max_orphans).unwrap_or(now);
    // Fired by the figures seen, or only according to the kernel log (an
    // earlier moment, whose figures the log does not carry).
    let by_figures = !aborts.is_empty() || peak > max;
    let fired = by_figures || log.is_some();
    let quarter = max / 4;
    // What the figures alone say.
    let level = if peak > quarter {
        Severity::Warn
    } else if peak > max / 8 {
        Severity::Info
    } else {
        Severity::Ok
    };
    let severity = if fired { Severity::Critical } else { level };
    let title = match log {
        _ if by_figures => format!("The orphan limit fired: {peak} orphans against tcp_max_orphans {max} (sockets are aborted from {quarter} on)"),
        Some(l) => format!("The kernel log says the orphan limit fired ({}); now {peak} orphans against tcp_max_orphans {max}, aborts from {quarter}", l.describe()),
        None => format!("Orphans: {peak} {}, tcp_max_orphans {max}; aborts start at {quarter}", at_peak(w)),
    };
    let mut f = Finding::new("orphans", severity, title);
    f.fired = fired;
    f.priority = 2;
    f.nearness = if quarter > 0 {
        peak as f64 / quarter as f64
    } else {
        f64::from(u8::from(peak > 0)) * 2.0
    };
    if let (Some(l), false) = (log, by_figures) {
        f.ev(
            "kernel log",
            log_evidence(s, LogMessage::TooManyOrphans, l),
        )
        .ev(
            "what the log does not show",
            "how many orphans there were and what tcp_max_orphans was when it was written, nor which port made them",
        );
    }
    f.ev("orphans now, kernel (sockstat: every namespace)", w.orphans)
        .ev(
            "orphans now, census (sock_diag: the groups' sockets)",
            w.census_orphans,
        );
    if w.intervals > 1 {
        f.ev("orphans at peak, kernel", kernel_peak)
            .ev("orphans at peak, census", census_peak);
    }
    f.ev(
        if fired && !by_figures {
            "tcp_max_orphans now"
        } else {
            "tcp_max_orphans"
        },
        if now != max {
            format!("{max} when it fired, {now} now")
        } else {
            max.to_string()
        },
    )
    .ev("abort threshold, shift 1 (1/2)", max / 2)
    .ev("abort threshold, shift 2 (1/4)", quarter);
    if !aborts.is_empty() {
        f.ev(
            "aborts for orphans in the window",
            w.aborts_where(|c| c.contains("orphans")),
        );
    }
    if let (Some(l), true) = (log, by_figures) {
        f.ev("kernel log", log_evidence(s, LogMessage::TooManyOrphans, l));
    }
    let holders = w.top_orphans();
    let (n_orph, n_bytes): (u64, u64) = holders.iter().fold((0, 0), |(a, b), (_, g)| {
        (a + g.peak_orphans, b + g.peak_orphan_bytes)
    });
    for (name, g) in holders.iter().take(3) {
        f.ev(
            if w.intervals > 1 {
                format!("orphans on {} at peak (census)", w.label(name))
            } else {
                format!("orphans on {} (census)", w.label(name))
            },
            format!("{} holding {}", g.peak_orphans, bytes(g.peak_orphan_bytes)),
        );
    }
    f.group = holders
        .first()
        .map(|(name, _)| name.to_string())
        .or_else(|| aborts.first().map(|a| a.group.clone()));
    f.explanation = "The kernel aborts a socket when orphans << shift > tcp_max_orphans, where shift grows to 2 for sockets idle past twice the maximum RTO or with soft errors, so it fires at a quarter of the configured limit. An orphan is a connection its application closed while data or the FIN handshake is still pending; it holds its queued bytes until it ends.".into();
    if fired && !by_figures {
        f.action.push(learn_more(
            "how many orphans there were, against which limit, and on which port",
        ));
    }
    // Advice from figures only: a log line carries none.
    if by_figures || level >= Severity::Warn {
        let want = peak
            .saturating_mul(4)
            .max(max)
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX);
        let per = n_bytes.checked_div(n_orph).unwrap_or(0);
        if want > now {
            f.action
                .push(format!("sysctl -w net.ipv4.tcp_max_orphans={want}"));
            f.ev("recommended tcp_max_orphans (about 4x peak)", want);
            if per > 0 {
                f.ev(
                    "memory that many orphans would hold",
                    format!("{} at {} per orphan", bytes(want * per), bytes(per)),
                );
            }
        } else if by_figures && now > max {
            // Raised since it fired: keep it, never lower it.
            f.action.push(format!(
                "tcp_max_orphans was {max} when it fired and is {now} now, at least 4x the peak ({}): keep it, and persist net.ipv4.tcp_max_orphans = {now} in /etc/sysctl.d",
                peak.saturating_mul(4)
            ));
        }
        if let Some(g) = &f.group {
            f.action.push(format!(
                "{} makes the orphans: its peers leave with data unsent; shorten the proxy's client timeout or lower net.ipv4.tcp_orphan_retries so they end sooner",
                w.label(g)
            ));
        }
    }
    Some(f)
}

pub fn tcp_mem(s: &State) -> Option<Finding> {
    let w = &s.window;
    let [min, pressure, max] = s.tcp_mem()?;
    let page = s.page();
    let peak = w.peak_allocated_pages.max(w.allocated_pages);
    let log = s.kernel_log.get(&LogMessage::OutOfTcpMem);
    let mem_aborts: Vec<_> = w
        .aborts
        .iter()
        .filter(|a| a.cause.contains("tcp_mem"))
        .collect();
    let aborts = w.aborts_where(|c| c.contains("tcp_mem"));
    // The limit that mattered: as the first abort saw it (tcp_mem can
    // change during a window; intervals may miss a short-lived setting),
    // else as it was at the peak.
    let max = mem_aborts
        .first()
        .and_then(|a| a.tcp_mem_max)
        .unwrap_or(max);
    // tcp_mem as it is at the end of what was looked at.
    let now = w
        .tcp_mem_pages
        .or_else(|| s.tcp_mem())
        .unwrap_or([min, pressure, max]);
    let by_figures = aborts > 0 || peak > max;
    let fired = by_figures || log.is_some();
    // What the figures alone say.
    let level = if peak > pressure || w.under_pressure || w.pressure_entered > 0 {
        Severity::Warn
    } else if peak > min {
        Severity::Info
    } else {
        Severity::Ok
    };
    let severity = if fired { Severity::Critical } else { level };
    let title = match log {
        _ if by_figures => format!(
            "tcp_mem fired: TCP held {} at peak against a maximum of {} then",
            bytes(peak.saturating_mul(page)),
            bytes(max.saturating_mul(page))
        ),
        Some(l) => format!(
            "The kernel log says tcp_mem fired ({}); now TCP holds {} against a maximum of {}",
            l.describe(),
            bytes(peak.saturating_mul(page)),
            bytes(max.saturating_mul(page))
        ),
        None => format!(
            "TCP memory: {} {}; pressure starts at {}, the limit is {}",
            bytes(peak.saturating_mul(page)),
            at_peak(w),
            bytes(pressure.saturating_mul(page)),
            bytes(max.saturating_mul(page))
        ),
    };
    let mut f = Finding::new("tcp_mem", severity, title);
    f.fired = fired;
    f.priority = 2;
    f.nearness = peak as f64 / max.max(1) as f64;
    if let (Some(l), false) = (log, by_figures) {
        f.ev("kernel log", log_evidence(s, LogMessage::OutOfTcpMem, l))
            .ev(
                "what the log does not show",
                "how much TCP held and what tcp_mem was when it was written, nor which group held it",
            );
    }
    f.ev(
        "tcp_mem (min pressure max)",
        format!(
            "{min} {pressure} {max} pages ({} {} {})",
            bytes(min.saturating_mul(page)),
            bytes(pressure.saturating_mul(page)),
            bytes(max.saturating_mul(page))
        ),
    )
    .ev(
        "allocated now, kernel (sockstat mem: every namespace)",
        bytes(w.allocated_pages.saturating_mul(page)),
    )
    .ev(
        "held now, census (sock_diag: the groups' sockets)",
        bytes(w.census_memory),
    );
    // The kernel's charge covers every namespace; the census only the one
    // read. When most of the charge is elsewhere, say where to look rather
    // than let "held now: 0" read as "nothing holds it".
    let kernel_now = w.allocated_pages.saturating_mul(page);
    if kernel_now > w.census_memory.saturating_mul(2).saturating_add(1 << 20) {
        f.ev(
            "charged outside the groups read",
            format!(
                "{} (sockets of other network namespaces, or TCP memory not yet freed): `netmem snapshot --netns all` shows which namespace holds it",
                bytes(kernel_now - w.census_memory)
            ),
        );
    }
    if w.intervals > 1 {
        f.ev(
            "allocated at peak, kernel",
            bytes(peak.saturating_mul(page)),
        );
    }
    if w.pressure_entered > 0 || w.under_pressure {
        f.ev(
            "memory pressure",
            format!(
                "entered {} times, {:.1} s in total{}",
                w.pressure_entered,
                w.pressure_time.as_secs_f64(),
                if w.under_pressure {
                    ", still under it"
                } else {
                    ""
                }
            ),
        );
    }
    if let Some(a) = mem_aborts.first() {
        f.ev("aborts for tcp_mem in the window", aborts);
        if let (Some(alloc), Some(m2)) = (a.allocated_pages, a.tcp_mem_max) {
            f.ev(
                "first abort",
                format!("allocated {alloc} pages > tcp_mem[2] {m2} pages then"),
            );
        }
    }
    if let (Some(l), true) = (log, by_figures) {
        f.ev("kernel log", log_evidence(s, LogMessage::OutOfTcpMem, l));
    }
    let top = w.top_memory();
    let total: u64 = top.iter().map(|(_, g)| g.memory).sum();
    for (name, g) in top.iter().take(3) {
        f.ev(
            format!("held by {}", w.label(name)),
            format!(
                "{} bytes = {} ({:.0}% of what the groups hold, {:.0}% of tcp_mem[2])",
                g.memory,
                bytes(g.memory),
                100.0 * g.memory as f64 / total.max(1) as f64,
                100.0 * g.memory as f64 / max.saturating_mul(page).max(1) as f64
            ),
        );
    }
    f.group = top
        .first()
        .map(|(name, _)| name.to_string())
        .or_else(|| mem_aborts.first().map(|a| a.group.clone()));
    f.explanation = "tcp_mem is global, in pages: above tcp_mem[1] the kernel shrinks socket buffers, above tcp_mem[2] it refuses memory and aborts sockets that still have data to send. Raising it only helps if the RAM is there; otherwise lower what each connection may hold.".into();
    if now != [min, pressure, max] {
        f.ev(
            "tcp_mem now",
            format!("{} {} {} pages", now[0], now[1], now[2]),
        );
    }
    if fired && !by_figures {
        f.action.push(learn_more(
            "how much memory TCP held, against which tcp_mem, and which group held it",
        ));
    }
    // Advice from figures only: a log line carries none.
    if by_figures || level >= Severity::Warn {
        let ram_pages = s.host.mem_total_bytes.map(|b| b / page);
        // Room for twice the peak seen.
        let want = (peak * 2).max(max);
        match ram_pages {
            Some(ram) if want > ram / 4 => f.action.push(format!(
                "no tcp_mem raise: {} would pass a quarter of RAM; lower per-connection buffers instead (net.ipv4.tcp_wmem / tcp_rmem maxima, or the top group's own settings)",
                bytes(want.saturating_mul(page))
            )),
            _ if want > now[2] => f.action.push(tcp_mem_line(want)),
            // Raised since it fired: say to keep it, never lower it.
            _ if by_figures && now[2] > max => f.action.push(format!(
                "tcp_mem[2] was {max} pages when it fired and is {} now, at least twice the peak ({} pages): keep it, and persist net.ipv4.tcp_mem = {} {} {} in /etc/sysctl.d",
                now[2], peak * 2, now[0], now[1], now[2]
            )),
            _ => {}
        }
        if let Some(g) = &f.group {
            f.action.push(format!(
                "{} holds the most: cap {}",
                w.label(g),
                group_hint(w, g, None)
            ));
        }
    }
    Some(f)
}

/// tcp_mem[2] against RAM: the incident's fourfold raise to 1.4 GiB on a
/// 1 GiB machine, or copy-pasted "high throughput" values.
pub fn tcp_mem_vs_ram(s: &State) -> Option<Finding> {
    let [_, _, max] = s.tcp_mem()?;
    let ram = s.host.mem_total_bytes?;
    let page = s.page();
    let limit = max.saturating_mul(page);
    let severity = if limit > ram {
        Severity::Critical
    } else if limit > ram / 3 {
        Severity::Warn
    } else {
        return None;
    };
    let mut f = Finding::new(
        "tcp_mem.ram",
        severity,
        format!(
            "tcp_mem[2] allows {} of socket memory on a machine with {} of RAM",
            bytes(limit),
            bytes(ram)
        ),
    );
    f.nearness = limit as f64 / ram as f64;
    f.priority = 1;
    f.ev("tcp_mem[2]", format!("{max} pages ({})", bytes(limit)))
        .ev("MemTotal", bytes(ram))
        .ev(
            "share of RAM",
            format!("{:.0}%", 100.0 * limit as f64 / ram as f64),
        );
    f.explanation = "Past about a third of RAM the limit no longer protects the machine: socket buffers compete with everything else and the OOM killer, not tcp_mem, ends the incident. The kernel's own default is about a tenth of RAM.".into();
    let want = ram / page / 4;
    f.action.push(tcp_mem_line(want));
    Some(f)
}

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

pub fn kernel_log(s: &State) -> Vec<Finding> {
    let (major, minor) = s.host.version().unwrap_or((0, 0));
    let mut out = Vec::new();
    for (m, seen) in &s.kernel_log {
        let (sev, fired, meaning, can_print) = match m {
            LogMessage::OutOfSocketMemory => (Severity::Warn, true,
                "Before 3.x, tcp_check_oom's one message for both causes: too many orphans or tcp_mem exhausted. See the orphans and tcp_mem findings for which one the figures point to.",
                major < 3),
            LogMessage::TooManyOrphans => (Severity::Critical, true,
                "The orphan test of tcp_check_oom fired (orphans << shift > tcp_max_orphans): see the orphans finding.", major >= 3),
            LogMessage::OutOfTcpMem => (Severity::Critical, true,
                "The memory test of tcp_check_oom fired (allocated > tcp_mem[2] with data queued): see the tcp_mem finding.", major >= 3),
            LogMessage::RouteHashChainTooLong => (Severity::Info, false,
                "The IPv4 route cache's hash chain warning (with \"Adjust your secret_interval\"). The cache was removed in 3.6: it has nothing to do with socket memory.",
                major < 3 || (major == 3 && minor < 6)),
        };
        let mut f = Finding::new(
            "kernel_log",
            sev,
            format!("Kernel log: \"{}\", {}", m.pattern(), seen.describe()),
        );
        f.fired = fired;
        f.ev("lines", seen.lines);
        if let Some(t) = &seen.first {
            f.ev("first written", t);
        }
        if let Some(t) = seen.last.as_ref().filter(|_| seen.lines > 1) {
            f.ev("last written", t);
        }
        f.ev(
            "source",
            s.kernel_log_source.as_deref().unwrap_or("?").escape_debug(),
        )
        .ev(
            "this kernel can print it",
            if can_print {
                "yes"
            } else {
                "no: kernels since 3.x print the cause instead (these lines were written by an older kernel, or copied from one)"
            },
        );
        f.explanation = meaning.to_string();
        out.push(f);
    }
    out
}

/// What each route knob does on the running kernel.
fn route_knob(family: &str, knob: &str, version: (u32, u32)) -> &'static str {
    match (family, knob) {
        (
            "ipv4",
            "gc_thresh" | "max_size" | "gc_interval" | "gc_min_interval" | "gc_min_interval_ms"
            | "gc_elasticity",
        ) => "no effect: the IPv4 route cache it tuned was removed in 3.6",
        ("ipv4", "gc_timeout") => "expiry of redirect exceptions (not memory)",
        ("ipv4" | "ipv6", "mtu_expires") => "expiry of PMTU exceptions (not memory)",
        ("ipv6", "max_size") if version >= (6, 3) => {
            "no effect since 6.3 (also 6.1.73+ and 5.15.147+)"
        }
        ("ipv6", "max_size") => "bounds IPv6 cached routes on this kernel (not socket memory)",
        ("ipv6", _) if knob.starts_with("gc_") => {
            "IPv6 route garbage collection (not socket memory)"
        }
        _ => "not socket memory",
    }
}

/// The kernel's defaults of the route knobs the rule judges (as the files
/// show them: seconds, or -1 for ~0), every one a kernel since 3.6 has
/// had. A knob at its default says nothing about this host.
fn route_default(family: &str, knob: &str) -> &'static [&'static str] {
    match (family, knob) {
        ("ipv4", "gc_thresh") => &["-1"],
        ("ipv4", "max_size") => &["2147483647"],
        ("ipv4", "gc_timeout") => &["300"],
        ("ipv4", "gc_interval") => &["60"],
        ("ipv4" | "ipv6", "gc_min_interval") => &["0"],
        ("ipv4" | "ipv6", "gc_min_interval_ms") => &["500"],
        ("ipv4", "gc_elasticity") => &["8"],
        ("ipv4" | "ipv6", "mtu_expires") => &["600"],
        ("ipv6", "gc_thresh") => &["1024"],
        // INT_MAX since 6.3, when its check went.
        ("ipv6", "max_size") => &["4096", "2147483647"],
        ("ipv6", "gc_timeout") => &["60"],
        ("ipv6", "gc_interval") => &["30"],
        ("ipv6", "gc_elasticity") => &["9"],
        _ => &[],
    }
}

/// Route knobs that are not socket memory and that nobody tunes for it
/// (PMTU floors, redirect and ICMP rate limits): never listed.
fn route_knob_unjudged(knob: &str) -> bool {
    knob.starts_with("redirect_")
        || knob.starts_with("error_")
        || knob == "min_pmtu"
        || knob == "min_adv_mss"
        || knob == "skip_notify_on_dev_down"
        || knob == "flush"
}

/// Said only when there is something to say: a route knob set away from
/// its default (the old route cache's knobs are what an incident's
/// operators reach for), `rhash_entries=` on the boot line, a
/// `secret_interval` knob (a kernel before 3.6), or route exceptions that
/// grew in the window.
pub fn routes(s: &State) -> Option<Finding> {
    let version = s.host.version().unwrap_or((0, 0));
    let w = &s.window;
    let changed: Vec<(&str, &str, &String)> = s
        .host
        .sysctls
        .iter()
        .filter_map(|(k, v)| {
            let (fam, knob) = if let Some(x) = k.strip_prefix("net.ipv4.route.") {
                ("ipv4", x)
            } else {
                ("ipv6", k.strip_prefix("net.ipv6.route.")?)
            };
            let normal = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (!route_knob_unjudged(knob)
                && knob != "secret_interval"
                && !route_default(fam, knob).contains(&normal.as_str()))
            .then_some((fam, knob, v))
        })
        .collect();
    let secret = s.host.sysctls.get("net.ipv4.route.secret_interval");
    let grew = w.route_exceptions_inserted > 0;
    if changed.is_empty() && s.host.rhash_entries.is_none() && secret.is_none() && !grew {
        return None;
    }
    let mut f = Finding::new(
        "routes",
        Severity::Info,
        if changed.is_empty() {
            format!(
                "Route exceptions: {} added in the window; none of them is socket memory",
                w.route_exceptions_inserted
            )
        } else {
            format!(
                "Route knobs set away from their defaults: none affects socket memory; {} route exceptions added in the window",
                w.route_exceptions_inserted
            )
        },
    );
    for (fam, knob, v) in &changed {
        let what = route_knob(fam, knob, version);
        let d = route_default(fam, knob);
        f.ev(
            format!("net.{fam}.route.{knob} = {v}"),
            if d.is_empty() {
                what.to_string()
            } else {
                format!("{what} (default {})", d.join(" or "))
            },
        );
    }
    if let Some(v) = secret {
        f.ev(
            format!("net.ipv4.route.secret_interval = {v}"),
            "the route cache's hash secret (a kernel before 3.6; gone since)",
        );
    }
    if let Some(v) = &s.host.rhash_entries {
        f.ev("rhash_entries= (boot)", format!("{v}: a no-op since 3.6"));
    }
    if grew {
        if let Some(n) = w.rt6_cached {
            f.ev("IPv6 cached routes (rt6_stats)", n);
        }
        for (dst, n) in w.route_exception_dsts.iter().take(5) {
            f.ev(format!("exceptions to {dst}"), n);
        }
    }
    f.explanation = "The IPv4 route cache was replaced in 3.6 by next-hop exceptions (PMTU and redirects), kept per next hop and bounded by the kernel; the old gc_* knobs remain as files that do nothing. Messages about route hash chains come from kernels before 3.6.".into();
    f.action.push(
        "no change: leave the route.* knobs alone; size socket memory with the findings above"
            .into(),
    );
    Some(f)
}

#[cfg(test)]
mod tests;
