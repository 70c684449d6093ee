//! startup: exec to every probe attached, netmem against bpftrace.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::attached::Attached;
use crate::common::median;
use crate::Opts;

/// Exec to every probe attached, alternating: netmem (`trace --json`, its
/// probes line), bpftrace on the same six tracepoints with plain tracepoint
/// fields, and the same with one `struct sock` cast (which makes bpftrace
/// parse vmlinux BTF, as it did in this bench before 2026-11-29).
pub(crate) fn startup(o: &Opts) -> Result<Value> {
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
