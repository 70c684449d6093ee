use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use netmem::hooks::Tier;
use netmem::model::group::{parse_backend, Filter};
use netmem::model::owner::GroupBy;
use netmem::output::{self, Format, Sink};
use netmem::sources::census::Budget;
use netmem::sources::netns::Netns;

/// Live socket memory attribution: which listening port or backend holds the
/// kernel's socket memory, and which limit fired.
#[derive(Parser)]
#[command(name = "netmem", version)]
struct Cli {
    /// Log loader diagnostics to stderr (RUST_LOG syntax also works).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One-shot per-group table from sock_diag (no eBPF, no root needed).
    Snapshot {
        #[command(flatten)]
        common: Common,
    },
    /// Attach the eBPF probes; print events as they happen and the per-group
    /// table every interval. Needs root (or CAP_BPF + CAP_PERFMON).
    Trace {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pass: PassArgs,
        /// Table period, e.g. 1s, 500ms (10ms to 24h).
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        /// Stop after this long (default: until Ctrl-C, SIGTERM or SIGHUP; at most 366d).
        #[arg(long, value_parser = parse_run_time)]
        duration: Option<Duration>,
        /// Print at most this many events per interval (0 to 1000000); the
        /// rest are counted.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        event_limit: u64,
        /// Use no tier better than this (to compare tiers, or to avoid one).
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
    /// Which limit fired (or is nearest), with the numbers, which group
    /// holds the memory, and what to change. One reading by default (no
    /// eBPF, no root needed for what is readable).
    Doctor {
        /// Report on this network namespace instead of netmem's own.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<String>,
        /// JSON lines: a "doctor" line, then one "finding" per line.
        #[arg(long)]
        json: bool,
        /// Watch this long with the eBPF probes (events, peaks, aborts); needs root.
        #[arg(long, value_parser = parse_run_time, conflicts_with = "from")]
        watch: Option<Duration>,
        /// Read the kernel log from this file (syslog, kern.log, `journalctl -k`)
        /// instead of /dev/kmsg.
        #[arg(long, value_name = "FILE")]
        kernel_log: Option<String>,
        /// Diagnose a recording made with `netmem trace --json` instead of now.
        #[arg(long, value_name = "FILE")]
        from: Option<String>,
        /// Name groups after HAProxy's frontends and servers (as for
        /// `trace`; by default a running haproxy is found).
        #[arg(long, value_name = "SOCKET|ADDR:PORT|CONFIG|off", value_parser = parse_proxy_arg, conflicts_with = "from")]
        haproxy: Vec<String>,
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
    /// Record a trace (the JSON lines of `trace --json`) to a zstd file,
    /// flushed every interval, for `netmem report` and `doctor --from`.
    /// Needs root like `trace`.
    Record {
        /// The recording to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: std::path::PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Stop after this long (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = parse_run_time)]
        duration: Option<Duration>,
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        /// Stop before the file passes this size, e.g. 50M, 1G (binary units; at least 16K).
        #[arg(long, value_name = "SIZE", value_parser = parse_max_size)]
        max_size: Option<u64>,
        /// Report on this network namespace instead of netmem's own, or
        /// `all` for every namespace.
        #[arg(long, value_name = "NAME|PATH|all")]
        netns: Option<String>,
        #[command(flatten)]
        who: Owners,
        #[command(flatten)]
        pass: PassArgs,
        /// Events recorded per interval at most; the rest are counted.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        event_limit: u64,
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
    /// Draw one recording, or compare two, as a self-contained HTML file:
    /// the doctor's findings, memory by group against tcp_mem, orphans
    /// against tcp_max_orphans, event rates, route exceptions, tables.
    Report {
        /// A recording (`netmem record`, or `trace --json` output,
        /// zstd-compressed or not); a second one to compare with.
        #[arg(value_name = "FILE", num_args = 1..=2, required = true)]
        files: Vec<String>,
        /// The HTML file to write.
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            default_value = "report.html"
        )]
        output: std::path::PathBuf,
    },
    /// A live view for the person on call: groups sorted by memory with
    /// their last minute, the limits as gauges, the latest events, the
    /// doctor's top finding. Keys: m o d a s sort, Enter sockets, / filter,
    /// p pause, ? help, q quit. Needs root like `trace`, and a terminal.
    Top {
        /// Report on this network namespace instead of netmem's own, or
        /// `all` for every namespace.
        #[arg(long, value_name = "NAME|PATH|all")]
        netns: Option<String>,
        #[command(flatten)]
        who: Owners,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        /// Only the group listen:PORT (repeatable).
        #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        ports: Vec<u16>,
        /// Only the group backend:ADDR:PORT (repeatable).
        #[arg(long = "backend", value_name = "ADDR:PORT", value_parser = parse_backend_arg)]
        backends: Vec<(std::net::IpAddr, u16)>,
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
    /// Serve Prometheus metrics (OpenMetrics or text format) on
    /// http://ADDR:PORT/metrics: per-group memory and counts, the global
    /// limits beside their usage, and netmem's own health. Attaches the
    /// probes like `trace`; runs until SIGTERM or SIGINT (SIGHUP is
    /// ignored). Needs root (or CAP_BPF + CAP_PERFMON, see README).
    Serve {
        /// Address to listen on: ADDR:PORT, [V6ADDR]:PORT, HOST:PORT, or
        /// :PORT for every interface. Loopback by default.
        #[arg(long, value_name = "ADDR:PORT", default_value = netmem::cmd::serve::DEFAULT_LISTEN, value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        /// Report on this network namespace instead of netmem's own, or
        /// `all` for every namespace (a `netns` label on each group).
        #[arg(long, value_name = "NAME|PATH|all")]
        netns: Option<String>,
        #[command(flatten)]
        who: Owners,
        #[command(flatten)]
        pass: PassArgs,
        /// Export each group's TIME_WAIT sockets
        /// (netmem_group_time_wait_sockets); each pass then reads them all.
        #[arg(long)]
        time_wait: bool,
        /// How often the figures are refreshed (scrapes read the latest).
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: Duration,
        /// Groups exported with a label of their own, those holding the
        /// most memory; the rest are summed into group="other".
        #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
        max_groups: u64,
        /// How long a group that disappeared keeps its series (its last
        /// counts, no memory): longer than your scrape interval, so a
        /// short-lived group's aborts are still scraped. 0s drops it at once.
        #[arg(long, default_value = "5m", value_parser = parse_linger)]
        linger: Duration,
        /// TLS and basic auth, from a web-config.yml as Prometheus
        /// exporters read it (tls_server_config, basic_auth_users with
        /// bcrypt hashes; see README). Also spelled --web-config.
        #[arg(long = "web.config.file", alias = "web-config", value_name = "FILE")]
        web_config: Option<std::path::PathBuf>,
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
    /// List every hook, the tier that serves it on this kernel (fentry,
    /// kprobe, tracepoint, polling) and why each better tier is not used.
    /// Attaches and detaches at once. Needs root.
    Probes {
        /// JSON lines instead of a table (one hook per line).
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum, default_value = "fentry")]
        max_tier: Tier,
    },
}

/// How much the live commands may spend on their per-group pass.
#[derive(Args, Clone, Copy)]
struct PassArgs {
    /// CPU, in percent of one core, that the per-group census (every
    /// socket read through sock_diag) may use. Below the cost of one
    /// census per interval it runs less often (each interval says how old
    /// its groups are: JSON `census_age_ms`), and at once when the
    /// namespace's socket memory moves by a quarter. 100: every interval.
    #[arg(long, default_value = "1", value_name = "PERCENT", value_parser = parse_budget)]
    census_budget: Budget,
}

fn parse_budget(s: &str) -> Result<Budget, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (e.g. 1, 0.5, 100)"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!(
            "{s}: a census budget is above 0 and at most 100 (percent of one core)"
        ));
    }
    Ok(if v >= 100.0 {
        Budget::EveryPass
    } else {
        Budget::Share(v / 100.0)
    })
}

