//! Draws a [`View`] with ratatui: header gauges, the group table with a
//! memory sparkline per row, the event pane, the status line; the sockets
//! of a group and the help on top. Every area may be tiny or empty: the
//! layout degrades, it never panics.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::layout::{clip, lay_out, printable, width, Cells, Column, KEEP};
use super::view::{GroupLine, Mode, SortKey, View};
use crate::format::human_bytes;
use crate::output::SEND_QUEUE_COLUMN;
use crate::sources::sockdiag::SockRecord;

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

/// Drop ranks of the group table's columns (see `layout`): the proxy's
/// name, the sparkline, the events and the owner go first, then the
/// counts; the memory split stays longest. The sorted-by column stays
/// with the memory.
mod rank {
    pub const PROXY: u8 = 1;
    pub const LAST_MINUTE: u8 = 2;
    pub const EVENTS: u8 = 3;
    pub const OWNER: u8 = 4;
    pub const ABORTS: u8 = 5;
    pub const DROPS: u8 = 6;
    pub const ORPH: u8 = 7;
    pub const SOCKS: u8 = 8;
    pub const RMEM: u8 = 9;
    pub const WMEMQ: u8 = 10;
    pub const SORTED: u8 = 200;
}

/// The most samples the sparkline shows.
const SPARK_W: u16 = 20;
/// A group's name narrows (with `…`) below this only when nothing else
/// is left to drop.
const NAME_MIN: u16 = 24;

/// The group table's columns for `rows`, in screen order.
pub fn group_columns<'a>(rows: &[&'a GroupLine], sort: SortKey) -> Vec<Column<'a>> {
    let num = |f: &dyn Fn(&GroupLine) -> String| rows.iter().map(|g| f(g)).collect();
    let ranked = |key: SortKey, r: u8| if key == sort { rank::SORTED } else { r };
    let mut cols = vec![Column {
        head: "GROUP",
        cells: Cells::Text {
            cells: rows.iter().map(|g| printable(&g.name)).collect(),
            min: NAME_MIN,
        },
        rank: KEEP,
    }];
    // The proxy's names only when a proxy names any group.
    if rows.iter().any(|g| g.proxy.is_some()) {
        cols.push(Column {
            head: "PROXY",
            cells: Cells::Text {
                cells: rows
                    .iter()
                    .map(|g| printable(g.proxy.as_deref().unwrap_or("")))
                    .collect(),
                min: 12,
            },
            rank: rank::PROXY,
        });
    }
    cols.extend([
        Column {
            head: "MEMORY",
            cells: Cells::Whole(num(&|g| human_bytes(g.mem.total()))),
            rank: KEEP,
        },
        Column {
            head: "RMEM",
            cells: Cells::Whole(num(&|g| human_bytes(g.mem.rmem))),
            rank: rank::RMEM,
        },
        Column {
            head: SEND_QUEUE_COLUMN,
            cells: Cells::Whole(num(&|g| human_bytes(g.mem.wmem_queued))),
            rank: rank::WMEMQ,
        },
        Column {
            head: "SOCKS",
            cells: Cells::Whole(num(&|g| g.mem.sockets.to_string())),
            rank: ranked(SortKey::Sockets, rank::SOCKS),
        },
        Column {
            head: "ORPH",
            cells: Cells::Whole(num(&|g| g.mem.orphans.to_string())),
            rank: ranked(SortKey::Orphans, rank::ORPH),
        },
        Column {
            head: "DROPS",
            cells: Cells::Whole(num(&|g| g.drops.to_string())),
            rank: ranked(SortKey::Drops, rank::DROPS),
        },
        Column {
            head: "ABORTS",
            cells: Cells::Whole(num(&|g| g.aborts.to_string())),
            rank: ranked(SortKey::Aborts, rank::ABORTS),
        },
        Column {
            head: "LAST MINUTE",
            cells: Cells::Spark {
                history: rows.iter().map(|g| &g.history).collect(),
                most: SPARK_W,
            },
            rank: rank::LAST_MINUTE,
        },
    ]);
    // The owner column only when owners were asked for.
    if rows.iter().any(|g| g.owner.is_some()) {
        cols.push(Column {
            head: "OWNER",
            cells: Cells::Text {
                cells: rows
                    .iter()
                    .map(|g| printable(g.owner.as_deref().unwrap_or("")))
                    .collect(),
                // Its process, whole (`haproxy[812]`); the cgroup narrows.
                min: rows
                    .iter()
                    .filter_map(|g| g.owner.as_deref()?.split(' ').next())
                    .map(|p| width(&printable(p)) + 2)
                    .max()
                    .unwrap_or(0),
            },
            rank: rank::OWNER,
        });
    }
    cols.push(Column {
        head: "EVENTS",
        cells: Cells::Items(
            rows.iter()
                .map(|g| g.events.iter().map(|(k, n)| format!("{k}={n}")).collect())
                .collect(),
        ),
        rank: rank::EVENTS,
    });
    cols
}

