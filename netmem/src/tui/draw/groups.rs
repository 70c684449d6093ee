//! The group table: its columns (which drop first when the terminal is
//! narrow) and its rows with a memory sparkline each.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use ratatui::widgets::{Block, Borders, Row, Table, TableState};
use ratatui::Frame;

use super::table_parts;
use crate::format::human_bytes;
use crate::output::SEND_QUEUE_COLUMN;
use crate::tui::layout::{printable, width, Cells, Column, KEEP};
use crate::tui::view::{GroupLine, SortKey, View};

/// Drop ranks of the group table's columns (see `layout`): the proxy's
/// name, the sparkline, the events and the owner go first, then the
/// counts; the memory split stays longest. The sorted-by column stays
/// with the memory.
mod rank {
    pub const PROXY: u8 = 1;
    pub const LAST_MINUTE: u8 = 2;
    pub const EVENTS: u8 = 3;
    pub const OWNER: u8 = 4;
    pub const ACCEPTQ: u8 = 5;
    /// A full queue is what the screen is about: it stays longer than
    /// the memory split.
    pub const ACCEPTQ_FULL: u8 = 12;
    pub const ABORTS: u8 = 6;
    pub const DROPS: u8 = 7;
    pub const ORPH: u8 = 8;
    pub const SOCKS: u8 = 9;
    pub const RMEM: u8 = 10;
    pub const WMEMQ: u8 = 11;
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
    ]);
    // Accept queues only when a group has a listener: queued/backlog,
    // `!` when full.
    if rows.iter().any(|g| g.mem.listeners > 0) {
        cols.push(Column {
            head: "ACCEPTQ",
            cells: Cells::Whole(num(&|g| crate::output::text::accept_cell(&g.mem))),
            rank: if rows.iter().any(|g| g.mem.accept_full > 0) {
                rank::ACCEPTQ_FULL
            } else {
                rank::ACCEPTQ
            },
        });
    }
    cols.extend([Column {
        head: "LAST MINUTE",
        cells: Cells::Spark {
            history: rows.iter().map(|g| &g.history).collect(),
            most: SPARK_W,
        },
        rank: rank::LAST_MINUTE,
    }]);
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

pub(super) fn groups(f: &mut Frame, v: &View, area: Rect) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::layout::lay_out;

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
}
