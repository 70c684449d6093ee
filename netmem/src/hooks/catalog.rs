//! The hook catalog: every hook netmem has, written once. Per hook: its
//! display name, the programs of each kernel tier (best first), the events
//! it streams, and what userspace polls when no kernel tier can serve it.
//! Everything else (attaching, the probes report, which poller runs, which
//! tier an event came from, BTF notes, the tests' hook list) derives from
//! [`HOOKS`].

use netmem_common::{EventKind, AF_INET6};
use serde::{Deserialize, Serialize};

/// Mechanisms, best first: the order tiers are tried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// fentry/fexit (BPF trampolines): cheapest, typed arguments
    Fentry,
    /// kprobe/kretprobe
    Kprobe,
    /// stable or raw tracepoints
    Tracepoint,
    /// procfs/netlink read by userspace every interval
    Polling,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Fentry => "fentry",
            Tier::Kprobe => "kprobe",
            Tier::Tracepoint => "tracepoint",
            Tier::Polling => "polling",
        }
    }
}

/// Every hook. The order is [`HOOKS`]' order (attach order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HookId {
    InetSockSetState,
    SockExceedBufLimit,
    SockRcvqueueFull,
    TcpSendReset,
    TcpDestroySock,
    KfreeSkb,
    TcpCheckOom,
    Orphans,
    MemoryPressure,
    RouteExceptionV4,
    RouteExceptionV6,
}

/// How a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
    RawTp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FEntry => "fentry",
            Kind::FExit => "fexit",
            Kind::KProbe => "kprobe",
            Kind::KRetProbe => "kretprobe",
            Kind::RawTp => "raw_tracepoint",
        }
    }
}

/// One program of the object and where it attaches. `args` are the
/// parameters (position, type) it reads, checked against the kernel's BTF
/// prototype before a kprobe reads them from registers.
pub struct Prog {
    pub program: &'static str,
    pub kind: Kind,
    pub target: &'static str,
    pub args: &'static [(usize, &'static str)],
    /// A missing optional program degrades the tier instead of failing it.
    pub optional: bool,
}

/// What a tier needs besides its own programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// tcp_check_oom's tracepoint tier: the tcp_send_reset program, on a
    /// kernel whose resets carry a reason (6.10+).
    ResetReasons,
}

pub struct TierSpec {
    pub tier: Tier,
    pub progs: &'static [Prog],
    pub needs: Needs,
}

/// The userspace reader that stands in for a hook on the polling tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poller {
    /// nstat TCPAbortOnMemory and the kernel log
    Aborts,
    /// sock_diag dumps diffed by cookie
    Orphans,
    /// /proc/net/protocols' press flag
    Pressure,
    /// rtnetlink dump of cached routes, per family
    Routes(u8),
}

pub struct Hook {
    pub id: HookId,
    /// As shown in `probes`, JSON `hook` and the coverage line.
    pub name: &'static str,
    pub tiers: &'static [TierSpec],
    /// What userspace reads when no kernel tier can serve the hook.
    pub polling: Option<(Poller, &'static str)>,
    /// The events this hook streams.
    pub events: &'static [EventKind],
}

impl HookId {
    pub fn hook(self) -> &'static Hook {
        HOOKS
            .iter()
            .find(|h| h.id == self)
            .expect("every HookId has a catalog entry (tested)")
    }

    pub fn name(self) -> &'static str {
        self.hook().name
    }

    /// The hook whose tier a streamed event reports. Route exceptions are
    /// the one kind two hooks share: the family in the payload decides.
    pub fn of_event(kind: EventKind, family: u8) -> Option<HookId> {
        if kind == EventKind::RouteException {
            return Some(if family == AF_INET6 {
                HookId::RouteExceptionV6
            } else {
                HookId::RouteExceptionV4
            });
        }
        HOOKS
            .iter()
            .find(|h| h.events.contains(&kind))
            .map(|h| h.id)
    }

    /// The hook a raw tracepoint belongs to (BTF notes name tracepoints).
    pub fn of_tracepoint(tp: &str) -> Option<HookId> {
        HOOKS
            .iter()
            .find(|h| {
                h.tiers
                    .iter()
                    .flat_map(|t| t.progs)
                    .any(|p| p.kind == Kind::RawTp && p.target == tp)
            })
            .map(|h| h.id)
    }
}

const SOCK: &str = "struct sock *";

const fn prog(
    program: &'static str,
    kind: Kind,
    target: &'static str,
    args: &'static [(usize, &'static str)],
) -> Prog {
    Prog {
        program,
        kind,
        target,
        args,
        optional: false,
    }
}

const fn optional(p: Prog) -> Prog {
    Prog {
        optional: true,
        ..p
    }
}

const fn tier(tier: Tier, progs: &'static [Prog]) -> TierSpec {
    TierSpec {
        tier,
        progs,
        needs: Needs::Nothing,
    }
}

