//! `cargo xtask rig`: starts the HAProxy rig (see `netmem_tests::rig`) and
//! keeps it up until Ctrl-C or --duration, printing what the clients did
//! every few seconds. With --trace, runs `netmem trace` against it in the
//! foreground instead (extra arguments go to netmem).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use netmem_tests::rig::{Rig, RigConfig};

/// The HAProxy rig: HAProxy and its backends in one namespace, clients in
/// another, up until Ctrl-C or --duration.
#[derive(Parser)]
#[command(name = "netmem-rig")]
struct Cli {
    /// Namespace of HAProxy and the backends (clients: NAME-c).
    #[arg(long, default_value = "netmem-rig")]
    name: String,
    #[arg(long, default_value_t = 8080)]
    frontend_port: u16,
    /// Backends on 9001, 9002, ...
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=999))]
    backends: u16,
    /// Clients that fetch a body and read it.
    #[arg(long, default_value_t = 2)]
    normal: usize,
    /// Clients that ask for a huge body and never read.
    #[arg(long, default_value_t = 8)]
    slow: usize,
    /// Clients that read 64 KiB, hold, and close with data unread.
    #[arg(long, default_value_t = 2)]
    vanishing: usize,
    /// Body size of the normal clients, bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    normal_body: u64,
    /// HAProxy's `timeout client`, seconds.
    #[arg(long, default_value_t = 30)]
    client_timeout: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Set this sysctl in HAProxy's namespace first, e.g.
    /// net.ipv4.tcp_wmem="4096 16384 1048576" (repeatable; per-namespace
    /// sysctls only, the machine's own are never touched).
    #[arg(long = "sysctl", value_name = "KEY=VALUE", value_parser = parse_sysctl)]
    sysctls: Vec<(String, String)>,
    /// Record the run with `netmem record -o FILE` (1 s interval; replaces
    /// FILE), stopped when the rig stops.
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// Run `netmem trace --netns NAME` in the foreground, with these arguments.
    #[arg(long, num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
    trace: Option<Vec<String>>,
}

fn parse_sysctl(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

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
    let cli = Cli::parse();
    let cfg = RigConfig {
        name: cli.name,
        frontend_port: cli.frontend_port,
        backend_ports: (1..=cli.backends).map(|i| 9000 + i).collect(),
        normal: cli.normal,
        slow: cli.slow,
        vanishing: cli.vanishing,
        normal_body: cli.normal_body,
        client_timeout: Duration::from_secs(cli.client_timeout),
        sysctls: cli.sysctls,
        ..RigConfig::default()
    };
    let duration = cli.duration.map(Duration::from_secs);
    let trace = cli.trace;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut rig = Rig::start(cfg.clone())?;
    let netmem = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("netmem");
    // Started before the clients, so the recording sees the load build up.
    let recorder = match &cli.record {
        Some(f) => {
            use std::os::unix::process::CommandExt;
            let c = std::process::Command::new(&netmem)
                .args([
                    "record",
                    "--force",
                    "--interval",
                    "1s",
                    "--netns",
                    &rig.ns,
                    "-o",
                ])
                .arg(f)
                // Its own process group: a Ctrl-C at the terminal reaches
                // the rig, which then stops the recorder exactly once.
                .process_group(0)
                .spawn()
                .context("cannot start netmem record")?;
            println!(
                "recording to {} with {} record",
                f.display(),
                netmem.display()
            );
            // Its probes attach before the first client connects.
            std::thread::sleep(Duration::from_secs(2));
            Some(c)
        }
        None => None,
    };
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
        println!(
            "watching with: {} trace --netns {} {}",
            netmem.display(),
            rig.ns,
            extra.join(" ")
        );
        // netmem gets the terminal's Ctrl-C itself; the rig comes down after
        // it. --duration ends it the same way (SIGINT: its last interval
        // and summary), whether or not netmem was given a duration of its own.
        let mut child = std::process::Command::new(netmem)
            .args(["trace", "--netns", &rig.ns])
            .args(&extra)
            .spawn()
            .context("cannot run netmem")?;
        let t0 = Instant::now();
        let mut stopped_at: Option<Instant> = None;
        let st = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            // A Ctrl-C at the terminal reached netmem too: give it a second
            // to stop on its own, since a second SIGINT makes it exit at once.
            // A SIGTERM sent to the rig alone is passed on after that second.
            if STOP.load(Ordering::SeqCst) && stopped_at.is_none() {
                stopped_at = Some(Instant::now());
            }
            let stop_due = stopped_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(1));
            if duration.is_some_and(|d| t0.elapsed() >= d) || stop_due {
                // SAFETY: signalling our own child, which has not been reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        stop_recorder(recorder)?;
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
    stop_recorder(recorder)?;
    println!("tearing the rig down");
    Ok(())
}

/// SIGINT, as Ctrl-C would: the recording gets its last interval and its
/// summary.
fn stop_recorder(r: Option<std::process::Child>) -> Result<()> {
    let Some(mut c) = r else {
        return Ok(());
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let st = c.wait()?;
    if !st.success() {
        bail!("netmem record exited with {st}");
    }
    Ok(())
}
