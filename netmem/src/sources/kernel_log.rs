//! The kernel log lines that matter for socket memory: read from
//! /dev/kmsg (live) or from a file (syslog, kern.log, `journalctl -k`
//! output, with or without timestamps), and told apart by their text.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};

/// A kernel message about socket memory or the (old) route cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogMessage {
    /// Kernels before 3.x: one message for both of tcp_check_oom's causes.
    OutOfSocketMemory,
    /// `TCP: too many orphaned sockets` (3.x+): the orphan limit fired.
    TooManyOrphans,
    /// `TCP: out of memory -- consider tuning tcp_mem` (3.x+).
    OutOfTcpMem,
    /// The IPv4 route cache (removed in 3.6) warning about its hash chains.
    RouteHashChainTooLong,
}

impl LogMessage {
    pub const ALL: [LogMessage; 4] = [
        LogMessage::OutOfSocketMemory,
        LogMessage::TooManyOrphans,
        LogMessage::OutOfTcpMem,
        LogMessage::RouteHashChainTooLong,
    ];

    /// The text that identifies it (a substring of the line).
    pub fn pattern(self) -> &'static str {
        match self {
            LogMessage::OutOfSocketMemory => "Out of socket memory",
            LogMessage::TooManyOrphans => "too many orphaned sockets",
            LogMessage::OutOfTcpMem => "out of memory -- consider tuning tcp_mem",
            LogMessage::RouteHashChainTooLong => "Route hash chain too long",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogMessage::OutOfSocketMemory => "out_of_socket_memory",
            LogMessage::TooManyOrphans => "too_many_orphans",
            LogMessage::OutOfTcpMem => "out_of_tcp_mem",
            LogMessage::RouteHashChainTooLong => "route_hash_chain_too_long",
        }
    }
}

/// Which message a log line (any format) carries, if any.
pub fn classify_line(line: &str) -> Option<LogMessage> {
    LogMessage::ALL
        .into_iter()
        .find(|m| line.contains(m.pattern()))
}

/// The message of one /dev/kmsg record (`PRIO,SEQ,TIME,FLAGS;MESSAGE`
/// plus continuation lines): what follows the first `;`, up to the line's
/// end, so a record's header can never match.
pub fn record_message(record: &str) -> Option<&str> {
    record.split_once(';')?.1.lines().next()
}

/// Which message one /dev/kmsg record carries, if any.
pub fn classify_record(record: &[u8]) -> Option<LogMessage> {
    classify_line(record_message(&String::from_utf8_lossy(record))?)
}

/// When a log line says it was written, as the log wrote it: an ISO 8601
/// stamp (rsyslog's high-precision format, `journalctl -o short-iso`, and
/// the doctor's own reading of /dev/kmsg), a syslog one (`Nov 29
/// 03:12:01`, `journalctl -k`), `dmesg -T`'s `[Sat Nov 29 03:12:01 2026]`,
/// or, when the line has none of those, dmesg's `[81234.567890]` as
/// seconds after boot. Only stamps of digits, letters and punctuation are
/// taken, so nothing else of the line (control characters included)
/// reaches the output.
pub fn line_time(line: &str) -> Option<String> {
    let line = line.trim_start();
    let first = line.split_whitespace().next()?;
    if is_iso(first) {
        return Some(first.to_string());
    }
    if let Some(t) = line.get(..15).filter(|t| is_syslog(t)) {
        return Some(t.to_string());
    }
    if let Some(t) = line
        .strip_prefix('[')
        .and_then(|r| r.get(..24))
        .filter(|t| {
            t.is_ascii() && is_weekday(&t[..3]) && t.as_bytes()[3] == b' ' && is_syslog(&t[4..19])
        })
    {
        return Some(t.to_string());
    }
    // The first bracket only: a message's own text may hold brackets.
    let (_, rest) = line.split_once('[')?;
    let (secs, _) = rest.split_once(']')?;
    let secs = secs.trim();
    let ok = !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && secs.parse::<f64>().is_ok();
    ok.then(|| format!("{secs} s after boot"))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `2026-11-29T03:12:01`, then fractions and a zone.
fn is_iso(t: &str) -> bool {
    let b = t.as_bytes();
    t.is_ascii()
        && b.len() >= 19
        && digits(&t[..4])
        && b[4] == b'-'
        && digits(&t[5..7])
        && b[7] == b'-'
        && digits(&t[8..10])
        && b[10] == b'T'
        && digits(&t[11..13])
        && b[13] == b':'
        && digits(&t[14..16])
        && b[16] == b':'
        && t[17..]
            .bytes()
            .all(|c| c.is_ascii_digit() || b".:+-Z".contains(&c))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn is_weekday(t: &str) -> bool {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&t)
}

/// `Nov 29 03:12:01` (the day padded with a space when below 10).
fn is_syslog(t: &str) -> bool {
    let b = t.as_bytes();
    t.is_ascii()
        && b.len() == 15
        && MONTHS.contains(&&t[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && digits(&t[7..9])
        && b[9] == b':'
        && digits(&t[10..12])
        && b[12] == b':'
        && digits(&t[13..15])
}

/// Every message line of a log file: syslog, kern.log or `journalctl -k`
/// output; timestamps and prefixes do not matter to the classification.
pub fn read_file(path: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read kernel log {path}"))?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(String::from)
        .collect())
}

/// /dev/kmsg, read without blocking: each read returns one record.
pub struct Kmsg {
    file: std::fs::File,
}

impl Kmsg {
    /// `from_end`: only records logged from now on (the live poller);
    /// otherwise the whole ring buffer. Needs root, or CAP_SYSLOG when
    /// kernel.dmesg_restrict is set.
    pub fn open(from_end: bool) -> Result<Kmsg> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("cannot read /dev/kmsg (needs root or CAP_SYSLOG)")?;
        if from_end {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid fd; SEEK_END on /dev/kmsg skips old records.
            unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        }
        Ok(Kmsg { file })
    }

    /// The messages of every record the kernel itself logged available
    /// now (a line a process wrote to /dev/kmsg is not believed).
    pub fn read_available(&mut self) -> Vec<String> {
        self.records()
            .iter()
            .filter(|r| from_kernel(r))
            .filter_map(|r| record_message(r).map(String::from))
            .collect()
    }

    /// Every whole record available now (`PRIO,SEQ,TIME,FLAGS;MESSAGE`).
    fn records(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // EPIPE: records were overwritten while we read; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                // EAGAIN: nothing more for now.
                Err(_) => break,
            }
        }
        out
    }
}