/// A stable tracepoint served by one raw tracepoint program of its name.
macro_rules! tracepoint_hook {
    ($id:ident, $name:literal, $tp:literal, [$($ev:ident),*]) => {
        Hook {
            id: HookId::$id,
            name: $name,
            tiers: &[tier(Tier::Tracepoint, &[prog($tp, Kind::RawTp, $tp, &[])])],
            polling: None,
            events: &[$(EventKind::$ev),*],
        }
    };
}

const FNHE_ARGS: &[(usize, &str)] = &[
    (0, "struct fib_nh_common *"),
    (1, "__be32"),
    (2, "__be32"),
    (3, "u32"),
];

/// Every hook, in attach order: the tracepoint hooks first, because the
/// tracepoint tier of tcp_check_oom is the tcp_send_reset program.
pub const HOOKS: &[Hook] = &[
    tracepoint_hook!(InetSockSetState, "sock:inet_sock_set_state", "inet_sock_set_state", []),
    tracepoint_hook!(SockExceedBufLimit, "sock:sock_exceed_buf_limit", "sock_exceed_buf_limit", [ExceedBufLimit]),
    tracepoint_hook!(SockRcvqueueFull, "sock:sock_rcvqueue_full", "sock_rcvqueue_full", [RcvqueueFull]),
    tracepoint_hook!(TcpSendReset, "tcp:tcp_send_reset", "tcp_send_reset", []),
    tracepoint_hook!(TcpDestroySock, "tcp:tcp_destroy_sock", "tcp_destroy_sock", [DestroyWithData]),
    tracepoint_hook!(KfreeSkb, "skb:kfree_skb", "kfree_skb", [SkbDrop]),
    Hook {
        id: HookId::TcpCheckOom,
        name: "tcp_check_oom",
        tiers: &[
            tier(
                Tier::Fentry,
                &[prog("tcp_check_oom_fexit", Kind::FExit, "tcp_check_oom", &[(0, SOCK), (1, "int")])],
            ),
            tier(
                Tier::Kprobe,
                &[
                    prog("tcp_check_oom_entry", Kind::KProbe, "tcp_check_oom", &[(0, SOCK), (1, "int")]),
                    prog("tcp_check_oom_return", Kind::KRetProbe, "tcp_check_oom", &[]),
                ],
            ),
            TierSpec {
                tier: Tier::Tracepoint,
                progs: &[],
                needs: Needs::ResetReasons,
            },
        ],
        polling: Some((
            Poller::Aborts,
            "nstat TcpExtTCPAbortOnMemory and the kernel log's \"too many orphaned sockets\" / \"out of memory -- consider tuning tcp_mem\"",
        )),
        events: &[EventKind::AbortOnMemory],
    },
    Hook {
        id: HookId::Orphans,
        name: "orphans",
        tiers: &[
            tier(
                Tier::Fentry,
                &[
                    prog("tcp_close_fexit", Kind::FExit, "__tcp_close", &[(0, SOCK)]),
                    optional(prog("child_forget_fentry", Kind::FEntry, "inet_child_forget", &[(2, SOCK)])),
                    prog("destroy_sock_fentry", Kind::FEntry, "inet_csk_destroy_sock", &[(0, SOCK)]),
                ],
            ),
            tier(
                Tier::Kprobe,
                &[
                    prog("tcp_close_entry", Kind::KProbe, "__tcp_close", &[(0, SOCK)]),
                    prog("tcp_close_return", Kind::KRetProbe, "__tcp_close", &[]),
                    optional(prog("child_forget_kprobe", Kind::KProbe, "inet_child_forget", &[(2, SOCK)])),
                    prog("destroy_sock_kprobe", Kind::KProbe, "inet_csk_destroy_sock", &[(0, SOCK)]),
                ],
            ),
        ],
        polling: Some((
            Poller::Orphans,
            "sock_diag each interval: orphans (closed TCP sockets: no inode, in FIN_WAIT1/2, CLOSING or LAST_ACK) appearing and vanishing between dumps, so lifetimes are +/- one interval",
        )),
        events: &[EventKind::OrphanBorn, EventKind::OrphanGone],
    },
    Hook {
        id: HookId::MemoryPressure,
        name: "memory_pressure",
        tiers: &[
            tier(
                Tier::Fentry,
                &[
                    prog("pressure_enter_fentry", Kind::FEntry, "tcp_enter_memory_pressure", &[(0, SOCK)]),
                    prog("pressure_leave_fentry", Kind::FEntry, "tcp_leave_memory_pressure", &[(0, SOCK)]),
                ],
            ),
            tier(
                Tier::Kprobe,
                &[
                    prog("pressure_enter_kprobe", Kind::KProbe, "tcp_enter_memory_pressure", &[(0, SOCK)]),
                    prog("pressure_leave_kprobe", Kind::KProbe, "tcp_leave_memory_pressure", &[(0, SOCK)]),
                ],
            ),
        ],
        polling: Some((Poller::Pressure, "/proc/net/protocols TCP `press` flag each interval")),
        events: &[EventKind::PressureEnter, EventKind::PressureLeave],
    },
    Hook {
        id: HookId::RouteExceptionV4,
        name: "route_exception_v4",
        tiers: &[
            tier(Tier::Fentry, &[prog("fnhe_fentry", Kind::FEntry, "update_or_create_fnhe", FNHE_ARGS)]),
            tier(Tier::Kprobe, &[prog("fnhe_kprobe", Kind::KProbe, "update_or_create_fnhe", FNHE_ARGS)]),
        ],
        polling: Some((
            Poller::Routes(netmem_common::AF_INET),
            "rtnetlink dump of cached routes each interval (ip route show cache)",
        )),
        events: &[EventKind::RouteException],
    },
    Hook {
        id: HookId::RouteExceptionV6,
        name: "route_exception_v6",
        tiers: &[
            tier(
                Tier::Fentry,
                &[prog("rt6_exception_fentry", Kind::FEntry, "rt6_insert_exception", &[(0, "struct rt6_info *")])],
            ),
            tier(
                Tier::Kprobe,
                &[prog("rt6_exception_kprobe", Kind::KProbe, "rt6_insert_exception", &[(0, "struct rt6_info *")])],
            ),
        ],
        polling: Some((
            Poller::Routes(AF_INET6),
            "rtnetlink dump of cached IPv6 routes each interval (ip -6 route show cache) and /proc/net/rt6_stats",
        )),
        events: &[EventKind::RouteException],
    },
];

