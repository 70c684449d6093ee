//! Cached routes (route exceptions) as rtnetlink dumps them, the way
//! `ip route show cache` asks, and the IPv6 cached-route count.

use std::net::IpAddr;

use anyhow::{Context, Result};
use netlink_packet_route::route::{RouteFlags, RouteMessage};
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
    super::netlink::dump_raw(&sock, RouteNetlinkMessage::GetRoute(request), |m| {
        if m.message_type() == RTM_NEWROUTE {
            if let Some(r) = parse_route(family, m.payload()) {
                out.push(r);
            }
        }
        Ok(())
    })
    .context("route cache dump failed")?;
    Ok(out)
}

const RTM_NEWROUTE: u16 = 24;
const RTM_F_CLONED: u32 = 0x200;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_METRICS: u16 = 8;
const RTAX_MTU: u16 = 2;
/// sizeof(struct rtmsg): family, dst_len, src_len, tos, table, protocol,
/// scope, type (a byte each), then u32 flags.
const RTMSG_LEN: usize = 12;

/// One RTM_NEWROUTE payload, read in place: the cloned (exception) route it
/// describes, or None when it is not one or does not parse. Only the four
/// attributes netmem uses are read, each length-checked, so a malformed
/// message is skipped, never a panic (netlink-packet-route's full parser
/// panics on a short RTA_FLOW, which fuzzing found).
pub fn parse_route(family: u8, payload: &[u8]) -> Option<CachedRoute> {
    use netlink_packet_utils::nla::NlasIterator;
    let hdr = payload.get(..RTMSG_LEN)?;
    let flags = u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    if flags & RTM_F_CLONED == 0 {
        return None;
    }
    let ip = |v: &[u8]| -> Option<IpAddr> {
        match (family, v.len()) {
            (AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
            (f, 4) if f != AF_INET6 => Some(IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
            _ => None,
        }
    };
    let u32_of =
        |v: &[u8]| -> Option<u32> { Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)) };
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
    for nla in NlasIterator::new(&payload[RTMSG_LEN..]) {
        let nla = nla.ok()?;
        let v = nla.value();
        match nla.kind() {
            RTA_DST => c.dst = ip(v)?,
            RTA_GATEWAY => c.gateway = ip(v),
            RTA_OIF => c.oif = u32_of(v)?,
            RTA_METRICS => {
                for m in NlasIterator::new(v) {
                    let m = m.ok()?;
                    if m.kind() == RTAX_MTU {
                        c.mtu = u32_of(m.value())?;
                    }
                }
            }
            _ => {}
        }
    }
    Some(c)
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
    fn cloned_route_attributes() {
        let mut m = vec![10u8, 128, 0, 0, 254, 0, 0, 1];
        m.extend_from_slice(&RTM_F_CLONED.to_ne_bytes());
        let nla = |m: &mut Vec<u8>, kind: u16, v: &[u8]| {
            m.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(v);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        };
        let dst: std::net::Ipv6Addr = "fd02::2".parse().unwrap();
        nla(&mut m, RTA_DST, &dst.octets());
        nla(&mut m, RTA_OIF, &7u32.to_ne_bytes());
        let mut metrics = Vec::new();
        nla(&mut metrics, RTAX_MTU, &1280u32.to_ne_bytes());
        nla(&mut m, RTA_METRICS, &metrics);
        let r = parse_route(AF_INET6, &m).unwrap();
        assert_eq!(
            (r.dst, r.oif, r.mtu, r.gateway),
            (IpAddr::V6(dst), 7, 1280, None)
        );
        // Not cloned, truncated, or an address of the wrong size: skipped.
        let mut plain = m.clone();
        plain[8..12].copy_from_slice(&0u32.to_ne_bytes());
        assert!(parse_route(AF_INET6, &plain).is_none());
        assert!(parse_route(AF_INET6, &m[..10]).is_none());
        assert!(parse_route(2, &m).is_none());
    }

    #[test]
    fn rt6_stats_cached_field() {
        assert_eq!(
            parse_rt6_cached("0000 0003 0000 0003 001a 0000 0000"),
            Some(26)
        );
    }
}
