//! Loads the embedded eBPF object with the running kernel's layout and gives
//! every hook the best mechanism this kernel allows: fentry/fexit, then
//! kprobe/kretprobe, then a (raw) tracepoint, then userspace polling. Each
//! better tier that was not used is reported with the reason, and a hook that
//! cannot be served at all says so while the others run.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{FEntry, FExit, KProbe, Program, RawTracePoint},
    Btf, Ebpf, EbpfLoader,
};
use netmem_common::{GroupCounters, GroupKey, KernelLayout, Setting, Stat, NO_ARG};
use serde::Serialize;

use crate::btf_offsets::KernelBtf;
use crate::kallsyms::Kallsyms;

/// The eBPF object built by build.rs from netmem-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netmem"));

/// Mechanisms, best first: the order tiers are tried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
    RawTp,
}

/// One program of the object and where it attaches. `args` are the
/// parameters (position, type) it reads, checked against the kernel's BTF
/// prototype before a kprobe reads them from registers.
struct Prog {
    program: &'static str,
    kind: Kind,
    target: &'static str,
    args: &'static [(usize, &'static str)],
    /// A missing optional program degrades the tier instead of failing it.
    optional: bool,
}

struct TierSpec {
    tier: Tier,
    progs: &'static [Prog],
}

pub struct HookSpec {
    pub name: &'static str,
    pub what: &'static str,
    tiers: &'static [TierSpec],
    /// What userspace reads when no kernel tier can serve the hook.
    pub polling: Option<&'static str>,
}

const SOCK: &str = "struct sock *";

macro_rules! prog {
    ($p:literal, $k:ident, $t:literal) => {
        prog!($p, $k, $t, &[], false)
    };
    ($p:literal, $k:ident, $t:literal, $a:expr) => {
        prog!($p, $k, $t, $a, false)
    };
    ($p:literal, $k:ident, $t:literal, $a:expr, $opt:expr) => {
        Prog {
            program: $p,
            kind: Kind::$k,
            target: $t,
            args: $a,
            optional: $opt,
        }
    };
}

macro_rules! tracepoint_hook {
    ($name:literal, $prog:literal, $tp:literal, $what:literal) => {
        HookSpec {
            name: $name,
            what: $what,
            tiers: &[TierSpec {
                tier: Tier::Tracepoint,
                progs: &[prog!($prog, RawTp, $tp)],
            }],
            polling: None,
        }
    };
}

