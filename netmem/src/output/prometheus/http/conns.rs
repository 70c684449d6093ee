//! Who may connect: the caps on connections at once, and which
//! connection is dropped to make room (see the module doc of [`super`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use tokio::task::AbortHandle;

use super::{MAX_CONNECTIONS, MAX_PER_PEER};

/// The live connections, for the caps and for choosing whom to drop.
#[derive(Default)]
pub(super) struct Conns {
    next_id: u64,
    pub(super) live: HashMap<u64, Conn>,
}

pub(super) struct Conn {
    peer: IpAddr,
    /// Since when it has waited for a request head (or its TLS handshake);
    /// `None` while a request is being answered.
    waiting: Option<Instant>,
    /// Its task, to drop it; set right after it is spawned.
    task: Option<AbortHandle>,
}

/// What [`Conns::admit`] decided.
pub(super) struct Admitted {
    pub(super) id: u64,
    /// A connection dropped to make room.
    pub(super) evicted: Option<AbortHandle>,
}

impl Conns {
    /// Makes room for a connection from `peer` (see the module doc), or
    /// `None`: refuse it.
    pub(super) fn admit(&mut self, peer: IpAddr, now: Instant) -> Option<Admitted> {
        let from_peer = self.live.values().filter(|c| c.peer == peer).count();
        let victim = if from_peer >= MAX_PER_PEER {
            Some(self.longest_waiting(|c| c.peer == peer)?)
        } else if self.live.len() >= MAX_CONNECTIONS {
            Some(self.longest_waiting(|_| true)?)
        } else {
            None
        };
        let evicted = victim.and_then(|v| self.live.remove(&v)?.task);
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(
            id,
            Conn {
                peer,
                waiting: Some(now),
                task: None,
            },
        );
        Some(Admitted { id, evicted })
    }

    fn longest_waiting(&self, among: impl Fn(&Conn) -> bool) -> Option<u64> {
        self.live
            .iter()
            .filter(|(_, c)| among(c))
            .filter_map(|(id, c)| Some((c.waiting?, *id)))
            .min()
            .map(|(_, id)| id)
    }

    pub(super) fn set_task(&mut self, id: u64, task: AbortHandle) {
        if let Some(c) = self.live.get_mut(&id) {
            c.task = Some(task);
        }
    }

    /// A request head arrived (`false`), or its answer went out and the
    /// next head is awaited (`true`).
    pub(super) fn set_waiting(&mut self, id: u64, waiting: bool) {
        if let Some(c) = self.live.get_mut(&id) {
            c.waiting = waiting.then(Instant::now);
        }
    }
}

/// Which peer a connection counts against: its address, or the /64 of an
/// IPv6 one (a host has a whole /64 to pick addresses from).
pub(super) fn peer_of(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Fills `conns` with `n` connections from `peer`, one millisecond
    /// apart from `t0`; their ids.
    fn fill(conns: &mut Conns, peer: IpAddr, n: usize, t0: Instant) -> Vec<u64> {
        (0..n)
            .map(|i| {
                let a = conns
                    .admit(peer, t0 + Duration::from_millis(i as u64))
                    .unwrap();
                assert!(a.evicted.is_none());
                a.id
            })
            .collect()
    }

    #[test]
    fn a_peer_at_its_cap_displaces_its_own_longest_waiting() {
        let mut c = Conns::default();
        let t0 = Instant::now();
        let other = fill(&mut c, ip(2), 10, t0);
        let own = fill(&mut c, ip(1), MAX_PER_PEER, t0 + Duration::from_secs(1));
        // Its first is answering a request: the second is the one to go,
        // not the other peer's older ones.
        c.set_waiting(own[0], false);
        c.admit(ip(1), t0 + Duration::from_secs(9)).unwrap();
        assert!(!c.live.contains_key(&own[1]));
        assert!(c.live.contains_key(&own[0]));
        assert!(other.iter().all(|id| c.live.contains_key(id)));
        assert_eq!(c.live.len(), 10 + MAX_PER_PEER);
        // All of its connections answering requests: the new one is refused.
        for id in c.live.keys().copied().collect::<Vec<_>>() {
            c.set_waiting(id, false);
        }
        assert!(c.admit(ip(1), t0 + Duration::from_secs(10)).is_none());
        // Another peer still gets in.
        assert!(c.admit(ip(3), t0 + Duration::from_secs(10)).is_some());
    }

    #[test]
    fn at_the_total_cap_the_longest_waiting_anywhere_goes() {
        let mut c = Conns::default();
        // A minute ago, so that waiting anew (below) is later than all.
        let t0 = Instant::now() - Duration::from_secs(60);
        let a = fill(&mut c, ip(1), MAX_PER_PEER, t0);
        let b = fill(&mut c, ip(2), MAX_PER_PEER, t0 + Duration::from_secs(1));
        // A kept-alive connection that was just answered waits anew.
        c.set_waiting(a[0], false);
        c.set_waiting(a[0], true);
        c.admit(ip(3), Instant::now()).unwrap();
        assert!(!c.live.contains_key(&a[1]));
        assert!(c.live.contains_key(&a[0]) && c.live.contains_key(&b[0]));
        assert_eq!(c.live.len(), MAX_CONNECTIONS);
    }

    #[test]
    fn an_ipv6_host_is_one_peer_per_64() {
        let p = |s: &str| peer_of(SocketAddr::new(s.parse().unwrap(), 1));
        assert_eq!(p("2001:db8:1:2::1"), p("2001:db8:1:2:ffff::9"));
        assert_ne!(p("2001:db8:1:2::1"), p("2001:db8:1:3::1"));
        assert_eq!(p("::ffff:10.0.0.1"), p("10.0.0.1"));
    }
}
