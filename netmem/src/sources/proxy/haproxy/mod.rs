//! HAProxy: its names and buffer settings, from the runtime API (the
//! `stats socket`) and from its configuration, whichever can be read.
//!
//! - Servers come from `show servers state` at every pass, so servers that
//!   change address (`set server ... addr`, DNS, `server-template`) are
//!   followed within one interval; from the configuration's `server` lines
//!   (numeric addresses only) when the API cannot be read.
//! - Frontends come from `show fd` (each listening socket's frontend and
//!   port, as bound), read again only when the process changes (`show
//!   info`'s Pid and start time: HAProxy's listeners change only on a
//!   reload), since on a busy proxy it lists every connection; from the
//!   configuration's `bind` lines otherwise.
//! - `tune.bufsize` from `show pools` (the `buffer` pool's size, what the
//!   running binary really uses), else the configuration; the per-side
//!   `tune.rcvbuf.*`/`tune.sndbuf.*` only from the configuration.
//!
//! The runtime API is read over a UNIX stats socket, or a TCP one
//! (`stats socket ipv4@127.0.0.1:9999`, common in containers), which is
//! reached from inside HAProxy's own network namespace.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};

use super::trust::{self, Owner, Refused};
use super::{Proxy, Reading};
use crate::model::proxy::{Knob, Listener, Meaning, ProxyMap, Server, Side, Tune};

mod addr;
mod answers;
mod api;
mod config;
mod detect;
#[cfg(test)]
mod tests;

use answers::{parse_buffer_pool, parse_servers_state, parse_show_fd};
use api::{ask, API_RETRY, SHOW_FD, SHOW_INFO, SHOW_POOLS, SHOW_SERVERS_STATE};
pub use api::{Api, Reach};
pub use config::Config;
use config::{parse_config, read_configuration, Env, FileSig};
pub use detect::detect;

/// HAProxy's buffer settings, as its `global` section names them. The
/// configuration parser reads these keywords, and the doctor advises them.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "tune.bufsize",
        meaning: Meaning::ProxyBuffer,
    },
    Knob {
        name: "tune.rcvbuf.client",
        meaning: Meaning::Rcvbuf(Side::Client),
    },
    Knob {
        name: "tune.sndbuf.client",
        meaning: Meaning::Sndbuf(Side::Client),
    },
    Knob {
        name: "tune.rcvbuf.server",
        meaning: Meaning::Rcvbuf(Side::Server),
    },
    Knob {
        name: "tune.sndbuf.server",
        meaning: Meaning::Sndbuf(Side::Server),
    },
];

pub(super) use crate::sources::proxy::trust::PROC_MAX_BYTES;

/// One HAProxy: a stats socket, configuration files, or both.
pub struct HaProxy {
    /// `--haproxy PATH...` as given: sorted into `socket` and `configs` at
    /// each read, so a socket that appears later (HAProxy started after
    /// netmem) is used.
    explicit: Vec<PathBuf>,
    /// `--haproxy SOCKET|ADDR:PORT`, or found in the configuration.
    socket: Option<Api>,
    /// `-f` paths: files, or directories of `*.cfg`.
    configs: Vec<PathBuf>,
    /// A detected process: its paths are read through its own root
    /// (/proc/PID/root), so a containerised HAProxy is read as it sees them.
    pid: Option<u32>,
    /// The detected process's start time, as checked: a pid that is
    /// another process's by now is not read.
    started: u64,
    netns: u32,
    /// The namespace file to enter for a TCP stats socket (None: netmem's
    /// own namespace is HAProxy's).
    enter: Option<PathBuf>,
    /// The configuration as last parsed, and the files it came from.
    config: Option<(Vec<FileSig>, Config)>,
    instance: Option<Instance>,
    /// The runtime API failed: not tried again before this.
    api_retry_at: Option<(Instant, String)>,
    /// Read once (a snapshot, a doctor's reading): a missing path is not
    /// looked for again, so its problem promises nothing.
    once: bool,
}

/// One HAProxy process as `show info` named it (Pid, Start_time_sec), and
/// what the reads done once per process (`show fd`, `show pools`) gave.
struct Instance {
    id: (String, String),
    listeners: Vec<Listener>,
    bufsize: Option<u64>,
}

impl HaProxy {
    /// `--haproxy PATH...`: sockets and configurations of one HAProxy,
    /// naming the sockets of the namespace `netns` (entered through
    /// `enter` for a TCP stats socket).
    /// `once`: read a single time (see [`super::Proxies::new`]).
    pub fn explicit(paths: &[PathBuf], netns: u32, enter: Option<PathBuf>, once: bool) -> HaProxy {
        HaProxy {
            explicit: paths.to_vec(),
            socket: None,
            configs: Vec::new(),
            pid: None,
            started: 0,
            netns,
            enter,
            config: None,
            instance: None,
            api_retry_at: None,
            once,
        }
    }

