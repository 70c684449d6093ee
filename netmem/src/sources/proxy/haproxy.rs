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

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::trust::{self, Owner, Refused};
use super::{Proxy, Reading};
use crate::model::proxy::{Listener, ProxyMap, Server};

/// The longest one runtime API exchange may take: the pass waits for it.
const API_TIMEOUT: Duration = Duration::from_millis(500);
/// After a runtime API failure, how long before it is tried again (a
/// stuck socket then costs the pass its timeout once in a while only).
const API_RETRY: Duration = Duration::from_secs(10);

/// One runtime API command, and how much of its answer netmem keeps: a
/// stats socket may be anyone's (or a stuck proxy's), so every answer is
/// bounded in bytes as well as in time, at sizes a real HAProxy needs.
pub struct Cmd {
    pub text: &'static str,
    /// The most bytes of kept lines (each answer's first line is kept).
    pub cap: usize,
    /// Lines netmem uses; the others are dropped as they stream.
    pub keep: fn(&str) -> bool,
}

fn every_line(_: &str) -> bool {
    true
}

/// About 3 KB on a real HAProxy.
pub const SHOW_INFO: Cmd = Cmd {
    text: "show info",
    cap: 64 << 10,
    keep: every_line,
};
/// About 150 bytes per server: 16 MiB is 100,000 servers.
pub const SHOW_SERVERS_STATE: Cmd = Cmd {
    text: "show servers state",
    cap: 16 << 20,
    keep: every_line,
};
/// One line per file descriptor, every connection included (250 MB at a
/// million connections): only listeners' lines are kept, about 200 bytes
/// each, so 1 MiB is 5,000 listening sockets.
pub const SHOW_FD: Cmd = Cmd {
    text: "show fd",
    cap: 1 << 20,
    keep: is_listener_line,
};
/// About 60 pools of one line each.
pub const SHOW_POOLS: Cmd = Cmd {
    text: "show pools",
    cap: 256 << 10,
    keep: every_line,
};

/// All the files of one configuration together, at most (a 100,000-server
/// configuration is about 5 MB).
pub const CONFIG_MAX_BYTES: u64 = 16 << 20;
/// Configuration files at most (`-f` files plus the `*.cfg` of `-f` dirs).
pub const CONFIG_MAX_FILES: usize = 256;
/// Entries looked at in one `-f` directory at most.
const CONFIG_DIR_MAX_ENTRIES: usize = 4096;
/// Servers in one `show servers state` at most (its byte cap would let
/// short lines name far more, and each costs more memory parsed than read).
pub const MAX_SERVERS: usize = 100_000;
/// Servers, listeners, backends, sections and notes one configuration
/// may give at most (the same reasoning, for 16 MiB of short lines).
pub const CONFIG_MAX_NAMES: usize = 200_000;
/// Bytes environment variables may add to one configuration line: a line
/// of `"${BIG}${BIG}..."` would otherwise grow without end.
const LINE_EXPANSION_MAX: usize = 64 << 10;
/// `/proc/PID/cmdline` and `/proc/PID/environ`, at most.
const PROC_MAX_BYTES: u64 = 1 << 20;

/// Where HAProxy's runtime API listens (a `stats socket` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    /// `stats socket /run/haproxy.sock` (or `unix@/...`).
    Unix(PathBuf),
    /// `stats socket ipv4@127.0.0.1:9999`: reached from inside HAProxy's
    /// network namespace; a wildcard address through loopback.
    Tcp(SocketAddr),
}