/// Who owns the sockets, what a group is, and what the proxy calls it.
#[derive(Args, Clone)]
struct Owners {
    /// Show who holds each group's sockets: processes (pid, comm) and
    /// cgroups (path, container, pod).
    #[arg(long)]
    owners: bool,
    /// What a group is: the port (listen:PORT, backend:ADDR:PORT), the
    /// process holding the sockets, the cgroup they were created in, or
    /// a proxy's backend (its servers summed: proxy-backend:NAME).
    #[arg(long, value_enum, default_value = "port")]
    group_by: GroupBy,
    /// Name groups after HAProxy's frontends and backend/servers, read
    /// from its stats socket (runtime API: a UNIX socket, or a TCP
    /// ADDR:PORT reached inside the traced namespace), its configuration
    /// (a file or a directory), or both (repeat the flag); `off` to name
    /// none. By default a running haproxy in the traced namespace is found
    /// through its command line (-f) and its configuration's `stats socket`.
    #[arg(long, value_name = "SOCKET|ADDR:PORT|CONFIG|off", value_parser = parse_proxy_arg)]
    haproxy: Vec<String>,
}

fn parse_proxy_arg(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "give a stats socket (a path or ADDR:PORT), a configuration file or directory, or `off`"
                .into(),
        );
    }
    Ok(s.to_string())
}

