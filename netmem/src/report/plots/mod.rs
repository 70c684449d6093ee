//! The report's plots, drawn with plotters' SVG backend: each returns one
//! `<svg>` element. Ranges are given by the caller, so two recordings drawn
//! side by side share their axes.
//!
//! A plot is one or more panels over the same time axis and one legend
//! under them all, never over the data. Each plot first describes its
//! series ([`Series`]: a label, a colour and a shape of data points), so
//! the legend's height is known before anything is drawn; the panels then
//! draw them. Byte axes tick on binary steps (16M, 32M, 48M), count axes
//! on 1-2-5 steps, and the time axis on round wall-clock times (UTC).

use std::time::{Duration, SystemTime};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::timeline::{Point, Timeline};

mod axes;
mod draw;
#[cfg(test)]
mod tests;

use crate::format::human_bytes;
use axes::*;
pub use axes::{on_scale, y_axis, Range, TimeAxis, YAxis};
use draw::*;

pub const WIDTH: u32 = 1100;
/// Heights of a plot's main panel and of a second, smaller one.
const MAIN_H: u32 = 300;
const SECOND_H: u32 = 220;
const LEGEND_FONT: u32 = 14;
/// plotters draws a font of size n at n / 1.24 pixels.
const FONT_PX: f64 = LEGEND_FONT as f64 / 1.24;
const LEGEND_ROW: u32 = 18;
/// Width of a legend entry's swatch and the gaps around it.
const SWATCH: i32 = 16;

const GROUP_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
/// Per-namespace totals, apart from the groups' colours.
const NAMESPACE_COLORS: [RGBColor; 4] = [
    RGBColor(0, 90, 170),
    RGBColor(0, 140, 90),
    RGBColor(150, 60, 150),
    RGBColor(110, 110, 0),
];
const PRESSURE: RGBColor = RGBColor(255, 127, 14);
const LIMIT: RGBColor = RGBColor(214, 39, 40);
const MIN: RGBColor = RGBColor(120, 120, 120);
const OTHER: RGBColor = RGBColor(190, 190, 190);
const TRIGGER: RGBColor = RGBColor(20, 20, 20);