impl Api {
    /// A TCP address as HAProxy writes one (`ipv4@ADDR:PORT`, `[::1]:PORT`,
    /// `:PORT`, `*:PORT`); None for anything else (paths, names).
    pub fn tcp(raw: &str) -> Option<Api> {
        match parse_addr(raw) {
            Addr::Inet(ip, ports) if ports.len() == 1 => {
                let v6 = ["ipv6@", "tcp6@"].iter().any(|p| raw.starts_with(p));
                let ip = ip.unwrap_or(if v6 {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                } else {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                });
                Some(Api::Tcp(SocketAddr::new(ip, ports[0])))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Api::Unix(p) => write!(f, "{}", p.display()),
            Api::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// A connection to the runtime API.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_timeouts(&self, read: Duration, write: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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

/// A configuration file as last read: path, mtime (ns), size, inode.
type FileSig = (PathBuf, i64, u64, u64);

/// One HAProxy process as `show info` named it (Pid, Start_time_sec), and
/// what the reads done once per process (`show fd`, `show pools`) gave.
struct Instance {
    id: (String, String),
    listeners: Vec<Listener>,
    bufsize: Option<u64>,
}

/// What a configuration says: the proxy's names as far as a file tells
/// them (no `origin`: the reader says where they came from), and where
/// its runtime API listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub map: ProxyMap,
    /// Stats sockets, in order.
    pub stats_sockets: Vec<Api>,
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

/// Reads one HAProxy's configuration files: `configs` are (as given, as
/// opened) paths, files or directories of `*.cfg`. Called with the owner's
/// rights ([`trust::as_owner`]); `owner` only words a refusal. Each file is
/// opened once and checked on the opened file; the text is read only when
/// a file changed since `before`, and within [`CONFIG_MAX_FILES`] and
/// [`CONFIG_MAX_BYTES`] for all of them together.
fn read_configuration(
    configs: &[(PathBuf, PathBuf)],
    before: Option<&[FileSig]>,
    owner: Option<&Owner>,
) -> Result<(Vec<FileSig>, Option<String>)> {
    // `p` is opened, `name` (as the process names it) is said.
    let open = |p: &Path, name: &str| {
        // Checked before opening as well: opening a device node can have
        // side effects.
        if let Ok(m) = std::fs::metadata(p) {
            if !m.is_file() && !m.is_dir() {
                bail!("{name}: not a regular file, a directory or a stats socket");
            }
        }
        let f = trust::open_any(p).map_err(|e| match owner {
            Some(o) => o.refused(e, "read", p),
            None => anyhow::Error::new(e).context(name.to_string()),
        })?;
        let m = f.metadata().with_context(|| name.to_string())?;
        Ok((f, m))
    };
    let mut files: Vec<(PathBuf, String, std::fs::File, std::fs::Metadata)> = Vec::new();
    let mut add = |p: PathBuf, name: String, (f, m): (std::fs::File, std::fs::Metadata)| {
        if !m.is_file() {
            // A FIFO swapped in since would block the pass on its read.
            bail!("{name}: not a regular file, a directory or a stats socket");
        }
        if files.len() >= CONFIG_MAX_FILES {
            return Err(anyhow::Error::new(Refused(format!(
                "more than {CONFIG_MAX_FILES} configuration files (netmem's cap)"
            ))));
        }
        files.push((p, name, f, m));
        Ok(())
    };
    for (given, p) in configs {
        let name = trust::shown(given);
        let (f, m) = open(p, &name)?;
        if !m.is_dir() {
            add(p.clone(), name, (f, m))?;
            continue;
        }
        let mut inside = Vec::new();
        let dir = std::fs::read_dir(p).map_err(|e| match owner {
            Some(o) => o.refused(e, "read", p),
            None => anyhow::Error::new(e).context(name.clone()),
        })?;
        for (i, e) in dir.enumerate() {
            if i >= CONFIG_DIR_MAX_ENTRIES {
                return Err(anyhow::Error::new(Refused(format!(
                    "{name}: more than {CONFIG_DIR_MAX_ENTRIES} entries (netmem's cap)"
                ))));
            }
            let Ok(e) = e else { continue };
            let ep = e.path();
            if ep.extension().is_some_and(|x| x == "cfg") {
                inside.push(ep);
            }
        }
        inside.sort();
        for ep in inside {
            let name = trust::shown(&given.join(ep.file_name().unwrap_or_default()));
            let opened = open(&ep, &name)?;
            add(ep, name, opened)?;
        }
    }
    let sig: Vec<FileSig> = files
        .iter()
        .map(|(p, _, _, m)| {
            (
                p.clone(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
                m.size(),
                m.ino(),
            )
        })
        .collect();
    if before == Some(sig.as_slice()) {
        return Ok((sig, None));
    }
    let total: u64 = files.iter().map(|(_, _, _, m)| m.size()).sum();
    if total > CONFIG_MAX_BYTES {
        return Err(anyhow::Error::new(Refused(format!(
            "{} in {} file{}: more than {} (netmem's cap for one HAProxy configuration)",
            crate::format::human_bytes(total),
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            crate::format::human_bytes(CONFIG_MAX_BYTES)
        ))));
    }
    let mut text = String::new();
    for (_, name, f, _) in files {
        let left = CONFIG_MAX_BYTES.saturating_sub(text.len() as u64);
        let t = trust::read_open(
            f,
            &name,
            left,
            "what is left of netmem's cap for one HAProxy configuration",
        )?;
        // Comments in Latin-1 are common; only the keywords matter.
        text += &String::from_utf8_lossy(&t);
        text.push('\n');
    }
    Ok((sig, Some(text)))
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
        let mut map = config.as_ref().map(|c| c.map.clone()).unwrap_or_default();
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
                map.tune.bufsize = bufsize;
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

/// A stats socket as netmem connects to it.
pub enum Reach {
    /// The path as netmem sees it (through /proc/PID/root).
    Unix(PathBuf),
    /// The address, and the namespace file to connect from (None: here).
    Tcp(SocketAddr, Option<PathBuf>),
}

impl Reach {
    /// A UNIX socket is connected to with `owner`'s rights (a detected
    /// HAProxy's): the kernel checks the socket file's mode for its user.
    /// A TCP port has no owner to check: netmem connects from inside the
    /// proxy's network namespace, where its owner could connect as well.
    fn connect(&self, owner: Option<&Owner>) -> Result<Stream> {
        match self {
            Reach::Unix(p) => match trust::as_owner(owner, || UnixStream::connect(p))? {
                Ok(s) => Ok(Stream::Unix(s)),
                Err(e) => Err(match owner {
                    Some(o) => o.refused(e, "connect to", p),
                    None => anyhow::Error::new(e).context(format!("connect {}", p.display())),
                }),
            },
            Reach::Tcp(a, ns) => {
                let connect = || {
                    TcpStream::connect_timeout(a, API_TIMEOUT).with_context(|| match ns {
                        Some(ns) => format!(
                            "connect tcp {a} inside HAProxy's network namespace ({})",
                            ns.display()
                        ),
                        None => format!("connect tcp {a}"),
                    })
                };
                let s = match ns {
                    None => connect()?,
                    // The socket stays in the namespace it was made in;
                    // only the connect needs the thread inside it.
                    Some(ns) => crate::sources::netns::Netns::open(ns.to_str())?.run(connect)?,
                };
                Ok(Stream::Tcp(s))
            }
        }
    }
}

/// Sends `cmds` in one exchange (non-interactive mode: HAProxy runs them in
/// order, ends each answer with an empty line, and closes) and returns one
/// answer per command, of the lines each keeps. Bounded by [`API_TIMEOUT`]
/// overall and by each command's [`Cmd::cap`]: the answer is read as it
/// streams, so what netmem holds is the kept lines, never the whole answer.
/// `owner`: a detected HAProxy's, whose rights a UNIX connect uses.
pub fn ask(to: &Reach, owner: Option<&Owner>, cmds: &[&Cmd]) -> Result<Vec<String>> {
    let joined = || cmds.iter().map(|c| c.text).collect::<Vec<_>>().join(";");
    let started = Instant::now();
    let mut s = to.connect(owner)?;
    s.set_timeouts(API_TIMEOUT, API_TIMEOUT)?;
    s.write_all(format!("{}\n", joined()).as_bytes())
        .context("send")?;
    let mut answers = Answers::new(cmds);
    let mut chunk = [0u8; 64 * 1024];
    let late = || {
        anyhow!(
            "no complete answer to `{}` within {} ms",
            joined(),
            API_TIMEOUT.as_millis()
        )
    };
    while !answers.done() {
        let left = API_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(late());
        }
        s.set_timeouts(left, API_TIMEOUT)?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answers.take(&chunk[..n])?,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read"),
        }
    }
    let answers = answers.finish()?;
    for (c, a) in cmds.iter().zip(&answers) {
        let first = a.lines().next().unwrap_or("");
        if first.starts_with("Permission denied") || first.starts_with("Unknown command") {
            bail!(
                "`{}`: {first} (the stats socket needs `level admin`, or `level operator` for servers only)",
                c.text
            );
        }
    }
    if answers.len() < cmds.len() {
        bail!(
            "`{}` answered {} of {} commands (is this HAProxy's stats socket?)",
            joined(),
            answers.len(),
            cmds.len()
        );
    }
    Ok(answers)
}

/// Where the first `\n` of `bytes` is. libc's memchr: the answer may be
/// the cap's 16 MiB and must be scanned within [`API_TIMEOUT`] even on a
/// busy machine, where a byte-by-byte loop (in a debug build) is not.
fn newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most `bytes.len()` bytes from a valid slice,
    // and returns null or a pointer into it.
    let at = unsafe { libc::memchr(bytes.as_ptr().cast(), b'\n' as i32, bytes.len()) };
    (!at.is_null()).then(|| at as usize - bytes.as_ptr() as usize)
}

/// The answers of one exchange, split into lines as they arrive: an empty
/// line ends an answer (empty lines before one starts are skipped), and
/// each command keeps its lines up to its cap.
struct Answers<'a> {
    cmds: &'a [&'a Cmd],
    done: Vec<String>,
    /// The answer being read, and whether it has a line yet.
    cur: String,
    started: bool,
    /// The bytes of a line not ended yet.
    line: Vec<u8>,
}

impl<'a> Answers<'a> {
    fn new(cmds: &'a [&'a Cmd]) -> Answers<'a> {
        Answers {
            cmds,
            done: Vec::new(),
            cur: String::new(),
            started: false,
            line: Vec::new(),
        }
    }

    /// Every command answered: what comes after is not read.
    fn done(&self) -> bool {
        self.done.len() >= self.cmds.len()
    }

    fn too_big(&self) -> anyhow::Error {
        let c = self.cmds[self.done.len()];
        anyhow!(
            "the answer to `{}` is larger than {}, netmem's cap for it (more than a real HAProxy's)",
            c.text,
            crate::format::human_bytes(c.cap as u64)
        )
    }

    fn take(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() && !self.done() {
            let cap = self.cmds[self.done.len()].cap;
            let (part, ended) = match newline(bytes) {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len() + usize::from(ended)..];
            // No line longer than the whole answer may be.
            if self.line.len() + part.len() > cap {
                return Err(self.too_big());
            }
            self.line.extend_from_slice(part);
            if ended {
                self.end_line()?;
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<()> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.started {
                self.done.push(std::mem::take(&mut self.cur));
                self.started = false;
            }
            return Ok(());
        }
        let c = self.cmds[self.done.len()];
        let text = String::from_utf8_lossy(&line);
        if !self.started || (c.keep)(&text) {
            if self.cur.len() + text.len() + 1 > c.cap {
                return Err(self.too_big());
            }
            self.cur.push_str(&text);
            self.cur.push('\n');
        }
        self.started = true;
        Ok(())
    }

    /// At the end of the stream: an answer not ended by an empty line
    /// still counts.
    fn finish(mut self) -> Result<Vec<String>> {
        if !self.done() && !self.line.is_empty() {
            self.end_line()?;
        }
        if !self.done() && self.started {
            self.done.push(std::mem::take(&mut self.cur));
        }
        Ok(self.done)
    }
}

