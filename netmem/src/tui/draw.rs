//! Draws a [`View`] with ratatui: header gauges, the group table with a
//! memory sparkline per row, the event pane, the status line; the sockets
//! of a group and the help on top. Every area may be tiny or empty: the
//! layout degrades, it never panics. The group table is in `groups.rs`,
//! the drill-down (a group's sockets) in `sockets.rs`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Row};
use ratatui::Frame;

use super::layout::{clip, lay_out, printable, width, Column};
use super::view::{Mode, SortKey, View};
use crate::format::human_bytes;
use crate::sources::sockdiag::SockRecord;

mod groups;
mod sockets;

pub use groups::group_columns;
use groups::groups;
use sockets::sockets_table;
pub use sockets::{socket_columns, sockets_title};

pub const KEYS: &[(&str, &str)] = &[
    (
        "m o d a s",
        "sort by memory, orphans, drops, aborts, sockets",
    ),
    (
        "Up/Down, j/k",
        "select a group (or a socket, in its sockets)",
    ),
    ("Enter", "the selected group's sockets (Esc returns)"),
    ("t", "in a group's sockets: show or hide TIME_WAIT"),
    ("/", "filter groups by name (Enter applies, Esc clears)"),
    ("p", "pause the display (collection goes on)"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

pub fn draw(f: &mut Frame, v: &View, sockets: &[SockRecord]) {
    let area = f.area();
    if area.width < 20 || area.height < 3 {
        f.render_widget(Paragraph::new("netmem top: too small"), area);
        return;
    }
    // Room first for the table; the header and events shrink away on
    // small terminals.
    let header_h = if area.height >= 16 { 4 } else { 1 };
    let events_h = if area.height >= 24 { 8 } else { 0 };
    let [head, body, events, status] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Min(1),
        Constraint::Length(events_h),
        Constraint::Length(1),
    ])
    .areas(area);
    header(f, v, head);
    match &v.mode {
        Mode::Sockets(g) => sockets_table(f, v, g, sockets, body),
        _ => groups(f, v, body),
    }
    if events_h > 0 {
        event_pane(f, v, events);
    }
    status_line(f, v, status);
    if v.mode == Mode::Help {
        help(f, body);
    }
}

