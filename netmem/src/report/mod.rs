//! `netmem report`: one recording, or two compared, as one self-contained
//! HTML file. [`timeline`] turns the recording into series and statistics,
//! the doctor (the same rules as `doctor --from`) into findings,
//! [`plots`] draws them and [`html`] lays them out.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::doctor::{diagnose, Finding, State};
use crate::sources::host::Host;
use timeline::{Stats, Timeline};

pub mod html;
pub mod plots;
pub mod timeline;

/// Groups drawn by name in a plot; the rest are "other".
pub const TOP_GROUPS: usize = 6;
/// Rows of the groups table and of the aborts table, at most.
pub const TABLE_ROWS: usize = 50;
pub const ABORT_ROWS: usize = 200;

/// One recording, read.
pub struct Run {
    pub path: String,
    pub timeline: Timeline,
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
}

impl Run {
    pub fn read(path: &str) -> Result<Run> {
        Run::read_from(crate::sources::recording::open(path)?, path)
    }

    /// Reads a recording in one pass, each line into the doctor's window
    /// and the timeline; both hold bounded state, so a recording of any
    /// size (or a hostile one) is read within `recording::MEMORY_BUDGET`.
    /// `path` names it.
    pub fn read_from(src: impl std::io::Read, path: &str) -> Result<Run> {
        let mut state = State::default();
        let mut timeline = Timeline::default();
        let mut warnings = crate::sources::recording::read_from(src, path, |v| {
            state.window.feed(v);
            timeline.feed(v);
        })?;
        timeline.finish();
        // The same groups are folded in both: said once.
        for w in timeline.dropped().into_iter().chain(state.window.dropped()) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        match state.window.host.take() {
            Some(h) => state.host = h,
            None => warnings.push(
                "no \"host\" line (recorded before netmem wrote one): sysctls, RAM and nstat are unknown".into(),
            ),
        }
        Ok(Run {
            path: path.to_string(),
            timeline,
            findings: diagnose(&state),
            warnings,
        })
    }
}

/// The groups every run's plots name: the largest by peak memory (or
/// orphans) over all runs, so compared plots use the same colours.
pub fn top_groups(runs: &[Run], by_orphans: bool) -> Vec<String> {
    let mut all: Vec<(f64, String)> = Vec::new();
    for r in runs {
        for g in r.timeline.groups() {
            let v = if by_orphans {
                g.orphans.peak
            } else {
                g.memory.peak
            };
            if v > 0.0 {
                all.push((v, g.group));
            }
        }
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut seen = BTreeSet::new();
    all.into_iter()
        .filter(|(_, g)| seen.insert(g.clone()))
        .map(|(_, g)| g)
        .take(TOP_GROUPS)
        .collect()
}

/// The axes shared by every run's plot of each kind.
pub struct Ranges {
    pub memory: plots::MemoryRanges,
    pub orphans: plots::Range,
    pub events: plots::Range,
    pub routes: plots::Range,
    /// Accept queues, % of their backlogs; None when no queue came near
    /// its backlog (half) and no namespace counted a listen overflow.
    pub accept: Option<plots::Range>,
}

pub fn ranges(runs: &[Run]) -> Ranges {
    let x_max = runs
        .iter()
        .map(|r| r.timeline.duration())
        .fold(1.0, f64::max);
    let fold =
        |f: &dyn Fn(&Timeline) -> f64| runs.iter().map(|r| f(&r.timeline)).fold(0.0, f64::max);
    let stacked = fold(&|t| {
        t.points
            .iter()
            .map(|p| p.groups.values().map(|g| g.memory).sum::<u64>() as f64)
            .fold(0.0, f64::max)
    });
    // Host-wide charged, and each namespace's total (never above it but
    // for rounding to pages).
    let host = fold(&|t| {
        t.points
            .iter()
            .map(|p| {
                p.allocated
                    .max(p.namespaces.values().copied().max().unwrap_or(0)) as f64
            })
            .fold(0.0, f64::max)
    });
    let tcp_mem: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.timeline.points.iter().filter_map(|p| p.tcp_mem))
        .flat_map(|m| m.map(|v| v as f64))
        .collect();
    let orphans = fold(&|t| {
        t.points
            .iter()
            .map(|p| p.orphans as f64)
            .fold(0.0, f64::max)
    });
    let max_orphans: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.timeline.points.iter().filter_map(|p| p.max_orphans))
        .flat_map(|m| [m as f64 / 4.0, m as f64 / 2.0, m as f64])
        .collect();
    let rates = fold(&|t| {
        t.event_rates()
            .iter()
            .filter(|(k, _)| k.as_str() != "abort_on_memory")
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    });
    let routes = fold(&|t| {
        t.points
            .iter()
            .map(|p| p.routes_inserted.max(p.routes_cached.unwrap_or(0)) as f64)
            .fold(0.0, f64::max)
    });
    // The fullest accept queue, as a share of its backlog (0: none read).
    let accept = fold(&|t| {
        t.points
            .iter()
            .flat_map(|p| p.groups.values())
            .filter(|g| g.accept_backlog > 0)
            .map(|g| g.accept_fill().max(1e-9))
            .fold(0.0, f64::max)
    });
    let overflows = runs
        .iter()
        .any(|r| r.timeline.points.iter().any(|p| p.listen_overflows > 0));
    let range = |y| plots::Range { x_max, y };
    Ranges {
        memory: plots::MemoryRanges {
            groups: range(plots::y_axis(stacked, &[], true)),
            host: range(plots::y_axis(host, &tcp_mem, true)),
        },
        orphans: range(plots::y_axis(orphans, &max_orphans, false)),
        events: range(plots::y_axis(rates.max(1.0), &[], false)),
        routes: range(plots::y_axis(routes.max(1.0), &[], false)),
        // Only when a queue came near its backlog or a namespace counted
        // overflows: lines at 0% would only push the other plots down.
        accept: (accept >= 0.5 || overflows)
            .then(|| range(plots::y_axis(accept.max(0.01) * 100.0, &[100.0], false))),
    }
}

