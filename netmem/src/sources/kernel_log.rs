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

    /// The messages of every record available now.
    pub fn read_available(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(m) = record_message(&String::from_utf8_lossy(&buf[..n])) {
                        out.push(m.to_string());
                    }
                }
                // EPIPE: records were overwritten while we read; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                // EAGAIN: nothing more for now.
                Err(_) => break,
            }
        }
        out
    }
}

/// The whole kernel ring buffer as /dev/kmsg gives it.
pub fn read_kmsg() -> Result<Vec<String>> {
    Ok(Kmsg::open(false)?.read_available())
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
        assert_eq!(
            classify_record(b"no separator too many orphaned sockets"),
            None
        );
    }
}
