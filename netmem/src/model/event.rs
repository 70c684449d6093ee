//! A decoded event: one Rust type per kind, with the domain rules (which
//! limit an abort hit, how an orphan ended) computed here, once, from the
//! raw record the kernel (or a poller) produced. Sinks only print these.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use netmem_common::{
    AbortSource, EventKind, GroupKey, OrphanSource, AF_INET6, IPPROTO_TCP, IPPROTO_UDP,
    TCP_CLOSING, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_STATE_NAMES, TCP_TIME_WAIT,
};

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
    /// Who owned the socket, when owners are asked for or the kernel
    /// recorded it (orphans closed by a process).
    pub owner: Option<super::owner::EventOwner>,
    /// What the proxy in front calls its group (see [`super::proxy`]).
    pub proxy: Option<std::sync::Arc<super::proxy::GroupProxy>>,
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
    /// A cgroup's sockets came under memory pressure of their own
    /// (`memcg::local_pressure`); the cgroup is the event's owner.
    CgroupSocketPressure {
        memcg: std::sync::Arc<super::memcg::Memcg>,
        local: super::memcg::Local,
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
            Body::CgroupSocketPressure { .. } => EventKind::CgroupSocketPressure,
        }
    }
}

netmem_common::named_enum! {
    /// Which way a buffer limit was exceeded. `ALL` lists every label value
    /// (serve exports each at 0 from the start).
    pub enum Direction {
        Send = 0 => "send",
        Recv = 1 => "recv",
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

netmem_common::named_enum! {
    /// Which of tcp_check_oom()'s two tests fired. `ALL` lists every label
    /// value (serve exports each at 0 from the start).
    pub enum AbortCause {
        Orphans = 0 => "orphans",
        TcpMem = 1 => "tcp_mem",
        Both = 2 => "orphans+tcp_mem",
        Unknown = 3 => "unknown",
    }
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
    /// The cause was inferred ([`Abort::infer_cause`]), not tested on the
    /// figures tcp_check_oom compared.
    pub cause_inferred: bool,
}

impl Abort {
    /// A polled abort (nstat's counter moved) has no socket and no shift,
    /// so tcp_check_oom's tests cannot be replayed. What can be said: the
    /// kernel log's message for the interval names the limit (rate-limited,
    /// so its absence proves nothing); else the host figures do when a
    /// limit is past even without the socket's part (orphans unshifted over
    /// tcp_max_orphans; allocated pages over tcp_mem's hard limit, which
    /// aborts any socket with data queued).
    pub fn infer_cause(&mut self, kernel_log: Option<(u64, u64)>) {
        self.kernel_log = kernel_log;
        let (log_orphans, log_mem) = kernel_log.unwrap_or((0, 0));
        let cause = if log_orphans > 0 || log_mem > 0 {
            match (log_orphans > 0, log_mem > 0) {
                (true, true) => AbortCause::Both,
                (true, false) => AbortCause::Orphans,
                _ => AbortCause::TcpMem,
            }
        } else {
            let orphans = matches!((self.orphans, self.max_orphans), (Some(o), Some(m)) if o > m);
            let mem = self.mem.pages[2] > 0 && self.allocated_pages > self.mem.pages[2];
            match (orphans, mem) {
                (true, true) => AbortCause::Both,
                (true, false) => AbortCause::Orphans,
                (false, true) => AbortCause::TcpMem,
                (false, false) => AbortCause::Unknown,
            }
        };
        self.cause = cause;
        self.cause_inferred = cause != AbortCause::Unknown;
    }
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
    use netmem_common::TCP_FIN_WAIT1;

    #[test]
    fn abort_cause_rules() {
        use AbortCause::*;
        // orphans << shift > max_orphans
        assert_eq!(
            AbortCause::of(Some(60), 1, Some(100), 0, 10, 0, 4608),
            Orphans
        );
        assert_eq!(
            AbortCause::of(Some(60), 0, Some(100), 0, 10, 0, 4608),
            Unknown
        );
        // tcp_mem needs queued data above SOCK_MIN_SNDBUF too
        assert_eq!(
            AbortCause::of(Some(0), 0, Some(100), 50, 10, 9000, 4608),
            TcpMem
        );
        assert_eq!(
            AbortCause::of(Some(0), 0, Some(100), 50, 10, 100, 4608),
            Unknown
        );
        assert_eq!(
            AbortCause::of(Some(5), 0, Some(0), 50, 10, 9000, 4608),
            Both
        );
        assert_eq!(AbortCause::of(None, 0, None, 0, 0, 0, 4608), Unknown);
        assert_eq!(Both.name(), "orphans+tcp_mem");
    }

    #[test]
    fn polled_abort_causes_are_inferred_and_said() {
        use AbortCause::*;
        let abort = |orphans, max, allocated, hard| Abort {
            cause: Unknown,
            via: Some(AbortSource::Nstat),
            orphans: Some(orphans),
            orphans_source: FigureSource::Sockstat,
            shift: None,
            max_orphans: Some(max),
            max_orphans_source: FigureSource::Procfs,
            allocated_pages: allocated,
            mem: ProtoMem {
                protocol: Protocol::Tcp,
                pages: [hard / 2, hard * 3 / 4, hard],
            },
            sock_min_sndbuf: 4608,
            kernel_log: None,
            cause_inferred: false,
        };
        let inferred = |mut a: Abort, log| {
            a.infer_cause(log);
            (a.cause, a.cause_inferred)
        };
        // The log names the limit, whatever the figures say.
        assert_eq!(
            inferred(abort(0, 100, 0, 1000), Some((2, 0))),
            (Orphans, true)
        );
        assert_eq!(
            inferred(abort(0, 100, 0, 1000), Some((0, 1))),
            (TcpMem, true)
        );
        assert_eq!(inferred(abort(0, 100, 0, 1000), Some((1, 1))), (Both, true));
        // Without it, a limit past even without the socket's part.
        assert_eq!(inferred(abort(101, 100, 0, 1000), None), (Orphans, true));
        assert_eq!(
            inferred(abort(5, 100, 1001, 1000), Some((0, 0))),
            (TcpMem, true)
        );
        assert_eq!(inferred(abort(101, 100, 1001, 1000), None), (Both, true));
        // Nothing past: unknown, and not called inferred.
        assert_eq!(inferred(abort(99, 100, 999, 1000), None), (Unknown, false));
        let mut a = abort(0, 100, 0, 1000);
        a.infer_cause(Some((3, 0)));
        assert_eq!(a.kernel_log, Some((3, 0)));
    }

    #[test]
    fn orphan_endings() {
        assert_eq!(OrphanEnd::of(TCP_LAST_ACK, false), OrphanEnd::Graceful);
        assert_eq!(
            OrphanEnd::of(TCP_FIN_WAIT1, false),
            OrphanEnd::ResetOrTimeout
        );
        assert_eq!(
            OrphanEnd::of(TCP_FIN_WAIT1, true),
            OrphanEnd::AbortedOnMemory
        );
        assert_eq!(OrphanEnd::of(0, false), OrphanEnd::Unknown);
    }
}
