//! overhead: loopback churn and bulk throughput, direct and through HAProxy,
//! with nothing attached, `netmem trace`, or the bpftrace peer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use netmem_tests::rig::{request, spawn_in_netns, Rig, RigConfig};
use netmem_tests::scenarios::in_netns;
use serde_json::{json, Value};

use crate::attached::Attached;
use crate::common::{median, pair_ratios, spread};
use crate::kernel_cost::kernel_cost;
use crate::Opts;

/// Connections completed per second: connect, a ~70-byte request, a
/// 100-byte body, close; two client threads.
pub(crate) fn churn(ns: &str, to: SocketAddr, secs: f64) -> Result<f64> {
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
pub(crate) fn bulk(ns: &str, to: SocketAddr, secs: f64) -> Result<f64> {
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
pub(crate) fn bench_rig() -> RigConfig {
    RigConfig {
        name: "netmem-bench".into(),
        normal: 0,
        slow: 0,
        vanishing: 0,
        ..Default::default()
    }
}

pub(crate) fn overhead(o: &Opts) -> Result<Value> {
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
        // Repeated past `reps` (up to three times as many) while the
        // per-repetition ratios disagree too much for `--check` to judge.
        let noisy = |vals: &BTreeMap<&str, Vec<f64>>| {
            spread(&pair_ratios(&vals["netmem"], &vals["none"])) > crate::check::MAX_SPREAD
        };
        let mut rep = 0;
        while rep < o.reps || (rep < 3 * o.reps && noisy(&vals)) {
            rep += 1;
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
        let sp = |a: &str| spread(&pair_ratios(&vals[a], &vals["none"]));
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
                   "ratio_spread": {"netmem": sp("netmem"), "bpftrace": sp("bpftrace")}, "reps": rep,
                   "tracer_cpu_pct": {"netmem": cpu("netmem"), "bpftrace": cpu("bpftrace")}}),
        );
    }
    out.insert(
        "kernel_cost".into(),
        kernel_cost(&rig.ns, direct, o.secs, o.reps)?,
    );
    Ok(Value::Object(out))
}
