//! `netmem doctor`: one reading, a watched window, or a recording, turned
//! into ranked findings (see `doctor/`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cmd::args::{parse_run_time, JsonArg, NetnsArg, ProxyArg, TierArg};
use crate::contract::Line;
use crate::doctor::{diagnose, Report, State, Window};
use crate::hooks::Tier;
use crate::model::names::Names;
use crate::model::{Event, Filter, Interval};
use crate::output::json::{event_line, interval_lines};
use crate::output::Sink;
use crate::sources::host::Host;
use crate::sources::kernel_log;
use crate::sources::netns::Netns;

/// Which limit fired (or is nearest), with the numbers, which group
/// holds the memory, and what to change. One reading by default (no
/// eBPF, no root needed for what is readable).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    netns: NetnsArg,
    #[command(flatten)]
    json: JsonArg,
    /// Watch this long with the eBPF probes (events, peaks, aborts); needs root.
    #[arg(long, value_name = "DURATION", value_parser = parse_run_time)]
    watch: Option<Duration>,
    /// Read the kernel log from this file (syslog, kern.log, `journalctl -k`)
    /// instead of /dev/kmsg.
    #[arg(long, value_name = "FILE")]
    kernel_log: Option<String>,
    /// Diagnose a recording made with `netmem record` (or `trace
    /// --json`) instead of now.
    // Every proxy kind's flag (`sources/proxy/kinds.rs`): a recording
    // carries its names as written.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["watch", "haproxy", "nginx"])]
    from: Option<String>,
    #[command(flatten)]
    proxy: ProxyArg,
    #[command(flatten)]
    tier: TierArg,
    /// Diagnose every host whose `netmem serve` this Prometheus scrapes
    /// (its HTTP API's base URL; `user:password@` for basic auth): the
    /// same rules per instance, hosts ranked, findings and groups compared
    /// across hosts.
    #[arg(long, value_name = "URL", conflicts_with_all = ["watch", "from", "kernel_log", "netns", "haproxy", "nginx"])]
    prometheus: Option<String>,
    /// With --prometheus: which series, as label matchers
    /// (`{job="netmem",instance=~"lb.*"}`); every netmem series by default.
    #[arg(long = "match", value_name = "SELECTOR", requires = "prometheus")]
    selector: Option<String>,
    /// With --prometheus: how far back to look (peaks, aborts, drops and
    /// time under pressure over it).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_since, requires = "prometheus")]
    since: Duration,
}

impl Args {
    pub fn run(self) -> Result<()> {
        if let Some(url) = &self.prometheus {
            let mut sink = self.json.stdout_sink(0);
            return fleet(url, self.selector.as_deref(), self.since, sink.as_mut());
        }
        let rt = super::runtime()?;
        let opts = Options {
            proxy: self.proxy.spec()?,
            netns: self.netns.open_one("netmem doctor")?,
            watch: self.watch,
            kernel_log: self.kernel_log,
            from: self.from,
            max_tier: self.tier.max_tier()?,
        };
        let mut sink = self.json.stdout_sink(0);
        rt.block_on(run(opts, sink.as_mut()))
    }
}

pub struct Options {
    pub netns: Netns,
    pub watch: Option<Duration>,
    pub kernel_log: Option<String>,
    pub from: Option<String>,
    pub max_tier: Tier,
    /// `--haproxy`: which proxy names the groups.
    pub proxy: crate::sources::proxy::ProxySpec,
}

pub async fn run(opts: Options, sink: &mut dyn Sink) -> Result<()> {
    let mut state = State::default();
    let source = if let Some(path) = &opts.from {
        read_recording(path, &mut state)?;
        match state.window.host.take() {
            Some(h) => state.host = h,
            None => state.unreadable.push(format!(
                "{path} has no \"host\" line (recorded before netmem wrote one): sysctls, RAM and nstat are unknown"
            )),
        }
        format!(
            "recording {path} ({}, {} to {}{})",
            crate::format::count(state.window.intervals, "interval", "intervals"),
            state.window.first_ts.as_deref().unwrap_or("?"),
            state.window.last_ts.as_deref().unwrap_or("?"),
            state
                .host
                .traced_with()
                .map(|t| format!("; traced with {t}"))
                .unwrap_or_default()
        )
    } else {
        state.host = Host::read(&opts.netns)?;
        match opts.watch {
            Some(d) => {
                watch(&opts, d, &mut state.window).await?;
                format!("a {} watch", humantime::format_duration(d))
            }
            None => {
                let names = Names::default();
                let (i, proxies) = crate::cmd::snapshot::take(
                    &opts.netns,
                    &Filter::default(),
                    opts.proxy.clone(),
                    &names,
                )?;
                // Said once, in the report (a reading is not repeated).
                for v in &proxies {
                    state.unreadable.extend(v.problems.iter().cloned());
                }
                for v in interval_lines(&i, &names) {
                    state.window.feed(&v);
                }
                "a reading (sock_diag and procfs; --watch adds events, peaks and aborts)".into()
            }
        }
    };
    let mut source = source;
    if let Some(lines) = read_kernel_log(&opts, &mut state)? {
        // A log that holds none of the messages gives no finding: say it
        // was read, so silence is not mistaken for "not looked at".
        if state.kernel_log.is_empty() {
            source += &format!(
                "; kernel log {}: {}, none of the memory messages",
                crate::format::printable(state.kernel_log_source.as_deref().unwrap_or("?")),
                crate::format::count(lines as u64, "line", "lines")
            );
        }
    }
    if opts.from.is_none() {
        // A live window past the caps (thousands of groups) says so too.
        state.unreadable.extend(state.window.dropped());
    }
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
            // Recordings made before the host line named it say less.
            state.host.traced_netns().unwrap_or("as recorded".into())
        } else {
            opts.netns.label().to_string()
        },
        unreadable: state.unreadable.clone(),
        findings: diagnose(&state),
    };
    sink.report(&report)?;
    sink.flush()
}