/// The spans that fit in `room`, each whole, in order; one that does not
/// fit is left out and the next ones still tried.
fn whole_spans(spans: Vec<Span<'static>>, room: u16) -> Line<'static> {
    let mut used = 0;
    let kept: Vec<Span> = spans
        .into_iter()
        .filter(|s| {
            let w = width(&s.content);
            let fits = used + w <= room;
            if fits {
                used += w;
            }
            fits
        })
        .collect();
    Line::from(kept)
}

/// The first of `labels` that fits in `room` (the last one otherwise).
fn longest_fitting(labels: Vec<String>, room: u16) -> String {
    let last = labels.last().cloned().unwrap_or_default();
    labels
        .into_iter()
        .find(|l| width(l) <= room)
        .unwrap_or(last)
}

fn header(f: &mut Frame, v: &View, area: Rect) {
    let h = v.shown_header();
    let mut flags = vec![Span::raw("netmem top  ")];
    if h.pressure {
        flags.push(Span::styled(
            "MEMORY PRESSURE  ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if v.paused.is_some() {
        flags.push(Span::styled(
            "PAUSED  ",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if !v.coverage.is_empty() {
        flags.push(Span::raw(format!("{}  ", v.coverage)));
    }
    flags.push(Span::raw(format!("sort: {}  ", v.sort.name())));
    flags.push(Span::raw(format!("routes {:.1}/s  ", h.routes_per_s)));
    flags.push(Span::raw(format!("lost {}  ", h.lost_events)));
    if let Some(age) = h.census_age {
        flags.push(Span::raw(format!("census {:.0}s ago  ", age.as_secs_f64())));
    }
    if !v.filter.is_empty() {
        flags.push(Span::raw(format!("filter: {}  ", printable(&v.filter))));
    }
    let flags = whole_spans(flags, area.width);
    if area.height < 4 {
        f.render_widget(Paragraph::new(flags), area);
        return;
    }
    let [l1, l2, l3, _] = Layout::vertical([Constraint::Length(1); 4]).areas(area);
    f.render_widget(Paragraph::new(flags), l1);
    if let Some([_, pressure, max]) = h.tcp_mem {
        let (used, max_s) = (human_bytes(h.allocated), human_bytes(max));
        let label = longest_fitting(
            vec![
                format!(
                    "TCP memory {used} of tcp_mem max {max_s} (pressure at {})",
                    human_bytes(pressure)
                ),
                format!("TCP memory {used} of max {max_s}"),
                format!("{used}/{max_s}"),
            ],
            l2.width,
        );
        limit_gauge(f, l2, h.allocated, max, [pressure, max / 10 * 9], label);
    }
    if let Some(max) = h.max_orphans {
        let label = longest_fitting(
            vec![
                format!(
                    "orphans {} of tcp_max_orphans {max} (aborts from {} = 1/4, {} = 1/2)",
                    h.orphans,
                    max / 4,
                    max / 2
                ),
                format!("orphans {} of max {max}", h.orphans),
                format!("{}/{max}", h.orphans),
            ],
            l3.width,
        );
        limit_gauge(f, l3, h.orphans, max, [max / 4, max / 2], label);
    }
}

/// `value` against `max`: green, yellow past `warn[0]`, red past `warn[1]`.
fn limit_gauge(f: &mut Frame, area: Rect, value: u64, max: u64, warn: [u64; 2], label: String) {
    let color = if value > warn[1] {
        Color::Red
    } else if value > warn[0] {
        Color::Yellow
    } else {
        Color::Green
    };
    f.render_widget(
        Gauge::default()
            .gauge_style(Style::new().fg(color))
            .ratio((value as f64 / max.max(1) as f64).clamp(0.0, 1.0))
            .label(label),
        area,
    );
}

/// Renders laid-out columns as a ratatui table: the header row, the
/// rows, and each shown column's width.
fn table_parts(cols: &[Column], width: u16) -> (Row<'static>, Vec<Vec<String>>, Vec<Constraint>) {
    let shown = lay_out(cols, width);
    let head = Row::new(shown.iter().map(|&(i, _)| cols[i].head))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let n = cols.first().map_or(0, Column::rows);
    let rows = (0..n)
        .map(|r| shown.iter().map(|&(i, w)| cols[i].cell(r, w)).collect())
        .collect();
    let widths = shown.iter().map(|&(_, w)| Constraint::Length(w)).collect();
    (head, rows, widths)
}

fn event_pane(f: &mut Frame, v: &View, area: Rect) {
    let lines: Vec<Line> = v
        .events
        .iter()
        .take(area.height.saturating_sub(1) as usize)
        .map(|(abort, text)| {
            let text = clip(&printable(text), area.width);
            if *abort {
                Line::styled(
                    text,
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            } else {
                Line::raw(text)
            }
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::TOP)
                .title(" latest events "),
        ),
        area,
    );
}

fn status_line(f: &mut Frame, v: &View, area: Rect) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let line = match &v.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("filter: ", bold),
            Span::raw(printable(&v.typing)),
            Span::raw("_  (Enter applies, Esc clears)"),
        ]),
        _ => {
            let keys = match &v.mode {
                Mode::Sockets(_) => "   Up/Down select  t TIME_WAIT  Esc back  q quit".to_string(),
                _ => {
                    let sorts: String = SortKey::ALL.iter().map(|k| k.key()).collect();
                    format!("   [{sorts}] sort  Enter sockets  / filter  p pause  ? help  q quit")
                }
            };
            let finding = v
                .finding
                .as_deref()
                .map(printable)
                .unwrap_or_else(|| "doctor: gathering...".into());
            // The finding whole with the longest list of keys that fits
            // beside it; else the finding alone, cut at a word.
            let keys = [keys, "   ? help  q quit".to_string()]
                .into_iter()
                .find(|k| width(&finding) + width(k) <= area.width);
            let mut spans = vec![Span::styled(clip(&finding, area.width), bold)];
            spans.extend(keys.map(Span::raw));
            Line::from(spans)
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

fn help(f: &mut Frame, area: Rect) {
    let w = area.width.min(70);
    // Lines as wrapped in the box (a long description takes two).
    let inner = w.saturating_sub(2).max(1);
    let lines: u16 = KEYS
        .iter()
        .map(|(_, what)| (14 + width(what)).div_ceil(inner))
        .sum();
    // Too low for the wrapped text: one line per key, its description cut
    // visibly, so every key (q among them) stays on screen.
    let compact = lines + 2 > area.height;
    let lines = if compact { KEYS.len() as u16 } else { lines };
    let h = area.height.min(lines + 2);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            let what = if compact {
                clip(what, inner.saturating_sub(14))
            } else {
                what.to_string()
            };
            Line::from(vec![
                Span::styled(
                    format!("{k:<14}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(what),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" keys (any key closes) "),
            ),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_at_any_size_without_panicking() {
        use ratatui::backend::TestBackend;
        let mut v = View::default();
        let g = netmem_common::GroupKey::classify(2, 80, true, &[0; 16], 0);
        let row = crate::model::group::GroupRow::default();
        v.on_interval(&crate::model::Interval {
            netns: Default::default(),
            time_wait_counted: false,
            ts: std::time::SystemTime::now(),
            context: Default::default(),
            groups: vec![(g, row)],
            live: None,
        });
        for (w, h) in [(1, 1), (19, 2), (20, 3), (40, 12), (80, 24), (200, 60)] {
            let mut t = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
            for mode in [
                Mode::Table,
                Mode::Help,
                Mode::Filter,
                Mode::Sockets("listen:80".into()),
            ] {
                v.mode = mode;
                t.draw(|f| draw(f, &v, &[])).unwrap();
            }
        }
    }

    /// Every key is on the help screen at 40x12 and up (q among them); a
    /// low terminal gets one line per key, its description cut with `…`.
    #[test]
    fn help_lists_every_key_on_small_terminals() {
        for (w, h) in [(40, 12), (60, 14), (150, 40)] {
            let mut v = View::default();
            v.mode = Mode::Help;
            let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
            t.draw(|f| draw(f, &v, &[])).unwrap();
            let text = screen(&t).join("\n");
            for (k, _) in KEYS {
                assert!(text.contains(k), "{w}x{h}: key {k} missing:\n{text}");
            }
        }
    }

    /// The screen as text, one string per row.
    fn screen(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> Vec<String> {
        let b = t.backend().buffer();
        (0..b.area.height)
            .map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol()).collect())
            .collect()
    }

    /// Drawn by ratatui at every width from 20 to 160 and two heights:
    /// each cell under MEMORY, RMEM and WMEMQ is one of the figures, whole.
    #[test]
    fn draws_every_figure_whole_at_every_size() {
        use netmem_common::{GroupKey, GroupKey as K};
        let mut v = View::default();
        let row = |k: u64, socks| crate::model::group::GroupRow {
            mem: crate::model::group::GroupMem {
                sockets: socks,
                rmem: k * 1024 / 4,
                wmem_queued: k * 1024 - k * 1024 / 4,
                ..Default::default()
            },
            ..Default::default()
        };
        let listen = |p| K::classify(2, p, true, &[0; 16], 0);
        let backend: GroupKey = K::classify(
            2,
            40000,
            false,
            &[127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            21000,
        );
        v.on_interval(&crate::model::Interval::live_for_tests(vec![
            (listen(21000), row(4096, 9)),
            (backend, row(94, 4684)),
            (listen(8080), row(1023 + 1, 3)),
            (listen(80), row(0, 1)),
        ]));
        let figures: Vec<String> = v
            .rows()
            .iter()
            .flat_map(|g| [g.mem.total(), g.mem.rmem, g.mem.wmem_queued])
            .map(human_bytes)
            .collect();
        for h in [12, 40] {
            for w in 20..=160u16 {
                let mut t =
                    ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
                t.draw(|f| draw(f, &v, &[])).unwrap();
                let s = screen(&t);
                let head = s
                    .iter()
                    .position(|l| l.starts_with("GROUP"))
                    .expect("a header");
                let cols = ["MEMORY", "RMEM", "WMEMQ"];
                for col in cols {
                    let Some(start) = s[head].find(col) else {
                        assert_ne!(col, "MEMORY", "{w}x{h}: no MEMORY:\n{}", s.join("\n"));
                        continue;
                    };
                    let start = s[head][..start].chars().count();
                    for l in s[head + 1..].iter().take_while(|l| !l.trim().is_empty()) {
                        let cell: String =
                            l.chars().skip(start).take_while(|c| *c != ' ').collect();
                        assert!(
                            figures.contains(&cell),
                            "{w}x{h}: {col} shows {cell:?}:\n{}",
                            s.join("\n")
                        );
                    }
                }
            }
        }
    }
}