impl Owners {
    fn proxy(&self) -> Result<netmem::sources::proxy::ProxySpec> {
        if self.haproxy.len() > 1 && self.haproxy.iter().any(|h| h == "off" || h == "auto") {
            anyhow::bail!("--haproxy off (or auto) cannot be combined with paths");
        }
        Ok(netmem::sources::proxy::ProxySpec::from_args(&self.haproxy))
    }
}

#[derive(Args)]
struct Common {
    /// Report on this network namespace instead of netmem's own: a name from
    /// `ip netns list`, a path such as /proc/PID/ns/net, or `all` for every
    /// namespace of the host (groups outside netmem's own get @NAMESPACE).
    #[arg(long, value_name = "NAME|PATH|all")]
    netns: Option<String>,
    #[command(flatten)]
    who: Owners,
    /// Count each group's TIME_WAIT sockets (JSON `time_wait`). Off by
    /// default: they hold no buffer memory, and under connection churn
    /// there are tens of thousands, which the pass would then have to read.
    #[arg(long)]
    time_wait: bool,
    /// JSON lines instead of a table (schema in README).
    #[arg(long)]
    json: bool,
    /// Only the group listen:PORT (repeatable).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Only the group backend:ADDR:PORT, e.g. 10.0.0.2:9001 or [::1]:9001 (repeatable).
    #[arg(long = "backend", value_name = "ADDR:PORT", value_parser = parse_backend_arg)]
    backends: Vec<(std::net::IpAddr, u16)>,
    /// Also groups with no sockets, memory or events (bare listeners).
    #[arg(long)]
    all: bool,
    /// Table rows at most, largest first; 0 shows every group (text only:
    /// JSON always lists every group shown).
    #[arg(long, default_value_t = 40, value_name = "N")]
    rows: usize,
}

fn format(json: bool) -> Format {
    if json {
        Format::Json
    } else {
        Format::Text
    }
}

/// Standard output through the sink of the chosen format.
fn stdout_sink(json: bool, rows: usize) -> Box<dyn Sink> {
    output::sink(
        format(json),
        std::io::BufWriter::new(std::io::stdout().lock()),
        rows,
    )
}

impl Common {
    fn filter(&self) -> Filter {
        Filter {
            ports: self.ports.clone(),
            backends: self.backends.clone(),
            all: self.all,
        }
    }
}

fn parse_bounded(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 1s, 500ms, 2m)"))?;
    if d < min || d > max {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Shorter intervals only burn CPU on sock_diag dumps; longer ones are
/// better served by `--duration`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::from_millis(10), Duration::from_secs(24 * 3600))
}

fn parse_max_size(s: &str) -> Result<u64, String> {
    // K, M, G in powers of 1024, as `human_bytes` prints them.
    let n = parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{e} (examples: 50M, 1G, 200000)"))?;
    if n < 16 * 1024 {
        return Err("must be at least 16K (the first lines and one interval)".into());
    }
    Ok(n)
}

fn parse_linger(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::ZERO, Duration::from_secs(24 * 3600))
}

fn parse_run_time(s: &str) -> Result<Duration, String> {
    parse_bounded(
        s,
        Duration::from_millis(1),
        Duration::from_secs(366 * 24 * 3600),
    )
}

/// `ADDR:PORT`, `[V6]:PORT`, `HOST:PORT` (first address it resolves to),
/// or `:PORT` (every IPv4 interface, as Go exporters read it).
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
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

/// `--netns`: the namespace to open, and whether every one is wanted
/// (`all`; a namespace really named "all" is `/run/netns/all`).
fn open_netns(arg: Option<&str>) -> Result<(Netns, bool)> {
    match arg {
        Some("all") => Ok((Netns::open(None)?, true)),
        a => Ok((Netns::open(a)?, false)),
    }
}

/// The engine's options common to the live commands.
#[allow(clippy::too_many_arguments)]
fn engine_options(
    command: &'static str,
    netns: Option<&str>,
    who: Owners,
    pass: PassArgs,
    time_wait: bool,
    interval: Duration,
    duration: Option<Duration>,
    filter: Filter,
    event_limit: u64,
    max_tier: Tier,
) -> Result<netmem::engine::Options> {
    let (netns, all_netns) = open_netns(netns)?;
    let proxy = who.proxy()?;
    Ok(netmem::engine::Options {
        proxy,
        command,
        netns,
        all_netns,
        owners: who.owners,
        group_by: who.group_by,
        time_wait,
        interval,
        duration,
        filter,
        event_limit,
        max_tier,
        census_budget: pass.census_budget,
    })
}

