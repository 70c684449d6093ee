//! Counters per namespace for real: aborts on memory in one of two
//! namespaces (tcp_max_orphans 0, a global sysctl: guests only), traced
//! with `--netns all`, are charged to that namespace (its own TcpExt
//! TCPAbortOnMemory, and its listener's group) and none to the other.

use std::sync::mpsc;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use serde_json::Value;

use super::routes::{in_netns, ip};
use super::{doctor_from, emit_recording, events, stuck, Sysctl, Trace};

/// Two namespaces named NAME under /run/netns, removed on drop.
struct Pair {
    names: [String; 2],
}

impl Pair {
    fn new() -> Result<Pair> {
        let p = std::process::id() % 10000;
        let names = [format!("nm{p}abort"), format!("nm{p}calm")];
        for n in &names {
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(Pair { names })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

fn grew(lines: &[Value], netns: &str, counter: &str) -> (usize, u64) {
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "netns" && l["netns"] == netns)
        .collect();
    let sum = mine
        .iter()
        .filter_map(|l| l["delta"][counter].as_u64())
        .sum();
    (mine.len(), sum)
}

pub fn netns_aborts(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7004;
    let pair = Pair::new()?;
    let [abort, calm] = &pair.names;
    // The calm namespace holds an idle connection: it has TCP sockets, so
    // its counters are read at every pass, and must stay still.
    let (release, held) = mpsc::channel::<()>();
    let (ready, up) = mpsc::channel::<Result<()>>();
    let calm_name = calm.clone();
    let holder = std::thread::spawn(move || {
        let ok = ready.clone();
        let r = in_netns(&calm_name, move || {
            let l = std::net::TcpListener::bind(("127.0.0.1", PORT))?;
            let c = std::net::TcpStream::connect(("127.0.0.1", PORT))?;
            let s = l.accept()?;
            let _ = ok.send(Ok(()));
            let _ = held.recv();
            drop((l, c, s));
            Ok(())
        });
        if let Err(e) = r {
            let _ = ready.send(Err(e));
        }
    });
    up.recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the calm namespace's connection never came up"))??;
    let _max = Sysctl::set("net/ipv4/tcp_max_orphans", "0")?;
    // A full census at every interval: under the default budget a
    // namespace whose sockets come and go between two censuses (as here,
    // in about a second) is read only at the next one, with its aborts
    // already in its first reading's totals.
    let mut args = tier_args.to_vec();
    args.extend(["--netns", "all", "--census-budget", "100"]);
    let trace = Trace::start(netmem, &args)?;
    // As the orphans scenario, inside the first namespace, paced by what
    // netmem has read (a census in an emulated guest can take longer than
    // the whole workload): its namespace read once before the aborts (the
    // baseline its growth is counted from), and again after them.
    let seen = |what: &str, f: &dyn Fn(&Value) -> bool| -> Result<()> {
        let t0 = std::time::Instant::now();
        while !trace
            .lines()
            .iter()
            .any(|l| l["type"] == "netns" && l["netns"] == abort.as_str() && f(l))
        {
            ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "netmem never read {abort} {what}"
            );
            sleep(Duration::from_millis(100));
        }
        Ok(())
    };
    in_netns(abort, || {
        let (_l, mut s) = stuck(PORT, 16, 256 * 1024)?;
        seen("with its sockets", &|_| true)?;
        let second = s.servers.split_off(8);
        drop(std::mem::take(&mut s.servers));
        sleep(Duration::from_millis(500));
        drop(second);
        seen("after its aborts", &|l| {
            l["delta"]["TCPAbortOnMemory"].as_u64().unwrap_or(0) > 0
        })?;
        drop(s.clients);
        Ok(())
    })?;
    sleep(Duration::from_millis(900));
    let lines = trace.stop()?;
    let _ = release.send(());
    let _ = holder.join();
    // Its report must show the aborts, by their cause (xtask reads the
    // cause from the name); a polled abort's cause is the kernel log's,
    // when it said one in time.
    if !matches!(expect_tier, "nobtf" | "polling") {
        emit_recording("netns-orphans", expect_tier, &lines);
    }
    let (na, aborted) = grew(&lines, abort, "TCPAbortOnMemory");
    let (nc, calm_aborts) = grew(&lines, calm, "TCPAbortOnMemory");
    ensure!(
        na > 0 && nc > 0,
        "netns lines: {na} for {abort}, {nc} for {calm}"
    );
    ensure!(aborted > 0, "no TCPAbortOnMemory counted in {abort}");
    ensure!(calm_aborts == 0, "{calm_aborts} aborts charged to {calm}");
    // On a kernel's hook, the listener's group; polled (no BTF), the
    // namespace's own count has no socket: `unattributed@NAMESPACE`.
    let polled = matches!(expect_tier, "nobtf" | "polling");
    let group = if polled {
        format!("unattributed@{abort}")
    } else {
        format!("listen:{PORT}@{abort}")
    };
    let ours: Vec<&Value> = events(&lines, "abort_on_memory")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(!ours.is_empty(), "no abort event on {group}");
    if polled {
        ensure!(
            ours.len() as u64 == aborted,
            "{} polled aborts on {group}, {aborted} counted in {abort}",
            ours.len()
        );
    }
    let stray: Vec<&Value> = events(&lines, "abort_on_memory")
        .into_iter()
        .filter(|e| {
            e["group"]
                .as_str()
                .is_some_and(|g| g.ends_with(&format!("@{calm}")))
        })
        .collect();
    ensure!(stray.is_empty(), "aborts charged to {calm}: {stray:?}");
    let findings = doctor_from(netmem, &lines, "netns_aborts")?;
    let scoped = findings
        .iter()
        .find(|f| {
            f["id"] == "netns.counters"
                && f["title"].as_str().is_some_and(|t| {
                    t.starts_with(&format!("namespace {abort}:")) && t.contains("TCPAbortOnMemory")
                })
        })
        .ok_or_else(|| anyhow!("no netns.counters finding for {abort}: {findings:?}"))?;
    ensure!(
        !findings.iter().any(|f| f["id"] == "netns.counters"
            && f["title"].as_str().unwrap_or("").contains(calm.as_str())),
        "a finding for {calm}"
    );
    Ok(format!(
        "{aborted} TCPAbortOnMemory in {abort} ({} abort events on {group}), 0 in {calm}; doctor: {}",
        ours.len(),
        scoped["title"]
    ))
}
