//! The no-BTF scenario the QEMU guests run with /sys/kernel/btf hidden
//! (`cargo xtask vm-test --tiers nobtf`): every mission hook on its polling
//! tier, a group's queued memory seen, and aborts for too many orphans
//! counted from nstat with their cause inferred (and said to be). It sets
//! tcp_max_orphans, a global sysctl, so it runs in guests only; the host's
//! `tests/tests/no_btf.rs` checks the same degrade without touching one.

use std::thread::sleep;
use std::time::Duration;

use anyhow::{ensure, Result};
use netmem::hooks::catalog::mission_hooks;
use serde_json::Value;

use crate::scenarios::{events, stuck, tier_of, Sysctl, Trace};

/// The guest's scenario signature; `tier_args` and the tier are unused:
/// without BTF the best tier there is, is polling.
pub fn guest(netmem: &str, _tier_args: &[&str], _tier: &str) -> Result<String> {
    const PORT: u16 = 7005;
    let _max = Sysctl::set("net/ipv4/tcp_max_orphans", "0")?;
    let trace = Trace::start(netmem, &[])?;
    let (_l, mut s) = stuck(PORT, 8, 256 * 1024)?;
    sleep(Duration::from_millis(900));
    let before = trace.lines();
    // Closing servers with unsent data over tcp_max_orphans 0: the kernel
    // aborts them, counts TCPAbortOnMemory and logs "too many orphaned
    // sockets".
    drop(std::mem::take(&mut s.servers));
    sleep(Duration::from_millis(1200));
    drop(s.clients);
    let lines = trace.stop()?;
    for h in mission_hooks() {
        let t = tier_of(&lines, h.id);
        ensure!(
            t.as_deref() == Some("polling"),
            "{} on {t:?} without BTF",
            h.name
        );
    }
    let group = format!("listen:{PORT}");
    let queued = before
        .iter()
        .filter(|v| v["type"] == "group" && v["group"] == group.as_str())
        .filter_map(|v| v["wmem_queued_bytes"].as_u64())
        .max()
        .unwrap_or(0);
    ensure!(queued > 1 << 20, "{group} queued only {queued} bytes");
    let aborts: Vec<&Value> = events(&lines, "abort_on_memory");
    ensure!(!aborts.is_empty(), "no abort_on_memory polled");
    for e in &aborts {
        ensure!(
            e["via"].as_str().is_some_and(|v| v.starts_with("nstat")),
            "not from nstat: {e}"
        );
        ensure!(e["cause"] == "orphans", "cause not orphans: {e}");
        ensure!(e["cause_inferred"] == true, "cause not said inferred: {e}");
    }
    Ok(format!(
        "all mission hooks polled; {group} queued {queued} bytes; {} aborts from nstat, cause orphans (inferred, kernel_log {})",
        aborts.len(),
        aborts[0]["kernel_log"]
    ))
}
