//! `cargo xtask bench`: netmem's cost against what an engineer would use
//! instead, as ratios taken in one run with the arms alternating. The method
//! is in BENCHMARKS.md.
//!
//! - overhead: loopback connection churn and bulk throughput, direct and
//!   through HAProxy, with nothing attached / `netmem trace` / a bpftrace
//!   script on the same tracepoints with per-port maps;
//! - kernel-cost: BPF time per connection of the direct churn, netmem vs
//!   that bpftrace script, per program (bpf_stats; also part of overhead);
//! - startup: exec to every probe attached, netmem vs that bpftrace script
//!   (and the script with a `struct sock` cast, which parses BTF);
//! - steady: `trace` and `serve` left running at 100k sockets and 1000+
//!   groups: CPU and RSS;
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
//!   backends held open), against `GET /` of the same server (the HTTP
//!   cost alone): client latency, the server's own encode time.
//!
//! Needs root, haproxy and bpftrace. Prints a table and writes JSON to
//! target/bench/results.json.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use netmem_tests::rig::{request, spawn_in_netns, Rig, RigConfig};
use netmem_tests::scenarios::in_netns;
use netmem_tests::Netns;
use serde_json::{json, Value};

/// The bpftrace peer: the tracepoints netmem attaches on a kernel without
/// kprobes/fentry, each aggregated per port (or per what the tracepoint has)
/// in bpftrace maps. `ready` marks every probe attached.
const BPFTRACE_SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sock:inet_sock_set_state { @state[args->sport, args->newstate] = count(); }
tracepoint:tcp:tcp_destroy_sock { @destroy[args->sport] = count(); }
tracepoint:tcp:tcp_send_reset { @reset[(args->saddr[2] << 8) | args->saddr[3], args->reason] = count(); }
tracepoint:sock:sock_exceed_buf_limit { @exceed[args->kind] = count(); }
tracepoint:sock:sock_rcvqueue_full { @rqfull[comm] = count(); }
tracepoint:skb:kfree_skb /args->reason != 2/ { @drops[args->reason] = count(); }
"#;

/// The startup part's variant: the local port read through the socket, as
/// netmem does, makes bpftrace load and parse vmlinux BTF first.
const BTF_CAST: &str = "((struct sock *)args->skaddr)->__sk_common.skc_num, args->reason";

/// The same per-port sums as netmem's groups: sockets and ss `w` by local port.
const AWK_PER_PORT: &str = r#"/^[A-Z]/ { n = split($4, a, ":"); p = a[n]; next }
/skmem/ { match($0, /,w[0-9]+/); w[p] += substr($0, RSTART + 2, RLENGTH - 2); c[p]++ }
END { for (p in w) print p, c[p], w[p] }"#;

/// netmem against bpftrace and ss, every ratio from one run with the arms
/// alternating (BENCHMARKS.md has the method).
#[derive(clap::Parser)]
#[command(name = "netmem-bench")]
struct Opts {
    /// Repetitions per arm.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds per run of an overhead arm.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Connection counts of the snapshot benchmark.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000")]
    levels: Vec<usize>,
    /// 3 repetitions of 1.5 s, 10k connections only.
    #[arg(long)]
    quick: bool,
    /// After the parts run, compare their figures with the baseline
    /// committed in BENCHMARKS.md and fail when one is more than 20% worse.
    #[arg(long)]
    check: bool,
    /// Only these parts (default: all).
    #[arg(value_enum)]
    only: Vec<Part>,
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
    /// `trace` and `serve` left running at 100k sockets and 1000+ groups:
    /// their RSS and CPU at a 1 s interval.
    Steady,
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
        results.insert("overhead".into(), overhead(&o)?);
    }
    if want(Part::KernelCost) && !want(Part::Overhead) {
        let rig = Rig::start(bench_rig())?;
        let direct: SocketAddr = "127.0.0.1:9001".parse()?;
        let k = kernel_cost(&rig.ns, direct, o.secs, o.reps)?;
        results.insert("overhead".into(), json!({ "kernel_cost": k }));
    }
    if want(Part::Startup) {
        results.insert("startup".into(), startup(&o)?);
    }
    if want(Part::Snapshot) {
        results.insert("snapshot".into(), snapshot(&o)?);
    }
    if want(Part::Pipeline) {
        results.insert("pipeline".into(), pipeline(&o)?);
    }
    if want(Part::Top) {
        results.insert("top".into(), top(&o)?);
    }
    if want(Part::Report) {
        results.insert("report".into(), report(&o)?);
    }
    if want(Part::Scrape) {
        results.insert("scrape".into(), scrape(&o)?);
    }
    if want(Part::TimeWait) {
        results.insert("time_wait".into(), time_wait(&o)?);
    }
    if want(Part::Steady) {
        results.insert("steady".into(), steady(&o)?);
    }
    if want(Part::Namespaces) {
        results.insert("namespaces".into(), namespaces(&o)?);
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
        check(&Value::Object(results))?;
    }
    Ok(())
}

/// How much worse a figure may get before `--check` fails.
const TOLERANCE: f64 = 0.20;

/// `--check`: every baseline figure of the parts that ran, now against
/// then. The baseline is the `json bench-baseline` block of BENCHMARKS.md:
/// `[{"path": [...], "value": V, "better": "higher"|"lower"}]`, each path
/// into results.json.
fn check(results: &Value) -> Result<()> {
    let md_path = netmem_tests::workspace_root().join("BENCHMARKS.md");
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("cannot read {}", md_path.display()))?;
    let block = md
        .split("```json bench-baseline")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("BENCHMARKS.md has no ```json bench-baseline block")?;
    let baseline: Vec<Value> =
        serde_json::from_str(block).context("the bench-baseline block is not a JSON array")?;
    println!(
        "\n== check against BENCHMARKS.md (fails beyond {:.0}% worse)",
        TOLERANCE * 100.0
    );
    let mut failed = Vec::new();
    let mut compared = 0;
    for b in &baseline {
        let path: Vec<&str> = b["path"]
            .as_array()
            .context("a baseline entry without a path")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let then = b["value"]
            .as_f64()
            .context("a baseline entry without a value")?;
        let higher = match b["better"].as_str() {
            Some("higher") => true,
            Some("lower") => false,
            _ => bail!("baseline {path:?}: better must be \"higher\" or \"lower\""),
        };
        let now = path
            .iter()
            .try_fold(results, |v, k| v.get(*k))
            .and_then(Value::as_f64);
        let Some(now) = now else {
            println!(
                "{:<58} {:>12} (not run)",
                path.join(" / "),
                format!("{then}")
            );
            continue;
        };
        compared += 1;
        let worse = if higher {
            (then - now) / then
        } else {
            (now - then) / then
        };
        let verdict = if worse > TOLERANCE { "WORSE" } else { "ok" };
        println!(
            "{:<58} {:>12.3} -> {:>12.3}  {:>+6.1}%  {verdict}",
            path.join(" / "),
            then,
            now,
            -worse * 100.0
        );
        if worse > TOLERANCE {
            failed.push(path.join(" / "));
        }
    }
    ensure!(
        compared > 0,
        "no baseline figure was measured by the parts run"
    );
    ensure!(
        failed.is_empty(),
        "more than {:.0}% worse than BENCHMARKS.md: {}",
        TOLERANCE * 100.0,
        failed.join(", ")
    );
    println!(
        "check: {compared} figures within {:.0}% of the baseline",
        TOLERANCE * 100.0
    );
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

