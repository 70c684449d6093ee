//! startup: exec to every probe attached, netmem against bpftrace.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::attached::Attached;
use crate::common::{median, pair_ratios, spread};
use crate::Opts;

/// Exec to the ready line read by this process from the tracer's stdout
/// (a pipe), which is what an operator waits for, with the same harness
/// for every arm, alternating:
/// - netmem: `trace --json`, its probes line, with the kernel-facts cache
///   warm (a directory of the bench's own, filled by a first start);
/// - netmem-cold: the same with the cache off (`NETMEM_CACHE_DIR=off`):
///   what the first start after a boot or a new binary costs;
/// - bpftrace on the same six tracepoints with per-port count maps and
///   plain tracepoint fields (its `BEGIN` line);
/// - bpftrace-btf: the same with one `struct sock` cast, which makes
///   bpftrace parse vmlinux BTF (extra information).
pub(crate) fn startup(o: &Opts) -> Result<Value> {
    let reps = (o.reps * 4).max(12);
    let cache = std::env::temp_dir().join(format!("netmem-bench-facts-{}", std::process::id()));
    std::fs::create_dir_all(&cache)?;
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let warm = [("NETMEM_CACHE_DIR", cache.as_os_str())];
    let cold = [("NETMEM_CACHE_DIR", OsStr::new("off"))];
    // The first start fills the bench's cache.
    Attached::start_env("netmem", "", &warm)?
        .context("netmem")?
        .stop()?;
    let arms = ["netmem", "bpftrace", "netmem-cold", "bpftrace-btf"];
    let mut ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        for i in 0..arms.len() {
            let arm = arms[(i + rep) % arms.len()];
            let a = match arm {
                "netmem" => Attached::start_env("netmem", "", &warm)?,
                "netmem-cold" => Attached::start_env("netmem", "", &cold)?,
                _ => Attached::start(arm, "")?,
            }
            .context("arm")?;
            ms.entry(arm)
                .or_default()
                .push(a.startup.as_secs_f64() * 1e3);
            a.stop()?;
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
    println!("\n== startup: exec to the ready line read by the bench (median of {reps} runs, alternating)");
    for (arm, v) in &ms {
        println!(
            "{arm:<14} {:>8.0} ms  (min {:.0}, max {:.0})",
            median(v),
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max)
        );
    }
    let m = |a: &str| median(&ms[a]);
    let ratio = m("netmem") / m("bpftrace");
    let cold_ratio = m("netmem-cold") / m("bpftrace");
    println!("netmem / bpftrace: {ratio:.2} warm, {cold_ratio:.2} cold (goals: < 100 ms, < 0.5x)");
    Ok(json!({
        "netmem_ms": m("netmem"),
        "netmem_cold_ms": m("netmem-cold"),
        "bpftrace_ms": m("bpftrace"),
        "bpftrace_btf_ms": m("bpftrace-btf"),
        "netmem_vs_bpftrace": ratio,
        "netmem_vs_bpftrace_spread": spread(&pair_ratios(&ms["netmem"], &ms["bpftrace"])),
        "netmem_cold_vs_bpftrace": cold_ratio,
        "netmem_cold_vs_bpftrace_spread": spread(&pair_ratios(&ms["netmem-cold"], &ms["bpftrace"])),
        "runs": ms,
    }))
}
