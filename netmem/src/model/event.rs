//! A decoded event: one Rust type per kind, with the domain rules (which
//! limit an abort hit, how an orphan ended) computed here, once, from the
//! raw record the kernel (or a poller) produced. Sinks only print these.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use netmem_common::{
    payload, AbortSource, Event as RawEvent, EventKind, GroupKey, OrphanSource, Payload,
    AF_INET6, IPPROTO_TCP, IPPROTO_UDP, TCP_CLOSING, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_STATE_NAMES,
    TCP_TIME_WAIT,
};

use super::group::ip_from;
use crate::hooks::{HookId, Tier};

/// A rare event, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub ts: SystemTime,
    /// The hook that saw it, and that hook's tier on this kernel.
    pub hook: Option<HookId>,
    pub tier: Option<Tier>,
    /// None for route exceptions, which belong to a destination.
    pub group: Option<GroupKey>,
    /// The socket as the kernel read it at that moment, when there was one.
    pub sock: Option<Sock>,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    ExceedBufLimit {
        allocated_pages: i64,
        direction: Direction,
        mem: ProtoMem,
    },
    RcvqueueFull {
        truesize: i64,
    },
    AbortOnMemory(Abort),
    SkbDrop {
        /// the kernel's name without `SKB_DROP_REASON_`
        reason: String,
        truesize: i64,
        len: i64,
    },
    DestroyWithData {
        unread_bytes: i64,
        unacked_bytes: i64,
    },
    OrphanBorn {
        bytes: i64,
        via: Option<OrphanSource>,
    },
    OrphanGone {
        lifetime: Option<Duration>,
        bytes_at_birth: i64,
        last_state: u8,
        ended: OrphanEnd,
    },
    PressureEnter {
        allocated_pages: i64,
        tcp_mem_pages: [i64; 3],
    },
    PressureLeave {
        allocated_pages: i64,
        tcp_mem_pages: [i64; 3],
        /// Since the matching enter, when netmem saw it.
        duration: Option<Duration>,
    },
    RouteException(RouteException),
    Synthetic {
        seq: i64,
    },
}

impl Body {
    pub fn kind(&self) -> EventKind {
        match self {
            Body::ExceedBufLimit { .. } => EventKind::ExceedBufLimit,
            Body::RcvqueueFull { .. } => EventKind::RcvqueueFull,
            Body::AbortOnMemory(_) => EventKind::AbortOnMemory,
            Body::SkbDrop { .. } => EventKind::SkbDrop,
            Body::DestroyWithData { .. } => EventKind::DestroyWithData,
            Body::OrphanBorn { .. } => EventKind::OrphanBorn,
            Body::OrphanGone { .. } => EventKind::OrphanGone,
            Body::PressureEnter { .. } => EventKind::PressureEnter,
            Body::PressureLeave { .. } => EventKind::PressureLeave,
            Body::RouteException(_) => EventKind::RouteException,
            Body::Synthetic { .. } => EventKind::Synthetic,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Send,
    Recv,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Send => "send",
            Direction::Recv => "recv",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Other,
}

impl Protocol {
    pub fn from_ipproto(p: u8) -> Protocol {
        match p {
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            _ => Protocol::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Other => "other",
        }
    }
}

/// A protocol's memory limits (tcp_mem or udp_mem), pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoMem {
    pub protocol: Protocol,
    pub pages: [i64; 3],
}

/// The socket of an event, in bytes as `ss -m` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sock {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub protocol: Protocol,
    pub state: u8,
    pub rmem_alloc: i32,
    pub rcvbuf: i32,
    pub wmem_queued: i32,
    pub wmem_alloc: i32,
    pub sndbuf: i32,
    pub fwd_alloc: i32,
    pub drops: i32,
}

/// Where a figure of an abort came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureSource {
    /// read by the kernel program at the moment of the abort
    Kernel,
    /// /proc/net/sockstat of the last interval
    Sockstat,
    /// /proc/sys of the last interval
    Procfs,
}

impl FigureSource {
    pub fn name(self) -> &'static str {
        match self {
            FigureSource::Kernel => "kernel",
            FigureSource::Sockstat => "sockstat",
            FigureSource::Procfs => "procfs",
        }
    }
}

/// Which of tcp_check_oom()'s two tests fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    Orphans,
    TcpMem,
    Both,
    Unknown,
}

impl AbortCause {
    /// tcp_check_oom()'s two tests, on the figures of the moment:
    /// `orphans << shift > max_orphans`, and `wmem_queued > SOCK_MIN_SNDBUF`
    /// with `allocated > tcp_mem[2]`. Unknown figures test false.
    pub fn of(
        orphans: Option<i64>,
        shift: i64,
        max_orphans: Option<i64>,
        allocated: i64,
        tcp_mem_max: i64,
        wmem_queued: i64,
        sock_min_sndbuf: i64,
    ) -> AbortCause {
        let too_many = match (orphans, max_orphans) {
            (Some(o), Some(m)) => (o << shift.clamp(0, 16)) > m,
            _ => false,
        };
        let out_of_mem =
            wmem_queued > sock_min_sndbuf && tcp_mem_max > 0 && allocated > tcp_mem_max;
        match (too_many, out_of_mem) {
            (true, true) => AbortCause::Both,
            (true, false) => AbortCause::Orphans,
            (false, true) => AbortCause::TcpMem,
            (false, false) => AbortCause::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AbortCause::Both => "orphans+tcp_mem",
            AbortCause::Orphans => "orphans",
            AbortCause::TcpMem => "tcp_mem",
            AbortCause::Unknown => "unknown",
        }
    }
}

