//! The plots' axes: the ranges two recordings share, a y axis ticking on
//! binary (bytes) or 1-2-5 (counts) steps, and a time axis on round
//! wall-clock times.

use super::*;

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

/// A linear axis ticked where we say (plotters' own picks decimal steps).
#[derive(Clone)]
pub(super) struct Axis {
    pub(super) linear: RangedCoordf64,
    pub(super) ticks: Vec<f64>,
}

impl Axis {
    pub(super) fn new(max: f64, ticks: Vec<f64>) -> Axis {
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
pub(super) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;
pub(super) type Res = Result<(), Box<dyn std::error::Error>>;

pub(super) fn bytes_label(v: &f64) -> String {
    human_bytes(v.max(0.0) as u64)
}

pub(super) fn count_label(v: &f64) -> String {
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
pub(super) const Y_TICKS: f64 = 5.0;

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
pub(super) fn binary_step(max: f64) -> f64 {
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
pub(super) fn decimal_step(max: f64) -> f64 {
    let raw = max / Y_TICKS;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

impl YAxis {
    pub(super) fn ticks(&self) -> Vec<f64> {
        let n = (self.max / self.step).round() as usize;
        (0..=n).map(|i| i as f64 * self.step).collect()
    }

    pub(super) fn label(&self) -> fn(&f64) -> String {
        if self.bytes {
            bytes_label
        } else {
            count_label
        }
    }
}

/// Steps of the time axis, seconds: ticks fall on round wall-clock times.
pub(super) const TIME_STEPS: [u64; 18] = [
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
