//! From a raw record (the kernel's or a poller's) to a typed [`Event`]:
//! the one decoder every kind goes through.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use netmem_common::{payload, AbortSource, Event as RawEvent, EventKind, OrphanSource, Payload};

use super::event::{
    Abort, AbortCause, Body, Direction, Event, FigureSource, OrphanEnd, ProtoMem, Protocol,
    RouteException, Sock,
};
use super::key::ip_from;
use crate::hooks::{HookId, Tier};

/// What decoding needs beyond the record itself.
pub struct Decoder<'a> {
    /// `enum skb_drop_reason` value → name on this kernel
    pub drop_reason: &'a dyn Fn(u32) -> String,
    /// SOCK_MIN_SNDBUF on this kernel (tcp_check_oom's tcp_mem test)
    pub sock_min_sndbuf: i64,
    /// procfs figures of the last interval, for what the kernel could not read
    pub max_orphans: Option<i64>,
    pub orphans: Option<i64>,
    /// the tier serving a hook on this kernel
    pub tier: &'a dyn Fn(HookId) -> Option<Tier>,
    /// CLOCK_MONOTONIC ns to wall clock
    pub wall: &'a dyn Fn(u64) -> SystemTime,
    /// The run's names: a pid's name and a cgroup id's cgroup, as far as
    /// they are known (for an orphan's recorded owner)
    pub names: &'a super::names::Names,
}

fn known(v: i64) -> Option<i64> {
    (v >= 0).then_some(v)
}

fn sock_of(raw: &RawEvent) -> Option<Sock> {
    let s = &raw.sock;
    (s.present != 0).then(|| Sock {
        local: SocketAddr::new(ip_from(s.family, &s.laddr), s.lport),
        remote: SocketAddr::new(ip_from(s.family, &s.raddr), s.rport),
        protocol: Protocol::from_ipproto(s.protocol),
        state: s.state,
        rmem_alloc: s.rmem_alloc,
        rcvbuf: s.rcvbuf,
        wmem_queued: s.wmem_queued,
        wmem_alloc: s.wmem_alloc,
        sndbuf: s.sndbuf,
        fwd_alloc: s.fwd_alloc,
        drops: s.drops,
    })
}

fn payload_of<P: Payload>(raw: &RawEvent) -> P {
    P::from_args(&raw.args)
}

