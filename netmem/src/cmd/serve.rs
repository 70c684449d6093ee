//! `netmem serve`: the trace engine feeding a Prometheus exposition, served
//! over HTTP until SIGTERM or SIGINT (SIGHUP is ignored: nothing to reload).
//! The web config (TLS, basic auth) is read and the address bound before
//! anything is attached, so a mistake in either fails at once and leaves
//! nothing behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::cmd::args::{parse_bounded, EngineArgs, FlightRecorderArgs, TimeWaitArg};
use crate::output::prometheus::{http, MetricsSink, Shared};
use crate::shutdown;

// The defaults are the server's (its bind error names the port); kept
// reachable here, where the flag is.
pub use crate::output::prometheus::http::{DEFAULT_LISTEN, DEFAULT_PORT};

/// Events decoded per interval at most (the rest are counted as
/// suppressed): high enough that counters by cause, direction and reason
/// are complete in practice, bounded so a polled flood stays cheap.
pub const EVENT_LIMIT: u64 = 1_000_000;

/// How often serve reads the host line's facts again (its sysctls, for
/// `netmem_sysctl_info`): a minute at most behind a change, for the cost
/// of a few small files read.
pub const HOST_REFRESH: Duration = Duration::from_secs(60);

/// Serve Prometheus metrics (OpenMetrics or text format) on
/// http://ADDR:PORT/metrics: per-group memory and counts, the global
/// limits beside their usage, and netmem's own health. Attaches the
/// probes like `trace`; runs until SIGTERM or SIGINT (SIGHUP is
/// ignored). Needs root (or CAP_BPF + CAP_PERFMON, see README).
// A scrape reads the latest pass: a slower one than trace's suits it.
#[derive(clap::Args)]
#[command(mut_arg("interval", |a| a.default_value("5s")))]
pub struct Args {
    /// Address to listen on: ADDR:PORT, [V6ADDR]:PORT, HOST:PORT, or
    /// :PORT for every interface. Loopback by default.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    #[command(flatten)]
    live: EngineArgs,
    #[command(flatten)]
    time_wait: TimeWaitArg,
    /// Groups exported with a label of their own, those holding the
    /// most memory; the rest are summed into group="other".
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_groups: u64,
    /// How long a group that disappeared keeps its series (its last
    /// counts, no memory): longer than your scrape interval, so a
    /// short-lived group's aborts are still scraped. 0s drops it at once.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_linger)]
    linger: Duration,
    /// TLS and basic auth, from a web-config.yml as Prometheus
    /// exporters read it (tls_server_config, basic_auth_users with
    /// bcrypt hashes; see README). Also spelled --web-config.
    #[arg(long = "web.config.file", alias = "web-config", value_name = "FILE")]
    web_config: Option<PathBuf>,
    #[command(flatten)]
    recorder: FlightRecorderArgs,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let rt = super::runtime()?;
        let opts = Options {
            listen: self.listen,
            max_groups: self.max_groups as usize,
            linger: self.linger,
            web_config: self.web_config,
            recorder: self.recorder,
            engine: crate::engine::Options {
                time_wait: self.time_wait.time_wait,
                event_limit: EVENT_LIMIT,
                // Its sysctl series follow a change made while it runs.
                host_refresh: Some(HOST_REFRESH),
                ..self.live.options("netmem serve")?
            },
        };
        rt.block_on(run(opts))
    }
}

fn parse_linger(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::ZERO, Duration::from_secs(24 * 3600))
}

/// `ADDR:PORT`, `[V6]:PORT`, `HOST:PORT` (first address it resolves to),
/// or `:PORT` (every IPv4 interface, as Go exporters read it).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let hint = "expected ADDR:PORT, e.g. 127.0.0.1:10077, [::1]:10077 or :10077";
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("bad port in {s:?}: {hint}"))?;
        return Ok((std::net::Ipv4Addr::UNSPECIFIED, port).into());
    }
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("no port in {s:?}: {hint}"));
    }
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e} ({hint})"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address ({hint})"))
}

pub struct Options {
    pub listen: SocketAddr,
    pub max_groups: usize,
    pub linger: Duration,
    /// `--web.config.file`: TLS and basic auth.
    pub web_config: Option<PathBuf>,
    /// `--flight-recorder` and its limits.
    pub recorder: FlightRecorderArgs,
    /// What the engine traces; serve sets its own event limit (above) and
    /// runs until stopped.
    pub engine: crate::engine::Options,
}

pub async fn run(opts: Options) -> Result<()> {
    shutdown::ignore_hangup();
    let web = opts
        .web_config
        .as_deref()
        .map(http::WebConfig::load)
        .transpose()?;
    let scheme = http::WebConfig::scheme(web.as_ref());
    let auth = web.as_ref().is_some_and(|w| w.auth.is_some());
    if auth && scheme == "http" {
        log::warn!(
            "basic auth without tls_server_config: passwords cross the network in the clear"
        );
    }
    // Before the address line: a URL printed by a process that cannot
    // attach would send the user to an exporter that never existed.
    crate::kernel::privileges::check(opts.engine.command)?;
    let listener = http::bind(opts.listen)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::default());
    let recorder = opts
        .recorder
        .start(&opts.engine.netns, opts.engine.all_netns)?;
    if let Some(r) = &recorder {
        let _ = shared.incidents.set(r.incidents.clone());
    }
    let server = http::Server::start(listener, shared.clone(), web)?;
    eprintln!(
        "netmem serve: {scheme}://{addr}/metrics ({}every {}; attaching the probes)",
        if auth { "basic auth; " } else { "" },
        humantime::format_duration(opts.engine.interval)
    );
    let live = crate::output::live::LiveDoctorSink::new(shared.live.clone());
    let metrics = MetricsSink::new(shared, opts.max_groups, opts.engine.interval, opts.linger);
    let mut sink: Vec<Box<dyn crate::output::Sink>> = vec![Box::new(metrics), Box::new(live)];
    let res = match recorder {
        Some(r) => {
            let mut tee = crate::output::recorder::Tee::new(&mut sink, r.sink);
            crate::engine::run(opts.engine, &mut tee).await
        }
        None => crate::engine::run(opts.engine, &mut sink).await,
    };
    server.stop();
    res.map(|_| ())
}
