//! One pass over the sockets netmem reports on: the traced namespace, or
//! with `--netns all` every namespace of the host, and, when asked, who
//! owns them. `snapshot` and the live engine take their passes here, so
//! both see the same namespaces and the same owners.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;

use crate::hooks::catalog::CensusTier;
use crate::hooks::census::KernelCensus;
use crate::hooks::status::CensusStatus;
use crate::model::names::Names;
use crate::model::netns::NetnsFigures;
use crate::model::owner::{self, GroupBy};
use crate::model::{Aggregator, Filter};
use crate::sources::netns::{Namespaces, Netns};
use crate::sources::owners::OwnerSource;
use crate::sources::procfs::{self, Context};
use crate::sources::sockdiag::States;

/// A namespace whose pass failed: one that went away meanwhile is normal
/// churn (debug); one netmem may not enter is said once, since every pass
/// would leave it out.
fn skipped(name: &str, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    if msg.contains("CAP_SYS_ADMIN") || msg.contains("Permission denied") {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            log::warn!("--netns all: namespace {name} (and any other like it) is left out: {msg}")
        });
    } else {
        log::debug!("namespace {name} skipped this pass: {msg}");
    }
}

/// Threads dumping namespaces at once with `--netns all`.
const MAX_WORKERS: usize = 4;

/// What a pass covers; kept between passes for its caches.
pub struct Census {
    /// Some with `--netns all`.
    all: Option<Namespaces>,
    /// Some when owners are wanted (`--owners`, or a `--group-by` other
    /// than port).
    owners: Option<OwnerSource>,
    pub by: GroupBy,
    filter: Filter,
    /// `--time-wait`: count each group's TIME_WAIT sockets, which means
    /// dumping every one of them.
    pub time_wait: bool,
    /// `--census-budget`: the share of one CPU full passes may take.
    budget: Budget,
    /// The last full pass, reused until the next is due.
    last: Option<LastPass>,
    /// The proxies in front, read at every pass (`--haproxy`).
    proxies: crate::sources::proxy::Proxies,
    /// Live, or a single pass ([`Census::one_shot`]).
    reads: crate::sources::proxy::Reads,
    /// The run's names: what the passes learn of namespaces, processes
    /// and cgroups goes there.
    names: Names,
    /// Each namespace's TCP counters at its previous reading, for the
    /// growth a pass reports.
    counters_before: HashMap<u32, BTreeMap<&'static str, u64>>,
    /// The in-kernel census, once tried.
    kernel: KernelTier,
    /// The tier the last full pass ran on.
    used: CensusTier,
}

/// The census tier in the kernel: loaded at the first pass that can use
/// it (`--census` may forbid or demand it).
enum KernelTier {
    /// `--census sock-diag`.
    Off,
    /// Not tried yet; `demanded` with `--census bpf-iter`.
    Untried {
        demanded: bool,
    },
    /// Loading on a thread of its own ([`Census::preload`]).
    Loading {
        demanded: bool,
        thread: std::thread::JoinHandle<Result<KernelCensus>>,
    },
    Ready(Box<KernelCensus>),
    /// Why not, and whether it was demanded (every pass then fails).
    Refused {
        why: String,
        demanded: bool,
    },
}

impl KernelTier {
    fn new(pref: Option<CensusTier>) -> KernelTier {
        match pref {
            Some(CensusTier::SockDiag) => KernelTier::Off,
            Some(CensusTier::BpfIter) => KernelTier::Untried { demanded: true },
            None => KernelTier::Untried { demanded: false },
        }
    }

    /// Starts loading on a thread: a live command's hooks attach
    /// meanwhile, so the first pass (before the probes line) seldom waits.
    fn preload(&mut self, layout: &netmem_common::KernelLayout) {
        if let KernelTier::Untried { demanded } = *self {
            let layout = *layout;
            if let Ok(thread) = std::thread::Builder::new()
                .name("netmem-census".into())
                .spawn(move || KernelCensus::load(&layout))
            {
                *self = KernelTier::Loading { demanded, thread };
            }
        }
    }