impl Decoder<'_> {
    /// Decodes one ring buffer (or poller) record; None for an unknown kind.
    /// One match arm per kind, on purpose: each kind's whole decoding is in
    /// one place, which splitting the function would scatter.
    pub fn decode(&self, raw: &RawEvent) -> Option<Event> {
        let kind = EventKind::from_u32(raw.kind)?;
        let protocol = Protocol::from_ipproto(raw.sock.protocol);
        let proto_mem = |pages| ProtoMem { protocol, pages };
        let body = match kind {
            EventKind::ExceedBufLimit => {
                let p: payload::ExceedBufLimit = payload_of(raw);
                Body::ExceedBufLimit {
                    allocated_pages: p.allocated_pages,
                    direction: if p.direction == 0 {
                        Direction::Send
                    } else {
                        Direction::Recv
                    },
                    mem: proto_mem([p.mem0, p.mem1, p.mem2]),
                }
            }
            EventKind::RcvqueueFull => {
                let p: payload::RcvqueueFull = payload_of(raw);
                Body::RcvqueueFull {
                    truesize: p.truesize,
                }
            }
            EventKind::AbortOnMemory => {
                Body::AbortOnMemory(self.abort(payload_of(raw), raw, proto_mem))
            }
            EventKind::SkbDrop => {
                let p: payload::SkbDrop = payload_of(raw);
                Body::SkbDrop {
                    reason: (self.drop_reason)(p.reason as u32),
                    truesize: p.truesize,
                    len: p.len,
                }
            }
            EventKind::DestroyWithData => {
                let p: payload::DestroyWithData = payload_of(raw);
                Body::DestroyWithData {
                    unread_bytes: p.unread_bytes,
                    unacked_bytes: p.unacked_bytes,
                }
            }
            EventKind::OrphanBorn => {
                let p: payload::OrphanBorn = payload_of(raw);
                Body::OrphanBorn {
                    bytes: p.bytes,
                    via: OrphanSource::from_u32(p.source as u32),
                }
            }
            EventKind::OrphanGone => {
                let p: payload::OrphanGone = payload_of(raw);
                let last_state = p.last_state as u8;
                Body::OrphanGone {
                    lifetime: known(p.lifetime_ns).map(|ns| Duration::from_nanos(ns as u64)),
                    bytes_at_birth: p.bytes_at_birth,
                    last_state,
                    ended: OrphanEnd::of(last_state, p.aborted_on_memory != 0),
                }
            }
            EventKind::PressureEnter => {
                let p: payload::PressureEnter = payload_of(raw);
                Body::PressureEnter {
                    allocated_pages: p.allocated_pages,
                    tcp_mem_pages: [p.mem0, p.mem1, p.mem2],
                }
            }
            EventKind::PressureLeave => {
                let p: payload::PressureLeave = payload_of(raw);
                Body::PressureLeave {
                    allocated_pages: p.allocated_pages,
                    tcp_mem_pages: [p.mem0, p.mem1, p.mem2],
                    duration: None,
                }
            }
            EventKind::RouteException => {
                let p: payload::RouteException = payload_of(raw);
                let fam = p.family as u8;
                let r = &raw.route;
                let gw = ip_from(fam, &r.gateway);
                let dev: Vec<u8> = r.dev.iter().copied().take_while(|&b| b != 0).collect();
                Body::RouteException(RouteException {
                    family: fam,
                    dst: ip_from(fam, &r.dst),
                    gateway: (!gw.is_unspecified()).then_some(gw),
                    dev: (!dev.is_empty()).then(|| String::from_utf8_lossy(&dev).into_owned()),
                    pmtu: p.pmtu,
                })
            }
            EventKind::Synthetic => {
                let p: payload::Synthetic = payload_of(raw);
                Body::Synthetic { seq: p.seq }
            }
            // Judged in userspace (`memcg::PressureWatch`); a record of it
            // from the ring is not one netmem's programs wrote.
            EventKind::CgroupSocketPressure => return None,
        };
        let family = match &body {
            Body::RouteException(r) => r.family,
            _ => raw.sock.family,
        };
        let hook = HookId::of_event(kind, family);
        let owner = self.owner_of(kind, raw);
        Some(Event {
            ts: (self.wall)(raw.ts_ns),
            hook,
            tier: hook.and_then(|h| (self.tier)(h)),
            group: (kind != EventKind::RouteException).then_some(raw.group),
            sock: sock_of(raw),
            owner,
            proxy: None,
            body,
        })
    }

    fn abort(
        &self,
        p: payload::AbortOnMemory,
        raw: &RawEvent,
        proto_mem: impl Fn([i64; 3]) -> ProtoMem,
    ) -> Abort {
        let (orphans, orphans_source) = match known(p.orphans) {
            Some(v) => (Some(v), FigureSource::Kernel),
            None => (self.orphans, FigureSource::Sockstat),
        };
        let (max_orphans, max_orphans_source) = match known(p.max_orphans) {
            Some(v) => (Some(v), FigureSource::Kernel),
            None => (self.max_orphans, FigureSource::Procfs),
        };
        let shift = known(p.shift);
        let cause = AbortCause::of(
            orphans,
            shift.unwrap_or(0),
            max_orphans,
            p.allocated_pages,
            p.mem2,
            raw.sock.wmem_queued as i64,
            self.sock_min_sndbuf,
        );
        // The abort happened, so one of tcp_check_oom's two tests held. When
        // the orphans test cannot be replayed (no orphan count readable in
        // the kernel: a kernel without CONFIG_KALLSYMS_ALL, where sockstat's
        // later figure may be back under the limit; or the shift unknown)
        // but the tcp_mem test, replayed on the kernel's own figures of that
        // moment and the socket's, is false, it was the orphans test: said
        // as inferred.
        let by_elimination = cause == AbortCause::Unknown
            && raw.sock.present != 0
            && known(p.allocated_pages).is_some()
            && p.mem2 > 0;
        let cause = if by_elimination {
            AbortCause::Orphans
        } else {
            cause
        };
        Abort {
            cause,
            via: AbortSource::from_u32(p.source as u32),
            orphans,
            orphans_source,
            shift,
            max_orphans,
            max_orphans_source,
            allocated_pages: p.allocated_pages,
            mem: proto_mem([p.mem0, p.mem1, p.mem2]),
            sock_min_sndbuf: self.sock_min_sndbuf,
            kernel_log: None,
            cause_inferred: by_elimination,
        }
    }
}

