//! Cached routes (route exceptions) as rtnetlink dumps them, the way
//! `ip route show cache` asks, and the IPv6 cached-route count.

use std::net::IpAddr;

use anyhow::{Context, Result};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netmem_common::AF_INET6;

use super::netns::Netns;

/// One cached route (exception) as rtnetlink dumps it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CachedRoute {
    pub family: u8,
    pub dst: IpAddr,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub mtu: u32,
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// `ip route show cache` / `ip -6 route show cache`: RTM_GETROUTE dump with
/// RTM_F_CLONED, keeping only the cloned (exception) routes.
pub fn dump_cached_routes(family: u8) -> Result<Vec<CachedRoute>> {
    let sock = super::netlink::open(NETLINK_ROUTE, "rtnetlink")?;
    let mut request = RouteMessage::default();
    request.header.address_family = if family == AF_INET6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    request.header.flags = RouteFlags::Cloned;
    let mut out = Vec::new();
    super::netlink::dump(&sock, RouteNetlinkMessage::GetRoute(request), |m| {
        if let RouteNetlinkMessage::NewRoute(r) = m {
            if r.header.flags.contains(RouteFlags::Cloned) {
                out.push(cached_route(family, &r));
            }
        }
        Ok(())
    })
    .context("route cache dump failed")?;
    Ok(out)
}

fn cached_route(family: u8, r: &RouteMessage) -> CachedRoute {
    let mut c = CachedRoute {
        family,
        dst: if family == AF_INET6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        },
        gateway: None,
        oif: 0,
        mtu: 0,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => c.dst = addr(d).unwrap_or(c.dst),
            RouteAttribute::Gateway(g) => c.gateway = addr(g),
            RouteAttribute::Oif(i) => c.oif = *i,
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    if let RouteMetric::Mtu(v) = m {
                        c.mtu = *v;
                    }
                }
            }
            _ => {}
        }
    }
    c
}

/// The cached-route count, `/proc/net/rt6_stats`' fifth field (hex).
pub fn parse_rt6_cached(text: &str) -> Option<u64> {
    let f = text.split_whitespace().nth(4)?;
    u64::from_str_radix(f, 16).ok()
}

/// `/proc/net/rt6_stats`' cached-route count in `netns`, when readable.
pub fn rt6_cached(netns: &Netns) -> Result<Option<u64>> {
    Ok(netns
        .run(|| Ok(std::fs::read_to_string("/proc/thread-self/net/rt6_stats").ok()))?
        .and_then(|t| parse_rt6_cached(&t)))
}

/// An interface's name (NUL-padded, as the kernel programs report it);
/// zero when the index is unknown. Only meaningful inside its namespace.
pub fn ifname(index: u32) -> [u8; 16] {
    let mut buf = [0u8; 16];
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: name has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if !p.is_null() {
        for (d, s) in buf.iter_mut().zip(name.iter()) {
            *d = *s as u8;
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rt6_stats_cached_field() {
        assert_eq!(
            parse_rt6_cached("0000 0003 0000 0003 001a 0000 0000"),
            Some(26)
        );
    }
}
