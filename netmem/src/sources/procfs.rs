//! Global figures the kernel exposes in procfs: the limits (tcp_mem,
//! tcp_max_orphans, udp_mem) and the current usage (/proc/net/sockstat and
//! sockstat6).

use std::collections::BTreeMap;

use anyhow::{anyhow, Context as _, Result};

pub use crate::model::types::Context;

impl Context {
    /// Usage of `netns` (sockstat's inuse and tw are per namespace) and the
    /// global limits as this process sees them.
    pub fn read(netns: &super::netns::Netns) -> Result<Context> {
        Ok(Context::read_with_counters(netns, false)?.0)
    }

    /// [`Context::read`], and with `counters` the namespace's TCP
    /// counters (see [`Context::usage_and_counters`]).
    pub fn read_with_counters(
        netns: &super::netns::Netns,
        counters: bool,
    ) -> Result<(Context, BTreeMap<String, u64>)> {
        let (mut ctx, mibs) = Context::usage_and_counters(netns, counters)?;
        // tcp_mem, udp_mem and tcp_max_orphans are global, and the kernel
        // only shows them in the initial network namespace: run netmem
        // there (with --netns to look into another). Elsewhere they are
        // reported as unknown (null).
        ctx.tcp_mem_pages = sysctl("net.ipv4.tcp_mem")
            .map(|s| parse_triple(&s))
            .transpose()?;
        ctx.udp_mem_pages = sysctl("net.ipv4.udp_mem")
            .map(|s| parse_triple(&s))
            .transpose()?;
        ctx.max_orphans = sysctl("net.ipv4.tcp_max_orphans")
            .map(|s| s.trim().parse().context("tcp_max_orphans is not a number"))
            .transpose()?;
        ctx.page_size = page_size();
        Ok((ctx, mibs))
    }

    /// Only the namespace's own usage (sockstat and sockstat6).
    pub fn usage(netns: &super::netns::Netns) -> Result<Context> {
        Ok(Context::usage_and_counters(netns, false)?.0)
    }

    /// The namespace's own usage, and with `counters` its TCP counters
    /// (TcpExt and Tcp, every one the kernel shows, by name; empty
    /// without): one entry into the namespace for both.
    pub fn usage_and_counters(
        netns: &super::netns::Netns,
        counters: bool,
    ) -> Result<(Context, BTreeMap<String, u64>)> {
        // thread-self: /proc/net follows the thread group leader, not the
        // worker thread that entered the namespace.
        let (sockstat, sockstat6, mibs) = netns.run(|| {
            let mibs = if counters {
                let mut m = mib_counters(
                    &std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default(),
                    &std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default(),
                );
                // Per namespace, and what caps every listener's backlog
                // in it: the accept-queue advice needs the namespace's own.
                if let Some(v) = sysctl(SOMAXCONN).and_then(|v| v.parse().ok()) {
                    m.insert(SOMAXCONN.to_string(), v);
                }
                m
            } else {
                BTreeMap::new()
            };
            Ok((
                read_file("/proc/thread-self/net/sockstat")?,
                // Absent when IPv6 is disabled.
                std::fs::read_to_string("/proc/thread-self/net/sockstat6").unwrap_or_default(),
                mibs,
            ))
        })?;
        let mut ctx = parse_sockstat(&sockstat)?;
        let v6 = sockstat_fields(&sockstat6);
        ctx.tcp6_inuse = v6.get(&("TCP6", "inuse")).copied().unwrap_or(0);
        ctx.udp_inuse += v6.get(&("UDP6", "inuse")).copied().unwrap_or(0);
        Ok((ctx, mibs))
    }
}

/// The sysctl a namespace's counters reading carries beside them.
pub use crate::model::netns::SOMAXCONN;

/// Every counter of `section` (`TcpExt`, `Tcp`) in a /proc/net/netstat or
/// /proc/net/snmp text, where each section is a line of names followed by
/// a line of values, both starting `SECTION:`. Values that are not
/// numbers (negative ones, such as Tcp's MaxConn -1) are left out.
pub fn parse_mib(text: &str, section: &str) -> BTreeMap<String, u64> {
    let head = format!("{section}:");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for pair in lines.windows(2) {
        let [names, values] = pair else { continue };
        if names.split_whitespace().next() != Some(&head)
            || values.split_whitespace().next() != Some(&head)
            || names
                .split_whitespace()
                .nth(1)
                .is_some_and(|w| w.parse::<i64>().is_ok())
        {
            continue;
        }
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if let Ok(v) = v.parse() {
                out.insert(n.to_string(), v);
            }
        }
    }
    out
}

/// The counters of [`crate::model::netns::NETNS_COUNTERS`]' sections from
/// a namespace's netstat and snmp texts.
pub fn mib_counters(netstat: &str, snmp: &str) -> BTreeMap<String, u64> {
    let mut out = parse_mib(netstat, "TcpExt");
    out.extend(parse_mib(snmp, "Tcp"));
    out
}

