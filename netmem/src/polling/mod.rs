//! The polling tier: what userspace reads every interval for a hook no
//! kernel mechanism can serve on this kernel. Each poller turns what changed
//! since the last pass into the same records the kernel programs stream
//! (with the same typed payloads), so output does not depend on the tier
//! (only each event's `tier` does). Which pollers run follows from the
//! catalog ([`Poller`]) and the tiers the attach engine chose.

use anyhow::Result;
use netmem_common::{Event, GroupKey, Payload, RouteInfo, SockInfo, IPPROTO_TCP};

use crate::hooks::catalog::Poller;
use crate::hooks::{Tier, HOOKS};
use crate::model::group::ip_bytes;
use crate::sources::netns::Netns;
use crate::sources::procfs::Context;
use crate::sources::sockdiag::SockRecord;

pub mod aborts;
pub mod orphans;
pub mod pressure;
pub mod routes;

/// A record as a kernel program would have streamed it, with no socket.
pub fn raw_event<P: Payload>(p: P, ts_ns: u64, group: GroupKey) -> Event {
    Event {
        ts_ns,
        kind: P::KIND as u32,
        _pad: 0,
        sock: SockInfo::default(),
        group,
        _pad2: 0,
        args: p.into_args(),
        route: RouteInfo::default(),
    }
}

pub fn sock_info(r: &SockRecord) -> SockInfo {
    SockInfo {
        laddr: ip_bytes(&r.local),
        raddr: ip_bytes(&r.remote),
        lport: r.lport,
        rport: r.rport,
        family: r.family,
        state: r.state,
        protocol: IPPROTO_TCP,
        present: 1,
        rmem_alloc: r.rmem_alloc as i32,
        wmem_queued: r.wmem_queued as i32,
        fwd_alloc: r.fwd_alloc as i32,
        rcvbuf: r.rcvbuf as i32,
        sndbuf: r.sndbuf as i32,
        wmem_alloc: r.wmem_alloc as i32,
        drops: r.drops as i32,
    }
}

/// The pollers of the hooks the attach engine put on the polling tier.
#[derive(Default)]
pub struct Polls {
    pub aborts: Option<aborts::AbortPoll>,
    pub orphans: Option<orphans::OrphanDiff>,
    pub pressure: Option<pressure::PressurePoll>,
    /// Families whose route exceptions are polled.
    pub route_families: Vec<u8>,
    pub route_diff: routes::RouteDiff,
}

impl Polls {
    /// One poller per polled hook; `tier_of` says each hook's tier.
    pub fn for_tiers(tier_of: impl Fn(crate::hooks::HookId) -> Option<Tier>) -> Polls {
        let mut p = Polls::default();
        for h in HOOKS {
            let Some((poller, _)) = h.polling else {
                continue;
            };
            if tier_of(h.id) != Some(Tier::Polling) {
                continue;
            }
            match poller {
                Poller::Aborts => p.aborts = Some(aborts::AbortPoll::new()),
                Poller::Orphans => p.orphans = Some(orphans::OrphanDiff::default()),
                Poller::Pressure => p.pressure = Some(pressure::PressurePoll::default()),
                Poller::Routes(family) => p.route_families.push(family),
            }
        }
        p
    }

    /// The pollers' share of one pass, after sock_diag (orphans were fed to
    /// the orphan poller while the dump streamed).
    pub fn poll(
        &mut self,
        netns: &Netns,
        ctx: &Context,
        spaces: &[crate::model::netns::NetnsFigures],
        now: u64,
        event_limit: u64,
    ) -> Result<Polled> {
        let mut events = Vec::new();
        if let Some(d) = self.orphans.as_mut() {
            events.extend(d.finish(now));
        }
        let tcp_mem = ctx.tcp_mem_pages.map_or([-1; 3], |m| m.map(|v| v as i64));
        if let Some(p) = self.pressure.as_mut() {
            events.extend(p.poll(netns, now, tcp_mem)?);
        }
        if let Some(p) = self.aborts.as_mut() {
            let allocated = ctx.memory_allocated_pages as i64;
            events.extend(p.poll(spaces, now, event_limit, allocated, tcp_mem));
        }
        let mut cached = Vec::new();
        for &fam in &self.route_families {
            let (n, ev) = self.route_diff.poll(netns, fam, now)?;
            cached.push((crate::model::event::family_name(fam), n));
            events.extend(ev);
        }
        Ok(Polled { events, cached })
    }
}

/// What one pass of the pollers found.
pub struct Polled {
    /// New records, as the kernel programs would have streamed them.
    pub events: Vec<Event>,
    /// Route cache sizes polled, by family name.
    pub cached: Vec<(&'static str, usize)>,
}
