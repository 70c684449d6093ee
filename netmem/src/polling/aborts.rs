//! tcp_check_oom's polling tier: nstat's TCPAbortOnMemory, diffed between
//! passes, and the kernel log lines that say which limit fired.

use netmem_common::{payload, AbortSource, Event, GroupKey};

use super::raw_event;
use crate::model::netns::NetnsFigures;
use crate::sources::kernel_log::{classify_line, Kmsg, LogMessage};

/// TcpExt's TCPAbortOnMemory from a /proc/net/netstat text.
pub fn parse_abort_on_memory(text: &str) -> Option<u64> {
    crate::sources::host::parse_tcpext(text)
        .get("TCPAbortOnMemory")
        .copied()
}

/// Aborts counted by the kernel (nstat) since the last pass, in each
/// namespace read (the counter is per namespace: with `--netns all` an
/// abort in a pod is counted in the pod's); the kernel log, when
/// readable, says which limit fired.
pub struct AbortPoll {
    kmsg: Option<Kmsg>,
    /// What the kernel log said during the last pass: (too many orphaned
    /// sockets, out of memory -- consider tuning tcp_mem). The messages
    /// are rate-limited, so these are lower bounds.
    pub log_counts: (u64, u64),
}

impl AbortPoll {
    pub fn new() -> AbortPoll {
        AbortPoll {
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

    /// New aborts since the last pass, from each namespace's counters as
    /// the census read them (`spaces`: TCPAbortOnMemory's growth; none at
    /// a namespace's first reading), each charged to that namespace, at
    /// most `max_events`, with the global figures of this pass
    /// (tcp_check_oom's own are not readable).
    pub fn poll(
        &mut self,
        spaces: &[NetnsFigures],
        now_ns: u64,
        max_events: u64,
        allocated_pages: i64,
        tcp_mem: [i64; 3],
    ) -> Vec<Event> {
        self.log_counts = self.kernel_log();
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
        let mut left = max_events;
        let mut out = Vec::new();
        for f in spaces {
            let n = f.grew("TCPAbortOnMemory").min(left);
            left -= n;
            let key = GroupKey::UNATTRIBUTED.in_netns(f.inum);
            out.extend((0..n).map(|_| raw_event(p, now_ns, key)));
        }
        out
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
    fn aborts_are_charged_to_their_namespace() {
        let read = |n: u64| -> std::collections::BTreeMap<String, u64> {
            [("TCPAbortOnMemory".to_string(), n)].into()
        };
        let before = NetnsFigures::since(5, &read(10), None);
        let quiet = NetnsFigures::since(6, &read(3), None);
        let spaces = [
            NetnsFigures::since(5, &read(13), Some(&before.totals)),
            NetnsFigures::since(6, &read(3), Some(&quiet.totals)),
        ];
        let mut p = AbortPoll {
            kmsg: None,
            log_counts: (0, 0),
        };
        let ev = p.poll(&spaces, 1, 100, 7, [1, 2, 3]);
        assert_eq!(ev.len(), 3);
        assert!(
            ev.iter().all(|e| e.group.netns == 5),
            "charged to namespace 5"
        );
        assert_eq!(
            p.poll(&spaces, 1, 2, 7, [1, 2, 3]).len(),
            2,
            "at most max_events"
        );
        assert!(
            p.poll(&[before], 1, 100, 7, [1, 2, 3]).is_empty(),
            "first reading"
        );
    }

    #[test]
    fn nstat_abort_counter() {
        let t = "TcpExt: SyncookiesSent TCPAbortOnMemory TCPMemoryPressures\nTcpExt: 0 17 3\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_abort_on_memory(t), Some(17));
    }
}