fn color(i: usize) -> RGBColor {
    GROUP_COLORS[i % GROUP_COLORS.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn pressure(tl: &Timeline) -> Option<Series> {
    let spans: Vec<(f64, f64)> = tl
        .pressure_spans()
        .into_iter()
        .map(|(a, b)| (a, b.max(a + tl.interval_s * 0.2)))
        .collect();
    (!spans.is_empty()).then(|| Series::new("under memory pressure", PRESSURE, Shape::Spans(spans)))
}

fn aborts(tl: &Timeline) -> Option<Series> {
    let a = tl.aborts();
    (!a.is_empty()).then(|| {
        Series::new(
            format!("abort on memory ({})", tl.aborts_seen),
            LIMIT,
            Shape::Marks(a.iter().map(|e| e.t).collect()),
        )
    })
}

/// The flight recorder's trigger (an incident file): a line where it
/// fired, so the minutes before it are to its left.
fn trigger(tl: &Timeline) -> Option<Series> {
    let first = tl.triggers.iter().find(|t| t.started)?;
    let later = tl.triggers.len() - 1;
    Some(Series::new(
        if later > 0 {
            format!("incident trigger: {} (then {later} more)", first.cause)
        } else {
            format!("incident trigger: {}", first.cause)
        },
        TRIGGER,
        Shape::Marks(tl.triggers.iter().map(|t| t.t).collect()),
    ))
}

/// Limit lines over time (a limit may change during a recording, as when
/// tcp_mem is lowered and restored): the stretches on the axis are drawn,
/// and the legend gives the range of values; a limit never on scale is
/// only named, "above the chart".
fn limits(
    tl: &Timeline,
    y: YAxis,
    f: impl Fn(&Point) -> Option<[u64; 3]>,
    names: [&str; 3],
) -> Vec<Series> {
    let fmt = y.label();
    let mut out = Vec::new();
    for (i, (name, c)) in names.iter().zip([MIN, PRESSURE, LIMIT]).enumerate() {
        let pts: Vec<(f64, f64)> = tl
            .points
            .iter()
            .filter_map(|p| Some((p.t, f(p)?[i] as f64)))
            .collect();
        let (Some(lo), Some(hi)) = (
            pts.iter().map(|p| p.1).reduce(f64::min),
            pts.iter().map(|p| p.1).reduce(f64::max),
        ) else {
            continue;
        };
        let values = if lo == hi {
            fmt(&hi)
        } else {
            format!("{} to {}", fmt(&lo), fmt(&hi))
        };
        // Runs of consecutive points on scale.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for p in &pts {
            if p.1 <= y.max {
                runs.last_mut().expect("one run").push(*p);
            } else if !runs.last().expect("one run").is_empty() {
                runs.push(Vec::new());
            }
        }
        runs.retain(|r| !r.is_empty());
        if runs.is_empty() {
            // Named, not drawn: on this scale it would flatten the data.
            out.push(Series::new(
                format!("{name} {values} (above the chart)"),
                c,
                Shape::Named,
            ));
            continue;
        }
        let label = if hi > y.max {
            format!("{name} {values} (above the chart when higher)")
        } else {
            format!("{name} {values}")
        };
        // A lone point is a short tick, so it stays visible.
        let runs = runs
            .into_iter()
            .map(|run| {
                if run.len() == 1 {
                    vec![run[0], (run[0].0 + tl.interval_s * 0.5, run[0].1)]
                } else {
                    run
                }
            })
            .collect();
        out.push(Series::new(label, c, Shape::Runs(runs)));
    }
    out
}

/// The axes of the memory plot's two panels.
#[derive(Clone, Copy, Debug)]
pub struct MemoryRanges {
    /// The traced groups, stacked.
    pub groups: Range,
    /// Host-wide: TCP memory charged, the namespaces' totals, tcp_mem.
    pub host: Range,
}

/// Socket memory by group, stacked (the `top` groups, the rest as other)
/// on a scale of its own; under it, host-wide TCP memory charged beside
/// each traced namespace's total, against tcp_mem's thresholds. Pressure
/// shaded and aborts marked on both.
pub fn memory(
    tl: &Timeline,
    top: &[String],
    r: MemoryRanges,
    width: u32,
) -> anyhow::Result<String> {
    // Cumulative sums: layer k is the sum of groups 0..=k.
    let mut layers: Vec<Series> = Vec::new();
    let mut acc = vec![0f64; tl.points.len()];
    let times = || tl.points.iter().map(|p| p.t);
    for (i, g) in top.iter().enumerate() {
        for (a, p) in acc.iter_mut().zip(&tl.points) {
            *a += p.groups.get(g.as_str()).map_or(0, |x| x.memory) as f64;
        }
        layers.push(Series::new(
            g.as_str(),
            color(i),
            Shape::Area(times().zip(acc.iter().copied()).collect()),
        ));
    }
    let has_other = tl
        .points
        .iter()
        .any(|p| p.groups.keys().any(|g| !top.iter().any(|t| **t == **g)));
    if has_other {
        for (a, p) in acc.iter_mut().zip(&tl.points) {
            *a += p
                .groups
                .iter()
                .filter(|(g, _)| !top.iter().any(|t| **t == ***g))
                .map(|(_, x)| x.memory)
                .sum::<u64>() as f64;
        }
        layers.push(Series::new(
            "other groups",
            OTHER,
            Shape::Area(times().zip(acc.iter().copied()).collect()),
        ));
    }
    // Largest layer first, so each smaller one is drawn over it.
    layers.reverse();
    let mut groups = Panel {
        title: "Socket memory by group (stacked)".into(),
        y: r.groups.y,
        height: MAIN_H,
        // Pressure shaded behind the (opaque) layers: a band keeps its
        // legend colour, and the shading shows above the stack (and over
        // the whole host panel below).
        series: pressure(tl).into_iter().chain(layers).collect(),
    };
    groups.series.extend(aborts(tl));
    groups.series.extend(trigger(tl));

    let mut host = Panel {
        title: "Host-wide TCP memory against tcp_mem, and each traced namespace's total".into(),
        y: r.host.y,
        height: SECOND_H,
        series: pressure(tl).into_iter().collect(),
    };
    host.series.push(Series::new(
        "TCP memory charged, host-wide (every namespace)",
        BLACK,
        Shape::Line(
            times()
                .zip(tl.points.iter().map(|p| p.allocated as f64))
                .collect(),
        ),
    ));
    for (i, (ns, _)) in tl
        .namespaces()
        .into_iter()
        .take(NAMESPACE_COLORS.len())
        .enumerate()
    {
        let pts = tl
            .points
            .iter()
            .map(|p| {
                (
                    p.t,
                    p.namespaces.get(ns.as_str()).copied().unwrap_or(0) as f64,
                )
            })
            .collect();
        host.series.push(Series::new(
            format!("all groups in {ns}"),
            NAMESPACE_COLORS[i],
            Shape::Line(pts),
        ));
    }
    host.series.extend(limits(
        tl,
        r.host.y,
        |p| p.tcp_mem,
        ["tcp_mem min", "tcp_mem pressure", "tcp_mem max"],
    ));
    host.series.extend(aborts(tl));
    host.series.extend(trigger(tl));
    let x = TimeAxis::new(tl.start, r.groups.x_max, width);
    plot(width, &x, r.groups.x_max, &[groups, host])
}

/// A plot of one panel, titled `title`.
fn one_panel(
    tl: &Timeline,
    title: &str,
    series: Vec<Series>,
    r: Range,
    width: u32,
) -> anyhow::Result<String> {
    let panel = Panel {
        title: title.into(),
        y: r.y,
        height: MAIN_H,
        series,
    };
    let x = TimeAxis::new(tl.start, r.x_max, width);
    plot(width, &x, r.x_max, &[panel])
}

/// Orphans (all sockets, and per top port) against tcp_max_orphans and
/// the 1/4 and 1/2 marks where tcp_check_oom starts aborting.
pub fn orphans(tl: &Timeline, top: &[String], r: Range, width: u32) -> anyhow::Result<String> {
    let mut series = vec![Series::new(
        "orphans, host-wide (every namespace)",
        BLACK,
        Shape::Line(tl.points.iter().map(|p| (p.t, p.orphans as f64)).collect()),
    )];
    for (i, g) in top.iter().enumerate() {
        series.push(Series::new(
            format!("orphans of {g}"),
            color(i),
            Shape::Line(
                tl.points
                    .iter()
                    .map(|p| {
                        (
                            p.t,
                            p.groups.get(g.as_str()).map_or(0, |x| x.orphans) as f64,
                        )
                    })
                    .collect(),
            ),
        ));
    }
    series.extend(limits(
        tl,
        r.y,
        |p| p.max_orphans.map(|m| [m / 4, m / 2, m]),
        [
            "1/4 of tcp_max_orphans (idle orphans aborted)",
            "1/2 (closing sockets aborted)",
            "tcp_max_orphans",
        ],
    ));
    series.extend(aborts(tl));
    series.extend(trigger(tl));
    one_panel(
        tl,
        "Orphaned sockets against tcp_max_orphans",
        series,
        r,
        width,
    )
}

/// Events per second by kind; aborts as markers by cause.
pub fn events(tl: &Timeline, r: Range, width: u32) -> anyhow::Result<String> {
    let mut series = Vec::new();
    for (i, (kind, pts)) in tl.event_rates().into_iter().enumerate() {
        if kind == "abort_on_memory" {
            continue;
        }
        series.push(Series::new(
            format!("{kind} per second"),
            color(i),
            Shape::Line(pts),
        ));
    }
    let aborts = tl.aborts();
    let mut causes: Vec<&String> = aborts.iter().filter_map(|a| a.cause.as_ref()).collect();
    causes.sort();
    causes.dedup();
    for (i, cause) in causes.iter().enumerate() {
        let at: Vec<f64> = aborts
            .iter()
            .filter(|a| a.cause.as_ref() == Some(*cause))
            .map(|a| a.t)
            .collect();
        series.push(Series::new(
            format!("abort on memory, cause {cause} ({})", tl.aborts_of(cause)),
            [LIMIT, PRESSURE, RGBColor(148, 0, 0), MIN][i % 4],
            Shape::Triangles(0.92, at),
        ));
    }
    if series.is_empty() {
        series.push(Series::new("no event recorded", MIN, Shape::Named));
    }
    one_panel(
        tl,
        "Events per second by kind (aborts marked by cause)",
        series,
        r,
        width,
    )
}

/// Route exceptions: inserted per interval and cached.
pub fn routes(tl: &Timeline, r: Range, width: u32) -> anyhow::Result<String> {
    let mut series = vec![Series::new(
        "route exceptions inserted per interval",
        color(0),
        Shape::Line(
            tl.points
                .iter()
                .map(|p| (p.t, p.routes_inserted as f64))
                .collect(),
        ),
    )];
    let cached: Vec<(f64, f64)> = tl
        .points
        .iter()
        .filter_map(|p| Some((p.t, p.routes_cached? as f64)))
        .collect();
    if !cached.is_empty() {
        series.push(Series::new(
            "route exceptions cached",
            color(1),
            Shape::Line(cached),
        ));
    }
    one_panel(
        tl,
        "Route exceptions (what replaced the route cache)",
        series,
        r,
        width,
    )
}

/// The listen groups whose accept queues a plot shows: those with a
/// backlog, fullest at their peak first, at most `n`.
pub fn accept_groups(tl: &Timeline, n: usize) -> Vec<String> {
    let mut peak: std::collections::BTreeMap<&str, f64> = Default::default();
    for p in &tl.points {
        for (g, x) in &p.groups {
            if x.accept_backlog > 0 {
                let e = peak.entry(g).or_default();
                *e = e.max(x.accept_fill());
            }
        }
    }
    let mut v: Vec<(&str, f64)> = peak.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(g, _)| g.to_string()).collect()
}

