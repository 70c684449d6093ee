//! The host facts a diagnosis needs besides per-socket figures: kernel
//! release, page size, RAM, the socket-memory and route sysctls, the boot
//! command line's `rhash_entries`, and the nstat counters that count limit
//! hits. `trace --json` writes them as its first line (`"host"`), so a
//! recording can be diagnosed after the fact.

use std::collections::BTreeMap;

use anyhow::Result;

// The host line's fields are the contract's (one typed schema); reading
// them from the system is this file's.
pub use crate::contract::host::Host;

use super::netns::Netns;
use super::procfs::sysctl;
use crate::format::printable;

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
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
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

/// What a trace covers, as its host line says it.
pub struct Traced<'a> {
    pub netns: &'a Netns,
    pub all_netns: bool,
    pub group_by: crate::model::owner::GroupBy,
    pub owners: bool,
    pub interval: std::time::Duration,
}

fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// Every TcpExt counter of a /proc/net/netstat text.
pub fn parse_tcpext(text: &str) -> BTreeMap<String, u64> {
    super::procfs::parse_mib(text, "TcpExt")
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
            netmem_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            ..Default::default()
        })
    }

    /// The host line of a trace: the machine and what is traced.
    pub fn of_trace(t: Traced) -> Result<Host> {
        use clap::ValueEnum as _;
        let (netns, netns_inode) = if t.all_netns {
            ("all".to_string(), None)
        } else {
            let name = match t.netns.path() {
                Some(_) => t.netns.label().to_string(),
                None => super::netns::OWN_NAME.to_string(),
            };
            (name, Some(t.netns.inum()?))
        };
        Ok(Host {
            netns: Some(netns),
            netns_inode,
            group_by: t
                .group_by
                .to_possible_value()
                .map(|v| v.get_name().to_string()),
            owners: Some(t.owners),
            interval_ms: Some(t.interval.as_millis() as u64),
            ..Host::read(t.netns)?
        })
    }

    /// How it was traced, for a header: `--group-by port, --owners,
    /// interval 1s, netmem 0.1.0` (the namespace is `netns`); None for a
    /// recording made before the host line said it.
    pub fn traced_with(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(g) = &self.group_by {
            parts.push(format!("--group-by {}", printable(g)));
        }
        if self.owners == Some(true) {
            parts.push("--owners".into());
        }
        if let Some(ms) = self.interval_ms {
            parts.push(format!(
                "interval {}",
                humantime::format_duration(std::time::Duration::from_millis(ms))
            ));
        }
        if let Some(v) = &self.netmem_version {
            parts.push(format!("netmem {}", printable(v)));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// The traced namespace as the host line names it, for a terminal (a
    /// recording is read from anywhere: its text may hold control
    /// characters).
    pub fn traced_netns(&self) -> Option<String> {
        self.netns.as_deref().map(|n| printable(n).into_owned())
    }

    /// How two recordings differ in what they traced: the namespace or the
    /// grouping (`--group-by`, `--owners`), each as "what: A vs B". Only
    /// recordings that both say it are compared.
    pub fn traced_differences(&self, other: &Host) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |what: &str, a: Option<String>, b: Option<String>| {
            if let (Some(a), Some(b)) = (a, b) {
                if a != b {
                    out.push(format!("{what}: {} vs {}", printable(&a), printable(&b)));
                }
            }
        };
        cmp("namespace", self.netns.clone(), other.netns.clone());
        cmp("--group-by", self.group_by.clone(), other.group_by.clone());
        cmp(
            "--owners",
            self.owners.map(|o| o.to_string()),
            other.owners.map(|o| o.to_string()),
        );
        out
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

    #[test]
    fn what_was_traced() {
        let a = Host {
            netns: Some("rig".into()),
            group_by: Some("port".into()),
            owners: Some(false),
            interval_ms: Some(500),
            netmem_version: Some("0.1.0".into()),
            ..Default::default()
        };
        assert_eq!(
            a.traced_with().as_deref(),
            Some("--group-by port, interval 500ms, netmem 0.1.0")
        );
        assert!(a.traced_differences(&a).is_empty());
        let b = Host {
            netns: Some("shop\x1b[2J".into()),
            group_by: Some("process".into()),
            owners: Some(true),
            ..a.clone()
        };
        assert_eq!(
            a.traced_differences(&b),
            [
                "namespace: rig vs shop\\u{1b}[2J",
                "--group-by: port vs process",
                "--owners: false vs true"
            ]
        );
        // A recording made before the host line said it: nothing to
        // compare, nothing claimed.
        assert!(a.traced_differences(&Host::default()).is_empty());
        assert_eq!(Host::default().traced_with(), None);
    }
}