/// An abort on memory with every figure the kernel compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Abort {
    pub cause: AbortCause,
    pub via: Option<AbortSource>,
    pub orphans: Option<i64>,
    pub orphans_source: FigureSource,
    /// None when the tier cannot know it (the reset does not carry it).
    pub shift: Option<i64>,
    pub max_orphans: Option<i64>,
    pub max_orphans_source: FigureSource,
    pub allocated_pages: i64,
    pub mem: ProtoMem,
    pub sock_min_sndbuf: i64,
    /// Polled aborts: the kernel log lines seen in the interval (too many
    /// orphaned sockets, out of memory -- consider tuning tcp_mem).
    pub kernel_log: Option<(u64, u64)>,
}

/// How an orphan's life ended, from the state it left for CLOSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanEnd {
    Graceful,
    ResetOrTimeout,
    AbortedOnMemory,
    Unknown,
}

impl OrphanEnd {
    pub fn of(last_state: u8, aborted_on_memory: bool) -> OrphanEnd {
        if aborted_on_memory {
            return OrphanEnd::AbortedOnMemory;
        }
        match last_state {
            0 => OrphanEnd::Unknown,
            TCP_LAST_ACK | TCP_CLOSING | TCP_FIN_WAIT2 | TCP_TIME_WAIT => OrphanEnd::Graceful,
            _ => OrphanEnd::ResetOrTimeout,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OrphanEnd::Graceful => "graceful",
            OrphanEnd::ResetOrTimeout => "reset_or_timeout",
            OrphanEnd::AbortedOnMemory => "aborted_on_memory",
            OrphanEnd::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteException {
    pub family: u8,
    pub dst: IpAddr,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    /// 0 for a redirect
    pub pmtu: i64,
}

impl RouteException {
    pub fn is_pmtu(&self) -> bool {
        self.pmtu > 0
    }
}

pub fn state_name(s: u8) -> &'static str {
    TCP_STATE_NAMES
        .get(s as usize)
        .copied()
        .unwrap_or("UNKNOWN")
}

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
        };
        let family = match &body {
            Body::RouteException(r) => r.family,
            _ => raw.sock.family,
        };
        let hook = HookId::of_event(kind, family);
        Some(Event {
            ts: (self.wall)(raw.ts_ns),
            hook,
            tier: hook.and_then(|h| (self.tier)(h)),
            group: (kind != EventKind::RouteException).then_some(raw.group),
            sock: sock_of(raw),
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
        }
    }
}

/// A family's name as the JSON contract spells it.
pub fn family_name(family: u8) -> &'static str {
    if family == AF_INET6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::{SockInfo, AF_INET, TCP_FIN_WAIT1};

    pub(crate) fn decoder_for_tests<'a>(names: &'a dyn Fn(u32) -> String) -> Decoder<'a> {
        Decoder {
            drop_reason: names,
            sock_min_sndbuf: 4608,
            max_orphans: Some(100),
            orphans: Some(7),
            tier: &|_| Some(Tier::Tracepoint),
            wall: &|_| SystemTime::UNIX_EPOCH,
        }
    }

    fn raw<P: Payload>(p: P, sock: SockInfo) -> RawEvent {
        RawEvent {
            ts_ns: 0,
            kind: P::KIND as u32,
            _pad: 0,
            sock,
            group: GroupKey::UNATTRIBUTED,
            args: p.into_args(),
            route: Default::default(),
        }
    }

    #[test]
    fn abort_cause_rules() {
        use AbortCause::*;
        // orphans << shift > max_orphans
        assert_eq!(AbortCause::of(Some(60), 1, Some(100), 0, 10, 0, 4608), Orphans);
        assert_eq!(AbortCause::of(Some(60), 0, Some(100), 0, 10, 0, 4608), Unknown);
        // tcp_mem needs queued data above SOCK_MIN_SNDBUF too
        assert_eq!(AbortCause::of(Some(0), 0, Some(100), 50, 10, 9000, 4608), TcpMem);
        assert_eq!(AbortCause::of(Some(0), 0, Some(100), 50, 10, 100, 4608), Unknown);
        assert_eq!(AbortCause::of(Some(5), 0, Some(0), 50, 10, 9000, 4608), Both);
        assert_eq!(AbortCause::of(None, 0, None, 0, 0, 0, 4608), Unknown);
        assert_eq!(Both.name(), "orphans+tcp_mem");
    }

    #[test]
    fn abort_uses_kernel_figures_then_procfs() {
        let names = |_| String::new();
        let d = decoder_for_tests(&names);
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
        let Body::AbortOnMemory(a) = &e.body else { panic!() };
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
        let Body::AbortOnMemory(a) = &e.body else { panic!() };
        assert_eq!(a.cause, AbortCause::TcpMem);
        assert_eq!(a.orphans, Some(7));
        assert_eq!(a.max_orphans_source, FigureSource::Procfs);
        assert_eq!(a.shift, None);
    }

    #[test]
    fn orphan_endings() {
        assert_eq!(OrphanEnd::of(TCP_LAST_ACK, false), OrphanEnd::Graceful);
        assert_eq!(OrphanEnd::of(TCP_FIN_WAIT1, false), OrphanEnd::ResetOrTimeout);
        assert_eq!(OrphanEnd::of(TCP_FIN_WAIT1, true), OrphanEnd::AbortedOnMemory);
        assert_eq!(OrphanEnd::of(0, false), OrphanEnd::Unknown);
    }

    #[test]
    fn route_exception_has_no_group_and_picks_its_hook() {
        let names = |_| String::new();
        let d = decoder_for_tests(&names);
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
        let Body::RouteException(x) = &e.body else { panic!() };
        assert_eq!(x.dst.to_string(), "10.2.0.2");
        assert_eq!(x.gateway, None);
        assert_eq!(x.dev.as_deref(), Some("veth"));
        assert!(x.is_pmtu());
    }
}
