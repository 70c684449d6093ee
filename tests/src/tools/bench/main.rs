//! `cargo xtask bench`: netmem's cost against what an engineer would use
//! instead, as ratios taken in one run with the arms alternating. The method
//! is in BENCHMARKS.md.
//!
//! - overhead: loopback connection churn and bulk throughput, direct and
//!   through HAProxy, with nothing attached / `netmem trace` / a bpftrace
//!   script on the same tracepoints with per-port maps;
//! - kernel-cost: BPF time per connection of the direct churn, netmem vs
//!   that bpftrace script, per program (bpf_stats; also part of overhead);
//! - startup: exec to the ready line read by the bench, netmem (kernel-facts
//!   cache warm, and cold) vs that bpftrace script (and the script with a
//!   `struct sock` cast, which parses BTF);
//! - steady: `trace` and `serve` left running at 100k sockets and 1000+
//!   groups, then `serve --netns all --owners --flight-recorder` over 50
//!   namespaces: CPU and RSS;
//! - snapshot: `netmem snapshot --json` vs `ss -tmnH` (+ awk per-port sums)
//!   at 10k/50k/100k connections, wall time and peak RSS;
//! - pipeline: synthetic events from one producer through netmem's real
//!   ring buffer and consumer loop: highest lossless rate, and whether
//!   generated - received == reported lost when overloaded;
//! - report: `netmem report` of a 10-minute recording at 1 s (60 groups,
//!   an abort a minute) against `netmem doctor --from` on the same file
//!   (reading and diagnosing it without drawing);
//! - top: CPU of `netmem top` (in a tmux terminal) at 1 s with 1000
//!   groups, against `netmem trace --json` on the same load;
//! - scrape: `GET /metrics` of `netmem serve` with 1000 groups (1000
//!   backends held open), against a 404 of the same server (the HTTP
//!   cost alone): client latency, the server's own encode time;
//! - recorder: `netmem serve` at 1000 groups with and without
//!   `--flight-recorder`: CPU and RSS, the arms alternating;
//! - census: one census pass in the kernel (BPF socket iterators) against
//!   sock_diag on the same 10k/100k/1M sockets, and `--netns all` over 20
//!   namespaces against one, per tier.
//!
//! Needs root, haproxy and bpftrace. Prints a table and writes JSON to
//! target/bench/results.json.
//!
//! Each part is a module of its own (named as above); `attached.rs` is the
//! tracer an arm runs, `common.rs` what several parts share, `check.rs`
//! the `--check` against BENCHMARKS.md's baseline.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use netmem_tests::rig::Rig;
use serde_json::{json, Value};

mod attached;
mod census;
mod check;
mod common;
mod kernel_cost;
mod namespaces;
mod overhead;
mod pipeline;
mod recorder;
mod report;
mod scrape;
mod snapshot;
mod startup;
mod steady;
mod time_wait;
mod top;

/// netmem against bpftrace and ss, every ratio from one run with the arms
/// alternating (BENCHMARKS.md has the method).
#[derive(clap::Parser)]
#[command(name = "netmem-bench")]
pub(crate) struct Opts {
    /// Repetitions per arm.
    #[arg(long, default_value_t = 5)]
    pub(crate) reps: usize,
    /// Seconds per run of an overhead arm.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) secs: f64,
    /// Connection counts of the snapshot benchmark.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000")]
    pub(crate) levels: Vec<usize>,
    /// Socket counts of the census benchmark (each connection is two).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub(crate) census_levels: Vec<usize>,
    /// 3 repetitions of 1.5 s, 10k connections only.
    #[arg(long)]
    pub(crate) quick: bool,
    /// After the parts run, compare their ratios (each taken in one run
    /// against a baseline arm) with the baseline committed in BENCHMARKS.md
    /// and fail when one is more than 20% worse; absolute figures are
    /// printed, not judged, and a ratio too noisy in this run is not judged.
    #[arg(long)]
    pub(crate) check: bool,
    /// Only these parts (default: all).
    #[arg(value_enum)]
    pub(crate) only: Vec<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Overhead,
    /// Only the overhead part's BPF time per connection (bpf_stats).
    KernelCost,
    Startup,
    Snapshot,
    Pipeline,
    Scrape,
    Report,
    Top,
    /// `snapshot --netns all` over many namespaces against one.
    Namespaces,
    /// `snapshot` with 16k established and 60k+ TIME_WAIT sockets.
    TimeWait,
    /// `trace` and `serve` left running at 100k sockets and 1000+ groups,
    /// and `serve --netns all --owners --flight-recorder` over 50
    /// namespaces: their RSS and CPU at a 1 s interval.
    Steady,
    /// `serve` at 1000+ groups with and without `--flight-recorder`.
    Recorder,
    /// One census pass in the kernel (BPF socket iterators) against
    /// sock_diag at 10k/100k/1M sockets, and `--netns all` over 20
    /// namespaces against one, per tier.
    Census,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("netmem-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut o = <Opts as clap::Parser>::parse();
    if o.quick {
        o.reps = 3;
        o.secs = 1.5;
        o.levels = vec![10_000];
    }
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "run as root (loads eBPF, creates namespaces)"
    );
    let want = |p: Part| o.only.is_empty() || o.only.contains(&p);
    let mut results = serde_json::Map::new();
    if want(Part::Overhead) {
        results.insert("overhead".into(), overhead::overhead(&o)?);
    }
    if want(Part::KernelCost) && !want(Part::Overhead) {
        let rig = Rig::start(overhead::bench_rig())?;
        let direct: SocketAddr = "127.0.0.1:9001".parse()?;
        let k = kernel_cost::kernel_cost(&rig.ns, direct, o.secs, o.reps)?;
        results.insert("overhead".into(), json!({ "kernel_cost": k }));
    }
    if want(Part::Startup) {
        results.insert("startup".into(), startup::startup(&o)?);
    }
    if want(Part::Snapshot) {
        results.insert("snapshot".into(), snapshot::snapshot(&o)?);
    }
    if want(Part::Pipeline) {
        results.insert("pipeline".into(), pipeline::pipeline(&o)?);
    }
    if want(Part::Top) {
        results.insert("top".into(), top::top(&o)?);
    }
    if want(Part::Report) {
        results.insert("report".into(), report::report(&o)?);
    }
    if want(Part::Scrape) {
        results.insert("scrape".into(), scrape::scrape(&o)?);
    }
    if want(Part::TimeWait) {
        results.insert("time_wait".into(), time_wait::time_wait(&o)?);
    }
    if want(Part::Steady) {
        results.insert("steady".into(), steady::steady(&o)?);
    }
    if want(Part::Recorder) {
        results.insert("recorder".into(), recorder::recorder(&o)?);
    }
    if want(Part::Census) {
        results.insert("census".into(), census::census(&o)?);
    }
    if want(Part::Namespaces) {
        results.insert("namespaces".into(), namespaces::namespaces(&o)?);
    }
    let dir = netmem_tests::netmem_bin()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("bench"))
        .context("target dir")?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("results.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(results.clone()))?,
    )?;
    println!("\nresults: {}", path.display());
    if o.check {
        check::check(&Value::Object(results))?;
    }
    Ok(())
}
