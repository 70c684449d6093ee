//! What netmem reads from nginx's configuration (parsed by `syntax.rs`,
//! its includes spliced in by `files.rs`): the ports each `server` block
//! listens on and its first `server_name`, the `upstream` blocks and their
//! servers, where requests are passed (`proxy_pass` and the other
//! `*_pass`), and the buffer settings.
//!
//! Names, as nginx's own model has them:
//! - a `listen:` group is `server NAME` after its block's first
//!   `server_name` (`server _` for a block without one); several blocks on
//!   one port (virtual hosts, `default_server` among them) share the
//!   kernel's group, which then carries every name;
//! - a `backend:` group is `upstream NAME` and the server as written in
//!   the block (`upstream app/10.0.0.5:8080`); a `proxy_pass` to an
//!   address with no `upstream` block is nginx's implicit upstream of that
//!   address (`upstream 127.0.0.1:8080/127.0.0.1:8080`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::syntax::Directive;
use super::KNOBS;
use crate::model::proxy::{Listener, Meaning, ProxyMap, Server, Side, Tune};

/// Names (listeners, servers, upstreams, notes) one configuration may give
/// at most.
pub const CONFIG_MAX_NAMES: usize = 200_000;

/// A size as nginx writes one: `4096`, `4k`, `8K`, `1m`, `1g`.
pub fn size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(mult)
}

/// The buffer settings seen anywhere (http, server, location): the
/// largest of each, and whether they differ between places.
#[derive(Default)]
struct Buffers {
    buffer_size: Vec<u64>,
    /// `proxy_buffers NUMBER SIZE`: NUMBER × SIZE.
    buffers: Vec<(u64, u64)>,
    busy: Vec<u64>,
    buffering_off: usize,
    sndbuf: Vec<u64>,
    rcvbuf: Vec<u64>,
}

struct Reader {
    map: ProxyMap,
    buffers: Buffers,
    /// Upstream blocks by name (http and stream share nginx's namespace
    /// for neither, but a name used in both is rare; each context looks in
    /// its own).
    upstreams: [BTreeSet<String>; 2],
    named_by_host: Vec<String>,
    per_request: Vec<String>,
    full: bool,
}

/// Which block `server`s and `upstream`s are in.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Http,
    Stream,
}

impl Context {
    fn index(self) -> usize {
        match self {
            Context::Http => 0,
            Context::Stream => 1,
        }
    }
}

/// Reads the names and settings of a whole configuration. `page`: the
/// machine's page size, nginx's default `proxy_buffer_size`.
pub fn read_config(top: &[Directive], page: u64) -> ProxyMap {
    let mut r = Reader {
        map: ProxyMap {
            tune: Tune::new(KNOBS),
            ..Default::default()
        },
        buffers: Buffers::default(),
        upstreams: Default::default(),
        named_by_host: Vec::new(),
        per_request: Vec::new(),
        full: false,
    };
    for d in top {
        let ctx = match d.name.as_str() {
            "http" => Context::Http,
            "stream" => Context::Stream,
            _ => continue,
        };
        let Some(block) = &d.block else { continue };
        // Upstreams first: a `proxy_pass` may name one defined after it.
        for u in block.iter().filter(|u| u.name == "upstream") {
            r.upstream(u, ctx);
        }
        if ctx == Context::Http {
            r.knobs(block);
        }
        for s in block.iter().filter(|s| s.name == "server") {
            r.server(s, ctx);
        }
    }
    r.finish(page)
}

impl Reader {
    fn held(&self) -> usize {
        self.map.listeners.len()
            + self.map.servers.len()
            + self.map.backends.len()
            + self.named_by_host.len()
            + self.per_request.len()
    }

    /// False (and noted once) when the cap on names is reached.
    fn room(&mut self) -> bool {
        if self.held() < CONFIG_MAX_NAMES {
            return true;
        }
        if !self.full {
            self.full = true;
            self.map.notes.push(format!(
                "more than {CONFIG_MAX_NAMES} listeners, servers and upstreams: the rest is not read (netmem's cap)"
            ));
        }
        false
    }

    fn upstream(&mut self, u: &Directive, ctx: Context) {
        let name = u.arg(0).to_string();
        self.upstreams[ctx.index()].insert(name.clone());
        let backend = format!("upstream {name}");
        self.map.backends.entry(backend.clone()).or_default();
        for s in u.block.iter().flatten().filter(|s| s.name == "server") {
            if !self.room() {
                return;
            }
            match endpoint(s.arg(0), None) {
                Endpoint::Inet(addr) => self.map.servers.push(Server {
                    backend: backend.clone(),
                    server: s.arg(0).to_string(),
                    addr,
                }),
                Endpoint::Host => self.named_by_host.push(format!("{backend}/{}", s.arg(0))),
                Endpoint::Local | Endpoint::Bad => {}
            }
        }
    }