    /// The loaded census, loading it the first time.
    fn get(&mut self) -> Result<Option<&mut KernelCensus>> {
        if matches!(self, KernelTier::Loading { .. }) {
            if let KernelTier::Loading { demanded, thread } =
                std::mem::replace(self, KernelTier::Off)
            {
                let loaded = thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the census loader panicked")));
                *self = Self::settle(loaded, demanded);
            }
        }
        if let KernelTier::Untried { demanded } = *self {
            *self = Self::settle(load_kernel_census(), demanded);
        }
        match self {
            KernelTier::Ready(k) => Ok(Some(k)),
            KernelTier::Refused {
                why,
                demanded: true,
            } => anyhow::bail!("--census bpf-iter: {why}"),
            _ => Ok(None),
        }
    }

    fn settle(loaded: Result<KernelCensus>, demanded: bool) -> KernelTier {
        match loaded {
            Ok(k) => KernelTier::Ready(Box::new(k)),
            Err(e) => {
                log::debug!("census by sock_diag: {e:#}");
                KernelTier::Refused {
                    why: format!("{e:#}"),
                    demanded,
                }
            }
        }
    }
}

/// The census' programs with this kernel's layout.
fn load_kernel_census() -> Result<KernelCensus> {
    crate::kernel::privileges::check("the in-kernel census")?;
    let facts = crate::kernel::facts::KernelFacts::load()?;
    if !facts.has_btf() {
        anyhow::bail!("{}", crate::kernel::btf::missing_reason());
    }
    KernelCensus::load(&facts.resolved(0).layout)
}

/// What the census would run on here (`netmem probes`, with the layout
/// its hooks were loaded with): the in-kernel tier loaded and dropped
/// again, or why not.
pub fn census_status(layout: &netmem_common::KernelLayout) -> CensusStatus {
    match KernelCensus::load(layout) {
        Ok(k) => CensusStatus {
            tier: CensusTier::BpfIter,
            udp: k.has_udp(),
            why_not: None,
        },
        Err(e) => CensusStatus {
            tier: CensusTier::SockDiag,
            udp: false,
            why_not: Some(format!("{e:#}")),
        },
    }
}

/// How often a full pass runs. Every socket is dumped on each: at 100k
/// sockets that is about 80 ms of kernel time, 8% of a CPU at a 1 s
/// interval. Under a budget, a pass is due once the time since the last
/// one pays for what it cost, or at once when the namespace's socket
/// memory (sockstat, read every interval) has moved by a quarter since:
/// an incident gets fresh attribution, a quiet host a cheap trace.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// A full pass at every interval.
    EveryPass,
    /// At most this share of one CPU (0.01 = 1%).
    Share(f64),
}

/// What the last full pass found, for the passes in between.
struct LastPass {
    at: std::time::Instant,
    due: std::time::Instant,
    groups: std::collections::BTreeMap<netmem_common::GroupKey, crate::model::GroupRow>,
    listening: HashSet<u16>,
    listen_ports_in_use: HashSet<u16>,
    attribution: Option<owner::Attribution>,
    /// TCP + UDP pages allocated when it ran.
    mem_pages: u64,
    /// The namespaces other than the primary whose counters it read (they
    /// had TCP sockets): read again between passes.
    counted: Vec<u32>,
}

impl LastPass {
    /// Socket memory moved enough since this pass to warrant a new one.
    fn stale_for(&self, ctx: &Context) -> bool {
        let now = ctx.memory_allocated_pages + ctx.udp_memory_allocated_pages;
        let (a, b) = (now.max(self.mem_pages), now.min(self.mem_pages));
        // A quarter, and at least 256 pages (1 MiB): a host near idle
        // swings by a few pages between reads.
        a - b >= 256 && (a - b) * 4 >= a
    }
}

