//! A network namespace's own TCP counters. The kernel keeps its SNMP MIBs
//! (`/proc/net/netstat`'s TcpExt, `/proc/net/snmp`'s Tcp) per namespace:
//! a listen overflow or an abort on memory in a pod is counted in the
//! pod's namespace only, so reading netmem's own namespace misses them.
//! Which counters, what each means, and the delta rule are here; reading
//! them is `sources::procfs::netns_counters`.

use std::collections::BTreeMap;

/// One counter netmem reads in each namespace.
pub struct NetnsCounter {
    /// The MIB's section: `TcpExt` or `Tcp`.
    pub section: &'static str,
    /// As the kernel (and `nstat`) names it: `ListenOverflows`. The JSON
    /// `netns` line's keys.
    pub name: &'static str,
    /// The metric's name part: `listen_overflows` in
    /// `netmem_netns_listen_overflows_total`.
    pub metric: &'static str,
    pub help: &'static str,
}

const fn c(
    section: &'static str,
    name: &'static str,
    metric: &'static str,
    help: &'static str,
) -> NetnsCounter {
    NetnsCounter {
        section,
        name,
        metric,
        help,
    }
}

/// Every counter read per namespace, written once: the reader, the JSON
/// line, the metrics and the doctor take the list from here.
pub static NETNS_COUNTERS: &[NetnsCounter] = &[
    c(
        "TcpExt",
        "ListenOverflows",
        "listen_overflows",
        "completed handshakes (or SYNs) dropped because a listener's accept queue was full",
    ),
    c(
        "TcpExt",
        "ListenDrops",
        "listen_drops",
        "segments a listener dropped, accept queue overflows included",
    ),
    c(
        "TcpExt",
        "TCPReqQFullDrop",
        "syn_queue_full_drops",
        "SYNs dropped because the SYN queue was full and syncookies were off",
    ),
    c(
        "TcpExt",
        "TCPReqQFullDoCookies",
        "syn_queue_full_cookies",
        "SYN cookies sent because the SYN queue was full",
    ),
    c(
        "TcpExt",
        "TCPAbortOnMemory",
        "aborts_on_memory",
        "connections reset by tcp_check_oom (too many orphans or tcp_mem exhausted)",
    ),
    c(
        "TcpExt",
        "TCPMemoryPressures",
        "memory_pressures",
        "times TCP entered memory pressure from a socket of this namespace",
    ),
    c(
        "TcpExt",
        "TCPRcvQDrop",
        "rcvq_drops",
        "segments dropped because the receive queue could not be charged (memory)",
    ),
    c(
        "TcpExt",
        "TCPBacklogDrop",
        "backlog_drops",
        "segments dropped because the socket's backlog was full while its owner held it",
    ),
    c(
        "TcpExt",
        "PruneCalled",
        "prune_called",
        "receive queues collapsed or pruned to fit under the buffer limit",
    ),
    c(
        "TcpExt",
        "RcvPruned",
        "rcv_pruned",
        "segments dropped from a receive queue after pruning failed",
    ),
    c(
        "TcpExt",
        "OfoPruned",
        "ofo_pruned",
        "out-of-order queues dropped to free memory",
    ),
    c(
        "TcpExt",
        "TCPAbortOnTimeout",
        "aborts_on_timeout",
        "connections aborted after too many retransmissions or probes",
    ),
    c(
        "Tcp",
        "AttemptFails",
        "attempt_fails",
        "connection attempts that failed (SYN_SENT/SYN_RECV to CLOSED or LISTEN)",
    ),
    c(
        "Tcp",
        "EstabResets",
        "estab_resets",
        "established connections reset",
    ),
];

/// `net.core.somaxconn`: per namespace, the cap on every listener's
/// backlog there; read with the counters, carried beside them.
pub const SOMAXCONN: &str = "net.core.somaxconn";

/// The counter named `name` (`ListenOverflows`).
pub fn counter(name: &str) -> Option<&'static NetnsCounter> {
    NETNS_COUNTERS.iter().find(|c| c.name == name)
}

/// One namespace's counters at a pass: the kernel's totals (since the
/// namespace was created) and what they grew by since netmem's previous
/// reading of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetnsFigures {
    /// The namespace's inode.
    pub inum: u32,
    /// By [`NetnsCounter::name`]; a counter this kernel lacks is absent.
    pub totals: BTreeMap<&'static str, u64>,
    /// None at the first reading of the namespace.
    pub delta: Option<BTreeMap<&'static str, u64>>,
    /// Its `net.core.somaxconn`, when read.
    pub somaxconn: Option<u64>,
}

impl NetnsFigures {
    /// `now` (every counter a reading found, by name), with its growth
    /// since `prev` (the previous reading of the same namespace). A
    /// counter that went down (a namespace's inode reused by a new one)
    /// counts from 0.
    pub fn since(
        inum: u32,
        now: &BTreeMap<String, u64>,
        prev: Option<&BTreeMap<&'static str, u64>>,
    ) -> NetnsFigures {
        let totals: BTreeMap<&'static str, u64> = NETNS_COUNTERS
            .iter()
            .filter_map(|c| Some((c.name, *now.get(c.name)?)))
            .collect();
        let delta = prev.map(|p| {
            totals
                .iter()
                .map(|(k, v)| {
                    let before = p.get(k).copied().unwrap_or(0);
                    (*k, if *v >= before { v - before } else { *v })
                })
                .collect()
        });
        NetnsFigures {
            inum,
            totals,
            delta,
            somaxconn: now.get(SOMAXCONN).copied(),
        }
    }

    /// The growth of counter `name` since the previous reading (0 at the
    /// first).
    pub fn grew(&self, name: &str) -> u64 {
        self.delta
            .as_ref()
            .and_then(|d| d.get(name).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_since_the_previous_reading() {
        let read = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let first = NetnsFigures::since(7, &read(&[("ListenOverflows", 3), ("Junk", 9)]), None);
        assert_eq!(first.totals.len(), 1, "only the listed counters");
        assert_eq!(first.delta, None);
        assert_eq!(first.grew("ListenOverflows"), 0);
        let second = NetnsFigures::since(
            7,
            &read(&[("ListenOverflows", 10), ("ListenDrops", 4)]),
            Some(&first.totals),
        );
        assert_eq!(second.grew("ListenOverflows"), 7);
        assert_eq!(second.grew("ListenDrops"), 4, "new counter: from 0");
        let reused = NetnsFigures::since(7, &read(&[("ListenOverflows", 2)]), Some(&second.totals));
        assert_eq!(
            reused.grew("ListenOverflows"),
            2,
            "went down: counts from 0"
        );
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in NETNS_COUNTERS {
            assert!(seen.insert(c.name) && seen.insert(c.metric), "{}", c.name);
        }
    }
}
