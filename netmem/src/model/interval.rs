//! What one pass produces: the global context, the groups with their memory
//! (and, live, their event counts), and, live, what the interval saw beyond
//! groups: pressure, route exceptions, coverage and every loss figure.
//! `snapshot` produces one without the live part; the trace loop one per
//! interval.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use netmem_common::{GroupKey, Stat};

use super::row::GroupRow;
pub use super::types::Context;
use crate::hooks::Coverage;

#[derive(Clone, Debug)]
pub struct Interval {
    pub ts: SystemTime,
    pub context: Context,
    /// Sorted by memory held, largest first; filtered.
    pub groups: Vec<(GroupKey, GroupRow)>,
    /// Whether the groups' TIME_WAIT counts were taken (`--time-wait`): a
    /// pass skips TIME_WAIT sockets unless asked, since they hold no buffer
    /// memory and under churn outnumber everything else.
    pub time_wait_counted: bool,
    /// None for a snapshot (no kernel programs: no counts, no events).
    pub live: Option<Live>,
    /// The TCP counters of each namespace read (the traced one; with
    /// `--netns all`, every one with TCP sockets), with their growth.
    pub netns: Vec<super::netns::NetnsFigures>,
}

#[cfg(test)]
impl Interval {
    /// A live interval of `groups` as the engine hands them (sorted by
    /// memory), now, with an empty context: for the sinks' tests.
    pub fn live_for_tests(mut groups: Vec<(GroupKey, GroupRow)>) -> Interval {
        groups.sort_by_key(|g| std::cmp::Reverse(g.1.mem.total()));
        Interval {
            netns: Default::default(),
            time_wait_counted: false,
            ts: SystemTime::now(),
            context: Context::default(),
            groups,
            live: Some(Live::default()),
        }
    }
}

/// The part of an interval only a live trace has.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub memory_pressure: bool,
    /// Time spent under TCP memory pressure since the trace began, the
    /// ongoing period included (cumulative).
    pub pressure_time: Duration,
    /// How long this interval's reads (sock_diag, procfs, pollers) took.
    pub gather_time: Duration,
    /// Set when the groups come from an earlier census (`--census-budget`):
    /// how old they are. Global figures (context) are always this
    /// interval's.
    pub census_age: Option<Duration>,
    pub routes: RouteFigures,
    pub coverage: Coverage,
    pub loss: Loss,
    /// Events of this interval that reached the sinks, by kind name.
    pub events: BTreeMap<&'static str, u64>,
}

/// Nothing is lost silently: every figure of what did not reach the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Ring buffer full (cumulative, counted per CPU in the kernel).
    pub lost_events: u64,
    /// Over --event-limit, this interval.
    pub events_suppressed: u64,
    /// Per-group map full (cumulative).
    pub group_map_full: u64,
}

/// The route exception cache's growth this interval.
#[derive(Clone, Debug, Default)]
pub struct RouteFigures {
    pub inserted: u64,
    pub interval: Duration,
    /// Exceptions inserted this interval, by family name (`ipv4`, `ipv6`).
    pub by_family: BTreeMap<&'static str, u64>,
    /// Top destinations by exceptions inserted (at most 10).
    pub by_dst: Vec<(String, u64)>,
    /// /proc/net/rt6_stats' cached routes
    pub rt6_cached: Option<u64>,
    /// The polling tier's dump sizes, by family name.
    pub cached: BTreeMap<&'static str, usize>,
}

impl RouteFigures {
    pub fn per_s(&self) -> f64 {
        let s = self.interval.as_secs_f64();
        if s > 0.0 {
            self.inserted as f64 / s
        } else {
            0.0
        }
    }
}

/// What a finished trace counted.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub ts: Option<SystemTime>,
    pub events: u64,
    pub events_suppressed: u64,
    /// Received at shutdown past its drain budget: counted, never shown.
    pub events_unread_at_exit: u64,
    pub duration: Duration,
    /// Every kernel-side statistic, indexed by [`Stat`].
    pub stats: [u64; Stat::COUNT],
}

impl Summary {
    pub fn stat(&self, s: Stat) -> u64 {
        self.stats[s as usize]
    }
}
