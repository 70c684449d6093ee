//! `netmem trace`: attach, then stream rare events as they happen and print
//! the per-group table every interval until Ctrl-C, SIGTERM or --duration.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use netmem_common::{AbortArg, Event, EventKind, GroupCounters, GroupKey, Stat, AF_INET, AF_INET6};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::attribution::{counter_delta, Aggregator, Filter};
use crate::output::{
    context_json, context_text, emit_line, event_json, event_text, group_json, rfc3339, table,
    EventContext,
};
use crate::pollers::{AbortPoll, OrphanDiff, PressurePoll, RouteDiff};
use crate::probes::{Probes, Tier};
use crate::procfs::Context;
use crate::snapshot::collect;

pub struct Options {
    pub netns: crate::netns::Netns,
    pub json: bool,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub filter: Filter,
    /// Events printed per interval at most; the rest are counted.
    pub event_limit: u64,
    /// Best tier allowed (lower tiers are still used when better ones fail).
    pub max_tier: Tier,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The pollers of the hooks served by the polling tier.
#[derive(Default)]
struct Polls {
    aborts: Option<AbortPoll>,
    orphans: Option<OrphanDiff>,
    pressure: Option<PressurePoll>,
    routes_v4: bool,
    routes_v6: bool,
    route_diff: RouteDiff,
}

/// Route exceptions seen this interval, by destination.
#[derive(Default)]
struct RouteStats {
    inserted: u64,
    by_dst: HashMap<String, u64>,
    cached: HashMap<&'static str, usize>,
}

/// The hook whose tier an event reports.
fn hook_of(e: &Event) -> &'static str {
    match EventKind::from_u32(e.kind) {
        Some(EventKind::ExceedBufLimit) => "sock:sock_exceed_buf_limit",
        Some(EventKind::RcvqueueFull) => "sock:sock_rcvqueue_full",
        Some(EventKind::AbortOnMemory) => "tcp_check_oom",
        Some(EventKind::SkbDrop) => "skb:kfree_skb",
        Some(EventKind::DestroyWithData) => "tcp:tcp_destroy_sock",
        Some(EventKind::OrphanBorn | EventKind::OrphanGone) => "orphans",
        Some(EventKind::PressureEnter | EventKind::PressureLeave) => "memory_pressure",
        Some(EventKind::RouteException) if e.args[0] == AF_INET6 as i64 => "route_exception_v6",
        Some(EventKind::RouteException) => "route_exception_v4",
        Some(EventKind::Synthetic) | None => "",
    }
}

struct Tracer<W: Write> {
    opts: Options,
    out: W,
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
    /// CLOCK_MONOTONIC ns of the memory-pressure entry being timed
    pressure_since: Option<u64>,
    routes: RouteStats,
    received: u64,
    shown_this_interval: u64,
    suppressed_this_interval: u64,
    suppressed_total: u64,
}

/// What a finished trace counted: the summary line's figures, and every
/// kernel-side statistic (indexed by [`Stat`]).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub stats: [u64; netmem_common::N_STATS as usize],
}

pub async fn run(opts: Options, out: impl Write) -> Result<()> {
    run_with(opts, out, |_| Ok(())).await.map(|_| ())
}

/// `run`, with `extra` called once everything is attached and before the
/// first event is read (the pipeline benchmark attaches its producer there).
pub async fn run_with(
    opts: Options,
    out: impl Write,
    extra: impl FnOnce(&mut Probes) -> Result<()>,
) -> Result<Summary> {
    let mut listening = Vec::new();
    crate::sockdiag::dump_tcp(&opts.netns, crate::sockdiag::States::Listening, |r| {
        listening.push(r.lport)
    })?;
    let (probes, resolved) = crate::probes::setup(opts.netns.inum()?, opts.max_tier, &listening)?;
    let polled = |h: &str| probes.tier_of(h) == Some(Tier::Polling);
    let polls = Polls {
        aborts: polled("tcp_check_oom").then(AbortPoll::new),
        orphans: polled("orphans").then(OrphanDiff::default),
        pressure: polled("memory_pressure").then(PressurePoll::default),
        routes_v4: polled("route_exception_v4"),
        routes_v6: polled("route_exception_v6"),
        route_diff: RouteDiff::default(),
    };
    let mono = monotonic_ns();
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Tracer {
        opts,
        out,
        probes,
        drop_reasons: resolved.drop_reason_names.into_iter().collect(),
        wall_offset: wall.saturating_sub(Duration::from_nanos(mono)),
        prev_counts: HashMap::new(),
        sock_min_sndbuf: resolved.sock_min_sndbuf,
        last_ctx: None,
        polls: Some(polls),
        pressure_since: None,
        routes: RouteStats::default(),
        received: 0,
        shown_this_interval: 0,
        suppressed_this_interval: 0,
        suppressed_total: 0,
    };
    extra(&mut t.probes)?;
    t.main_loop().await?;
    let mut stats = [0u64; netmem_common::N_STATS as usize];
    for (i, s) in Stat::ALL.iter().enumerate() {
        stats[i] = t.probes.stat(*s)?;
    }
    Ok(Summary {
        events: t.received,
        stats,
    })
}

