//! recorder: `netmem serve` at 1000 groups with and without
//! `--flight-recorder`, the arms alternating: CPU and RSS.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread};
use crate::Opts;

/// The cost of the flight recorder: each arm runs `netmem serve --interval
/// 1s` over 1000 backends held open (1000+ groups) for a window after a
/// warm-up, one with `--flight-recorder DIR`, alternating. The recorder
/// compresses each interval's lines into its ring (which grows through
/// the window: the RSS at the end is after the ring's first minute or so,
/// the ring cap bounds the rest).
pub(crate) fn recorder(o: &Opts) -> Result<Value> {
    let ns = Netns::new("bench-recorder");
    let _load = ns.load(&[
        "backends", "--port", "18400", "--count", "1000", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let (warm, window) = if o.quick { (4.0, 12.0) } else { (5.0, 30.0) };
    let reps = if o.quick { 2 } else { o.reps.min(3) };
    let dir = std::env::temp_dir().join(format!("netmem-bench-recorder-{}", std::process::id()));
    println!("\n== flight recorder: serve at 1000+ groups, 1 s interval, {window:.0} s after {warm:.0} s, {reps} runs per arm");
    println!(
        "{:<10} {:>8} {:>10} {:>10}",
        "arm", "CPU %", "RSS MB", "max MB"
    );
    let mut cpu: [Vec<f64>; 2] = [vec![], vec![]];
    let mut rss: [Vec<f64>; 2] = [vec![], vec![]];
    for _ in 0..reps {
        for (arm, with) in [false, true].into_iter().enumerate() {
            let _ = std::fs::remove_dir_all(&dir);
            let port = netmem_tests::serve::free_port();
            let mut c = Command::new(netmem());
            c.args([
                "serve",
                "--netns",
                &ns.name,
                "--interval",
                "1s",
                "--max-groups",
                "1000",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ]);
            if with {
                c.arg("--flight-recorder").arg(&dir);
            }
            let mut child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
            let pid = child.id();
            std::thread::sleep(Duration::from_secs_f64(warm));
            let cpu0 = netmem_tests::cpu_seconds(pid);
            let t0 = Instant::now();
            let mut max = 0.0f64;
            while t0.elapsed().as_secs_f64() < window {
                std::thread::sleep(Duration::from_secs(1));
                max = max.max(netmem_tests::rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
            }
            let c = (netmem_tests::cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
            let r = netmem_tests::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
            // SAFETY: signal to our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let st = child.wait()?;
            ensure!(st.success(), "netmem serve exited {st}");
            let name = if with { "recorder" } else { "plain" };
            println!("{name:<10} {c:>8.2} {r:>10.1} {max:>10.1}");
            cpu[arm].push(c);
            rss[arm].push(max);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ratio = median(&cpu[1]) / median(&cpu[0]).max(1e-9);
    let extra = median(&rss[1]) - median(&rss[0]);
    println!(
        "recorder / plain: CPU {ratio:.2}x (goal 1.2x at most), max RSS {extra:+.1} MB (the ring's cap is 32 MB)"
    );
    Ok(json!({
        "plain_cpu_pct": median(&cpu[0]),
        "recorder_cpu_pct": median(&cpu[1]),
        "cpu_ratio": ratio,
        "cpu_ratio_spread": spread(&pair_ratios(&cpu[1], &cpu[0])),
        "rss_ratio": median(&rss[1]) / median(&rss[0]),
        "plain_max_rss_mb": median(&rss[0]),
        "recorder_max_rss_mb": median(&rss[1]),
        "extra_rss_mb": extra,
    }))
}