/// Which socket tables of a namespace have anything in them, from its
/// sockstat figures (per namespace): a dump of an empty one still walks the
/// kernel's whole hash table (TIME_WAIT sockets included, and shared by
/// every namespace), so a pass skips them. TIME_WAIT sockets only matter
/// when `time_wait` says they are counted; sockstat does not split them by
/// family, so any then makes both TCP tables worth dumping; nor does
/// `udp_inuse`, which covers both UDP tables.
pub fn presence(usage: &Context, time_wait: bool) -> super::sockdiag::Presence {
    use super::sockdiag::{Families, Presence};
    let tw = time_wait && usage.tw > 0;
    let udp = usage.udp_inuse > 0;
    Presence {
        tcp: Families {
            v4: tw || usage.sockets_inuse > 0,
            v6: tw || usage.tcp6_inuse > 0,
        },
        udp: Families { v4: udp, v6: udp },
    }
}

/// A sysctl by its dotted name (`net.ipv4.tcp_mem`), whitespace
/// collapsed; None when the file does not exist here or is unreadable.
pub fn sysctl(name: &str) -> Option<String> {
    let v = std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()?;
    Some(v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn read_file(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

pub fn parse_triple(s: &str) -> Result<[u64; 3]> {
    let v: Vec<u64> = s
        .split_whitespace()
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .context("tcp_mem is not three numbers")?;
    v.try_into()
        .map_err(|_| anyhow!("tcp_mem is not three numbers"))
}

/// Every `PROTO: key value ...` pair of a sockstat text; values that are
/// not numbers are left out.
pub fn sockstat_fields(s: &str) -> std::collections::HashMap<(&str, &str), u64> {
    let mut out = std::collections::HashMap::new();
    for line in s.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let mut it = rest.split_whitespace();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let Ok(v) = v.parse() {
                out.insert((proto.trim(), k), v);
            }
        }
    }
    out
}

/// Parses /proc/net/sockstat: the `TCP:` line
/// (`TCP: inuse 5 orphan 0 tw 2 alloc 9 mem 3`), required, and `UDP:`.
pub fn parse_sockstat(s: &str) -> Result<Context> {
    if !s.lines().any(|l| l.starts_with("TCP:")) {
        return Err(anyhow!("/proc/net/sockstat has no TCP line"));
    }
    let f = sockstat_fields(s);
    let get = |p: &str, k: &str| f.get(&(p, k)).copied().unwrap_or(0);
    Ok(Context {
        sockets_inuse: get("TCP", "inuse"),
        orphans: get("TCP", "orphan"),
        tw: get("TCP", "tw"),
        memory_allocated_pages: get("TCP", "mem"),
        udp_inuse: get("UDP", "inuse"),
        udp_memory_allocated_pages: get("UDP", "mem"),
        ..Context::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_tcp_line() {
        let s = "sockets: used 120\nTCP: inuse 5 orphan 7 tw 2 alloc 9 mem 3\nUDP: inuse 1 mem 4\nFRAG: inuse 0 memory 0\n";
        let c = parse_sockstat(s).unwrap();
        assert_eq!(
            (c.sockets_inuse, c.orphans, c.tw, c.memory_allocated_pages),
            (5, 7, 2, 3)
        );
        assert_eq!((c.udp_inuse, c.udp_memory_allocated_pages), (1, 4));
        let v6 = sockstat_fields("TCP6: inuse 3\nUDP6: inuse 2\n");
        assert_eq!(v6[&("TCP6", "inuse")], 3);
    }

    #[test]
    fn mib_sections() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 15\nIpExt: InNoRoutes\nIpExt: 0\n";
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm MaxConn AttemptFails EstabResets\nTcp: 1 -1 4 5\nUdp: InDatagrams\nUdp: 9\n";
        let m = mib_counters(netstat, snmp);
        assert_eq!(m["ListenOverflows"], 12);
        assert_eq!(m["ListenDrops"], 15);
        assert_eq!(m["AttemptFails"], 4);
        assert!(!m.contains_key("MaxConn"), "negative: left out");
        assert!(!m.contains_key("InDatagrams"));
        // A values line is never read as names.
        assert!(parse_mib("TcpExt: 1 2\nTcpExt: 3 4\n", "TcpExt").is_empty());
        assert!(mib_counters("garbage", "").is_empty());
    }

    #[test]
    fn sockstat_without_tcp_is_an_error() {
        assert!(parse_sockstat("sockets: used 1\n").is_err());
    }

    #[test]
    fn tcp_mem_triple() {
        assert_eq!(
            parse_triple("188760\t251683\t377520\n").unwrap(),
            [188760, 251683, 377520]
        );
        assert!(parse_triple("1 2").is_err());
        assert!(parse_triple("a b c").is_err());
    }
}
