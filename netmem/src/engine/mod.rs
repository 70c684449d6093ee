//! The live engine behind `trace` (and every live consumer to come):
//! attaches the hooks, drains the ring buffer as events arrive, gathers an
//! interval on a worker every `--interval`, turns both into the typed model
//! and hands it to a [`Sink`]. It never formats anything itself.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use netmem_common::{Event as RawEvent, EventKind, GroupCounters, GroupKey, Stat};
use tokio::io::unix::AsyncFd;

use crate::hooks::{Coverage, HookId, Probes, Tier};
use crate::model::decode::Decoder;
use crate::model::names::Names;
use crate::model::owner::{Attribution, GroupBy};
use crate::model::{Body, Event, Filter, Summary};
use crate::output::Sink;
use crate::polling::Polls;
use crate::sources::census::Census;
use crate::sources::netns::Netns;
use crate::sources::owners::lookup_cgroup;
use crate::sources::procfs::Context;

mod interval;

/// Ring buffer records handled per wake-up before the loop looks at its
/// other duties (the interval tick, signals).
const DRAIN_BATCH: usize = 16 * 1024;
/// ... and the longest such a batch may take.
const DRAIN_TIME: Duration = Duration::from_millis(20);
/// How often the ring is read without a wake-up: the longest a lone event
/// waits before it is shown.
const DRAIN_TICK: Duration = Duration::from_millis(10);
/// How long shutdown keeps decoding what is left in the ring.
const EXIT_DRAIN_TIME: Duration = Duration::from_millis(300);

use interval::{gather, Gathered};

pub struct Options {
    /// The command the user ran, for messages (e.g. "netmem trace").
    pub command: &'static str,
    pub netns: Netns,
    /// `--netns all`: every namespace, counted apart in one attachment.
    pub all_netns: bool,
    /// `--owners`: who holds each group's sockets.
    pub owners: bool,
    pub group_by: GroupBy,
    /// `--time-wait`: count each group's TIME_WAIT sockets.
    pub time_wait: bool,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub filter: Filter,
    /// Events handed to the sink per interval at most; the rest are counted.
    pub event_limit: u64,
    /// Best tier allowed (lower tiers are still used when better ones fail).
    pub max_tier: Tier,
    /// `--census-budget`: how often the per-group pass reads every socket.
    pub census_budget: crate::sources::census::Budget,
    /// `--census`: the census tier demanded, or None for the best here.
    pub census: Option<crate::hooks::catalog::CensusTier>,
    /// `--haproxy`: which proxy names the groups.
    pub proxy: crate::sources::proxy::ProxySpec,
    /// Read the host line's facts again this often and hand them to the
    /// sink (`serve`: its sysctl series follow a change made while it
    /// runs); None: once, at the start (a recording's first line).
    pub host_refresh: Option<Duration>,
}

pub use crate::sources::gather::monotonic_ns;

