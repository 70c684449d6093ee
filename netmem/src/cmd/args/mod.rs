//! The flag groups several subcommands share, each defined once and
//! flattened into every subcommand that takes it (`#[command(flatten)]`), so
//! a flag's help, value name, default and parser read the same everywhere
//! by construction (`netmem SUB --help`; tests/tests/cli.rs checks it).
//! A subcommand's own flags live in its `cmd/<name>.rs`; the proxy flags
//! (`--haproxy`, and a second proxy kind's) in `proxy.rs` beside this.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::hooks::Tier;
use crate::model::group::{parse_backend, Filter};
use crate::model::owner::GroupBy;
use crate::output::{self, Format, Sink};
use crate::sources::census::Budget;
use crate::sources::netns::Netns;

pub mod proxy;
pub mod recorder;

pub use proxy::ProxyArg;
pub use recorder::FlightRecorderArgs;

/// `--netns`.
#[derive(Args)]
pub struct NetnsArg {
    /// Report on this network namespace instead of netmem's own: a name from
    /// `ip netns list`, a path such as /proc/PID/ns/net, or `all` for every
    /// namespace of the host (groups outside netmem's own get @NAMESPACE;
    /// `doctor` reads one namespace and refuses `all`).
    #[arg(long, value_name = "NAME|PATH|all")]
    netns: Option<String>,
}

impl NetnsArg {
    /// The namespace to open, and whether every one is wanted (`all`; a
    /// namespace really named "all" is `/run/netns/all`).
    pub fn open(&self) -> Result<(Netns, bool)> {
        match self.netns.as_deref() {
            Some("all") => Ok((Netns::open(None)?, true)),
            a => Ok((Netns::open(a)?, false)),
        }
    }

    /// One namespace, for a command that reads one (`doctor`).
    pub fn open_one(&self, command: &str) -> Result<Netns> {
        match self.open()? {
            (_, true) => anyhow::bail!(
                "{command} reads one network namespace: give --netns NAME or a path such as /proc/PID/ns/net (`all` works for snapshot, trace, record, top and serve; a namespace named \"all\" is /run/netns/all)"
            ),
            (netns, false) => Ok(netns),
        }
    }
}

/// `--json`.
#[derive(Args)]
pub struct JsonArg {
    /// JSON lines instead of text: one object per line, schema in README.
    #[arg(long)]
    pub json: bool,
}

impl JsonArg {
    /// Standard output through the sink of the chosen format; `rows`: the
    /// text table's rows at most (0: every group).
    pub fn stdout_sink(&self, rows: usize) -> Box<dyn Sink> {
        let format = if self.json {
            Format::Json
        } else {
            Format::Text
        };
        output::sink(
            format,
            std::io::BufWriter::new(std::io::stdout().lock()),
            rows,
        )
    }
}

/// `--max-tier` and `--btf`: what the hooks may attach with.
#[derive(Args, Clone)]
pub struct TierArg {
    /// Use no tier better than this (to compare tiers, or to avoid one).
    #[arg(long, value_enum, value_name = "TIER", default_value = "fentry")]
    pub max_tier: Tier,
    /// A vmlinux BTF for the running kernel when it has none of its own
    /// (no /sys/kernel/btf/vmlinux): raw BTF or an ELF file with a .BTF
    /// section, e.g. from BTFHub. Brings back the kprobe and tracepoint
    /// tiers (fentry needs the kernel's own). Also NETMEM_BTF=FILE.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

impl TierArg {
    /// The tier limit, once `--btf`'s file is read and checked (one clear
    /// error for a wrong file, before anything is attached).
    pub fn max_tier(&self) -> Result<Tier> {
        if let Some(f) = &self.btf {
            crate::kernel::btf::use_file(f)?;
        }
        Ok(self.max_tier)
    }
}

/// `--census`: which tier reads every socket's memory.
#[derive(Args, Clone, Copy)]
pub struct CensusArg {
    /// How a pass reads every socket's memory: bpf-iter (BPF socket
    /// iterators sum each group in the kernel; 5.9+ with BTF) or
    /// sock-diag (one record per socket, as `ss`). Default: bpf-iter
    /// where the kernel allows it (`netmem probes` says), else sock-diag.
    /// Passes that need each socket (--owners, a drill-down) use
    /// sock-diag. JSON `census` says which ran.
    #[arg(long, value_enum, value_name = "TIER")]
    pub census: Option<crate::hooks::catalog::CensusTier>,
}

/// `--duration`.
#[derive(Args, Clone, Copy)]
pub struct DurationArg {
    /// Stop after this long, e.g. 30s, 2h (at most 366d; default: until
    /// Ctrl-C, SIGTERM or SIGHUP).
    #[arg(long, value_name = "DURATION", value_parser = parse_run_time)]
    pub duration: Option<Duration>,
}

/// Events written per interval at most unless `--event-limit` says
/// otherwise (`top`, which has no such flag, shows this many).
pub const EVENT_LIMIT: u64 = 1000;

/// `--event-limit`.
#[derive(Args, Clone, Copy)]
pub struct EventLimitArg {
    /// Events written per interval at most (0 to 1000000); the rest are
    /// counted.
    #[arg(long, value_name = "N", default_value_t = EVENT_LIMIT, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub event_limit: u64,
}

/// `--time-wait`.
#[derive(Args, Clone, Copy)]
pub struct TimeWaitArg {
    /// Count each group's TIME_WAIT sockets (JSON `time_wait`, metric
    /// netmem_group_time_wait_sockets). Off by default: they hold no
    /// buffer memory, and under connection churn there are tens of
    /// thousands, which each pass would then have to read.
    #[arg(long)]
    pub time_wait: bool,
}

/// `--port` and `--backend`: which groups are shown.
#[derive(Args, Clone)]
pub struct FilterArgs {
    /// Only the group listen:PORT (repeatable).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Only the group backend:ADDR:PORT, e.g. 10.0.0.2:9001 or [::1]:9001 (repeatable).
    #[arg(long = "backend", value_name = "ADDR:PORT", value_parser = parse_backend_arg)]
    backends: Vec<(std::net::IpAddr, u16)>,
}

impl FilterArgs {
    /// The groups shown; `all`: also those with nothing in them.
    pub fn filter(&self, all: bool) -> Filter {
        Filter {
            ports: self.ports.clone(),
            backends: self.backends.clone(),
            all,
        }
    }
}

fn parse_backend_arg(s: &str) -> Result<(std::net::IpAddr, u16), String> {
    parse_backend(s).map_err(|e| e.to_string())
}

/// `-o` and `--force` (the default name, if any, is the subcommand's).
#[derive(Args)]
pub struct OutputArgs {
    /// The file to write (`record`: the recording; `report`: the HTML
    /// page). An existing file is refused unless --force is given.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// Replace the -o file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// What the table and event lines of `snapshot` and `trace` show.
#[derive(Args)]
pub struct Table {
    #[command(flatten)]
    pub time_wait: TimeWaitArg,
    #[command(flatten)]
    pub json: JsonArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Also groups with no sockets, memory or events (bare listeners).
    #[arg(long)]
    pub all: bool,
    /// Table rows at most, largest first; 0 shows every group (text only:
    /// JSON always lists every group shown).
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub rows: usize,
}

impl Table {
    /// Standard output as the table's flags want it.
    pub fn stdout_sink(&self) -> Box<dyn Sink> {
        self.json.stdout_sink(self.rows)
    }

