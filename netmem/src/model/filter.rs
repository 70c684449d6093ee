//! `--port`, `--backend` and `--all`: which groups a user asked to see.

use std::net::IpAddr;

use anyhow::{anyhow, Result};
use netmem_common::{
    GroupKey, GROUP_BACKEND, GROUP_CGROUP, GROUP_LISTEN, GROUP_PROCESS, GROUP_PROXY_BACKEND,
};

use super::key::ip_from;

/// `--port` and `--backend`: with none given every group is shown.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub ports: Vec<u16>,
    pub backends: Vec<(IpAddr, u16)>,
    /// Also groups with no sockets, no memory and no events (`--all`).
    pub all: bool,
}

impl Filter {
    pub fn accepts(&self, g: &GroupKey) -> bool {
        if self.ports.is_empty() && self.backends.is_empty() {
            return true;
        }
        match g.kind {
            GROUP_LISTEN => self.ports.contains(&g.port),
            GROUP_BACKEND => {
                let ip = ip_from(g.family, &g.addr);
                self.backends
                    .iter()
                    .any(|(a, p)| *p == g.port && normalize(a) == ip)
            }
            // Owner and proxy backend groups are made of port groups the
            // filter already chose.
            GROUP_PROCESS | GROUP_CGROUP | GROUP_PROXY_BACKEND => true,
            _ => false,
        }
    }
}

fn normalize(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
        v4 => *v4,
    }
}

/// Parses `--backend` values: `10.0.0.2:9001` or `[::1]:9001`.
pub fn parse_backend(s: &str) -> Result<(IpAddr, u16)> {
    let sa: std::net::SocketAddr = s.parse().map_err(|_| {
        anyhow!(
            "invalid backend {:?}: expected ADDR:PORT such as 10.0.0.2:9001 or [::1]:9001",
            s.escape_debug().to_string()
        )
    })?;
    if let std::net::SocketAddr::V6(v6) = &sa {
        if v6.scope_id() != 0 {
            return Err(anyhow!(
                "backend {s}: a scope id (%...) is not part of a group; give the address without it"
            ));
        }
    }
    if sa.port() == 0 {
        return Err(anyhow!("backend {s}: port 0 is no backend's port"));
    }
    Ok((sa.ip(), sa.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::group_of;
    use crate::model::types::SockRecord;
    use netmem_common::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_ESTABLISHED};
    use std::collections::HashSet;

    fn group_name(k: &netmem_common::GroupKey) -> String {
        crate::model::names::Names::default().group_name(k)
    }

    fn rec(remote: &str) -> SockRecord {
        let remote: IpAddr = remote.parse().unwrap();
        SockRecord {
            family: if remote.is_ipv4() { AF_INET } else { AF_INET6 },
            protocol: IPPROTO_TCP,
            full: true,
            state: TCP_ESTABLISHED,
            local: "127.0.0.1".parse().unwrap(),
            lport: 40000,
            remote,
            rport: 9001,
            inode: 1,
            cookie: 1,
            rmem_alloc: 0,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 0,
            wmem_queued: 0,
            drops: 0,
            cgroup_id: 0,
            netns: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 0,
        }
    }

    #[test]
    fn ipv6_backend_name_and_filter() {
        let listening = HashSet::new();
        let g = group_of(&rec("::1"), &listening);
        assert_eq!(group_name(&g), "backend:[::1]:9001");
        let f = Filter {
            backends: vec![parse_backend("[::1]:9001").unwrap()],
            ..Default::default()
        };
        assert!(f.accepts(&g));
        let f = Filter {
            ports: vec![9001],
            ..Default::default()
        };
        assert!(!f.accepts(&g));
    }

    #[test]
    fn v4_mapped_backend_filter() {
        let g = group_of(&rec("::ffff:10.0.0.2"), &HashSet::new());
        assert_eq!(group_name(&g), "backend:10.0.0.2:9001");
        let f = Filter {
            backends: vec![parse_backend("[::ffff:10.0.0.2]:9001").unwrap()],
            ..Default::default()
        };
        assert!(f.accepts(&g));
    }

    #[test]
    fn bad_backend_is_explained() {
        let e = parse_backend("10.0.0.2").unwrap_err().to_string();
        assert!(e.contains("ADDR:PORT"), "{e}");
        let e = parse_backend("[fe80::1%2]:9001").unwrap_err().to_string();
        assert!(e.contains("scope id"), "{e}");
        assert!(parse_backend("10.0.0.2:0").is_err());
        let e = parse_backend("\u{1b}[31m:1").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "control characters are escaped: {e}");
    }
}
