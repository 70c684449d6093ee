//! Figures no kernel can have written, and intervals whose time runs
//! backwards: dropped from a recording before anyone diagnoses them.

use std::time::SystemTime;

use super::problems::Tally;
use crate::contract::lax::Int;
use crate::contract::Line;

/// The most a socket or orphan count can be: the kernel keeps them (and
/// tcp_max_orphans) in an `int`.
const MAX_COUNT: u64 = i32::MAX as u64;
/// The most bytes a figure can be: more than any machine addresses
/// (52-bit physical addresses on x86-64 and arm64).
const MAX_BYTES: u64 = 1 << 52;
/// Pages, at the smallest page size.
const MAX_PAGES: u64 = MAX_BYTES / 4096;

/// What no kernel can have written, dropped before anyone diagnoses it: a
/// figure past what the kernel's types hold, and an interval whose time
/// runs backwards (with its group lines).
#[derive(Default)]
pub(super) struct Sanity {
    last: Option<SystemTime>,
    /// The interval under way was dropped: so are its group lines.
    dropping: bool,
    figures: Tally,
    figure_first: String,
    backwards: Tally,
    backwards_first: String,
    untimed: Tally,
}

/// Why a figure past its bound is not the kernel's.
const COUNT: (u64, &str) = (MAX_COUNT, "the kernel counts them in an int");
const PAGES: (u64, &str) = (MAX_PAGES, "more pages than any machine has");
const BYTES: (u64, &str) = (MAX_BYTES, "more bytes than any machine has");

impl Sanity {
    /// Whether `l` is kept; figures no kernel writes are removed from it.
    pub(super) fn keep(&mut self, l: &mut Line, line: u64) -> bool {
        match l {
            Line::Context(c) => {
                let t =
                    c.ts.as_deref()
                        .and_then(|s| humantime::parse_rfc3339(s).ok());
                match (t, self.last) {
                    (None, _) => {
                        self.untimed.add(line);
                        self.dropping = true;
                        return false;
                    }
                    (Some(t), Some(last)) if t < last => {
                        if self.backwards.n == 0 {
                            self.backwards_first = format!(
                                "line {line}: {} after {}",
                                humantime::format_rfc3339_nanos(t),
                                humantime::format_rfc3339_nanos(last)
                            );
                        }
                        self.backwards.add(line);
                        self.dropping = true;
                        return false;
                    }
                    (Some(t), _) => {
                        self.last = Some(t);
                        self.dropping = false;
                    }
                }
                for (field, f, bound) in [
                    ("orphans", &mut c.orphans, COUNT),
                    ("orphans_census", &mut c.orphans_census, COUNT),
                    ("max_orphans", &mut c.max_orphans, COUNT),
                    ("sockets_inuse", &mut c.sockets_inuse, COUNT),
                    ("tcp6_inuse", &mut c.tcp6_inuse, COUNT),
                    ("tw", &mut c.tw, COUNT),
                    ("udp_inuse", &mut c.udp_inuse, COUNT),
                    (
                        "memory_allocated_pages",
                        &mut c.memory_allocated_pages,
                        PAGES,
                    ),
                    (
                        "udp_memory_allocated_pages",
                        &mut c.udp_memory_allocated_pages,
                        PAGES,
                    ),
                ] {
                    self.check(field, f, bound, line);
                }
                if let Some(p) = c.page_size {
                    if !p.is_power_of_two() || !(4096..=1 << 20).contains(&p) {
                        c.page_size = None;
                        self.figure("page_size", p, line, "not a page size");
                    }
                }
            }
            Line::Group(_) if self.dropping => return false,
            Line::Group(g) => {
                for (field, f, bound) in [
                    ("sockets", &mut g.sockets, COUNT),
                    ("listeners", &mut g.listeners, COUNT),
                    ("time_wait", &mut g.time_wait, COUNT),
                    ("orphans", &mut g.orphans, COUNT),
                    ("rmem_bytes", &mut g.rmem_bytes, BYTES),
                    ("wmem_queued_bytes", &mut g.wmem_queued_bytes, BYTES),
                    ("fwd_alloc_bytes", &mut g.fwd_alloc_bytes, BYTES),
                    ("orphan_bytes", &mut g.orphan_bytes, BYTES),
                ] {
                    self.check(field, f, bound, line);
                }
            }
            Line::Event(e) => {
                let b = &mut e.body;
                for (field, f, bound) in [
                    ("orphans", &mut b.orphans, COUNT),
                    ("max_orphans", &mut b.max_orphans, COUNT),
                ] {
                    if let Some(n) = f.flatten().filter(|n| n.u64().is_some_and(|n| n > bound.0)) {
                        *f = None;
                        self.figure(field, n, line, bound.1);
                    }
                }
                if let Some(n) = b
                    .allocated_pages
                    .filter(|n| n.u64().is_some_and(|n| n > PAGES.0))
                {
                    b.allocated_pages = None;
                    self.figure("allocated_pages", n, line, PAGES.1);
                }
            }
            _ => {}
        }
        true
    }

    /// A figure past its bound is removed (read as absent).
    fn check(&mut self, field: &str, f: &mut Option<u64>, (max, why): (u64, &str), line: u64) {
        if let Some(n) = f.filter(|n| *n > max) {
            *f = None;
            self.figure(field, n, line, why);
        }
    }

    fn figure(&mut self, field: &str, x: impl Into<Int>, line: u64, why: &str) {
        if self.figures.n == 0 {
            self.figure_first = format!("\"{field}\": {} on line {line}: {why}", x.into());
        }
        self.figures.add(line);
    }
}

impl Sanity {
    pub(super) fn sentences(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.figures.n > 0 {
            w.push(format!(
                "{} no kernel can produce {} dropped (the first, {})",
                crate::format::count(self.figures.n, "figure", "figures"),
                if self.figures.n == 1 { "was" } else { "were" },
                self.figure_first
            ));
        }
        // Said alike for both reasons an interval is dropped.
        let intervals = |t: &Tally, why: &str, first: String| {
            format!(
                "{} {why} {} dropped with {} group lines ({first})",
                crate::format::count(t.n, "interval", "intervals"),
                if t.n == 1 { "was" } else { "were" },
                if t.n == 1 { "its" } else { "their" },
            )
        };
        if self.backwards.n > 0 {
            w.push(intervals(
                &self.backwards,
                "whose time runs backwards",
                format!("the first, {}", self.backwards_first),
            ));
        }
        if self.untimed.n > 0 {
            w.push(intervals(
                &self.untimed,
                "without a readable time (\"ts\", RFC 3339)",
                format!("the first is line {}", self.untimed.first),
            ));
        }
        w
    }
}