/// Every hook, in attach order: the tracepoint hooks first, because the
/// tracepoint tier of tcp_check_oom is the tcp_send_reset program.
pub const HOOKS: &[HookSpec] = &[
    tracepoint_hook!(
        "sock:inet_sock_set_state",
        "inet_sock_set_state",
        "inet_sock_set_state",
        "connections opened/closed, listening ports"
    ),
    tracepoint_hook!(
        "sock:sock_exceed_buf_limit",
        "sock_exceed_buf_limit",
        "sock_exceed_buf_limit",
        "protocol memory limit hit"
    ),
    tracepoint_hook!(
        "sock:sock_rcvqueue_full",
        "sock_rcvqueue_full",
        "sock_rcvqueue_full",
        "receive queue full"
    ),
    tracepoint_hook!(
        "tcp:tcp_send_reset",
        "tcp_send_reset",
        "tcp_send_reset",
        "resets"
    ),
    tracepoint_hook!(
        "tcp:tcp_destroy_sock",
        "tcp_destroy_sock",
        "tcp_destroy_sock",
        "sockets destroyed holding data"
    ),
    tracepoint_hook!(
        "skb:kfree_skb",
        "kfree_skb",
        "kfree_skb",
        "packets dropped for memory reasons"
    ),
    HookSpec {
        name: "tcp_check_oom",
        what: "aborts on memory, and which limit fired",
        tiers: &[
            TierSpec {
                tier: Tier::Fentry,
                progs: &[prog!(
                    "tcp_check_oom_fexit",
                    FExit,
                    "tcp_check_oom",
                    &[(0, SOCK), (1, "int")]
                )],
            },
            TierSpec {
                tier: Tier::Kprobe,
                progs: &[
                    prog!(
                        "tcp_check_oom_entry",
                        KProbe,
                        "tcp_check_oom",
                        &[(0, SOCK), (1, "int")]
                    ),
                    prog!("tcp_check_oom_return", KRetProbe, "tcp_check_oom"),
                ],
            },
            // Served by the tcp_send_reset program when the kernel passes
            // reset reasons (6.10+); checked in `attach_tier`.
            TierSpec {
                tier: Tier::Tracepoint,
                progs: &[],
            },
        ],
        polling: Some("nstat TcpExtTCPAbortOnMemory and the kernel log's \"too many orphaned sockets\" / \"out of memory -- consider tuning tcp_mem\""),
    },
    HookSpec {
        name: "orphans",
        what: "orphans born (close with the connection unfinished) and gone, with lifetimes",
        tiers: &[
            TierSpec {
                tier: Tier::Fentry,
                progs: &[
                    prog!("tcp_close_fexit", FExit, "__tcp_close", &[(0, SOCK)]),
                    prog!(
                        "child_forget_fentry",
                        FEntry,
                        "inet_child_forget",
                        &[(2, SOCK)],
                        true
                    ),
                    prog!(
                        "destroy_sock_fentry",
                        FEntry,
                        "inet_csk_destroy_sock",
                        &[(0, SOCK)]
                    ),
                ],
            },
            TierSpec {
                tier: Tier::Kprobe,
                progs: &[
                    prog!("tcp_close_entry", KProbe, "__tcp_close", &[(0, SOCK)]),
                    prog!("tcp_close_return", KRetProbe, "__tcp_close"),
                    prog!(
                        "child_forget_kprobe",
                        KProbe,
                        "inet_child_forget",
                        &[(2, SOCK)],
                        true
                    ),
                    prog!(
                        "destroy_sock_kprobe",
                        KProbe,
                        "inet_csk_destroy_sock",
                        &[(0, SOCK)]
                    ),
                ],
            },
        ],
        polling: Some("sock_diag each interval: orphans (TCP, inode 0, not TIME_WAIT) appearing and vanishing between dumps, so lifetimes are +/- one interval"),
    },
    HookSpec {
        name: "memory_pressure",
        what: "TCP memory pressure entered and left",
        tiers: &[
            TierSpec {
                tier: Tier::Fentry,
                progs: &[
                    prog!(
                        "pressure_enter_fentry",
                        FEntry,
                        "tcp_enter_memory_pressure",
                        &[(0, SOCK)]
                    ),
                    prog!(
                        "pressure_leave_fentry",
                        FEntry,
                        "tcp_leave_memory_pressure",
                        &[(0, SOCK)]
                    ),
                ],
            },
            TierSpec {
                tier: Tier::Kprobe,
                progs: &[
                    prog!(
                        "pressure_enter_kprobe",
                        KProbe,
                        "tcp_enter_memory_pressure",
                        &[(0, SOCK)]
                    ),
                    prog!(
                        "pressure_leave_kprobe",
                        KProbe,
                        "tcp_leave_memory_pressure",
                        &[(0, SOCK)]
                    ),
                ],
            },
        ],
        polling: Some("/proc/net/protocols TCP `press` flag each interval"),
    },
    HookSpec {
        name: "route_exception_v4",
        what: "IPv4 next-hop exceptions (PMTU, redirects): the route cache's successor",
        tiers: &[
            TierSpec {
                tier: Tier::Fentry,
                progs: &[prog!(
                    "fnhe_fentry",
                    FEntry,
                    "update_or_create_fnhe",
                    &[(0, "struct fib_nh_common *"), (1, "__be32"), (2, "__be32"), (3, "u32")]
                )],
            },
            TierSpec {
                tier: Tier::Kprobe,
                progs: &[prog!(
                    "fnhe_kprobe",
                    KProbe,
                    "update_or_create_fnhe",
                    &[(0, "struct fib_nh_common *"), (1, "__be32"), (2, "__be32"), (3, "u32")]
                )],
            },
        ],
        polling: Some("rtnetlink dump of cached routes each interval (ip route show cache)"),
    },
    HookSpec {
        name: "route_exception_v6",
        what: "IPv6 route exceptions (RTF_CACHE: PMTU, redirects)",
        tiers: &[
            TierSpec {
                tier: Tier::Fentry,
                progs: &[prog!(
                    "rt6_exception_fentry",
                    FEntry,
                    "rt6_insert_exception",
                    &[(0, "struct rt6_info *")]
                )],
            },
            TierSpec {
                tier: Tier::Kprobe,
                progs: &[prog!(
                    "rt6_exception_kprobe",
                    KProbe,
                    "rt6_insert_exception",
                    &[(0, "struct rt6_info *")]
                )],
            },
        ],
        polling: Some("rtnetlink dump of cached IPv6 routes each interval (ip -6 route show cache) and /proc/net/rt6_stats"),
    },
];