    /// The buffer settings directly in `block` (http, server or location).
    fn knobs(&mut self, block: &[Directive]) {
        for d in block {
            match d.name.as_str() {
                "proxy_buffer_size" => self.buffers.buffer_size.extend(size(d.arg(0))),
                "proxy_buffers" => {
                    if let (Ok(n), Some(s)) = (d.arg(0).parse::<u64>(), size(d.arg(1))) {
                        self.buffers.buffers.push((n, s));
                    }
                }
                "proxy_busy_buffers_size" => self.buffers.busy.extend(size(d.arg(0))),
                "proxy_buffering" if d.arg(0) == "off" => self.buffers.buffering_off += 1,
                _ => {}
            }
        }
    }

    fn server(&mut self, s: &Directive, ctx: Context) {
        let Some(block) = &s.block else { return };
        let name = match ctx {
            Context::Http => block
                .iter()
                .filter(|d| d.name == "server_name")
                .flat_map(|d| d.args.iter())
                .find(|n| !n.is_empty())
                .map_or("server _".to_string(), |n| format!("server {n}")),
            Context::Stream => String::new(),
        };
        let mut listens: Vec<(Option<IpAddr>, u16)> = Vec::new();
        for l in block.iter().filter(|d| d.name == "listen") {
            self.listen(l, &mut listens);
        }
        // A server block without `listen` listens on *:80 (as root).
        if listens.is_empty() && ctx == Context::Http {
            listens.push((None, 80));
        }
        // A stream server has no name of its own: its first port is one.
        let name = match ctx {
            Context::Http => name,
            Context::Stream => match listens.first() {
                Some((_, p)) => format!("server stream:{p}"),
                None => return,
            },
        };
        for (addr, port) in listens {
            if !self.room() {
                return;
            }
            self.map.listeners.push(Listener {
                frontend: name.clone(),
                addr,
                port,
            });
        }
        if ctx == Context::Http {
            self.knobs(block);
        }
        self.passes(block, &name, ctx);
    }