/// A decoder with fixed figures (SOCK_MIN_SNDBUF 4608, 7 orphans of 100
/// allowed, every hook on the tracepoint tier), for tests.
#[cfg(test)]
pub(crate) fn decoder_for_tests<'a>(
    names: &'a dyn Fn(u32) -> String,
    known: &'a super::names::Names,
) -> Decoder<'a> {
    Decoder {
        drop_reason: names,
        sock_min_sndbuf: 4608,
        max_orphans: Some(100),
        orphans: Some(7),
        tier: &|_| Some(Tier::Tracepoint),
        wall: &|_| SystemTime::UNIX_EPOCH,
        names: known,
    }
}

impl Decoder<'_> {
    /// The owner the kernel (or the orphan poller) recorded with an orphan:
    /// the closing process, or only the socket's cgroup.
    fn owner_of(&self, kind: EventKind, raw: &RawEvent) -> Option<super::owner::EventOwner> {
        use super::owner::{EventOwner, OwnerVia};
        let names = self.names;
        let (pid, cg, name) = match kind {
            EventKind::OrphanBorn => {
                let p: payload::OrphanBorn = payload_of(raw);
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&p.owner_comm0.to_ne_bytes());
                b[8..].copy_from_slice(&p.owner_comm1.to_ne_bytes());
                let n: Vec<u8> = b.iter().copied().take_while(|c| *c != 0).collect();
                let n = (!n.is_empty()).then(|| String::from_utf8_lossy(&n).into_owned());
                (p.owner_pid as u32, p.owner_cgroup as u64, n)
            }
            EventKind::OrphanGone => {
                let p: payload::OrphanGone = payload_of(raw);
                (p.owner_pid as u32, p.owner_cgroup as u64, None)
            }
            _ => return None,
        };
        if pid == 0 && cg == 0 {
            return None;
        }
        Some(EventOwner {
            pid: (pid != 0).then_some(pid),
            comm: name.or_else(|| (pid != 0).then(|| names.comm(pid)).flatten()),
            cgroup: (cg != 0).then(|| names.cgroup(cg)).flatten(),
            cgroup_id: (cg != 0).then_some(cg),
            via: if pid != 0 {
                OwnerVia::Closer
            } else {
                OwnerVia::Socket
            },
        })
    }
}

