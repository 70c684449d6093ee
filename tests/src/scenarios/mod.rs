//! Scenarios that make the mission hooks fire for real: an abort for too
//! many orphans, an abort for tcp_mem, memory pressure entered and left, and
//! IPv4/IPv6 route exceptions from a too-small MTU behind a router. Each runs
//! `netmem trace --json` around a real workload and checks what it reported.
//!
//! The orphan and tcp_mem scenarios change global sysctls, so they only run
//! inside a QEMU guest (`cargo xtask vm-test`); the route scenario lives in
//! namespaces it creates and also runs on the host.
//!
//! Here: the harness every scenario shares (sysctls, a trace, a served
//! exporter, the checks of what netmem reported, connections stuck with
//! data queued); the scenarios by subject in `aborts.rs` (orphans,
//! tcp_mem), `netns.rs` (aborts charged to their namespace), `owners.rs`
//! (cgroups), `memcg.rs` (socket pressure local to a cgroup), `routes.rs`,
//! `snapshot.rs` (no hook: `netmem snapshot` against SIOCOUTQ, once per
//! guest) and `census.rs` (the in-kernel census against sock_diag, once
//! per guest).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use netmem::hooks::HookId;
use serde_json::Value;

mod aborts;
mod census;
mod memcg;
mod netns;
mod owners;
mod routes;
mod seed;
mod snapshot;

pub use aborts::{orphans, tcp_mem};
pub use census::census;
pub use memcg::memcg;
pub use netns::netns_aborts;
pub use owners::owners;
pub use routes::{in_netns, ip, routes, RouterTopology};
pub use seed::seed;
pub use snapshot::snapshot;

