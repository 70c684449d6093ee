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
use crate::format::human_bytes;

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

/// The axes shared by the plots of one kind: time from 0 to `x_max`
/// seconds, and a y axis.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub x_max: f64,
    pub y: YAxis,
}

/// A y axis from 0 to `max`, ticked every `step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YAxis {
    pub max: f64,
    pub step: f64,
    /// Labelled in binary units (ticks on binary steps).
    pub bytes: bool,
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

fn color(i: usize) -> RGBColor {
    GROUP_COLORS[i % GROUP_COLORS.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A linear axis ticked where we say (plotters' own picks decimal steps).
#[derive(Clone)]
struct Axis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Axis {
    fn new(max: f64, ticks: Vec<f64>) -> Axis {
        Axis {
            linear: (0f64..max).into(),
            ticks,
        }
    }
}

impl Ranged for Axis {
    // Every label is formatted by the plot's own formatter.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    /// A value far off the axis (an event recorded a year after the last
    /// interval) is drawn one axis length past its edge, where the plot
    /// clips it, instead of overflowing plotters' pixel arithmetic.
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let r = self.linear.range();
        let len = r.end - r.start;
        let v = if len.is_finite() && len >= 0.0 {
            v.clamp(r.start - len, r.end + len)
        } else {
            *v
        };
        self.linear.map(&v, limit)
    }

    fn key_points<H: KeyPointHint>(&self, _: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}
/// A chart drawn on an area borrowed for `'a` of a backend writing to a
/// string borrowed for `'b`.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;
type Res = Result<(), Box<dyn std::error::Error>>;

fn bytes_label(v: &f64) -> String {
    human_bytes(v.max(0.0) as u64)
}

fn count_label(v: &f64) -> String {
    if v.fract() == 0.0 || *v >= 10.0 {
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

/// About this many ticks on a y axis.
const Y_TICKS: f64 = 5.0;

/// The y axis of a figure whose data peaks at `data_max`, with the limits
/// that are on scale (see [`on_scale`]) inside it.
pub fn y_axis(data_max: f64, limits: &[f64], bytes: bool) -> YAxis {
    let data_max = data_max.max(1.0);
    let mut y = data_max;
    for &l in limits {
        if on_scale(l, data_max) {
            y = y.max(l);
        }
    }
    // A little room above the highest line.
    let y = y * 1.03;
    let step = if bytes {
        binary_step(y)
    } else {
        // Counts (orphans, route exceptions) and per-second rates whose
        // axis starts at 1: a step below 1 would tick 0.5 sockets.
        decimal_step(y).max(1.0)
    };
    YAxis {
        max: (y / step).ceil() * step,
        step,
        bytes,
    }
}

/// A power of two giving about [`Y_TICKS`] ticks up to `max`, whose ticks
/// `human_bytes` labels exactly: where they reach a unit (K, M, G), at
/// least half that unit (0, 512K, 1.0M, 1.5M rather than 1.2M for 1.25M).
fn binary_step(max: f64) -> f64 {
    let mut step = (max / Y_TICKS).max(1.0).log2().ceil().exp2();
    let top = (max / step).ceil() * step;
    let mut unit = 1.0;
    while unit * 1024.0 <= top {
        unit *= 1024.0;
    }
    if unit >= 1024.0 && step < unit / 2.0 {
        step = unit / 2.0;
    }
    step
}

/// 1, 2 or 5 times a power of ten giving about [`Y_TICKS`] ticks.
fn decimal_step(max: f64) -> f64 {
    let raw = max / Y_TICKS;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

impl YAxis {
    fn ticks(&self) -> Vec<f64> {
        let n = (self.max / self.step).round() as usize;
        (0..=n).map(|i| i as f64 * self.step).collect()
    }

    fn label(&self) -> fn(&f64) -> String {
        if self.bytes {
            bytes_label
        } else {
            count_label
        }
    }
}

/// Steps of the time axis, seconds: ticks fall on round wall-clock times.
const TIME_STEPS: [u64; 18] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

/// The time axis of a recording that started at `start`: its ticks
/// (seconds since the start) on round wall-clock times, their labels
/// (`14:15:30`, or `14:15` for whole minutes, or the date for whole days)
/// and the axis' name with the date. Without a start, seconds since the
/// start.
pub struct TimeAxis {
    pub ticks: Vec<f64>,
    start: Option<f64>,
    minutes: bool,
    days: bool,
    pub desc: String,
}

impl TimeAxis {
    pub fn new(start: Option<SystemTime>, x_max: f64, width: u32) -> TimeAxis {
        let x_max = x_max.max(1.0);
        let most = (width / 110).max(3) as f64;
        // Past the round steps, whole days: never more ticks than fit
        // (a recording's times may span centuries).
        let step = TIME_STEPS
            .into_iter()
            .find(|s| x_max / *s as f64 <= most)
            .map_or_else(|| (x_max / most / 86400.0).ceil() * 86400.0, |s| s as f64);
        let s0 = start.and_then(|s| s.duration_since(SystemTime::UNIX_EPOCH).ok());
        let Some(s0) = s0.map(|d| d.as_secs_f64()) else {
            let step = decimal_step(x_max * Y_TICKS / most);
            return TimeAxis {
                ticks: (0..)
                    .map(|i| i as f64 * step)
                    .take_while(|t| *t <= x_max)
                    .collect(),
                start: None,
                minutes: false,
                days: false,
                desc: "seconds since start".into(),
            };
        };
        let first = (s0 / step).ceil() * step - s0;
        let date = humantime::format_rfc3339_seconds(start.expect("a start")).to_string();
        TimeAxis {
            ticks: (0..)
                .map(|i| first + i as f64 * step)
                .take_while(|t| *t <= x_max)
                .collect(),
            start: Some(s0),
            minutes: step >= 60.0,
            days: step >= 86400.0,
            desc: format!("time (UTC) on {}", &date[..10]),
        }
    }

    pub fn label(&self, t: f64) -> String {
        let Some(s0) = self.start else {
            return count_label(&t);
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs((s0 + t).round().max(0.0) as u64);
        let s = humantime::format_rfc3339_seconds(at).to_string();
        match (self.days, self.minutes) {
            (true, _) => s[..10].to_string(),
            (_, true) => s[11..16].to_string(),
            _ => s[11..19].to_string(),
        }
    }
}

/// What a series looks like.
enum Shape {
    /// Filled from 0 up to the points (a stacked layer).
    Area(Vec<(f64, f64)>),
    Line(Vec<(f64, f64)>),
    /// Stretches of a line (a limit where it is on scale).
    Runs(Vec<Vec<(f64, f64)>>),
    /// Shaded from x to x, full height.
    Spans(Vec<(f64, f64)>),
    /// Vertical marks at x, full height.
    Marks(Vec<f64>),
    /// Triangles at this height (a share of the axis) at x.
    Triangles(f64, Vec<f64>),
    /// Only named in the legend (a limit above the chart).
    Named,
}

/// One thing a panel draws, and names in the legend.
struct Series {
    label: String,
    color: RGBColor,
    shape: Shape,
}

impl Series {
    fn new(label: impl Into<String>, color: RGBColor, shape: Shape) -> Series {
        Series {
            label: label.into(),
            color,
            shape,
        }
    }
}

/// One chart of a plot.
struct Panel {
    title: String,
    y: YAxis,
    height: u32,
    series: Vec<Series>,
}

/// A legend entry's width: its swatch and its label, estimated at 0.6 em a
/// character (wider than sans-serif's average, so entries never touch).
fn entry_width(label: &str) -> i32 {
    SWATCH + 6 + (label.chars().count() as f64 * 0.6 * FONT_PX) as i32
}

/// The legend's entries (each label once) in rows under the panels, each
/// entry with its x in the row; a row never runs past the plot's width.
fn legend_rows(panels: &[Panel], width: u32) -> Vec<Vec<(i32, &Series)>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut rows: Vec<Vec<(i32, &Series)>> = vec![Vec::new()];
    let mut x = 0;
    // Stacked layers are drawn largest first; the legend names them from
    // the bottom of the stack up, as the groups table does.
    let mut order: Vec<&Series> = Vec::new();
    for p in panels {
        let areas: Vec<&Series> = p
            .series
            .iter()
            .filter(|s| matches!(s.shape, Shape::Area(_)))
            .rev()
            .collect();
        let mut areas = areas.into_iter();
        for s in &p.series {
            if matches!(s.shape, Shape::Area(_)) {
                order.extend(areas.next());
            } else {
                order.push(s);
            }
        }
    }
    for s in order {
        if !seen.insert(s.label.as_str()) {
            continue;
        }
        let w = entry_width(&s.label) + 18;
        if x > 0 && x + w > width as i32 - 40 {
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut().expect("a row").push((x, s));
        x += w;
    }
    rows.retain(|r| !r.is_empty());
    rows
}

/// The plot: `panels` stacked over the time axis `x`, the legend under them.
fn plot(width: u32, x: &TimeAxis, x_max: f64, panels: &[Panel]) -> anyhow::Result<String> {
    let rows = legend_rows(panels, width);
    let legend_h = if rows.is_empty() {
        0
    } else {
        rows.len() as u32 * LEGEND_ROW + 16
    };
    let height = panels.iter().map(|p| p.height).sum::<u32>() + legend_h;
    let mut out = String::new();
    let e = |e: Box<dyn std::error::Error>| anyhow::anyhow!("plot: {e}");
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        let mut rest = root.clone();
        for p in panels {
            let (area, below) = rest.split_vertically(p.height);
            draw_panel(&area, x, x_max, p).map_err(e)?;
            rest = below;
        }
        if !rows.is_empty() {
            draw_legend(&rest, &rows).map_err(e)?;
        }
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    Ok(out)
}

fn draw_panel(area: &Area, x: &TimeAxis, x_max: f64, p: &Panel) -> Res {
    let xs = Axis::new(x_max.max(1.0), x.ticks.clone());
    let ys = Axis::new(p.y.max, p.y.ticks());
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 17))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)?;
    let y_fmt = p.y.label();
    chart
        .configure_mesh()
        .x_desc(&x.desc)
        .x_label_formatter(&|t| x.label(*t))
        .y_label_formatter(&y_fmt)
        .bold_line_style(BLACK.mix(0.1))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for s in &p.series {
        draw_series(&mut chart, s, p.y.max)?;
    }
    Ok(())
}

/// A stacked layer's fill: the colour lightened, but opaque. Each layer is
/// drawn from 0 over the larger ones, so a translucent fill would mix with
/// every layer beneath and match no legend swatch.
fn area_fill(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as f64 * 0.55 + 255.0 * 0.45).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn draw_series(chart: &mut Chart, s: &Series, y_max: f64) -> Res {
    let c = s.color;
    match &s.shape {
        Shape::Area(pts) => {
            chart.draw_series(
                AreaSeries::new(pts.iter().copied(), 0.0, area_fill(c).filled()).border_style(c),
            )?;
        }
        Shape::Line(pts) => {
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?;
        }
        Shape::Runs(runs) => {
            chart.draw_series(
                runs.iter()
                    .map(|r| PathElement::new(r.clone(), c.stroke_width(2))),
            )?;
        }
        Shape::Spans(spans) => {
            chart.draw_series(
                spans
                    .iter()
                    .map(|&(a, b)| Rectangle::new([(a, 0.0), (b, y_max)], c.mix(0.15).filled())),
            )?;
        }
        Shape::Marks(xs) => {
            chart.draw_series(xs.iter().map(|&t| {
                PathElement::new(vec![(t, 0.0), (t, y_max)], c.mix(0.7).stroke_width(1))
            }))?;
        }
        Shape::Triangles(at, xs) => {
            chart.draw_series(
                xs.iter()
                    .map(|&t| TriangleMarker::new((t, y_max * at), 7, c.filled())),
            )?;
        }
        Shape::Named => {}
    }
    Ok(())
}

/// The legend's box and its entries, each a swatch as its series is drawn.
fn draw_legend(area: &Area, rows: &[Vec<(i32, &Series)>]) -> Res {
    let (w, _) = area.dim_in_pixel();
    let left = 20;
    let top = 6;
    let right = rows
        .iter()
        .filter_map(|r| r.last())
        .map(|(x, s)| x + entry_width(&s.label))
        .max()
        .unwrap_or(0)
        .min(w as i32 - 2 * left);
    let bottom = top + rows.len() as i32 * LEGEND_ROW as i32 + 6;
    area.draw(&Rectangle::new(
        [(left - 8, top), (left + right + 8, bottom)],
        BLACK.mix(0.3),
    ))?;
    let font = ("sans-serif", LEGEND_FONT).into_font();
    for (i, row) in rows.iter().enumerate() {
        let y = top + 3 + i as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        for (x, s) in row {
            let x = left + x;
            let c = s.color;
            match &s.shape {
                Shape::Area(_) => area.draw(&Rectangle::new(
                    [(x, y - 5), (x + SWATCH, y + 5)],
                    area_fill(c).filled(),
                ))?,
                Shape::Spans(_) => area.draw(&Rectangle::new(
                    [(x, y - 5), (x + SWATCH, y + 5)],
                    c.mix(0.3).filled(),
                ))?,
                Shape::Line(_) | Shape::Runs(_) => area.draw(&PathElement::new(
                    vec![(x, y), (x + SWATCH, y)],
                    c.stroke_width(2),
                ))?,
                Shape::Named => {
                    area.draw(&PathElement::new(vec![(x, y), (x + SWATCH, y)], c.mix(0.4)))?
                }
                Shape::Marks(_) => area.draw(&PathElement::new(
                    vec![(x + SWATCH / 2, y - 6), (x + SWATCH / 2, y + 6)],
                    c.stroke_width(2),
                ))?,
                Shape::Triangles(..) => {
                    area.draw(&TriangleMarker::new((x + SWATCH / 2, y), 6, c.filled()))?
                }
            }
            area.draw(&Text::new(
                s.label.clone(),
                (x + SWATCH + 6, y),
                TextStyle::from(font.clone()).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))?;
        }
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_ticks_are_whole() {
        // All zeros (no orphans in the window) or a peak of 1: ticks 0, 1, 2.
        for max in [0.0, 1.0, 3.0] {
            let y = y_axis(max, &[], false);
            assert!(
                y.ticks().iter().all(|t| t.fract() == 0.0),
                "{max}: {:?}",
                y.ticks()
            );
        }
    }

    #[test]
    fn binary_ticks_are_exact_in_their_units() {
        for max in [1.0, 700.0, 5e3, 1.0e6, 1.1e6, 3.0e7, 1.49e8, 2.3e9, 5.9e11] {
            let y = y_axis(max, &[], true);
            assert!(y.max >= max, "{max}: {y:?}");
            assert_eq!(y.step.log2().fract(), 0.0, "{max}: {y:?}");
            let ticks = y.ticks();
            assert!((3..=9).contains(&ticks.len()), "{max}: {ticks:?}");
            for t in ticks {
                // The label reads back as the tick.
                let l = bytes_label(&t);
                let (num, unit) =
                    l.split_at(l.find(|c: char| c.is_alphabetic()).unwrap_or(l.len()));
                let mult = match unit {
                    "" => 1.0,
                    "K" => 1024.0,
                    "M" => 1024f64.powi(2),
                    "G" => 1024f64.powi(3),
                    _ => 1024f64.powi(4),
                };
                assert_eq!(num.parse::<f64>().unwrap() * mult, t, "{max}: {l}");
            }
        }
    }

    #[test]
    fn time_ticks_fall_on_round_times() {
        let start = humantime::parse_rfc3339("2026-11-29T14:14:59.213Z").unwrap();
        let x = TimeAxis::new(Some(start), 31.0, WIDTH);
        assert_eq!(x.desc, "time (UTC) on 2026-11-29");
        let labels: Vec<String> = x.ticks.iter().map(|t| x.label(*t)).collect();
        assert_eq!(labels[..3], ["14:15:00", "14:15:05", "14:15:10"]);
        let x = TimeAxis::new(Some(start), 3600.0, 700);
        assert_eq!(x.label(x.ticks[0]), "14:20");
        // Times four thousand years apart (a recording from anyone): whole
        // days, no more ticks than fit, labelled by date.
        let x = TimeAxis::new(Some(start), 4000.0 * 365.25 * 86400.0, WIDTH);
        assert!(x.ticks.len() <= (WIDTH / 110) as usize, "{}", x.ticks.len());
        assert_eq!(x.label(0.0), "2026-11-29");
    }
}