/// A raw record of `p`'s kind about `sock`, for tests.
#[cfg(test)]
pub(crate) fn raw_for_tests<P: Payload>(p: P, sock: netmem_common::SockInfo) -> RawEvent {
    let mut e = crate::polling::raw_event(p, 0, netmem_common::GroupKey::UNATTRIBUTED);
    e.sock = sock;
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{SockInfo, AF_INET};

    fn raw<P: Payload>(p: P, sock: SockInfo) -> RawEvent {
        raw_for_tests(p, sock)
    }

    #[test]
    fn abort_uses_kernel_figures_then_procfs() {
        let names = |_| String::new();
        let known = crate::model::names::Names::default();
        let d = decoder_for_tests(&names, &known);
        let sock = SockInfo {
            present: 1,
            wmem_queued: 100_000,
            ..Default::default()
        };
        let p = payload::AbortOnMemory {
            shift: 0,
            orphans: 3,
            max_orphans: 2,
            allocated_pages: 10,
            mem0: 1,
            mem1: 2,
            mem2: 1000,
            source: AbortSource::CheckOom as i64,
        };
        let e = d.decode(&raw(p, sock)).unwrap();
        let Body::AbortOnMemory(a) = &e.body else {
            panic!()
        };
        assert_eq!(a.cause, AbortCause::Orphans);
        assert_eq!(a.orphans_source, FigureSource::Kernel);
        assert_eq!(a.via, Some(AbortSource::CheckOom));
        assert_eq!(e.hook, Some(HookId::TcpCheckOom));
        let p = payload::AbortOnMemory {
            shift: -1,
            orphans: -1,
            max_orphans: -1,
            allocated_pages: 5000,
            source: AbortSource::Reset as i64,
            ..p
        };
        let e = d.decode(&raw(p, sock)).unwrap();
        let Body::AbortOnMemory(a) = &e.body else {
            panic!()
        };
        assert_eq!(a.cause, AbortCause::TcpMem);
        assert!(!a.cause_inferred);
        assert_eq!(a.orphans, Some(7));
        assert_eq!(a.max_orphans_source, FigureSource::Procfs);
        assert_eq!(a.shift, None);
    }

    /// No orphan count in the kernel (sockstat says 7 of 100 by the time
    /// it is read) and the tcp_mem test false on the kernel's figures: the
    /// abort can only have been the orphans test, and says it inferred it.
    #[test]
    fn abort_without_kernel_orphans_is_orphans_by_elimination() {
        let names = |_| String::new();
        let known = crate::model::names::Names::default();
        let d = decoder_for_tests(&names, &known);
        let sock = SockInfo {
            present: 1,
            wmem_queued: 100_000,
            ..Default::default()
        };
        let p = payload::AbortOnMemory {
            shift: 1,
            orphans: -1,
            max_orphans: -1,
            allocated_pages: 10,
            mem0: 1,
            mem1: 2,
            mem2: 1000,
            source: AbortSource::CheckOom as i64,
        };
        let decoded = |p, sock| {
            let e = d.decode(&raw(p, sock)).unwrap();
            let Body::AbortOnMemory(a) = e.body else {
                panic!()
            };
            (a.cause, a.cause_inferred, a.orphans_source)
        };
        assert_eq!(
            decoded(p, sock),
            (AbortCause::Orphans, true, FigureSource::Sockstat)
        );
        // Without the socket or tcp_mem's figures nothing is eliminated.
        let bare = SockInfo::default();
        assert_eq!(decoded(p, bare).0, AbortCause::Unknown);
        let no_mem = payload::AbortOnMemory { mem2: 0, ..p };
        assert_eq!(decoded(no_mem, sock).0, AbortCause::Unknown);
    }

    #[test]
    fn route_exception_has_no_group_and_picks_its_hook() {
        let names = |_| String::new();
        let known = crate::model::names::Names::default();
        let d = decoder_for_tests(&names, &known);
        let mut r = raw(
            payload::RouteException {
                family: AF_INET as i64,
                pmtu: 1280,
            },
            SockInfo::default(),
        );
        r.route.dst[..4].copy_from_slice(&[10, 2, 0, 2]);
        r.route.dev[..4].copy_from_slice(b"veth");
        let e = d.decode(&r).unwrap();
        assert_eq!(e.group, None);
        assert_eq!(e.hook, Some(HookId::RouteExceptionV4));
        let Body::RouteException(x) = &e.body else {
            panic!()
        };
        assert_eq!(x.dst.to_string(), "10.2.0.2");
        assert_eq!(x.gateway, None);
        assert_eq!(x.dev.as_deref(), Some("veth"));
        assert!(x.is_pmtu());
    }
}
