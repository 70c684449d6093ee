//! What a group key's bytes say: addresses and the id an owner or proxy
//! backend key carries. Plain helpers beneath the grouping rule
//! (`group.rs`), the owner rule (`owner.rs`), the proxy names
//! (`proxy.rs`) and the naming (`names.rs`), so each of them imports
//! downwards only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netmem_common::{GroupKey, AF_INET6};

pub fn ip_bytes(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

pub fn ip_from(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// `10.0.0.2:9001` or `[::1]:9001`.
pub fn endpoint(ip: &IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The id an owner group (or a proxy backend group) carries in its key.
pub fn owner_id(k: &GroupKey) -> u64 {
    u64::from_ne_bytes(k.addr[..8].try_into().expect("8 bytes"))
}

/// A key of `kind` carrying `id` (an owner's pid or cgroup id, a proxy
/// backend's id), in namespace `netns`.
pub fn id_key(kind: u8, id: u64, netns: u32) -> GroupKey {
    let mut addr = [0u8; 16];
    addr[..8].copy_from_slice(&id.to_ne_bytes());
    GroupKey {
        addr,
        port: 0,
        kind,
        family: 0,
        netns,
    }
}
