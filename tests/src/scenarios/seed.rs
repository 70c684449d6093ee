//! The seed incident, end to end: a small-memory guest with the kernel's
//! own limits (nothing lowered by hand), Debian's HAProxy with one frontend
//! and two backends serving large responses, and clients that stop reading,
//! until the kernel itself prints its two messages. `netmem serve
//! --flight-recorder` runs from before the load, as it would on the box
//! that failed over at night; what its incident files say is checked.
//!
//! - Phase 1 (`tcp_mem`): more and more clients ask for a huge body and
//!   never read. Each fills HAProxy's frontend send queue, HAProxy's
//!   backend receive queue and the server's send queue; HAProxy's `timeout
//!   client` orphans them with their data. When TCP memory passes
//!   tcp_mem's hard limit, the next such close is aborted: "TCP: out of
//!   memory -- consider tuning tcp_mem".
//! - Phase 2 (`orphans`): a crowd of stalled clients (a tiny receive
//!   window, a small response, nothing read): HAProxy writes each response
//!   and closes, the kernel keeps an orphan holding a few kilobytes, until
//!   there are more orphans than tcp_max_orphans: "TCP: too many orphaned
//!   sockets".
//!
//! Guests only (`cargo xtask vm-test` boots one with 384 MB for it): the
//! load exhausts the whole kernel's TCP memory.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use super::{doctor_from, Served};
use crate::rig::{Rig, RigConfig};

/// What tcp_check_oom prints (with pr_fmt's "TCP: ").
const OOM_MESSAGE: &str = "TCP: out of memory -- consider tuning tcp_mem";
const ORPHANS_MESSAGE: &str = "TCP: too many orphaned sockets";
/// HAProxy's frontend in the rig's configuration.
const FRONTEND: &str = "rig";
const INCIDENTS: &str = "/tmp/netmem-seed-incidents";

/// /dev/kmsg from now on: what the kernel logs while the scenario runs.
struct KernelLog {
    f: std::fs::File,
    seen: Vec<String>,
}

impl KernelLog {
    fn open() -> Result<KernelLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("open /dev/kmsg")?;
        // SAFETY: lseek on a descriptor we own; SEEK_END on /dev/kmsg skips
        // the records logged before.
        unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        Ok(KernelLog { f, seen: vec![] })
    }

    /// Whether the kernel logged `text` since [`KernelLog::open`]; only
    /// records of the kernel's facility (0) count.
    fn saw(&mut self, text: &str) -> bool {
        let mut buf = vec![0u8; 8192];
        loop {
            match self.f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let (prefix, msg) = rec.split_once(';').unwrap_or(("", &rec));
                    let level: u32 = prefix
                        .split(',')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(u32::MAX);
                    if level >> 3 == 0 {
                        self.seen.push(msg.lines().next().unwrap_or("").to_string());
                    }
                }
                // Records overwritten before they were read: go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        self.seen.iter().any(|l| l.contains(text))
    }
}

fn numbers(path: &str) -> Result<Vec<u64>> {
    let s = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    Ok(s.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect())
}

/// /proc/net/sockstat's TCP line: (orphans, memory pages).
fn sockstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp = s.lines().find(|l| l.starts_with("TCP:")).unwrap_or("");
    let w: Vec<&str> = tcp.split_whitespace().collect();
    let field = |k: &str| {
        w.iter()
            .position(|x| *x == k)
            .and_then(|i| w.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("orphan"), field("mem"))
}

/// Room for thousands of client sockets (the runner is PID 1, whose
/// limit is the kernel's 1024).
fn raise_nofile(n: u64) -> Result<()> {
    let l = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
        bail!("setrlimit NOFILE {n}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Incidents listed by serve: (id, cause, ongoing).
fn listed(served: &Served) -> Result<Vec<(String, String, bool)>> {
    let (st, body) = served.get("/incidents")?;
    ensure!(st == 200, "GET /incidents answered {st}: {body}");
    let v: Value = serde_json::from_str(&body)?;
    Ok(v["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap_or("").to_string(),
                i["cause"].as_str().unwrap_or("").to_string(),
                i["ongoing"] == true,
            )
        })
        .collect())
}

