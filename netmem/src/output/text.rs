//! Tables and one line per event, for people at a terminal.

use std::io::Write;

use anyhow::Result;
use netmem_common::{Counter, GroupKey, Stat};
use serde_json::Value;

use super::json::event_object;
use super::Sink;
use crate::format::{columns, human_bytes, printable, rfc3339, Shown};
use crate::hooks::{HookStatus, Tier};
use crate::model::group::{group_name, GroupRow};
use crate::model::proxy::ProxyView;
use crate::model::{Context, Event, Interval, Summary};

pub struct TextSink<W: Write> {
    out: W,
    /// Group rows per table at most (0: all); the rest are counted.
    rows: usize,
    /// ANSI colours (standard output is a terminal).
    color: bool,
    /// The proxies naming groups, for the coverage line.
    proxies: Vec<String>,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, rows: usize) -> Self {
        TextSink {
            out,
            rows,
            color: false,
            proxies: Vec::new(),
        }
    }

    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    fn table(&mut self, groups: &[(GroupKey, GroupRow)], live: bool) -> Result<()> {
        let shown = if self.rows == 0 {
            groups.len()
        } else {
            groups.len().min(self.rows)
        };
        write!(self.out, "{}", table(&groups[..shown], live))?;
        if shown < groups.len() {
            writeln!(
                self.out,
                "... {} more groups (--rows 0 shows all; JSON lists every one)",
                groups.len() - shown
            )?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn report(&mut self, r: &crate::doctor::Report) -> Result<()> {
        write!(self.out, "{}", report_text(r, self.color))?;
        self.flush()
    }

    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        let mut line = coverage_line(hooks);
        for p in &self.proxies {
            line += &format!("; names from {}", printable(p));
        }
        writeln!(self.out, "{line}")?;
        self.flush()
    }

    fn proxies(&mut self, p: &[std::sync::Arc<ProxyView>]) -> Result<()> {
        self.proxies.clear();
        for v in p {
            write!(self.out, "{}", proxy_text(v))?;
            if v.map.is_some() {
                self.proxies.push(v.describe_source());
            }
        }
        self.flush()
    }

    fn probe_report(&mut self, hooks: &[HookStatus]) -> Result<()> {
        write!(self.out, "{}", report_table(hooks))?;
        self.flush()
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        writeln!(self.out, "{}", event_line(e))?;
        Ok(())
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        let ctx = context_line(&i.context);
        let Some(l) = &i.live else {
            writeln!(self.out, "{ctx}")?;
            self.table(&i.groups, false)?;
            return self.flush();
        };
        writeln!(
            self.out,
            "\n{}  {ctx}  lost {}",
            rfc3339(i.ts),
            l.loss.lost_events
        )?;
        let r = &l.routes;
        if r.inserted > 0 || l.memory_pressure {
            let top: Vec<String> = r.by_dst.iter().map(|(d, n)| format!("{d}x{n}")).collect();
            writeln!(
                self.out,
                "memory pressure: {}  route exceptions: +{} ({:.1}/s) {}",
                if l.memory_pressure { "YES" } else { "no" },
                r.inserted,
                r.per_s(),
                top.join(" ")
            )?;
        }
        if l.loss.events_suppressed > 0 {
            writeln!(
                self.out,
                "({} events not shown: over --event-limit)",
                l.loss.events_suppressed
            )?;
        }
        if let Some(age) = l.census_age {
            writeln!(
                self.out,
                "(sockets and memory per group from the census {:.1}s ago: --census-budget)",
                age.as_secs_f64()
            )?;
        }
        self.table(&i.groups, true)?;
        self.flush()
    }

    fn summary(&mut self, s: &Summary) -> Result<()> {
        writeln!(
            self.out,
            "\nsummary: {} events received, {} lost (ring buffer full), {} not shown (--event-limit), {} left unread at exit, {} counts dropped (group map full), {:.1}s; probes detached",
            s.events,
            s.stat(Stat::RingbufLost),
            s.events_suppressed,
            s.events_unread_at_exit,
            s.stat(Stat::GroupMapFull),
            s.duration.as_secs_f64()
        )?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// The doctor's findings, most urgent first, in the manner of bpftune's
/// log: what happened, for which limit, and the change to make.
pub fn report_text(r: &crate::doctor::Report, color: bool) -> String {
    use crate::doctor::Severity;
    let paint = |sev: Severity, s: &str| -> String {
        if !color {
            return s.to_string();
        }
        let code = match sev {
            Severity::Critical => "1;31",
            Severity::Warn => "1;33",
            Severity::Info => "36",
            Severity::Ok => "32",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    };
    // Findings quote names (groups, processes, proxies) and files the
    // user named: every string is escaped, as in every text output.
    let mut s = format!(
        "netmem doctor: {} (kernel {}, namespace {})\n",
        printable(&r.source),
        printable(&r.kernel_release),
        printable(&r.namespace)
    );
    for u in &r.unreadable {
        s += &format!("  could not read: {}\n", printable(u));
    }
    if r.findings.is_empty() {
        s += "  nothing to report\n";
    }
    for (i, f) in r.findings.iter().enumerate() {
        let tag = format!("[{}]", f.severity.name().to_uppercase());
        s += &format!(
            "\n{}. {} {}: {}\n",
            i + 1,
            paint(f.severity, &tag),
            f.id,
            printable(&f.title)
        );
        for e in &f.evidence {
            s += &format!("     {}: {}\n", printable(&e.name), printable(&e.value));
        }
        s += &format!("   why: {}\n", printable(&f.explanation));
        if f.action.is_empty() {
            s += "   do:  no change\n";
        }
        for (j, a) in f.action.iter().enumerate() {
            let lead = if j == 0 { "do: " } else { "    " };
            s += &format!("   {lead} {}\n", printable(a));
        }
    }
    s
}

pub fn context_line(c: &Context) -> String {
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
    let udp_mem = match c.udp_mem_pages {
        Some(m) => human_bytes(m[2] * p),
        None => "?".to_string(),
    };
    // The kernel's count and the census' are read at different moments
    // (and the kernel's covers every namespace): when they differ, both
    // are shown, each named, so the groups' ORPH never seems to exceed it.
    let census = match c.orphans_census {
        Some(n) if n != c.orphans => format!(" (kernel; {n} in the census)"),
        _ => String::new(),
    };
    format!(
        "tcp_mem {tcp_mem} (min/pressure/max)  allocated {}  orphans {}/{max_orphans}{census}  inuse {}  tw {}  udp {} of {udp_mem} ({} sockets)",
        human_bytes(c.memory_allocated_pages * p),
        c.orphans,
        c.sockets_inuse + c.tcp6_inuse,
        c.tw,
        human_bytes(c.udp_memory_allocated_pages * p),
        c.udp_inuse
    )
}

/// A proxy's lines: what it names and its buffer settings, then what
/// could not be read.
pub fn proxy_text(v: &ProxyView) -> String {
    let (fe, be, srv) = v.sizes();
    let mut s = format!("proxy: {}", printable(&v.describe_source()));
    if crate::model::owner::all_namespaces() {
        let ns = crate::model::owner::netns_name(v.netns);
        s += &format!(" in netns {}", Shown(&ns));
    }
    s += ": ";
    match &v.map {
        Some(m) => {
            use crate::model::proxy::{Meaning, Side};
            let t = &m.tune;
            let (c, sv) = (t.side(Side::Client), t.side(Side::Server));
            // The proxy's own buffer, by its kind's name (`tune.bufsize`).
            let buffer = t.knob(Meaning::ProxyBuffer).map_or("buffer", |k| k.name);
            let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
            s += &format!(
                "{}, {}, {}; {buffer} {}, client rcvbuf {} sndbuf {}, server rcvbuf {} sndbuf {}\n",
                n(fe, "frontend"),
                n(be, "backend"),
                n(srv, "server"),
                t.buffer().map_or("?".to_string(), human_bytes),
                c.show(c.rcvbuf),
                c.show(c.sndbuf),
                sv.show(sv.rcvbuf),
                sv.show(sv.sndbuf)
            );
        }
        None => s += "not read, groups keep their plain names\n",
    }
    if let Some(m) = &v.map {
        for n in &m.notes {
            s += &format!("proxy: note: {}\n", printable(n));
        }
    }
    for p in &v.problems {
        s += &format!("proxy: {}\n", printable(p));
    }
    s
}

/// The interval's event counts shown as columns, with their headers.
const COUNT_COLUMNS: [(&str, Counter); 6] = [
    ("EXCEED", Counter::ExceedBufLimit),
    ("RQFULL", Counter::RcvqueueFull),
    ("ABORT", Counter::MemAborts),
    ("SKBDROP", Counter::SkbDrops),
    ("NEW", Counter::Established),
    ("CLOSED", Counter::Closed),
];

/// The table of groups. Names (groups, proxies, processes, cgroups) are
/// [`Shown`]: escaped, and at most [`crate::format::NAME_MAX`] columns each, so a
/// row is one line of bounded width whatever others named their things.
pub fn table(rows: &[(GroupKey, GroupRow)], with_counts: bool) -> String {
    // Wide enough for the longest name (IPv6 backends run past 28).
    let names: Vec<String> = rows.iter().map(|(g, _)| group_name(g)).collect();
    let w = names
        .iter()
        .map(|n| Shown(n).width())
        .max()
        .unwrap_or(0)
        .max(28);
    // The proxy's name for each group, when a proxy names any.
    let labels: Vec<String> = rows
        .iter()
        .map(|(_, r)| r.proxy.as_ref().map_or("-".into(), |p| p.label()))
        .collect();
    let pw = rows.iter().any(|(_, r)| r.proxy.is_some()).then(|| {
        labels
            .iter()
            .map(|l| Shown(l).width())
            .max()
            .unwrap_or(0)
            .max(5)
    });
    let mut s = format!("{:<w$}", "GROUP");
    if let Some(pw) = pw {
        s += &format!(" {:<pw$}", "PROXY");
    }
    s += &format!(
        " {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "SOCKS",
        "ORPH",
        "RMEM",
        super::SEND_QUEUE_COLUMN,
        "FWD",
        "ORPH_B",
        "DROPS"
    );
    if with_counts {
        for (h, _) in COUNT_COLUMNS {
            s += &format!(" {h:>w$}", w = h.len().max(6));
        }
    }
    let owners = rows.iter().any(|(_, r)| r.owners.is_some());
    let procs: Vec<String> = rows
        .iter()
        .map(|(_, r)| match &r.owners {
            Some(w) => process_cell(w),
            None => "-".into(),
        })
        .collect();
    let procw = procs.iter().map(|p| columns(p)).max().unwrap_or(0).max(24);
    let memcg = rows
        .iter()
        .any(|(g, _)| g.kind == netmem_common::GROUP_CGROUP);
    if memcg {
        s += &format!(" {:>10}", "MEMCG_SOCK");
    }
    if owners {
        s += &format!(" {:<procw$} {}", "PROCESS", "CGROUP");
    }
    s.push('\n');
    for ((((g, r), name), label), proc) in rows.iter().zip(&names).zip(&labels).zip(&procs) {
        let m = &r.mem;
        s += &format!("{:<w$}", Shown(name));
        if let Some(pw) = pw {
            s += &format!(" {:<pw$}", Shown(label));
        }
        s += &format!(
            " {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
            m.sockets,
            m.orphans,
            human_bytes(m.rmem),
            human_bytes(m.wmem_queued),
            human_bytes(m.fwd_alloc),
            human_bytes(m.orphan_bytes),
            m.drops
        );
        if with_counts {
            for (h, c) in COUNT_COLUMNS {
                s += &format!(" {:>w$}", r.count(c), w = h.len().max(6));
            }
        }
        if memcg {
            let v = r.owners.as_ref().and_then(|w| {
                let id = crate::model::owner::owner_id(g);
                w.cgroups.iter().find(|c| c.cgroup.id == id)?.memcg_sock
            });
            s += &format!(" {:>10}", v.map_or("-".to_string(), human_bytes));
        }
        if let (true, Some(w)) = (owners, &r.owners) {
            // The cell is already shown: pad it in columns, not chars.
            let pad = procw.saturating_sub(columns(proc));
            s += &format!(" {proc}{:pad$} {}", "", cgroup_cell(w));
        }
        s.push('\n');
    }
    s
}

/// `haproxy[812]`, `+N` more holders after it; the name [`Shown`].
pub fn process_cell(w: &crate::model::owner::Owners) -> String {
    let Some(p) = w.processes.first() else {
        return "-".into();
    };
    let more = w.processes.len() as u64 - 1 + w.more_processes;
    let mut s = format!("{}[{}]", Shown(&p.comm), p.pid);
    if more > 0 {
        s += &format!(" +{more}");
    }
    s
}

/// The largest cgroup's path ([`Shown`]), with its container or pod when
/// it has one.
pub fn cgroup_cell(w: &crate::model::owner::Owners) -> String {
    let Some(c) = w.cgroups.first() else {
        return "-".into();
    };
    let mut s = Shown(&c.cgroup.path).to_string();
    if let Some(id) = &c.cgroup.container {
        s += &format!(" (container {id})");
    } else if let Some(pod) = &c.cgroup.pod {
        s += &format!(" (pod {pod})");
    }
    let more = w.cgroups.len() as u64 - 1 + w.more_cgroups;
    if more > 0 {
        s += &format!(" +{more}");
    }
    s
}

/// One line per event: time, kind and group first, then every field the
/// JSON line has, as `key=value` words: an object's fields as
/// `key.field=value`, a list as `key=a,b`, unknown (null) fields left out.
pub fn event_line(e: &Event) -> String {
    let o = event_object(e);
    let group = e.group.as_ref().map(group_name).unwrap_or_default();
    let mut s = format!(
        "{} {:<17} {:<24}",
        rfc3339(e.ts),
        e.body.kind().name(),
        Shown(&group)
    );
    // What the line is about first (which sockets, why), then the rest
    // in the JSON line's (alphabetical) order.
    const FIRST: [&str; 6] = ["local", "remote", "reason", "cause", "direction", "bytes"];
    for k in FIRST {
        if let Some(val) = o.get(k) {
            push_words(&mut s, k, val);
        }
    }
    for (k, val) in &o {
        if matches!(k.as_str(), "type" | "ts" | "event" | "group") || FIRST.contains(&k.as_str()) {
            continue;
        }
        push_words(&mut s, k, val);
    }
    s
}

/// ` key=value` for one JSON field (see [`event_line`]).
fn push_words(s: &mut String, key: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, x) in m {
                push_words(s, &format!("{key}.{k}"), x);
            }
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| Shown(&scalar(x)).to_string()).collect();
            *s += &format!(" {key}={}", word(&items.join(",")));
        }
        x => *s += &format!(" {key}={}", word(&Shown(&scalar(x)).to_string())),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A value already [`Shown`] (escaped and cut) as one word: quoted when
/// it is empty or holds a space, a quote or an escape (a name from a
/// process or a proxy's configuration), a quote in it escaped.
fn word(x: &str) -> String {
    if x.is_empty()
        || x.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", x.replace('"', "\\\""))
    } else {
        x.to_string()
    }
}

