//! Drawing: series and panels over one time axis, and the legend under
//! them (laid out before anything is drawn, so its height is known).

use super::*;

/// What a series looks like.
pub(super) enum Shape {
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
pub(super) struct Series {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) shape: Shape,
}

impl Series {
    pub(super) fn new(label: impl Into<String>, color: RGBColor, shape: Shape) -> Series {
        Series {
            label: label.into(),
            color,
            shape,
        }
    }
}

/// One chart of a plot.
pub(super) struct Panel {
    pub(super) title: String,
    pub(super) y: YAxis,
    pub(super) height: u32,
    pub(super) series: Vec<Series>,
}

/// A legend entry's width: its swatch and its label, estimated at 0.6 em a
/// character (wider than sans-serif's average, so entries never touch).
pub(super) fn entry_width(label: &str) -> i32 {
    SWATCH + 6 + (label.chars().count() as f64 * 0.6 * FONT_PX) as i32
}

/// The legend's entries (each label once) in rows under the panels, each
/// entry with its x in the row; a row never runs past the plot's width.
pub(super) fn legend_rows(panels: &[Panel], width: u32) -> Vec<Vec<(i32, &Series)>> {
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
pub(super) fn plot(
    width: u32,
    x: &TimeAxis,
    x_max: f64,
    panels: &[Panel],
) -> anyhow::Result<String> {
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

pub(super) fn draw_panel(area: &Area, x: &TimeAxis, x_max: f64, p: &Panel) -> Res {
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
pub(super) fn area_fill(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as f64 * 0.55 + 255.0 * 0.45).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

pub(super) fn draw_series(chart: &mut Chart, s: &Series, y_max: f64) -> Res {
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
pub(super) fn draw_legend(area: &Area, rows: &[Vec<(i32, &Series)>]) -> Res {
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
