//! The report's plots, drawn with plotters' SVG backend: each returns one
//! `<svg>` element. Ranges are given by the caller, so two recordings drawn
//! side by side share their axes.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::timeline::Timeline;
use crate::output::human_bytes;

pub const WIDTH: u32 = 1100;
pub const HEIGHT: u32 = 380;

/// Axes shared by the plots of one kind.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub x_max: f64,
    pub y_max: f64,
}

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
const PRESSURE: RGBColor = RGBColor(255, 127, 14);
const LIMIT: RGBColor = RGBColor(214, 39, 40);
const MIN: RGBColor = RGBColor(120, 120, 120);
const OTHER: RGBColor = RGBColor(190, 190, 190);

fn color(i: usize) -> RGBColor {
    GROUP_COLORS[i % GROUP_COLORS.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A chart drawn on an area borrowed for `'a` of a backend writing to a
/// string borrowed for `'b`.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type Res = Result<(), Box<dyn std::error::Error>>;

/// An SVG of `width` by HEIGHT drawn by `draw`.
fn svg(width: u32, draw: impl FnOnce(&Area) -> Res) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        draw(&root).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    Ok(out)
}

fn bytes_label(v: &f64) -> String {
    human_bytes(v.max(0.0) as u64)
}

fn count_label(v: &f64) -> String {
    if *v >= 10.0 || *v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A limit drawn as a line when it is on the chart's scale, else named in
/// the legend as off scale.
pub fn on_scale(limit: f64, data_max: f64) -> bool {
    limit <= data_max * 4.0
}

/// The y range of a figure whose data peaks at `data_max`, with limits
/// drawn when on scale.
pub fn y_range(data_max: f64, limits: &[f64]) -> f64 {
    let mut y = data_max.max(1.0);
    for &l in limits {
        if on_scale(l, data_max.max(1.0)) {
            y = y.max(l);
        }
    }
    // Room above the data for the legend (upper left).
    y * 1.45
}

fn shade_pressure<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, tl: &Timeline, y_max: f64) -> Res {
    let spans = tl.pressure_spans();
    if spans.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(spans.iter().map(|&(a, b)| {
            Rectangle::new(
                [(a, 0.0), (b.max(a + tl.interval_s * 0.2), y_max)],
                PRESSURE.mix(0.15).filled(),
            )
        }))?
        .label("under memory pressure")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], PRESSURE.mix(0.3).filled()));
    Ok(())
}

fn mark_aborts<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, tl: &Timeline, y_max: f64) -> Res {
    let aborts = tl.aborts();
    if aborts.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(aborts.iter().map(|a| {
            PathElement::new(
                vec![(a.t, 0.0), (a.t, y_max)],
                LIMIT.mix(0.7).stroke_width(1),
            )
        }))?
        .label(format!("abort on memory ({})", aborts.len()))
        .legend(|(x, y)| {
            PathElement::new(vec![(x + 7, y - 6), (x + 7, y + 6)], LIMIT.stroke_width(2))
        });
    Ok(())
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Res {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

/// A chart titled `title` on `root`, with the shared x axis (seconds since
/// the start) and a y axis labelled by `y_fmt`.
fn axes<'a, 'b: 'a>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    r: Range,
    y_fmt: &dyn Fn(&f64) -> String,
    y_desc: &str,
) -> Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..r.x_max.max(1.0), 0f64..r.y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_desc)
        .y_label_formatter(y_fmt)
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    Ok(chart)
}

/// Socket memory by group, stacked (the `top` groups, the rest as other),
/// with TCP memory charged and tcp_mem's thresholds as lines, pressure
/// shaded and aborts marked.
pub fn memory(tl: &Timeline, top: &[String], r: Range, width: u32) -> anyhow::Result<String> {
    svg(width, |root| {
        let mut chart = axes(
            root,
            "Socket memory by group (stacked) against tcp_mem",
            r,
            &bytes_label,
            "",
        )?;
        shade_pressure(&mut chart, tl, r.y_max)?;
        // Cumulative sums: layer k is the sum of groups 0..=k.
        // (name, colour, cumulative points)
        type Layer = (String, RGBColor, Vec<(f64, f64)>);
        let mut layers: Vec<Layer> = Vec::new();
        let mut acc = vec![0f64; tl.points.len()];
        for (i, g) in top.iter().enumerate() {
            for (a, p) in acc.iter_mut().zip(&tl.points) {
                *a += p.groups.get(g).map_or(0, |x| x.memory) as f64;
            }
            layers.push((
                g.clone(),
                color(i),
                tl.points
                    .iter()
                    .map(|p| p.t)
                    .zip(acc.iter().copied())
                    .collect(),
            ));
        }
        let has_other = tl
            .points
            .iter()
            .any(|p| p.groups.iter().any(|(g, _)| !top.contains(g)));
        if has_other {
            for (a, p) in acc.iter_mut().zip(&tl.points) {
                *a += p
                    .groups
                    .iter()
                    .filter(|(g, _)| !top.contains(g))
                    .map(|(_, x)| x.memory)
                    .sum::<u64>() as f64;
            }
            layers.push((
                "other groups".into(),
                OTHER,
                tl.points
                    .iter()
                    .map(|p| p.t)
                    .zip(acc.iter().copied())
                    .collect(),
            ));
        }
        // Largest layer first, so each smaller one is drawn over it.
        for (name, c, pts) in layers.iter().rev() {
            let c = *c;
            chart
                .draw_series(AreaSeries::new(pts.clone(), 0.0, c.mix(0.55)).border_style(c))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.mix(0.55).filled())
                });
        }
        chart
            .draw_series(LineSeries::new(
                tl.points.iter().map(|p| (p.t, p.allocated as f64)),
                BLACK.stroke_width(1),
            ))?
            .label("TCP memory charged (all sockets)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK));
        draw_limits(
            &mut chart,
            tl,
            r,
            |p| p.tcp_mem,
            ["tcp_mem min", "tcp_mem pressure", "tcp_mem max"],
            &bytes_label,
        )?;
        mark_aborts(&mut chart, tl, r.y_max)?;
        legend(&mut chart)
    })
}

