//! The node's TCP memory health, as node-problem-detector reads it
//! (`netmem check`): plain figures in, one [`Verdict`] out (a status,
//! which is the exit code, and one line). The figures come from a running
//! `serve` or from one reading of the host (`cmd/check.rs` gathers them);
//! the rule is the same for both and does no I/O.
//!
//! A node has a problem when any of these holds:
//! - an abort on memory (`tcp_check_oom`) happened within the window;
//! - TCP memory is above `tcp_mem[1]`, where the kernel enters pressure;
//! - orphans are past a quarter of `tcp_max_orphans`, where the kernel's
//!   shift starts aborting idle or failing orphans
//!   ([`ORPHAN_FRACTION`]);
//! - a cgroup's sockets are under pressure of their own
//!   ([`super::memcg::local_pressure`], applied by the gatherer).
//!
//! What could not be checked is said in the line; the status is unknown
//! only when nothing could be.

use std::time::Duration;

/// Orphans past this fraction of tcp_max_orphans are a problem: the
/// kernel's shift (`tcp_too_many_orphans` doubles a socket's count when
/// it is idle or in error) starts aborting at a quarter. The flight
/// recorder's trigger uses the same mark.
pub const ORPHAN_FRACTION: f64 = 0.25;

/// node-problem-detector's custom plugin statuses, which are the exit
/// codes: 0 OK, 1 NonOK, 2 Unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Problem = 1,
    Unknown = 2,
}

impl Status {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The word that opens the line: the condition's name when it holds
    /// (`packaging/node-problem-detector/netmem-monitor.json`).
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Problem => "TCPMemoryPressure",
            Status::Unknown => "Unknown",
        }
    }
}

/// The host's TCP memory: charged and `tcp_mem`, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpMemory {
    pub allocated_pages: u64,
    pub tcp_mem_pages: [u64; 3],
    pub page_size: u64,
}

/// Orphaned TCP sockets and `tcp_max_orphans` (both global).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphans {
    pub count: u64,
    pub max: u64,
}

/// What is known of aborts on memory within the window.
#[derive(Clone, Debug, PartialEq)]
pub enum Aborts {
    /// Some happened within the window: how many (when known), their
    /// causes (when known), and the group that had the most, when the
    /// source knows.
    Seen {
        count: Option<u64>,
        causes: Vec<String>,
        /// What the count covers, e.g. "since serve started, the last
        /// within 10m" (None: the window itself).
        counted: Option<String>,
        group: Option<String>,
        /// How long ago the last one was, when known.
        last_ago: Option<Duration>,
    },
    /// None within the window.
    None,
    /// The first reading: nothing to compare the counter with yet.
    NoBaseline,
    /// Could not be read, and why.
    Unknown(String),
}

/// A cgroup whose sockets are under pressure of their own.
#[derive(Clone, Debug, PartialEq)]
pub struct CgroupUnderPressure {
    /// Its path (as `Cgroup::path`), or a pod or container name.
    pub cgroup: String,
    /// Its socket memory (`memory.stat` `sock`), when known.
    pub sock: Option<u64>,
}

/// What is known of cgroup-local socket pressure.
#[derive(Clone, Debug, PartialEq)]
pub enum Cgroups {
    /// Checked `checked` cgroups; these are under pressure.
    Checked {
        checked: usize,
        under: Vec<CgroupUnderPressure>,
    },
    /// Not checked, and why.
    NotChecked(String),
}

/// Every figure the rule reads; None (or the enums' unknown arms) for
/// what the source could not read.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub tcp: Option<TcpMemory>,
    pub orphans: Option<Orphans>,
    pub aborts: Aborts,
    pub cgroups: Cgroups,
    /// The window aborts are looked for in (`--window`).
    pub window: Duration,
    /// Where the figures come from, e.g. "from serve 127.0.0.1:10077",
    /// "one reading".
    pub source: String,
}

/// The status and the one line node-problem-detector shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub line: String,
}

