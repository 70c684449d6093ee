//! The flight recorder's trigger rules: what counts as the start of an
//! incident, the thresholds, and the rate limit per cause. Plain data and
//! rules: the recorder sink (`output/recorder/`) hands them the model's
//! events and intervals, and what its watchers saw (a kernel log record's
//! facility and message, a manual request), and writes what they decide.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::event::AbortCause;
use super::{Body, Event, Interval};

/// Orphans past this fraction of tcp_max_orphans trigger (the health
/// rule's mark, which `netmem check` judges by too).
pub use super::health::ORPHAN_FRACTION;

/// An automatic cause fires at most once per this long: a limit that
/// stays exceeded is one incident (extended while it lasts), not a file
/// per interval.
pub const RATE_LIMIT: Duration = Duration::from_secs(10 * 60);

/// An incident is extended by later triggers for at most this long after
/// it began; then it closes, and the next trigger starts another.
pub const MAX_INCIDENT: Duration = Duration::from_secs(60 * 60);

/// The kernel's syslog facility (`LOG_KERN`): a /dev/kmsg record's
/// priority is `facility * 8 + level`. Whatever a process writes to
/// /dev/kmsg gets `LOG_USER` (1) or the facility it names, never 0: the
/// kernel refuses to let it claim facility 0.
pub const KERNEL_FACILITY: u32 = 0;

netmem_common::named_enum! {
    /// Why an incident was recorded: its file name's suffix and the
    /// `cause` label of `netmem_incidents_total`. `ALL` lists every one
    /// (serve exports each at 0 from the start).
    pub enum Cause {
        AbortOrphans = 0 => "abort-orphans",
        AbortTcpMem = 1 => "abort-tcp-mem",
        AbortBoth = 2 => "abort-both",
        AbortUnknown = 3 => "abort-unknown",
        Pressure = 4 => "pressure",
        Orphans = 5 => "orphans",
        TcpMem = 6 => "tcp-mem",
        KernelLog = 7 => "kernel-log",
        EventsLost = 8 => "events-lost",
        Manual = 9 => "manual",
    }
}

impl Cause {
    /// Manual requests are never rate-limited: someone asked.
    pub fn rate_limit(self) -> Duration {
        match self {
            Cause::Manual => Duration::ZERO,
            _ => RATE_LIMIT,
        }
    }
}

/// A trigger that fired: its cause and a line saying what was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub cause: Cause,
    pub detail: String,
}

/// The rules and what they remember between calls (the last lost-events
/// count, whether pressure or a threshold was already on, when each cause
/// last fired).
#[derive(Clone, Debug, Default)]
pub struct Triggers {
    fired: BTreeMap<Cause, SystemTime>,
    lost: Option<u64>,
    pressure: bool,
    orphans_over: bool,
    tcp_mem_over: bool,
}

impl Triggers {
    /// `t`, unless its cause fired less than its rate limit ago.
    fn pass(&mut self, t: Trigger, now: SystemTime) -> Option<Trigger> {
        if let Some(last) = self.fired.get(&t.cause) {
            let since = now.duration_since(*last).unwrap_or_default();
            if since < t.cause.rate_limit() {
                return None;
            }
        }
        self.fired.insert(t.cause, now);
        Some(t)
    }

    /// An event: an abort on memory (by the cause the decoder computed),
    /// or memory pressure entered.
    pub fn event(&mut self, e: &Event) -> Option<Trigger> {
        let t = match &e.body {
            Body::AbortOnMemory(a) => Trigger {
                cause: match a.cause {
                    AbortCause::Orphans => Cause::AbortOrphans,
                    AbortCause::TcpMem => Cause::AbortTcpMem,
                    AbortCause::Both => Cause::AbortBoth,
                    AbortCause::Unknown => Cause::AbortUnknown,
                },
                detail: format!("a TCP connection aborted on memory ({})", a.cause.name()),
            },
            Body::PressureEnter {
                allocated_pages,
                tcp_mem_pages,
            } => {
                self.pressure = true;
                Trigger {
                    cause: Cause::Pressure,
                    detail: format!(
                        "TCP memory pressure entered at {allocated_pages} pages (tcp_mem {} {} {})",
                        tcp_mem_pages[0], tcp_mem_pages[1], tcp_mem_pages[2]
                    ),
                }
            }
            _ => return None,
        };
        self.pass(t, e.ts)
    }