/// The pass' own orphan total: its groups' (the last census' between
/// passes), before regrouping or filtering, which only move or hide them.
fn census_orphans(agg: &Aggregator) -> u64 {
    agg.groups.values().map(|r| r.mem.orphans).sum()
}

impl Census {
    /// `primary` is the namespace named on the command line (or netmem's
    /// own); its groups carry no `@NAMESPACE` suffix in `names`, the
    /// run's names, which every pass fills.
    pub fn new(
        primary: &Netns,
        all: bool,
        owners: bool,
        by: GroupBy,
        filter: &Filter,
        names: &Names,
    ) -> Result<Census> {
        let inum = primary.inum()?;
        names.set_default_netns(inum);
        if primary.path().is_some() {
            names.name_netns(inum, primary.label());
        }
        names.set_all_namespaces(all);
        Ok(Census {
            proxies: crate::sources::proxy::Proxies::new(
                Default::default(),
                inum,
                None,
                all,
                Default::default(),
            ),
            all: all.then(Namespaces::default),
            owners: (owners || by.by_owner()).then(OwnerSource::new),
            by,
            filter: filter.clone(),
            time_wait: false,
            budget: Budget::EveryPass,
            last: None,
            reads: Default::default(),
            names: names.clone(),
            counters_before: HashMap::new(),
            kernel: KernelTier::new(None),
            used: CensusTier::SockDiag,
        })
    }

    /// `--census`: the tier every pass must use, or None to use the best
    /// this kernel allows.
    pub fn with_tier(mut self, pref: Option<CensusTier>) -> Census {
        self.kernel = KernelTier::new(pref);
        self
    }

    /// A live command: starts loading the in-kernel census with the
    /// hooks' `layout` (resolved once for both), beside the hooks' attach,
    /// rather than at the first pass.
    pub fn preload(&mut self, layout: &netmem_common::KernelLayout) {
        // With owners every pass reads each socket: nothing to load.
        if self.owners.is_none() && self.kernel_pays() {
            self.kernel.preload(layout);
        }
    }

    /// The run's names, as the passes keep them.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Full passes within `budget` (live commands; a snapshot is one pass).
    pub fn with_budget(mut self, budget: Budget) -> Census {
        self.budget = budget;
        self
    }

    /// One pass (call before [`Census::with_proxies`]): nothing is
    /// promised for later passes; `shown`: the caller's output says the
    /// proxies' problems, so stderr need not.
    pub fn one_shot(mut self, shown: bool) -> Census {
        use crate::sources::proxy::Reads;
        self.reads = if shown { Reads::OnceQuiet } else { Reads::Once };
        self
    }

    /// Counts TIME_WAIT sockets per group (a pass then costs in proportion
    /// to them; without it the kernel skips them).
    pub fn with_time_wait(mut self, on: bool) -> Census {
        self.time_wait = on;
        self
    }

    /// Which proxies name the groups (`--haproxy`; by default, any
    /// HAProxy found running in a traced namespace).
    pub fn with_proxies(
        mut self,
        spec: crate::sources::proxy::ProxySpec,
        primary: &Netns,
    ) -> Result<Census> {
        self.proxies = crate::sources::proxy::Proxies::new(
            spec,
            primary.inum()?,
            primary.path().map(Into::into),
            self.all.is_some(),
            self.reads,
        );
        Ok(self)
    }

    /// The proxies as the last pass read them.
    pub fn proxies(&self) -> Vec<std::sync::Arc<crate::model::proxy::ProxyView>> {
        self.proxies.views().to_vec()
    }

    pub fn all_namespaces(&self) -> bool {
        self.all.is_some()
    }

    pub fn owners(&self) -> Option<&OwnerSource> {
        self.owners.as_ref()
    }

