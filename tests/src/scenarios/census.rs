//! The census tier in the kernel, in a guest: `netmem probes` names the
//! BPF socket iterators, and their groups equal sock_diag's on the same
//! sockets (queues, orphans, an accept queue, a UDP socket, a TIME_WAIT
//! socket), to the byte. No hook: once per guest, like `snapshot`.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use super::stuck;

/// The scenario signature of the guest; the census has no hook tier.
pub fn census(netmem: &str, _tier_args: &[&str], _tier: &str) -> Result<String> {
    const PORT: u16 = 7007;
    let probes = run(netmem, &["probes", "--json"])?;
    let row = probes
        .iter()
        .find(|r| r["hook"] == "census")
        .ok_or_else(|| anyhow!("no census row in netmem probes"))?;
    ensure!(
        row["tier"] == "bpf_iter",
        "census not in the kernel here: {row}"
    );
    let (_l, mut s) = stuck(PORT, 6, 256 * 1024)?;
    // Orphans: three servers closed with data unsent.
    for _ in 0..3 {
        drop(s.servers.pop());
    }
    // An accept queue: two connections nobody accepts.
    let backlog = TcpListener::bind(("127.0.0.1", PORT + 1))?;
    let _waiting: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", PORT + 1)))
        .collect::<std::io::Result<_>>()?;
    // A UDP socket holding a datagram, and a TIME_WAIT socket.
    let u = UdpSocket::bind(("127.0.0.1", PORT + 2))?;
    UdpSocket::bind("127.0.0.1:0")?.send_to(&[1u8; 900], ("127.0.0.1", PORT + 2))?;
    {
        let l = TcpListener::bind(("127.0.0.1", PORT + 3))?;
        let c = TcpStream::connect(("127.0.0.1", PORT + 3))?;
        drop(c);
        drop(l.accept()?);
    }
    sleep(Duration::from_millis(300));
    let mut last = String::new();
    let udp = format!("listen:{}", PORT + 2);
    for _ in 0..6 {
        let (mut k, _) = groups(netmem, "bpf-iter")?;
        let (d, diag_err) = groups(netmem, "sock-diag")?;
        // A kernel without udp_diag (a module the guests' initramfs does
        // not have) shows UDP to the iterator only: compared where both
        // see it.
        let udp_note = if diag_err.contains("no sock_diag handler for UDP") || !d.contains_key(&udp)
        {
            let u = k.remove(&udp);
            ensure!(
                u.as_ref().and_then(|u| u["rmem_bytes"].as_u64()) > Some(0),
                "the iterator did not see the UDP datagram: {u:?}"
            );
            "; UDP seen by the iterator only (sock_diag has no UDP here)"
        } else {
            ""
        };
        if k == d {
            let l = k
                .get(&format!("listen:{PORT}"))
                .ok_or_else(|| anyhow!("no listen:{PORT}"))?;
            ensure!(
                l["orphans"].as_u64() == Some(3) && l["wmem_queued_bytes"].as_u64() > Some(100_000),
                "listen:{PORT} not 3 orphans with queued bytes: {l}"
            );
            let q = &k[&format!("listen:{}", PORT + 1)];
            ensure!(q["accept_queue"] == 2, "accept queue: {q}");
            if udp_note.is_empty() {
                let u = &k[&udp];
                ensure!(u["rmem_bytes"].as_u64() > Some(0), "UDP datagram: {u}");
            }
            let tw: u64 = k.values().filter_map(|g| g["time_wait"].as_u64()).sum();
            ensure!(tw >= 1, "no TIME_WAIT socket counted");
            return Ok(format!(
                "{} groups equal on bpf_iter and sock_diag{udp_note}; listen:{PORT}: {l}",
                k.len()
            ));
        }
        last = format!("bpf_iter {k:?}\nsock_diag {d:?}");
        sleep(Duration::from_millis(200));
    }
    drop((backlog, u));
    bail!("the tiers never agreed: {last}")
}

/// A snapshot's groups by name (ts left out), and what it said on stderr.
fn groups(netmem: &str, tier: &str) -> Result<(BTreeMap<String, Value>, String)> {
    let args = [
        "snapshot",
        "--json",
        "--all",
        "--time-wait",
        "--census",
        tier,
    ];
    let (lines, err) = run_err(netmem, &args)?;
    let ctx = lines
        .iter()
        .find(|v| v["type"] == "context")
        .ok_or_else(|| anyhow!("no context line"))?;
    let want = tier.replace('-', "_");
    ensure!(
        ctx["census"] == want.as_str(),
        "asked {tier}, ran {}",
        ctx["census"]
    );
    let groups = lines
        .into_iter()
        .filter(|v| v["type"] == "group")
        .map(|mut g| {
            g.as_object_mut().map(|o| o.remove("ts"));
            (g["group"].as_str().unwrap_or("").to_string(), g)
        })
        .collect();
    Ok((groups, err))
}

fn run(netmem: &str, args: &[&str]) -> Result<Vec<Value>> {
    run_err(netmem, args).map(|(l, _)| l)
}

fn run_err(netmem: &str, args: &[&str]) -> Result<(Vec<Value>, String)> {
    let o = Command::new(netmem)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {netmem} {args:?}"))?;
    ensure!(
        o.status.success(),
        "netmem {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow!("not JSON ({e}): {l}")))
        .collect::<Result<_>>()?;
    Ok((lines, String::from_utf8_lossy(&o.stderr).into_owned()))
}