fn parse_backend_arg(s: &str) -> Result<(std::net::IpAddr, u16), String> {
    parse_backend(s).map_err(|e| e.to_string())
}

/// The live commands' runtime: one thread, the engine's loop (`serve`'s
/// HTTP side and `top`'s view have threads of their own).
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Snapshot { common } => {
            let (netns, all) = open_netns(common.netns.as_deref())?;
            let filter = common.filter();
            let mut census = netmem::sources::census::Census::new(
                &netns,
                all,
                common.who.owners,
                common.who.group_by,
                &filter,
            )?
            .with_time_wait(common.time_wait)
            .with_proxies(common.who.proxy()?, &netns)?;
            let mut sink = stdout_sink(common.json, common.rows);
            netmem::cmd::snapshot::run(&netns, &filter, &mut census, sink.as_mut())
        }
        Cmd::Trace {
            common,
            pass,
            interval,
            duration,
            event_limit,
            max_tier,
        } => {
            let rt = runtime()?;
            let opts = engine_options(
                "netmem trace",
                common.netns.as_deref(),
                common.who.clone(),
                pass,
                common.time_wait,
                interval,
                duration,
                common.filter(),
                event_limit,
                max_tier,
            )?;
            let mut sink = stdout_sink(common.json, common.rows);
            rt.block_on(netmem::cmd::trace::run(opts, sink.as_mut()))
        }
        Cmd::Doctor {
            netns,
            json,
            watch,
            kernel_log,
            from,
            haproxy,
            max_tier,
        } => {
            let rt = runtime()?;
            let proxy = Owners {
                owners: false,
                group_by: GroupBy::Port,
                haproxy,
            }
            .proxy()?;
            let opts = netmem::cmd::doctor::Options {
                proxy,
                netns: netmem::sources::netns::Netns::open(netns.as_deref())?,
                watch,
                kernel_log,
                from,
                max_tier,
            };
            let mut sink = stdout_sink(json, 0);
            rt.block_on(netmem::cmd::doctor::run(opts, sink.as_mut()))
        }
        Cmd::Record {
            output,
            force,
            duration,
            interval,
            max_size,
            netns,
            who,
            pass,
            event_limit,
            max_tier,
        } => {
            let rt = runtime()?;
            let opts = netmem::cmd::record::Options {
                output,
                force,
                max_size,
                engine: engine_options(
                    "netmem record",
                    netns.as_deref(),
                    who,
                    pass,
                    false,
                    interval,
                    duration,
                    Filter::default(),
                    event_limit,
                    max_tier,
                )?,
            };
            rt.block_on(netmem::cmd::record::run(opts))
        }
        Cmd::Top {
            netns,
            who,
            pass,
            interval,
            ports,
            backends,
            max_tier,
        } => {
            let rt = runtime()?;
            let filter = Filter {
                ports,
                backends,
                all: false,
            };
            let opts = engine_options(
                "netmem top",
                netns.as_deref(),
                who,
                pass,
                false,
                interval,
                None,
                filter,
                1000,
                max_tier,
            )?;
            rt.block_on(netmem::cmd::top::run(opts))
        }
        Cmd::Report { files, output } => netmem::cmd::report::run(&files, &output),
        Cmd::Serve {
            listen,
            netns,
            who,
            pass,
            time_wait,
            interval,
            max_groups,
            linger,
            web_config,
            max_tier,
        } => {
            let rt = runtime()?;
            let opts = netmem::cmd::serve::Options {
                listen,
                max_groups: max_groups as usize,
                linger,
                web_config,
                engine: engine_options(
                    "netmem serve",
                    netns.as_deref(),
                    who,
                    pass,
                    time_wait,
                    interval,
                    None,
                    Filter::default(),
                    netmem::cmd::serve::EVENT_LIMIT,
                    max_tier,
                )?,
            };
            rt.block_on(netmem::cmd::serve::run(opts))
        }
        Cmd::Probes { json, max_tier } => {
            netmem::cmd::probes::run(max_tier, stdout_sink(json, 0).as_mut())
        }
    }
}

fn main() -> ExitCode {
    netmem::kernel::startup::begin();
    // Before anything else: a signal that arrives while the probes load
    // must still stop netmem cleanly.
    netmem::engine::stop::install();
    let cli = Cli::parse();
    let level = if cli.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            // Arguments echoed in a message may hold control characters.
            let msg: String = format!("{e:#}")
                .chars()
                .flat_map(|c| {
                    if c.is_control() && c != '\n' {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect();
            eprintln!("netmem: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