    /// The groups shown.
    pub fn filter(&self) -> Filter {
        self.filter.filter(self.all)
    }
}

/// Who owns the sockets, what a group is, and what the proxy calls it.
#[derive(Args, Clone)]
pub struct Owners {
    /// Show who holds each group's sockets: processes (pid, comm) and
    /// cgroups (path, container, pod).
    #[arg(long)]
    pub owners: bool,
    /// What a group is: the port (listen:PORT, backend:ADDR:PORT), the
    /// process holding the sockets, the cgroup they were created in, or
    /// a proxy's backend (its servers summed: proxy-backend:NAME).
    #[arg(long, value_enum, value_name = "GROUP", default_value = "port")]
    pub group_by: GroupBy,
    #[command(flatten)]
    pub proxy: ProxyArg,
}

/// The engine's options, as every live command (trace, record, top,
/// serve) takes them: `--netns`, `--owners`, `--group-by`, `--haproxy`,
/// `--census-budget`, `--interval`, `--max-tier`.
#[derive(Args)]
pub struct EngineArgs {
    #[command(flatten)]
    netns: NetnsArg,
    #[command(flatten)]
    who: Owners,
    /// CPU, in percent of one core, that the per-group census (every
    /// socket read through sock_diag) may use. Below the cost of one
    /// census per interval it runs less often (each interval says how old
    /// its groups are: JSON `census_age_ms`), and at once when the
    /// namespace's socket memory moves by a quarter. 100: every interval.
    #[arg(long, default_value = "1", value_name = "PERCENT", value_parser = parse_budget)]
    census_budget: Budget,
    #[command(flatten)]
    census: CensusArg,
    // `serve` sets a default of its own (`mut_arg` on its Args).
    /// How often a pass runs: each table of `trace`, frame of `record`,
    /// redraw of `top`, metrics refresh of `serve` (scrapes read the
    /// latest). E.g. 1s, 500ms; 10ms to 24h.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
    #[command(flatten)]
    tier: TierArg,
}

impl EngineArgs {
    /// The engine's options from these flags, with what they do not say at
    /// its plainest: no TIME_WAIT count, until stopped, every group,
    /// [`EVENT_LIMIT`] events. A command sets the rest from its own flags
    /// (`engine::Options { duration, ..args.options(cmd)? }`).
    pub fn options(self, command: &'static str) -> Result<crate::engine::Options> {
        let (netns, all_netns) = self.netns.open()?;
        Ok(crate::engine::Options {
            proxy: self.who.proxy.spec()?,
            command,
            netns,
            all_netns,
            owners: self.who.owners,
            group_by: self.who.group_by,
            time_wait: false,
            interval: self.interval,
            duration: None,
            filter: Filter::default(),
            event_limit: EVENT_LIMIT,
            max_tier: self.tier.max_tier()?,
            census_budget: self.census_budget,
            census: self.census.census,
            host_refresh: None,
        })
    }
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

/// A duration from `min` to `max`, with examples when it does not parse.
pub fn parse_bounded(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
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

/// How long a command runs (`--duration`, `doctor --watch`).
pub fn parse_run_time(s: &str) -> Result<Duration, String> {
    parse_bounded(
        s,
        Duration::from_millis(1),
        Duration::from_secs(366 * 24 * 3600),
    )
}