fn netmem() -> String {
    netmem_tests::netmem_bin().to_string_lossy().into_owned()
}

/// A tracer attached for one repetition; stdout is drained so it never blocks.
struct Attached {
    child: Child,
    startup: Duration,
}

impl Attached {
    fn start(arm: &str, ns: &str) -> Result<Option<Attached>> {
        let mut cmd = match arm {
            "none" => return Ok(None),
            "netmem" => {
                let mut c = Command::new(netmem());
                c.args(["trace", "--json"]);
                if !ns.is_empty() {
                    c.args(["--netns", ns]);
                }
                c
            }
            "bpftrace" => {
                let mut c = Command::new("bpftrace");
                c.args(["-e", BPFTRACE_SCRIPT]);
                c
            }
            "bpftrace-btf" => {
                let mut c = Command::new("bpftrace");
                c.args([
                    "-e",
                    &BPFTRACE_SCRIPT.replace(
                        "(args->saddr[2] << 8) | args->saddr[3], args->reason",
                        BTF_CAST,
                    ),
                ]);
                c
            }
            _ => bail!("unknown arm {arm}"),
        };
        // If the bench dies, the tracer must not stay attached and skew
        // whatever runs next.
        // SAFETY: prctl in the forked child before exec, async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        let t0 = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {arm}"))?;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            ensure!(
                out.read_line(&mut line)? > 0,
                "{arm} exited before it was ready"
            );
            // netmem's first JSON line comes once every hook is attached.
            if (arm == "netmem" && line.contains("\"probes\"")) || line.trim() == "ready" {
                break;
            }
        }
        let startup = t0.elapsed();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        Ok(Some(Attached { child, startup }))
    }

    /// CPU seconds (user + system) the tracer process has used so far.
    fn cpu_s(&self) -> f64 {
        netmem_tests::cpu_seconds(self.child.id())
    }

    /// Kernel time and runs of every BPF program the tracer holds open,
    /// by program name (from /proc/PID/fdinfo; counted while
    /// kernel.bpf_stats_enabled is 1).
    fn prog_stats_by_name(&self) -> BTreeMap<String, (u64, u64)> {
        let pid = self.child.id();
        let mut by_id: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return BTreeMap::new();
        };
        for fd in fds.flatten() {
            let is_prog = std::fs::read_link(fd.path())
                .map(|l| l.to_string_lossy() == "anon_inode:bpf-prog")
                .unwrap_or(false);
            if !is_prog {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let (mut id, mut ns, mut runs) = (0, 0, 0);
            for l in info.lines() {
                let mut kv = l.split(':').map(str::trim);
                match (kv.next(), kv.next().and_then(|v| v.parse::<u64>().ok())) {
                    (Some("prog_id"), Some(v)) => id = v as u32,
                    (Some("run_time_ns"), Some(v)) => ns = v,
                    (Some("run_cnt"), Some(v)) => runs = v,
                    _ => {}
                }
            }
            by_id.insert(id, (ns, runs));
        }
        let names: BTreeMap<u32, String> = aya::programs::loaded_programs()
            .flatten()
            .map(|p| (p.id(), p.name_as_str().unwrap_or("?").to_string()))
            .collect();
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (id, (ns, runs)) in by_id {
            let name = names.get(&id).cloned().unwrap_or_else(|| format!("id{id}"));
            let e = out.entry(name).or_default();
            e.0 += ns;
            e.1 += runs;
        }
        out
    }

    fn stop(mut self) -> Result<()> {
        // SAFETY: signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let st = self.child.wait()?;
        ensure!(
            st.success() || st.code() == Some(0) || st.code().is_none(),
            "tracer exited with {st}"
        );
        Ok(())
    }
}

/// Connections completed per second: connect, a ~70-byte request, a
/// 100-byte body, close; two client threads.
fn churn(ns: &str, to: SocketAddr, secs: f64) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (done, stop) = (done.clone(), stop.clone());
            spawn_in_netns(ns, move || {
                while !stop.load(Ordering::Relaxed) {
                    netmem_tests::rig::fetch(to, 100)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let n = done.load(Ordering::Relaxed);
    let el = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("churn thread panicked"))??;
    }
    Ok(n as f64 / el)
}

/// Bytes per second of one HTTP response read as fast as possible.
fn bulk(ns: &str, to: SocketAddr, secs: f64) -> Result<f64> {
    in_netns(ns, || {
        let mut s = TcpStream::connect(to)?;
        s.write_all(request(1 << 40).as_bytes())?;
        let mut buf = vec![0u8; 256 * 1024];
        // Past the headers and slow start.
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(200) {
            ensure!(s.read(&mut buf)? > 0, "bulk response ended during warm-up");
        }
        let t0 = Instant::now();
        let mut total = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            let n = s.read(&mut buf)?;
            ensure!(n > 0, "bulk response ended");
            total += n as u64;
        }
        Ok(total as f64 / t0.elapsed().as_secs_f64())
    })
}

/// HAProxy and its backends with no clients: the workloads bring their own.
fn bench_rig() -> RigConfig {
    RigConfig {
        name: "netmem-bench".into(),
        normal: 0,
        slow: 0,
        vanishing: 0,
        ..Default::default()
    }
}

