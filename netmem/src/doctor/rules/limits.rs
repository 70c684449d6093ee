//! The host's limits: orphans against tcp_max_orphans, TCP memory against
//! tcp_mem and against RAM.

use super::proxy::group_hint;
use super::{at_peak, learn_more, log_evidence};
use crate::doctor::{bytes, Finding, Severity, State};
use crate::sources::kernel_log::LogMessage;

/// tcp_mem in the kernel's own proportions (tcp_mem[0..2] = 3:4:6 of its
/// computed limit): min and pressure from a chosen max.
fn tcp_mem_line(max: u64) -> String {
    format!(
        "sysctl -w net.ipv4.tcp_mem=\"{} {} {}\"",
        max / 2,
        max * 2 / 3,
        max
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
                "{} makes the orphans: {}",
                w.label(g),
                super::proxy::orphan_hint(w, g)
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
    // Over several intervals the holder is who held the most at its
    // peak: a recording (an incident file) ends after the load is gone,
    // when what is left says nothing about what fired.
    let peak_top = w.top_peak_memory();
    if w.intervals > 1 {
        for (name, g) in peak_top.iter().take(3) {
            f.ev(
                format!("held at peak by {}", w.label(name)),
                format!(
                    "{} ({:.0}% of tcp_mem[2])",
                    bytes(g.peak_memory),
                    100.0 * g.peak_memory as f64 / max.saturating_mul(page).max(1) as f64
                ),
            );
        }
    }
    let holder = if w.intervals > 1 { &peak_top } else { &top };
    f.group = holder
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
