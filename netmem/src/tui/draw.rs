//! Draws a [`View`] with ratatui: header gauges, the group table with a
//! memory sparkline per row, the event pane, the status line; the sockets
//! of a group and the help on top. Every area may be tiny or empty: the
//! layout degrades, it never panics.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::view::{Mode, SortKey, View};
use crate::output::human_bytes;
use crate::sources::sockdiag::SockRecord;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` samples as block characters, scaled to their peak.
pub fn sparkline(history: &std::collections::VecDeque<u64>, width: usize) -> String {
    let take = history.len().min(width);
    let tail: Vec<u64> = history.iter().skip(history.len() - take).copied().collect();
    let peak = tail.iter().copied().max().unwrap_or(0);
    tail.iter()
        .map(|&v| {
            if peak == 0 {
                BARS[0]
            } else {
                BARS[((v as f64 / peak as f64) * 7.0).round() as usize]
            }
        })
        .collect()
}

pub const KEYS: &[(&str, &str)] = &[
    (
        "m o d a s",
        "sort by memory, orphans, drops, aborts, sockets",
    ),
    ("Up/Down, j/k", "select a group"),
    ("Enter", "the selected group's sockets (Esc returns)"),
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
        Mode::Sockets(g) => sockets_table(f, g, sockets, body),
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

fn header(f: &mut Frame, v: &View, area: Rect) {
    let h = v.shown_header();
    let mut flags = vec![
        Span::raw(format!("netmem top  {}  ", v.coverage)),
        Span::raw(format!("sort: {}  ", v.sort.name())),
    ];
    if h.pressure {
        flags.push(Span::styled(
            "MEMORY PRESSURE  ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    flags.push(Span::raw(format!("routes {:.1}/s  ", h.routes_per_s)));
    flags.push(Span::raw(format!("lost {}  ", h.lost_events)));
    if let Some(age) = h.census_age {
        flags.push(Span::raw(format!("census {:.0}s ago  ", age.as_secs_f64())));
    }
    if !v.filter.is_empty() {
        flags.push(Span::raw(format!("filter: {}  ", v.filter)));
    }
    if v.paused.is_some() {
        flags.push(Span::styled(
            "PAUSED",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if area.height < 4 {
        f.render_widget(Paragraph::new(Line::from(flags)), area);
        return;
    }
    let [l1, l2, l3, _] = Layout::vertical([Constraint::Length(1); 4]).areas(area);
    f.render_widget(Paragraph::new(Line::from(flags)), l1);
    if let Some([_, pressure, max]) = h.tcp_mem {
        let label = format!(
            "TCP memory {} of tcp_mem max {} (pressure at {})",
            human_bytes(h.allocated),
            human_bytes(max),
            human_bytes(pressure)
        );
        limit_gauge(f, l2, h.allocated, max, [pressure, max / 10 * 9], label);
    }
    if let Some(max) = h.max_orphans {
        let label = format!(
            "orphans {} of tcp_max_orphans {} (aborts from {} = 1/4, {} = 1/2)",
            h.orphans,
            max,
            max / 4,
            max / 2
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

fn groups(f: &mut Frame, v: &View, area: Rect) {
    let all = v.rows();
    // Only the rows that fit are formatted: with a thousand groups, the
    // table would otherwise build a thousand rows a second to show thirty.
    let fit = area.height.saturating_sub(2).max(1) as usize;
    let selected = v.selected.min(all.len().saturating_sub(1));
    let offset = selected.saturating_sub(fit - 1);
    let rows = &all[offset.min(all.len())..(offset + fit).min(all.len())];
    let spark_w = 20usize;
    // The owner column only when owners were asked for.
    let owners = rows.iter().any(|g| g.owner.is_some());
    // The proxy's names only when a proxy names any group.
    let proxies = rows.iter().any(|g| g.proxy.is_some());
    let mut head = vec!["GROUP"];
    if proxies {
        head.push("PROXY");
    }
    head.extend([
        "MEMORY",
        "RMEM",
        "WMEM",
        "SOCKS",
        "ORPH",
        "DROPS",
        "ABORTS",
        "LAST MINUTE",
    ]);
    if owners {
        head.push("OWNER");
    }
    head.push("EVENTS");
    let header = Row::new(head).style(Style::new().add_modifier(Modifier::BOLD));
    let body = rows.iter().map(|g| {
        let events: Vec<String> = g.events.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let style = if g.aborts > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        let mut cells = vec![g.name.clone()];
        if proxies {
            cells.push(g.proxy.clone().unwrap_or_default());
        }
        cells.extend([
            human_bytes(g.mem.total()),
            human_bytes(g.mem.rmem),
            human_bytes(g.mem.wmem_queued),
            g.mem.sockets.to_string(),
            g.mem.orphans.to_string(),
            g.drops.to_string(),
            g.aborts.to_string(),
            sparkline(&g.history, spark_w),
        ]);
        if owners {
            cells.push(g.owner.clone().unwrap_or_default());
        }
        cells.push(events.join(" "));
        Row::new(cells).style(style)
    });
    // As wide as the longest name shown (namespaced names run long), within
    // reason; the events column takes what is left.
    let name_w = rows
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(0)
        .clamp(18, 60) as u16;
    let mut widths = vec![Constraint::Min(name_w)];
    if proxies {
        let w = rows
            .iter()
            .filter_map(|g| g.proxy.as_ref().map(String::len))
            .max()
            .unwrap_or(0)
            .clamp(5, 40) as u16;
        widths.push(Constraint::Length(w));
    }
    widths.extend([
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(spark_w as u16),
    ]);
    if owners {
        widths.push(Constraint::Length(28));
    }
    widths.push(Constraint::Fill(1));
    let title = format!(" groups ({}), sorted by {} ", all.len(), v.sort.name());
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(selected - offset.min(selected)));
    f.render_stateful_widget(table, area, &mut state);
}

fn sockets_table(f: &mut Frame, group: &str, socks: &[SockRecord], area: Rect) {
    let header = Row::new(["LOCAL", "REMOTE", "STATE", "RMEM", "WMEM", "FWD", "DROPS"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = socks.iter().map(|s| {
        Row::new(vec![
            crate::model::group::endpoint(&s.local, s.lport),
            crate::model::group::endpoint(&s.remote, s.rport),
            crate::model::event::state_name(s.state).to_string(),
            human_bytes(s.rmem_alloc as u64),
            human_bytes(s.wmem_queued as u64),
            human_bytes(s.fwd_alloc as u64),
            s.drops.to_string(),
        ])
    });
    let widths = [
        Constraint::Length(26),
        Constraint::Length(26),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
    ];
    let title = format!(
        " sockets of {group} ({}), by memory; Esc returns ",
        socks.len()
    );
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
}

fn event_pane(f: &mut Frame, v: &View, area: Rect) {
    let lines: Vec<Line> = v
        .events
        .iter()
        .take(area.height.saturating_sub(1) as usize)
        .map(|(abort, text)| {
            if *abort {
                Line::styled(
                    text.clone(),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            } else {
                Line::raw(text.clone())
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
    let line = match &v.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("filter: ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(v.typing.clone()),
            Span::raw("_  (Enter applies, Esc clears)"),
        ]),
        _ => {
            let sorts: Vec<String> = SortKey::ALL.iter().map(|k| k.key().to_string()).collect();
            let finding = v
                .finding
                .clone()
                .unwrap_or_else(|| "doctor: gathering...".into());
            Line::from(vec![
                Span::styled(finding, Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!(
                    "   [{}] sort  Enter sockets  / filter  p pause  ? help  q quit",
                    sorts.join("")
                )),
            ])
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

fn help(f: &mut Frame, area: Rect) {
    let w = area.width.min(70);
    let h = area.height.min(KEYS.len() as u16 + 2);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:<14}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
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
    fn sparkline_scales_to_its_peak() {
        let h: std::collections::VecDeque<u64> = [0, 5, 10].into_iter().collect();
        assert_eq!(sparkline(&h, 10), "▁▅█");
        assert_eq!(sparkline(&h, 2), "▅█");
        assert_eq!(sparkline(&Default::default(), 5), "");
    }

    #[test]
    fn draws_at_any_size_without_panicking() {
        use ratatui::backend::TestBackend;
        let mut v = View::default();
        let g = netmem_common::GroupKey::classify(2, 80, true, &[0; 16], 0);
        let row = crate::model::group::GroupRow::default();
        v.on_interval(&crate::model::Interval {
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
}