    /// An interval: pressure entered (the polled tier says it only here),
    /// orphans past [`ORPHAN_FRACTION`] of tcp_max_orphans, TCP memory
    /// past tcp_mem's pressure mark, events lost. A threshold fires when
    /// it is crossed, not while it stays crossed.
    pub fn interval(&mut self, i: &Interval) -> Vec<Trigger> {
        let mut out = Vec::new();
        let now = i.ts;
        let c = &i.context;
        if let Some(l) = &i.live {
            if l.memory_pressure && !self.pressure {
                out.push(Trigger {
                    cause: Cause::Pressure,
                    detail: format!(
                        "TCP memory pressure entered at {} pages",
                        c.memory_allocated_pages
                    ),
                });
            }
            self.pressure = l.memory_pressure;
            let lost = l.loss.lost_events;
            if lost > self.lost.unwrap_or(0) {
                out.push(Trigger {
                    cause: Cause::EventsLost,
                    detail: format!(
                        "{} events lost (ring buffer full)",
                        lost - self.lost.unwrap_or(0)
                    ),
                });
            }
            self.lost = Some(lost);
        }
        // The marks are the health rule's (`netmem check` judges by them).
        if let Some((max, mark)) = c
            .max_orphans
            .and_then(|m| Some((m, super::health::orphan_mark(m)?)))
        {
            let over = super::health::over_orphan_mark(c.orphans, max);
            if over && !self.orphans_over {
                out.push(Trigger {
                    cause: Cause::Orphans,
                    detail: format!(
                        "{} orphans, past {mark} (a quarter of tcp_max_orphans {max})",
                        c.orphans
                    ),
                });
            }
            self.orphans_over = over;
        }
        if let Some(mem) = c.tcp_mem_pages.filter(|m| m[1] > 0) {
            let over = super::health::over_pressure(c.memory_allocated_pages, mem);
            if over && !self.tcp_mem_over {
                out.push(Trigger {
                    cause: Cause::TcpMem,
                    detail: format!(
                        "TCP memory {} pages, past tcp_mem's pressure mark {}",
                        c.memory_allocated_pages, mem[1]
                    ),
                });
            }
            self.tcp_mem_over = over;
        }
        out.into_iter().filter_map(|t| self.pass(t, now)).collect()
    }

    /// A kernel log record: it counts only with the kernel's facility
    /// (anything else was written by a process, and is not believed), and
    /// only as one of the memory messages (`message`, when the record's
    /// text is one: its name).
    pub fn kernel_log(
        &mut self,
        facility: u32,
        message: Option<&str>,
        now: SystemTime,
    ) -> Option<Trigger> {
        if facility != KERNEL_FACILITY {
            return None;
        }
        let t = Trigger {
            cause: Cause::KernelLog,
            detail: format!("the kernel logged {}", message?),
        };
        self.pass(t, now)
    }

    /// A manual request (SIGUSR1, `POST /incidents`).
    pub fn manual(&mut self, how: &str, now: SystemTime) -> Option<Trigger> {
        let t = Trigger {
            cause: Cause::Manual,
            detail: format!("asked for by {how}"),
        };
        self.pass(t, now)
    }
}

/// An incident's id and file name stem: its UTC start to the second and
/// its cause (`2026-12-06T21-03-04Z-abort-orphans`), `-N` when another
/// started in the same second.
pub fn incident_id(rfc3339_seconds: &str, cause: Cause, n: u32) -> String {
    let t: String = rfc3339_seconds
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    if n > 1 {
        format!("{t}-{}-{n}", cause.name())
    } else {
        format!("{t}-{}", cause.name())
    }
}

/// Whether `id` is one this recorder could have named: the only ids the
/// HTTP side looks up, so nothing else (a path, `..`) reaches a file name.
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (20..=64).contains(&b.len())
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b.iter().all(|c| {
            c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-' || *c == b'T' || *c == b'Z'
        })
}