/// A figure in two recordings.
pub struct Delta {
    pub name: String,
    pub a: Stats,
    pub b: Stats,
    /// Bytes (shown with binary units) or a count.
    pub bytes: bool,
}

/// Per group (the top ones of either run) and per global figure.
pub fn deltas(a: &Run, b: &Run) -> Vec<Delta> {
    let (ta, tb) = (&a.timeline, &b.timeline);
    let mut out = vec![Delta {
        name: "TCP memory charged, host-wide".into(),
        a: ta.global(|p| p.allocated),
        b: tb.global(|p| p.allocated),
        bytes: true,
    }];
    // Beside it, what the traced namespace's groups held: host-wide
    // figures also move with everything else the host runs.
    let (na, nb) = (ta.namespaces(), tb.namespaces());
    if let ([(a_ns, a_stats)], [(b_ns, b_stats)]) = (&na[..], &nb[..]) {
        out.push(Delta {
            name: if a_ns == b_ns {
                format!("all groups in {a_ns}")
            } else {
                format!("all groups in {a_ns} (A), {b_ns} (B)")
            },
            a: *a_stats,
            b: *b_stats,
            bytes: true,
        });
    } else {
        let names: BTreeSet<&String> = na
            .iter()
            .take(TOP_GROUPS)
            .chain(nb.iter().take(TOP_GROUPS))
            .map(|n| &n.0)
            .collect();
        let find = |v: &[(String, Stats)], n: &str| {
            v.iter().find(|x| x.0 == n).map(|x| x.1).unwrap_or_default()
        };
        out.extend(names.into_iter().map(|n| Delta {
            name: format!("all groups in {n}"),
            a: find(&na, n),
            b: find(&nb, n),
            bytes: true,
        }));
    }
    out.extend([
        Delta {
            name: "orphans, host-wide".into(),
            a: ta.global(|p| p.orphans),
            b: tb.global(|p| p.orphans),
            bytes: false,
        },
        Delta {
            name: "route exceptions per interval".into(),
            a: ta.global(|p| p.routes_inserted),
            b: tb.global(|p| p.routes_inserted),
            bytes: false,
        },
    ]);
    let (ga, gb) = (ta.groups(), tb.groups());
    let names: BTreeSet<&String> = ga
        .iter()
        .take(TOP_GROUPS * 2)
        .chain(gb.iter().take(TOP_GROUPS * 2))
        .map(|g| &g.group)
        .collect();
    let find = |v: &[timeline::GroupSummary], n: &str| {
        v.iter().find(|g| g.group == n).cloned().unwrap_or_default()
    };
    let mut groups: Vec<Delta> = names
        .into_iter()
        .flat_map(|n| {
            let (x, y) = (find(&ga, n), find(&gb, n));
            [
                Delta {
                    name: format!("{n} memory"),
                    a: x.memory,
                    b: y.memory,
                    bytes: true,
                },
                Delta {
                    name: format!("{n} orphans"),
                    a: x.orphans,
                    b: y.orphans,
                    bytes: false,
                },
            ]
        })
        .filter(|d| d.a.peak > 0.0 || d.b.peak > 0.0)
        .collect();
    groups.sort_by(|x, y| {
        (y.a.peak.max(y.b.peak))
            .total_cmp(&x.a.peak.max(x.b.peak))
            .then(x.name.cmp(&y.name))
    });
    out.extend(groups);
    out
}

/// The sysctls whose values differ between two host lines: (name, a, b).
pub fn sysctl_changes(
    a: Option<&Host>,
    b: Option<&Host>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let (Some(a), Some(b)) = (a, b) else {
        return Vec::new();
    };
    let names: BTreeSet<&String> = a.sysctls.keys().chain(b.sysctls.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.sysctls.get(*n) != b.sysctls.get(*n))
        .map(|n| {
            (
                n.clone(),
                a.sysctls.get(n).cloned(),
                b.sysctls.get(n).cloned(),
            )
        })
        .collect()
}

/// The report of one or two recordings, as HTML.
pub fn render(runs: &[Run]) -> Result<String> {
    html::page(runs)
}