/// Why a better tier was not used.
#[derive(Clone, Debug, Serialize)]
pub struct Unavailable {
    pub tier: Tier,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    pub hook: &'static str,
    /// The tier serving the hook; null when nothing can.
    pub tier: Option<Tier>,
    /// What exactly is attached or read, e.g. `fexit:tcp_check_oom`.
    pub via: String,
    /// Every better tier, and why it was not used.
    pub unavailable: Vec<Unavailable>,
    /// What this hook is missing on this kernel even on its tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Facts about the kernel that decide tiers before anything is loaded.
struct Env<'a> {
    btf: &'a KernelBtf,
    syms: &'a Kallsyms,
    aya_btf: Option<Btf>,
    kprobes: bool,
    layout: &'a KernelLayout,
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub status: Vec<HookStatus>,
}

/// Functions whose presence in kallsyms decides the kprobe tier.
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

/// Everything `trace` and `probes` need before the first event: privileges,
/// the kernel's BTF and symbols, the resolved layout, and the attached hooks.
/// `listening`: the traced namespace's listening ports, seeded into the
/// kernel before anything is attached, so the first events are already
/// charged to the right `listen:PORT` group.
pub fn setup(
    netns_inum: u32,
    max_tier: Tier,
    listening: &[u16],
) -> Result<(Probes, crate::btf_offsets::Resolved)> {
    crate::privileges::check()?;
    let btf = KernelBtf::load()?;
    let syms = Kallsyms::load(&wanted_symbols()).unwrap_or_else(|e| {
        log::warn!("{e:#}: kprobe tier and orphan figures unavailable");
        Kallsyms::default()
    });
    let resolved = btf.resolve(netns_inum, &syms);
    let probes = Probes::attach(
        &resolved.layout,
        &resolved.missing,
        &btf,
        &syms,
        max_tier,
        listening,
    )?;
    Ok((probes, resolved))
}

/// `netmem probes`: what each hook runs on here, and why not on better tiers.
pub fn run_report(max_tier: Tier, json: bool, out: &mut impl std::io::Write) -> Result<()> {
    let (probes, _) = setup(0, max_tier, &[])?;
    if json {
        for s in &probes.status {
            serde_json::to_writer(&mut *out, s)?;
            writeln!(out)?;
        }
    } else {
        write!(out, "{}", report_table(&probes.status))?;
    }
    Ok(())
}

pub fn report_table(status: &[HookStatus]) -> String {
    let mut s = format!("{:<28} {:<11} {}\n", "HOOK", "TIER", "VIA");
    for st in status {
        s += &format!(
            "{:<28} {:<11} {}\n",
            st.hook,
            st.tier.map_or("NONE", Tier::name),
            st.via
        );
        for u in &st.unavailable {
            s += &format!("{:<28}   not {}: {}\n", "", u.tier.name(), u.reason);
        }
        if let Some(n) = &st.note {
            s += &format!("{:<28}   note: {n}\n", "");
        }
    }
    s
}

