//! The attach engine: loads the embedded eBPF object with the running
//! kernel's layout and gives every hook of the catalog the best mechanism
//! this kernel allows: fentry/fexit, then kprobe/kretprobe, then a (raw)
//! tracepoint, then userspace polling. Each better tier that was not used is
//! reported with the reason, and a hook that cannot be served at all says so
//! while the others run.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{MapData, RingBuf},
    programs::{FEntry, FExit, KProbe, Program, RawTracePoint},
    Btf, Ebpf, EbpfLoader,
};
use netmem_common::{GroupCounters, GroupKey, KernelLayout, Setting, Stat, NO_ARG};

use super::catalog::{Hook, HookId, Kind, Needs, Prog, Tier, TierSpec, HOOKS};
use super::maps;
use super::status::{HookStatus, Unavailable};
use crate::kernel::btf::{BtfSource, Resolved, VMLINUX_BTF};
use crate::kernel::facts::KernelFacts;
use crate::kernel::startup::mark;

use super::object::{CENSUS_MAPS, OBJECT};

/// Facts about the kernel that decide tiers before anything is loaded.
struct Env<'a> {
    facts: &'a KernelFacts,
    /// aya's parse of vmlinux BTF, which fentry/fexit loads need: made on
    /// the first trampoline attempt only.
    aya_btf: std::sync::OnceLock<Option<Btf>>,
    kprobes: bool,
    layout: &'a KernelLayout,
}

impl Env<'_> {
    fn aya_btf(&self) -> Option<&Btf> {
        self.aya_btf
            .get_or_init(|| {
                let b = Btf::from_sys_fs().ok();
                mark("trampoline BTF parsed");
                b
            })
            .as_ref()
    }
}

/// One hook's programs, borrowed from the object.
struct Programs<'a>(HashMap<&'a str, &'a mut Program>);

impl Programs<'_> {
    fn get(&mut self, name: &str) -> Option<&mut Program> {
        self.0.get_mut(name).map(|p| &mut **p)
    }
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub status: Vec<HookStatus>,
}

/// Everything `trace` and `probes` need before the first event: privileges,
/// the kernel's BTF and symbols, the resolved layout, and the attached hooks.
/// `listening`: the traced namespace's listening ports, seeded into the
/// kernel before anything is attached, so the first events are already
/// charged to the right `listen:PORT` group.
pub fn setup(
    command: &str,
    netns_inum: u32,
    max_tier: Tier,
    listening: &[u16],
) -> Result<(Probes, Resolved)> {
    setup_with(command, netns_inum, max_tier, listening, |_| {})
}

/// [`setup`], handing the resolved layout to `on_layout` as soon as it is
/// known, before anything is attached (the census loads its iterators
/// with it meanwhile).
pub fn setup_with(
    command: &str,
    netns_inum: u32,
    max_tier: Tier,
    listening: &[u16],
    on_layout: impl FnOnce(&KernelLayout),
) -> Result<(Probes, Resolved)> {
    crate::kernel::privileges::check(command)?;
    let facts = KernelFacts::load()?;
    mark("kernel facts known");
    if !facts.has_btf() {
        // Said once, here; `probes` and the probes line give it per hook.
        log::warn!(
            "{}: each hook that can be polled runs on its polling tier, the others are off (`netmem probes` says which, and why)",
            crate::kernel::btf::missing_reason()
        );
    }
    let resolved = facts.resolved(netns_inum);
    on_layout(&resolved.layout);
    let probes = Probes::attach(
        &resolved.layout,
        &resolved.missing,
        &facts,
        max_tier,
        listening,
    )?;
    Ok((probes, resolved))
}

