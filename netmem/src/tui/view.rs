//! The live view's state, without a terminal: what the header, the group
//! table, the event pane and the status line show, the sort, the filter,
//! pause and the selection. Fed by the model (intervals, events); read by
//! `draw.rs`. Unit-tested on its own.

use std::collections::{BTreeMap, HashMap, VecDeque};

use netmem_common::Counter;

use crate::model::group::{group_kind, GroupMem};
use crate::model::names::Names;
use crate::model::{Body, Event, Interval};

/// Memory samples kept per group for its sparkline: a minute at 1 s.
pub const HISTORY: usize = 60;
/// Lines kept in the event pane.
pub const EVENTS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Memory,
    Orphans,
    Drops,
    Aborts,
    Sockets,
}

impl SortKey {
    pub const ALL: [SortKey; 5] = [
        SortKey::Memory,
        SortKey::Orphans,
        SortKey::Drops,
        SortKey::Aborts,
        SortKey::Sockets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Memory => "memory",
            SortKey::Orphans => "orphans",
            SortKey::Drops => "drops",
            SortKey::Aborts => "aborts",
            SortKey::Sockets => "sockets",
        }
    }

    /// The key that selects it: the name's first letter.
    pub fn key(self) -> char {
        self.name().as_bytes()[0] as char
    }
}

/// One group as the table shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupLine {
    pub name: String,
    pub kind: &'static str,
    pub mem: GroupMem,
    /// Packets the group's sockets dropped (their own counters, ss `d`):
    /// the figure `snapshot`/`trace` call DROPS and the drill-down's rows
    /// sum to, so one name means one number everywhere.
    pub drops: u64,
    /// Aborts on memory since `top` started.
    pub aborts: u64,
    /// Events this interval, by kind.
    pub events: BTreeMap<&'static str, u64>,
    /// Memory held, oldest first, at most [`HISTORY`].
    pub history: VecDeque<u64>,
    /// Its largest process and cgroup, with `--owners`/`--group-by`.
    pub owner: Option<String>,
    /// What the proxy in front calls it.
    pub proxy: Option<String>,
}

impl GroupLine {
    fn key(&self, k: SortKey) -> u64 {
        match k {
            SortKey::Memory => self.mem.total(),
            SortKey::Orphans => self.mem.orphans,
            SortKey::Drops => self.drops,
            SortKey::Aborts => self.aborts,
            SortKey::Sockets => self.mem.sockets,
        }
    }
}

/// The header's global figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// tcp_mem min, pressure, max, bytes.
    pub tcp_mem: Option<[u64; 3]>,
    pub allocated: u64,
    /// The kernel's orphan count (sockstat), or the census' when that is
    /// larger (read at another moment): the gauge is never below the sum of
    /// the table's ORPH column.
    pub orphans: u64,
    pub max_orphans: Option<u64>,
    pub pressure: bool,
    pub routes_per_s: f64,
    pub lost_events: u64,
    /// How old the groups' census is (`--census-budget`); None: fresh.
    pub census_age: Option<std::time::Duration>,
}

/// What the screen shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// The selected group's sockets.
    Sockets(String),
    Help,
    /// Typing a filter.
    Filter,
}

#[derive(Clone, Debug)]
pub struct View {
    pub header: Header,
    groups: HashMap<String, GroupLine>,
    pub events: VecDeque<(bool, String)>,
    pub sort: SortKey,
    pub filter: String,
    /// The filter being typed (Mode::Filter).
    pub typing: String,
    pub mode: Mode,
    pub selected: usize,
    /// The drill-down lists TIME_WAIT sockets too (`t`); the group's row
    /// never counts them as sockets.
    pub time_wait: bool,
    /// The drill-down's selected socket (Up/Down).
    pub scroll: usize,
    /// Frozen rows and header while paused; collection goes on.
    pub paused: Option<(Header, Vec<GroupLine>)>,
    pub intervals: u64,
    /// The probes' coverage, one line.
    pub coverage: String,
    /// The doctor's top finding.
    pub finding: Option<String>,
    /// The run's names, as the engine handed them (`Msg::Names`).
    pub names: Names,
}

impl Default for View {
    fn default() -> Self {
        View {
            header: Header::default(),
            groups: HashMap::new(),
            events: VecDeque::new(),
            sort: SortKey::Memory,
            filter: String::new(),
            typing: String::new(),
            mode: Mode::Table,
            selected: 0,
            time_wait: false,
            scroll: 0,
            paused: None,
            intervals: 0,
            coverage: String::new(),
            finding: None,
            names: Names::default(),
        }
    }
}

