//! `cargo xtask soak`: `netmem trace` under connection churn across
//! thousands of listening ports and ever new backends, for minutes. Every
//! 10 s it prints netmem's RSS (at rest and at its peak within an interval)
//! and CPU, and checks that a backend never seen before is counted. It
//! fails when the resting RSS grows by more than 10% after the warm-up, or
//! when a new group is not counted (the trace went blind).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use netmem_tests::rig::spawn_in_netns;
use netmem_tests::{netmem_bin, Netns};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "netmem-soak")]
struct Cli {
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Listening ports the churn spreads over.
    #[arg(long, default_value_t = 2000)]
    ports: u16,
    /// Backends (distinct 127.x.y.z addresses) the churn cycles through.
    #[arg(long, default_value_t = 20000)]
    backends: u32,
}

/// Group names seen with an established count, as the trace reports them.
type Seen = Arc<Mutex<HashSet<String>>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("netmem-soak: {e:#}");
        std::process::exit(1);
    }
}

fn proc_figures(pid: u32) -> Result<(u64, f64)> {
    let rss = netmem_tests::rss_kib(pid).context("netmem is gone (no VmRSS)")?;
    Ok((rss, netmem_tests::cpu_seconds(pid)))
}

/// netmem's RSS at rest and at its peak over a little more than one 1 s
/// interval, sampled every 50 ms. Each interval's report briefly holds a
/// few MB (every group's row, its JSON line) and hands it back after: a
/// single sample lands on that peak now and then. A leak raises the
/// resting figure, so that is the one checked.
fn rss_over_interval(pid: u32) -> Result<(u64, u64)> {
    let (mut rest, mut peak) = (u64::MAX, 0);
    for _ in 0..24 {
        let (rss, _) = proc_figures(pid)?;
        rest = rest.min(rss);
        peak = peak.max(rss);
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((rest, peak))
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "run as root (loads eBPF, creates namespaces)"
    );
    let ns = Netns::new("soak");
    let first_port = 30000u16;
    let stop = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(AtomicU64::new(0));

    // The load: listeners on every port, and a churn of connections to
    // rotating ports and rotating backend addresses.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let load = {
        let (stop, conns, ports, backends) = (stop.clone(), conns.clone(), cli.ports, cli.backends);
        spawn_in_netns(&ns.name, move || {
            let listeners: Vec<TcpListener> = (0..ports)
                .map(|i| {
                    let l = TcpListener::bind(("0.0.0.0", first_port + i))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .collect::<Result<_>>()?;
            ready_tx.send(()).ok();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let port = first_port + (n % ports as u32) as u16;
                let ip = Ipv4Addr::from(0x7f01_0000 + (n % backends));
                if let Ok(c) = TcpStream::connect((ip, port)) {
                    // Accept and close from the server side first, so
                    // TIME_WAIT lands there and client ports stay free.
                    let l = &listeners[(port - first_port) as usize];
                    if let Ok((s, _)) = l.accept() {
                        drop(s);
                    }
                    drop(c);
                    conns.fetch_add(1, Ordering::Relaxed);
                }
                n = n.wrapping_add(1);
                if n.is_multiple_of(200) {
                    // About 2000 connections a second: churn, not a flood.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok(())
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .context("the load did not start")?;

    let mut trace = Command::new(netmem_bin())
        .args(["trace", "--json", "--interval", "1s", "--event-limit", "0"])
        .args(["--netns", &ns.name])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start netmem")?;
    let pid = trace.id();
    let seen: Seen = Arc::default();
    // The probes line says every hook is live: the clock starts then.
    let mut out = BufReader::new(trace.stdout.take().unwrap());
    let head = netmem_tests::until_probes(&mut out);
    ensure!(
        head.contains("\"probes\""),
        "netmem never went live: {head}"
    );
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || -> Option<Value> {
            let mut last = None;
            for line in out.lines().map_while(|l| l.ok()) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["type"] == "group" && v["established"].as_u64().unwrap_or(0) > 0 {
                    if let Some(g) = v["group"].as_str() {
                        seen.lock().unwrap().insert(g.to_string());
                    }
                }
                if v["type"] == "summary" {
                    last = Some(v);
                }
            }
            last
        })
    };

    let total = Duration::from_secs_f64(cli.minutes * 60.0);
    let warmup = (total / 4).min(Duration::from_secs(60));
    let t0 = Instant::now();
    let (_, cpu0) = proc_figures(pid)?;
    let mut baseline: Option<u64> = None;
    let mut peak = 0u64;
    let mut probe = 0u32;
    let mut failures = Vec::new();
    println!(
        "{:>6} {:>10} {:>10} {:>8} {:>12} {:>8}",
        "t", "rss KiB", "peak KiB", "cpu %", "connections", "probe"
    );
    while t0.elapsed() < total {
        let tick = Instant::now();
        // A backend nobody used before: it must show up, counted.
        probe += 1;
        let ip = Ipv4Addr::from(0x7ffe_0000 + probe);
        let port = first_port;
        let name = format!("backend:{ip}:{port}");
        netmem_tests::scenarios::in_netns(&ns.name, || {
            let c = TcpStream::connect((ip, port))?;
            std::thread::sleep(Duration::from_millis(50));
            drop(c);
            Ok(())
        })?;
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut counted = false;
        while Instant::now() < deadline {
            if seen.lock().unwrap().contains(&name) {
                counted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !counted {
            failures.push(format!("{name} was not counted within 4 s"));
        }
        std::thread::sleep(Duration::from_millis(8800).saturating_sub(tick.elapsed()));
        let (rss, top) = rss_over_interval(pid)?;
        let (_, cpu) = proc_figures(pid)?;
        let el = t0.elapsed().as_secs_f64();
        let cpu_pct = (cpu - cpu0) / el * 100.0;
        println!(
            "{:>5.0}s {:>10} {:>10} {:>8.2} {:>12} {:>8}",
            el,
            rss,
            top,
            cpu_pct,
            conns.load(Ordering::Relaxed),
            if counted { "counted" } else { "MISSED" }
        );
        if t0.elapsed() >= warmup {
            let b = *baseline.get_or_insert(rss);
            peak = peak.max(top);
            if rss > b + b / 10 {
                failures.push(format!(
                    "resting RSS grew from {b} KiB to {rss} KiB after warm-up"
                ));
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    // SAFETY: kill has no memory preconditions; the pid is our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let st = trace.wait()?;
    let summary = reader.join().ok().flatten();
    load.join().ok();
    ensure!(st.success(), "netmem trace exited with {st}");
    let summary = summary.context("no summary from netmem")?;
    println!(
        "summary: {} connections churned; netmem resting RSS after warm-up {} KiB, peak {} KiB; lost events {}, group_map_full {}",
        conns.load(Ordering::Relaxed),
        baseline.unwrap_or(0),
        peak,
        summary["lost_events"],
        summary["group_map_full"]
    );
    if summary["group_map_full"].as_u64().unwrap_or(0) > 0 {
        failures.push(format!("group map full: {}", summary["group_map_full"]));
    }
    failures.dedup();
    if !failures.is_empty() {
        bail!("soak failed:\n  {}", failures.join("\n  "));
    }
    println!("soak passed");
    Ok(())
}