/// Until no incident is being written (its "after" window ran out).
fn wait_closed(served: &Served, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let l = listed(served)?;
        if !l.is_empty() && l.iter().all(|i| !i.2) {
            return Ok(());
        }
        ensure!(
            t0.elapsed() < limit,
            "incidents still open after {limit:?}: {l:?}"
        );
        sleep(Duration::from_millis(500));
    }
}

fn read_incident(path: &std::path::Path) -> Result<Vec<Value>> {
    let z = std::fs::read(path)?;
    let text = zstd::stream::decode_all(&z[..])
        .with_context(|| format!("{} is not zstd", path.display()))?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The group HAProxy's frontend names: its memory (queues and orphans'
/// data) per interval, in order.
fn frontend_memory(lines: &[Value], before: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|v| {
            v["type"] == "group"
                && v["proxy_frontend"] == FRONTEND
                && v["ts"].as_str().is_some_and(|t| t < before)
        })
        .map(|v| {
            ["rmem_bytes", "wmem_queued_bytes", "orphan_bytes"]
                .iter()
                .map(|k| v[*k].as_u64().unwrap_or(0))
                .sum()
        })
        .collect()
}

/// What one incident file must show for an abort cause: the trigger,
/// memory climbing on the frontend's group before it, aborts of that cause,
/// and the doctor's first finding on it.
fn check_incident(netmem: &str, cause: &str, lines: &[Value]) -> Result<String> {
    let started = lines
        .iter()
        .find(|v| v["type"] == "incident" && v["started"] == true)
        .ok_or_else(|| anyhow!("no incident line that starts it"))?;
    let at = started["ts"].as_str().unwrap_or("");
    let mem = frontend_memory(lines, at);
    ensure!(
        mem.len() >= 3,
        "{} intervals of group {FRONTEND:?} before the trigger at {at}",
        mem.len()
    );
    let (first, peak) = (mem[0], *mem.iter().max().unwrap_or(&0));
    ensure!(
        peak > 256 << 10 && peak >= first.max(1).saturating_mul(4),
        "memory on frontend {FRONTEND} did not climb before the trigger ({}: {}): {mem:?}",
        started["cause"],
        started["detail"]
    );
    let all = super::events(lines, "abort_on_memory");
    let aborts = all
        .iter()
        .filter(|e| e["cause"] == cause || e["cause"] == "both")
        .count();
    ensure!(aborts > 0, "no abort_on_memory with cause {cause}");
    // The doctor ranks the limit that fired first in the file first (the
    // ring's minutes before an orphans incident hold the tcp_mem phase).
    let fired_first = all
        .iter()
        .find_map(|e| {
            e["cause"]
                .as_str()
                .filter(|c| *c == "orphans" || *c == "tcp_mem")
        })
        .unwrap_or(cause);
    let findings = doctor_from(netmem, lines, &format!("seed-{cause}"))?;
    let first_finding = findings
        .first()
        .ok_or_else(|| anyhow!("the doctor found nothing"))?;
    ensure!(
        first_finding["id"] == fired_first && first_finding["fired"] == true,
        "the doctor's first finding is not {fired_first} (the limit that fired first), fired: {first_finding}"
    );
    let ours = findings
        .iter()
        .find(|f| f["id"] == cause)
        .ok_or_else(|| anyhow!("the doctor has no {cause} finding"))?;
    let text = ours.to_string();
    ensure!(ours["fired"] == true, "{cause} not fired: {text}");
    // HAProxy's setting for what fired: a buffer's (tune.sndbuf.client)
    // for tcp_mem, the reset on close (option nolinger) for orphans.
    let knob = if cause == "orphans" {
        "option nolinger"
    } else {
        "tune."
    };
    ensure!(
        text.contains(&format!("frontend {FRONTEND}")) && text.contains(knob),
        "the doctor's {cause} finding does not name frontend {FRONTEND} and HAProxy's {knob:?}: {text}"
    );
    let action = ours["action"].as_array().cloned().unwrap_or_default();
    ensure!(
        action.iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.chars().any(|c| c.is_ascii_digit()))),
        "no value computed in the doctor's actions: {text}"
    );
    Ok(format!(
        "{cause}: trigger {} ({}), frontend {FRONTEND} {} -> {} bytes over {} intervals before, {aborts} aborts; doctor: {}",
        started["cause"].as_str().unwrap_or("?"),
        started["detail"].as_str().unwrap_or("?"),
        first,
        peak,
        mem.len(),
        action[0].as_str().unwrap_or("")
    ))
}

