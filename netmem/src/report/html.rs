//! The report's page: one file, styles inline, plots as inline SVG, no
//! script and nothing fetched, so it opens offline in any browser.

use std::fmt::Write as _;

use anyhow::Result;

use super::{deltas, plots, ranges, sysctl_changes, top_groups, Run, ABORT_ROWS, TABLE_ROWS};
use crate::format::{html_escape as esc, human_bytes, rfc3339};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.row{display:flex;gap:12px}.row figure{flex:1;margin:0}figure{margin:0 0 12px 0}svg{max-width:100%;height:auto}\
.warn{background:#fff6d6;border:1px solid #e6c200;padding:8px 12px}\
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}\
.critical{background:#c62828}.warn-sev{background:#ef6c00}.info{background:#1565c0}.ok{background:#2e7d32}\
.incident{background:#f1ebfb;border:1px solid #6a3fb5;padding:8px 12px;margin:8px 0}\
code{background:#f4f4f4;padding:1px 4px}.up{color:#c62828}.down{color:#2e7d32}";

fn label(i: usize) -> &'static str {
    ["A", "B"][i.min(1)]
}

fn fmt_num(v: f64, bytes: bool) -> String {
    if bytes {
        human_bytes(v.max(0.0) as u64)
    } else if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn page(runs: &[Run]) -> Result<String> {
    let mut h = String::with_capacity(256 * 1024);
    let title = runs
        .iter()
        .map(|r| r.path.as_str())
        .collect::<Vec<_>>()
        .join(" vs ");
    write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netmem report: {}</title><style>{STYLE}</style></head><body>\n<h1>netmem report</h1>\n<p>{}</p>\n",
        esc(&title),
        if runs.len() == 2 {
            "Two recordings compared, aligned at their start (A left, B right)."
        } else {
            "Which listening port or backend held the kernel's socket memory, and when a limit fired."
        }
    )?;
    header(&mut h, runs)?;
    for (i, r) in runs.iter().enumerate() {
        if !r.warnings.is_empty() {
            write!(
                h,
                "<div class=\"warn\"><b>{} ({}) was not read whole:</b><ul>",
                label(i),
                esc(&r.path)
            )?;
            for w in &r.warnings {
                write!(h, "<li>{}</li>", esc(w))?;
            }
            h.push_str("</ul>The report shows what was readable.</div>\n");
        }
    }
    for (i, r) in runs.iter().enumerate() {
        incident(&mut h, r, (runs.len() == 2).then(|| label(i)))?;
    }
    if runs.len() == 2 {
        changes(&mut h, &runs[0], &runs[1])?;
    }
    findings(&mut h, runs)?;
    plots_section(&mut h, runs)?;
    for (i, r) in runs.iter().enumerate() {
        groups(
            &mut h,
            r,
            if runs.len() == 2 {
                Some(label(i))
            } else {
                None
            },
        )?;
    }
    for (i, r) in runs.iter().enumerate() {
        aborts(
            &mut h,
            r,
            if runs.len() == 2 {
                Some(label(i))
            } else {
                None
            },
        )?;
    }
    h.push_str("<p style=\"color:#888;font-size:12px\">Made by netmem report from the JSON-lines contract (README).</p></body></html>\n");
    Ok(h)
}

/// Seconds as the report says them: "45 s", "3 min 20 s".
fn span(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// A flight recorder incident file says so first: what fired, when, and
/// how much of the recording is before it (the black line in the plots).
fn incident(h: &mut String, r: &Run, which: Option<&str>) -> Result<()> {
    let tl = &r.timeline;
    let Some(first) = tl.triggers.iter().find(|t| t.started) else {
        return Ok(());
    };
    write!(
        h,
        "<div class=\"incident\"><b>Flight recorder incident{} {}</b>: triggered {} by <b>{}</b>: {}. The recording holds {} before the trigger and {} after it (left and right of the black line in the plots).",
        which.map(|w| format!(" ({w})")).unwrap_or_default(),
        esc(&first.id),
        first.at.map(|t| format!("at {}", esc(&rfc3339(t)))).unwrap_or_default(),
        esc(&first.cause),
        esc(&first.detail),
        span(first.t),
        span(tl.duration() - first.t),
    )?;
    let later: Vec<_> = tl
        .triggers
        .iter()
        .filter(|t| !std::ptr::eq(*t, first))
        .collect();
    if !later.is_empty() {
        write!(
            h,
            " {} extended it:<ul>",
            crate::format::count(later.len() as u64, "later trigger", "later triggers")
        )?;
        for t in later.iter().take(10) {
            write!(
                h,
                "<li>{:+.0} s: <b>{}</b>: {}</li>",
                t.t - first.t,
                esc(&t.cause),
                esc(&t.detail)
            )?;
        }
        if later.len() > 10 {
            write!(h, "<li>and {} more</li>", later.len() - 10)?;
        }
        h.push_str("</ul>");
    }
    h.push_str("</div>\n");
    Ok(())
}

fn header(h: &mut String, runs: &[Run]) -> Result<()> {
    h.push_str("<table class=\"meta\"><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        write!(
            h,
            "<th>{} {}</th>",
            if runs.len() == 2 { label(i) } else { "" },
            esc(&r.path)
        )?;
    }
    h.push_str("</tr>");
    type Cell<'a> = &'a dyn Fn(&Run) -> String;
    let rows: [(&str, Cell); 9] = [
        ("kernel", &|r| {
            r.timeline
                .host
                .as_ref()
                .map_or("?".into(), |x| x.kernel_release.clone())
        }),
        ("namespace", &|r| namespace(r)),
        ("traced with", &|r| {
            r.timeline
                .host
                .as_ref()
                .and_then(|h| h.traced_with())
                .unwrap_or_else(|| "? (recorded before netmem said it)".into())
        }),
        ("hooks (tier)", &|r| {
            r.timeline
                .hooks
                .iter()
                .map(|(k, t)| format!("{k}: {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ("start", &|r| r.timeline.start.map_or("?".into(), rfc3339)),
        ("duration", &|r| {
            format!(
                "{:.0} s ({} intervals)",
                r.timeline.duration(),
                r.timeline.intervals
            )
        }),
        ("interval", &|r| format!("{:.2} s", r.timeline.interval_s)),
        ("events received", &|r| match r.timeline.events_received {
            Some(n) => n.to_string(),
            // An incident file is a window of a longer run: it has none.
            None if !r.timeline.triggers.is_empty() => format!(
                "{} recorded (an incident file: the run's totals are in its own summary)",
                r.timeline.events_recorded
            ),
            None => format!(
                "{} recorded (no summary line: the recording did not end cleanly)",
                r.timeline.events_recorded
            ),
        }),
        ("events lost", &|r| r.timeline.lost_events.to_string()),
    ];
    for (name, f) in rows {
        write!(h, "<tr><th>{name}</th>")?;
        for r in runs {
            write!(h, "<td>{}</td>", esc(&f(r)))?;
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
    Ok(())
}

/// The traced namespace as the host line names it (with `--netns all`, the
/// namespaces whose groups were recorded).
fn namespace(r: &Run) -> String {
    let host = r.timeline.host.as_ref();
    let Some(ns) = host.and_then(|h| h.netns.as_deref()) else {
        return "? (recorded before netmem said it)".into();
    };
    match host.and_then(|h| h.netns_inode) {
        Some(inode) => format!("{ns} (inode {inode})"),
        None => {
            let seen: Vec<String> = r.timeline.namespaces().into_iter().map(|n| n.0).collect();
            format!("{ns} (groups seen in: {})", seen.join(", "))
        }
    }
}

fn changes(h: &mut String, a: &Run, b: &Run) -> Result<()> {
    h.push_str("<h2>What differs</h2>\n");
    if let (Some(x), Some(y)) = (a.timeline.host.as_ref(), b.timeline.host.as_ref()) {
        let d = x.traced_differences(y);
        if !d.is_empty() {
            writeln!(
                h,
                "<div class=\"warn traced\"><b>A and B traced different things:</b> {}. A group of the same name in both is not the same sockets, and the totals cover different sockets.</div>",
                esc(&d.join("; "))
            )?;
        }
    }
    let sys = sysctl_changes(a.timeline.host.as_ref(), b.timeline.host.as_ref());
    if sys.is_empty() {
        h.push_str("<p>No sysctl differs between the two host lines.</p>\n");
    } else {
        h.push_str("<table class=\"sysctls\"><tr><th>sysctl</th><th>A</th><th>B</th></tr>");
        for (n, x, y) in &sys {
            write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(n),
                esc(x.as_deref().unwrap_or("(absent)")),
                esc(y.as_deref().unwrap_or("(absent)"))
            )?;
        }
        h.push_str("</table>\n");
    }
    h.push_str("<table class=\"deltas\"><tr><th>figure</th><th>peak A</th><th>peak B</th><th>change</th><th>mean A</th><th>mean B</th><th>p95 A</th><th>p95 B</th></tr>");
    for d in deltas(a, b) {
        let change = if d.a.peak > 0.0 {
            let pct = (d.b.peak - d.a.peak) / d.a.peak * 100.0;
            let cls = if pct > 0.5 {
                "up"
            } else if pct < -0.5 {
                "down"
            } else {
                ""
            };
            format!("<span class=\"{cls}\">{pct:+.0}%</span>")
        } else if d.b.peak > 0.0 {
            "<span class=\"up\">new</span>".into()
        } else {
            String::new()
        };
        write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{change}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&d.name),
            fmt_num(d.a.peak, d.bytes),
            fmt_num(d.b.peak, d.bytes),
            fmt_num(d.a.mean, d.bytes),
            fmt_num(d.b.mean, d.bytes),
            fmt_num(d.a.p95, d.bytes),
            fmt_num(d.b.p95, d.bytes),
        )?;
    }
    h.push_str("</table>\n");
    Ok(())
}

fn findings(h: &mut String, runs: &[Run]) -> Result<()> {
    h.push_str("<h2>Findings</h2>\n");
    for (i, r) in runs.iter().enumerate() {
        if runs.len() == 2 {
            write!(h, "<h3>{}</h3>", label(i))?;
        }
        if r.findings.is_empty() {
            h.push_str("<p>The doctor found nothing to report.</p>");
        }
        h.push_str("<ol class=\"findings\">");
        for f in r.findings.iter().take(6) {
            let sev = f.severity.name();
            let cls = if sev == "warn" { "warn-sev" } else { sev };
            write!(
                h,
                "<li><span class=\"sev {cls}\">{sev}{}</span> <b>{}</b>",
                if f.fired { ", fired" } else { "" },
                esc(&f.title)
            )?;
            if !f.evidence.is_empty() {
                h.push_str("<br><small>");
                // The first few figures; `netmem doctor --from` lists all.
                let mut ev: Vec<String> = f
                    .evidence
                    .iter()
                    .take(4)
                    .map(|e| format!("{} = {}", esc(&e.name), esc(&e.value)))
                    .collect();
                if f.evidence.len() > 4 {
                    ev.push(format!(
                        "{} more in <code>netmem doctor --from</code>",
                        f.evidence.len() - 4
                    ));
                }
                h.push_str(&ev.join("; "));
                h.push_str("</small>");
            }
            for a in &f.action {
                write!(h, "<br><code>{}</code>", esc(a))?;
            }
            h.push_str("</li>");
        }
        h.push_str("</ol>\n");
    }
    Ok(())
}

fn plots_section(h: &mut String, runs: &[Run]) -> Result<()> {
    h.push_str("<h2>Over time</h2>\n");
    let r = ranges(runs);
    let top_mem = top_groups(runs, false);
    let top_orph = top_groups(runs, true);
    let width = if runs.len() == 2 { 700 } else { plots::WIDTH };
    type Draw<'a> = Box<dyn Fn(&Run) -> Result<String> + 'a>;
    let top_accept: Vec<String> = {
        let mut v: Vec<String> = runs
            .iter()
            .flat_map(|x| plots::accept_groups(&x.timeline, 4))
            .collect();
        v.dedup();
        v.truncate(4);
        v
    };
    let mut kinds: Vec<(&str, Draw)> = vec![
        (
            "memory",
            Box::new(|x: &Run| plots::memory(&x.timeline, &top_mem, r.memory, width)),
        ),
        (
            "orphans",
            Box::new(|x: &Run| plots::orphans(&x.timeline, &top_orph, r.orphans, width)),
        ),
        (
            "events",
            Box::new(|x: &Run| plots::events(&x.timeline, r.events, width)),
        ),
        (
            "routes",
            Box::new(|x: &Run| plots::routes(&x.timeline, r.routes, width)),
        ),
    ];
    // Only recordings with a listener's accept queue figures have one.
    if let Some(accept) = r.accept {
        kinds.push((
            "accept",
            Box::new(move |x: &Run| plots::accept(&x.timeline, &top_accept, accept, width)),
        ));
    }
    for (kind, draw) in kinds {
        h.push_str("<div class=\"row\">");
        for (i, run) in runs.iter().enumerate() {
            write!(
                h,
                "<figure class=\"plot\" data-plot=\"{kind}\" data-run=\"{}\">",
                label(i)
            )?;
            h.push_str(&draw(run)?);
            h.push_str("</figure>");
        }
        h.push_str("</div>\n");
    }
    Ok(())
}

fn groups(h: &mut String, r: &Run, which: Option<&str>) -> Result<()> {
    let g = r.timeline.groups();
    // The owner column only for recordings that have owners.
    let owners = g.iter().any(|s| s.owner.is_some());
    let proxies = g.iter().any(|s| s.proxy.is_some());
    write!(
        h,
        "<h2>Groups{}</h2>\n<table class=\"groups\"><tr><th>group</th>{}{}<th>peak memory</th><th>mean memory</th><th>p95 memory</th><th>peak orphans</th><th>events</th></tr>",
        which.map(|w| format!(" ({w})")).unwrap_or_default(),
        if proxies { "<th>proxy</th>" } else { "" },
        if owners { "<th>owner</th>" } else { "" }
    )?;
    for s in g.iter().take(TABLE_ROWS) {
        let ev: Vec<String> = s.events.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let proxy = if proxies {
            format!("<td>{}</td>", esc(s.proxy.as_deref().unwrap_or("")))
        } else {
            String::new()
        };
        let owner = if owners {
            format!("<td>{}</td>", esc(s.owner.as_deref().unwrap_or("")))
        } else {
            String::new()
        };
        write!(
            h,
            "<tr><td>{}</td>{proxy}{owner}<td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
            esc(&s.group),
            human_bytes(s.memory.peak as u64),
            human_bytes(s.memory.mean as u64),
            human_bytes(s.memory.p95 as u64),
            s.orphans.peak as u64,
            esc(&ev.join(", "))
        )?;
    }
    h.push_str("</table>");
    if g.len() > TABLE_ROWS {
        write!(h, "<p>... and {} smaller groups.</p>", g.len() - TABLE_ROWS)?;
    }
    h.push('\n');
    Ok(())
}

fn aborts(h: &mut String, r: &Run, which: Option<&str>) -> Result<()> {
    let a = r.timeline.aborts();
    writeln!(
        h,
        "<h2>Aborts on memory{}</h2>",
        which.map(|w| format!(" ({w})")).unwrap_or_default()
    )?;
    if a.is_empty() {
        h.push_str("<p>None: tcp_check_oom reset no connection.</p>\n");
        return Ok(());
    }
    h.push_str("<table class=\"aborts\"><tr><th>at (s)</th><th>group</th><th>cause</th><th>orphans / max (shift)</th><th>allocated / tcp_mem max (pages)</th><th>socket</th></tr>");
    for e in a.iter().take(ABORT_ROWS) {
        let f = &e.figures;
        let s = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
        write!(
            h,
            "<tr><td class=n>{:.1}</td><td>{}</td><td><b>{}</b></td><td class=n>{} / {} ({})</td><td class=n>{} / {}</td><td>{} &rarr; {}</td></tr>",
            e.t,
            esc(e.group.as_deref().unwrap_or("?")),
            esc(e.cause.as_deref().unwrap_or("?")),
            s(f.orphans),
            s(f.max_orphans),
            s(f.shift),
            s(f.allocated_pages),
            s(f.tcp_mem_max),
            esc(f.local.as_deref().unwrap_or("?")),
            esc(f.remote.as_deref().unwrap_or("?")),
        )?;
    }
    h.push_str("</table>");
    let all = r.timeline.aborts_seen;
    if all > ABORT_ROWS as u64 {
        write!(h, "<p>... and {} more.</p>", all - ABORT_ROWS as u64)?;
    }
    h.push('\n');
    Ok(())
}