    /// One pass: sock_diag in each namespace (every state but TIME_WAIT,
    /// unless asked; `sticky`: see [`super::collect`]), then the
    /// owners.
    /// Returns the ports with a listener in any namespace, and the
    /// primary namespace's context (read first: its sockstat says which
    /// tables to dump). With `--netns all`, a namespace that goes away
    /// during its dump is skipped.
    pub fn collect(
        &mut self,
        primary: &Netns,
        agg: &mut Aggregator,
        sticky: &HashSet<u16>,
    ) -> Result<(HashSet<u16>, Context)> {
        let (ctx, primary_counters) = Context::read_with_counters(primary, true)?;
        let primary_inum = primary.inum()?;
        // Servers move between passes (DNS, `set server addr`): the proxy
        // is read at every one, censused or not.
        self.proxies.refresh();
        let now = std::time::Instant::now();
        let reuse = match (&self.budget, &self.last) {
            (Budget::Share(_), Some(last)) => now < last.due && !last.stale_for(&ctx),
            _ => false,
        };
        let mut ctx = ctx;
        if reuse {
            ctx.census = Some(self.used.name());
            let listening = self.between(primary, agg, sticky, &ctx)?;
            ctx.orphans_census = Some(census_orphans(agg));
            agg.netns_counters.push((primary_inum, primary_counters));
            self.counters_growth(agg);
            return Ok((listening, ctx));
        }
        let listening = self.full_pass(primary, agg, sticky, &ctx)?;
        ctx.orphans_census = Some(census_orphans(agg));
        ctx.census = Some(self.used.name());
        // The workers read every other namespace's; the primary's is this
        // pass's own reading.
        agg.netns_counters.retain(|(inum, _)| *inum != primary_inum);
        let counted = agg.netns_counters.iter().map(|(i, _)| *i).collect();
        agg.netns_counters.push((primary_inum, primary_counters));
        self.counters_growth(agg);
        if let Budget::Share(share) = self.budget {
            let cost = now.elapsed();
            self.last = Some(LastPass {
                at: now,
                due: now + cost.div_f64(share.max(1e-6)),
                groups: agg.groups.clone(),
                listening: listening.clone(),
                listen_ports_in_use: agg.listen_ports_in_use.clone(),
                attribution: agg.attribution.clone(),
                mem_pages: ctx.memory_allocated_pages + ctx.udp_memory_allocated_pages,
                counted,
            });
        }
        Ok((listening, ctx))
    }

    /// Whether the kernel tier is worth loading (`--census` aside). It
    /// walks the same kernel hash as sock_diag at the same kernel cost and
    /// saves the parsing of one record per socket (BENCHMARKS.md, issue
    /// 31): worth it for a live command on one namespace, which loads it
    /// once. Not for a single pass (`snapshot`), which would pay its load
    /// (vmlinux BTF parsed, the iterators verified: 60-100 ms) for one
    /// walk, nor for `--netns all`, where each namespace's walk visits
    /// every bucket of the host's hash and the iterator's visit costs
    /// more per bucket than sock_diag's (20 namespaces: 6.5x one, against
    /// 2.7x).
    fn kernel_pays(&self) -> bool {
        use crate::sources::proxy::Reads;
        let auto = matches!(self.kernel, KernelTier::Untried { demanded: false });
        !auto || (self.reads == Reads::Live && self.all.is_none())
    }

