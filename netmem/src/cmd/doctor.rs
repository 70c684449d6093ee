//! `netmem doctor`: one reading, a watched window, or a recording, turned
//! into ranked findings (see `doctor/`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::doctor::{diagnose, Report, State, Window};
use crate::hooks::Tier;
use crate::model::{Event, Filter, Interval};
use crate::output::json::{event_object, interval_objects};
use crate::output::Sink;
use crate::sources::host::Host;
use crate::sources::kernel_log;
use crate::sources::netns::Netns;

pub struct Options {
    pub netns: Netns,
    pub watch: Option<Duration>,
    pub kernel_log: Option<String>,
    pub from: Option<String>,
    pub max_tier: Tier,
}

pub async fn run(opts: Options, sink: &mut dyn Sink) -> Result<()> {
    let mut state = State::default();
    let source = if let Some(path) = &opts.from {
        read_recording(path, &mut state.window)?;
        match state.window.host.take() {
            Some(h) => state.host = h,
            None => state.unreadable.push(format!(
                "{path} has no \"host\" line (recorded before netmem wrote one): sysctls, RAM and nstat are unknown"
            )),
        }
        format!(
            "recording {path} ({} intervals, {} to {})",
            state.window.intervals,
            state.window.first_ts.as_deref().unwrap_or("?"),
            state.window.last_ts.as_deref().unwrap_or("?")
        )
    } else {
        state.host = Host::read(&opts.netns)?;
        match opts.watch {
            Some(d) => {
                watch(&opts, d, &mut state.window).await?;
                format!("a {} watch", humantime::format_duration(d))
            }
            None => {
                let i = crate::cmd::snapshot::take(&opts.netns, &Filter::default())?;
                for v in interval_objects(&i) {
                    state.window.feed(&v);
                }
                "a reading (sock_diag and procfs; --watch adds events, peaks and aborts)".into()
            }
        }
    };
    read_kernel_log(&opts, &mut state)?;
    if state.window.lost_events > 0 {
        state.unreadable.push(format!(
            "{} events were lost (ring buffer full): event counts are lower bounds",
            state.window.lost_events
        ));
    }
    let report = Report {
        source,
        kernel_release: state.host.kernel_release.clone(),
        namespace: if opts.from.is_some() {
            "as recorded".to_string()
        } else {
            opts.netns.label().to_string()
        },
        unreadable: state.unreadable.clone(),
        findings: diagnose(&state),
    };
    sink.report(&report)?;
    sink.flush()
}

/// A file the user named must be readable (an error otherwise); the live
/// log may not be (without root), which is only noted.
fn read_kernel_log(opts: &Options, state: &mut State) -> Result<()> {
    let (lines, source) = match &opts.kernel_log {
        Some(p) => (kernel_log::read_file(p)?, p.clone()),
        // A recording is about another time: the live log would mislead.
        None if opts.from.is_some() => return Ok(()),
        None => match kernel_log::read_kmsg() {
            Ok(l) => (l, "/dev/kmsg".to_string()),
            Err(e) => {
                state.unreadable.push(format!("{e:#}"));
                return Ok(());
            }
        },
    };
    state.add_kernel_log(lines.iter().map(String::as_str));
    state.kernel_log_source = Some(source);
    Ok(())
}

/// A recording: `trace --json` output (the contract), one object a line.
fn read_recording(path: &str, w: &mut Window) -> Result<()> {
    let text = std::fs::read(path).with_context(|| format!("cannot read recording {path}"))?;
    let text = String::from_utf8_lossy(&text);
    let (mut good, mut bad) = (0u64, 0u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() && v["type"].is_string() => {
                w.feed(&v);
                good += 1;
            }
            _ => bad += 1,
        }
    }
    if good == 0 {
        bail!("{path} is not a netmem recording: no line of `netmem trace --json` output in it");
    }
    if w.intervals == 0 {
        bail!("{path} has no interval (no \"context\" line): record for at least one --interval");
    }
    if bad > 0 {
        log::warn!("{path}: {bad} lines are not JSON objects and were skipped");
    }
    Ok(())
}

/// Feeds a live trace's model into the window, with a progress line.
struct WindowSink<'a> {
    window: &'a mut Window,
    started: Instant,
    total: Duration,
    tty: bool,
}

impl Sink for WindowSink<'_> {
    fn event(&mut self, e: &Event) -> Result<()> {
        self.window.feed(&Value::Object(event_object(e)));
        Ok(())
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        for v in interval_objects(i) {
            self.window.feed(&v);
        }
        let el = self.started.elapsed().min(self.total);
        let line = format!(
            "doctor: watching, {} of {}",
            humantime::format_duration(Duration::from_secs(el.as_secs())),
            humantime::format_duration(self.total)
        );
        if self.tty {
            eprint!("\r{line}   ");
        } else if i.live.is_some() && self.window.intervals == 1 {
            eprintln!(
                "doctor: watching for {}",
                humantime::format_duration(self.total)
            );
        }
        Ok(())
    }

    fn summary(&mut self, s: &crate::model::Summary) -> Result<()> {
        if self.tty {
            eprintln!();
        }
        self.window.lost_events = s.stat(netmem_common::Stat::RingbufLost);
        Ok(())
    }
}

async fn watch(opts: &Options, d: Duration, w: &mut Window) -> Result<()> {
    let interval = (d / 10).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let eo = crate::engine::Options {
        command: "netmem doctor --watch",
        netns: opts.netns.try_clone()?,
        interval,
        duration: Some(d),
        filter: Filter::default(),
        // Every event counts towards the findings; none is printed.
        event_limit: 1_000_000,
        max_tier: opts.max_tier,
    };
    let mut sink = WindowSink {
        window: w,
        started: Instant::now(),
        total: d,
        tty: std::io::stderr().is_terminal(),
    };
    crate::engine::run(eo, &mut sink).await?;
    Ok(())
}