/// How a pass reads every socket's memory, best first: what `probes` and
/// each pass' `census` field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CensusTier {
    /// BPF socket iterators (5.9+) sum each group in the kernel: one
    /// record per group reaches user space
    #[value(name = "bpf-iter")]
    BpfIter,
    /// sock_diag dumps: one record per socket, summed in user space (what
    /// `ss` reads); also whenever each socket is needed (`--owners`, the
    /// orphan poller, a drill-down)
    #[value(name = "sock-diag")]
    SockDiag,
}

impl CensusTier {
    pub fn name(self) -> &'static str {
        match self {
            CensusTier::BpfIter => "bpf_iter",
            CensusTier::SockDiag => "sock_diag",
        }
    }
}

/// The census tier's programs (netmem-ebpf/src/census.rs) and the kernel
/// iterator each attaches to (`bpf_iter_<target>`): TCP first, whose walk
/// marks the listening ports UDP's is grouped by.
pub const CENSUS_PROGRAMS: &[(&str, &str)] = &[("census_tcp", "tcp"), ("census_udp", "udp")];

/// The hooks that carry netmem's mission (the ones the design card names),
/// as opposed to the stable tracepoints every kernel has.
pub fn mission_hooks() -> impl Iterator<Item = &'static Hook> {
    HOOKS.iter().filter(|h| h.polling.is_some())
}

/// Functions whose presence in kallsyms decides the kprobe tier, and the
/// globals the orphan figures are read from.
pub fn wanted_symbols() -> Vec<&'static str> {
    let mut v: Vec<&str> = HOOKS
        .iter()
        .flat_map(|h| h.tiers.iter())
        .flat_map(|t| t.progs.iter())
        .filter(|p| p.kind != Kind::RawTp)
        .map(|p| p.target)
        .collect();
    v.extend([
        "tcp_orphan_cache",
        "tcp_orphan_count",
        "sysctl_tcp_max_orphans",
    ]);
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_one_entry_in_order() {
        let ids: Vec<HookId> = HOOKS.iter().map(|h| h.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "HOOKS lists each HookId once, in enum order");
    }

    #[test]
    fn tiers_are_ordered_best_first() {
        for h in HOOKS {
            let tiers: Vec<Tier> = h.tiers.iter().map(|t| t.tier).collect();
            let mut sorted = tiers.clone();
            sorted.sort();
            assert_eq!(tiers, sorted, "{}", h.name);
        }
    }

    #[test]
    fn program_names_are_unique() {
        let mut names: Vec<&str> = HOOKS
            .iter()
            .flat_map(|h| h.tiers.iter())
            .flat_map(|t| t.progs.iter())
            .map(|p| p.program)
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    /// README's tier table and support table have a row for every hook
    /// that has tiers of its own (the stable tracepoints share one row).
    #[test]
    fn readme_tables_name_every_mission_hook() {
        let readme = include_str!("../../../README.md");
        for section in ["## How it works", "## Support"] {
            let at = readme.find(section).expect(section);
            let text = &readme[at..];
            for h in mission_hooks() {
                assert!(
                    text.contains(&format!("| {} |", h.name)),
                    "README {section} has no row for {}",
                    h.name
                );
            }
        }
    }

    #[test]
    fn every_streamed_kind_has_a_hook() {
        for k in EventKind::ALL {
            // Neither is streamed by a hook: the benchmark's, and the
            // cgroup rule's, judged in userspace.
            if matches!(k, EventKind::Synthetic | EventKind::CgroupSocketPressure) {
                continue;
            }
            assert!(HookId::of_event(*k, 2).is_some(), "{k:?}");
        }
        assert_eq!(
            HookId::of_event(EventKind::RouteException, AF_INET6),
            Some(HookId::RouteExceptionV6)
        );
        assert_eq!(HookId::of_tracepoint("kfree_skb"), Some(HookId::KfreeSkb));
    }
}
