//! The drill-down: a group's sockets, and its title.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Row, Table, TableState};
use ratatui::Frame;

use super::table_parts;
use crate::format::human_bytes;
use crate::output::SEND_QUEUE_COLUMN;
use crate::sources::sockdiag::SockRecord;
use crate::tui::layout::{printable, width, Cells, Column, KEEP};
use crate::tui::view::View;

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

pub(super) fn sockets_table(
    f: &mut Frame,
    v: &View,
    group: &str,
    socks: &[SockRecord],
    area: Rect,
) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::layout::lay_out;

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
            rqueue: 0,
            wqueue: 0,
            uid: 0,
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
            rqueue: 0,
            wqueue: 0,
            uid: 0,
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
