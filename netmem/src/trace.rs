//! `netmem trace`: attach, then stream rare events as they happen and print
//! the per-group table every interval until Ctrl-C, SIGTERM or --duration.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use netmem_common::{Event, GroupCounters, GroupKey, Stat};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::attribution::{counter_delta, Aggregator, Filter};
use crate::btf_offsets::KernelBtf;
use crate::output::{
    context_json, context_text, emit_line, event_json, event_text, group_json, rfc3339, table,
};
use crate::probes::Probes;
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

struct Tracer<W: Write> {
    opts: Options,
    out: W,
    probes: Probes,
    drop_reasons: HashMap<u32, String>,
    /// wall clock minus CLOCK_MONOTONIC, to date kernel timestamps
    wall_offset: Duration,
    prev_counts: HashMap<GroupKey, GroupCounters>,
    received: u64,
    shown_this_interval: u64,
    suppressed_this_interval: u64,
    suppressed_total: u64,
}

pub async fn run(opts: Options, out: impl Write) -> Result<()> {
    crate::privileges::check()?;
    let btf = KernelBtf::load()?;
    let resolved = btf.resolve(opts.netns.inum()?);
    let probes = Probes::attach(&resolved.layout, &resolved.missing)?;
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
        received: 0,
        shown_this_interval: 0,
        suppressed_this_interval: 0,
        suppressed_total: 0,
    };
    t.main_loop().await
}

impl<W: Write> Tracer<W> {
    async fn main_loop(&mut self) -> Result<()> {
        let started = Instant::now();
        self.print_probes()?;
        // Seed the kernel's listening-port set before the first event needs it.
        self.interval_report(false)?;
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
        loop {
            tokio::select! {
                guard = rb.readable_mut() => {
                    let mut guard = guard?;
                    self.drain(guard.get_inner_mut())?;
                    guard.clear_ready();
                    self.out.flush()?;
                }
                _ = tick.tick() => self.interval_report(true)?,
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                _ = &mut end => break,
            }
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
        Ok(())
    }

    fn on_event(&mut self, e: &Event) -> Result<()> {
        self.received += 1;
        if !self.opts.filter.accepts(&e.group) {
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
        if let Some(v) = event_json(&ts, e, &lookup) {
            if self.opts.json {
                emit_line(&mut self.out, &v)?;
            } else {
                writeln!(self.out, "{}", event_text(&v))?;
            }
        }
        Ok(())
    }

    /// sock_diag pass + counter deltas; refreshes LISTEN_PORTS; prints the
    /// table when `print` (the first pass only primes state).
    fn interval_report(&mut self, print: bool) -> Result<()> {
        let dump_started = monotonic_ns();
        // Synchronous: a dump of 100k sockets takes well under the time the
        // 1 MiB ring buffer needs to fill, and the loss counter covers the rest.
        let mut agg = Aggregator::default();
        let listening = collect(&self.opts.netns, &mut agg)?;
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
        if !print {
            return Ok(());
        }
        let ctx = Context::read(&self.opts.netns)?;
        let ts = rfc3339(SystemTime::now());
        let rows = agg.sorted(&self.opts.filter);
        let lost = self.probes.stat(Stat::RingbufLost)?;
        if self.opts.json {
            let mut c = context_json(&ts, &ctx);
            c["lost_events"] = json!(lost);
            c["events_suppressed"] = json!(self.suppressed_this_interval);
            emit_line(&mut self.out, &c)?;
            for (g, r) in &rows {
                emit_line(&mut self.out, &group_json(&ts, g, r, true))?;
            }
        } else {
            writeln!(self.out, "\n{ts}  {}  lost {lost}", context_text(&ctx))?;
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