fn overhead(o: &Opts) -> Result<Value> {
    let rig = Rig::start(bench_rig())?;
    let direct: SocketAddr = "127.0.0.1:9001".parse()?;
    let haproxy: SocketAddr = format!("127.0.0.1:{}", rig.cfg.frontend_port).parse()?;
    let arms = ["none", "netmem", "bpftrace"];
    let mut out = serde_json::Map::new();
    println!(
        "\n== overhead: {} alternating repetitions of {:.1} s per arm",
        o.reps, o.secs
    );
    println!(
        "{:<18} {:>14} {:>14} {:>14} {:>9} {:>9}",
        "workload", "none", "netmem", "bpftrace", "netmem", "bpftrace"
    );
    println!(
        "{:<18} {:>14} {:>14} {:>14} {:>19}   {:>13}",
        "", "", "", "", "throughput ratio", "tracer CPU"
    );
    for (name, kind, to) in [
        ("churn direct", "churn", direct),
        ("churn haproxy", "churn", haproxy),
        ("bulk direct", "bulk", direct),
        ("bulk haproxy", "bulk", haproxy),
    ] {
        let mut vals: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut tracer_cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                // Rotate the order so no arm always runs first or last.
                let arm = arms[(i + rep) % arms.len()];
                let a = Attached::start(arm, &rig.ns)?;
                let cpu0 = a.as_ref().map_or(0.0, Attached::cpu_s);
                let v = match kind {
                    "churn" => churn(&rig.ns, to, o.secs)?,
                    _ => bulk(&rig.ns, to, o.secs)?,
                };
                if let Some(a) = a {
                    tracer_cpu
                        .entry(arm)
                        .or_default()
                        .push((a.cpu_s() - cpu0) / o.secs * 100.0);
                    a.stop()?;
                }
                vals.entry(arm).or_default().push(v);
            }
        }
        let m = |a: &str| median(&vals[a]);
        let cpu = |a: &str| median(&tracer_cpu[a]);
        let unit = if kind == "churn" { "conn/s" } else { "MB/s" };
        let scale = if kind == "churn" { 1.0 } else { 1e-6 };
        println!(
            "{:<18} {:>10.0} {unit:<3} {:>10.0} {unit:<3} {:>10.0} {unit:<3} {:>9.3} {:>9.3}   {:>5.2}% {:>5.2}%",
            name,
            m("none") * scale,
            m("netmem") * scale,
            m("bpftrace") * scale,
            m("netmem") / m("none"),
            m("bpftrace") / m("none"),
            cpu("netmem"),
            cpu("bpftrace"),
        );
        out.insert(
            name.into(),
            json!({"unit": if kind == "churn" {"connections/s"} else {"bytes/s"},
                   "runs": vals, "median": {"none": m("none"), "netmem": m("netmem"), "bpftrace": m("bpftrace")},
                   "ratio": {"netmem": m("netmem") / m("none"), "bpftrace": m("bpftrace") / m("none")},
                   "tracer_cpu_pct": {"netmem": cpu("netmem"), "bpftrace": cpu("bpftrace")}}),
        );
    }
    out.insert(
        "kernel_cost".into(),
        kernel_cost(&rig.ns, direct, o.secs, o.reps)?,
    );
    Ok(Value::Object(out))
}

/// Exec to every probe attached, alternating: netmem (`trace --json`, its
/// probes line), bpftrace on the same six tracepoints with plain tracepoint
/// fields, and the same with one `struct sock` cast (which makes bpftrace
/// parse vmlinux BTF, as it did in this bench before 2026-11-29).
fn startup(o: &Opts) -> Result<Value> {
    let reps = (o.reps * 4).max(12);
    let arms = ["netmem", "bpftrace", "bpftrace-btf"];
    let mut ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        for i in 0..arms.len() {
            let arm = arms[(i + rep) % arms.len()];
            let a = Attached::start(arm, "")?.context("arm")?;
            ms.entry(arm)
                .or_default()
                .push(a.startup.as_secs_f64() * 1e3);
            a.stop()?;
        }
    }
    println!("\n== startup: exec to every probe attached (median of {reps} runs)");
    for (arm, v) in &ms {
        println!("{arm:<14} {:>8.0} ms", median(v));
    }
    let ratio = median(&ms["netmem"]) / median(&ms["bpftrace"]);
    println!("netmem / bpftrace: {ratio:.2}");
    Ok(json!({
        "netmem_ms": median(&ms["netmem"]),
        "bpftrace_ms": median(&ms["bpftrace"]),
        "bpftrace_btf_ms": median(&ms["bpftrace-btf"]),
        "netmem_vs_bpftrace": ratio,
        "runs": ms,
    }))
}

