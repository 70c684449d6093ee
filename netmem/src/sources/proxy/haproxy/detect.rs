//! Running HAProxies: found by name, believed only as `trust.rs` allows.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::HaProxy;
use crate::sources::proxy::{trust, Detection};

/// Running HAProxies in the traced namespaces (`netns`, or every one with
/// `all`), one per master: a worker whose parent is HAProxy is its
/// master's. Each is read through its command line's `-f` paths, and the
/// configuration's stats socket. A process is only named `haproxy` by
/// itself: it is believed when its executable is HAProxy as root installed
/// it ([`trust::check_executable`]), and refused otherwise.
pub fn detect(netns: u32, all: bool) -> Detection {
    let mut found = Detection::default();
    let hint = "netmem reads a HAProxy it finds only when its executable is a root-owned file named haproxy that no one else can write; to read another, name its stats socket or configuration with --haproxy";
    for m in trust::masters("haproxy", "HAProxy", hint, netns, all, &mut found.refused) {
        let (pid, started, inum, cmdline) = (m.pid, m.started, m.netns, m.cmdline);
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let mut configs = Vec::new();
        let mut it = args.iter().skip(1);
        let mut base = cwd.clone();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-f" => {
                    if let Some(p) = it.next() {
                        configs.push(base.join(p));
                    }
                }
                "-C" => {
                    if let Some(d) = it.next() {
                        base = cwd.join(d);
                    }
                }
                _ => {}
            }
        }
        if configs.is_empty() {
            log::debug!("haproxy pid {pid} has no -f configuration; give --haproxy");
            continue;
        }
        let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino() as u32);
        found.proxies.push(Box::new(HaProxy {
            explicit: Vec::new(),
            socket: None,
            configs,
            pid: Some(pid),
            started,
            netns: inum,
            enter: (own.ok() != Some(inum)).then(|| PathBuf::from(format!("/proc/{pid}/ns/net"))),
            config: None,
            instance: None,
            api_retry_at: None,
            once: false,
        }));
    }
    found
}
