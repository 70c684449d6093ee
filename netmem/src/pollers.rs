//! The polling tier: what userspace reads every interval for a hook no
//! kernel mechanism can serve on this kernel. Each poller turns what changed
//! since the last pass into the same [`Event`]s the kernel programs stream,
//! so output does not depend on the tier (only each event's `tier` does).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{anyhow, Context, Result};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netmem_common::{
    AbortArg, Event, EventKind, GroupKey, RouteInfo, SockInfo, AF_INET6, IPPROTO_TCP, N_ARGS,
};

use crate::attribution::ip_bytes;
use crate::netns::Netns;
use crate::sockdiag::SockRecord;

/// Marks an abort found by the nstat poller (see [`AbortArg::Source`]).
pub const ABORT_FROM_NSTAT: i64 = 2;
/// [`EventKind::OrphanBorn`] args[1] for orphans first seen by sock_diag.
pub const ORPHAN_FROM_SOCK_DIAG: i64 = 2;

pub fn event(kind: EventKind, ts_ns: u64, group: GroupKey, args: [i64; N_ARGS]) -> Event {
    Event {
        ts_ns,
        kind: kind as u32,
        cpu: u32::MAX,
        sock: SockInfo::default(),
        group,
        args,
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

/// Orphans from consecutive sock_diag dumps, by socket cookie.
#[derive(Default)]
pub struct OrphanDiff {
    live: HashMap<u64, (GroupKey, u64, i64)>,
    seen: HashMap<u64, (GroupKey, SockRecord)>,
    /// The first dump only learns what exists: those orphans were born
    /// before netmem looked, and their lifetimes are unknown.
    primed: bool,
}

impl OrphanDiff {
    /// Called for every orphan of the current dump.
    pub fn observe(&mut self, rec: &SockRecord, group: GroupKey) {
        self.seen.insert(rec.cookie, (group, rec.clone()));
    }

    /// Ends a dump taken at `now_ns`: orphans new since the last one are
    /// born, those that vanished are gone (lifetime known to one interval).
    pub fn finish(&mut self, now_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        let seen = std::mem::take(&mut self.seen);
        if !std::mem::replace(&mut self.primed, true) {
            self.live = seen
                .into_iter()
                .map(|(c, (g, r))| (c, (g, u64::MAX, r.wmem_queued as i64)))
                .collect();
            return out;
        }
        let gone: Vec<u64> = self
            .live
            .keys()
            .filter(|c| !seen.contains_key(c))
            .copied()
            .collect();
        for c in gone {
            let (g, born, bytes) = self.live.remove(&c).expect("listed");
            let mut a = [0i64; N_ARGS];
            a[0] = if born == u64::MAX {
                -1
            } else {
                now_ns.saturating_sub(born) as i64
            };
            a[1] = bytes;
            out.push(event(EventKind::OrphanGone, now_ns, g, a));
        }
        for (c, (g, rec)) in seen {
            if self.live.contains_key(&c) {
                continue;
            }
            let bytes = rec.wmem_queued as i64;
            self.live.insert(c, (g, now_ns, bytes));
            let mut a = [0i64; N_ARGS];
            a[0] = bytes;
            a[1] = ORPHAN_FROM_SOCK_DIAG;
            let mut e = event(EventKind::OrphanBorn, now_ns, g, a);
            e.sock = sock_info(&rec);
            out.push(e);
        }
        out
    }
}

/// `/proc/net/protocols`' `press` column for TCP: "yes", "no", or "NI".
pub fn parse_tcp_pressure(text: &str) -> Option<(bool, i64)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let press = header.iter().position(|h| *h == "press")?;
    let memory = header.iter().position(|h| *h == "memory")?;
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.first() == Some(&"TCP") {
            let mem = cols.get(memory)?.parse().unwrap_or(-1);
            return Some((*cols.get(press)? == "yes", mem));
        }
    }
    None
}

#[derive(Default)]
pub struct PressurePoll {
    under: Option<bool>,
}

impl PressurePoll {
    pub fn poll(&mut self, netns: &Netns, now_ns: u64, tcp_mem: [i64; 3]) -> Result<Vec<Event>> {
        let text = netns.run(|| {
            std::fs::read_to_string("/proc/thread-self/net/protocols")
                .context("cannot read /proc/net/protocols")
        })?;
        let (under, mem) = parse_tcp_pressure(&text)
            .ok_or_else(|| anyhow!("no TCP row in /proc/net/protocols"))?;
        let was = self.under.replace(under);
        if was.is_none() || was == Some(under) {
            return Ok(vec![]);
        }
        let kind = if under {
            EventKind::PressureEnter
        } else {
            EventKind::PressureLeave
        };
        let mut a = [0i64; N_ARGS];
        a[0] = mem;
        a[1..4].copy_from_slice(&tcp_mem);
        Ok(vec![event(kind, now_ns, GroupKey::UNATTRIBUTED, a)])
    }
}

/// TcpExt's TCPAbortOnMemory from a /proc/net/netstat text.
pub fn parse_abort_on_memory(text: &str) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let i = names
            .split_whitespace()
            .position(|n| n == "TCPAbortOnMemory")?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    None
}

/// Aborts counted by the kernel (nstat) since the last pass; the kernel
/// log, when readable, says which limit fired.
pub struct AbortPoll {
    last: Option<u64>,
    kmsg: Option<std::fs::File>,
    /// What the kernel log said during the last pass: (too many orphaned
    /// sockets, out of memory -- consider tuning tcp_mem). The messages
    /// are rate-limited, so these are lower bounds.
    pub log_counts: (u64, u64),
}

