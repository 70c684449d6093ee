//! What a report shows of a timeline: the statistics of each series, the
//! groups and namespaces ranked, event rates, pressure spans, and what was
//! not kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Event, GroupPoint, GroupSummary, Point, Stats, Timeline};
use crate::sources::recording::MAX_MARKS;

impl Stats {
    pub fn of(v: &[f64]) -> Stats {
        Stats::weighted(v.iter().map(|&x| (x, 1)).collect())
    }

    /// Of values each standing for `weight` intervals (a merged point for
    /// its span: its peak then stands for all of them, so the mean and
    /// p95 of a downsampled recording are upper bounds).
    pub fn weighted(mut v: Vec<(f64, u64)>) -> Stats {
        let total: u64 = v.iter().map(|x| x.1).sum();
        if total == 0 {
            return Stats::default();
        }
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want = ((total as f64 * 0.95).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let mut p95 = v[v.len() - 1].0;
        for (x, w) in &v {
            seen += w;
            if seen >= want {
                p95 = *x;
                break;
            }
        }
        Stats {
            peak: v[v.len() - 1].0,
            mean: v.iter().map(|(x, w)| x * *w as f64).sum::<f64>() / total as f64,
            p95,
        }
    }
}

impl Timeline {
    /// What the timeline did not keep of the recording, one sentence each;
    /// none for a recording of ordinary size.
    pub fn dropped(&self) -> Vec<String> {
        let mut w = self.names.dropped("group", "groups");
        w.extend(self.namespace_names.dropped("namespace", "namespaces"));
        w.extend(self.kinds.dropped("event kind", "event kinds"));
        if self.intervals > self.points.len() as u64 {
            w.push(format!(
                "{} intervals are drawn as {} (up to {} merged into one, each figure at its peak): means and p95 are over the merged intervals, so upper bounds",
                self.intervals,
                self.points.len(),
                self.stride
            ));
        }
        if self.aborts_seen > self.aborts.len() as u64 {
            w.push(format!(
                "{} aborts on memory are counted; the first {} are marked and listed",
                self.aborts_seen,
                self.aborts.len()
            ));
        }
        if self.spans_merged {
            w.push(format!(
                "memory pressure came and went more than {MAX_MARKS} times: neighbouring periods are drawn joined"
            ));
        }
        w
    }

    /// The namespaces whose groups were recorded, largest peak total first.
    pub fn namespaces(&self) -> Vec<(String, Stats)> {
        let mut names: Vec<&Arc<str>> = self
            .points
            .iter()
            .flat_map(|p| p.namespaces.keys())
            .collect();
        names.sort();
        names.dedup();
        let mut out: Vec<(String, Stats)> = names
            .into_iter()
            .map(|n| {
                let v = self
                    .points
                    .iter()
                    .map(|p| (p.namespaces.get(n).copied().unwrap_or(0) as f64, p.span))
                    .collect();
                (n.to_string(), Stats::weighted(v))
            })
            .collect();
        out.sort_by(|a, b| b.1.peak.total_cmp(&a.1.peak).then(a.0.cmp(&b.0)));
        out
    }

    /// Seconds from the first to the last interval.
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.t)
    }

    /// Every group's figures, largest peak memory first.
    pub fn groups(&self) -> Vec<GroupSummary> {
        let mut names: BTreeMap<&str, GroupSummary> = BTreeMap::new();
        for p in &self.points {
            for g in p.groups.keys() {
                names.entry(g).or_default();
            }
        }
        for (g, kinds) in &self.group_events {
            names.entry(g).or_default().events =
                kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        }
        let mut out: Vec<GroupSummary> = names
            .into_iter()
            .map(|(name, mut s)| {
                let series = |f: fn(&GroupPoint) -> u64| -> Vec<(f64, u64)> {
                    self.points
                        .iter()
                        .map(|p| (p.groups.get(name).map_or(0, f) as f64, p.span))
                        .collect()
                };
                s.group = name.to_string();
                s.owner = self.owners.get(name).cloned();
                s.proxy = self.proxies.get(name).cloned();
                s.memory = Stats::weighted(series(|g| g.memory));
                s.orphans = Stats::weighted(series(|g| g.orphans));
                s
            })
            .collect();
        out.sort_by(|a, b| {
            b.memory
                .peak
                .total_cmp(&a.memory.peak)
                .then(b.orphans.peak.total_cmp(&a.orphans.peak))
                .then(a.group.cmp(&b.group))
        });
        out
    }

    /// The groups a plot names, the largest `n` by peak memory (or by peak
    /// orphans with `by_orphans`); the rest are drawn as "other".
    pub fn top_groups(&self, n: usize, by_orphans: bool) -> Vec<String> {
        let mut g = self.groups();
        if by_orphans {
            g.retain(|s| s.orphans.peak > 0.0);
            g.sort_by(|a, b| b.orphans.peak.total_cmp(&a.orphans.peak));
        } else {
            g.retain(|s| s.memory.peak > 0.0);
        }
        g.into_iter().take(n).map(|s| s.group).collect()
    }

    /// Periods under TCP memory pressure, (from, to) in seconds: from the
    /// enter/leave events when there are any, else from the intervals'
    /// flag.
    pub fn pressure_spans(&self) -> Vec<(f64, f64)> {
        if self.enter_leave {
            return self.spans.clone();
        }
        let mut spans = Vec::new();
        let mut open: Option<f64> = None;
        for p in &self.points {
            match (p.pressure, open) {
                (true, None) => open = Some((p.t - self.interval_s * p.span as f64).max(0.0)),
                (false, Some(t0)) => {
                    spans.push((t0, p.t));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(t0) = open {
            spans.push((t0, self.duration()));
        }
        spans
    }

    /// Events per second of each kind, per interval: (kind, [(t, rate)]).
    /// An event counts in the first interval that ends at or after it.
    pub fn event_rates(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut kinds: Vec<&Arc<str>> = self.points.iter().flat_map(|p| p.events.keys()).collect();
        kinds.sort();
        kinds.dedup();
        kinds
            .into_iter()
            .map(|k| {
                let series = self
                    .points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let width = if i > 0 {
                            p.t - self.points[i - 1].t
                        } else {
                            self.interval_s
                        };
                        let v = p.events.get(k).copied().unwrap_or(0) as f64;
                        (p.t, if width > 0.0 { v / width } else { v })
                    })
                    .collect();
                (k.to_string(), series)
            })
            .collect()
    }

    /// The aborts on memory held (the first [`MAX_MARKS`]), in order;
    /// [`Timeline::aborts_seen`] counts them all.
    pub fn aborts(&self) -> Vec<&Event> {
        self.aborts.iter().collect()
    }

    /// Aborts on memory of `cause`, every one.
    pub fn aborts_of(&self, cause: &str) -> u64 {
        self.abort_causes.get(cause).copied().unwrap_or(0)
    }

    /// A global figure's statistics over the intervals.
    pub fn global(&self, f: fn(&Point) -> u64) -> Stats {
        Stats::weighted(self.points.iter().map(|p| (f(p) as f64, p.span)).collect())
    }
}
