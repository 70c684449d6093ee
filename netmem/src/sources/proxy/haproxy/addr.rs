//! HAProxy's address syntax (`bind`, `server`, `stats socket`): one parser
//! for the configuration and the runtime API's address, so both read an
//! address the same way.

use std::net::IpAddr;

/// An address as HAProxy writes one: what it is, without its prefix.
pub(super) enum Addr {
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

pub(super) fn parse_addr(raw: &str) -> Addr {
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