impl Verdict {
    /// Nothing could be judged, and why.
    pub fn unknown(why: &str) -> Verdict {
        Verdict {
            status: Status::Unknown,
            line: format!("netmem: {}: {}", Status::Unknown.word(), one_line(why)),
        }
    }
}

/// The kernel's pressure mark, the same test as `tcp_enter_memory_pressure`'s
/// caller (`__sk_mem_raise_allocated`): charged pages above `tcp_mem[1]`.
pub fn over_pressure(allocated_pages: u64, tcp_mem_pages: [u64; 3]) -> bool {
    tcp_mem_pages[1] > 0 && allocated_pages > tcp_mem_pages[1]
}

/// Where orphans start to be aborted: a quarter of `tcp_max_orphans`
/// (None for a max of 0, which the kernel reads as no orphans at all).
pub fn orphan_mark(max: u64) -> Option<u64> {
    (max > 0).then(|| (max as f64 * ORPHAN_FRACTION).ceil() as u64)
}

/// Orphans past [`orphan_mark`].
pub fn over_orphan_mark(count: u64, max: u64) -> bool {
    orphan_mark(max).is_some_and(|m| count > m)
}

/// The verdict on `f`.
pub fn judge(f: &Facts) -> Verdict {
    let window = humantime::format_duration(f.window).to_string();
    let mut problems: Vec<String> = Vec::new();
    let mut fine: Vec<String> = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();

    match &f.aborts {
        Aborts::Seen {
            count,
            causes,
            counted,
            group,
            last_ago,
        } => {
            let mut s = match count {
                Some(n) => crate::format::count(*n, "abort on memory", "aborts on memory"),
                None => "aborts on memory".into(),
            };
            if !causes.is_empty() {
                s += &format!(" ({})", causes.join(", "));
            }
            match counted {
                Some(c) => s += &format!(" {c}"),
                None => s += &format!(" within {window}"),
            }
            if let Some(ago) = last_ago {
                s += &format!(" ({} ago)", short(*ago));
            }
            if let Some(g) = group {
                s += &format!(", most on {g}");
            }
            problems.push(s);
        }
        Aborts::None => fine.push(format!("no aborts in {window}")),
        Aborts::NoBaseline => unchecked.push("aborts (first reading, none to compare with)".into()),
        Aborts::Unknown(why) => unchecked.push(format!("aborts ({why})")),
    }

    match f.tcp {
        Some(t) if over_pressure(t.allocated_pages, t.tcp_mem_pages) => problems.push(format!(
            "TCP memory {} above tcp_mem pressure {}",
            mib(t.allocated_pages * t.page_size),
            mib(t.tcp_mem_pages[1] * t.page_size)
        )),
        Some(t) if t.tcp_mem_pages[1] > 0 => fine.push(format!(
            "TCP memory {}% of pressure",
            t.allocated_pages * 100 / t.tcp_mem_pages[1]
        )),
        Some(_) => unchecked.push("TCP memory (tcp_mem pressure is 0)".into()),
        None => unchecked.push("TCP memory".into()),
    }

    match f.orphans {
        Some(o) => match orphan_mark(o.max) {
            Some(mark) if o.count > mark => problems.push(format!(
                "{} orphans past {mark} (tcp_max_orphans {}/4)",
                o.count, o.max
            )),
            Some(_) => fine.push(format!("orphans {} of {}/4", o.count, o.max)),
            None => unchecked.push("orphans (tcp_max_orphans is 0)".into()),
        },
        None => unchecked.push("orphans".into()),
    }

    match &f.cgroups {
        Cgroups::Checked { under, .. } if !under.is_empty() => {
            let first = &under[0];
            let mut s = format!(
                "cgroup socket pressure in {}",
                crate::format::printable(&first.cgroup)
            );
            if let Some(b) = first.sock {
                s += &format!(" (sockets {})", mib(b));
            }
            if under.len() > 1 {
                s += &format!(" and {} more", under.len() - 1);
            }
            problems.push(s);
        }
        Cgroups::Checked { checked, .. } => fine.push(format!(
            "no socket pressure in {}",
            crate::format::count(*checked as u64, "limited cgroup", "limited cgroups")
        )),
        Cgroups::NotChecked(why) => unchecked.push(format!("cgroups ({why})")),
    }

    let not = |u: &[String]| {
        if u.is_empty() {
            String::new()
        } else {
            format!("; not checked: {}", u.join(", "))
        }
    };
    let (status, body) = if !problems.is_empty() {
        (Status::Problem, problems.join("; "))
    } else if fine.is_empty() {
        (
            Status::Unknown,
            format!("nothing could be read: {}", unchecked.join(", ")),
        )
    } else {
        (Status::Ok, fine.join(", "))
    };
    let tail = if status == Status::Unknown {
        String::new()
    } else {
        not(&unchecked)
    };
    Verdict {
        status,
        line: format!(
            "netmem: {}: {}{} ({})",
            status.word(),
            one_line(&body),
            one_line(&tail),
            one_line(&f.source)
        ),
    }
}

