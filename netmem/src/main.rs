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
        netns: NetnsArg,
        #[command(flatten)]
        who: Owners,
        #[command(flatten)]
        table: Table,
    },
    /// Attach the eBPF probes; print events as they happen and the per-group
    /// table every interval. Needs root (or CAP_BPF + CAP_PERFMON).
    Trace {
        #[command(flatten)]
        live: Live,
        #[command(flatten)]
        table: Table,
        #[command(flatten)]
        duration: DurationArg,
        #[command(flatten)]
        events: EventLimitArg,
    },
    /// Which limit fired (or is nearest), with the numbers, which group
    /// holds the memory, and what to change. One reading by default (no
    /// eBPF, no root needed for what is readable).
    Doctor {
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
        #[arg(long, value_name = "FILE", conflicts_with_all = ["watch", "haproxy"])]
        from: Option<String>,
        #[command(flatten)]
        proxy: ProxyArg,
        #[command(flatten)]
        tier: TierArg,
    },
    /// Record a trace (the JSON lines of `trace --json`) to a zstd file,
    /// flushed every interval, for `netmem report` and `doctor --from`.
    /// Needs root like `trace`.
    Record {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        duration: DurationArg,
        /// Stop before the file passes this size, e.g. 50M, 1G (binary units; at least 16K).
        #[arg(long, value_name = "SIZE", value_parser = parse_max_size)]
        max_size: Option<u64>,
        #[command(flatten)]
        live: Live,
        #[command(flatten)]
        events: EventLimitArg,
    },
    /// Draw one recording, or compare two, as a self-contained HTML file:
    /// the doctor's findings, memory by group against tcp_mem, orphans
    /// against tcp_max_orphans, event rates, route exceptions, tables.
    // The page has a default name; a recording has none.
    #[command(mut_arg("output", |a| a.required(false).default_value("report.html")))]
    Report {
        /// A recording (`netmem record`, or `trace --json` output,
        /// zstd-compressed or not); a second one to compare with.
        #[arg(value_name = "FILE", num_args = 1..=2, required = true)]
        files: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A live view for the person on call: groups sorted by memory with
    /// their last minute, the limits as gauges, the latest events, the
    /// doctor's top finding. Keys: m o d a s sort, Enter sockets, / filter,
    /// p pause, ? help, q quit. Needs root like `trace`, and a terminal.
    Top {
        #[command(flatten)]
        live: Live,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Serve Prometheus metrics (OpenMetrics or text format) on
    /// http://ADDR:PORT/metrics: per-group memory and counts, the global
    /// limits beside their usage, and netmem's own health. Attaches the
    /// probes like `trace`; runs until SIGTERM or SIGINT (SIGHUP is
    /// ignored). Needs root (or CAP_BPF + CAP_PERFMON, see README).
    // A scrape reads the latest pass: a slower one than trace's suits it.
    #[command(mut_arg("interval", |a| a.default_value("5s")))]
    Serve {
        /// Address to listen on: ADDR:PORT, [V6ADDR]:PORT, HOST:PORT, or
        /// :PORT for every interface. Loopback by default.
        #[arg(long, value_name = "ADDR:PORT", default_value = netmem::cmd::serve::DEFAULT_LISTEN, value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        live: Live,
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
        web_config: Option<std::path::PathBuf>,
    },
    /// List every hook, the tier that serves it on this kernel (fentry,
    /// kprobe, tracepoint, polling) and why each better tier is not used.
    /// Attaches and detaches at once. Needs root.
    Probes {
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        tier: TierArg,
    },
}

// One struct per flag (or flag group), flattened into every subcommand
// that takes it, so each flag's help is written once and reads the same
// everywhere (`netmem SUB --help`; tests/tests/cli.rs checks it).

/// `--netns`.
#[derive(Args)]
struct NetnsArg {
    /// Report on this network namespace instead of netmem's own: a name from
    /// `ip netns list`, a path such as /proc/PID/ns/net, or `all` for every
    /// namespace of the host (groups outside netmem's own get @NAMESPACE;
    /// `doctor` reads one namespace and refuses `all`).
    #[arg(long, value_name = "NAME|PATH|all")]
    netns: Option<String>,
}

/// `--json`.
#[derive(Args)]
struct JsonArg {
    /// JSON lines instead of text: one object per line, schema in README.
    #[arg(long)]
    json: bool,
}

/// `--max-tier`.
#[derive(Args, Clone, Copy)]
struct TierArg {
    /// Use no tier better than this (to compare tiers, or to avoid one).
    #[arg(long, value_enum, value_name = "TIER", default_value = "fentry")]
    max_tier: Tier,
}

/// `--interval` (`serve` sets a default of its own).
#[derive(Args, Clone, Copy)]
struct IntervalArg {
    /// How often a pass runs: each table of `trace`, frame of `record`,
    /// redraw of `top`, metrics refresh of `serve` (scrapes read the
    /// latest). E.g. 1s, 500ms; 10ms to 24h.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
}

/// `--duration`.
#[derive(Args, Clone, Copy)]
struct DurationArg {
    /// Stop after this long, e.g. 30s, 2h (at most 366d; default: until
    /// Ctrl-C, SIGTERM or SIGHUP).
    #[arg(long, value_name = "DURATION", value_parser = parse_run_time)]
    duration: Option<Duration>,
}

/// `--event-limit`.
#[derive(Args, Clone, Copy)]
struct EventLimitArg {
    /// Events written per interval at most (0 to 1000000); the rest are
    /// counted.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    event_limit: u64,
}

/// `--time-wait`.
#[derive(Args, Clone, Copy)]
struct TimeWaitArg {
    /// Count each group's TIME_WAIT sockets (JSON `time_wait`, metric
    /// netmem_group_time_wait_sockets). Off by default: they hold no
    /// buffer memory, and under connection churn there are tens of
    /// thousands, which each pass would then have to read.
    #[arg(long)]
    time_wait: bool,
}

/// `--port` and `--backend`: which groups are shown.
#[derive(Args, Clone)]
struct FilterArgs {
    /// Only the group listen:PORT (repeatable).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Only the group backend:ADDR:PORT, e.g. 10.0.0.2:9001 or [::1]:9001 (repeatable).
    #[arg(long = "backend", value_name = "ADDR:PORT", value_parser = parse_backend_arg)]
    backends: Vec<(std::net::IpAddr, u16)>,
}

/// `-o` and `--force` (the default name, if any, is the subcommand's).
#[derive(Args)]
struct OutputArgs {
    /// The file to write (`record`: the recording; `report`: the HTML
    /// page). An existing file is refused unless --force is given.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: std::path::PathBuf,
    /// Replace the -o file if it exists.
    #[arg(long)]
    force: bool,
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
    #[arg(long, value_enum, value_name = "GROUP", default_value = "port")]
    group_by: GroupBy,
    #[command(flatten)]
    proxy: ProxyArg,
}

/// `--haproxy`.
#[derive(Args, Clone)]
struct ProxyArg {
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

impl ProxyArg {
    fn spec(&self) -> Result<netmem::sources::proxy::ProxySpec> {
        if self.haproxy.len() > 1 && self.haproxy.iter().any(|h| h == "off" || h == "auto") {
            anyhow::bail!("--haproxy off (or auto) cannot be combined with paths");
        }
        Ok(netmem::sources::proxy::ProxySpec::from_args(&self.haproxy))
    }
}

/// What the table and event lines of `snapshot` and `trace` show.
#[derive(Args)]
struct Table {
    #[command(flatten)]
    time_wait: TimeWaitArg,
    #[command(flatten)]
    json: JsonArg,
    #[command(flatten)]
    filter: FilterArgs,
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

impl FilterArgs {
    /// The groups shown; `all`: also those with nothing in them.
    fn filter(&self, all: bool) -> Filter {
        Filter {
            ports: self.ports.clone(),
            backends: self.backends.clone(),
            all,
        }
    }
}

fn parse_bounded(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 1s, 500ms, 2m)"))?;
    if d < min || d > max {
        // Whole days as days: humantime writes 366d as "1year 18h".
        let said = |d: Duration| match d.as_secs() {
            s if s >= 86_400 && s % 86_400 == 0 && d.subsec_nanos() == 0 => {
                format!("{}d", s / 86_400)
            }
            _ => humantime::format_duration(d).to_string(),
        };
        return Err(format!("must be between {} and {}", said(min), said(max)));
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

impl NetnsArg {
    /// The namespace to open, and whether every one is wanted (`all`; a
    /// namespace really named "all" is `/run/netns/all`).
    fn open(&self) -> Result<(Netns, bool)> {
        match self.netns.as_deref() {
            Some("all") => Ok((Netns::open(None)?, true)),
            a => Ok((Netns::open(a)?, false)),
        }
    }

    /// One namespace, for a command that reads one (`doctor`).
    fn open_one(&self, command: &str) -> Result<Netns> {
        match self.open()? {
            (_, true) => anyhow::bail!(
                "{command} reads one network namespace: give --netns NAME or a path such as /proc/PID/ns/net (`all` works for snapshot, trace, record, top and serve; a namespace named \"all\" is /run/netns/all)"
            ),
            (netns, false) => Ok(netns),
        }
    }
}

/// The flags every live command (trace, record, top, serve) has; the
/// engine's options are made of them and of the command's own.
#[derive(Args)]
struct Live {
    #[command(flatten)]
    netns: NetnsArg,
    #[command(flatten)]
    who: Owners,
    #[command(flatten)]
    pass: PassArgs,
    #[command(flatten)]
    interval: IntervalArg,
    #[command(flatten)]
    tier: TierArg,
}

impl Live {
    fn options(
        self,
        command: &'static str,
        time_wait: bool,
        duration: Option<Duration>,
        filter: Filter,
        event_limit: u64,
    ) -> Result<netmem::engine::Options> {
        let (netns, all_netns) = self.netns.open()?;
        Ok(netmem::engine::Options {
            proxy: self.who.proxy.spec()?,
            command,
            netns,
            all_netns,
            owners: self.who.owners,
            group_by: self.who.group_by,
            time_wait,
            interval: self.interval.interval,
            duration,
            filter,
            event_limit,
            max_tier: self.tier.max_tier,
            census_budget: self.pass.census_budget,
        })
    }
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
        Cmd::Snapshot { netns, who, table } => {
            let (netns, all) = netns.open()?;
            let filter = table.filter.filter(table.all);
            let mut census = netmem::sources::census::Census::new(
                &netns,
                all,
                who.owners,
                who.group_by,
                &filter,
            )?
            .with_time_wait(table.time_wait.time_wait)
            // A table's proxy lines say the problems; JSON lines are not
            // read by people, who then learn them on stderr.
            .one_shot(!table.json.json)
            .with_proxies(who.proxy.spec()?, &netns)?;
            let mut sink = stdout_sink(table.json.json, table.rows);
            netmem::cmd::snapshot::run(&netns, &filter, &mut census, sink.as_mut())
        }
        Cmd::Trace {
            live,
            table,
            duration,
            events,
        } => {
            let rt = runtime()?;
            let opts = live.options(
                "netmem trace",
                table.time_wait.time_wait,
                duration.duration,
                table.filter.filter(table.all),
                events.event_limit,
            )?;
            let mut sink = stdout_sink(table.json.json, table.rows);
            rt.block_on(netmem::cmd::trace::run(opts, sink.as_mut()))
        }
        Cmd::Doctor {
            netns,
            json,
            watch,
            kernel_log,
            from,
            proxy,
            tier,
        } => {
            let rt = runtime()?;
            let opts = netmem::cmd::doctor::Options {
                proxy: proxy.spec()?,
                netns: netns.open_one("netmem doctor")?,
                watch,
                kernel_log,
                from,
                max_tier: tier.max_tier,
            };
            let mut sink = stdout_sink(json.json, 0);
            rt.block_on(netmem::cmd::doctor::run(opts, sink.as_mut()))
        }
        Cmd::Record {
            output,
            duration,
            max_size,
            live,
            events,
        } => {
            let rt = runtime()?;
            let opts = netmem::cmd::record::Options {
                output: output.output,
                force: output.force,
                max_size,
                engine: live.options(
                    "netmem record",
                    false,
                    duration.duration,
                    Filter::default(),
                    events.event_limit,
                )?,
            };
            rt.block_on(netmem::cmd::record::run(opts))
        }
        Cmd::Top { live, filter } => {
            let rt = runtime()?;
            let opts = live.options("netmem top", false, None, filter.filter(false), 1000)?;
            rt.block_on(netmem::cmd::top::run(opts))
        }
        Cmd::Report { files, output } => {
            netmem::cmd::report::run(&files, &output.output, output.force)
        }
        Cmd::Serve {
            listen,
            live,
            time_wait,
            max_groups,
            linger,
            web_config,
        } => {
            let rt = runtime()?;
            let opts = netmem::cmd::serve::Options {
                listen,
                max_groups: max_groups as usize,
                linger,
                web_config,
                engine: live.options(
                    "netmem serve",
                    time_wait.time_wait,
                    None,
                    Filter::default(),
                    netmem::cmd::serve::EVENT_LIMIT,
                )?,
            };
            rt.block_on(netmem::cmd::serve::run(opts))
        }
        Cmd::Probes { json, tier } => {
            netmem::cmd::probes::run(tier.max_tier, stdout_sink(json.json, 0).as_mut())
        }
    }
}

fn main() -> ExitCode {
    netmem::kernel::startup::begin();
    // Before anything else: a signal that arrives while the probes load
    // must still stop netmem cleanly.
    netmem::engine::stop::install();
    let cli = Cli::parse();
    init_logging(cli.verbose);
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
            eprintln!(
                "netmem: error: {}",
                netmem::format::printable(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// Log records (netmem's own, aya's, and the eBPF programs' through
/// aya-log) read like netmem's other messages: `netmem: warning: ...`.
fn init_logging(verbose: bool) {
    let level = if verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|buf, r| {
            let msg = r.args().to_string();
            let msg = netmem::format::printable(&msg);
            match r.level() {
                log::Level::Error => writeln!(buf, "netmem: error: {msg}"),
                log::Level::Warn => writeln!(buf, "netmem: warning: {msg}"),
                log::Level::Info => writeln!(buf, "netmem: note: {msg}"),
                // Several crates log at these levels: say which one.
                l => writeln!(
                    buf,
                    "netmem: {}: {}: {msg}",
                    l.as_str().to_lowercase(),
                    r.target()
                ),
            }
        })
        .init();
}