impl Probes {
    /// Loads the object and gives each hook its best tier not better than
    /// `max_tier`. `layout_notes` are BTF lookups that failed; each is
    /// attached to the status of the hooks it limits.
    pub fn attach(
        layout: &KernelLayout,
        layout_notes: &[(Option<HookId>, String)],
        facts: &KernelFacts,
        max_tier: Tier,
        listening: &[u16],
    ) -> Result<Probes> {
        // No kernel BTF for the loader: the programs read fields at offsets
        // netmem resolved itself (LAYOUT), not through CO-RE relocations,
        // so parsing vmlinux BTF again here would only cost start-up time.
        let mut loader = EbpfLoader::new();
        loader
            .btf(None)
            .override_global("LAYOUT", layout, true)
            .map_max_entries(maps::ORPHANS, maps::orphans_capacity());
        // The census loads its own copy (hooks/census.rs).
        for (map, size) in CENSUS_MAPS {
            loader.map_max_entries(map, *size);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .context("the kernel refused to load netmem's eBPF object")?;
        mark("object loaded, maps created");
        {
            let mut ports = maps::listen_ports(&mut ebpf)?;
            for p in listening {
                ports
                    .set(*p as u32, 1, 0)
                    .context("cannot seed LISTEN_PORTS")?;
            }
        }
        if let Err(e) = aya_log::EbpfLogger::init(&mut ebpf) {
            log::debug!("no kernel-side logs: {e}");
        }
        let env = Env {
            facts,
            aya_btf: std::sync::OnceLock::new(),
            kprobes: Path::new("/sys/bus/event_source/devices/kprobe").exists(),
            layout,
        };
        let notes_of = |id: HookId| -> Vec<&str> {
            layout_notes
                .iter()
                .filter(|(h, _)| *h == Some(id))
                .map(|(_, n)| n.as_str())
                .collect()
        };
        // Each hook gets its own programs, so hooks can be served at once:
        // the kernel verifies programs loaded from several threads in
        // parallel, and verification is most of attaching.
        let mut all: HashMap<&str, &mut Program> = ebpf.programs_mut().collect();
        let mut jobs: Vec<(&Hook, Programs)> = HOOKS
            .iter()
            .map(|h| {
                let mine = h
                    .tiers
                    .iter()
                    .flat_map(|t| t.progs)
                    .filter_map(|p| all.remove_entry(p.program))
                    .collect();
                (h, Programs(mine))
            })
            .collect();
        // A hook with a tier that needs another hook attached waits for
        // the rest.
        let independent = |h: &Hook| h.tiers.iter().all(|t| t.needs == Needs::Nothing);
        let mut served: Vec<Option<HookStatus>> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .iter_mut()
                .map(|(hook, progs)| {
                    let hook: &Hook = hook;
                    let (env, notes) = (&env, notes_of(hook.id));
                    independent(hook).then(|| {
                        s.spawn(move || {
                            let st = serve_hook(progs, env, hook, max_tier, &[], &notes);
                            mark(hook.name);
                            st
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.map(|h| h.join().expect("a hook's attach thread panicked")))
                .collect()
        });
        let done: Vec<HookStatus> = served.iter().flatten().cloned().collect();
        for ((hook, progs), slot) in jobs.iter_mut().zip(served.iter_mut()) {
            if slot.is_none() {
                *slot = Some(serve_hook(
                    progs,
                    &env,
                    hook,
                    max_tier,
                    &done,
                    &notes_of(hook.id),
                ));
                mark(hook.name);
            }
        }
        drop(jobs);
        let status: Vec<HookStatus> = served.into_iter().flatten().collect();
        // With --max-tier polling no kernel hook is wanted; otherwise having
        // none at all means netmem cannot do its job here.
        // Without BTF polling is the best there is, and it is said above.
        if max_tier < Tier::Polling
            && facts.has_btf()
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
            // One line, like every message (a message's own newlines are
            // escaped with the rest: they could come from a name).
            bail!("no kernel hook could be attached: {}", why.join(" | "));
        }
        let mut p = Probes { ebpf, status };
        let from_resets = p.tier_of(HookId::TcpCheckOom) == Some(Tier::Tracepoint);
        p.set(Setting::AbortsFromResets, from_resets as u32)?;
        // Set once every hook is served: an orphan born and closed in the
        // few milliseconds before has no last state (reported as unknown).
        let tracked = matches!(
            p.tier_of(HookId::Orphans),
            Some(Tier::Fentry | Tier::Kprobe)
        );
        p.set(Setting::OrphansTracked, tracked as u32)?;
        Ok(p)
    }

    pub fn tier_of(&self, hook: HookId) -> Option<Tier> {
        self.status
            .iter()
            .find(|s| s.id == hook)
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
        maps::set(&mut self.ebpf, s, v)
    }

    pub fn ring_buf(&mut self) -> Result<RingBuf<MapData>> {
        maps::take_events(&mut self.ebpf)
    }

    pub fn listen_ports(&mut self) -> Result<aya::maps::Array<&mut MapData, u64>> {
        maps::listen_ports(&mut self.ebpf)
    }

    /// Removes these groups from the kernel's per-group map.
    pub fn forget_groups(&mut self, keys: &[GroupKey]) -> Result<()> {
        maps::forget_groups(&mut self.ebpf, keys)
    }

    /// Each group's cumulative counters, summed over CPUs.
    pub fn for_each_group_count(&self, f: impl FnMut(GroupKey, GroupCounters)) -> Result<()> {
        maps::for_each_group_count(&self.ebpf, f)
    }

    /// A STATS counter summed over CPUs.
    pub fn stat(&self, s: Stat) -> Result<u64> {
        maps::stat(&self.ebpf, s)
    }
}

/// Gives one hook its best tier not better than `max_tier`, else its
/// poller; `done` are the hooks already served (a tier may need one),
/// `notes` what BTF could not resolve for this hook.
fn serve_hook(
    ebpf: &mut Programs,
    env: &Env,
    hook: &Hook,
    max_tier: Tier,
    done: &[HookStatus],
    notes: &[&str],
) -> HookStatus {
    let mut st = HookStatus {
        id: hook.id,
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
        match attach_tier(ebpf, env, t, done) {
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
        if let Some((_, what)) = hook.polling {
            st.tier = Some(Tier::Polling);
            st.via = what.to_string();
        }
    }
    if !notes.is_empty() && st.tier.is_some() {
        let mut all: Vec<String> = st.note.take().into_iter().collect();
        all.extend(notes.iter().map(|s| s.to_string()));
        st.note = Some(all.join("; "));
    }
    st
}

/// Tries one tier of one hook: checks what can be known up front, then
/// loads and attaches its programs. On failure, everything this tier loaded
/// is unloaded again, so a failed tier leaves nothing behind.
fn attach_tier(
    ebpf: &mut Programs,
    env: &Env,
    t: &TierSpec,
    done: &[HookStatus],
) -> Result<(String, Option<String>)> {
    if t.needs == Needs::ResetReasons {
        let resets = done.iter().find(|s| s.id == HookId::TcpSendReset);
        if resets.and_then(|s| s.tier).is_none() {
            bail!("{} is not attached", HookId::TcpSendReset.name());
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
                via.push(format!("{}:{}", p.kind.name(), p.target));
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

/// What can be known without loading: the function exists under its own
/// name, BTF has its prototype, and the arguments netmem reads are where it
/// expects them.
fn precheck(env: &Env, p: &Prog) -> Result<()> {
    // Every tier reads socket fields at offsets resolved from BTF.
    if !env.facts.has_btf() {
        bail!("{}", crate::kernel::btf::missing_reason());
    }
    match p.kind {
        Kind::RawTp => {
            if !env.facts.has_tracepoint(p.target) {
                bail!("tracepoint {} does not exist on this kernel", p.target);
            }
            return Ok(());
        }
        Kind::KProbe | Kind::KRetProbe => {
            if !env.kprobes {
                bail!("kprobes not built into this kernel (no kprobe PMU in /sys/bus/event_source/devices)");
            }
            if !env.facts.has_function(p.target) {
                bail!(
                    "function {} inlined or renamed: not in /proc/kallsyms",
                    p.target
                );
            }
        }
        Kind::FEntry | Kind::FExit => {
            if let Some(BtfSource::File(f)) = crate::kernel::btf::source() {
                bail!(
                    "BPF trampolines need the kernel's own BTF ({VMLINUX_BTF}); {} gives offsets only",
                    f.display()
                );
            }
            if env.aya_btf().is_none() {
                bail!("no kernel BTF for BPF trampolines");
            }
        }
    }
    let Some(params) = env.facts.func_params(p.target) else {
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

fn load_attach(ebpf: &mut Programs, env: &Env, p: &Prog) -> Result<()> {
    let prog = ebpf
        .get(p.program)
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
            let btf = env.aya_btf().expect("prechecked");
            let prog: &mut FEntry = prog.try_into()?;
            prog.load(p.target, btf)
                .map_err(|e| load_error("tracing", e))?;
            prog.attach().map_err(|e| anyhow!("attach: {e}"))?;
        }
        Kind::FExit => {
            let btf = env.aya_btf().expect("prechecked");
            let prog: &mut FExit = prog.try_into()?;
            prog.load(p.target, btf)
                .map_err(|e| load_error("tracing", e))?;
            prog.attach().map_err(|e| anyhow!("attach: {e}"))?;
        }
    }
    Ok(())
}

fn unload(ebpf: &mut Programs, name: &str) {
    let Some(prog) = ebpf.get(name) else {
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
    fn typedefs_compare_by_base() {
        assert!(same_type("unsigned int", "__be32"));
        assert!(same_type("struct sock *", "struct sock *"));
        assert!(!same_type("struct fib_nh *", "struct fib_nh_common *"));
    }
}