impl Probes {
    /// Loads the object and gives each hook its best tier not better than
    /// `max_tier`. `layout_notes` are BTF lookups that failed; each is
    /// attached to the status of the hooks it limits.
    pub fn attach(
        layout: &KernelLayout,
        layout_notes: &[String],
        btf: &KernelBtf,
        syms: &Kallsyms,
        max_tier: Tier,
        listening: &[u16],
    ) -> Result<Probes> {
        let mut ebpf = EbpfLoader::new()
            .override_global("LAYOUT", layout, true)
            .load(OBJECT)
            .context("the kernel refused to load netmem's eBPF object")?;
        {
            let mut ports: HashMap<&mut MapData, u16, u64> = HashMap::try_from(
                ebpf.map_mut("LISTEN_PORTS")
                    .context("LISTEN_PORTS map missing")?,
            )?;
            for p in listening {
                ports.insert(p, 0, 0).context("cannot seed LISTEN_PORTS")?;
            }
        }
        if let Err(e) = aya_log::EbpfLogger::init(&mut ebpf) {
            log::debug!("no kernel-side logs: {e}");
        }
        let env = Env {
            btf,
            syms,
            aya_btf: Btf::from_sys_fs().ok(),
            kprobes: Path::new("/sys/bus/event_source/devices/kprobe").exists(),
            layout,
        };
        let mut status: Vec<HookStatus> = Vec::new();
        for hook in HOOKS {
            let mut st = HookStatus {
                hook: hook.name,
                tier: None,
                via: String::new(),
                unavailable: Vec::new(),
                note: None,
            };
            for t in hook.tiers {
                if t.tier < max_tier {
                    st.unavailable.push(Unavailable {
                        tier: t.tier,
                        reason: format!("skipped: --max-tier {}", max_tier.name()),
                    });
                    continue;
                }
                match attach_tier(&mut ebpf, &env, t, &status) {
                    Ok((via, note)) => {
                        st.tier = Some(t.tier);
                        st.via = via;
                        st.note = note;
                        break;
                    }
                    Err(e) => st.unavailable.push(Unavailable {
                        tier: t.tier,
                        reason: format!("{e:#}"),
                    }),
                }
            }
            if st.tier.is_none() {
                if let Some(p) = hook.polling {
                    st.tier = Some(Tier::Polling);
                    st.via = p.to_string();
                }
            }
            let short = hook.name.split(':').next_back().unwrap_or(hook.name);
            let notes: Vec<&str> = layout_notes
                .iter()
                .filter(|n| {
                    n.starts_with(&format!("{short}:"))
                        || (hook.name.contains(':') && n.contains(short))
                })
                .map(|s| s.as_str())
                .collect();
            if !notes.is_empty() && st.tier.is_some() {
                let mut all: Vec<String> = st.note.take().into_iter().collect();
                all.extend(notes.iter().map(|s| s.to_string()));
                st.note = Some(all.join("; "));
            }
            status.push(st);
        }
        // With --max-tier polling no kernel hook is wanted; otherwise having
        // none at all means netmem cannot do its job here.
        if max_tier < Tier::Polling
            && status
                .iter()
                .all(|s| matches!(s.tier, None | Some(Tier::Polling)))
        {
            let why: Vec<String> = status
                .iter()
                .map(|s| {
                    let reasons: Vec<String> = s
                        .unavailable
                        .iter()
                        .map(|u| format!("{}: {}", u.tier.name(), u.reason))
                        .collect();
                    format!("{}: {}", s.hook, reasons.join("; "))
                })
                .collect();
            bail!("no kernel hook could be attached:\n  {}", why.join("\n  "));
        }
        let mut p = Probes { ebpf, status };
        let from_resets = p.tier_of("tcp_check_oom") == Some(Tier::Tracepoint);
        p.set(Setting::AbortsFromResets, from_resets as u32)?;
        Ok(p)
    }

    pub fn tier_of(&self, hook: &str) -> Option<Tier> {
        self.status
            .iter()
            .find(|s| s.hook == hook)
            .and_then(|s| s.tier)
    }

