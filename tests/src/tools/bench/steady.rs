//! steady: `trace` and `serve` left running at 100k sockets and 1000+
//! groups: CPU and RSS.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{fetch, netmem, Holders};
use crate::Opts;

/// `netmem trace` and `netmem serve` (scraped every 5 s) each left running
/// at a 1 s interval over 100k sockets (50k idle connections) and 1000
/// backends held open (2000 more sockets, 1000+ groups): CPU over a
/// window after a warm-up, RSS at its end and the most sampled each second.
pub(crate) fn steady(o: &Opts) -> Result<Value> {
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
        "{:<10} {:>8} {:>10} {:>10} {:>8}",
        "command", "CPU %", "RSS MB", "max MB", "groups"
    );
    let mut out = serde_json::Map::new();
    for cmd in ["trace", "serve"] {
        let port = netmem_tests::serve::free_port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
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
                &listen.to_string(),
            ]),
        };
        let listen = (cmd == "serve").then_some(listen);
        out.insert(cmd.into(), measure(cmd, c, listen, warm, window)?);
    }
    drop(_backends);
    drop(h);
    out.insert("serve_all".into(), everything_on(warm, window)?);
    Ok(Value::Object(out))
}

/// Namespaces of the everything-on arm, and the backends held in each.
const SPREAD: usize = 50;

/// `serve --netns all --owners --flight-recorder DIR` over 100k sockets
/// (1000 idle connections in each of 50 namespaces) and 1000 backends held
/// open (20 in each namespace, on ports of its own: 1000+ groups).
fn everything_on(warm: f64, window: f64) -> Result<Value> {
    println!("(building {SPREAD} namespaces: 100k sockets, 1000 backends)");
    let mut spaces = Vec::new();
    let mut held = Vec::new();
    for i in 0..SPREAD {
        let mut h = Holders {
            ns: Netns::new("all"),
            kids: vec![],
            conns: 0,
        };
        h.grow(100_000 / 2 / SPREAD)?;
        let port = (18400 + i * 20).to_string();
        held.push(h.ns.load(&[
            "backends", "--port", &port, "--count", "20", "--waves", "1", "--hold", "--gap-ms", "0",
        ]));
        spaces.push(h);
    }
    let dir = std::env::temp_dir().join(format!("netmem-bench-steady-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = netmem_tests::serve::free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut c = Command::new(netmem());
    c.args([
        "serve",
        "--netns",
        "all",
        "--owners",
        "--interval",
        "1s",
        "--max-groups",
        "1000",
        "--listen",
        &listen.to_string(),
    ])
    .arg("--flight-recorder")
    .arg(&dir);
    let r = measure("serve-all", c, Some(listen), warm, window);
    let _ = std::fs::remove_dir_all(&dir);
    drop(held);
    drop(spaces);
    r
}

/// Runs `c` for `warm` seconds, then measures its CPU over `window`
/// seconds and its RSS each second; a `serve` (`listen`) is scraped every
/// 5 s as Prometheus would, a `trace`'s group lines are counted.
fn measure(
    name: &str,
    mut c: Command,
    listen: Option<SocketAddr>,
    warm: f64,
    window: f64,
) -> Result<Value> {
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
        if let Some(addr) = listen.filter(|_| tick % 5 == 0) {
            let (_, body) = fetch(addr, "/metrics")?;
            let body = String::from_utf8_lossy(&body);
            last_groups = netmem_tests::serve::sample(&body, "netmem_groups").unwrap_or(0.0);
        }
    }
    let el = t0.elapsed().as_secs_f64();
    let cpu = (netmem_tests::cpu_seconds(pid) - cpu0) / el * 100.0;
    let rss = netmem_tests::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    let rss_max = rss_max.max(rss);
    if listen.is_none() {
        // Group lines per interval over the window.
        last_groups = (groups.load(Ordering::Relaxed) - g0) as f64 / el;
    }
    // SAFETY: signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let _ = child.wait();
    println!("{name:<10} {cpu:>8.2} {rss:>10.1} {rss_max:>10.1} {last_groups:>8.0}");
    Ok(json!({"cpu_pct": cpu, "rss_mb": rss, "max_rss_mb": rss_max, "groups": last_groups}))
}