/// The tracers' own kernel time, which a throughput ratio can only see
/// through noise: with kernel.bpf_stats_enabled set for this phase only
/// (and restored), the direct churn runs once per tracer and the run time of
/// every program the tracer holds is read before and after.
fn kernel_cost(ns: &str, to: SocketAddr, secs: f64, reps: usize) -> Result<Value> {
    const KNOB: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(KNOB).context("read bpf_stats_enabled")?;
    std::fs::write(KNOB, "1").context("enable bpf_stats")?;
    let r = (|| -> Result<Value> {
        println!(
            "\n== kernel cost: BPF program time during direct churn ({reps} alternating runs of {secs:.1} s)"
        );
        println!(
            "{:<10} {:>12} {:>14} {:>14} {:>12}",
            "tracer", "conn/s", "prog runs/conn", "prog ns/conn", "CPU %"
        );
        // Per arm: connections, seconds, and (ns, runs) per program, summed
        // over the repetitions (this VM's run-to-run noise is about 10%).
        type Sums = (f64, f64, BTreeMap<String, (u64, u64)>);
        let arms = ["netmem", "bpftrace"];
        let mut sums: BTreeMap<&str, Sums> = BTreeMap::new();
        for rep in 0..reps {
            for i in 0..arms.len() {
                let arm = arms[(i + rep) % arms.len()];
                let a = Attached::start(arm, ns)?.context("arm")?;
                let before = a.prog_stats_by_name();
                let t0 = Instant::now();
                let rate = churn(ns, to, secs)?;
                let el = t0.elapsed().as_secs_f64();
                let after = a.prog_stats_by_name();
                a.stop()?;
                let e = sums.entry(arm).or_default();
                e.0 += rate * secs;
                e.1 += el;
                for (name, (n1, r1)) in after {
                    let (n0, r0) = before.get(&name).copied().unwrap_or_default();
                    let p = e.2.entry(name).or_default();
                    p.0 += n1 - n0;
                    p.1 += r1 - r0;
                }
            }
        }
        let mut out = serde_json::Map::new();
        for (arm, (conns, el, progs)) in &sums {
            let (dns, druns) = progs
                .values()
                .fold((0.0, 0.0), |(n, r), p| (n + p.0 as f64, r + p.1 as f64));
            let cpu = dns / (el * 1e9) * 100.0;
            let rate = conns / (secs * reps as f64);
            println!(
                "{arm:<10} {rate:>12.0} {:>14.1} {:>14.0} {cpu:>11.3}%",
                druns / conns,
                dns / conns
            );
            let mut per_prog = serde_json::Map::new();
            for (name, (n, r)) in progs.iter().filter(|(_, p)| p.1 > 0) {
                let (n, r) = (*n as f64, *r as f64);
                println!(
                    "  {name:<24} {:>8.2} runs/conn {:>8.0} ns/conn {:>6.0} ns/run",
                    r / conns,
                    n / conns,
                    n / r
                );
                per_prog.insert(
                    name.clone(),
                    json!({"runs_per_conn": r / conns,
                    "ns_per_conn": n / conns, "ns_per_run": n / r}),
                );
            }
            out.insert(arm.to_string(), json!({"conn_per_s": rate, "prog_runs_per_conn": druns / conns,
                "prog_ns_per_conn": dns / conns, "prog_ns_per_run": dns / druns.max(1.0), "cpu_pct": cpu,
                "programs": per_prog}));
        }
        Ok(Value::Object(out))
    })();
    let _ = std::fs::write(KNOB, old.trim());
    r
}

/// Runs `cmd`, returns (wall time, peak RSS in KiB of it and its children).
fn timed(cmd: &mut Command) -> Result<(Duration, u64)> {
    timed_cpu(cmd).map(|(w, kb, _)| (w, kb))
}

/// `timed`, with the child's CPU time (user + system).
fn timed_cpu(cmd: &mut Command) -> Result<(Duration, u64, Duration)> {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `child` is not waited on again.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    ensure!(r > 0, "wait4: {}", std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status})"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, ru.ru_maxrss as u64, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

struct Holders {
    ns: Netns,
    kids: Vec<Child>,
    conns: usize,
}

impl Holders {
    /// Adds idle connections until `target`, 8000 per process (two fds each
    /// under RLIMIT_NOFILE), each process on its own listening port.
    fn grow(&mut self, target: usize) -> Result<()> {
        let load = netmem_tests::load_bin();
        while self.conns < target {
            let n = (target - self.conns).min(8000);
            let port = 20000 + self.kids.len();
            let mut c = self
                .ns
                .cmd(&load)
                .args([
                    "idle",
                    "--port",
                    &port.to_string(),
                    "--conns",
                    &n.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap()).read_line(&mut line)?;
            ensure!(line.trim() == "ready", "holder on :{port} failed");
            self.kids.push(c);
            self.conns += n;
        }
        Ok(())
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for k in &mut self.kids {
            drop(k.stdin.take());
        }
        for k in &mut self.kids {
            let _ = k.wait();
        }
    }
}

fn snapshot(o: &Opts) -> Result<Value> {
    let mut h = Holders {
        ns: Netns::new("snap"),
        kids: vec![],
        conns: 0,
    };
    let ns = h.ns.name.clone();
    println!("\n== snapshot: {} alternating repetitions per size", o.reps);
    println!(
        "{:<12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "connections",
        "netmem ms",
        "ss ms",
        "ss+awk ms",
        "netmem KB",
        "ss KB",
        "ss+awk KB",
        "speedup"
    );
    let mut out = serde_json::Map::new();
    for &level in &o.levels {
        h.grow(level)?;
        type Arm<'a> = (&'a str, Box<dyn Fn() -> Command + 'a>);
        let arms: [Arm; 3] = [
            (
                "netmem",
                Box::new(|| {
                    let mut c = Command::new(netmem());
                    c.args(["snapshot", "--json", "--netns", &ns]);
                    c
                }),
            ),
            (
                "ss",
                Box::new(|| {
                    let mut c = Command::new("ss");
                    c.args(["-N", &ns, "-tmnH"]);
                    c
                }),
            ),
            (
                "ss+awk",
                Box::new(|| {
                    let mut c = Command::new("sh");
                    c.args(["-c", &format!("ss -N {ns} -tmnH | awk '{AWK_PER_PORT}'")]);
                    c
                }),
            ),
        ];
        let mut ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, mk) = &arms[(i + rep) % arms.len()];
                let (wall, kb) = timed(&mut mk())?;
                ms.entry(name).or_default().push(wall.as_secs_f64() * 1e3);
                rss.entry(name).or_default().push(kb as f64);
            }
        }
        let m = |a: &str| median(&ms[a]);
        let r = |a: &str| median(&rss[a]);
        println!(
            "{:<12} {:>12.1} {:>12.1} {:>12.1} {:>10.0} {:>10.0} {:>10.0} {:>8.2}x",
            level,
            m("netmem"),
            m("ss"),
            m("ss+awk"),
            r("netmem"),
            r("ss"),
            r("ss+awk"),
            m("ss+awk") / m("netmem")
        );
        out.insert(
            level.to_string(),
            json!({"ms": ms, "peak_rss_kb": rss,
                   "median_ms": {"netmem": m("netmem"), "ss": m("ss"), "ss+awk": m("ss+awk")},
                   "median_rss_kb": {"netmem": r("netmem"), "ss": r("ss"), "ss+awk": r("ss+awk")},
                   "speedup_vs_ss": m("ss") / m("netmem"), "speedup_vs_ss_awk": m("ss+awk") / m("netmem")}),
        );
    }
    Ok(Value::Object(out))
}