    /// An interval between full passes: the last pass's groups, with what
    /// must be fresh read cheaply. The listeners are dumped (the kernel
    /// walks only its listening hash for them) so new ports are grouped
    /// right away; the orphan poller's sockets are dumped by state, and
    /// only while sockstat counts orphans.
    fn between(
        &mut self,
        primary: &Netns,
        agg: &mut Aggregator,
        sticky: &HashSet<u16>,
        ctx: &Context,
    ) -> Result<HashSet<u16>> {
        let last = self.last.as_ref().expect("checked by the caller");
        agg.groups = last.groups.clone();
        agg.listen_ports_in_use = last.listen_ports_in_use.clone();
        agg.attribution = last.attribution.clone();
        agg.census_age = Some(last.at.elapsed());
        agg.sockets = None;
        if let Some(all) = self.all.as_ref() {
            // Counters move between censuses: read again in the
            // namespaces that had TCP sockets at the last one.
            for inum in &last.counted {
                let Some(ns) = all.get(*inum) else { continue };
                match Context::usage_and_counters(ns, true) {
                    Ok((_, c)) => agg.netns_counters.push((*inum, c)),
                    Err(e) => log::debug!("namespace {inum}: counters not read: {e:#}"),
                }
            }
            return Ok(last.listening.clone());
        }
        let diag = crate::sources::sockdiag::SockDiag::open(primary)?;
        let mut listening = HashSet::new();
        diag.tcp(
            crate::sources::sockdiag::Families::BOTH,
            States::Listening,
            |r| {
                listening.insert(r.lport);
            },
        )?;
        if let Some(orphans) = agg.orphan_records.as_mut() {
            if ctx.orphans > 0 {
                let mut ports = sticky.clone();
                ports.extend(listening.iter().copied());
                diag.tcp(
                    crate::sources::sockdiag::Families::BOTH,
                    States::Closing,
                    |r| {
                        if crate::model::group::is_orphan(r) {
                            orphans.push((r.clone(), crate::model::group::group_of(r, &ports)));
                        }
                    },
                )?;
            }
        }
        Ok(listening)
    }

    /// This pass's counter readings, with their growth since each
    /// namespace's previous one; namespaces not read are forgotten.
    fn counters_growth(&mut self, agg: &mut Aggregator) {
        let mut now = HashMap::new();
        agg.netns = std::mem::take(&mut agg.netns_counters)
            .into_iter()
            .map(|(inum, read)| {
                let f = NetnsFigures::since(inum, &read, self.counters_before.get(&inum));
                now.insert(inum, f.totals.clone());
                f
            })
            .collect();
        self.counters_before = now;
    }