/// Which files go under retention: the oldest first (ids sort by time),
/// until at most `max` files and `max_bytes` bytes are left; the newest is
/// always kept. `files`: (id, bytes), any order.
pub fn to_remove(files: &[(String, u64)], max: usize, max_bytes: u64) -> Vec<String> {
    let mut sorted: Vec<&(String, u64)> = files.iter().collect();
    // By the second, then `-N` in order (`-manual` before `-manual-2`
    // before `-manual-10`).
    sorted.sort_by(|a, b| {
        let key = |id: &str| (id.get(..20).unwrap_or(id).to_string(), id.len());
        key(&a.0).cmp(&key(&b.0)).then(a.0.cmp(&b.0))
    });
    let mut total: u64 = sorted.iter().map(|f| f.1).sum();
    let mut count = sorted.len();
    let mut out = Vec::new();
    for f in &sorted[..sorted.len().saturating_sub(1)] {
        if count <= max && total <= max_bytes {
            break;
        }
        out.push(f.0.clone());
        count -= 1;
        total -= f.1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, Live};

    fn interval(ts: SystemTime, ctx: Context, pressure: bool, lost: u64) -> Interval {
        let mut i = Interval::live_for_tests(Vec::new());
        i.ts = ts;
        i.context = ctx;
        i.live = Some(Live {
            memory_pressure: pressure,
            loss: crate::model::Loss {
                lost_events: lost,
                ..Default::default()
            },
            ..Default::default()
        });
        i
    }

    #[test]
    fn thresholds_fire_when_crossed_and_are_rate_limited() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut t = Triggers::default();
        let ctx = |orphans, alloc| Context {
            orphans,
            max_orphans: Some(1000),
            memory_allocated_pages: alloc,
            tcp_mem_pages: Some([100, 200, 300]),
            ..Default::default()
        };
        assert!(t
            .interval(&interval(t0, ctx(250, 200), false, 0))
            .is_empty());
        let fired = t.interval(&interval(t0, ctx(251, 201), true, 3));
        let causes: Vec<Cause> = fired.iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            [
                Cause::Pressure,
                Cause::EventsLost,
                Cause::Orphans,
                Cause::TcpMem
            ]
        );
        // Still over: nothing new.
        assert!(t.interval(&interval(t0, ctx(300, 250), true, 3)).is_empty());
        // Below, then over again within the rate limit: nothing.
        t.interval(&interval(t0, ctx(0, 0), false, 3));
        let again = t0 + Duration::from_secs(60);
        assert!(t
            .interval(&interval(again, ctx(300, 250), true, 5))
            .is_empty());
        // Past the rate limit: each fires again.
        t.interval(&interval(again, ctx(0, 0), false, 5));
        let later = t0 + RATE_LIMIT + Duration::from_secs(1);
        assert_eq!(
            t.interval(&interval(later, ctx(300, 250), true, 9)).len(),
            4
        );
    }

    #[test]
    fn kernel_log_counts_only_with_the_kernel_facility() {
        let now = SystemTime::UNIX_EPOCH;
        let mut t = Triggers::default();
        assert_eq!(t.kernel_log(1, Some("too_many_orphans"), now), None);
        assert_eq!(t.kernel_log(KERNEL_FACILITY, None, now), None);
        let k = t.kernel_log(KERNEL_FACILITY, Some("too_many_orphans"), now);
        assert_eq!(k.unwrap().cause, Cause::KernelLog);
        assert_eq!(t.kernel_log(KERNEL_FACILITY, Some("x"), now), None);
    }

    #[test]
    fn manual_is_never_rate_limited() {
        let now = SystemTime::UNIX_EPOCH;
        let mut t = Triggers::default();
        for _ in 0..3 {
            assert_eq!(t.manual("SIGUSR1", now).unwrap().cause, Cause::Manual);
        }
    }

    #[test]
    fn ids_and_retention() {
        let id = incident_id("2026-12-06T21:03:04Z", Cause::AbortOrphans, 1);
        assert_eq!(id, "2026-12-06T21-03-04Z-abort-orphans");
        assert!(valid_id(&id));
        assert!(valid_id(&incident_id(
            "2026-12-06T21:03:04Z",
            Cause::Manual,
            2
        )));
        for bad in [
            "../etc/passwd",
            "2026-12-06T21-03-04Z/x",
            "",
            "2026-12-06T21-03-04Z-a.b",
            "x2026-12-06T21-03-04Z-manual",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
        let files: Vec<(String, u64)> = (0..5).map(|i| (format!("2026-0{i}"), 10)).collect();
        assert_eq!(to_remove(&files, 3, 1000), ["2026-00", "2026-01"]);
        assert_eq!(to_remove(&files, 10, 25), ["2026-00", "2026-01", "2026-02"]);
        // The newest stays, whatever its size.
        assert_eq!(to_remove(&files[..1], 0, 0), Vec::<String>::new());
    }
}