/// State the live loop keeps between events and intervals.
struct Tracer<'s> {
    opts: Options,
    /// The run's names: the census fills them; decoder, aggregator and sink read them.
    names: Names,
    sink: &'s mut dyn Sink,
    probes: Probes,
    drop_reasons: HashMap<u32, String>,
    /// wall clock minus CLOCK_MONOTONIC, to date kernel timestamps
    wall_offset: Duration,
    prev_counts: HashMap<GroupKey, GroupCounters>,
    sock_min_sndbuf: i64,
    /// procfs figures of the last interval, for what the kernel could not read
    last_ctx: Option<Context>,
    /// None while an interval's gather runs on its worker.
    polls: Option<Polls>,
    /// Which namespaces and owners a pass covers; with `polls`, on the
    /// worker while a gather runs.
    census: Option<Census>,
    /// The last pass's owners: events are charged by it.
    attribution: Option<Attribution>,
    /// The proxies as the last pass read them: events are named by them.
    proxies: Vec<std::sync::Arc<crate::model::proxy::ProxyView>>,
    /// The proxies' generations last handed to the sink.
    proxies_shown: Vec<u64>,
    /// CLOCK_MONOTONIC ns of the memory-pressure entry being timed
    pressure_since: Option<u64>,
    /// Pressure periods that ended, summed.
    pressure_done: Duration,
    /// Which cgroups' sockets are under memory pressure of their own, to
    /// say when it begins.
    memcg_watch: crate::model::memcg::PressureWatch,
    /// The polled abort poller's kernel log counts of the last pass.
    kernel_log: Option<(u64, u64)>,
    routes: interval::RouteTally,
    /// Events of this interval handed to the sink, by kind.
    shown: std::collections::BTreeMap<&'static str, u64>,
    /// The ports set in the kernel's listening-port map.
    listen_known: std::collections::HashSet<u16>,
    /// The traced namespace's name was deleted (said once).
    netns_gone: bool,
    received: u64,
    /// Records still in the ring past the shutdown budget: counted only.
    unread_at_exit: u64,
    shown_this_interval: u64,
    suppressed_this_interval: u64,
    suppressed_total: u64,
    /// When the host line's facts were last read.
    host_read: std::time::Instant,
}

/// The host line's facts: the machine and what this run traces.
fn host_line(opts: &Options) -> Result<crate::sources::host::Host> {
    crate::sources::host::Host::of_trace(crate::sources::host::Traced {
        netns: &opts.netns,
        all_netns: opts.all_netns,
        group_by: opts.group_by,
        owners: opts.owners,
        interval: opts.interval,
    })
}

pub async fn run(opts: Options, sink: &mut dyn Sink) -> Result<Summary> {
    run_with(opts, sink, |_| Ok(())).await
}

/// `run`, with `extra` called once everything is attached and before the
/// first event is read (the pipeline benchmark attaches its producer there).
pub async fn run_with(
    opts: Options,
    sink: &mut dyn Sink,
    extra: impl FnOnce(&mut Probes) -> Result<()>,
) -> Result<Summary> {
    // One run, one set of names, handed to all that name groups.
    let names = Names::default();
    sink.names(&names);
    // The first line a recording needs to be diagnosed later.
    sink.host(&host_line(&opts)?)?;
    let listening = crate::sources::gather::listening_ports(&opts.netns)?;
    let mut census = Census::new(
        &opts.netns,
        opts.all_netns,
        opts.owners,
        opts.group_by,
        &opts.filter,
        &names,
    )?
    .with_time_wait(opts.time_wait)
    .with_budget(opts.census_budget)
    .with_tier(opts.census)
    .with_proxies(opts.proxy.clone(), &opts.netns)?;
    // 0: the kernel programs count every namespace, each apart.
    let netns_inum = if opts.all_netns {
        0
    } else {
        opts.netns.inum()?
    };
    crate::kernel::startup::mark("host and listeners read");
    let (probes, resolved) = crate::hooks::attach::setup_with(
        opts.command,
        netns_inum,
        opts.max_tier,
        &listening,
        |layout| census.preload(layout),
    )?;
    crate::kernel::startup::release_freed_memory();
    let polls = Polls::for_tiers(|h| probes.tier_of(h));
    let mono = monotonic_ns();
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Tracer {
        opts,
        names,
        sink,
        probes,
        drop_reasons: resolved.drop_reason_names.into_iter().collect(),
        wall_offset: wall.saturating_sub(Duration::from_nanos(mono)),
        prev_counts: HashMap::new(),
        sock_min_sndbuf: resolved.sock_min_sndbuf,
        last_ctx: None,
        polls: Some(polls),
        census: Some(census),
        attribution: None,
        proxies: Vec::new(),
        proxies_shown: Vec::new(),
        pressure_since: None,
        pressure_done: Duration::ZERO,
        memcg_watch: Default::default(),
        kernel_log: None,
        routes: Default::default(),
        shown: Default::default(),
        listen_known: listening.iter().copied().collect(),
        netns_gone: false,
        received: 0,
        unread_at_exit: 0,
        shown_this_interval: 0,
        suppressed_this_interval: 0,
        suppressed_total: 0,
        host_read: std::time::Instant::now(),
    };
    extra(&mut t.probes)?;
    let elapsed = t.main_loop().await?;
    let mut stats = [0u64; Stat::COUNT];
    for s in Stat::ALL {
        stats[*s as usize] = t.probes.stat(*s)?;
    }
    let summary = Summary {
        ts: Some(SystemTime::now()),
        events: t.received,
        events_suppressed: t.suppressed_total,
        events_unread_at_exit: t.unread_at_exit,
        duration: elapsed,
        stats,
    };
    t.sink.summary(&summary)?;
    Ok(summary)
}