impl<W: Write> Tracer<W> {
    async fn main_loop(&mut self) -> Result<()> {
        let started = Instant::now();
        // Prime counters, pollers and the listening-port set before saying
        // we are live: whatever happens after the probes line is reported.
        let g = gather(
            &self.opts.netns,
            self.polls.take().expect("polls"),
            self.opts.event_limit,
        )?;
        self.interval_report(g, false)?;
        self.print_probes()?;
        let ring = self.probes.ring_buf()?;
        // SAFETY: the ring buffer owns its fd and is only dropped with the AsyncFd.
        let mut rb = unsafe { AsyncFd::register(ring) }
            .map_err(|e| e.into_parts().1)
            .context("cannot poll the ring buffer")?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
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
        loop {
            tokio::select! {
                guard = rb.readable_mut() => {
                    let mut guard = guard?;
                    self.drain(guard.get_inner_mut())?;
                    guard.clear_ready();
                    self.out.flush()?;
                }
                _ = tick.tick(), if pending.is_none() => pending = Some(self.spawn_gather()?),
                done = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                    pending = None;
                    let g = done.context("interval worker panicked")??;
                    self.interval_report(g, true)?;
                }
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                _ = &mut end => break,
            }
        }
        // An interval already gathered is reported, as it would have been.
        if let Some(p) = pending {
            let g = p.await.context("interval worker panicked")??;
            self.interval_report(g, true)?;
        }
        // Drain what is already in the ring so the summary's counts are final.
        self.drain(rb.get_mut())?;
        self.summary(started.elapsed())
    }

    fn drain(&mut self, rb: &mut RingBuf<MapData>) -> Result<()> {
        while let Some(item) = rb.next() {
            if item.len() >= std::mem::size_of::<Event>() {
                // SAFETY: the kernel writes whole `Event`s; read unaligned to be safe.
                let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const Event) };
                self.on_event(&e)?;
            }
        }
        Ok(())
    }

    fn print_probes(&mut self) -> Result<()> {
        if self.opts.json {
            emit_line(
                &mut self.out,
                &json!({"type": "probes", "ts": rfc3339(SystemTime::now()), "hooks": self.probes.status}),
            )?;
        } else {
            writeln!(self.out, "{}", self.probes.coverage_line())?;
        }
        // Whoever reads us (a pipe, a test) learns at once that every hook is live.
        self.out.flush()?;
        Ok(())
    }

    fn on_event(&mut self, e: &Event) -> Result<()> {
        self.received += 1;
        let kind = EventKind::from_u32(e.kind);
        let mut extra = serde_json::Map::new();
        match kind {
            Some(EventKind::PressureEnter) => {
                if self.pressure_since.is_some() {
                    // Another CPU saw the same transition: one entry is enough.
                    return Ok(());
                }
                self.pressure_since = Some(e.ts_ns);
            }
            Some(EventKind::PressureLeave) => match self.pressure_since.take() {
                Some(t0) => {
                    extra.insert(
                        "duration_ms".into(),
                        json!(e.ts_ns.saturating_sub(t0) as f64 / 1e6),
                    );
                }
                None => {
                    extra.insert("duration_ms".into(), json!(null));
                }
            },
            Some(EventKind::RouteException) => {
                self.routes.inserted += 1;
                let fam = e.args[0] as u8;
                let dst = crate::attribution::ip_from(fam, &e.route.dst).to_string();
                *self.routes.by_dst.entry(dst).or_default() += 1;
            }
            Some(EventKind::AbortOnMemory)
                if e.args[AbortArg::Source as usize] == crate::pollers::ABORT_FROM_NSTAT =>
            {
                if let Some(p) = self.polls.as_ref().and_then(|p| p.aborts.as_ref()) {
                    extra.insert(
                        "kernel_log".into(),
                        json!({"too_many_orphans": p.log_counts.0, "out_of_tcp_mem": p.log_counts.1}),
                    );
                }
            }
            _ => {}
        }
        if !self.opts.filter.accepts(&e.group) && kind != Some(EventKind::RouteException) {
            return Ok(());
        }
        if self.shown_this_interval >= self.opts.event_limit {
            self.suppressed_this_interval += 1;
            self.suppressed_total += 1;
            return Ok(());
        }
        self.shown_this_interval += 1;
        let ts = rfc3339(SystemTime::UNIX_EPOCH + self.wall_offset + Duration::from_nanos(e.ts_ns));
        let names = &self.drop_reasons;
        let lookup = |r: u32| names.get(&r).cloned().unwrap_or_else(|| r.to_string());
        let probes = &self.probes;
        let tier = |ev: &Event| probes.tier_of(hook_of(ev)).map_or("none", Tier::name);
        let cx = EventContext {
            drop_reason: &lookup,
            sock_min_sndbuf: self.sock_min_sndbuf,
            max_orphans: self
                .last_ctx
                .as_ref()
                .and_then(|c| c.max_orphans)
                .map(|v| v as i64),
            orphans: self.last_ctx.as_ref().map(|c| c.orphans as i64),
            tier: &tier,
        };
        if let Some(mut v) = event_json(&ts, e, &cx) {
            if let Some(o) = v.as_object_mut() {
                o.extend(extra);
            }
            if self.opts.json {
                emit_line(&mut self.out, &v)?;
            } else {
                writeln!(self.out, "{}", event_text(&v))?;
            }
        }
        Ok(())
    }

    /// Starts the interval's sock_diag pass and pollers on a blocking
    /// worker, so the ring buffer keeps being drained while they run.
    fn spawn_gather(&mut self) -> Result<tokio::task::JoinHandle<Result<Gathered>>> {
        let netns = self.opts.netns.try_clone()?;
        let polls = self.polls.take().expect("one gather at a time");
        let limit = self.opts.event_limit;
        Ok(tokio::task::spawn_blocking(move || {
            gather(&netns, polls, limit)
        }))
    }

    /// Counter deltas on top of a gathered pass; refreshes LISTEN_PORTS;
    /// feeds polled events through; prints the table when `print` (the
    /// first pass only primes state).
    fn interval_report(&mut self, g: Gathered, print: bool) -> Result<()> {
        let Gathered {
            mut agg,
            listening,
            dump_started,
            ctx,
            polls,
            events,
            route_cached,
            rt6_cached,
        } = g;
        self.polls = Some(polls);
        self.sync_listen_ports(&listening, dump_started)?;
        let mut now_counts = HashMap::new();
        for (g, c) in self.probes.group_counts()? {
            let d = counter_delta(&c, self.prev_counts.get(&g));
            if d.counts.iter().any(|&x| x > 0) {
                agg.add_counts(g, &d);
            }
            now_counts.insert(g, c);
        }
        self.prev_counts = now_counts;
        self.last_ctx = Some(ctx);
        for (k, n) in route_cached {
            self.routes.cached.insert(k, n);
        }
        for e in &events {
            self.on_event(e)?;
        }
        if !print {
            return Ok(());
        }
        let ctx = self.last_ctx.clone().expect("read above");
        let routes = std::mem::take(&mut self.routes.by_dst);
        let inserted = std::mem::take(&mut self.routes.inserted);
        let mut by_dst: Vec<(String, u64)> = routes.into_iter().collect();
        by_dst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_dst.truncate(10);
        let rate = inserted as f64 / self.opts.interval.as_secs_f64();
        let ts = rfc3339(SystemTime::now());
        let rows = agg.sorted(&self.opts.filter);
        let lost = self.probes.stat(Stat::RingbufLost)?;
        if self.opts.json {
            let mut c = context_json(&ts, &ctx);
            c["lost_events"] = json!(lost);
            c["events_suppressed"] = json!(self.suppressed_this_interval);
            c["memory_pressure"] = json!(self.pressure_since.is_some());
            c["route_exceptions"] = json!({
                "inserted": inserted,
                "per_s": (rate * 100.0).round() / 100.0,
                "by_dst": by_dst.iter().map(|(d, n)| json!({"dst": d, "count": n})).collect::<Vec<_>>(),
                "rt6_cached": rt6_cached,
                "cached": self.routes.cached,
            });
            emit_line(&mut self.out, &c)?;
            for (g, r) in &rows {
                emit_line(&mut self.out, &group_json(&ts, g, r, true))?;
            }
        } else {
            writeln!(self.out, "\n{ts}  {}  lost {lost}", context_text(&ctx))?;
            if inserted > 0 || self.pressure_since.is_some() {
                let top: Vec<String> = by_dst.iter().map(|(d, n)| format!("{d}x{n}")).collect();
                writeln!(
                    self.out,
                    "memory pressure: {}  route exceptions: +{inserted} ({rate:.1}/s) {}",
                    if self.pressure_since.is_some() {
                        "YES"
                    } else {
                        "no"
                    },
                    top.join(" ")
                )?;
            }
            if self.suppressed_this_interval > 0 {
                writeln!(
                    self.out,
                    "({} events not shown: over --event-limit)",
                    self.suppressed_this_interval
                )?;
            }
            write!(self.out, "{}", table(&rows, true))?;
        }
        self.out.flush()?;
        self.shown_this_interval = 0;
        self.suppressed_this_interval = 0;
        Ok(())
    }

    /// Makes the kernel's listening-port set match the dump, but never drops
    /// a port the kernel learned after the dump began.
    fn sync_listen_ports(&mut self, listening: &HashSet<u16>, dump_started: u64) -> Result<()> {
        let mut map = self.probes.listen_ports()?;
        let existing: Vec<(u16, u64)> = map.iter().filter_map(|r| r.ok()).collect();
        for (port, learned) in &existing {
            if !listening.contains(port) && *learned < dump_started {
                let _ = map.remove(port);
            }
        }
        for port in listening {
            if !existing.iter().any(|(p, _)| p == port) {
                map.insert(port, 0, 0).context("cannot seed LISTEN_PORTS")?;
            }
        }
        Ok(())
    }

    fn summary(&mut self, elapsed: Duration) -> Result<()> {
        let lost = self.probes.stat(Stat::RingbufLost)?;
        let full = self.probes.stat(Stat::GroupMapFull)?;
        if self.opts.json {
            emit_line(
                &mut self.out,
                &json!({"type": "summary", "ts": rfc3339(SystemTime::now()), "events": self.received, "lost_events": lost,
                        "events_suppressed": self.suppressed_total, "group_map_full": full,
                        "duration_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0}),
            )?;
        } else {
            writeln!(
                self.out,
                "\nsummary: {} events received, {lost} lost (ring buffer full), {} not shown (--event-limit), {full} counts dropped (group map full), {:.1}s; probes detached",
                self.received, self.suppressed_total, elapsed.as_secs_f64()
            )?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// One interval's reads, done off the event loop.
struct Gathered {
    agg: Aggregator,
    listening: HashSet<u16>,
    dump_started: u64,
    ctx: Context,
    polls: Polls,
    /// Found by the polling tier's readers.
    events: Vec<Event>,
    route_cached: Vec<(&'static str, usize)>,
    rt6_cached: Option<u64>,
}

/// The sock_diag pass, the global context, and the polling tier's readers.
fn gather(netns: &crate::netns::Netns, mut polls: Polls, event_limit: u64) -> Result<Gathered> {
    let dump_started = monotonic_ns();
    let mut agg = Aggregator::default();
    if polls.orphans.is_some() {
        agg.orphan_records = Some(Vec::new());
    }
    let listening = collect(netns, &mut agg, crate::sockdiag::States::Buffered)?;
    let ctx = Context::read(netns)?;
    let now = monotonic_ns();
    let mut events = Vec::new();
    if let Some(d) = polls.orphans.as_mut() {
        for (rec, g) in agg.orphan_records.take().unwrap_or_default() {
            d.observe(&rec, g);
        }
        events.extend(d.finish(now));
    }
    let tcp_mem = ctx.tcp_mem_pages.map_or([-1; 3], |m| m.map(|v| v as i64));
    if let Some(p) = polls.pressure.as_mut() {
        events.extend(p.poll(netns, now, tcp_mem)?);
    }
    if let Some(p) = polls.aborts.as_mut() {
        for mut e in p.poll(netns, now, event_limit)? {
            e.args[AbortArg::Allocated as usize] = ctx.memory_allocated_pages as i64;
            e.args[AbortArg::Mem0 as usize] = tcp_mem[0];
            e.args[AbortArg::Mem1 as usize] = tcp_mem[1];
            e.args[AbortArg::Mem2 as usize] = tcp_mem[2];
            events.push(e);
        }
    }
    let mut route_cached = Vec::new();
    for (on, fam, key) in [
        (polls.routes_v4, AF_INET, "ipv4"),
        (polls.routes_v6, AF_INET6, "ipv6"),
    ] {
        if on {
            let (n, ev) = polls.route_diff.poll(netns, fam, now)?;
            route_cached.push((key, n));
            events.extend(ev);
        }
    }
    let rt6_cached = netns
        .run(|| Ok(std::fs::read_to_string("/proc/thread-self/net/rt6_stats").ok()))?
        .and_then(|t| crate::pollers::parse_rt6_cached(&t));
    Ok(Gathered {
        agg,
        listening,
        dump_started,
        ctx,
        polls,
        events,
        route_cached,
        rt6_cached,
    })
}
