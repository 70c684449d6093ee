//! `/`: serve's live page. What an operator opening the exporter's address
//! in a browser wants first: host-wide TCP memory against its limits, the
//! groups holding the most, the doctor's first findings, and the flight
//! recorder's incidents (each with its report and its file). Plain HTML,
//! no script: it refreshes itself every interval with a meta tag, and
//! reads the same published values as `/metrics` (never the kernel).

use std::fmt::Write as _;

use crate::format::{html_escape as esc, human_bytes, rfc3339};
use crate::output::incidents::SUFFIX;

use super::Ctx;

/// Groups the page lists at most.
pub const GROUPS: usize = 10;

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}\
h2{margin-top:24px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}\
.critical{background:#c62828}.warn{background:#ef6c00}.info{background:#1565c0}.ok{background:#2e7d32}\
.note{color:#666;font-size:13px}code{background:#f4f4f4;padding:1px 4px}";

pub(super) fn index(ctx: &Ctx) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let expo = ctx.shared.latest();
    // Refresh with the data: every interval, at least every 2 s.
    let refresh = expo.as_ref().map_or(2, |e| e.interval.as_secs().max(2));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{refresh}\"><title>netmem serve</title><style>{STYLE}</style></head><body>\n<h1>netmem</h1>\n<p>Live socket memory attribution: which listening port or backend holds the kernel's socket memory, and which limit fired. <a href=\"/metrics\">Metrics</a>"
    );
    if ctx.shared.incidents.get().is_some() {
        h.push_str(" · <a href=\"/incidents\">Incidents (JSON)</a>");
    }
    h.push_str("</p>\n");
    match expo
        .as_deref()
        .and_then(|e| e.global.as_ref().map(|g| (e, g)))
    {
        None => h.push_str(
            "<p>netmem is attaching its probes; this page fills in after the first interval.</p>\n",
        ),
        Some((e, g)) => {
            let c = &g.context;
            let page = c.page_size.max(1);
            let _ = write!(
                h,
                "<p class=\"note\">As of {} (every {}).</p>\n<h2>Host</h2>\n<table><tr><th>TCP memory</th><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&rfc3339(g.ts)),
                esc(&humantime::format_duration(e.interval).to_string()),
                human_bytes(c.memory_allocated_pages.saturating_mul(page)),
                match c.tcp_mem_pages {
                    Some(m) => format!(
                        "tcp_mem {} / {} / {}{}",
                        human_bytes(m[0].saturating_mul(page)),
                        human_bytes(m[1].saturating_mul(page)),
                        human_bytes(m[2].saturating_mul(page)),
                        if g.memory_pressure { " · <b>under memory pressure</b>" } else { "" }
                    ),
                    None => "tcp_mem not known".into(),
                }
            );
            let _ = write!(
                h,
                "<tr><th>Orphans</th><td class=\"n\">{}</td><td>{}</td></tr>",
                c.orphans,
                c.max_orphans
                    .map_or("tcp_max_orphans not known".into(), |m| format!(
                        "tcp_max_orphans {m}"
                    ))
            );
            if g.lost_events > 0 {
                let _ = write!(
                    h,
                    "<tr><th>Events lost</th><td class=\"n\">{}</td><td>ring buffer full</td></tr>",
                    g.lost_events
                );
            }
            h.push_str("</table>\n");
            groups(&mut h, e);
        }
    }
    findings(&mut h, ctx);
    incidents(&mut h, ctx);
    h.push_str("</body></html>\n");
    h
}

fn groups(h: &mut String, e: &crate::output::prometheus::Exposition) {
    let _ = write!(
        h,
        "<h2>Groups holding the most</h2>\n<table><tr><th>group</th><th>proxy</th><th>process</th><th>memory</th><th>sockets</th><th>orphans</th><th>orphans' data</th><th>aborts on memory</th></tr>"
    );
    for g in e.groups.iter().take(GROUPS) {
        let aborts: u64 = g.totals.aborts.values().sum();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&g.group),
            esc(&g.proxy.as_ref().map(|p| p.describe()).unwrap_or_default()),
            esc(g.owner.as_ref().map(|o| o.process.as_str()).unwrap_or("")),
            human_bytes(g.mem.total()),
            g.mem.sockets,
            g.mem.orphans,
            human_bytes(g.mem.orphan_bytes),
            aborts
        );
    }
    h.push_str("</table>\n");
    if e.groups.len() > GROUPS {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} more groups on <a href=\"/metrics\">/metrics</a>.</p>",
            e.groups.len() - GROUPS
        );
    }
}

fn findings(h: &mut String, ctx: &Ctx) {
    let v = ctx.shared.live.latest();
    h.push_str("<h2>The doctor, since serve started</h2>\n");
    if v.at.is_none() {
        h.push_str("<p>No interval yet.</p>\n");
        return;
    }
    if v.findings.is_empty() {
        h.push_str("<p>Nothing near a limit.</p>\n");
        return;
    }
    h.push_str("<table><tr><th></th><th>finding</th><th>group</th><th>what to do</th></tr>");
    for f in &v.findings {
        let sev = f.severity.name();
        let _ =
            write!(
            h,
            "<tr><td><span class=\"sev {}\">{}</span>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            sev,
            sev,
            if f.fired { " fired" } else { "" },
            esc(&f.title),
            esc(&[f.group.as_deref().unwrap_or(""), f.group_proxy.as_deref().unwrap_or("")]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(", ")),
            f.action
                .iter()
                .take(3)
                .map(|a| format!("<code>{}</code>", esc(a)))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    h.push_str("</table>\n");
    if v.more > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} more: <code>netmem doctor</code>.</p>",
            v.more
        );
    }
}

fn incidents(h: &mut String, ctx: &Ctx) {
    let Some(inc) = ctx.shared.incidents.get() else {
        h.push_str("<h2>Incidents</h2>\n<p class=\"note\">No flight recorder: start serve with <code>--flight-recorder DIR</code> to keep the minutes before an incident.</p>\n");
        return;
    };
    let list = inc.list();
    h.push_str("<h2>Incidents</h2>\n");
    if list.is_empty() {
        h.push_str("<p>None recorded.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>started</th><th>cause</th><th>size</th><th></th></tr>");
    // Newest first.
    for x in list.iter().rev() {
        let links = if x.ongoing {
            "being recorded".to_string()
        } else {
            format!(
                "<a href=\"/incidents/{id}\">report</a> · <a href=\"/incidents/{id}/file\">{id}{SUFFIX}</a>",
                id = esc(&x.id)
            )
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&rfc3339(x.started)),
            esc(x.cause.name()),
            human_bytes(x.bytes),
            links
        );
    }
    h.push_str("</table>\n");
}
