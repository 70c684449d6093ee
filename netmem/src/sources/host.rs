//! The host facts a diagnosis needs besides per-socket figures: kernel
//! release, page size, RAM, the socket-memory and route sysctls, the boot
//! command line's `rhash_entries`, and the nstat counters that count limit
//! hits. `trace --json` writes them as its first line (`"host"`), so a
//! recording can be diagnosed after the fact.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::netns::Netns;
use super::procfs::sysctl;

/// Global sysctls (tcp_mem and tcp_max_orphans are not per namespace):
/// read from the initial namespace, where netmem runs.
pub const GLOBAL_SYSCTLS: &[&str] = &[
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.udp_mem",
    "net.ipv4.tcp_orphan_retries",
];

/// Per-namespace sysctls (tcp_rmem/tcp_wmem since 4.15), read inside the
/// traced namespace.
pub const NAMESPACE_SYSCTLS: &[&str] = &[
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_fin_timeout",
];

/// The route knobs people reach for, in both families (the diagnosis says
/// which still do anything).
pub const ROUTE_DIRS: &[&str] = &["net.ipv4.route", "net.ipv6.route"];

/// nstat (TcpExt) counters of limit hits.
pub const NSTAT: &[&str] = &[
    "TCPAbortOnMemory",
    "TCPMemoryPressures",
    "TCPMemoryPressuresChrono",
    "TCPAbortOnTimeout",
    "TCPRcvQDrop",
    "PruneCalled",
    "RcvPruned",
    "OfoPruned",
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub kernel_release: String,
    pub page_size: u64,
    pub mem_total_bytes: Option<u64>,
    /// sysctl name (dotted) → value as the kernel prints it (whitespace
    /// collapsed); absent when the file does not exist or is unreadable.
    pub sysctls: BTreeMap<String, String>,
    /// TcpExt counters at the time of reading.
    pub nstat: BTreeMap<String, u64>,
    /// `rhash_entries=` on the kernel command line, if given.
    pub rhash_entries: Option<String>,
    /// The host's name (its UTS namespace's), to tell recordings apart.
    /// Absent from recordings made before it was added.
    #[serde(default)]
    pub hostname: Option<String>,
}

fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// Every TcpExt counter of a /proc/net/netstat text.
pub fn parse_tcpext(text: &str) -> BTreeMap<String, u64> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        if !names.starts_with("TcpExt:") || !values.starts_with("TcpExt:") {
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

impl Host {
    pub fn read(netns: &Netns) -> Result<Host> {
        let mut sysctls = BTreeMap::new();
        for name in GLOBAL_SYSCTLS {
            if let Some(v) = sysctl(name) {
                sysctls.insert(name.to_string(), v);
            }
        }
        for dir in ROUTE_DIRS {
            if let Ok(rd) = std::fs::read_dir(sysctl_path(dir)) {
                for e in rd.filter_map(|e| e.ok()) {
                    let name = format!("{dir}.{}", e.file_name().to_string_lossy());
                    if name.ends_with(".flush") {
                        continue;
                    }
                    if let Some(v) = sysctl(&name) {
                        sysctls.insert(name, v);
                    }
                }
            }
        }
        let (ns_sysctls, netstat) = netns.run(|| {
            let v: Vec<(String, String)> = NAMESPACE_SYSCTLS
                .iter()
                .filter_map(|n| Some((n.to_string(), sysctl(n)?)))
                .collect();
            let netstat =
                std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
            Ok((v, netstat))
        })?;
        sysctls.extend(ns_sysctls);
        let tcpext = parse_tcpext(&netstat);
        let nstat = NSTAT
            .iter()
            .filter_map(|n| Some((n.to_string(), *tcpext.get(*n)?)))
            .collect();
        let mem_total_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| parse_mem_total(&m));
        let rhash_entries = std::fs::read_to_string("/proc/cmdline").ok().and_then(|c| {
            c.split_whitespace()
                .find_map(|w| w.strip_prefix("rhash_entries="))
                .map(String::from)
        });
        let kernel_release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(Host {
            kernel_release,
            page_size: super::procfs::page_size(),
            mem_total_bytes,
            sysctls,
            nstat,
            rhash_entries,
            hostname,
        })
    }

    /// A sysctl's whitespace-separated numbers (tcp_mem: 3 of them).
    pub fn numbers(&self, name: &str) -> Option<Vec<u64>> {
        self.sysctls
            .get(name)?
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect()
    }

    pub fn number(&self, name: &str) -> Option<u64> {
        self.numbers(name)?.first().copied()
    }

    /// (major, minor) of the kernel release, e.g. (6, 18).
    pub fn version(&self) -> Option<(u32, u32)> {
        let mut it = self.kernel_release.split(['.', '-']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }
}

/// `MemTotal:` of /proc/meminfo, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpext_and_meminfo() {
        let t =
            "TcpExt: SyncookiesSent TCPAbortOnMemory\nTcpExt: 0 17\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_tcpext(t)["TCPAbortOnMemory"], 17);
        assert_eq!(parse_mem_total("MemTotal:  1024 kB\n"), Some(1024 * 1024));
        let h = Host {
            kernel_release: "6.1.0-50-cloud-amd64".into(),
            sysctls: [("net.ipv4.tcp_mem".to_string(), "1 2 3".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(h.numbers("net.ipv4.tcp_mem"), Some(vec![1, 2, 3]));
        assert_eq!(h.version(), Some((6, 1)));
    }
}
