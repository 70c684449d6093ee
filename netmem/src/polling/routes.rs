//! The route exception hooks' polling tier: exceptions appearing between
//! rtnetlink dumps of the cached routes.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use anyhow::Result;
use netmem_common::{payload, Event, GroupKey};

use super::raw_event;
use crate::model::group::ip_bytes;
use crate::sources::netns::Netns;
use crate::sources::routes::{dump_cached_routes, ifname};

/// Exceptions appearing between dumps, per family.
#[derive(Default)]
pub struct RouteDiff {
    known: HashMap<u8, HashSet<(IpAddr, u32)>>,
}

impl RouteDiff {
    pub fn poll(&mut self, netns: &Netns, family: u8, now_ns: u64) -> Result<(usize, Vec<Event>)> {
        // Interface indexes only mean something inside their namespace.
        let (routes, devs) = netns.run(|| {
            let routes = dump_cached_routes(family)?;
            let devs: Vec<_> = routes.iter().map(|r| ifname(r.oif)).collect();
            Ok((routes, devs))
        })?;
        let first = !self.known.contains_key(&family);
        let known = self.known.entry(family).or_default();
        let now: HashSet<(IpAddr, u32)> = routes.iter().map(|r| (r.dst, r.mtu)).collect();
        let mut out = Vec::new();
        if !first {
            for (r, dev) in routes
                .iter()
                .zip(devs)
                .filter(|(r, _)| !known.contains(&(r.dst, r.mtu)))
            {
                let p = payload::RouteException {
                    family: family as i64,
                    pmtu: r.mtu as i64,
                };
                let mut e = raw_event(p, now_ns, GroupKey::UNATTRIBUTED);
                e.route.dst = ip_bytes(&r.dst);
                if let Some(g) = r.gateway {
                    e.route.gateway = ip_bytes(&g);
                }
                e.route.dev = dev;
                out.push(e);
            }
        }
        *known = now;
        Ok((routes.len(), out))
    }
}
