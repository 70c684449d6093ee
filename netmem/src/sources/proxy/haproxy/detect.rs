//! Running HAProxies: found by name, believed only as `trust.rs` allows.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{HaProxy, PROC_MAX_BYTES};
use crate::sources::proxy::{trust, Detection};

/// Running HAProxies in the traced namespaces (`netns`, or every one with
/// `all`), one per master: a worker whose parent is HAProxy is its
/// master's. Each is read through its command line's `-f` paths, and the
/// configuration's stats socket. A process is only named `haproxy` by
/// itself: it is believed when its executable is HAProxy as root installed
/// it ([`trust::check_executable`]), and refused otherwise.
pub fn detect(netns: u32, all: bool) -> Detection {
    let mut found = Detection::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    let comm = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default()
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        if comm(pid) != "haproxy" {
            continue;
        }
        let ppid = trust::stat_field(pid, trust::STAT_PPID);
        if ppid.is_some_and(|p| comm(p as u32) == "haproxy") {
            continue;
        }
        let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        let inum = ns.ino() as u32;
        if !all && inum != netns {
            continue;
        }
        let Some(started) = trust::stat_field(pid, trust::STAT_START) else {
            continue;
        };
        if let Some(why) = trust::check_executable(pid, "haproxy", "HAProxy") {
            found.refused.push((
                pid,
                started,
                format!(
                    "haproxy pid {pid}: not trusted: {why}. netmem reads a HAProxy it finds only when its executable is a root-owned file named haproxy that no one else can write; to read another, name its stats socket or configuration with --haproxy"
                ),
            ));
            continue;
        }
        let cmdline = trust::read_capped(
            Path::new(&format!("/proc/{pid}/cmdline")),
            PROC_MAX_BYTES,
            "netmem's cap for a command line",
        );
        let cmdline = match cmdline {
            Ok(c) => c,
            Err(e) => {
                log::debug!("haproxy pid {pid}: {e:#}");
                continue;
            }
        };
        // Still the process whose executable was checked.
        if trust::stat_field(pid, trust::STAT_START) != Some(started) {
            continue;
        }
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
