//! tcp_check_oom's polling tier: nstat's TCPAbortOnMemory, diffed between
//! passes, and the kernel log lines that say which limit fired.

use anyhow::{anyhow, Context, Result};
use netmem_common::{payload, AbortSource, Event, GroupKey};

use super::raw_event;
use crate::sources::kernel_log::{classify_line, Kmsg, LogMessage};
use crate::sources::netns::Netns;

/// TcpExt's TCPAbortOnMemory from a /proc/net/netstat text.
pub fn parse_abort_on_memory(text: &str) -> Option<u64> {
    crate::sources::host::parse_tcpext(text)
        .get("TCPAbortOnMemory")
        .copied()
}

/// Aborts counted by the kernel (nstat) since the last pass; the kernel
/// log, when readable, says which limit fired.
pub struct AbortPoll {
    last: Option<u64>,
    kmsg: Option<Kmsg>,
    /// What the kernel log said during the last pass: (too many orphaned
    /// sockets, out of memory -- consider tuning tcp_mem). The messages
    /// are rate-limited, so these are lower bounds.
    pub log_counts: (u64, u64),
}

impl AbortPoll {
    pub fn new() -> AbortPoll {
        AbortPoll {
            last: None,
            // Only new records; unreadable without root: counts stay 0.
            kmsg: Kmsg::open(true).ok(),
            log_counts: (0, 0),
        }
    }

    /// (orphan messages, tcp_mem messages) logged since the last call.
    fn kernel_log(&mut self) -> (u64, u64) {
        let (mut orphans, mut mem) = (0, 0);
        let Some(k) = self.kmsg.as_mut() else {
            return (0, 0);
        };
        for m in k.read_available() {
            match classify_line(&m) {
                Some(LogMessage::TooManyOrphans) => orphans += 1,
                Some(LogMessage::OutOfTcpMem) => mem += 1,
                _ => {}
            }
        }
        (orphans, mem)
    }

    /// New aborts since the last pass, at most `max_events`, with the
    /// global figures of this pass (tcp_check_oom's own are not readable).
    pub fn poll(
        &mut self,
        netns: &Netns,
        now_ns: u64,
        max_events: u64,
        allocated_pages: i64,
        tcp_mem: [i64; 3],
    ) -> Result<Vec<Event>> {
        let text = netns.run(|| {
            std::fs::read_to_string("/proc/thread-self/net/netstat")
                .context("cannot read /proc/net/netstat")
        })?;
        let now = parse_abort_on_memory(&text)
            .ok_or_else(|| anyhow!("no TcpExt TCPAbortOnMemory in /proc/net/netstat"))?;
        self.log_counts = self.kernel_log();
        let Some(prev) = self.last.replace(now) else {
            return Ok(vec![]);
        };
        let n = now.saturating_sub(prev).min(max_events);
        let p = payload::AbortOnMemory {
            shift: -1,
            orphans: -1,
            max_orphans: -1,
            allocated_pages,
            mem0: tcp_mem[0],
            mem1: tcp_mem[1],
            mem2: tcp_mem[2],
            source: AbortSource::Nstat as i64,
        };
        Ok((0..n)
            .map(|_| raw_event(p, now_ns, GroupKey::UNATTRIBUTED))
            .collect())
    }
}

impl Default for AbortPoll {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nstat_abort_counter() {
        let t = "TcpExt: SyncookiesSent TCPAbortOnMemory TCPMemoryPressures\nTcpExt: 0 17 3\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_abort_on_memory(t), Some(17));
    }
}