/// Hands an incident file to the host (hex on one console line) for
/// `netmem report`.
fn emit_incident(name: &str, tier: &str, path: &std::path::Path) {
    if let Ok(z) = std::fs::read(path) {
        let hex: String = z.iter().map(|b| format!("{b:02x}")).collect();
        println!("NETMEM-RECORDING seed-{name}-{tier} {hex}");
    }
}

pub fn seed(netmem: &str, tier_args: &[&str], tier: &str) -> Result<String> {
    raise_nofile(1 << 16)?;
    let tcp_mem = numbers("/proc/sys/net/ipv4/tcp_mem")?;
    let max_orphans = numbers("/proc/sys/net/ipv4/tcp_max_orphans")?
        .first()
        .copied()
        .unwrap_or(0);
    ensure!(tcp_mem.len() == 3, "tcp_mem reads {tcp_mem:?}");
    let mut kmsg = KernelLog::open()?;
    let _ = std::fs::remove_dir_all(INCIDENTS);
    let mut rig = Rig::start(RigConfig {
        name: "seed".into(),
        normal: 1,
        slow: 0,
        vanishing: 0,
        // HAProxy gives up on a client that does not read after 3 s, and
        // the kernel keeps the orphan with its data.
        client_timeout: Duration::from_secs(3),
        // The servers stand for machines elsewhere: their send queues are
        // not this host's memory, so they stay small.
        server_sndbuf: Some(64 * 1024),
        ..Default::default()
    })?;
    let served = Served::start_with(
        netmem,
        tier_args,
        &[
            "--interval",
            "1s",
            "--netns",
            &rig.ns,
            "--flight-recorder",
            INCIDENTS,
            "--after",
            "5s",
        ],
    )?;
    // Ordinary traffic first: the calm before.
    rig.start_clients()?;
    sleep(Duration::from_secs(8));

    // Phase 1: tcp_mem.
    let t0 = Instant::now();
    while !kmsg.saw(OOM_MESSAGE) {
        ensure!(
            t0.elapsed() < Duration::from_secs(150),
            "the kernel never logged {OOM_MESSAGE:?} with {} slow clients (tcp_mem {tcp_mem:?}, sockstat orphans and pages {:?}; it logged {:?})",
            rig.stuck_clients(),
            sockstat(),
            kmsg.seen.iter().rev().take(5).collect::<Vec<_>>()
        );
        // One a second up to tcp_mem's pressure mark, so the climb spans
        // several intervals, as a slow build-up does; then a burst, which
        // takes TCP memory over the hard limit (the kernel holds a steady
        // climb just under it: the sockets' buffers are moderated).
        if sockstat().1 < tcp_mem[1] {
            rig.add_slow(1)?;
            sleep(Duration::from_secs(1));
        } else {
            rig.add_slow(2)?;
            sleep(Duration::from_millis(400));
        }
    }
    let phase1 = format!(
        "{OOM_MESSAGE:?} after {:.0} s and {} slow clients",
        t0.elapsed().as_secs_f64(),
        rig.stuck_clients()
    );
    sleep(Duration::from_secs(3));
    rig.release_stuck();
    // Memory and orphans back down before the second phase.
    let t1 = Instant::now();
    while {
        let (o, m) = sockstat();
        o > 16 || m > tcp_mem[0]
    } {
        ensure!(
            t1.elapsed() < Duration::from_secs(90),
            "TCP memory never came back down: sockstat {:?}",
            sockstat()
        );
        sleep(Duration::from_millis(500));
    }
    wait_closed(&served, Duration::from_secs(120))?;

    // Phase 2: orphans.
    // Each leaves an orphan holding about 2 KB (a page charged) and a
    // client holding what its window took (another page): two pages a
    // connection stay under tcp_mem's hard limit until there are more
    // orphans than tcp_max_orphans (about 3.5 pages per orphan on a small
    // host), so the orphan limit fires first, as on a proxy whose clients
    // are remote. A larger response would run into tcp_mem first.
    let t2 = Instant::now();
    let most = (max_orphans as usize) * 3 / 2 + 500;
    while !kmsg.saw(ORPHANS_MESSAGE) {
        ensure!(
            t2.elapsed() < Duration::from_secs(240) && rig.stuck_clients() < most,
            "the kernel never logged {ORPHANS_MESSAGE:?} with {} stalled clients in {:.0} s (tcp_max_orphans {max_orphans}, tcp_mem {tcp_mem:?}, sockstat orphans and pages {:?}; it logged {:?})",
            rig.stuck_clients(),
            t2.elapsed().as_secs_f64(),
            sockstat(),
            kmsg.seen.iter().rev().take(5).collect::<Vec<_>>()
        );
        // Paced by HAProxy: connections it has not closed yet hold more
        // (its request, the backend's side), so at most 150 wait at once.
        if rig.stuck_clients() < sockstat().0 as usize + 150 {
            rig.add_stalled(50, 3 * 1024, 1)?;
        }
        sleep(Duration::from_millis(100));
    }
    let phase2 = format!(
        "{ORPHANS_MESSAGE:?} after {:.0} s and {} stalled clients",
        t2.elapsed().as_secs_f64(),
        rig.stuck_clients()
    );
    sleep(Duration::from_secs(3));
    rig.release_stuck();
    wait_closed(&served, Duration::from_secs(120))?;
    let list = listed(&served)?;
    let exposition = served.finish()?;
    drop(rig);

    let mut by_cause = Vec::new();
    for cause in ["tcp_mem", "orphans"] {
        let series = format!("netmem_aborts_on_memory_total{{cause=\"{cause}\"}}");
        let n = crate::serve::sample(&exposition, &series).unwrap_or(0.0);
        let both =
            crate::serve::sample(&exposition, "netmem_aborts_on_memory_total{cause=\"both\"}")
                .unwrap_or(0.0);
        ensure!(n + both >= 1.0, "serve: {series} is {n}");
        by_cause.push(format!("{n} {cause}"));
    }
    // An incident file per cause: the one holding that cause's aborts.
    let mut details = Vec::new();
    for cause in ["tcp_mem", "orphans"] {
        let mut found = None;
        for (id, _, _) in &list {
            let path = std::path::Path::new(INCIDENTS).join(format!("{id}.jsonl.zst"));
            let lines = read_incident(&path)?;
            if super::events(&lines, "abort_on_memory")
                .iter()
                .any(|e| e["cause"] == cause)
            {
                found = Some((path, lines));
                break;
            }
        }
        let (path, lines) = found.ok_or_else(|| {
            anyhow!("no incident file holds an abort with cause {cause}: {list:?}")
        })?;
        details.push(
            check_incident(netmem, cause, &lines).with_context(|| format!("incidents {list:?}"))?,
        );
        emit_incident(cause, tier, &path);
    }
    Ok(format!(
        "tcp_mem {tcp_mem:?}, tcp_max_orphans {max_orphans} (the kernel's defaults); {phase1}; {phase2}; {} incidents; serve: aborts {}; {}",
        list.len(),
        by_cause.join(", "),
        details.join("; ")
    ))
}