pub fn report_table(status: &[HookStatus]) -> String {
    let mut s = format!("{:<28} {:<11} {}\n", "HOOK", "TIER", "VIA");
    for st in status {
        // The kernel's and loader's words, escaped like every message.
        s += &format!(
            "{:<28} {:<11} {}\n",
            st.hook,
            st.tier.map_or("NONE", Tier::name),
            printable(&st.via)
        );
        for u in &st.unavailable {
            s += &format!(
                "{:<28}   not {}: {}\n",
                "",
                u.tier.name(),
                printable(&u.reason)
            );
        }
        if let Some(n) = &st.note {
            s += &format!("{:<28}   note: {}\n", "", printable(n));
        }
    }
    s
}

/// One line for the start of `trace`: what is covered, and how.
pub fn coverage_line(status: &[HookStatus]) -> String {
    let ok = status.iter().filter(|s| s.tier.is_some()).count();
    let tiers: Vec<String> = status
        .iter()
        .map(|s| {
            // The catalog's name, as `probes` and the metrics spell it.
            format!("{}={}", s.hook, s.tier.map_or("NONE", Tier::name))
        })
        .collect();
    let mut parts = vec![format!(
        "probes: {ok}/{} hooks served: {}",
        status.len(),
        tiers.join(" ")
    )];
    for s in status {
        match (&s.tier, &s.note) {
            (None, _) => parts.push(format!(
                "{} NOT served: {}",
                s.hook,
                printable(
                    &s.unavailable
                        .iter()
                        .map(|u| u.reason.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            )),
            (Some(_), Some(n)) => parts.push(format!("{} degraded: {}", s.hook, printable(n))),
            _ => {}
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{HookId, Unavailable};

    #[test]
    fn coverage_names_tiers_and_gaps() {
        let st = vec![
            HookStatus {
                id: HookId::TcpCheckOom,
                hook: "tcp_check_oom",
                tier: Some(Tier::Tracepoint),
                via: String::new(),
                unavailable: vec![],
                note: Some("shift unknown".into()),
            },
            HookStatus {
                id: HookId::KfreeSkb,
                hook: "skb:kfree_skb",
                tier: None,
                via: String::new(),
                unavailable: vec![Unavailable {
                    tier: Tier::Tracepoint,
                    reason: "gone".into(),
                }],
                note: None,
            },
        ];
        let line = coverage_line(&st);
        assert!(line.contains("1/2 hooks served"));
        assert!(line.contains("tcp_check_oom=tracepoint"));
        assert!(line.contains("skb:kfree_skb=NONE"));
        assert!(line.contains("skb:kfree_skb NOT served: gone"));
        assert!(line.contains("tcp_check_oom degraded: shift unknown"));
    }

    #[test]
    fn fields_are_words_not_json() {
        let mut s = String::new();
        let v =
            serde_json::json!({"pid": null, "comm": "a b\u{1b}", "via": "closer", "ids": [1, 2]});
        for (k, x) in v.as_object().unwrap() {
            push_words(&mut s, k, x);
        }
        push_words(&mut s, "owner", &v);
        assert_eq!(
            s,
            r#" comm="a b\u{1b}" ids=1,2 via=closer owner.comm="a b\u{1b}" owner.ids=1,2 owner.via=closer"#
        );
    }

    #[test]
    fn long_ipv6_names_keep_columns_aligned() {
        let a6: [u8; 16] = "2001:db8:1234:5678:9abc:def0:1234:5678"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let g = GroupKey::classify(netmem_common::AF_INET6, 40000, false, &a6, 9001);
        let t = table(
            &[
                (g, GroupRow::default()),
                (GroupKey::UNATTRIBUTED, GroupRow::default()),
            ],
            false,
        );
        let widths: Vec<usize> = t.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
    }

    #[test]
    fn rows_beyond_the_limit_are_counted() {
        let rows: Vec<(GroupKey, GroupRow)> = (1..=5u16)
            .map(|p| {
                (
                    GroupKey::classify(2, p, true, &[0; 16], 0),
                    GroupRow::default(),
                )
            })
            .collect();
        let mut out = Vec::new();
        TextSink::new(&mut out, 2).table(&rows, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("3 more groups"));
    }

    #[test]
    fn table_has_count_columns_when_live() {
        let mut row = GroupRow::default();
        row.counts[Counter::MemAborts as usize] = 3;
        let t = table(&[(GroupKey::UNATTRIBUTED, row)], true);
        assert!(t.lines().next().unwrap().ends_with("CLOSED"));
        assert!(t.contains("unattributed"));
    }
}
