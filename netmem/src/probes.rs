//! Loads the embedded eBPF object with the running kernel's layout and
//! attaches every hook, reporting each by name. A hook that cannot attach is
//! reported with the kernel's reason and the rest still run.

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::RawTracePoint,
    Ebpf, EbpfLoader,
};
use netmem_common::{GroupCounters, GroupKey, KernelLayout, Stat};
use serde::Serialize;

/// The eBPF object built by build.rs from netmem-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netmem"));

/// One hook: the program in the object and the tracepoint it serves.
pub struct Hook {
    pub program: &'static str,
    pub tracepoint: &'static str,
    pub what: &'static str,
}

pub const HOOKS: &[Hook] = &[
    Hook {
        program: "inet_sock_set_state",
        tracepoint: "sock:inet_sock_set_state",
        what: "connections opened/closed, listening ports",
    },
    Hook {
        program: "sock_exceed_buf_limit",
        tracepoint: "sock:sock_exceed_buf_limit",
        what: "protocol memory limit hit",
    },
    Hook {
        program: "sock_rcvqueue_full",
        tracepoint: "sock:sock_rcvqueue_full",
        what: "receive queue full",
    },
    Hook {
        program: "tcp_send_reset",
        tracepoint: "tcp:tcp_send_reset",
        what: "resets, aborts on memory (reason TCP_ABORT_ON_MEMORY)",
    },
    Hook {
        program: "tcp_destroy_sock",
        tracepoint: "tcp:tcp_destroy_sock",
        what: "sockets destroyed holding data",
    },
    Hook {
        program: "kfree_skb",
        tracepoint: "skb:kfree_skb",
        what: "packets dropped for memory reasons",
    },
];

#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    pub hook: &'static str,
    /// "raw_tracepoint" when attached, null when not
    pub tier: Option<&'static str>,
    /// Why it is not attached, or what it is missing on this kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub status: Vec<HookStatus>,
}

impl Probes {
    /// Loads and attaches everything. `layout_notes` are BTF lookups that
    /// failed; each is attached to the status of the hooks it limits.
    pub fn attach(layout: &KernelLayout, layout_notes: &[String]) -> Result<Probes> {
        let mut ebpf = EbpfLoader::new()
            .override_global("LAYOUT", layout, true)
            .load(OBJECT)
            .context("the kernel refused to load netmem's eBPF object")?;
        if let Err(e) = aya_log::EbpfLogger::init(&mut ebpf) {
            log::debug!("no kernel-side logs: {e}");
        }
        let mut status = Vec::new();
        for hook in HOOKS {
            let (_, tp) = hook.tracepoint.split_once(':').expect("category:name");
            let r = (|| -> Result<()> {
                let prog: &mut RawTracePoint = ebpf
                    .program_mut(hook.program)
                    .ok_or_else(|| anyhow!("program {} missing from the object", hook.program))?
                    .try_into()?;
                prog.load().map_err(|e| anyhow!("load: {e}"))?;
                prog.attach(tp).map_err(|e| anyhow!("attach: {e}"))?;
                Ok(())
            })();
            let notes: Vec<&str> = layout_notes
                .iter()
                .filter(|n| n.contains(tp))
                .map(|s| s.as_str())
                .collect();
            status.push(match r {
                Ok(()) => HookStatus {
                    hook: hook.tracepoint,
                    tier: Some("raw_tracepoint"),
                    note: (!notes.is_empty()).then(|| notes.join("; ")),
                },
                Err(e) => HookStatus {
                    hook: hook.tracepoint,
                    tier: None,
                    note: Some(format!("{e:#}")),
                },
            });
        }
        if status.iter().all(|s| s.tier.is_none()) {
            let why: Vec<String> = status
                .iter()
                .map(|s| format!("{}: {}", s.hook, s.note.clone().unwrap_or_default()))
                .collect();
            bail!("no hook could be attached:\n  {}", why.join("\n  "));
        }
        Ok(Probes { ebpf, status })
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
        let ok = self.status.iter().filter(|s| s.tier.is_some()).count();
        let mut parts = vec![format!(
            "probes: {ok}/{} hooks attached (raw_tracepoint)",
            self.status.len()
        )];
        for s in &self.status {
            match (&s.tier, &s.note) {
                (None, Some(n)) => parts.push(format!("{} NOT attached: {n}", s.hook)),
                (Some(_), Some(n)) => parts.push(format!("{} degraded: {n}", s.hook)),
                _ => {}
            }
        }
        parts.join("; ")
    }
}