fn groups(f: &mut Frame, v: &View, area: Rect) {
    let all = v.rows();
    // Only the rows that fit are formatted: with a thousand groups, the
    // table would otherwise build a thousand rows a second to show thirty.
    let fit = area.height.saturating_sub(2).max(1) as usize;
    let selected = v.selected.min(all.len().saturating_sub(1));
    let offset = selected.saturating_sub(fit - 1);
    let rows = &all[offset.min(all.len())..(offset + fit).min(all.len())];
    let cols = group_columns(rows, v.sort);
    let (header, cells, widths) = table_parts(&cols, area.width);
    let body = rows.iter().zip(cells).map(|(g, cells)| {
        let style = if g.aborts > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        Row::new(cells).style(style)
    });
    let title = format!(" groups ({}), sorted by {} ", all.len(), v.sort.name());
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(selected - offset.min(selected)));
    f.render_stateful_widget(table, area, &mut state);
}

/// The drill-down's columns. The endpoint that tells the sockets apart
/// stays (the remote one of a listening port's, the local one of a
/// backend's); one that is the same on every row goes first.
pub fn socket_columns(socks: &[SockRecord]) -> Vec<Column<'static>> {
    use crate::model::group::endpoint;
    let local: Vec<String> = socks.iter().map(|s| endpoint(&s.local, s.lport)).collect();
    let remote: Vec<String> = socks.iter().map(|s| endpoint(&s.remote, s.rport)).collect();
    let same = |v: &[String]| v.windows(2).all(|p| p[0] == p[1]);
    let (local_rank, remote_rank) = match (same(&local), same(&remote)) {
        (false, true) => (KEEP, 1),
        (true, _) => (1, KEEP),
        (false, false) => (6, KEEP),
    };
    let bytes = |f: fn(&SockRecord) -> u32| {
        Cells::Whole(socks.iter().map(|s| human_bytes(f(s) as u64)).collect())
    };
    vec![
        Column {
            head: "LOCAL",
            cells: Cells::Whole(local),
            rank: local_rank,
        },
        Column {
            head: "REMOTE",
            cells: Cells::Whole(remote),
            rank: remote_rank,
        },
        Column {
            head: "STATE",
            cells: Cells::Whole(
                socks
                    .iter()
                    .map(|s| crate::model::event::state_name(s.state).to_string())
                    .collect(),
            ),
            rank: 3,
        },
        Column {
            head: "RMEM",
            cells: bytes(|s| s.rmem_alloc),
            rank: 4,
        },
        Column {
            head: SEND_QUEUE_COLUMN,
            cells: bytes(|s| s.wmem_queued),
            rank: 5,
        },
        Column {
            head: "FWD",
            cells: bytes(|s| s.fwd_alloc),
            rank: 2,
        },
        Column {
            head: "DROPS",
            cells: Cells::Whole(socks.iter().map(|s| s.drops.to_string()).collect()),
            rank: 2,
        },
    ]
}

/// The drill-down's title: what the group's row counts (the same rule,
/// `GroupMem::add`), and the TIME_WAIT sockets when they are shown. Parts
/// that do not fit are left out whole.
pub fn sockets_title(group: &str, socks: &[SockRecord], time_wait: bool, room: u16) -> String {
    let mut mem = crate::model::group::GroupMem::default();
    for s in socks {
        mem.add(s);
    }
    let count = if time_wait {
        format!("{} + {} TIME_WAIT", mem.sockets, mem.time_wait)
    } else {
        mem.sockets.to_string()
    };
    let toggle = if time_wait {
        "; t hides TIME_WAIT"
    } else {
        "; t shows TIME_WAIT"
    };
    let group = printable(group);
    // The longest opening that fits whole, then the hints that fit.
    let mut title = [
        format!(" sockets of {group} ({count})"),
        format!(" {group} ({count})"),
        format!(" ({count})"),
    ]
    .into_iter()
    .find(|t| width(t) < room)
    .unwrap_or_default();
    for part in [", by memory", toggle, ", Esc returns"] {
        if width(&title) + width(part) + 1 < room {
            title += part;
        } else {
            break;
        }
    }
    title.push(' ');
    title
}

