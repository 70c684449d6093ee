//! One interval's reads, done off the event loop: the sock_diag pass, the
//! global context and the polling tier; plus the listening-port sync and
//! the route exception tally the interval reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use netmem_common::Event as RawEvent;

use super::monotonic_ns;
use crate::hooks::Probes;
use crate::model::{Aggregator, RouteFigures};
use crate::polling::Polls;
use crate::sources::census::Census;
use crate::sources::netns::Netns;
use crate::sources::procfs::Context;

pub(super) struct Gathered {
    pub agg: Aggregator,
    pub listening: HashSet<u16>,
    pub dump_started: u64,
    /// Wall-clock time of the dump: what the interval's figures describe.
    pub taken_at: std::time::SystemTime,
    pub ctx: Context,
    pub polls: Polls,
    pub census: Census,
    /// Found by the polling tier's readers.
    pub events: Vec<RawEvent>,
    pub route_cached: Vec<(&'static str, usize)>,
    pub rt6_cached: Option<u64>,
}

/// The sock_diag pass, the global context, and the polling tier's readers.
/// `sticky`: the ports the kernel's listening set holds (see
/// [`crate::sources::gather::collect`]).
pub(super) fn gather(
    netns: &Netns,
    mut polls: Polls,
    mut census: Census,
    event_limit: u64,
    sticky: &HashSet<u16>,
) -> Result<Gathered> {
    let dump_started = monotonic_ns();
    let taken_at = std::time::SystemTime::now();
    let mut agg = Aggregator::default();
    if polls.orphans.is_some() {
        agg.orphan_records = Some(Vec::new());
    }
    let (listening, ctx) = census.collect(netns, &mut agg, sticky)?;
    if let Some(d) = polls.orphans.as_mut() {
        for (rec, g) in agg.orphan_records.take().unwrap_or_default() {
            d.observe(&rec, g);
        }
    }
    let polled = polls.poll(netns, &ctx, &agg.netns, monotonic_ns(), event_limit)?;
    let rt6_cached = crate::sources::routes::rt6_cached(netns)?;
    Ok(Gathered {
        agg,
        listening,
        dump_started,
        taken_at,
        ctx,
        polls,
        census,
        events: polled.events,
        route_cached: polled.cached,
        rt6_cached,
    })
}

/// Keeps the kernel's listening-port set in step with the dumps. `known`
/// is userspace's view of the ports set there. A port stays while it has a
/// listener or, its listener closed, sockets of its own (so a draining
/// frontend's connections stay `listen:PORT` instead of turning into one
/// fake backend each); and a port the kernel learned after the dump began
/// is never cleared.
pub(super) fn sync_listen_ports(
    probes: &mut Probes,
    known: &mut HashSet<u16>,
    listening: &HashSet<u16>,
    in_use: &HashSet<u16>,
    dump_started: u64,
) -> Result<()> {
    let mut map = probes.listen_ports()?;
    let stale: Vec<u16> = known
        .iter()
        .filter(|p| !listening.contains(p) && !in_use.contains(p))
        .copied()
        .collect();
    for port in stale {
        let learned = map.get(&(port as u32), 0).unwrap_or(0);
        if learned < dump_started {
            map.set(port as u32, 0, 0)
                .context("cannot clear a LISTEN_PORTS slot")?;
            known.remove(&port);
        }
    }
    for &port in listening {
        if known.insert(port) {
            map.set(port as u32, 1, 0)
                .context("cannot seed LISTEN_PORTS")?;
        }
    }
    Ok(())
}

/// Route exceptions seen since the last interval, by destination, and the
/// polled cache sizes (kept until a later dump replaces them).
#[derive(Default)]
pub(super) struct RouteTally {
    inserted: u64,
    by_family: BTreeMap<&'static str, u64>,
    by_dst: HashMap<IpAddr, u64>,
    cached: BTreeMap<&'static str, usize>,
}

impl RouteTally {
    pub fn add(&mut self, dst: IpAddr, family: u8) {
        self.inserted += 1;
        *self
            .by_family
            .entry(crate::model::event::family_name(family))
            .or_default() += 1;
        *self.by_dst.entry(dst).or_default() += 1;
    }

    /// The interval's figures; starts the next interval's tally.
    pub fn take(
        &mut self,
        interval: Duration,
        rt6_cached: Option<u64>,
        cached: &[(&'static str, usize)],
    ) -> RouteFigures {
        for (k, n) in cached {
            self.cached.insert(k, *n);
        }
        let mut by_dst: Vec<(String, u64)> = std::mem::take(&mut self.by_dst)
            .into_iter()
            .map(|(d, n)| (d.to_string(), n))
            .collect();
        by_dst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_dst.truncate(10);
        RouteFigures {
            inserted: std::mem::take(&mut self.inserted),
            by_family: std::mem::take(&mut self.by_family),
            interval,
            by_dst,
            rt6_cached,
            cached: self.cached.clone(),
        }
    }
}