impl AbortPoll {
    pub fn new() -> AbortPoll {
        // Only new records: seek to the end of the log buffer first.
        let kmsg = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok();
        if let Some(f) = &kmsg {
            use std::os::fd::AsRawFd;
            // SAFETY: valid fd; SEEK_END on /dev/kmsg skips old records.
            unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        }
        AbortPoll {
            last: None,
            kmsg,
            log_counts: (0, 0),
        }
    }

    /// (orphan messages, tcp_mem messages) logged since the last call.
    fn kernel_log(&mut self) -> (u64, u64) {
        let (mut orphans, mut mem) = (0, 0);
        let Some(f) = self.kmsg.as_mut() else {
            return (0, 0);
        };
        let mut buf = vec![0u8; 8192];
        // Each read returns one record; EAGAIN ends the backlog.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            let rec = String::from_utf8_lossy(&buf[..n]);
            if rec.contains("too many orphaned sockets") {
                orphans += 1;
            } else if rec.contains("out of memory -- consider tuning tcp_mem") {
                mem += 1;
            }
        }
        (orphans, mem)
    }

    pub fn poll(&mut self, netns: &Netns, now_ns: u64, max_events: u64) -> Result<Vec<Event>> {
        let text = netns.run(|| {
            std::fs::read_to_string("/proc/thread-self/net/netstat")
                .context("cannot read /proc/net/netstat")
        })?;
        let now = parse_abort_on_memory(&text)
            .ok_or_else(|| anyhow!("no TcpExt TCPAbortOnMemory in /proc/net/netstat"))?;
        self.log_counts = self.kernel_log();
        let Some(prev) = self.last.replace(now) else {
            return Ok(vec![]);
        };
        let n = now.saturating_sub(prev).min(max_events);
        let mut a = [-1i64; N_ARGS];
        a[AbortArg::Source as usize] = ABORT_FROM_NSTAT;
        Ok((0..n)
            .map(|_| event(EventKind::AbortOnMemory, now_ns, GroupKey::UNATTRIBUTED, a))
            .collect())
    }
}

impl Default for AbortPoll {
    fn default() -> Self {
        Self::new()
    }
}

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
    let sock = crate::netlink::open(NETLINK_ROUTE, "rtnetlink")?;
    let mut request = RouteMessage::default();
    request.header.address_family = if family == AF_INET6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    request.header.flags = RouteFlags::Cloned;
    let mut out = Vec::new();
    crate::netlink::dump(&sock, RouteNetlinkMessage::GetRoute(request), |m| {
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
                let mut a = [0i64; N_ARGS];
                a[0] = family as i64;
                a[1] = r.mtu as i64;
                let mut e = event(EventKind::RouteException, now_ns, GroupKey::UNATTRIBUTED, a);
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

fn ifname(index: u32) -> [u8; 16] {
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
    use netmem_common::AF_INET;

    #[test]
    fn pressure_flag() {
        let t = "protocol  size sockets  memory press maxhdr  slab module     cl co di ac io in de sh ss gs se re sp bi br ha uh gp em\n\
                 TCPv6     2464      3       4   no     320   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y\n\
                 UDP       1088      1      12   NI       0   yes  kernel      y  y  y  n  y  y  y  n  y  y  y  y  y  n  n  n  y  y  n\n\
                 TCP       2304      5       4   yes    320   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y\n";
        assert_eq!(parse_tcp_pressure(t), Some((true, 4)));
    }

    #[test]
    fn nstat_abort_counter() {
        let t = "TcpExt: SyncookiesSent TCPAbortOnMemory TCPMemoryPressures\nTcpExt: 0 17 3\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_abort_on_memory(t), Some(17));
    }

    #[test]
    fn rt6_stats_cached_field() {
        assert_eq!(
            parse_rt6_cached("0000 0003 0000 0003 001a 0000 0000"),
            Some(26)
        );
    }

    #[test]
    fn orphan_diff_births_and_deaths() {
        let rec = |cookie| SockRecord {
            family: AF_INET,
            state: 4,
            local: "127.0.0.1".parse().unwrap(),
            lport: 80,
            remote: "127.0.0.1".parse().unwrap(),
            rport: 5000,
            inode: 0,
            cookie,
            rmem_alloc: 0,
            rcvbuf: 0,
            wmem_alloc: 0,
            sndbuf: 0,
            fwd_alloc: 0,
            wmem_queued: 1000,
            drops: 0,
        };
        let g = GroupKey::UNATTRIBUTED;
        let mut d = OrphanDiff::default();
        d.observe(&rec(9), g);
        assert!(d.finish(50).is_empty(), "the first dump only primes");
        d.observe(&rec(1), g);
        d.observe(&rec(2), g);
        let e = d.finish(100);
        // 9 vanished with an unknown lifetime; 1 and 2 were born.
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].args[0], -1);
        let e: Vec<Event> = e.into_iter().skip(1).collect();
        assert!(e.iter().all(|e| e.kind == EventKind::OrphanBorn as u32));
        d.observe(&rec(2), g);
        let e = d.finish(350);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, EventKind::OrphanGone as u32);
        assert_eq!(e[0].args[0], 250);
        assert_eq!(e[0].args[1], 1000);
    }
}