    fn full_pass(
        &mut self,
        primary: &Netns,
        agg: &mut Aggregator,
        sticky: &HashSet<u16>,
        ctx: &Context,
    ) -> Result<HashSet<u16>> {
        let others = if self.time_wait {
            States::AllButListening
        } else {
            States::Buffered
        };
        if self.owners.is_some() {
            agg.sockets = Some(Vec::new());
        }
        let time_wait = self.time_wait;
        // The kernel sums groups, not sockets: a pass that needs each
        // socket (owners) reads them by sock_diag; the orphan poller's
        // orphans are dumped apart (`collect_in_kernel`).
        let kernel = if agg.sockets.is_none() && self.kernel_pays() {
            self.kernel.get()?
        } else {
            None
        };
        self.used = if kernel.is_some() {
            CensusTier::BpfIter
        } else {
            CensusTier::SockDiag
        };
        let listening = match self.all.as_mut() {
            None => {
                let present = procfs::presence(ctx, time_wait);
                match kernel {
                    // Nothing to walk: the kernel would still visit every
                    // bucket of the host's hash to find that out.
                    Some(_) if !present.tcp.any() && !present.udp.any() => HashSet::new(),
                    Some(k) => super::collect_in_kernel(
                        agg,
                        k,
                        primary,
                        sticky,
                        time_wait,
                        present,
                        ctx.orphans > 0,
                    )?,
                    None => super::collect_present(agg, primary, others, sticky, present)?,
                }
            }
            Some(all) => {
                let found = all.discover()?;
                for (ns, name) in &found {
                    self.names.name_netns(ns.inum()?, name);
                }
                let primary_inum = primary.inum()?;
                if let Some(k) = kernel {
                    // One namespace after another: each pass is a walk in
                    // the kernel with one record per group to read back,
                    // and the iterator's maps serve one pass at a time.
                    let mut listening = HashSet::new();
                    for (ns, name) in &found {
                        let inum = ns.inum()?;
                        let pass =
                            Context::usage_and_counters(ns, true).and_then(|(u, counters)| {
                                if u.sockets_inuse + u.tcp6_inuse + u.tw > 0 {
                                    agg.netns_counters.push((inum, counters));
                                }
                                let p = procfs::presence(&u, time_wait);
                                if !p.tcp.any() && !p.udp.any() {
                                    return Ok(HashSet::new());
                                }
                                super::collect_in_kernel(
                                    agg,
                                    k,
                                    ns,
                                    sticky,
                                    time_wait,
                                    p,
                                    ctx.orphans > 0,
                                )
                            });
                        match pass {
                            Ok(l) => listening.extend(l),
                            Err(e) if inum == primary_inum => return Err(e),
                            Err(e) => skipped(name, &e),
                        }
                    }
                    return self.attribute(agg, listening);
                }
                // Each namespace's dump walks the kernel's socket hash
                // table, which every namespace shares: the dumps run on a
                // few threads at once, each into an aggregator of its own.
                let workers = std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .clamp(1, MAX_WORKERS);
                let results: Vec<Result<(Aggregator, HashSet<u16>)>> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..workers)
                        .map(|w| {
                            let mine: Vec<_> = found.iter().skip(w).step_by(workers).collect();
                            let with_sockets = agg.sockets.is_some();
                            let with_orphans = agg.orphan_records.is_some();
                            s.spawn(move || {
                                let mut part = Aggregator {
                                    sockets: with_sockets.then(Vec::new),
                                    orphan_records: with_orphans.then(Vec::new),
                                    ..Default::default()
                                };
                                let mut listening = HashSet::new();
                                for (ns, name) in mine {
                                    let inum = ns.inum()?;
                                    // An empty table is skipped: its dump
                                    // would still walk the shared hash.
                                    // Its counters in the same entry into
                                    // it, kept when it has TCP sockets.
                                    let pass = Context::usage_and_counters(ns, true).and_then(
                                        |(u, counters)| {
                                            if u.sockets_inuse + u.tcp6_inuse + u.tw > 0 {
                                                part.netns_counters.push((inum, counters));
                                            }
                                            let p = procfs::presence(&u, time_wait);
                                            super::collect_present(&mut part, ns, others, sticky, p)
                                        },
                                    );
                                    match pass {
                                        Ok(l) => listening.extend(l),
                                        Err(e) if inum == primary_inum => return Err(e),
                                        Err(e) => skipped(name, &e),
                                    }
                                }
                                Ok((part, listening))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(anyhow::anyhow!("a namespace worker panicked"))
                            })
                        })
                        .collect()
                });
                let mut listening = HashSet::new();
                for r in results {
                    let (part, l) = r?;
                    agg.merge(part);
                    listening.extend(l);
                }
                listening
            }
        };
        self.attribute(agg, listening)
    }

    /// The owners of the pass' sockets, when asked.
    fn attribute(&mut self, agg: &mut Aggregator, listening: HashSet<u16>) -> Result<HashSet<u16>> {
        if let Some(src) = self.owners.as_mut() {
            let mut sockets = agg.sockets.take().unwrap_or_default();
            sockets.retain(|(_, g)| self.filter.accepts(g));
            let inodes: HashSet<u32> = sockets.iter().map(|(r, _)| r.inode).collect();
            let cgroup_ids: HashSet<u64> = sockets.iter().map(|(r, _)| r.cgroup_id).collect();
            src.refresh(&inodes, &cgroup_ids);
            let src = &*src;
            let mut memcg = |id| src.memcg(id);
            let mut a = owner::attribute(
                &mut agg.groups,
                &sockets,
                src.table(),
                &mut memcg,
                self.by,
                &self.names,
            );
            a.filter = self.filter.clone();
            agg.attribution = Some(a);
        }
        Ok(listening)
    }
}