/// `show servers state`: a version line, a `#` header naming the columns,
/// one line per server. Columns are found by name: they grew over versions.
pub fn parse_servers_state(text: &str) -> Result<Vec<Server>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let version = lines.next().unwrap_or("").trim();
    if version != "1" {
        bail!("`show servers state`: unknown format version {version:?}");
    }
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix('#'))
        .ok_or_else(|| anyhow!("`show servers state`: no header line"))?
        .split_whitespace()
        .collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .ok_or_else(|| anyhow!("`show servers state`: no {n} column"))
    };
    let (be, srv, addr, port) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_port")?,
    );
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(b), Some(s), Some(a), Some(p)) =
            (f.get(be), f.get(srv), f.get(addr), f.get(port))
        else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (a.parse::<IpAddr>(), p.parse::<u16>()) else {
            continue;
        };
        if ip.is_unspecified() || port == 0 {
            // Not resolved yet (DNS), or a port taken from the client's.
            continue;
        }
        if out.len() >= MAX_SERVERS {
            bail!("`show servers state` names more than {MAX_SERVERS} servers (netmem's cap)");
        }
        out.push(Server {
            backend: b.to_string(),
            server: s.to_string(),
            addr: SocketAddr::new(ip, port),
        });
    }
    Ok(out)
}