/// Limit lines over time (a limit may change during a recording, as when
/// tcp_mem is lowered and restored): the stretches on the chart's scale
/// are drawn, and the legend gives the range of values; a limit never on
/// scale is only named, "above the chart".
fn draw_limits<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    tl: &Timeline,
    r: Range,
    f: impl Fn(&super::timeline::Point) -> Option<[u64; 3]>,
    names: [&str; 3],
    fmt: &dyn Fn(&f64) -> String,
) -> Res {
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
            if p.1 <= r.y_max {
                runs.last_mut().expect("one run").push(*p);
            } else if !runs.last().expect("one run").is_empty() {
                runs.push(Vec::new());
            }
        }
        runs.retain(|r| !r.is_empty());
        if runs.is_empty() {
            // Named, not drawn: on this scale it would flatten the data.
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
                .label(format!("{name} {values} (above the chart)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.mix(0.4)));
            continue;
        }
        let label = if hi > r.y_max {
            format!("{name} {values} (above the chart when higher)")
        } else {
            format!("{name} {values}")
        };
        chart
            .draw_series(runs.into_iter().map(|run| {
                // A lone point is a short tick, so it stays visible.
                let run = if run.len() == 1 {
                    vec![run[0], (run[0].0 + tl.interval_s * 0.5, run[0].1)]
                } else {
                    run
                };
                PathElement::new(run, c.stroke_width(2))
            }))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    Ok(())
}

/// Orphans (all sockets, and per top port) against tcp_max_orphans and
/// the 1/4 and 1/2 marks where tcp_check_oom starts aborting.
pub fn orphans(tl: &Timeline, top: &[String], r: Range, width: u32) -> anyhow::Result<String> {
    svg(width, |root| {
        let mut chart = axes(
            root,
            "Orphaned sockets against tcp_max_orphans",
            r,
            &count_label,
            "",
        )?;
        chart
            .draw_series(LineSeries::new(
                tl.points.iter().map(|p| (p.t, p.orphans as f64)),
                BLACK.stroke_width(2),
            ))?
            .label("orphans (all sockets)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.stroke_width(2)));
        for (i, g) in top.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    tl.points
                        .iter()
                        .map(|p| (p.t, p.groups.get(g).map_or(0, |x| x.orphans) as f64)),
                    c.stroke_width(2),
                ))?
                .label(format!("orphans of {g}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2))
                });
        }
        let marks = |p: &super::timeline::Point| p.max_orphans.map(|m| [m / 4, m / 2, m]);
        draw_limits(
            &mut chart,
            tl,
            r,
            marks,
            [
                "1/4 of tcp_max_orphans (idle orphans aborted)",
                "1/2 (closing sockets aborted)",
                "tcp_max_orphans",
            ],
            &count_label,
        )?;
        mark_aborts(&mut chart, tl, r.y_max)?;
        legend(&mut chart)
    })
}

/// Events per second by kind; aborts as markers by cause.
pub fn events(tl: &Timeline, r: Range, width: u32) -> anyhow::Result<String> {
    svg(width, |root| {
        let mut chart = axes(
            root,
            "Events per second by kind (aborts marked by cause)",
            r,
            &count_label,
            "events/s",
        )?;
        for (i, (kind, pts)) in tl.event_rates().into_iter().enumerate() {
            if kind == "abort_on_memory" {
                continue;
            }
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
                .label(kind)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2))
                });
        }
        let mut causes: Vec<String> = tl.aborts().iter().filter_map(|a| a.cause.clone()).collect();
        causes.sort();
        causes.dedup();
        for (i, cause) in causes.iter().enumerate() {
            let c = [LIMIT, PRESSURE, RGBColor(148, 0, 0), MIN][i % 4];
            let n = tl
                .aborts()
                .iter()
                .filter(|a| a.cause.as_ref() == Some(cause))
                .count();
            chart
                .draw_series(
                    tl.aborts()
                        .into_iter()
                        .filter(|a| a.cause.as_ref() == Some(cause))
                        .map(|a| TriangleMarker::new((a.t, r.y_max * 0.92), 7, c.filled())),
                )?
                .label(format!("abort on memory, cause {cause} ({n})"))
                .legend(move |(x, y)| TriangleMarker::new((x + 7, y), 6, c.filled()));
        }
        legend(&mut chart)
    })
}

/// Route exceptions: inserted per interval and cached.
pub fn routes(tl: &Timeline, r: Range, width: u32) -> anyhow::Result<String> {
    svg(width, |root| {
        let mut chart = axes(
            root,
            "Route exceptions (what replaced the route cache)",
            r,
            &count_label,
            "",
        )?;
        chart
            .draw_series(LineSeries::new(
                tl.points.iter().map(|p| (p.t, p.routes_inserted as f64)),
                color(0).stroke_width(2),
            ))?
            .label("inserted per interval")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color(0).stroke_width(2)));
        let cached: Vec<(f64, f64)> = tl
            .points
            .iter()
            .filter_map(|p| Some((p.t, p.routes_cached? as f64)))
            .collect();
        if !cached.is_empty() {
            chart
                .draw_series(LineSeries::new(cached, color(1).stroke_width(2)))?
                .label("cached")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color(1).stroke_width(2))
                });
        }
        legend(&mut chart)
    })
}
