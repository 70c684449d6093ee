//! kernel-cost: BPF time per connection of the direct churn (bpf_stats).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::attached::Attached;
use crate::overhead::churn;

/// The tracers' own kernel time, which a throughput ratio can only see
/// through noise: with kernel.bpf_stats_enabled set for this phase only
/// (and restored), the direct churn runs once per tracer and the run time of
/// every program the tracer holds is read before and after.
pub(crate) fn kernel_cost(ns: &str, to: SocketAddr, secs: f64, reps: usize) -> Result<Value> {
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
        // The judged figure: netmem's BPF time per connection over the
        // bpftrace peer's on the same churn, in the same run.
        let per_conn = |arm: &str| out.get(arm).and_then(|v| v["prog_ns_per_conn"].as_f64());
        if let (Some(n), Some(b)) = (per_conn("netmem"), per_conn("bpftrace")) {
            println!("netmem / bpftrace BPF time per connection: {:.2}", n / b);
            out.insert("netmem_vs_bpftrace".into(), json!(n / b));
        }
        Ok(Value::Object(out))
    })();
    let _ = std::fs::write(KNOB, old.trim());
    r
}