/// One event as a line of the event pane, its group named by `names`;
/// aborts are flagged (highlight).
pub fn event_line(e: &Event, names: &Names) -> (bool, String) {
    let t = humantime::format_rfc3339_seconds(e.ts).to_string();
    let time = t.get(11..19).unwrap_or(&t).to_string();
    let group = e
        .group
        .as_ref()
        .map(|g| names.group_name(g))
        .unwrap_or_default();
    let what = match &e.body {
        Body::AbortOnMemory(a) => {
            let mut s = format!("ABORT cause {}", a.cause.name());
            if let (Some(o), Some(m)) = (a.orphans, a.max_orphans) {
                s += &format!(" orphans {o}/{m}");
                if let Some(sh) = a.shift {
                    s += &format!(" shift {sh}");
                }
            }
            s += &format!(
                " allocated {} vs tcp_mem max {} pages",
                a.allocated_pages, a.mem.pages[2]
            );
            s
        }
        Body::SkbDrop {
            reason, truesize, ..
        } => format!("skb_drop {reason} {truesize} B"),
        Body::ExceedBufLimit {
            direction,
            allocated_pages,
            ..
        } => {
            format!(
                "exceed_buf_limit {} allocated {allocated_pages} pages",
                direction.name()
            )
        }
        Body::OrphanBorn { bytes, .. } => format!(
            "orphan_born holding {}",
            crate::format::human_bytes((*bytes).max(0) as u64)
        ),
        Body::OrphanGone { ended, .. } => format!("orphan_gone ({})", ended.name()),
        b => b.kind().name().to_string(),
    };
    let abort = matches!(e.body, Body::AbortOnMemory(_));
    (abort, format!("{time} {group:<24} {what}"))
}

impl View {
    pub fn on_event(&mut self, e: &Event) {
        if let (Body::AbortOnMemory(_), Some(g)) = (&e.body, &e.group) {
            self.groups
                .entry(self.names.group_name(g))
                .or_default()
                .aborts += 1;
        }
        self.events.push_front(event_line(e, &self.names));
        self.events.truncate(EVENTS);
    }

    pub fn on_interval(&mut self, i: &Interval) {
        self.intervals += 1;
        let c = &i.context;
        let page = c.page_size.max(1);
        let live = i.live.as_ref();
        self.header = Header {
            tcp_mem: c.tcp_mem_pages.map(|m| m.map(|p| p * page)),
            allocated: c.memory_allocated_pages * page,
            orphans: c.orphans.max(c.orphans_census.unwrap_or(0)),
            max_orphans: c.max_orphans,
            pressure: live.is_some_and(|l| l.memory_pressure),
            routes_per_s: live.map_or(0.0, |l| l.routes.per_s()),
            lost_events: live.map_or(0, |l| l.loss.lost_events),
            census_age: live.and_then(|l| l.census_age),
        };
        let mut seen = std::collections::HashSet::with_capacity(i.groups.len());
        for (g, row) in &i.groups {
            let name = self.names.group_name(g);
            let line = self.groups.entry(name.clone()).or_default();
            line.name = name.clone();
            line.kind = group_kind(g);
            line.mem = row.mem.clone();
            line.drops = row.mem.drops;
            line.proxy = row.proxy.as_ref().map(|p| p.label());
            line.owner = row.owners.as_ref().map(|w| {
                use crate::output::text::{cgroup_cell, process_cell};
                format!("{} {}", process_cell(w), cgroup_cell(w))
            });
            line.events = Counter::ALL
                .iter()
                .filter(|c| row.count(**c) > 0)
                .map(|c| (c.name(), row.count(*c)))
                .collect();
            line.history.push_back(row.mem.total());
            while line.history.len() > HISTORY {
                line.history.pop_front();
            }
            seen.insert(name);
        }
        // A group gone from the pass leaves the table (its aborts, if any,
        // stay in the event pane).
        self.groups.retain(|n, _| seen.contains(n));
    }

    /// The table's rows: filtered, sorted by the key (then memory, then
    /// name), as frozen when paused.
    pub fn rows(&self) -> Vec<&GroupLine> {
        if let Some((_, rows)) = &self.paused {
            return rows.iter().collect();
        }
        let mut v: Vec<&GroupLine> = self
            .groups
            .values()
            .filter(|g| self.filter.is_empty() || g.name.contains(&self.filter))
            .collect();
        let k = self.sort;
        v.sort_by(|a, b| {
            b.key(k)
                .cmp(&a.key(k))
                .then(b.mem.total().cmp(&a.mem.total()))
                .then(a.name.cmp(&b.name))
        });
        v
    }