/// 8000 idle connections (16k sockets), then 64k TIME_WAIT sockets from
/// real churn beside them in the same namespace: `netmem snapshot` against
/// `ss -tmnH` (which skips TIME_WAIT), before and after, and `netmem
/// snapshot --time-wait` (which counts them per group) after. TIME_WAIT
/// lasts 60 s, so the arms after the churn run at once.
fn time_wait(o: &Opts) -> Result<Value> {
    const TW: usize = 64_000;
    let mut h = Holders {
        ns: Netns::new("tw"),
        kids: vec![],
        conns: 0,
    };
    h.grow(8000)?;
    let ns = h.ns.name.clone();
    println!(
        "\n== time_wait: 16000 established sockets, then {TW} TIME_WAIT beside them, {} repetitions",
        o.reps
    );
    let netmem_arm = |extra: &'static [&'static str]| {
        let ns = ns.clone();
        move || {
            let mut c = Command::new(netmem());
            c.args(["snapshot", "--json", "--netns", &ns]).args(extra);
            c
        }
    };
    let ss_arm = {
        let ns = ns.clone();
        move || {
            let mut c = Command::new("ss");
            c.args(["-N", &ns, "-tmnH"]);
            c
        }
    };
    let mut ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut measure = |phase: &str, arms: &[(&str, &dyn Fn() -> Command)]| -> Result<()> {
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, mk) = arms[(i + rep) % arms.len()];
                let (wall, _) = timed(&mut mk())?;
                ms.entry(format!("{phase} {name}"))
                    .or_default()
                    .push(wall.as_secs_f64() * 1e3);
            }
        }
        Ok(())
    };
    let plain = netmem_arm(&[]);
    let counted = netmem_arm(&["--time-wait"]);
    measure("before", &[("netmem", &plain), ("ss", &ss_arm)])?;
    let mut churn =
        h.ns.cmd(netmem_tests::load_bin())
            .args(["churn-tw", "--port", "21000", "--count", &TW.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
    let mut line = String::new();
    BufReader::new(churn.stdout.take().unwrap()).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "churn-tw failed");
    let tw = netmem_tests::run_ok(h.ns.cmd("ss").args(["-tanH", "state", "time-wait"]));
    let tw_now = String::from_utf8_lossy(&tw.stdout).lines().count();
    measure(
        "after",
        &[
            ("netmem", &plain),
            ("netmem --time-wait", &counted),
            ("ss", &ss_arm),
        ],
    )?;
    drop(churn.stdin.take());
    let _ = churn.wait();
    let m = |a: &str| median(&ms[a]);
    println!(
        "{:<10} {:>10} {:>10} {:>8} {:>16}",
        "ms", "netmem", "ss", "ratio", "netmem --tw"
    );
    println!(
        "{:<10} {:>10.1} {:>10.1} {:>7.2}x {:>16}",
        "before",
        m("before netmem"),
        m("before ss"),
        m("before netmem") / m("before ss"),
        "-"
    );
    println!(
        "{:<10} {:>10.1} {:>10.1} {:>7.2}x {:>16.1}",
        format!("+{tw_now} tw"),
        m("after netmem"),
        m("after ss"),
        m("after netmem") / m("after ss"),
        m("after netmem --time-wait")
    );
    println!(
        "netmem with TIME_WAIT / without: {:.2}x",
        m("after netmem") / m("before netmem")
    );
    Ok(json!({
        "established_sockets": 16000, "time_wait_sockets": tw_now, "ms": ms,
        "netmem_vs_ss": m("after netmem") / m("after ss"),
        "netmem_vs_ss_before": m("before netmem") / m("before ss"),
        "netmem_after_vs_before": m("after netmem") / m("before netmem"),
        "counted_vs_ss": m("after netmem --time-wait") / m("after ss"),
    }))
}

/// 20k sockets (10k connections) in one namespace, or spread over 20:
/// `snapshot --netns all` over the twenty against `snapshot --netns ONE`
/// over the one, each also with `--owners`. Both setups cannot coexist
/// (all would count both), so they alternate in blocks within the run:
/// one, twenty, one, twenty.
fn namespaces(o: &Opts) -> Result<Value> {
    const CONNS: usize = 10_000;
    const SPREAD: usize = 20;
    println!(
        "\n== namespaces: {} sockets in 1 vs {SPREAD} namespaces, {} repetitions per arm and block",
        2 * CONNS,
        o.reps
    );
    let mut ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut cpu_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // `snapshot --netns NETNS` as TAG, and with --owners as TAG+owners,
    // alternating, each repetition's wall and CPU time kept.
    let mut measure = |tag: &str, netns: &str| -> Result<()> {
        let owners = format!("{tag}+owners");
        let arms: [(&str, &[&str]); 2] = [(tag, &[]), (&owners, &["--owners"])];
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, extra) = arms[(i + rep) % arms.len()];
                let (wall, _, cpu) = timed_cpu(
                    Command::new(netmem())
                        .args(["snapshot", "--json", "--netns", netns])
                        .args(extra),
                )?;
                ms.entry(name.into())
                    .or_default()
                    .push(wall.as_secs_f64() * 1e3);
                cpu_ms
                    .entry(name.into())
                    .or_default()
                    .push(cpu.as_secs_f64() * 1e3);
            }
        }
        Ok(())
    };
    for _block in 0..2 {
        {
            let mut h = Holders {
                ns: Netns::new("one"),
                kids: vec![],
                conns: 0,
            };
            h.grow(CONNS)?;
            measure("one", &h.ns.name)?;
        }
        // Twenty namespaces sharing the host's socket hash, then twenty
        // with a hash of their own (created inside a parent namespace whose
        // tcp_child_ehash_entries is set; the machine's own is untouched).
        for own_hash in [false, true] {
            let parent = own_hash.then(|| Netns::new("parent"));
            if let Some(p) = &parent {
                netmem_tests::run_ok(p.cmd("sh").args([
                    "-c",
                    "echo 1024 > /proc/sys/net/ipv4/tcp_child_ehash_entries",
                ]));
            }
            let mut spread = Vec::new();
            for _ in 0..SPREAD {
                let ns = match &parent {
                    Some(p) => Netns::new_child_of(p, "many"),
                    None => Netns::new("many"),
                };
                let mut h = Holders {
                    ns,
                    kids: vec![],
                    conns: 0,
                };
                h.grow(CONNS / SPREAD)?;
                spread.push(h);
            }
            measure(if own_hash { "all-own-hash" } else { "all" }, "all")?;
            drop(spread);
        }
    }
    let m = |a: &str| median(&ms[a]);
    let c = |a: &str| median(&cpu_ms[a]);
    println!(
        "{:<6} {:>8} {:>8} {:>7} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "ms", "one", "all", "ratio", "own hash", "ratio", "one+own", "all+own", "ratio"
    );
    for (what, f) in [("wall", &m as &dyn Fn(&str) -> f64), ("cpu", &c)] {
        println!(
            "{:<6} {:>8.1} {:>8.1} {:>6.2}x {:>10.1} {:>6.2}x {:>10.1} {:>10.1} {:>6.2}x",
            what,
            f("one"),
            f("all"),
            f("all") / f("one"),
            f("all-own-hash"),
            f("all-own-hash") / f("one"),
            f("one+owners"),
            f("all+owners"),
            f("all+owners") / f("one+owners")
        );
    }
    Ok(json!({
        "sockets": 2 * CONNS, "namespaces": SPREAD, "ms": ms, "cpu_ms": cpu_ms,
        "median_cpu_ms": {"one": c("one"), "all": c("all"), "one+owners": c("one+owners"), "all+owners": c("all+owners")},
        "cpu_all_vs_one": c("all") / c("one"),
        "all_own_hash_vs_one": m("all-own-hash") / m("one"),
        "cpu_all_own_hash_vs_one": c("all-own-hash") / c("one"),
        "median_ms": {"one": m("one"), "all": m("all"), "all-own-hash": m("all-own-hash"), "one+owners": m("one+owners"), "all+owners": m("all+owners")},
        "all_vs_one": m("all") / m("one"),
        "all_vs_one_with_owners": m("all+owners") / m("one+owners"),
    }))
}

