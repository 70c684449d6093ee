//! top: CPU of `netmem top` in a terminal against `netmem trace --json`.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread};
use crate::Opts;

/// CPU share of one core used by `netmem top` drawing 1000 groups every
/// second in a real terminal (tmux), against `netmem trace --json` to
/// /dev/null on the same load; the arms alternate.
pub(crate) fn top(o: &Opts) -> Result<Value> {
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
        json!({"groups": 1000, "top_cpu_pct": median(&top_pct), "trace_cpu_pct": median(&trace_pct), "runs": top_pct,
            "top_vs_trace": median(&top_pct) / median(&trace_pct),
            "top_vs_trace_spread": spread(&pair_ratios(&top_pct, &trace_pct))}),
    )
}