    pub fn shown_header(&self) -> &Header {
        self.paused.as_ref().map_or(&self.header, |p| &p.0)
    }

    pub fn toggle_pause(&mut self) {
        self.paused = match self.paused {
            Some(_) => None,
            None => Some((
                self.header.clone(),
                self.rows().into_iter().cloned().collect(),
            )),
        };
    }

    pub fn selected_group(&self) -> Option<String> {
        self.rows().get(self.selected).map(|g| g.name.clone())
    }

    pub fn move_selection(&mut self, down: bool) {
        let n = self.rows().len();
        if n == 0 {
            self.selected = 0;
        } else if down {
            self.selected = (self.selected + 1).min(n - 1);
        } else {
            self.selected = self.selected.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::GroupRow;
    use netmem_common::GroupKey;

    fn listen(p: u16) -> GroupKey {
        GroupKey::classify(2, p, true, &[0; 16], 0)
    }

    fn row(bytes: u64, orphans: u64, sockets: u64) -> GroupRow {
        GroupRow {
            mem: GroupMem {
                sockets,
                wmem_queued: bytes,
                orphans,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn interval(groups: Vec<(GroupKey, GroupRow)>) -> Interval {
        Interval::live_for_tests(groups)
    }

    fn names(v: &View) -> Vec<String> {
        v.rows().into_iter().map(|g| g.name.clone()).collect()
    }

    #[test]
    fn sorts_by_each_key() {
        let mut v = View::default();
        v.on_interval(&interval(vec![
            (listen(1), row(1000, 0, 9)),
            (listen(2), row(10, 5, 1)),
        ]));
        assert_eq!(names(&v), ["listen:1", "listen:2"]);
        v.sort = SortKey::Orphans;
        assert_eq!(names(&v), ["listen:2", "listen:1"]);
        v.sort = SortKey::Sockets;
        assert_eq!(names(&v), ["listen:1", "listen:2"]);
        // Ties fall back to memory.
        v.sort = SortKey::Aborts;
        assert_eq!(names(&v), ["listen:1", "listen:2"]);
        assert_eq!(SortKey::ALL.map(SortKey::key), ['m', 'o', 'd', 'a', 's']);
    }

    #[test]
    fn filters_by_name() {
        let mut v = View::default();
        v.on_interval(&interval(vec![
            (listen(80), row(1, 0, 1)),
            (listen(8080), row(2, 0, 1)),
            (listen(443), row(3, 0, 1)),
        ]));
        v.filter = "80".into();
        assert_eq!(names(&v), ["listen:8080", "listen:80"]);
    }

    #[test]
    fn history_keeps_a_minute_and_vanished_groups_leave() {
        let mut v = View::default();
        for i in 0..(HISTORY as u64 + 5) {
            v.on_interval(&interval(vec![(listen(1), row(i, 0, 1))]));
        }
        let g = &v.rows()[0];
        assert_eq!(g.history.len(), HISTORY);
        assert_eq!(g.history.front(), Some(&5));
        assert_eq!(g.history.back(), Some(&(HISTORY as u64 + 4)));
        v.on_interval(&interval(vec![(listen(2), row(1, 0, 1))]));
        assert_eq!(names(&v), ["listen:2"]);
    }

    #[test]
    fn pause_freezes_the_table_but_keeps_collecting() {
        let mut v = View::default();
        v.on_interval(&interval(vec![(listen(1), row(1, 0, 1))]));
        v.toggle_pause();
        v.on_interval(&interval(vec![(listen(1), row(500, 0, 1))]));
        assert_eq!(v.rows()[0].mem.total(), 1);
        v.toggle_pause();
        assert_eq!(v.rows()[0].mem.total(), 500);
        assert_eq!(v.rows()[0].history.len(), 2);
    }

    #[test]
    fn selection_stays_in_range() {
        let mut v = View::default();
        v.on_interval(&interval(vec![
            (listen(1), row(2, 0, 1)),
            (listen(2), row(1, 0, 1)),
        ]));
        v.move_selection(true);
        v.move_selection(true);
        assert_eq!(v.selected_group().as_deref(), Some("listen:2"));
        v.move_selection(false);
        v.move_selection(false);
        assert_eq!(v.selected_group().as_deref(), Some("listen:1"));
    }
}