/// `show fd`'s listeners: `... l.st=RDY fe=NAME fam=ipv4 lport=PORT`.
pub fn parse_show_fd(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| is_listener_line(l)) {
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_string)
        };
        let (Some(fe), Some(port)) = (field("fe="), field("lport=").and_then(|p| p.parse().ok()))
        else {
            continue;
        };
        if fe == "GLOBAL" {
            continue;
        }
        out.push(Listener {
            frontend: fe,
            addr: None,
            port,
        });
    }
    out
}

/// A listening socket's line in `show fd` (the others are connections).
fn is_listener_line(l: &str) -> bool {
    l.contains(" l.st=")
}

/// `show pools`: `Pool buffer (16384 bytes)` is tune.bufsize.
pub fn parse_buffer_pool(text: &str) -> Option<u64> {
    let rest = text.split("Pool buffer (").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// HAProxy's words: whitespace separated, `"..."`/`'...'` quoted,
/// backslash escapes, `#` starting a comment outside quotes.
/// HAProxy's environment, by name.
pub type Env = std::collections::HashMap<String, String>;

/// A line's words, quotes and escapes resolved. With `env`, variables in
/// double quotes are expanded as HAProxy does (`"$NAME"`, `"${NAME}"`,
/// `"${NAME-default}"`; an unset one is empty); without it they are kept
/// as written, and noted where they matter.
fn words(line: &str, env: Option<&Env>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut expanded = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '$') if env.is_some() => {
                let env = env.expect("checked");
                let braced = chars.next_if_eq(&'{').is_some();
                let mut name = String::new();
                if braced {
                    for n in chars.by_ref() {
                        if n == '}' {
                            break;
                        }
                        name.push(n);
                    }
                } else {
                    while let Some(n) = chars.next_if(|n| n.is_ascii_alphanumeric() || *n == '_') {
                        name.push(n);
                    }
                }
                let (name, default) = match name.split_once('-') {
                    Some((n, d)) if braced => (n.to_string(), Some(d.to_string())),
                    _ => (name, None),
                };
                match (env.get(&name), default) {
                    (Some(v), _) if expanded + v.len() <= LINE_EXPANSION_MAX => {
                        expanded += v.len();
                        cur.push_str(v)
                    }
                    (Some(_), _) => {}
                    (None, Some(d)) => cur.push_str(&d),
                    (None, None) => {}
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                has = true;
            }
            (None, '#') => break,
            (None, c) if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// A size in bytes: `16384`, `16k`, `1m`.
fn size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (n, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    n.parse::<u64>().ok().map(|v| v * mult)
}

/// An address as HAProxy writes one: what it is, without its prefix.
enum Addr {
    /// IP (None: every address) and ports.
    Inet(Option<IpAddr>, Vec<u16>),
    /// A UNIX or abstract socket, an inherited fd: no port of its own.
    Local,
    /// A host name (resolved by HAProxy, not by netmem).
    Name(String, Vec<u16>),
    /// No port, or a port offset (`+1`): the client's port decides.
    NoPort,
    Bad(String),
}

fn parse_addr(raw: &str) -> Addr {
    let mut s = raw;
    for p in [
        "ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@", "udp@", "udp4@", "udp6@", "quic4@", "quic6@",
    ] {
        if let Some(r) = s.strip_prefix(p) {
            s = r;
            break;
        }
    }
    if s.starts_with('/')
        || ["unix@", "abns@", "fd@", "sockpair@", "uxst@", "uxdg@"]
            .iter()
            .any(|p| s.starts_with(p))
    {
        return Addr::Local;
    }
    if s.contains("${") {
        return Addr::Bad(format!("{raw} (environment variable)"));
    }
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').unwrap_or("")),
            None => return Addr::Bad(raw.to_string()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (s, ""),
        }
    };
    if port.is_empty() || port.starts_with('+') || port.starts_with('-') {
        return Addr::NoPort;
    }
    let ports: Vec<u16> = match port.split_once('-') {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b => (a..=b).collect(),
            _ => return Addr::Bad(raw.to_string()),
        },
        None => match port.parse::<u16>() {
            Ok(p) => vec![p],
            Err(_) => return Addr::Bad(raw.to_string()),
        },
    };
    match host {
        "" | "*" => Addr::Inet(None, ports),
        h => match h.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Addr::Inet(None, ports),
            Ok(ip) => Addr::Inet(Some(ip), ports),
            Err(_) => Addr::Name(h.to_string(), ports),
        },
    }
}

