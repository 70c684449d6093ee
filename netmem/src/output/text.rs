//! Tables and one line per event, for people at a terminal: the sink, the
//! doctor's report and a proxy's lines here; the group table in `table.rs`;
//! event lines, the probes report and the coverage line in `lines.rs`.

use std::io::Write;

use anyhow::Result;
use netmem_common::{GroupKey, Stat};

use super::Sink;
use crate::format::{human_bytes, printable, rfc3339, Shown};
use crate::hooks::HookStatus;
use crate::model::group::GroupRow;
use crate::model::names::Names;
use crate::model::proxy::ProxyView;
use crate::model::{Context, Event, Interval, Summary};

mod lines;
mod table;

pub use lines::{coverage_line, event_line, report_table};
pub use table::{accept_cell, cgroup_cell, process_cell, table};

pub struct TextSink<W: Write> {
    out: W,
    /// Group rows per table at most (0: all); the rest are counted.
    rows: usize,
    /// ANSI colours (standard output is a terminal).
    color: bool,
    /// The proxies naming groups, for the coverage line.
    proxies: Vec<String>,
    /// The run's names (see [`Sink::names`]).
    names: Names,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, rows: usize) -> Self {
        TextSink {
            out,
            rows,
            color: false,
            proxies: Vec::new(),
            names: Names::default(),
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
        write!(self.out, "{}", table(&groups[..shown], live, &self.names))?;
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
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
    }

    fn report(&mut self, r: &crate::doctor::Report) -> Result<()> {
        write!(self.out, "{}", report_text(r, self.color))?;
        self.flush()
    }

    fn fleet(&mut self, r: &crate::doctor::fleet::FleetReport) -> Result<()> {
        write!(self.out, "{}", fleet_text(r, self.color))?;
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
            write!(self.out, "{}", proxy_text(v, &self.names))?;
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

    fn census_report(&mut self, c: &crate::hooks::status::CensusStatus) -> Result<()> {
        write!(self.out, "{}", lines::census_row(c))?;
        self.flush()
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        writeln!(self.out, "{}", event_line(e, &self.names))?;
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
        for f in &i.netns {
            // Only what grew: a quiet namespace prints nothing.
            let grew: Vec<String> = f
                .delta
                .iter()
                .flatten()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} +{n}"))
                .collect();
            if !grew.is_empty() {
                writeln!(
                    self.out,
                    "netns {}: {}",
                    crate::format::Shown(&self.names.netns_label(f.inum)),
                    grew.join("  ")
                )?;
            }
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

/// `s` in its severity's colour, when colour is on.
fn paint(color: bool, sev: crate::doctor::Severity, s: &str) -> String {
    use crate::doctor::Severity;
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
}

/// The fleet doctor's verdict: the hosts worst first, what they share,
/// the groups across them, then each host's report as `doctor` gives it.
pub fn fleet_text(r: &crate::doctor::fleet::FleetReport, color: bool) -> String {
    use crate::doctor::Severity;
    let n = r.instances.len();
    let mut s = format!(
        "netmem doctor: {}: {}\n",
        printable(&r.source),
        crate::format::count(n as u64, "instance", "instances")
    );
    for note in &r.notes {
        s += &format!("  not in Prometheus, not judged: {}\n", printable(note));
    }
    s += "\nHosts, worst first:\n";
    let width = r
        .instances
        .iter()
        .map(|j| j.instance.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for (i, j) in r.instances.iter().enumerate() {
        let worst = j.worst();
        let tag = format!("{:<8}", worst.name().to_uppercase());
        let counts: Vec<String> = [Severity::Critical, Severity::Warn, Severity::Info]
            .into_iter()
            .filter(|sev| j.count(*sev) > 0)
            .map(|sev| format!("{} {}", j.count(sev), sev.name()))
            .collect();
        let top = match j.report.findings.first() {
            Some(f) if f.severity > Severity::Ok => format!(": {}", printable(&f.title)),
            _ => String::new(),
        };
        s += &format!(
            "  {}. {:<width$}  {} {}{top}\n",
            i + 1,
            printable(&j.instance),
            paint(color, worst, &tag),
            if counts.is_empty() {
                "nothing to report".to_string()
            } else {
                counts.join(", ")
            },
        );
        let f = &j.figures;
        let pct = |x: Option<f64>| x.map_or(String::new(), |x| format!(" ({:.0}% of", x * 100.0));
        s += &format!(
            "     {:width$}  TCP memory at peak {}{}{}, orphans at peak {}{}{}, groups held {} with {} at peak, {}\n",
            "",
            human_bytes(f.peak_tcp_memory_bytes),
            pct(f.tcp_memory_of_max),
            if f.tcp_memory_of_max.is_some() { " tcp_mem[2])" } else { "" },
            f.peak_orphans,
            pct(f.orphans_of_threshold),
            if f.orphans_of_threshold.is_some() { " tcp_max_orphans/4)" } else { "" },
            human_bytes(f.peak_held_bytes),
            crate::format::count(f.peak_census_orphans, "orphan", "orphans"),
            crate::format::count(f.aborts, "abort on memory", "aborts on memory"),
        );
    }
    if !r.shared.is_empty() {
        s += "\nFindings across hosts:\n";
    }
    for x in &r.shared {
        let tag = format!("[{}]", x.severity.name().to_uppercase());
        s += &format!(
            "  {} {} on {} of {} hosts: {}\n     e.g. {}: {}\n",
            paint(color, x.severity, &tag),
            x.id,
            x.hosts.len(),
            x.of,
            x.hosts
                .iter()
                .map(|h| printable(h))
                .collect::<Vec<_>>()
                .join(", "),
            printable(&x.hosts[0]),
            printable(&x.example)
        );
    }
    if !r.groups.is_empty() {
        s += "\nGroups across hosts (memory at their peak, most first):\n";
    }
    for g in &r.groups {
        let hosts: Vec<String> = g
            .hosts
            .iter()
            .map(|h| {
                let orphans = match h.peak_orphans {
                    0 => String::new(),
                    o => format!(", {}", crate::format::count(o, "orphan", "orphans")),
                };
                format!(
                    "{} {}{orphans}",
                    printable(&h.instance),
                    human_bytes(h.peak_memory_bytes)
                )
            })
            .collect();
        s += &format!(
            "  {} on {}, {} in all: {}\n",
            printable(&g.group),
            crate::format::count(g.hosts.len() as u64, "host", "hosts"),
            human_bytes(g.peak_memory_bytes),
            hosts.join("; ")
        );
    }
    for j in &r.instances {
        s += &format!("\n== {} ==\n", printable(&j.instance));
        s += &report_text(&j.report, color);
    }
    s
}

/// The doctor's findings, most urgent first, in the manner of bpftune's
/// log: what happened, for which limit, and the change to make.
pub fn report_text(r: &crate::doctor::Report, color: bool) -> String {
    let paint = |sev, s: &str| paint(color, sev, s);
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
/// could not be read; its namespace named by `names`.
pub fn proxy_text(v: &ProxyView, names: &Names) -> String {
    let (fe, be, srv) = v.sizes();
    let mut s = format!("proxy: {}", printable(&v.describe_source()));
    if names.all_namespaces() {
        let ns = names.netns_name(v.netns);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