/// A /dev/kmsg record's syslog facility: its priority (`PRIO,...;`)
/// over 8. The kernel's own lines have 0; a line a process writes to
/// /dev/kmsg never does.
pub fn record_facility(record: &str) -> Option<u32> {
    let prio: u32 = record.split([',', ';']).next()?.trim().parse().ok()?;
    Some(prio >> 3)
}

/// Whether a /dev/kmsg record is the kernel's own: anything any root
/// process writes there carries another facility, and is not believed.
pub fn from_kernel(record: &str) -> bool {
    record_facility(record) == Some(0)
}

impl Kmsg {
    /// Every record available now: its facility (None when the header is
    /// unreadable) and which memory message it carries, if any.
    pub fn read_classified(&mut self) -> Vec<(Option<u32>, Option<LogMessage>)> {
        self.records()
            .iter()
            .map(|r| {
                let m = record_message(r).and_then(classify_line);
                (record_facility(r), m)
            })
            .collect()
    }
}

/// A record's time (microseconds of the kernel's clock since boot) on the
/// wall clock, as an ISO 8601 stamp: the kernel's clock does not count
/// suspended time, like CLOCK_MONOTONIC, which gives the offset.
fn record_wall_time(record: &str, now: std::time::SystemTime, mono_now_us: u64) -> Option<String> {
    let us: u64 = record.split(';').next()?.split(',').nth(2)?.parse().ok()?;
    let at = now.checked_sub(std::time::Duration::from_micros(
        mono_now_us.checked_sub(us)?,
    ))?;
    Some(humantime::format_rfc3339_seconds(at).to_string())
}

fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// The whole kernel ring buffer as /dev/kmsg gives it, each message led by
/// its time on the wall clock (see [`line_time`]); the kernel's own
/// records only (see [`from_kernel`]).
pub fn read_kmsg() -> Result<Vec<String>> {
    let records = Kmsg::open(false)?.records();
    let (now, mono) = (std::time::SystemTime::now(), monotonic_us());
    Ok(records
        .iter()
        .filter(|r| from_kernel(r))
        .filter_map(|r| {
            let m = record_message(r)?;
            Some(match record_wall_time(r, now, mono) {
                Some(t) => format!("{t} {m}"),
                None => m.to_string(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format() {
        for (line, want) in [
            (
                "Nov 29 12:00:01 lb1 kernel: [123.4] TCP: too many orphaned sockets",
                LogMessage::TooManyOrphans,
            ),
            (
                "kernel: TCP: out of memory -- consider tuning tcp_mem",
                LogMessage::OutOfTcpMem,
            ),
            ("Out of socket memory", LogMessage::OutOfSocketMemory),
            (
                "[ 1.0] Route hash chain too long!",
                LogMessage::RouteHashChainTooLong,
            ),
        ] {
            assert_eq!(classify_line(line), Some(want), "{line}");
        }
        assert_eq!(classify_line("eth0: link up"), None);
        assert_eq!(
            classify_record(b"4,1234,5678,-;TCP: too many orphaned sockets\n"),
            Some(LogMessage::TooManyOrphans)
        );
        assert_eq!(record_facility("4,1234,5678,-;x"), Some(0));
        assert_eq!(record_facility("12,1,2,-;x"), Some(1));
        assert_eq!(record_facility("x;y"), None);
        assert_eq!(
            classify_record(b"no separator too many orphaned sockets"),
            None
        );
    }

    #[test]
    fn timestamps_as_the_log_wrote_them() {
        for (line, want) in [
            (
                "Nov 29 03:12:01 lb1 kernel: [81234.5] TCP: too many orphaned sockets",
                Some("Nov 29 03:12:01"),
            ),
            ("Nov  9 03:12:01 lb1 kernel: x", Some("Nov  9 03:12:01")),
            (
                "2026-11-29T03:12:01.123456+00:00 lb1 kernel: x",
                Some("2026-11-29T03:12:01.123456+00:00"),
            ),
            (
                "[Sat Nov 29 03:12:01 2026] TCP: x",
                Some("Sat Nov 29 03:12:01 2026"),
            ),
            ("[ 8123.456789] TCP: x", Some("8123.456789 s after boot")),
            ("kernel: TCP: out of memory", None),
            ("Out of socket memory", None),
            // Control characters never pass as a stamp.
            ("[1\u{1b}2] x", None),
            ("Nov 29 03:12:\u{1b}1 x", None),
        ] {
            assert_eq!(line_time(line).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn kmsg_time_on_the_wall_clock() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        // Logged 2.5 s before now on the kernel's clock.
        let t = record_wall_time("4,1,7500000,-;TCP: x", now, 10_000_000).unwrap();
        assert_eq!(t, "2027-01-15T07:59:57Z");
        assert_eq!(line_time(&format!("{t} TCP: x")).as_deref(), Some(&*t));
        assert_eq!(record_wall_time("4,1,x,-;m", now, 1), None);
    }
}
