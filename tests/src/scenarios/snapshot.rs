//! `netmem snapshot` in a guest: one sock_diag pass over sockets the
//! scenario made, checked against what the kernel tells the sockets' owner
//! (SIOCOUTQ). It needs no hook, so it runs once per guest, before the
//! tiers: on arm64 it is the first proof that the cross-built binary reads
//! that kernel's sockets right.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

use super::stuck;

/// The scenario signature of the guest; a snapshot has no tier.
pub fn snapshot(netmem: &str, _tier_args: &[&str], _tier: &str) -> Result<String> {
    const PORT: u16 = 7006;
    let (_l, mut s) = stuck(PORT, 8, 256 * 1024)?;
    let listen = format!("listen:{PORT}");
    let backend = format!("backend:127.0.0.1:{PORT}");
    let snap = run(netmem)?;
    // Nothing more is written, so the unsent bytes only shrink: the
    // snapshot's queued bytes (skb truesize) cover what is left after it.
    let outq: u64 = s.servers.iter().map(unsent).sum::<Result<u64>>()?;
    let l = group(&snap, &listen)?;
    ensure!(
        l["sockets"] == 8 && l["listeners"] == 1,
        "{listen} is not 8 sockets and 1 listener: {l}"
    );
    let queued = l["wmem_queued_bytes"].as_u64().unwrap_or(0);
    ensure!(
        outq > 1 << 20 && queued >= outq,
        "{listen} queued {queued} bytes, the servers still have {outq} unsent: {l}"
    );
    let b = group(&snap, &backend)?;
    ensure!(b["sockets"] == 8, "{backend} is not 8 sockets: {b}");
    let rmem = b["rmem_bytes"].as_u64().unwrap_or(0);
    ensure!(rmem > 0, "{backend}'s clients hold no received bytes: {b}");
    // Closed with data unsent: each server side lives on as an orphan.
    drop(std::mem::take(&mut s.servers));
    sleep(Duration::from_millis(300));
    let after = run(netmem)?;
    let l = group(&after, &listen)?;
    let orphans = l["orphans"].as_u64().unwrap_or(0);
    let orphan_bytes = l["orphan_bytes"].as_u64().unwrap_or(0);
    ensure!(
        orphans == 8 && orphan_bytes > 0,
        "{listen} after the servers closed: {orphans} orphans holding {orphan_bytes} bytes, not 8: {l}"
    );
    let host = after
        .iter()
        .find(|v| v["type"] == "context")
        .and_then(|c| c["orphans"].as_u64())
        .unwrap_or(0);
    ensure!(
        host >= orphans,
        "sockstat counts {host} orphans, below {orphans}"
    );
    Ok(format!(
        "{listen}: 8 sockets queuing {queued} bytes ({outq} unsent); {backend}: {rmem} bytes received; 8 orphans with {orphan_bytes} bytes after close (host: {host})"
    ))
}

fn run(netmem: &str) -> Result<Vec<Value>> {
    let o = Command::new(netmem)
        .args(["snapshot", "--json"])
        .output()
        .with_context(|| format!("cannot run {netmem} snapshot"))?;
    ensure!(
        o.status.success(),
        "netmem snapshot failed: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow!("not JSON ({e}): {l}")))
        .collect()
}

fn group<'a>(lines: &'a [Value], name: &str) -> Result<&'a Value> {
    lines
        .iter()
        .find(|v| v["type"] == "group" && v["group"] == name)
        .ok_or_else(|| anyhow!("no group {name} in the snapshot"))
}

/// Bytes the kernel has not sent yet on `s` (SIOCOUTQ).
fn unsent(s: &std::net::TcpStream) -> Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which
    // points at `n`; the descriptor is open for the call.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    ensure!(r == 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    Ok(n.max(0) as u64)
}