#[derive(PartialEq)]
enum Section {
    Global,
    Frontend(String),
    Backend(String),
    Listen(String),
    Other,
}

/// Reads a configuration (every `-f` file concatenated, in order).
pub fn parse_config(text: &str, env: Option<&Env>) -> Config {
    let mut c = Config::default();
    c.map.tune.client.known = true;
    c.map.tune.server.known = true;
    let mut section = Section::Other;
    let mut templates = 0;
    let mut named = Vec::new();
    let mut sections = 0;
    for line in text.lines() {
        let held = c.map.servers.len()
            + c.map.listeners.len()
            + c.map.backends.len()
            + c.map.notes.len()
            + c.stats_sockets.len()
            + named.len()
            + sections;
        if held > CONFIG_MAX_NAMES {
            c.map.notes.push(format!(
                "more than {CONFIG_MAX_NAMES} servers, binds, sections and notes: the rest of the configuration is not read (netmem's cap)"
            ));
            break;
        }
        let w = words(line, env);
        let Some(k) = w.first().map(String::as_str) else {
            continue;
        };
        let arg = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
        if matches!(k, "global" | "frontend" | "backend" | "listen") {
            sections += 1;
        }
        match k {
            "global" => {
                section = Section::Global;
                continue;
            }
            "frontend" => {
                section = Section::Frontend(arg(1).to_string());
                continue;
            }
            "backend" => {
                c.map.backends.entry(arg(1).to_string()).or_default();
                section = Section::Backend(arg(1).to_string());
                continue;
            }
            "listen" => {
                let name = arg(1).to_string();
                c.map
                    .backends
                    .entry(name.clone())
                    .or_default()
                    .insert(name.clone());
                // The old `listen NAME ADDR:PORT` form binds too.
                if w.len() > 2 {
                    bind(&mut c, &name, &w[2..], &mut named);
                }
                section = Section::Listen(name);
                continue;
            }
            "defaults" | "peers" | "resolvers" | "userlist" | "program" | "http-errors"
            | "ring" | "cache" | "mailers" | "crt-store" | "traces" => {
                section = Section::Other;
                continue;
            }
            _ => {}
        }
        match (&section, k) {
            (Section::Global, "tune.bufsize") => c.map.tune.bufsize = size(arg(1)),
            (Section::Global, "tune.rcvbuf.client") => c.map.tune.client.rcvbuf = size(arg(1)),
            (Section::Global, "tune.sndbuf.client") => c.map.tune.client.sndbuf = size(arg(1)),
            (Section::Global, "tune.rcvbuf.server") => c.map.tune.server.rcvbuf = size(arg(1)),
            (Section::Global, "tune.sndbuf.server") => c.map.tune.server.sndbuf = size(arg(1)),
            (Section::Global, "stats") if arg(1) == "socket" => {
                let a = arg(2);
                let path = a.strip_prefix("unix@").unwrap_or(a);
                if path.starts_with('/') {
                    c.stats_sockets.push(Api::Unix(PathBuf::from(path)));
                } else if let Some(api) = Api::tcp(a) {
                    c.stats_sockets.push(api);
                } else {
                    c.map.notes.push(format!(
                        "stats socket {a}: not read (netmem reads UNIX sockets and numeric TCP addresses)"
                    ));
                }
            }
            (Section::Frontend(f) | Section::Listen(f), "bind") => {
                let f = f.clone();
                bind(&mut c, &f, &w[1..], &mut named);
            }
            (Section::Frontend(f) | Section::Listen(f), "default_backend" | "use_backend") => {
                let b = arg(1);
                if b.contains("%[") {
                    c.map
                        .notes
                        .push(format!("{k} {b} in {f}: chosen per request"));
                } else {
                    c.map
                        .backends
                        .entry(b.to_string())
                        .or_default()
                        .insert(f.clone());
                }
            }
            (Section::Backend(b) | Section::Listen(b), "server") => match parse_addr(arg(2)) {
                Addr::Inet(Some(ip), ports) => c.map.servers.push(Server {
                    backend: b.clone(),
                    server: arg(1).to_string(),
                    addr: SocketAddr::new(ip, ports[0]),
                }),
                Addr::Name(..) => named.push(format!("{b}/{}", arg(1))),
                _ => {}
            },
            (Section::Backend(_) | Section::Listen(_), "server-template") => templates += 1,
            _ => {}
        }
    }
    if !named.is_empty() {
        c.map.notes.push(format!(
            "{} addresses given by name ({}{}): named through the runtime API only",
            named.len(),
            named.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if named.len() > 3 { ", ..." } else { "" }
        ));
    }
    if templates > 0 {
        c.map.notes.push(format!(
            "{templates} server-template lines: their servers are named through the runtime API only"
        ));
    }
    c
}