/// `netmem trace` and `netmem serve` (scraped every 5 s) each left running
/// at a 1 s interval over 100k sockets (50k idle connections) and 1000
/// backends held open (2000 more sockets, 1000+ groups): CPU over a
/// window after a warm-up, RSS at its end and the most sampled each second.
fn steady(o: &Opts) -> Result<Value> {
    let mut h = Holders {
        ns: Netns::new("steady"),
        kids: vec![],
        conns: 0,
    };
    h.grow(50_000)?;
    let ns = h.ns.name.clone();
    let _backends = h.ns.load(&[
        "backends", "--port", "18400", "--count", "1000", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let (warm, window) = if o.quick { (3.0, 10.0) } else { (5.0, 30.0) };
    // Start-up's resolved kernel facts are cached once per boot; a long
    // run is what is measured here, so the cache is filled first.
    let st = Command::new(netmem())
        .arg("probes")
        .stdout(Stdio::null())
        .status()?;
    ensure!(st.success(), "netmem probes failed");
    println!("\n== steady state: 100k sockets, 1000+ groups, 1 s interval, {window:.0} s after {warm:.0} s");
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>8}",
        "command", "CPU %", "RSS MB", "max MB", "groups"
    );
    let mut out = serde_json::Map::new();
    for cmd in ["trace", "serve"] {
        let port = netmem_tests::serve::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut c = Command::new(netmem());
        match cmd {
            "trace" => c.args(["trace", "--json", "--netns", &ns, "--interval", "1s"]),
            _ => c.args([
                "serve",
                "--netns",
                &ns,
                "--interval",
                "1s",
                "--max-groups",
                "1000",
                "--listen",
                &listen,
            ]),
        };
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let out_pipe = child.stdout.take().context("stdout")?;
        // The trace's lines: the last interval's group count is kept.
        let groups = Arc::new(AtomicU64::new(0));
        let g2 = groups.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                if line.contains("\"type\":\"group\"") {
                    g2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let pid = child.id();
        std::thread::sleep(Duration::from_secs_f64(warm));
        let cpu0 = netmem_tests::cpu_seconds(pid);
        let g0 = groups.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let mut last_groups = 0.0;
        let mut rss_max = 0.0f64;
        let mut tick = 0;
        while t0.elapsed().as_secs_f64() < window {
            std::thread::sleep(Duration::from_secs(1));
            tick += 1;
            rss_max = rss_max.max(netmem_tests::rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
            if cmd == "serve" && tick % 5 == 0 {
                let addr: SocketAddr = listen.parse()?;
                let (_, body) = fetch(addr, "/metrics")?;
                let body = String::from_utf8_lossy(&body);
                last_groups = netmem_tests::serve::sample(&body, "netmem_groups").unwrap_or(0.0);
            }
        }
        let el = t0.elapsed().as_secs_f64();
        let cpu = (netmem_tests::cpu_seconds(pid) - cpu0) / el * 100.0;
        let rss = netmem_tests::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        if cmd == "trace" {
            // Group lines per interval over the window.
            last_groups = (groups.load(Ordering::Relaxed) - g0) as f64 / el;
        }
        // SAFETY: signal to our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        let _ = child.wait();
        println!("{cmd:<8} {cpu:>8.2} {rss:>10.1} {rss_max:>10.1} {last_groups:>8.0}");
        out.insert(
            cmd.into(),
            json!({"cpu_pct": cpu, "rss_mb": rss, "max_rss_mb": rss_max, "groups": last_groups}),
        );
    }
    Ok(Value::Object(out))
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One pipeline run: the producer thread (CPU 0) makes getppid() calls, each
/// of which streams `batch` synthetic events, paced to `rate` events/s (or
/// unpaced when None); netmem's trace loop consumes on CPU 1.
/// A reader of netmem's output that falls behind, like a terminal or a
/// congested pipe: 100 ms stalls for every megabyte.
#[derive(Default)]
struct SlowPipe(usize);

impl Write for SlowPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 >= 1 << 20 {
            self.0 = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pipeline_run(
    ns: &str,
    rate: Option<f64>,
    secs: f64,
    batch: u32,
    event_limit: u64,
) -> Result<(u64, u64, u64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    pin_to_cpu(1);
    let opts = netmem::engine::Options {
        command: "netmem-bench",
        netns: netmem::sources::netns::Netns::open(Some(ns))?,
        all_netns: false,
        owners: false,
        group_by: Default::default(),
        time_wait: false,
        interval: Duration::from_secs(1),
        duration: Some(Duration::from_secs_f64(secs + 0.5)),
        filter: Default::default(),
        event_limit,
        max_tier: netmem::hooks::Tier::Fentry,
        census_budget: netmem::sources::census::Budget::EveryPass,
        proxy: netmem::sources::proxy::ProxySpec::off(),
    };
    let producer_time = Arc::new(AtomicU64::new(0));
    let pt = producer_time.clone();
    // The JSON sink over a discarding writer. With event_limit 0 every
    // event is read and counted but none formatted (what `trace` does with
    // events past its per-interval limit); with the maximum limit, every
    // event is decoded and formatted, which overloads the reader.
    let mut sink = if event_limit == 0 {
        netmem::output::sink(netmem::output::Format::Json, std::io::sink(), 0)
    } else {
        netmem::output::sink(netmem::output::Format::Json, SlowPipe::default(), 0)
    };
    let summary = rt.block_on(netmem::engine::run_with(opts, sink.as_mut(), move |p| {
        p.attach_synthetic(libc::SYS_getppid as u32, batch)?;
        std::thread::spawn(move || {
            pin_to_cpu(0);
            std::thread::sleep(Duration::from_millis(200));
            let t0 = Instant::now();
            let mut calls = 0u64;
            loop {
                let el = t0.elapsed().as_secs_f64();
                if el >= secs {
                    break;
                }
                if let Some(r) = rate {
                    if (calls * batch as u64) as f64 > r * el {
                        std::hint::spin_loop();
                        continue;
                    }
                }
                // SAFETY: getppid has no arguments and no side effects.
                unsafe { libc::syscall(libc::SYS_getppid) };
                calls += 1;
            }
            pt.store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
        });
        Ok(())
    }))?;
    let generated = summary.stats[netmem_common::Stat::SyntheticGenerated as usize];
    let lost = summary.stats[netmem_common::Stat::RingbufLost as usize];
    let el = producer_time.load(Ordering::SeqCst) as f64 / 1e9;
    Ok((
        generated,
        summary.events,
        lost,
        generated as f64 / el.max(1e-9),
    ))
}

fn pipeline(o: &Opts) -> Result<Value> {
    let netns = Netns::new("pipe");
    let ns = netns.name.as_str();
    {
        let batch = 256;
        let secs = o.secs.max(2.0);
        println!("\n== pipeline: one producer, batches of {batch} events per syscall, {secs:.1} s per rate");
        println!(
            "{:>14} {:>14} {:>12} {:>12} {:>10}  exact",
            "target ev/s", "produced ev/s", "generated", "received", "lost"
        );
        let mut runs = Vec::new();
        let mut best = 0.0f64;
        let mut exact_all = true;
        let rates: Vec<Option<f64>> = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0,
        ]
        .iter()
        .map(|m| Some(m * 1e6))
        .chain([None])
        .collect();
        let mut lossy_seen = false;
        for rate in rates {
            if lossy_seen && rate.is_some() {
                continue;
            }
            let (g, rcv, lost, produced) = pipeline_run(ns, rate, secs, batch, 0)?;
            let exact = g == rcv + lost;
            exact_all &= exact;
            println!(
                "{:>14} {:>14.0} {:>12} {:>12} {:>10}  {}",
                rate.map_or("unpaced".to_string(), |r| format!("{r:.0}")),
                produced,
                g,
                rcv,
                lost,
                if exact { "yes" } else { "NO" }
            );
            if lost == 0 && rate.is_some() {
                best = best.max(produced);
            }
            if lost > 0 {
                lossy_seen = true;
            }
            runs.push(json!({"target": rate, "produced_per_s": produced, "generated": g, "received": rcv, "lost": lost, "exact": exact}));
        }
        // Overloaded on purpose: events decoded, formatted, and written to a
        // reader that stalls.
        let (g, rcv, lost, produced) = pipeline_run(ns, None, secs, batch, 1_000_000)?;
        let exact = g == rcv + lost;
        exact_all &= exact;
        println!(
            "{:>14} {produced:>14.0} {g:>12} {rcv:>12} {lost:>10}  {}",
            "slow reader",
            if exact { "yes" } else { "NO" }
        );
        ensure!(
            lost > 0,
            "the formatting reader kept up: no overload to check the loss count with"
        );
        println!("highest lossless rate: {best:.0} events/s; loss counter exact in every run: {exact_all}");
        Ok(
            json!({"batch": batch, "secs": secs, "runs": runs, "max_lossless_per_s": best,
            "loss_count_exact": exact_all,
            "overloaded": {"produced_per_s": produced, "generated": g, "received": rcv, "lost": lost, "exact": exact}}),
        )
    }
}

/// One GET on a new connection, as a scraper does it: milliseconds from
/// connect to the last byte, and the raw response.
fn fetch(addr: SocketAddr, path: &str) -> Result<(f64, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4 << 20);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    s.read_to_end(&mut buf)?;
    Ok((t0.elapsed().as_secs_f64() * 1e3, buf))
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// `netmem serve` at 1000 groups: the latency of a scrape, cold (the first
/// after a new interval: the exposition is encoded) and overall, against
/// `GET /` on the same server and connection pattern.
fn scrape(o: &Opts) -> Result<Value> {
    use netmem_tests::serve::{sample, Serve};
    let ns = Netns::new("bench-scrape");
    // Held open until the end of the part.
    let load = ns.load(&[
        "backends", "--port", "18400", "--count", "1000", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let mut serve = Serve::start(&[
        "--netns",
        &ns.name,
        "--interval",
        "200ms",
        "--max-groups",
        "1000",
    ]);
    serve.wait_for("netmem_groups ");
    let t0 = Instant::now();
    let groups = loop {
        let g = sample(&serve.metrics(), "netmem_groups").unwrap_or(0.0);
        if g >= 1000.0 {
            break g;
        }
        ensure!(t0.elapsed() < Duration::from_secs(30), "only {g} groups");
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = if o.quick { 100 } else { 400 };
    let (mut metrics, mut index, mut encode) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for i in 0..n {
        // Alternate the arms; 250 ms apart so most scrapes follow a new
        // interval and encode it afresh.
        let (ms, body) = fetch(serve.addr, "/metrics")?;
        metrics.push(ms);
        bytes = body.len();
        let body = String::from_utf8_lossy(&body);
        ensure!(body.starts_with("HTTP/1.1 200"), "scrape {i} failed");
        if let Some(e) = sample(&body, "netmem_scrape_duration_seconds") {
            if i > 0 {
                encode.push(e * 1e3);
            }
        }
        let (ms, body) = fetch(serve.addr, "/")?;
        ensure!(body.starts_with(b"HTTP/1.1 200"));
        index.push(ms);
        std::thread::sleep(Duration::from_millis(250));
    }
    let cpu = netmem_tests::cpu_seconds(serve.child.id());
    let (st, _) = serve.stop();
    ensure!(st.success(), "netmem serve exited {st}");
    drop(load);
    let r = json!({
        "groups": groups,
        "scrapes": n,
        "exposition_bytes": bytes,
        "metrics_ms_median": median(&metrics),
        "metrics_ms_p99": percentile(&metrics, 0.99),
        "metrics_ms_max": percentile(&metrics, 1.0),
        "index_ms_median": median(&index),
        "server_encode_ms_median": median(&encode),
        "server_encode_ms_max": percentile(&encode, 1.0),
        "ratio_metrics_to_index": median(&metrics) / median(&index),
        "serve_cpu_s": cpu,
    });
    println!(
        "\nscrape at {groups} groups ({bytes} bytes): GET /metrics median {:.2} ms, p99 {:.2} ms, max {:.2} ms; GET / median {:.2} ms (ratio {:.1}); server encode median {:.2} ms, max {:.2} ms",
        median(&metrics),
        percentile(&metrics, 0.99),
        percentile(&metrics, 1.0),
        median(&index),
        median(&metrics) / median(&index),
        median(&encode),
        percentile(&encode, 1.0),
    );
    Ok(r)
}

/// `netmem report` of a 10-minute, 1 s recording, against `netmem doctor
/// --from` of the same file, the arms alternating.
fn report(o: &Opts) -> Result<Value> {
    let dir = std::env::temp_dir().join(format!("netmem-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rec = dir.join("ten-minutes.nmr");
    netmem_tests::synthetic::recording(&rec, 600, 60)?;
    let html = dir.join("report.html");
    let (mut rep, mut doc) = (Vec::new(), Vec::new());
    for i in 0..o.reps.max(3) {
        let mut arms: Vec<(&mut Vec<f64>, Vec<String>)> = vec![
            (
                &mut rep,
                vec![
                    "report".into(),
                    rec.display().to_string(),
                    "-o".into(),
                    html.display().to_string(),
                    // Each repetition writes the same page.
                    "--force".into(),
                ],
            ),
            (
                &mut doc,
                vec!["doctor".into(), "--from".into(), rec.display().to_string()],
            ),
        ];
        if i % 2 == 1 {
            arms.reverse();
        }
        for (acc, args) in arms {
            let (wall, _) = timed(Command::new(netmem()).args(&args))?;
            acc.push(wall.as_secs_f64() * 1e3);
        }
    }
    let size = std::fs::metadata(&html)?.len();
    let rec_size = std::fs::metadata(&rec)?.len();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\nreport of 600 intervals x 60 groups ({rec_size} bytes recorded): {:.0} ms median, {size} bytes of HTML; doctor --from on the same file {:.0} ms (ratio {:.2})",
        median(&rep),
        median(&doc),
        median(&rep) / median(&doc)
    );
    Ok(json!({
        "intervals": 600, "groups": 60, "recording_bytes": rec_size,
        "report_ms_median": median(&rep), "doctor_ms_median": median(&doc),
        "ratio": median(&rep) / median(&doc), "html_bytes": size,
    }))
}

/// CPU share of one core used by `netmem top` drawing 1000 groups every
/// second in a real terminal (tmux), against `netmem trace --json` to
/// /dev/null on the same load; the arms alternate.
fn top(o: &Opts) -> Result<Value> {
    let ns = Netns::new("bench-top");
    // Held open until the end of the part.
    let load = ns.load(&[
        "backends", "--port", "18800", "--count", "1000", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let secs = if o.quick { 8.0 } else { 20.0 };
    let session = format!("netmem-bench-top-{}", std::process::id());
    let (mut top_pct, mut trace_pct) = (Vec::new(), Vec::new());
    for i in 0..o.reps.clamp(2, 5) {
        for arm in if i % 2 == 0 {
            ["top", "trace"]
        } else {
            ["trace", "top"]
        } {
            let pct = if arm == "top" {
                let cmd = format!("exec {} top --netns {} --interval 1s", netmem(), ns.name);
                let st = Command::new("tmux")
                    .args([
                        "new-session",
                        "-d",
                        "-s",
                        &session,
                        "-x",
                        "160",
                        "-y",
                        "50",
                        &cmd,
                    ])
                    .status()?;
                ensure!(st.success(), "tmux failed");
                std::thread::sleep(Duration::from_secs(3));
                let pid: u32 = String::from_utf8(
                    Command::new("tmux")
                        .args(["display", "-p", "-t", &session, "#{pane_pid}"])
                        .output()?
                        .stdout,
                )?
                .trim()
                .parse()?;
                let c0 = netmem_tests::cpu_seconds(pid);
                std::thread::sleep(Duration::from_secs_f64(secs));
                let c1 = netmem_tests::cpu_seconds(pid);
                let _ = Command::new("tmux")
                    .args(["send-keys", "-t", &session, "q"])
                    .status();
                std::thread::sleep(Duration::from_secs(1));
                let _ = Command::new("tmux")
                    .args(["kill-session", "-t", &session])
                    .status();
                (c1 - c0) / secs * 100.0
            } else {
                let mut c = Command::new(netmem())
                    .args(["trace", "--json", "--interval", "1s", "--netns", &ns.name])
                    .stdout(Stdio::null())
                    .spawn()?;
                std::thread::sleep(Duration::from_secs(3));
                let c0 = netmem_tests::cpu_seconds(c.id());
                std::thread::sleep(Duration::from_secs_f64(secs));
                let c1 = netmem_tests::cpu_seconds(c.id());
                // SAFETY: signalling our own child.
                unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
                c.wait()?;
                (c1 - c0) / secs * 100.0
            };
            if arm == "top" {
                top_pct.push(pct)
            } else {
                trace_pct.push(pct)
            }
        }
    }
    drop(load);
    println!(
        "\ntop at 1 s with 1000 groups: {:.2}% of one CPU (median of {}); trace --json on the same load {:.2}% (ratio {:.2})",
        median(&top_pct),
        top_pct.len(),
        median(&trace_pct),
        median(&top_pct) / median(&trace_pct)
    );
    Ok(
        json!({"groups": 1000, "top_cpu_pct": median(&top_pct), "trace_cpu_pct": median(&trace_pct), "runs": top_pct}),
    )
}