/// Accept queues: each top listen group's queue as a share of its
/// backlog (100%: full, the kernel drops the next handshake), with the
/// intervals in which a namespace counted listen overflows marked.
pub fn accept(tl: &Timeline, top: &[String], r: Range, width: u32) -> anyhow::Result<String> {
    let mut series = Vec::new();
    for (i, g) in top.iter().enumerate() {
        series.push(Series::new(
            format!("accept queue of {g}, % of its backlog"),
            color(i),
            Shape::Line(
                tl.points
                    .iter()
                    .map(|p| {
                        let fill = p.groups.get(g.as_str()).map_or(0.0, |x| x.accept_fill());
                        (p.t, fill * 100.0)
                    })
                    .collect(),
            ),
        ));
    }
    let full: Vec<(f64, f64)> = tl.points.iter().map(|p| (p.t, 100.0)).collect();
    series.push(Series::new(
        "backlog (100%: full)",
        LIMIT,
        Shape::Line(full),
    ));
    let overflows: Vec<f64> = tl
        .points
        .iter()
        .filter(|p| p.listen_overflows > 0)
        .map(|p| p.t)
        .collect();
    if !overflows.is_empty() {
        let n: u64 = tl.points.iter().map(|p| p.listen_overflows).sum();
        series.push(Series::new(
            format!("listen overflows counted ({n} handshakes dropped)"),
            PRESSURE,
            Shape::Triangles(0.92, overflows),
        ));
    }
    series.extend(trigger(tl));
    one_panel(
        tl,
        "Accept queues against their backlogs (listen overflows marked)",
        series,
        r,
        width,
    )
}
