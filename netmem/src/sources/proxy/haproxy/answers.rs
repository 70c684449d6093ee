//! The runtime API's answers netmem reads: servers, listeners, pools.

use std::net::{IpAddr, SocketAddr};

use anyhow::{anyhow, bail, Result};

use crate::model::proxy::{Listener, Server};

/// Servers in one `show servers state` at most (its byte cap would let
/// short lines name far more, and each costs more memory parsed than read).
pub const MAX_SERVERS: usize = 100_000;

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
pub(super) fn is_listener_line(l: &str) -> bool {
    l.contains(" l.st=")
}

/// `show pools`: `Pool buffer (16384 bytes)` is tune.bufsize.
pub fn parse_buffer_pool(text: &str) -> Option<u64> {
    let rest = text.split("Pool buffer (").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
