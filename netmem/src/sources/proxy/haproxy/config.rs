//! HAProxy's configuration: its files read within caps, and parsed into
//! names, buffer settings and stats sockets.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::addr::{parse_addr, Addr};
use super::api::Api;
use super::KNOBS;
use crate::model::proxy::{Listener, ProxyMap, Server, Side, Tune};
use crate::sources::proxy::trust::{self, Owner, Refused};

/// All the files of one configuration together, at most (a 100,000-server
/// configuration is about 5 MB).
pub const CONFIG_MAX_BYTES: u64 = 16 << 20;
/// Configuration files at most (`-f` files plus the `*.cfg` of `-f` dirs).
pub const CONFIG_MAX_FILES: usize = 256;
/// Entries looked at in one `-f` directory at most.
const CONFIG_DIR_MAX_ENTRIES: usize = 4096;
/// Servers, listeners, backends, sections and notes one configuration
/// may give at most (the same reasoning, for 16 MiB of short lines).
pub const CONFIG_MAX_NAMES: usize = 200_000;
/// Bytes environment variables may add to one configuration line: a line
/// of `"${BIG}${BIG}..."` would otherwise grow without end.
pub(super) const LINE_EXPANSION_MAX: usize = 64 << 10;

/// A configuration file as last read: path, mtime (ns), size, inode.
pub(super) type FileSig = (PathBuf, i64, u64, u64);

/// What a configuration says: the proxy's names as far as a file tells
/// them (no `origin`: the reader says where they came from), and where
/// its runtime API listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub map: ProxyMap,
    /// Stats sockets, in order.
    pub stats_sockets: Vec<Api>,
}

/// Reads one HAProxy's configuration files: `configs` are (as given, as
/// opened) paths, files or directories of `*.cfg`. Called with the owner's
/// rights ([`trust::as_owner`]); `owner` only words a refusal. Each file is
/// opened once and checked on the opened file; the text is read only when
/// a file changed since `before`, and within [`CONFIG_MAX_FILES`] and
/// [`CONFIG_MAX_BYTES`] for all of them together.
pub(super) fn read_configuration(
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

/// HAProxy's environment, by name.
pub type Env = std::collections::HashMap<String, String>;

/// HAProxy's words: whitespace separated, `"..."`/`'...'` quoted,
/// backslash escapes, `#` starting a comment outside quotes.
/// A line's words, quotes and escapes resolved. With `env`, variables in
/// double quotes are expanded as HAProxy does (`"$NAME"`, `"${NAME}"`,
/// `"${NAME-default}"`; an unset one is empty); without it they are kept
/// as written, and noted where they matter.
pub(super) fn words(line: &str, env: Option<&Env>) -> Vec<String> {
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
pub(super) fn size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (n, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    n.parse::<u64>().ok().map(|v| v * mult)
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
    c.map.tune = Tune::new(KNOBS);
    c.map.tune.set_known(Side::Client, true);
    c.map.tune.set_known(Side::Server, true);
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
            (Section::Global, k) if KNOBS.iter().any(|n| n.name == k) => {
                c.map.tune.set_named(k, size(arg(1)));
            }
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