    /// One `listen` line: its address and port, and its socket buffers.
    fn listen(&mut self, l: &Directive, out: &mut Vec<(Option<IpAddr>, u16)>) {
        let a = l.arg(0);
        if a.starts_with("unix:") {
            return;
        }
        let (host, port) = match split_host_port(a) {
            Some((h, Some(p))) => (h, p),
            // A port alone, or an address alone (port 80).
            Some((h, None)) => match h.parse::<u16>() {
                Ok(p) => ("", p),
                Err(_) => (h, 80),
            },
            None => {
                self.map.notes.push(format!("listen {a}: not read"));
                return;
            }
        };
        let addr = match host {
            "" | "*" => None,
            h => match h.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() => None,
                Ok(ip) => Some(ip),
                // nginx resolves it at start; the port is what the kernel
                // groups.
                Err(_) => None,
            },
        };
        out.push((addr, port));
        for p in &l.args[1..] {
            if let Some(v) = p.strip_prefix("sndbuf=") {
                self.buffers.sndbuf.extend(size(v));
            } else if let Some(v) = p.strip_prefix("rcvbuf=") {
                self.buffers.rcvbuf.extend(size(v));
            }
            // default_server, ssl, http2, reuseport, backlog=, ... name
            // nothing netmem reads.
        }
    }

    /// The `*_pass` directives in a server's locations (nested, and in
    /// `if` blocks), and the locations' buffer settings.
    fn passes(&mut self, block: &[Directive], frontend: &str, ctx: Context) {
        // Locations within locations, on a heap stack: parsing capped the
        // depth, and this keeps the call stack flat whatever it was.
        let mut todo: Vec<&[Directive]> = vec![block];
        while let Some(b) = todo.pop() {
            for d in b {
                if let Some(inner) = &d.block {
                    if ctx == Context::Http {
                        self.knobs(inner);
                    }
                    todo.push(inner);
                    continue;
                }
                let pass = matches!(
                    d.name.as_str(),
                    "proxy_pass"
                        | "fastcgi_pass"
                        | "uwsgi_pass"
                        | "scgi_pass"
                        | "grpc_pass"
                        | "memcached_pass"
                );
                if pass && self.room() {
                    self.pass(d.arg(0), frontend, ctx);
                }
            }
        }
    }

    /// One pass target: an upstream by name, or an address (nginx's
    /// implicit upstream).
    fn pass(&mut self, target: &str, frontend: &str, ctx: Context) {
        let (rest, default_port) = match target.split_once("://") {
            Some((scheme, rest)) => (
                rest,
                match scheme {
                    "https" | "grpcs" | "suwsgi" => 443,
                    _ => 80,
                },
            ),
            None => (target, 80),
        };
        if rest.contains('$') {
            self.per_request.push(format!("{target} in {frontend}"));
            return;
        }
        if rest.starts_with("unix:") {
            return;
        }
        let host = rest.split('/').next().unwrap_or("");
        if self.upstreams[ctx.index()].contains(host) {
            self.map
                .backends
                .entry(format!("upstream {host}"))
                .or_default()
                .insert(frontend.to_string());
            return;
        }
        match endpoint(host, Some(default_port)) {
            Endpoint::Inet(addr) => {
                // nginx names the implicit upstream after host:port as
                // written (the port added when it was left out).
                let name = match split_host_port(host) {
                    Some((_, Some(_))) => host.to_string(),
                    _ => fmt_endpoint(addr),
                };
                let backend = format!("upstream {name}");
                self.map
                    .backends
                    .entry(backend.clone())
                    .or_default()
                    .insert(frontend.to_string());
                let s = Server {
                    backend,
                    server: name,
                    addr,
                };
                if !self.map.servers.contains(&s) {
                    self.map.servers.push(s);
                }
            }
            Endpoint::Host => self.named_by_host.push(format!("{target} in {frontend}")),
            Endpoint::Local | Endpoint::Bad => {}
        }
    }

    fn finish(mut self, page: u64) -> ProxyMap {
        let b = &self.buffers;
        let t = &mut self.map.tune;
        // nginx's default: one memory page.
        t.set(
            Meaning::ProxyBuffer,
            Some(b.buffer_size.iter().copied().max().unwrap_or(page)),
        );
        t.set(
            Meaning::Sndbuf(Side::Client),
            b.sndbuf.iter().copied().max(),
        );
        t.set(
            Meaning::Rcvbuf(Side::Client),
            b.rcvbuf.iter().copied().max(),
        );
        // Read from the configuration, where the client side's are set;
        // nginx sets no buffer size on its sockets to servers, so the
        // kernel autotunes them: "auto" is what is true.
        t.set_known(Side::Client, true);
        t.set_known(Side::Server, true);
        let mut notes = Vec::new();
        let differ = |v: &[u64]| v.iter().collect::<BTreeSet<_>>().len() > 1;
        for (knob, v) in [
            ("proxy_buffer_size", &b.buffer_size),
            ("sndbuf=", &b.sndbuf),
            ("rcvbuf=", &b.rcvbuf),
        ] {
            if differ(v) {
                notes.push(format!(
                    "{knob} differs between blocks ({} to {}): the largest is shown",
                    crate::format::human_bytes(*v.iter().min().unwrap_or(&0)),
                    crate::format::human_bytes(*v.iter().max().unwrap_or(&0))
                ));
            }
        }
        // proxy_buffers and proxy_busy_buffers_size have no meaning of
        // their own in the model (they are per connection, in nginx's
        // memory, not a socket's): said as a note, so people see them.
        let buffers = b
            .buffers
            .iter()
            .max_by_key(|(n, s)| n.saturating_mul(*s))
            .copied()
            .unwrap_or((8, page));
        notes.push(format!(
            "proxy_buffers {} {} (up to {} per connection read from the server ahead of a slow client){}{}",
            buffers.0,
            crate::format::human_bytes(buffers.1),
            crate::format::human_bytes(buffers.0.saturating_mul(buffers.1)),
            b.busy
                .iter()
                .max()
                .map(|v| format!(", proxy_busy_buffers_size {}", crate::format::human_bytes(*v)))
                .unwrap_or_default(),
            if b.buffering_off > 0 {
                format!(", proxy_buffering off in {}", plural(b.buffering_off, "block"))
            } else {
                String::new()
            }
        ));
        if !self.named_by_host.is_empty() {
            notes.push(format!(
                "{} given by host name ({}{}): nginx resolves them, netmem does not name them",
                plural(self.named_by_host.len(), "server"),
                self.named_by_host
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.named_by_host.len() > 3 {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        if !self.per_request.is_empty() {
            notes.push(format!(
                "{} chosen per request by variables ({}{}): not named",
                plural(self.per_request.len(), "pass"),
                self.per_request
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.per_request.len() > 3 {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        self.map.notes.extend(notes);
        self.map.listeners.sort();
        self.map.listeners.dedup();
        self.map.servers.sort();
        self.map.servers.dedup();
        self.map
    }
}

/// `1 server`, `2 servers`, `3 passes`.
fn plural(n: usize, what: &str) -> String {
    match (n, what.ends_with('s')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        _ => format!("{n} {what}s"),
    }
}

enum Endpoint {
    Inet(SocketAddr),
    Host,
    Local,
    Bad,
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`: the host and the port when
/// one is written. None when it cannot be read.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r.split_once(']')?;
        return match rest.strip_prefix(':') {
            Some(p) => Some((h, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((h, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address has colons but no port.
        Some((h, _)) if h.contains(':') => Some((s, None)),
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None if s.is_empty() => None,
        None => Some((s, None)),
    }
}

/// An `upstream` server's or a pass's address: numeric ones are named.
fn endpoint(s: &str, default_port: Option<u16>) -> Endpoint {
    if s.starts_with("unix:") {
        return Endpoint::Local;
    }
    let Some((h, p)) = split_host_port(s) else {
        return Endpoint::Bad;
    };
    let port = p.or(default_port).unwrap_or(80);
    match h.parse::<IpAddr>() {
        Ok(ip) => Endpoint::Inet(SocketAddr::new(ip, port)),
        Err(_) if h.is_empty() => Endpoint::Bad,
        Err(_) => Endpoint::Host,
    }
}

/// `1.2.3.4:80`, `[::1]:80`.
fn fmt_endpoint(a: SocketAddr) -> String {
    a.to_string()
}