/// Frontend `f` listens on these ports.
fn listen(c: &mut Config, f: &str, addr: Option<IpAddr>, ports: Vec<u16>) {
    for port in ports {
        c.map.listeners.push(Listener {
            frontend: f.to_string(),
            addr,
            port,
        });
    }
}

/// One `bind` line's addresses (comma separated) for frontend `f`.
fn bind(c: &mut Config, f: &str, w: &[String], named: &mut Vec<String>) {
    let Some(addrs) = w.first() else {
        return;
    };
    for a in addrs.split(',') {
        match parse_addr(a) {
            Addr::Inet(ip, ports) => listen(c, f, ip, ports),
            Addr::Name(h, ports) => {
                // HAProxy resolves it; the port is what the kernel groups.
                listen(c, f, None, ports);
                named.push(format!("bind {h} in {f}"));
            }
            Addr::Bad(why) => c.map.notes.push(format!("bind {why} in {f}: not read")),
            Addr::Local | Addr::NoPort => {}
        }
    }
}

/// What looking for running HAProxies found.
#[derive(Default)]
pub struct Detection {
    pub proxies: Vec<Box<dyn Proxy>>,
    /// Processes named `haproxy` that are not believed: (pid, start time,
    /// why), said once per process by the caller.
    pub refused: Vec<(u32, u64, String)>,
}

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
        if let Some(why) = trust::check_executable(pid) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
global
    maxconn 100
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats socket ipv4@127.0.0.1:9999 level admin
    tune.bufsize 32768
    tune.sndbuf.client 64k
    tune.rcvbuf.server 262144

defaults
    mode http

frontend fe_https
    bind :8443,:8444 ssl crt /x.pem   # two ports
    bind 127.0.0.1:8080
    bind unix@/run/fe.sock
    bind "${PORT}"
    default_backend app
    use_backend static if { path_beg /s }

frontend fe_b
    bind [::1]:8080 v4v6
    bind :9000-9002
    use_backend %[req.hdr(host)]

backend app
    server app1 10.0.3.17:9001 check
    server app2 10.0.3.18:9001
    server app3 app3.internal:9001
    server-template tpl 3 _http._tcp.app.local resolvers dns

backend static
    server st1 10.0.3.18:9001
    server st2 10.0.3.19

listen stats 0.0.0.0:7000
    server s1 127.0.0.3:80