    /// The pipeline benchmark's producer (netmem-ebpf's `synthetic.rs`):
    /// from now on every `syscall` this process makes streams `batch`
    /// synthetic events through the ring buffer. Detached with the rest.
    pub fn attach_synthetic(&mut self, syscall: u32, batch: u32) -> Result<()> {
        let p: &mut RawTracePoint = self
            .ebpf
            .program_mut("synthetic_sys_enter")
            .context("synthetic_sys_enter missing from the object")?
            .try_into()?;
        p.load().context("load synthetic_sys_enter")?;
        p.attach("sys_enter")
            .context("attach raw tracepoint sys_enter")?;
        self.set(Setting::SyntheticSyscall, syscall)?;
        self.set(Setting::SyntheticBatch, batch)?;
        self.set(Setting::SyntheticTgid, std::process::id())
    }

    fn set(&mut self, s: Setting, v: u32) -> Result<()> {
        let mut m: Array<&mut MapData, u32> = Array::try_from(
            self.ebpf
                .map_mut("SETTINGS")
                .context("SETTINGS map missing")?,
        )?;
        m.set(s as u32, v, 0).context("cannot write SETTINGS")
    }

    pub fn ring_buf(&mut self) -> Result<RingBuf<MapData>> {
        RingBuf::try_from(self.ebpf.take_map("EVENTS").context("EVENTS map missing")?)
            .context("EVENTS")
    }

    pub fn listen_ports(&mut self) -> Result<HashMap<&mut MapData, u16, u64>> {
        HashMap::try_from(
            self.ebpf
                .map_mut("LISTEN_PORTS")
                .context("LISTEN_PORTS map missing")?,
        )
        .context("LISTEN_PORTS")
    }

    /// Cumulative per-group counters, summed over CPUs.
    pub fn group_counts(&self) -> Result<Vec<(GroupKey, GroupCounters)>> {
        let map: PerCpuHashMap<&MapData, GroupKey, GroupCounters> = PerCpuHashMap::try_from(
            self.ebpf
                .map("GROUP_COUNTS")
                .context("GROUP_COUNTS map missing")?,
        )?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, per_cpu) = item.context("reading GROUP_COUNTS")?;
            let mut sum = GroupCounters::default();
            for v in per_cpu.iter() {
                for (a, b) in sum.counts.iter_mut().zip(v.counts.iter()) {
                    *a += b;
                }
            }
            out.push((k, sum));
        }
        Ok(out)
    }

    /// A STATS counter summed over CPUs.
    pub fn stat(&self, s: Stat) -> Result<u64> {
        let map: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("STATS").context("STATS map missing")?)?;
        Ok(map.get(&(s as u32), 0)?.iter().sum())
    }

    /// One line for the start of `trace`: what is covered, and how.
    pub fn coverage_line(&self) -> String {
        coverage_line(&self.status)
    }
}