/// How many times slower than a native guest this one runs: the arm64
/// guests emulate another architecture under TCG (`netmem.slowdown=N` on
/// their kernel command line, which the runner passes on as
/// NETMEM_GUEST_SLOWDOWN). Waits for netmem to come up scale with it.
pub fn slowdown() -> u32 {
    std::env::var("NETMEM_GUEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// A global sysctl set for the scenario and restored on drop.
pub struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    pub fn set(name: &str, value: &str) -> Result<Sysctl> {
        let path = format!("/proc/sys/{name}");
        let old = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        std::fs::write(&path, value).with_context(|| format!("write {value} to {path}"))?;
        Ok(Sysctl {
            path,
            old: old.trim().to_string(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

/// `netmem trace --json` running in the background, its lines collected.
pub struct Trace {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Trace {
    /// Starts netmem and returns once every hook is live (its probes line).
    pub fn start(netmem: &str, args: &[&str]) -> Result<Trace> {
        let mut child = Command::new(netmem)
            .args(["trace", "--json", "--interval", "300ms"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {netmem}"))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        // Up to the probes line: from then on every hook is live.
        let head = crate::until_probes(&mut out);
        let mut first = Vec::new();
        for l in head.lines() {
            first.push(
                serde_json::from_str::<Value>(l)
                    .map_err(|e| anyhow!("netmem printed a line that is not JSON ({e}): {l:?}"))?,
            );
        }
        let lines = Arc::new(Mutex::new(first));
        let l2 = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    l2.lock().unwrap().push(v);
                }
            }
        });
        Ok(Trace {
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// Every line so far (the trace keeps running).
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGINT, as an operator's Ctrl-C; returns every line.
    pub fn stop(mut self) -> Result<Vec<Value>> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let st = self.child.wait()?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        ensure!(st.success(), "netmem exited with {st}");
        Ok(std::mem::take(&mut *self.lines.lock().unwrap()))
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `netmem serve` beside the trace, on a loopback port: at the end its
/// exposition must say which group and which limit, as a Prometheus
/// scraping it would store.
pub struct Served {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Served {
    pub fn start(netmem: &str, tier_args: &[&str]) -> Result<Served> {
        Served::start_with(netmem, tier_args, &["--interval", "300ms"])
    }

    /// `netmem serve` with `extra` flags (an interval among them).
    pub fn start_with(netmem: &str, tier_args: &[&str], extra: &[&str]) -> Result<Served> {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], crate::serve::free_port()).into();
        let child = Command::new(netmem)
            .args(["serve", "--listen", &addr.to_string()])
            .args(extra)
            .args(tier_args)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {netmem} serve"))?;
        let s = Served { child, addr };
        let t0 = Instant::now();
        let mut first = true;
        loop {
            if let Ok((200, body)) = crate::serve::http_get(addr, "/metrics", None) {
                // Before the scenario's aborts, the host-wide counters an
                // alert watches are there at 0 (the first scrape may come
                // before the first interval).
                if std::mem::take(&mut first) {
                    for z in crate::serve::host_wide_series() {
                        let v = crate::serve::sample(&body, &z);
                        ensure!(v == Some(0.0), "serve: {z} is {v:?} at the first scrape");
                    }
                }
                if body.contains("netmem_last_interval_timestamp_seconds") {
                    return Ok(s);
                }
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(30) * slowdown(),
                "netmem serve never served"
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// `netmem check` against this server: its exit code and line.
    pub fn check(&self, netmem: &str) -> Result<(i32, String)> {
        check(netmem, &["--serve", &self.addr.to_string()])
    }

    /// One GET to the running server: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        Ok(crate::serve::http_get(self.addr, path, None)?)
    }

    /// The exposition after one more interval; stops it with SIGTERM.
    pub fn finish(mut self) -> Result<String> {
        sleep(Duration::from_millis(700) * slowdown());
        let (status, body) = crate::serve::http_get(self.addr, "/metrics", None)?;
        ensure!(status == 200, "scrape answered {status}");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait()?;
        ensure!(st.success(), "netmem serve exited with {st}");
        Ok(body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `netmem check ARGS`: its exit code and its one line (and nothing
/// else on standard output).
pub fn check(netmem: &str, args: &[&str]) -> Result<(i32, String)> {
    let o = Command::new(netmem)
        .arg("check")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {netmem} check"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    ensure!(
        out.lines().count() == 1,
        "netmem check printed {} lines: {out:?}",
        out.lines().count()
    );
    Ok((o.status.code().unwrap_or(-1), out.trim_end().to_string()))
}

/// The exposition names `group` and `cause` for the aborts.
fn check_served(text: &str, group: &str, cause: &str) -> Result<String> {
    let series = format!(
        "netmem_group_aborts_on_memory_total{{group=\"{group}\",kind=\"listen\",cause=\"{cause}\"}}"
    );
    let n = crate::serve::sample(text, &series).unwrap_or(0.0);
    ensure!(n >= 1.0, "serve: {series} is {n}");
    // The host-wide series the alert watches counts every group's.
    let host = format!("netmem_aborts_on_memory_total{{cause=\"{cause}\"}}");
    let all = crate::serve::sample(text, &host).unwrap_or(0.0);
    ensure!(all >= n, "serve: {host} is {all}, below {series} ({n})");
    Ok(format!(
        "serve: {n} aborts {cause} on {group}, {all} on the host"
    ))
}

/// Hands the scenario's trace to the host as a recording (zstd, hex on
/// one console line), so `vm-test` can report a real abort.
fn emit_recording(name: &str, tier: &str, lines: &[Value]) {
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    if let Ok(z) = zstd::bulk::compress(text.as_bytes(), 9) {
        let hex: String = z.iter().map(|b| format!("{b:02x}")).collect();
        println!("NETMEM-RECORDING {name}-{tier} {hex}");
    }
}

pub fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|v| v["type"] == "event" && v["event"] == kind)
        .collect()
}

/// The tier netmem's probes line reports for `hook`.
pub fn tier_of(lines: &[Value], hook: HookId) -> Option<String> {
    let probes = lines.iter().find(|v| v["type"] == "probes")?;
    probes["hooks"]
        .as_array()?
        .iter()
        .find(|h| h["hook"] == hook.name())
        .and_then(|h| h["tier"].as_str().map(String::from))
}

/// Each hook must run on `expected`, the best tier the run allows, unless
/// this kernel genuinely lacks it (netmem then names the reason, and a
/// --max-tier cap is not a reason).
pub fn check_tiers(lines: &[Value], hooks: &[HookId], expected: &str) -> Result<Vec<String>> {
    let probes = lines
        .iter()
        .find(|v| v["type"] == "probes")
        .ok_or_else(|| anyhow!("no probes line"))?;
    let mut fallbacks = Vec::new();
    for id in hooks {
        let h = id.name();
        let row = probes["hooks"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["hook"] == h))
            .ok_or_else(|| anyhow!("hook {h} missing from the probes line"))?;
        let t = row["tier"].as_str().unwrap_or("none");
        if t == expected {
            continue;
        }
        let why = row["unavailable"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["tier"] == expected))
            .and_then(|u| u["reason"].as_str())
            .filter(|r| !r.contains("--max-tier"));
        match why {
            Some(r) => fallbacks.push(format!("{h} on {t} ({expected}: {r})")),
            None => bail!("hook {h} served by tier {t}, expected {expected}: {row}"),
        }
    }
    Ok(fallbacks)
}

/// `netmem doctor --from` on what the trace recorded: the findings, ranked.
pub fn doctor_from(netmem: &str, lines: &[Value], tag: &str) -> Result<Vec<Value>> {
    let path = std::env::temp_dir().join(format!("netmem-{tag}-{}.jsonl", std::process::id()));
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&path, text)?;
    let o = Command::new(netmem)
        .args(["doctor", "--json", "--from"])
        .arg(&path)
        .output()
        .context("cannot run netmem doctor")?;
    let _ = std::fs::remove_file(&path);
    ensure!(
        o.status.success(),
        "netmem doctor failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "finding")
        .collect())
}

/// The doctor's first finding must name `id`, fired, on `group`, with a
/// `sysctl -w` action.
fn check_doctor(netmem: &str, lines: &[Value], id: &str, group: &str) -> Result<String> {
    let f = doctor_from(netmem, lines, id)?;
    let first = f
        .first()
        .ok_or_else(|| anyhow!("the doctor found nothing"))?;
    ensure!(
        first["id"] == id && first["fired"] == true && first["group"] == group,
        "first finding is not {id} fired on {group}: {first}"
    );
    let action = first["action"].as_array().cloned().unwrap_or_default();
    // A limit to set, or, raised since it fired, one to keep (the doctor
    // sets nothing to the value it already has).
    ensure!(
        action.iter().any(|a| {
            let a = a.as_str().unwrap_or("");
            a.contains("sysctl -w ") || a.contains(": keep it, and persist net.")
        }),
        "no sysctl action in {first}"
    );
    Ok(format!(
        "doctor: {id} on {group}, {}",
        action[0].as_str().unwrap_or("")
    ))
}

fn with_fallbacks(detail: String, f: Vec<String>) -> String {
    if f.is_empty() {
        detail
    } else {
        format!("{detail}; fell back: {}", f.join(", "))
    }
}

/// The `abort_on_memory` events on `group`; at least one.
fn aborts_on<'a>(lines: &'a [Value], group: &str) -> Result<Vec<&'a Value>> {
    let aborts = events(lines, "abort_on_memory");
    let ours: Vec<&Value> = aborts
        .iter()
        .copied()
        .filter(|e| e["group"] == group)
        .collect();
    ensure!(
        !ours.is_empty(),
        "no abort_on_memory on {group}: {}",
        summary(&aborts)
    );
    Ok(ours)
}

fn shifts(evs: &[&Value]) -> Vec<i64> {
    let mut s: Vec<i64> = evs.iter().filter_map(|e| e["shift"].as_i64()).collect();
    s.sort();
    s.dedup();
    s
}

fn summary(evs: &[&Value]) -> String {
    let v: Vec<String> = evs.iter().take(3).map(|e| e.to_string()).collect();
    format!("{} events, first: {}", evs.len(), v.join(" | "))
}

/// Connections to a local listener whose clients never read, and whose
/// server sides have queued up to `fill` bytes each.
pub(crate) struct Stuck {
    pub(crate) clients: Vec<TcpStream>,
    pub(crate) servers: Vec<TcpStream>,
}

pub(crate) fn stuck(port: u16, conns: usize, fill: usize) -> Result<(TcpListener, Stuck)> {
    let l = TcpListener::bind(("127.0.0.1", port)).context("bind")?;
    let clients: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(("127.0.0.1", port)))
        .collect::<std::io::Result<_>>()?;
    let servers: Vec<TcpStream> = (0..conns)
        .map(|_| l.accept().map(|a| a.0))
        .collect::<std::io::Result<_>>()?;
    let chunk = vec![0x6bu8; 64 * 1024];
    for s in &servers {
        s.set_nonblocking(true)?;
        let mut sent = 0;
        let t0 = Instant::now();
        while sent < fill && t0.elapsed() < Duration::from_secs(2) {
            match (&*s).write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    sleep(Duration::from_millis(5));
                    if (&*s).write(&chunk[..1]).is_err() {
                        break;
                    }
                    sent += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((l, Stuck { clients, servers }))
}