/// `--since`: a minute (a scrape or two) to a year.
fn parse_since(s: &str) -> Result<Duration, String> {
    crate::cmd::args::parse_bounded(
        s,
        Duration::from_secs(60),
        Duration::from_secs(366 * 86_400),
    )
}

/// `--prometheus`: every instance's series read back into a state, each
/// judged by the host doctor's rules, then compared (`doctor::fleet`).
fn fleet(url: &str, selector: Option<&str>, since: Duration, sink: &mut dyn Sink) -> Result<()> {
    use crate::doctor::fleet;
    let inner = fleet::matchers(selector.unwrap_or(""))?;
    let api = crate::sources::prometheus::Api::new(url)?;
    let end = std::time::SystemTime::now();
    let start = end.checked_sub(since).unwrap_or(std::time::UNIX_EPOCH);
    let at = end
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let fetched = fleet::by_instance(api.fetch(&fleet::queries(&inner, since), at)?);
    let instances = fleet::instances(&fetched);
    let shown_sel = if inner.is_empty() {
        String::new()
    } else {
        format!(" matching {{{inner}}}")
    };
    if instances.is_empty() {
        // What is there, to tell a selector's typo from a Prometheus that
        // scrapes no netmem.
        let there = fleet::by_instance(api.fetch(&fleet::present(since), at)?);
        let names = fleet::instances(&there);
        let hint = match (names.len(), inner.is_empty()) {
            (0, _) => {
                "is it scraping `netmem serve` (packaging/prometheus/scrape.yml)?".to_string()
            }
            (n, false) => format!(
                "without --match it has {}: {}{}",
                crate::format::count(n as u64, "instance", "instances"),
                names
                    .iter()
                    .take(10)
                    .map(|i| crate::format::printable(i))
                    .collect::<Vec<_>>()
                    .join(", "),
                if n > 10 { ", ..." } else { "" }
            ),
            (_, true) => {
                "is it scraping `netmem serve` (packaging/prometheus/scrape.yml)?".to_string()
            }
        };
        anyhow::bail!(
            "{} has no netmem series{shown_sel} in the last {}: {hint}",
            api.base(),
            crate::format::duration(since)
        );
    }
    let node_ram = fleet::node_ram(&fetched);
    let span = fleet::Span {
        start: crate::format::rfc3339(start),
        end: crate::format::rfc3339(end),
        end_unix: at,
    };
    let states = instances
        .into_iter()
        .map(|i| (i.clone(), fleet::state_of(i, &fetched[i], &node_ram, &span)))
        .collect();
    let source = format!(
        "Prometheus {}{shown_sel}, the last {} (to {})",
        api.base(),
        crate::format::duration(since),
        span.end
    );
    sink.fleet(&fleet::judge(source, states, &span))?;
    sink.flush()
}

/// A file the user named must be readable (an error otherwise); the live
/// log may not be (without root), which is only noted.
/// Returns how many lines were read, if a log was.
fn read_kernel_log(opts: &Options, state: &mut State) -> Result<Option<usize>> {
    let (lines, source) = match &opts.kernel_log {
        Some(p) => (kernel_log::read_file(p)?, p.clone()),
        // A recording is about another time: the live log would mislead.
        None if opts.from.is_some() => return Ok(None),
        None => match kernel_log::read_kmsg() {
            Ok(l) => (l, "/dev/kmsg".to_string()),
            Err(e) => {
                state.unreadable.push(format!("{e:#}"));
                return Ok(None);
            }
        },
    };
    state.add_kernel_log(lines.iter().map(String::as_str));
    state.kernel_log_source = Some(source);
    Ok(Some(lines.len()))
}

/// A recording (`netmem record`, or `trace --json` output, compressed or
/// not): every readable line into the window as it streams; what was not
/// readable, or not kept, is said in the report.
fn read_recording(path: &str, state: &mut State) -> Result<()> {
    let window = &mut state.window;
    let warnings = crate::sources::recording::read(path, |v| window.feed(v))?;
    for w in warnings.into_iter().chain(state.window.dropped()) {
        log::warn!("{path}: {w}");
        state.unreadable.push(format!("{path}: {w}"));
    }
    Ok(())
}

/// Feeds a live trace's model into the window, with a progress line.
struct WindowSink<'a> {
    window: &'a mut Window,
    started: Instant,
    total: Duration,
    tty: bool,
    /// The engine's names (see [`Sink::names`]).
    names: Names,
}

impl Sink for WindowSink<'_> {
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        self.window.feed(&Line::Event(event_line(e, &self.names)));
        Ok(())
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        for v in interval_lines(i, &self.names) {
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
        all_netns: false,
        owners: false,
        group_by: Default::default(),
        time_wait: false,
        interval,
        duration: Some(d),
        filter: Filter::default(),
        // Every event counts towards the findings; none is printed.
        event_limit: 1_000_000,
        max_tier: opts.max_tier,
        // A watch is short and its verdict needs each interval's groups.
        census_budget: crate::sources::census::Budget::EveryPass,
        census: None,
        proxy: opts.proxy.clone(),
        host_refresh: None,
    };
    let mut sink = WindowSink {
        window: w,
        started: Instant::now(),
        total: d,
        tty: std::io::stderr().is_terminal(),
        names: Names::default(),
    };
    crate::engine::run(eo, &mut sink).await?;
    Ok(())
}