/// Text from elsewhere (a group's or cgroup's name, an error) kept on one
/// line: control characters escaped, the newline too.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    crate::format::printable(s)
}

/// Bytes in MiB, whole (the line is read by people on a node's status).
fn mib(b: u64) -> String {
    if b < 1 << 20 {
        format!("{} KiB", b.div_ceil(1024))
    } else {
        format!("{} MiB", b >> 20)
    }
}

/// A duration to the second, in humantime's words (`2m 5s`).
fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calm() -> Facts {
        Facts {
            tcp: Some(TcpMemory {
                allocated_pages: 1200,
                tcp_mem_pages: [5000, 10000, 15000],
                page_size: 4096,
            }),
            orphans: Some(Orphans {
                count: 3,
                max: 65536,
            }),
            aborts: Aborts::None,
            cgroups: Cgroups::Checked {
                checked: 4,
                under: vec![],
            },
            window: Duration::from_secs(600),
            source: "from serve 127.0.0.1:10077".into(),
        }
    }

    #[test]
    fn a_calm_node_is_ok_and_says_what_was_checked() {
        let v = judge(&calm());
        assert_eq!(v.status, Status::Ok);
        assert_eq!(
            v.line,
            "netmem: OK: no aborts in 10m, TCP memory 12% of pressure, orphans 3 of 65536/4, no socket pressure in 4 limited cgroups (from serve 127.0.0.1:10077)"
        );
    }

    #[test]
    fn each_problem_alone_is_a_problem() {
        let mut f = calm();
        f.tcp = Some(TcpMemory {
            allocated_pages: 10001,
            ..f.tcp.unwrap()
        });
        let v = judge(&f);
        assert_eq!(v.status, Status::Problem);
        assert!(
            v.line.starts_with(
                "netmem: TCPMemoryPressure: TCP memory 39 MiB above tcp_mem pressure 39 MiB"
            ),
            "{}",
            v.line
        );
        // At the mark itself the kernel is not yet under pressure.
        f.tcp = Some(TcpMemory {
            allocated_pages: 10000,
            ..f.tcp.unwrap()
        });
        assert_eq!(judge(&f).status, Status::Ok);

        let mut f = calm();
        f.orphans = Some(Orphans {
            count: 16385,
            max: 65536,
        });
        let v = judge(&f);
        assert_eq!(v.status, Status::Problem);
        assert!(
            v.line
                .contains("16385 orphans past 16384 (tcp_max_orphans 65536/4)"),
            "{}",
            v.line
        );
        f.orphans = Some(Orphans {
            count: 16384,
            max: 65536,
        });
        assert_eq!(judge(&f).status, Status::Ok);

        let mut f = calm();
        f.aborts = Aborts::Seen {
            count: Some(3),
            causes: vec!["orphans".into()],
            counted: None,
            group: Some("listen:443".into()),
            last_ago: Some(Duration::from_millis(125_500)),
        };
        let v = judge(&f);
        assert_eq!(v.status, Status::Problem);
        assert!(
            v.line.starts_with(
                "netmem: TCPMemoryPressure: 3 aborts on memory (orphans) within 10m (2m 5s ago), most on listen:443 (from serve"
            ),
            "{}",
            v.line
        );

        let mut f = calm();
        f.cgroups = Cgroups::Checked {
            checked: 9,
            under: vec![
                CgroupUnderPressure {
                    cgroup: "/kubepods/pod1\n/ctr".into(),
                    sock: Some(20 << 20),
                },
                CgroupUnderPressure {
                    cgroup: "/b".into(),
                    sock: None,
                },
            ],
        };
        let v = judge(&f);
        assert_eq!(v.status, Status::Problem);
        assert!(
            v.line.contains(
                "cgroup socket pressure in /kubepods/pod1\\n/ctr (sockets 20 MiB) and 1 more"
            ),
            "{}",
            v.line
        );
        assert!(!v.line.contains('\n'));
    }

    #[test]
    fn every_problem_is_said_on_the_one_line() {
        let mut f = calm();
        f.tcp = Some(TcpMemory {
            allocated_pages: 207_872,
            tcp_mem_pages: [98_304, 196_608, 294_912],
            page_size: 4096,
        });
        f.aborts = Aborts::Seen {
            count: Some(3),
            causes: vec!["orphans".into(), "tcp_mem".into()],
            counted: Some("since serve started, the last within 10m".into()),
            group: None,
            last_ago: None,
        };
        let v = judge(&f);
        assert_eq!(
            v.line,
            "netmem: TCPMemoryPressure: 3 aborts on memory (orphans, tcp_mem) since serve started, the last within 10m; TCP memory 812 MiB above tcp_mem pressure 768 MiB (from serve 127.0.0.1:10077)"
        );
        assert_eq!(v.status.code(), 1);
    }

    /// What was not read is named; OK on what was; unknown only when
    /// nothing was.
    #[test]
    fn unchecked_parts_are_named_and_nothing_read_is_unknown() {
        let mut f = calm();
        f.aborts = Aborts::NoBaseline;
        f.cgroups = Cgroups::NotChecked("no cgroup v2".into());
        f.source = "one reading".into();
        let v = judge(&f);
        assert_eq!(v.status, Status::Ok);
        assert_eq!(
            v.line,
            "netmem: OK: TCP memory 12% of pressure, orphans 3 of 65536/4; not checked: aborts (first reading, none to compare with), cgroups (no cgroup v2) (one reading)"
        );
        f.tcp = None;
        f.orphans = None;
        f.aborts = Aborts::Unknown("no /proc/net/netstat".into());
        let v = judge(&f);
        assert_eq!(v.status, Status::Unknown);
        assert_eq!(v.status.code(), 2);
        assert!(
            v.line
                .starts_with("netmem: Unknown: nothing could be read: "),
            "{}",
            v.line
        );
        // A problem among unknowns is still a problem.
        f.orphans = Some(Orphans { count: 9, max: 16 });
        assert_eq!(judge(&f).status, Status::Problem);
    }

    #[test]
    fn marks_match_the_kernel() {
        assert_eq!(orphan_mark(0), None);
        assert_eq!(orphan_mark(16), Some(4));
        assert_eq!(orphan_mark(10), Some(3));
        assert!(over_orphan_mark(5, 16) && !over_orphan_mark(4, 16));
        assert!(!over_pressure(5, [0, 0, 0]));
        assert!(over_pressure(11, [1, 10, 20]) && !over_pressure(10, [1, 10, 20]));
        assert_eq!(
            Verdict::unknown("serve said\nnothing").line,
            "netmem: Unknown: serve said\\nnothing"
        );
    }
}