pub fn coverage_line(status: &[HookStatus]) -> String {
    let ok = status.iter().filter(|s| s.tier.is_some()).count();
    let tiers: Vec<String> = status
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s.hook.split(':').next_back().unwrap_or(s.hook),
                s.tier.map_or("NONE", Tier::name)
            )
        })
        .collect();
    let mut parts = vec![format!(
        "probes: {ok}/{} hooks served: {}",
        status.len(),
        tiers.join(" ")
    )];
    for s in status {
        match (&s.tier, &s.note) {
            (None, _) => parts.push(format!(
                "{} NOT served: {}",
                s.hook,
                s.unavailable
                    .iter()
                    .map(|u| u.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            (Some(_), Some(n)) => parts.push(format!("{} degraded: {n}", s.hook)),
            _ => {}
        }
    }
    parts.join("; ")
}

/// Tries one tier of one hook: checks what can be known up front, then
/// loads and attaches its programs. On failure, everything this tier loaded
/// is unloaded again, so a failed tier leaves nothing behind.
fn attach_tier(
    ebpf: &mut Ebpf,
    env: &Env,
    t: &TierSpec,
    done: &[HookStatus],
) -> Result<(String, Option<String>)> {
    if t.progs.is_empty() {
        // tcp_check_oom's tracepoint tier: the reset tracepoint with reasons.
        let resets = done.iter().find(|s| s.hook == "tcp:tcp_send_reset");
        if resets.and_then(|s| s.tier).is_none() {
            bail!("tcp:tcp_send_reset is not attached");
        }
        if env.layout.send_reset_reason_arg == NO_ARG
            || env.layout.rst_reason_abort_on_memory == u32::MAX
        {
            bail!("tcp:tcp_send_reset has no reset reason on this kernel (6.10+)");
        }
        return Ok((
            "raw_tracepoint:tcp_send_reset reason=TCP_ABORT_ON_MEMORY".into(),
            Some("shift unknown on this tier (the reset does not carry it)".into()),
        ));
    }
    // Every check before any load, so a tier the kernel cannot serve loads nothing.
    let checked: Vec<Result<()>> = t.progs.iter().map(|p| precheck(env, p)).collect();
    if let Some((_, Err(e))) = t
        .progs
        .iter()
        .zip(&checked)
        .find(|(p, c)| !p.optional && c.is_err())
    {
        return Err(anyhow!("{e:#}"));
    }
    let mut loaded: Vec<&str> = Vec::new();
    let mut via = Vec::new();
    let mut notes = Vec::new();
    for (p, checked) in t.progs.iter().zip(checked) {
        let r = checked.and_then(|_| load_attach(ebpf, env, p));
        match r {
            Ok(()) => {
                loaded.push(p.program);
                via.push(format!("{}:{}", kind_name(p.kind), p.target));
            }
            Err(e) if p.optional => notes.push(format!("{} not probed: {e:#}", p.target)),
            Err(e) => {
                for name in loaded {
                    unload(ebpf, name);
                }
                unload(ebpf, p.program);
                return Err(e);
            }
        }
    }
    Ok((via.join(" "), (!notes.is_empty()).then(|| notes.join("; "))))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::FEntry => "fentry",
        Kind::FExit => "fexit",
        Kind::KProbe => "kprobe",
        Kind::KRetProbe => "kretprobe",
        Kind::RawTp => "raw_tracepoint",
    }
}

/// What can be known without loading: the function exists under its own
/// name, BTF has its prototype, and the arguments netmem reads are where it
/// expects them.
fn precheck(env: &Env, p: &Prog) -> Result<()> {
    match p.kind {
        Kind::RawTp => {
            if env.btf.tracepoint_args(p.target).is_err() {
                bail!("tracepoint {} does not exist on this kernel", p.target);
            }
            return Ok(());
        }
        Kind::KProbe | Kind::KRetProbe => {
            if !env.kprobes {
                bail!("kprobes not built into this kernel (no kprobe PMU in /sys/bus/event_source/devices)");
            }
            if !env.syms.has_function(p.target) {
                bail!(
                    "function {} inlined or renamed: not in /proc/kallsyms",
                    p.target
                );
            }
        }
        Kind::FEntry | Kind::FExit => {
            if env.aya_btf.is_none() {
                bail!("no kernel BTF for BPF trampolines");
            }
        }
    }
    let Some(params) = env.btf.func_params(p.target) else {
        bail!(
            "function {} has no BTF prototype (inlined or renamed by the compiler)",
            p.target
        );
    };
    for &(i, ty) in p.args {
        match params.get(i) {
            Some((_, actual)) if same_type(actual, ty) => {}
            Some((name, actual)) => bail!(
                "{} argument {i} is `{actual} {name}` on this kernel, netmem reads `{ty}`",
                p.target
            ),
            None => bail!(
                "{} has only {} arguments on this kernel",
                p.target,
                params.len()
            ),
        }
    }
    Ok(())
}

/// BTF spells typedefs through to their base (`__be32` is `unsigned int`).
fn same_type(actual: &str, wanted: &str) -> bool {
    fn base(t: &str) -> &str {
        match t {
            "__be32" | "u32" | "__u32" => "unsigned int",
            other => other,
        }
    }
    base(actual) == base(wanted)
}

fn load_attach(ebpf: &mut Ebpf, env: &Env, p: &Prog) -> Result<()> {
    let prog = ebpf
        .program_mut(p.program)
        .ok_or_else(|| anyhow!("program {} missing from the object", p.program))?;
    match p.kind {
        Kind::RawTp => {
            let prog: &mut RawTracePoint = prog.try_into()?;
            prog.load().map_err(|e| load_error("raw_tracepoint", e))?;
            prog.attach(p.target).map_err(|e| anyhow!("attach: {e}"))?;
        }
        Kind::KProbe | Kind::KRetProbe => {
            let prog: &mut KProbe = prog.try_into()?;
            prog.load().map_err(|e| load_error("kprobe", e))?;
            prog.attach(p.target, 0)
                .map_err(|e| anyhow!("attach {}: {e}", p.target))?;
        }
        Kind::FEntry => {
            let btf = env.aya_btf.as_ref().expect("prechecked");
            let prog: &mut FEntry = prog.try_into()?;
            prog.load(p.target, btf)
                .map_err(|e| load_error("tracing", e))?;
            prog.attach().map_err(|e| anyhow!("attach: {e}"))?;
        }
        Kind::FExit => {
            let btf = env.aya_btf.as_ref().expect("prechecked");
            let prog: &mut FExit = prog.try_into()?;
            prog.load(p.target, btf)
                .map_err(|e| load_error("tracing", e))?;
            prog.attach().map_err(|e| anyhow!("attach: {e}"))?;
        }
    }
    Ok(())
}

fn unload(ebpf: &mut Ebpf, name: &str) {
    let Some(prog) = ebpf.program_mut(name) else {
        return;
    };
    let _ = match prog {
        Program::KProbe(p) => p.unload(),
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::RawTracePoint(p) => p.unload(),
        _ => Ok(()),
    };
}

/// The kernel's answer to BPF_PROG_LOAD, said the way an operator needs it:
/// EPERM on a tracing program is a kernel policy, not a netmem bug.
fn load_error(kind: &str, e: aya::programs::ProgramError) -> anyhow::Error {
    use aya::programs::ProgramError;
    match &e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let errno = io_error.raw_os_error().unwrap_or(0);
            let what = match errno {
                libc::EPERM => format!("program type {kind} refused: EPERM"),
                libc::EINVAL => "program refused: EINVAL".to_string(),
                libc::EACCES => "verifier rejected the program: EACCES".to_string(),
                524 => "not supported by this kernel: ENOTSUPP".to_string(),
                _ => format!("load failed: {io_error}"),
            };
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(2).collect();
            if tail.is_empty() {
                anyhow!(what)
            } else {
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                anyhow!("{what} ({})", tail.join(" / "))
            }
        }
        _ => anyhow!("load: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_best_first() {
        assert!(Tier::Fentry < Tier::Kprobe);
        assert!(Tier::Kprobe < Tier::Tracepoint);
        assert!(Tier::Tracepoint < Tier::Polling);
        for h in HOOKS {
            let tiers: Vec<Tier> = h.tiers.iter().map(|t| t.tier).collect();
            let mut sorted = tiers.clone();
            sorted.sort();
            assert_eq!(tiers, sorted, "{}", h.name);
        }
    }

    #[test]
    fn program_names_are_unique_per_hook() {
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

    #[test]
    fn typedefs_compare_by_base() {
        assert!(same_type("unsigned int", "__be32"));
        assert!(same_type("struct sock *", SOCK));
        assert!(!same_type("struct fib_nh *", "struct fib_nh_common *"));
    }

    #[test]
    fn coverage_names_tiers_and_gaps() {
        let st = vec![
            HookStatus {
                hook: "tcp_check_oom",
                tier: Some(Tier::Tracepoint),
                via: String::new(),
                unavailable: vec![],
                note: Some("shift unknown".into()),
            },
            HookStatus {
                hook: "sock:kfree_skb",
                tier: None,
                via: String::new(),
                unavailable: vec![Unavailable {
                    tier: Tier::Tracepoint,
                    reason: "gone".into(),
                }],
                note: None,
            },
        ];
        let line = coverage_line(&st);
        assert!(line.contains("1/2 hooks served"));
        assert!(line.contains("tcp_check_oom=tracepoint"));
        assert!(line.contains("kfree_skb=NONE"));
        assert!(line.contains("sock:kfree_skb NOT served: gone"));
        assert!(line.contains("tcp_check_oom degraded: shift unknown"));
    }
}