"#;

    #[test]
    fn configuration_binds_servers_routes_and_tunes() {
        let c = parse_config(CFG, None);
        let ports = |f: &str| -> Vec<u16> {
            c.map
                .listeners
                .iter()
                .filter(|l| l.frontend == f)
                .map(|l| l.port)
                .collect()
        };
        assert_eq!(ports("fe_https"), vec![8443, 8444, 8080]);
        assert_eq!(ports("fe_b"), vec![8080, 9000, 9001, 9002]);
        assert_eq!(ports("stats"), vec![7000]);
        let v6 = c
            .map
            .listeners
            .iter()
            .find(|l| l.frontend == "fe_b")
            .unwrap();
        assert_eq!(v6.addr, Some("::1".parse().unwrap()));
        let servers: Vec<String> = c
            .map
            .servers
            .iter()
            .map(|s| format!("{}/{} {}", s.backend, s.server, s.addr))
            .collect();
        assert_eq!(
            servers,
            vec![
                "app/app1 10.0.3.17:9001",
                "app/app2 10.0.3.18:9001",
                "static/st1 10.0.3.18:9001",
                "stats/s1 127.0.0.3:80"
            ]
        );
        assert_eq!(
            c.map.backends["app"].iter().collect::<Vec<_>>(),
            vec!["fe_https"]
        );
        assert_eq!(c.map.backends["static"].len(), 1);
        assert_eq!(
            c.map.tune,
            crate::model::proxy::Tune {
                bufsize: Some(32768),
                client: crate::model::proxy::SideTune {
                    rcvbuf: None,
                    sndbuf: Some(65536),
                    known: true,
                },
                server: crate::model::proxy::SideTune {
                    rcvbuf: Some(262144),
                    sndbuf: None,
                    known: true,
                },
            }
        );
        assert_eq!(
            c.stats_sockets,
            vec![
                Api::Unix(PathBuf::from("/run/haproxy/admin.sock")),
                Api::Tcp("127.0.0.1:9999".parse().unwrap()),
            ]
        );
        let notes = c.map.notes.join("\n");
        for want in [
            "${PORT}",
            "chosen per request",
            "app/app3",
            "server-template",
        ] {
            assert!(notes.contains(want), "{want} in {notes}");
        }
    }

    #[test]
    fn stats_socket_addresses() {
        let tcp = |a: &str| match Api::tcp(a) {
            Some(Api::Tcp(a)) => Some(a.to_string()),
            _ => None,
        };
        assert_eq!(
            tcp("ipv4@127.0.0.1:9999").as_deref(),
            Some("127.0.0.1:9999")
        );
        assert_eq!(tcp("10.0.0.1:9999").as_deref(), Some("10.0.0.1:9999"));
        // A wildcard is reached through loopback, of its family.
        assert_eq!(tcp("ipv4@:9999").as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(tcp("*:9999").as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(tcp("ipv6@:::9999").as_deref(), Some("[::1]:9999"));
        assert_eq!(tcp("[::1]:9999").as_deref(), Some("[::1]:9999"));
        for not in [
            "/run/haproxy.sock",
            "haproxy.cfg",
            "conf.d",
            "localhost:9999",
            "127.0.0.1:1-3",
            "abns@x",
            "127.0.0.1",
        ] {
            assert_eq!(tcp(not), None, "{not}");
        }
        let c = parse_config("global\n  stats socket abns@admin level admin\n", None);
        assert!(c.stats_sockets.is_empty());
        assert!(c.map.notes[0].contains("abns@admin"), "{:?}", c.map.notes);
    }

    #[test]
    fn runtime_answers() {
        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n\
4 app 1 app1 127.0.0.1 2 0 1 1 2 1 0 2 0 0 0 0 - 9001 -\n\
4 app 3 tpl1 0.0.0.0 0 0 1 1 2 1 0 2 0 0 0 0 app.local 0 -\n\
4 app 4 v6 fd00::7 2 0 1 1 2 1 0 2 0 0 0 0 - 443 -\n";
        let s = parse_servers_state(state).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].addr, "[fd00::7]:443".parse().unwrap());
        assert!(parse_servers_state("2\n# x\n").is_err());
        let fd = "      4 : st=0x120023(Cl heopi W:sRa R:sRA) ref=0 gid=1 iocb=0x1(sock_accept_iocb) l.st=RDY fe=fe_https fam=ipv4 lport=8443\n\
      9 : st=0x120121(Cl heopI W:sRa R:srA) iocb=0x1(sock_accept_iocb) l.st=RDY fe=GLOBAL fam=unix\n\
     17 : st=0x000121(cl heopI W:sRa R:srA) iocb=0x1(sock_conn_iocb) back=0 cflg=0x00000300 fe=fe_https mux=PASS\n";
        let l = parse_show_fd(fd);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].frontend.as_str(), l[0].port), ("fe_https", 8443));
        assert_eq!(
            parse_buffer_pool(
                "  - Pool trash (32800 bytes)\n  - Pool buffer (32768 bytes) : 4 allocated"
            ),
            Some(32768)
        );
    }

    #[test]
    fn answers_stream_within_each_commands_cap() {
        let info = Cmd {
            text: "show info",
            cap: 32,
            keep: every_line,
        };
        let fd = Cmd {
            text: "show fd",
            cap: 64,
            keep: is_listener_line,
        };
        let cmds = [&info, &fd];
        // Split anywhere; empty lines before an answer are skipped; only
        // listeners' lines of `show fd` are kept (and its first line).
        let text = "\nPid: 1\nUptime: 2\n\n\nfirst\n 1 : conn\n 4 : l.st=RDY fe=f lport=80\n 2 : conn\n\nafter";
        let mut a = Answers::new(&cmds);
        for b in text.as_bytes().chunks(3) {
            a.take(b).unwrap();
        }
        assert!(a.done());
        assert_eq!(
            a.finish().unwrap(),
            vec![
                "Pid: 1\nUptime: 2\n",
                "first\n 4 : l.st=RDY fe=f lport=80\n"
            ]
        );
        // Connections' lines stream by without counting against the cap.
        let mut a = Answers::new(&cmds);
        a.take(b"Pid: 1\n\nfirst\n").unwrap();
        for _ in 0..1000 {
            a.take(b" 9 : a connection, dropped as it comes\n").unwrap();
        }
        a.take(b"\n").unwrap();
        assert!(a.done());
        // Over a cap, in one line or in many: refused, naming the cap.
        let e = Answers::new(&cmds).take(&[b'y'; 40]).unwrap_err();
        assert!(
            e.to_string().contains("`show info` is larger than 32"),
            "{e}"
        );
        let e = Answers::new(&cmds)
            .take(b"0123456789\n0123456789\n0123456789\n")
            .unwrap_err();
        assert!(e.to_string().contains("larger than 32"), "{e}");
        // The stream ends without the last empty line: still an answer.
        let mut a = Answers::new(&cmds);
        a.take(b"Pid: 1\n\nfirst").unwrap();
        assert_eq!(a.finish().unwrap().len(), 2);
    }

    #[test]
    fn what_a_configuration_may_name_is_capped() {
        // Short lines name many things: the names stop at the cap.
        let many =
            "backend b\n".to_string() + &"    server s 10.0.0.1:80\n".repeat(CONFIG_MAX_NAMES + 10);
        let c = parse_config(&many, None);
        assert!(c.map.servers.len() <= CONFIG_MAX_NAMES + 1);
        assert!(
            c.map.notes.last().unwrap().contains("netmem's cap"),
            "{:?}",
            c.map.notes.last()
        );
        // A variable repeated on a line adds at most LINE_EXPANSION_MAX.
        let env: Env = [("BIG".to_string(), "x".repeat(100_000))].into();
        let w = words(&format!("bind \"{}\"", "${BIG}".repeat(50)), Some(&env));
        assert!(w[1].len() <= LINE_EXPANSION_MAX, "{}", w[1].len());
        let state = "1\n# be_name srv_name srv_addr srv_port\n".to_string()
            + &"b s 10.0.0.1 80\n".repeat(MAX_SERVERS + 1);
        let e = parse_servers_state(&state).unwrap_err().to_string();
        assert!(e.contains("netmem's cap"), "{e}");
    }

    #[test]
    fn words_quotes_and_comments() {
        assert_eq!(
            words(r#"  bind "a b":80 'c' d\ e # no"#, None),
            vec!["bind", "a b:80", "c", "d e"]
        );
        assert_eq!(words("# only", None), Vec::<String>::new());
    }

    #[test]
    fn environment_variables_in_double_quotes() {
        let env: Env = [("PORT", "8443"), ("APP", "10.0.3.17:9001"), ("E", "")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let w = |l: &str| words(l, Some(&env));
        assert_eq!(w(r#"bind "${PORT}""#), vec!["bind", "8443"]);
        assert_eq!(
            w(r#"bind ":$PORT,:${PORT}1""#),
            vec!["bind", ":8443,:84431"]
        );
        assert_eq!(
            w(r#"x "${NOPE-7}" "${NOPE}" "a${E}b""#),
            vec!["x", "7", "", "ab"]
        );
        // Not in double quotes, or escaped: as written (HAProxy's rule).
        assert_eq!(
            w(r#"x '${PORT}' ${PORT} "\$PORT""#),
            vec!["x", "${PORT}", "${PORT}", "$PORT"]
        );
        let cfg =
            "frontend fe\n  bind \"127.0.0.1:${PORT}\"\nbackend app\n  server a1 \"${APP}\"\n";
        let c = parse_config(cfg, Some(&env));
        assert_eq!(c.map.listeners[0].port, 8443);
        assert_eq!(c.map.servers[0].addr, "10.0.3.17:9001".parse().unwrap());
        assert!(c.map.notes.is_empty(), "{:?}", c.map.notes);
        // Without HAProxy's environment (a configuration given by path),
        // the variable is said to be unknown.
        let c = parse_config(cfg, None);
        assert!(c.map.listeners.is_empty());
        assert!(
            c.map.notes.join(" ").contains("environment variable"),
            "{:?}",
            c.map.notes
        );
    }
}
