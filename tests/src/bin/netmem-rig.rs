//! `cargo xtask rig`: starts the HAProxy rig (see `netmem_tests::rig`) and
//! keeps it up until Ctrl-C or --duration, printing what the clients did
//! every few seconds. With --trace, runs `netmem trace` against it in the
//! foreground instead (extra arguments go to netmem).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netmem_tests::rig::{Rig, RigConfig};

const USAGE: &str = "usage: netmem-rig [--name NS] [--frontend-port P] [--backends N] [--normal N] [--slow N] [--vanishing N]
                  [--normal-body BYTES] [--client-timeout SECS] [--duration SECS] [--trace [NETMEM ARGS...]]";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    if let Err(e) = run() {
        eprintln!("netmem-rig: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut cfg = RigConfig::default();
    let mut duration = None;
    let mut trace: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--trace" {
            trace = Some(args.by_ref().collect());
            break;
        }
        if a == "-h" || a == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let v = args
            .next()
            .with_context(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<u64> {
            v.parse()
                .with_context(|| format!("{a}: `{v}` is not a number"))
        };
        match a.as_str() {
            "--name" => cfg.name = v,
            "--frontend-port" => cfg.frontend_port = num(&v)? as u16,
            "--backends" => cfg.backend_ports = (1..=num(&v)?).map(|i| 9000 + i as u16).collect(),
            "--normal" => cfg.normal = num(&v)? as usize,
            "--slow" => cfg.slow = num(&v)? as usize,
            "--vanishing" => cfg.vanishing = num(&v)? as usize,
            "--normal-body" => cfg.normal_body = num(&v)?,
            "--client-timeout" => cfg.client_timeout = Duration::from_secs(num(&v)?),
            "--duration" => duration = Some(Duration::from_secs(num(&v)?)),
            _ => bail!("unknown option {a}\n{USAGE}"),
        }
    }
    if cfg.backend_ports.is_empty() {
        bail!("--backends must be at least 1");
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut rig = Rig::start(cfg.clone())?;
    rig.start_clients()?;
    let backends: Vec<String> = rig.backends.iter().map(|b| b.to_string()).collect();
    println!(
        "rig up: haproxy (pid {}) in netns {} on :{}, backends {}; clients in netns {} ({} normal, {} slow, {} vanishing); config {}",
        rig.haproxy_pid().unwrap_or(0),
        rig.ns,
        cfg.frontend_port,
        backends.join(" "),
        rig.client_ns,
        cfg.normal,
        cfg.slow,
        cfg.vanishing,
        rig.dir.join("haproxy.cfg").display()
    );
    if let Some(extra) = trace {
        let netmem = std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("netmem");
        println!(
            "watching with: {} trace --netns {} {}",
            netmem.display(),
            rig.ns,
            extra.join(" ")
        );
        // netmem gets the terminal's Ctrl-C itself; the rig comes down after it.
        let st = std::process::Command::new(netmem)
            .args(["trace", "--netns", &rig.ns])
            .args(&extra)
            .status()
            .context("cannot run netmem")?;
        drop(rig);
        if !st.success() {
            bail!("netmem trace exited with {st}");
        }
        return Ok(());
    }
    println!(
        "watch it with: sudo netmem trace --netns {}   (Ctrl-C here tears the rig down)",
        rig.ns
    );
    let t0 = Instant::now();
    let mut last = Instant::now();
    while !STOP.load(Ordering::SeqCst) && duration.is_none_or(|d| t0.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            let s = &rig.stats;
            println!(
                "{:>5.0}s  responses {}  vanished {}  bytes read {}  errors {}",
                t0.elapsed().as_secs_f64(),
                s.responses.load(Ordering::Relaxed),
                s.vanished.load(Ordering::Relaxed),
                s.bytes.load(Ordering::Relaxed),
                s.errors.load(Ordering::Relaxed)
            );
        }
    }
    println!("tearing the rig down");
    Ok(())
}