fn sockets_table(f: &mut Frame, v: &View, group: &str, socks: &[SockRecord], area: Rect) {
    // As for groups, only the rows that fit are formatted (thousands of
    // TIME_WAIT sockets, when shown).
    let fit = area.height.saturating_sub(2).max(1) as usize;
    let selected = v.scroll.min(socks.len().saturating_sub(1));
    let offset = selected.saturating_sub(fit - 1);
    let shown = &socks[offset.min(socks.len())..(offset + fit).min(socks.len())];
    let cols = socket_columns(shown);
    let (header, cells, widths) = table_parts(&cols, area.width);
    let title = sockets_title(group, socks, v.time_wait, area.width);
    let table = Table::new(cells.into_iter().map(Row::new), widths)
        .header(header)
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(selected - offset));
    f.render_stateful_widget(table, area, &mut state);
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

    fn line(name: &str, total_k: u64, sockets: u64) -> GroupLine {
        GroupLine {
            name: name.into(),
            kind: "listen",
            mem: crate::model::group::GroupMem {
                sockets,
                orphans: sockets / 3,
                rmem: total_k * 1024 / 4,
                wmem_queued: total_k * 1024 - total_k * 1024 / 4,
                ..Default::default()
            },
            drops: 12,
            aborts: 1,
            events: [("skb_drop", 12), ("exceed_buf_limit", 3)].into(),
            history: (0..60).collect(),
            owner: Some("haproxy[812] /system.slice/haproxy.service".into()),
            proxy: Some("servers/b1".into()),
        }
    }

    /// The order in which the group table's columns go as it narrows.
    const DROP_ORDER: [&str; 10] = [
        "PROXY",
        "LAST MINUTE",
        "EVENTS",
        "OWNER",
        "ABORTS",
        "DROPS",
        "ORPH",
        "SOCKS",
        "RMEM",
        "WMEMQ",
    ];

    /// Every width from 20 to 220: never wider than the screen, the name
    /// and the memory always there, every number whole, and columns gone
    /// in the order (PROXY, LAST MINUTE, EVENTS, then counts): one
    /// is shown only if every later one in that order is too, or is wider.
    #[test]
    fn group_table_drops_whole_columns_in_order() {
        let lines = [
            line("backend:127.0.0.1:21000", 4096, 4684),
            line("listen:8080", 94, 9),
            line("listen:1", 1023 + 1, 123_456),
        ];
        let refs: Vec<&GroupLine> = lines.iter().collect();
        let cols = group_columns(&refs, SortKey::Memory);
        let needs: Vec<_> = cols.iter().map(Column::need).collect();
        let min_of = |h: &str| needs[cols.iter().position(|c| c.head == h).unwrap()].min;
        for width in 20..=220u16 {
            let shown = lay_out(&cols, width);
            let heads: Vec<&str> = shown.iter().map(|&(i, _)| cols[i].head).collect();
            let total: u16 = shown.iter().map(|&(_, w)| w).sum::<u16>() + shown.len() as u16 - 1;
            assert!(total <= width, "{width}: {heads:?}");
            assert!(
                heads.contains(&"GROUP") && heads.contains(&"MEMORY"),
                "{width}"
            );
            for &(i, w) in &shown {
                for r in 0..lines.len() {
                    let cell = cols[i].cell(r, w);
                    assert!(super::width(&cell) <= w, "{width}: {cell:?} in {w}");
                    if let Cells::Whole(full) = &cols[i].cells {
                        assert_eq!(cell, full[r], "{width}");
                    }
                }
            }
            for (a, x) in DROP_ORDER.iter().enumerate() {
                for y in &DROP_ORDER[a + 1..] {
                    if heads.contains(x) && !heads.contains(y) {
                        assert!(
                            min_of(y) > min_of(x),
                            "{width}: {x} shown, {y} not: {heads:?}"
                        );
                    }
                }
            }
        }
        let heads = |width| -> Vec<&str> {
            lay_out(&cols, width)
                .into_iter()
                .map(|(i, _)| cols[i].head)
                .collect()
        };
        assert_eq!(heads(220).len(), cols.len());
        assert_eq!(heads(40), ["GROUP", "MEMORY", "WMEMQ"]);
        assert_eq!(
            heads(60),
            ["GROUP", "MEMORY", "RMEM", "WMEMQ", "SOCKS", "ORPH"]
        );
        // The sorted-by column stays with the memory.
        let cols = group_columns(&refs, SortKey::Aborts);
        let shown: Vec<&str> = lay_out(&cols, 40)
            .into_iter()
            .map(|(i, _)| cols[i].head)
            .collect();
        assert_eq!(shown, ["GROUP", "MEMORY", "ABORTS"]);
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

    /// The drill-down's title counts what the group's row counts: TIME_WAIT
    /// sockets only when shown, and apart; its opening fits whole.
    #[test]
    fn sockets_title_counts_like_the_row() {
        use netmem_common::{TCP_ESTABLISHED, TCP_TIME_WAIT};
        let sock = |state| SockRecord {
            family: 2,
            protocol: netmem_common::IPPROTO_TCP,
            full: state != TCP_TIME_WAIT,
            state,
            local: [127, 0, 0, 1].into(),
            lport: 8080,
            remote: [127, 0, 0, 1].into(),
            rport: 40000,
            inode: 1,
            cookie: 0,
            rmem_alloc: 0,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 0,
            wmem_queued: 4096,
            drops: 0,
            cgroup_id: 0,
            netns: 0,
        };
        let mut socks = vec![sock(TCP_ESTABLISHED); 9];
        assert_eq!(
            sockets_title("listen:8080", &socks, false, 150),
            " sockets of listen:8080 (9), by memory; t shows TIME_WAIT, Esc returns "
        );
        socks.extend(vec![sock(TCP_TIME_WAIT); 4675]);
        assert_eq!(
            sockets_title("listen:8080", &socks, true, 150),
            " sockets of listen:8080 (9 + 4675 TIME_WAIT), by memory; t hides TIME_WAIT, Esc returns "
        );
        assert_eq!(
            sockets_title("listen:8080", &socks, true, 40),
            " listen:8080 (9 + 4675 TIME_WAIT) "
        );
        socks.truncate(9);
        assert_eq!(
            sockets_title("listen:8080", &socks, false, 20),
            " listen:8080 (9) "
        );
        assert_eq!(sockets_title("listen:8080", &socks, false, 10), " (9) ");
    }

    /// The drill-down at every width: the endpoint that tells the sockets
    /// apart stays, the one that is the same on every row goes first, and
    /// every figure is whole.
    #[test]
    fn socket_table_keeps_the_telling_endpoint() {
        let sock = |rport: u16, wmem: u32| SockRecord {
            family: 2,
            protocol: netmem_common::IPPROTO_TCP,
            full: true,
            state: netmem_common::TCP_ESTABLISHED,
            local: [127, 0, 0, 1].into(),
            lport: 8080,
            remote: [127, 0, 0, 1].into(),
            rport,
            inode: 1,
            cookie: 0,
            rmem_alloc: 1_048_000,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 2355,
            wmem_queued: wmem,
            drops: 7,
            cgroup_id: 0,
            netns: 0,
        };
        let socks = [sock(40000, 3_900_000), sock(40002, 96_000), sock(51234, 0)];
        let cols = socket_columns(&socks);
        for width in 20..=120u16 {
            let shown = lay_out(&cols, width);
            let heads: Vec<&str> = shown.iter().map(|&(i, _)| cols[i].head).collect();
            assert!(heads.contains(&"REMOTE"), "{width}: {heads:?}");
            if heads.contains(&"LOCAL") {
                assert!(heads.len() == cols.len(), "{width}: {heads:?}");
            }
            for &(i, w) in &shown {
                if let Cells::Whole(full) = &cols[i].cells {
                    for (r, f) in full.iter().enumerate() {
                        assert_eq!(&cols[i].cell(r, w), f, "{width}");
                        assert!(super::width(f) <= w, "{width}");
                    }
                }
            }
        }
        let heads = |w| -> Vec<&str> {
            lay_out(&cols, w)
                .into_iter()
                .map(|(i, _)| cols[i].head)
                .collect()
        };
        // STATE (11 wide) does not fit beside the memory; FWD and DROPS do.
        assert_eq!(
            heads(40),
            ["REMOTE", "RMEM", SEND_QUEUE_COLUMN, "FWD", "DROPS"]
        );
        assert_eq!(heads(60).len(), cols.len() - 1);
    }
}