impl Tracer<'_> {
    async fn main_loop(&mut self) -> Result<Duration> {
        let started = Instant::now();
        // Prime counters, pollers and the listening-port set before saying
        // we are live: whatever happens after the probes line is reported.
        let g = gather(
            &self.opts.netns,
            self.polls.take().expect("polls"),
            self.census.take().expect("census"),
            self.opts.event_limit,
            &self.listen_known,
        )?;
        self.interval_report(g, false)?;
        crate::kernel::startup::mark("first interval primed");
        self.show_proxies()?;
        self.sink.coverage(&self.probes.status)?;
        let ring = self.probes.ring_buf()?;
        // SAFETY: the ring buffer owns its fd and is only dropped with the AsyncFd.
        let mut rb = unsafe { AsyncFd::register(ring) }
            .map_err(|e| e.into_parts().1)
            .context("cannot poll the ring buffer")?;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.opts.interval,
            self.opts.interval,
        );
        let deadline = self.opts.duration.map(|d| tokio::time::Instant::now() + d);
        let end = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(end);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pending: Option<tokio::task::JoinHandle<Result<Gathered>>> = None;
        // The kernel wakes this loop for a batch, or for a lone record at
        // most once a millisecond per CPU (sock.rs `wake_flags`); a record
        // that woke nobody is read on this tick.
        let mut drain_tick = tokio::time::interval(DRAIN_TICK);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Biased, most urgent first: under an event flood the ring is
            // always ready, and stopping, the interval's report and its tick
            // must still win whenever they are due.
            tokio::select! {
                biased;
                _ = crate::shutdown::wait() => break,
                _ = &mut end => break,
                done = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                    pending = None;
                    let g = done.context("interval worker panicked")??;
                    self.interval_report(g, true)?;
                }
                _ = tick.tick(), if pending.is_none() => {
                    self.refresh_host()?;
                    pending = Some(self.spawn_gather()?);
                }
                _ = drain_tick.tick() => {
                    self.drain_some(rb.get_mut(), DRAIN_BATCH)?;
                    self.sink.flush()?;
                }
                guard = rb.readable_mut() => {
                    let mut guard = guard?;
                    // A batch bounded in count and time: under a flood the
                    // ring never empties. Yielding then lets the runtime
                    // turn its timer and I/O drivers, which it only does
                    // when this task gives control back.
                    let emptied = self.drain_some(guard.get_inner_mut(), DRAIN_BATCH)?;
                    if emptied {
                        guard.clear_ready();
                    }
                    self.sink.flush()?;
                    if !emptied {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        // The last, partial interval is reported too: a gather under way
        // finishes, else one more is taken now. Events already in the ring
        // go first, so they count in it.
        self.drain(rb.get_mut())?;
        let last = match pending {
            Some(p) => p.await.context("interval worker panicked")?,
            None => self
                .spawn_gather()?
                .await
                .context("interval worker panicked")?,
        };
        self.interval_report(last?, true)?;
        // Drain what arrived meanwhile so the summary's counts are final.
        self.drain(rb.get_mut())?;
        Ok(started.elapsed())
    }

    /// What is in the ring at shutdown, for at most [`EXIT_DRAIN_TIME`]:
    /// producers may still be flooding it, and a stop must end. Records
    /// left after that are counted, not decoded (`events_unread_at_exit`),
    /// up to what the ring can hold.
    fn drain(&mut self, rb: &mut RingBuf<MapData>) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < EXIT_DRAIN_TIME {
            if self.drain_some(rb, DRAIN_BATCH)? {
                return Ok(());
            }
        }
        // Twice what the ring can hold: bounded while producers flood it.
        let cap = 2 * netmem_common::EVENTS_BYTES as usize / netmem_common::EVENT_HEAD;
        for _ in 0..cap {
            if rb.next().is_none() {
                break;
            }
            self.received += 1;
            self.unread_at_exit += 1;
        }
        Ok(())
    }

    /// At most `max` records, and for at most [`DRAIN_TIME`]; true when the
    /// ring was emptied.
    fn drain_some(&mut self, rb: &mut RingBuf<MapData>, max: usize) -> Result<bool> {
        let started = Instant::now();
        for n in 0..max {
            if n % 256 == 255 && started.elapsed() > DRAIN_TIME {
                return Ok(false);
            }
            let Some(item) = rb.next() else {
                return Ok(true);
            };
            let e = RawEvent::from_record(&item);
            drop(item);
            if let Some(e) = e {
                self.on_event(&e)?;
            }
        }
        Ok(false)
    }

    fn decode(&self, raw: &RawEvent) -> Option<Event> {
        let names = &self.drop_reasons;
        let lookup = |r: u32| names.get(&r).cloned().unwrap_or_else(|| r.to_string());
        let probes = &self.probes;
        let tier = |h: HookId| probes.tier_of(h);
        let offset = self.wall_offset;
        let wall = |ns: u64| SystemTime::UNIX_EPOCH + offset + Duration::from_nanos(ns);
        let d = Decoder {
            drop_reason: &lookup,
            sock_min_sndbuf: self.sock_min_sndbuf,
            max_orphans: self
                .last_ctx
                .as_ref()
                .and_then(|c| c.max_orphans)
                .map(|v| v as i64),
            orphans: self.last_ctx.as_ref().map(|c| c.orphans as i64),
            tier: &tier,
            wall: &wall,
            names: &self.names,
        };
        d.decode(raw)
    }

    fn on_event(&mut self, raw: &RawEvent) -> Result<()> {
        self.received += 1;
        // Past this interval's limit, an event only the sink would use is
        // counted without being decoded: under a flood, decoding is most of
        // the reader's cost. Kinds the stream keeps state from are not.
        if self.shown_this_interval >= self.opts.event_limit {
            use netmem_common::EventKind as K;
            match EventKind::from_u32(raw.kind) {
                None => return Ok(()),
                Some(K::PressureEnter | K::PressureLeave | K::RouteException) => {}
                Some(_) => {
                    if self.opts.filter.accepts(&raw.group) {
                        self.suppress();
                    }
                    return Ok(());
                }
            }
        }
        let Some(mut e) = self.decode(raw) else {
            return Ok(());
        };
        // What only the stream as a whole knows: pressure durations, the
        // route tally, the kernel log beside polled aborts.
        match &mut e.body {
            Body::PressureEnter { .. } => {
                if self.pressure_since.is_some() {
                    // Another CPU saw the same transition: one entry is enough.
                    return Ok(());
                }
                self.pressure_since = Some(raw.ts_ns);
            }
            Body::PressureLeave { duration, .. } => {
                *duration = self
                    .pressure_since
                    .take()
                    .map(|t0| Duration::from_nanos(raw.ts_ns.saturating_sub(t0)));
                self.pressure_done += duration.unwrap_or_default();
            }
            Body::RouteException(r) => self.routes.add(r.dst, r.family),
            Body::AbortOnMemory(a) if a.via == Some(netmem_common::AbortSource::Nstat) => {
                a.infer_cause(self.kernel_log);
            }
            _ => {}
        }
        if let Some(g) = &e.group {
            if !self.opts.filter.accepts(g) {
                return Ok(());
            }
        }
        if let Some(g) = e.group {
            e.proxy = crate::model::proxy::name_of(&self.proxies, &g);
            let a = self.attribution.as_ref();
            // Owners from the last pass: the event's port group's main
            // owner, unless the kernel recorded the socket's own.
            match &mut e.owner {
                None => e.owner = a.and_then(|a| a.event_owner.get(&g).cloned()),
                Some(o) if o.cgroup.is_none() => {
                    o.cgroup = o.cgroup_id.and_then(|c| lookup_cgroup(c, &self.names));
                }
                Some(_) => {}
            }
            e.group = Some(match self.opts.group_by {
                GroupBy::ProxyBackend => {
                    crate::model::proxy::event_group(g, e.proxy.as_deref(), &self.names)
                }
                by => crate::model::owner::event_group(g, e.owner.as_ref(), a, by),
            });
        }
        if self.shown_this_interval >= self.opts.event_limit {
            self.suppress();
            return Ok(());
        }
        self.shown_this_interval += 1;
        *self.shown.entry(e.body.kind().name()).or_default() += 1;
        self.sink.event(&e)
    }

    /// The proxies, when any changed since the sink last saw them.
    fn show_proxies(&mut self) -> Result<()> {
        let now: Vec<u64> = self.proxies.iter().map(|p| p.generation).collect();
        if now != self.proxies_shown {
            self.sink.proxies(&self.proxies)?;
            self.proxies_shown = now;
        }
        Ok(())
    }

    /// One event over the interval's `--event-limit`: counted, not shown.
    fn suppress(&mut self) {
        self.suppressed_this_interval += 1;
        self.suppressed_total += 1;
    }

    /// Starts the interval's sock_diag pass and pollers on a blocking
    /// worker, so the ring buffer keeps being drained while they run.
    /// The host line again when `host_refresh` says it is time. A read
    /// that fails keeps the facts the sink has, and says so.
    fn refresh_host(&mut self) -> Result<()> {
        let Some(every) = self.opts.host_refresh else {
            return Ok(());
        };
        if self.host_read.elapsed() < every {
            return Ok(());
        }
        self.host_read = std::time::Instant::now();
        match host_line(&self.opts) {
            Ok(h) => self.sink.host(&h),
            Err(e) => {
                log::warn!("reading the host's facts again: {e:#} (the last reading stays)");
                Ok(())
            }
        }
    }

    fn spawn_gather(&mut self) -> Result<tokio::task::JoinHandle<Result<Gathered>>> {
        let netns = self.opts.netns.try_clone()?;
        let polls = self.polls.take().expect("one gather at a time");
        let census = self.census.take().expect("one gather at a time");
        let limit = self.opts.event_limit;
        let sticky = self.listen_known.clone();
        Ok(tokio::task::spawn_blocking(move || {
            gather(&netns, polls, census, limit, &sticky)
        }))
    }

    /// Adds the kernel's per-group counts since the last interval to `agg`,
    /// then removes from the kernel map every group that counted nothing
    /// since the last interval: the map holds only recently active groups,
    /// so it does not fill up over a long trace. An increment landing
    /// between the read and the removal of an idle group is the only count
    /// this can lose.
    fn count_groups(&mut self, agg: &mut crate::model::Aggregator) -> Result<()> {
        // Updated in place: a busy host has thousands of groups, and a
        // second table each interval would double what the report holds.
        // The kernel never removes a group itself, so the groups missing
        // from this read are exactly those forgotten below.
        let prev_counts = &mut self.prev_counts;
        let mut idle = Vec::new();
        self.probes.for_each_group_count(|g, c| {
            let prev = prev_counts.get(&g);
            if prev == Some(&c) {
                idle.push(g);
                return;
            }
            let d = crate::model::group::counter_delta(&c, prev);
            if d.counts.iter().any(|&x| x > 0) {
                agg.add_counts(g, &d);
            }
            prev_counts.insert(g, c);
        })?;
        for g in &idle {
            prev_counts.remove(g);
        }
        // After a burst of groups, hand the table's room back once most of
        // it sits empty (not at every interval: that would copy it).
        if prev_counts.capacity() > 4 * prev_counts.len().max(1024) {
            prev_counts.shrink_to_fit();
        }
        self.probes.forget_groups(&idle)?;
        Ok(())
    }

    /// Counter deltas on top of a gathered pass; refreshes LISTEN_PORTS;
    /// feeds polled events through; hands the interval to the sink when
    /// `report` (the first pass only primes state).
    fn interval_report(&mut self, g: Gathered, report: bool) -> Result<()> {
        let Gathered {
            mut agg,
            listening,
            dump_started,
            taken_at,
            ctx,
            polls,
            census,
            events,
            route_cached,
            rt6_cached,
        } = g;
        self.proxies = census.proxies();
        self.census = Some(census);
        if !self.netns_gone && !self.opts.netns.still_named() {
            self.netns_gone = true;
            log::warn!(
                "network namespace {} was deleted; its sockets are gone once nothing else holds it, and netmem keeps reporting what is left",
                self.opts.netns.label()
            );
        }
        self.kernel_log = polls.aborts.as_ref().map(|p| p.log_counts);
        self.polls = Some(polls);
        interval::sync_listen_ports(
            &mut self.probes,
            &mut self.listen_known,
            &listening,
            &agg.listen_ports_in_use,
            dump_started,
        )?;
        self.count_groups(&mut agg)?;
        agg.finish(
            self.opts.group_by,
            &self.opts.filter,
            &self.proxies,
            &self.names,
        );
        self.attribution = agg.attribution.take();
        self.last_ctx = Some(ctx);
        for e in &events {
            self.on_event(e)?;
        }
        if !report {
            self.routes
                .take(self.opts.interval, rt6_cached, &route_cached);
            return Ok(());
        }
        let now = monotonic_ns();
        let ongoing = self
            .pressure_since
            .map(|t0| Duration::from_nanos(now.saturating_sub(t0)))
            .unwrap_or_default();
        let live = crate::model::Live {
            memory_pressure: self.pressure_since.is_some(),
            pressure_time: self.pressure_done + ongoing,
            gather_time: Duration::from_nanos(now.saturating_sub(dump_started)),
            census_age: agg.census_age,
            routes: self
                .routes
                .take(self.opts.interval, rt6_cached, &route_cached),
            coverage: Coverage::of(&self.probes.status),
            loss: crate::model::Loss {
                lost_events: self.probes.stat(Stat::RingbufLost)?,
                events_suppressed: self.suppressed_this_interval,
                group_map_full: self.probes.stat(Stat::GroupMapFull)?,
            },
            events: std::mem::take(&mut self.shown),
        };
        let i = crate::model::Interval {
            time_wait_counted: self.opts.time_wait,
            // When the figures were read, not when they were printed: the
            // dump may take a while on a busy host.
            ts: taken_at,
            context: self.last_ctx.clone().expect("read above"),
            netns: std::mem::take(&mut agg.netns),
            groups: agg.into_sorted(&self.opts.filter),
            live: Some(live),
        };
        self.show_proxies()?;
        // The cgroups of the groups shown whose sockets came under
        // pressure of their own: judged on the pass's figures, so said
        // once per interval, before the interval that shows them.
        let host = crate::model::memcg::HostTcp::of(&i.context);
        for p in self.memcg_watch.update(&i.groups, host) {
            if p.began {
                self.sink.event(&p.event(taken_at))?;
            }
        }
        self.sink.interval(&i)?;
        self.shown_this_interval = 0;
        self.suppressed_this_interval = 0;
        drop(i);
        crate::kernel::startup::release_freed_memory();
        Ok(())
    }
}
