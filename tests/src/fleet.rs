//! A fleet on one machine: three "hosts", each a network namespace of its
//! own with its own per-namespace sysctls and load, each watched by its
//! own `netmem serve --netns NS`, and a real Prometheus scraping the three
//! under distinct `instance` names (and, if given, evaluating a rule
//! file). What `doctor --prometheus`, the fleet dashboard and the alert
//! rules are tested against.
//!
//! The hosts (their load keeps until the fleet is dropped):
//! - `orphans`: servers that closed on clients that never read: orphans
//!   holding their send queues (listen group `listen:PORT_ORPHANS`);
//! - `queued`: servers writing to clients that never read: memory queued
//!   on established sockets, no orphans (`listen:PORT_QUEUED`);
//! - `calm`: one idle connection, nothing queued (`listen:PORT_CALM`).
//!
//! Each namespace gets its own tcp_rmem/tcp_wmem and somaxconn, so a rule
//! reading a per-namespace sysctl has something to tell apart. Nothing
//! global is changed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::running::Held;
use crate::serve::{poll, Prometheus, Serve};
use crate::{run_ok, Netns};

pub const PORT_ORPHANS: u16 = 18410;
pub const PORT_QUEUED: u16 = 18420;
pub const PORT_CALM: u16 = 18430;

/// One host of the fleet.
pub struct Host {
    /// Its `instance` label in Prometheus.
    pub instance: &'static str,
    pub ns: Netns,
    pub serve: Serve,
    /// The listen group its load makes (`listen:PORT`).
    pub group: String,
    /// `net.ipv4.tcp_wmem` as set in its namespace.
    pub tcp_wmem: &'static str,
    _load: Held,
}

pub struct Fleet {
    pub hosts: Vec<Host>,
    pub prometheus: Prometheus,
}

/// (instance, load, port, tcp_rmem, tcp_wmem, somaxconn)
const HOSTS: [(&str, &str, u16, &str, &str, &str); 3] = [
    (
        "host-orphans",
        "orphans",
        PORT_ORPHANS,
        "4096 131072 6291456",
        "4096 16384 4194304",
        "4096",
    ),
    (
        "host-queued",
        "stuck-readers",
        PORT_QUEUED,
        "4096 262144 8388608",
        "4096 65536 8388608",
        "1024",
    ),
    (
        "host-calm",
        "idle",
        PORT_CALM,
        "4096 87380 6291456",
        "4096 16384 4194304",
        "512",
    ),
];

impl Fleet {
    /// Starts the three hosts (`serve_args` added to each serve's) and a
    /// Prometheus scraping them every second, and waits until Prometheus
    /// has every host's load group.
    pub fn start(serve_args: &[&str], rules: Option<&std::path::Path>) -> Fleet {
        let mut hosts = Vec::new();
        for (instance, load, port, rmem, wmem, somaxconn) in HOSTS {
            let ns = Netns::new(instance.trim_start_matches("host-"));
            for (k, v) in [
                ("net.ipv4.tcp_rmem", rmem),
                ("net.ipv4.tcp_wmem", wmem),
                ("net.core.somaxconn", somaxconn),
            ] {
                run_ok(ns.cmd("sysctl").args(["-q", "-w", &format!("{k}={v}")]));
            }
            let port_s = port.to_string();
            let load = match load {
                "idle" => ns.load(&["idle", "--port", &port_s, "--conns", "1"]),
                _ => ns.load(&[load, "--port", &port_s, "--conns", "8"]),
            };
            let mut args = vec!["--netns", ns.name.as_str(), "--interval", "1s"];
            args.extend_from_slice(serve_args);
            let serve = Serve::start(&args);
            hosts.push(Host {
                instance,
                ns,
                serve,
                group: format!("listen:{port}"),
                tcp_wmem: wmem,
                _load: load,
            });
        }
        let targets: Vec<(SocketAddr, &str)> =
            hosts.iter().map(|h| (h.serve.addr, h.instance)).collect();
        let prometheus = Prometheus::start_targets(&targets, rules);
        let fleet = Fleet { hosts, prometheus };
        fleet.wait_for_groups();
        fleet
    }

    /// Until Prometheus holds each host's load group, from its own
    /// instance (60 s at most).
    fn wait_for_groups(&self) {
        poll(Duration::from_secs(60), || {
            for h in &self.hosts {
                let q = format!(
                    "netmem_group_sockets{{instance=\"{}\",group=\"{}\"}}",
                    h.instance, h.group
                );
                if self.prometheus.query(&q, None).is_empty() {
                    return Err(format!("no {q} yet"));
                }
            }
            Ok(())
        });
    }

    /// The Prometheus HTTP API's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.prometheus.addr)
    }

    pub fn host(&self, instance: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.instance == instance)
            .unwrap_or_else(|| panic!("no host {instance}"))
    }
}