    /// A path as the process sees it: through its root, so a
    /// containerised HAProxy is read as it sees its files. (A netmem that
    /// may not look into the process's root, not being root, reads the
    /// path as it sees it, with no more than its own rights.)
    fn resolve(&self, p: &Path) -> PathBuf {
        match self.pid {
            Some(pid) if p.is_absolute() => {
                let root = PathBuf::from(format!("/proc/{pid}/root"));
                if std::fs::read_link(&root).is_ok() {
                    root.join(p.strip_prefix("/").unwrap_or(p))
                } else {
                    p.to_path_buf()
                }
            }
            _ => p.to_path_buf(),
        }
    }

    /// A detected HAProxy's owner now, whose rights its files and UNIX
    /// stats socket are read with; None for `--haproxy` (the operator's
    /// own paths). An error when the process checked at detection is gone
    /// (its pid may be another process's by now).
    fn owner(&self) -> Result<Option<Owner>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        match Owner::of(pid) {
            Ok(o) if o.start == self.started => Ok(Some(o)),
            _ => bail!(
                "haproxy pid {pid} is no longer running; running HAProxies are looked for again within {} s",
                super::REDETECT.as_secs()
            ),
        }
    }

    /// The configuration, parsed again only when a file changed.
    fn load_config(&mut self, owner: Option<&Owner>) -> Result<Option<Config>> {
        if self.configs.is_empty() {
            return Ok(None);
        }
        let paths: Vec<(PathBuf, PathBuf)> = self
            .configs
            .iter()
            .map(|c| (c.clone(), self.resolve(c)))
            .collect();
        let before = self.config.as_ref().map(|(s, _)| s.as_slice());
        let (sig, text) = trust::as_owner(owner, || read_configuration(&paths, before, owner))??;
        let Some(text) = text else {
            return Ok(self.config.as_ref().map(|(_, c)| c.clone()));
        };
        // `"${VAR}"` is expanded from the environment HAProxy started with.
        let env = self.pid.and_then(|pid| {
            let raw = trust::read_capped(
                Path::new(&format!("/proc/{pid}/environ")),
                PROC_MAX_BYTES,
                "netmem's cap for a process's environment",
            )
            .map_err(|e| log::debug!("haproxy pid {pid}: {e:#}"))
            .ok()?;
            Some(
                raw.split(|b| *b == 0)
                    .filter_map(|kv| {
                        let kv = String::from_utf8_lossy(kv);
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_string(), v.to_string()))
                    })
                    .collect::<Env>(),
            )
        });
        let c = parse_config(&text, env.as_ref());
        self.config = Some((sig, c.clone()));
        Ok(Some(c))
    }

    /// A stats socket as netmem reaches it: a UNIX path through the
    /// process's root; a TCP address from inside its namespace.
    fn reach(&self, api: &Api) -> Reach {
        match api {
            Api::Unix(p) => Reach::Unix(self.resolve(p)),
            Api::Tcp(a) => Reach::Tcp(*a, self.enter.clone()),
        }
    }

    /// A stats socket that may be there: a UNIX one whose file exists, or
    /// any TCP one (whether it answers is found by asking).
    fn present(&self, api: &Api) -> bool {
        match api {
            Api::Unix(p) => self.resolve(p).exists(),
            Api::Tcp(_) => true,
        }
    }

    /// Servers now, and the listeners and buffer size of this process.
    fn runtime(
        &mut self,
        socket: &Api,
        owner: Option<&Owner>,
    ) -> Result<(Vec<Server>, Vec<Listener>, Option<u64>)> {
        let path = self.reach(socket);
        let mut answers = ask(&path, owner, &[&SHOW_INFO, &SHOW_SERVERS_STATE])?;
        let servers = parse_servers_state(&answers.pop().unwrap_or_default())?;
        let info = answers.pop().unwrap_or_default();
        let field = |k: &str| {
            info.lines()
                .find_map(|l| {
                    l.strip_prefix(k)?
                        .strip_prefix(':')
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let id = (field("Pid"), field("Start_time_sec"));
        match &self.instance {
            Some(i) if i.id == id && !id.1.is_empty() => {
                Ok((servers, i.listeners.clone(), i.bufsize))
            }
            _ => {
                // `show fd` needs level admin; without it, frontends come
                // from the configuration.
                let (listeners, bufsize) = match ask(&path, owner, &[&SHOW_FD, &SHOW_POOLS]) {
                    Ok(mut a) => {
                        let pools = a.pop().unwrap_or_default();
                        let fds = a.pop().unwrap_or_default();
                        (parse_show_fd(&fds), parse_buffer_pool(&pools))
                    }
                    Err(e) => {
                        log::debug!("show fd: {e:#}");
                        (Vec::new(), None)
                    }
                };
                self.instance = Some(Instance {
                    id,
                    listeners: listeners.clone(),
                    bufsize,
                });
                Ok((servers, listeners, bufsize))
            }
        }
    }
}

fn joined(paths: &[PathBuf], sep: &str) -> String {
    let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    p.join(sep)
}

impl Proxy for HaProxy {
    fn kind(&self) -> &'static str {
        "haproxy"
    }

    fn source(&self) -> String {
        if !self.explicit.is_empty() {
            return format!("--haproxy {}", joined(&self.explicit, " "));
        }
        let mut parts = Vec::new();
        if let Some(pid) = self.pid {
            parts.push(format!("pid {pid}"));
        }
        if let Some(s) = &self.socket {
            parts.push(format!("stats socket {s}"));
        }
        if !self.configs.is_empty() {
            parts.push(format!("config {}", joined(&self.configs, ", ")));
        }
        parts.join(", ")
    }

    fn netns(&self) -> u32 {
        self.netns
    }

    fn read(&mut self) -> Reading {
        let mut problems = Vec::new();
        if !self.explicit.is_empty() {
            self.socket = None;
            self.configs.clear();
            for p in &self.explicit {
                if let Some(api) = p.to_str().and_then(Api::tcp) {
                    self.socket.get_or_insert(api);
                    continue;
                }
                match std::fs::metadata(p) {
                    Ok(m) if m.file_type().is_socket() && self.socket.is_none() => {
                        self.socket = Some(Api::Unix(p.clone()))
                    }
                    Ok(_) => self.configs.push(p.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(format!(
                        "--haproxy {}: no such file or socket{}: give HAProxy's stats socket (a path, or a numeric ADDR:PORT for a TCP one) or its configuration{}",
                        p.display(),
                        if self.once { "" } else { " (yet)" },
                        if self.once { "" } else { "; netmem looks again at every interval" }
                    )),
                    Err(e) => problems.push(format!("--haproxy {}: {e}", p.display())),
                }
            }
        }
        let owner = match self.owner() {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{e:#}"));
                return Reading {
                    map: None,
                    problems,
                };
            }
        };
        let config = match self.load_config(owner.as_ref()) {
            Ok(c) => c,
            Err(e) if e.chain().any(|c| c.is::<Refused>()) => {
                problems.push(format!("HAProxy's configuration is not read: {e:#}"));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "cannot read HAProxy's configuration {e:#} (netmem needs read access; run it as root or point --haproxy at a readable copy)"
                ));
                None
            }
        };
        // A UNIX socket first: it needs no namespace to be entered. Which
        // are there is seen as the owner sees it.
        let socket = self.socket.clone().or_else(|| {
            let c = config.as_ref()?;
            let present: Vec<Api> = trust::as_owner(owner.as_ref(), || {
                c.stats_sockets
                    .iter()
                    .filter(|s| self.present(s))
                    .cloned()
                    .collect()
            })
            .ok()?;
            present
                .iter()
                .find(|s| matches!(s, Api::Unix(_)))
                .or(present.first())
                .cloned()
        });
        let mut runtime = None;
        match (&socket, &self.api_retry_at) {
            (Some(_), Some((at, why))) if at.elapsed() < API_RETRY => problems.push(why.clone()),
            (Some(s), _) => match self.runtime(s, owner.as_ref()) {
                Ok(r) => {
                    self.api_retry_at = None;
                    runtime = Some(r);
                }
                Err(e) => {
                    let why = format!(
                        "HAProxy's runtime API {s} cannot be read: {e:#}; {}",
                        if config.is_some() {
                            "names come from its configuration only, so servers that change address are not followed"
                        } else {
                            "its groups keep their plain names"
                        }
                    );
                    self.api_retry_at = Some((Instant::now(), why.clone()));
                    problems.push(why);
                }
            },
            (None, _) => {}
        }
        if config.is_none() && runtime.is_none() {
            if socket.is_none() && problems.is_empty() {
                problems.push("HAProxy: neither a readable configuration nor a stats socket; give one with --haproxy".into());
            }
            return Reading {
                map: None,
                problems,
            };
        }
        let mut map = config
            .as_ref()
            .map(|c| c.map.clone())
            .unwrap_or_else(|| ProxyMap {
                tune: Tune::new(KNOBS),
                ..Default::default()
            });
        let mut origin = Vec::new();
        if config.is_some() {
            origin.push("tune: configuration".to_string());
        }
        let api = socket.as_ref().map(|s| s.to_string()).unwrap_or_default();
        if let Some((servers, listeners, bufsize)) = runtime {
            for s in &servers {
                map.backends.entry(s.backend.clone()).or_default();
            }
            map.servers = servers;
            // Names the configuration could not give, the API did.
            map.notes.retain(|n| !n.contains("runtime API only"));
            origin.push(format!("servers: runtime API {api} (show servers state)"));
            if !listeners.is_empty() {
                map.listeners = listeners;
                origin.push(format!("frontends: runtime API {api} (show fd)"));
            }
            if bufsize.is_some() {
                map.tune.set(Meaning::ProxyBuffer, bufsize);
            }
        }
        if config.is_some() && !origin.iter().any(|o| o.starts_with("servers:")) {
            origin.push("servers: configuration".into());
        }
        if config.is_some() && !origin.iter().any(|o| o.starts_with("frontends:")) {
            origin.push("frontends: configuration (bind lines)".into());
        }
        map.listeners.sort();
        map.listeners.dedup();
        map.servers.sort();
        map.origin = origin;
        Reading {
            map: Some(map),
            problems,
        }
    }
}
