//! The doctor: turns the figures of one reading, a watched window or a
//! recording into findings: which limit fired (or is nearest), with the
//! numbers, which group holds the memory, and what to change. Pure
//! functions over one [`State`]; no I/O here (see `cmd/doctor.rs`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sources::host::Host;
use crate::sources::kernel_log::{classify_line, line_time, LogMessage};

pub mod cgroups;
pub mod fleet;
mod rules;
pub mod window;

pub use window::Window;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Info,
    Warn,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// Whose figure a finding used: global limits apply to every namespace;
/// a group's figures are those of the namespace looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    Group,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Stable, e.g. `orphans`, `tcp_mem`, `tcp_mem.ram`.
    pub id: &'static str,
    pub severity: Severity,
    /// The limit was actually hit in what was looked at.
    pub fired: bool,
    pub title: String,
    pub evidence: Vec<Evidence>,
    pub explanation: String,
    /// Exact commands (`sysctl -w ...`) or per-group actions; empty means
    /// no change.
    pub action: Vec<String>,
    pub scope: Scope,
    /// The group that holds what the finding is about, when one does.
    pub group: Option<String>,
    /// What the proxy in front calls that group (`backend app, server
    /// app3`), when a proxy names it.
    pub group_proxy: Option<String>,
    /// How close to its limit, 1.0 at the limit: ranks what did not fire.
    #[serde(skip)]
    pub nearness: f64,
    /// Among findings that fired alike, the limits themselves come before
    /// their consequences.
    #[serde(skip)]
    pub priority: u8,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, title: String) -> Finding {
        Finding {
            id,
            severity,
            fired: false,
            title,
            evidence: Vec::new(),
            explanation: String::new(),
            action: Vec::new(),
            scope: Scope::Global,
            group: None,
            group_proxy: None,
            nearness: 0.0,
            priority: 0,
        }
    }

    fn ev(&mut self, name: impl Into<String>, value: impl ToString) -> &mut Self {
        self.evidence.push(Evidence {
            name: name.into(),
            value: value.to_string(),
        });
        self
    }
}

/// One kernel log message as the log shows it: how many lines, and when
/// the first and the last were written (as the log wrote it, when it did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSeen {
    pub lines: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

impl LogSeen {
    /// `1 line, at Nov 29 03:12:01`, `3 lines, from T1 to T2`, `2 lines
    /// (without timestamps)`.
    pub fn describe(&self) -> String {
        let n = crate::format::count(self.lines, "line", "lines");
        match (&self.first, &self.last) {
            (Some(a), Some(b)) if self.lines > 1 && a != b => format!("{n}, from {a} to {b}"),
            (Some(a), _) => format!("{n}, at {a}"),
            _ => format!("{n} (without timestamps)"),
        }
    }
}

/// Everything the rules look at.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub host: Host,
    pub window: Window,
    /// Kernel log messages that matter, with their counts and times.
    pub kernel_log: BTreeMap<LogMessage, LogSeen>,
    /// Where the kernel log came from (`/dev/kmsg`, a file), if anywhere.
    pub kernel_log_source: Option<String>,
    /// What could not be read, said in the output.
    pub unreadable: Vec<String>,
}

impl State {
    pub fn add_kernel_log<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) {
        for l in lines {
            if let Some(m) = classify_line(l) {
                let seen = self.kernel_log.entry(m).or_default();
                seen.lines += 1;
                if let Some(t) = line_time(l) {
                    seen.first.get_or_insert_with(|| t.clone());
                    seen.last = Some(t);
                }
            }
        }
    }

    pub(crate) fn page(&self) -> u64 {
        if self.window.page_size > 0 {
            self.window.page_size
        } else if self.host.page_size > 0 {
            self.host.page_size
        } else {
            4096
        }
    }

    /// tcp_mem as it was at the window's peak, else as it is.
    pub(crate) fn tcp_mem(&self) -> Option<[u64; 3]> {
        self.window
            .tcp_mem_at_peak
            .or(self.window.tcp_mem_pages)
            .or_else(|| {
                let v = self.host.numbers("net.ipv4.tcp_mem")?;
                Some([*v.first()?, *v.get(1)?, *v.get(2)?])
            })
    }

    pub(crate) fn max_orphans(&self) -> Option<u64> {
        self.window
            .max_orphans
            .or_else(|| self.host.number("net.ipv4.tcp_max_orphans"))
    }
}

/// What the doctor hands to a sink.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was diagnosed: "a reading", "a 30s watch", "recording FILE".
    pub source: String,
    pub kernel_release: String,
    /// Whose per-namespace figures (inuse, tw, groups, tcp_rmem/wmem).
    pub namespace: String,
    pub unreadable: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Every finding, ranked: what fired first (the limits before their
/// consequences), then by severity, then what is nearest its limit.
pub fn diagnose(s: &State) -> Vec<Finding> {
    let mut f = Vec::new();
    f.extend(rules::orphans(s));
    f.extend(rules::tcp_mem(s));
    f.extend(rules::tcp_mem_vs_ram(s));
    f.extend(rules::aborts(s));
    f.extend(rules::per_connection(s));
    f.extend(rules::buffer_limits(s));
    f.extend(rules::kernel_log(s));
    f.extend(rules::routes(s));
    f.extend(rules::accept_queue(s));
    f.extend(rules::netns_counters(s));
    f.extend(rules::cgroup_pressure(s));
    for x in f.iter_mut() {
        x.group_proxy = x
            .group
            .as_ref()
            .and_then(|g| s.window.groups.get(g)?.proxy.as_ref())
            .map(|p| p.describe());
    }
    // Among limits that fired alike, the one that fired first comes first
    // (in a recording holding both, e.g. an incident file whose minutes
    // before hold another limit's aborts): by its first abort's place.
    let first_abort = |id: &str| -> usize {
        let cause = match id {
            "orphans" => "orphans",
            "tcp_mem" => "tcp_mem",
            _ => return usize::MAX,
        };
        s.window
            .aborts
            .iter()
            .position(|a| a.cause.contains(cause) || a.cause == "both")
            .unwrap_or(usize::MAX)
    };
    f.sort_by(|a, b| {
        b.fired
            .cmp(&a.fired)
            .then(b.severity.cmp(&a.severity))
            .then(b.priority.cmp(&a.priority))
            .then(first_abort(a.id).cmp(&first_abort(b.id)))
            .then(b.nearness.total_cmp(&a.nearness))
    });
    f
}

/// Bytes, human-readable (binary units).
fn bytes(b: u64) -> String {
    crate::format::human_bytes(b)
}
