//! Scenarios that make the mission hooks fire for real: an abort for too
//! many orphans, an abort for tcp_mem, memory pressure entered and left, and
//! IPv4/IPv6 route exceptions from a too-small MTU behind a router. Each runs
//! `netmem trace --json` around a real workload and checks what it reported.
//!
//! The orphan and tcp_mem scenarios change global sysctls, so they only run
//! inside a QEMU guest (`cargo xtask vm-test`); the route scenario lives in
//! namespaces it creates and also runs on the host.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use netmem::hooks::HookId;
use serde_json::Value;

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
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], crate::serve::free_port()).into();
        let child = Command::new(netmem)
            .args([
                "serve",
                "--interval",
                "300ms",
                "--listen",
                &addr.to_string(),
            ])
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
                t0.elapsed() < Duration::from_secs(30),
                "netmem serve never served"
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// The exposition after one more interval; stops it with SIGTERM.
    pub fn finish(mut self) -> Result<String> {
        sleep(Duration::from_millis(700));
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

/// tcp_max_orphans 0: the first closes make orphans; once the kernel's
/// orphan count catches up (100 ms), further closes are aborted with
/// "too many orphaned sockets".
pub fn orphans(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7001;
    let _max = Sysctl::set("net/ipv4/tcp_max_orphans", "0")?;
    let served = Served::start(netmem, tier_args)?;
    let trace = Trace::start(netmem, tier_args)?;
    let (_l, mut s) = stuck(PORT, 16, 256 * 1024)?;
    let second = s.servers.split_off(8);
    drop(std::mem::take(&mut s.servers));
    sleep(Duration::from_millis(500));
    drop(second);
    sleep(Duration::from_millis(700));
    // The clients' resets end the orphans' lives.
    drop(s.clients);
    sleep(Duration::from_millis(900));
    let lines = trace.stop()?;
    emit_recording("orphans", expect_tier, &lines);
    let exposition = served.finish()?;
    let fb = check_tiers(&lines, &[HookId::TcpCheckOom, HookId::Orphans], expect_tier)?;
    let group = format!("listen:{PORT}");
    let serve = check_served(&exposition, &group, "orphans")?;
    let ours = aborts_on(&lines, &group)?;
    for e in &ours {
        ensure!(e["cause"] == "orphans", "cause is not orphans: {e}");
        ensure!(e["max_orphans"] == 0, "max_orphans not 0: {e}");
        ensure!(
            e["orphans"].as_i64().unwrap_or(0) > 0,
            "orphan count not > 0: {e}"
        );
    }
    let born: Vec<&Value> = events(&lines, "orphan_born")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(!born.is_empty(), "no orphan_born on {group}");
    ensure!(
        born.iter().any(|e| e["bytes"].as_i64().unwrap_or(0) > 0),
        "orphans born without unsent bytes: {}",
        summary(&born)
    );
    let gone: Vec<&Value> = events(&lines, "orphan_gone")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(!gone.is_empty(), "no orphan_gone on {group}");
    let doctor = check_doctor(netmem, &lines, "orphans", &group)?;
    // Orphans killed for memory die with their unsent data, and by then the
    // kernel has released their port: the event must still name it.
    let lost: Vec<&Value> = events(&lines, "destroy_with_data")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(
        lost.iter()
            .any(|e| e["unacked_bytes"].as_i64().unwrap_or(0) > 1
                && e["local"]
                    .as_str()
                    .is_some_and(|l| l.ends_with(&format!(":{PORT}")))),
        "no destroy_with_data with unacked bytes and local port {PORT} on {group}: {}",
        summary(&lost)
    );
    Ok(with_fallbacks(
        format!(
            "{} aborts (cause orphans, orphans={} from {}, max_orphans=0, shifts {:?}), {} born, {} gone; {doctor}; {serve}",
            ours.len(),
            ours[0]["orphans"],
            ours[0]["orphans_source"],
            shifts(&ours),
            born.len(),
            gone.len()
        ),
        fb,
    ))
}

/// This process moved into cgroup `path` (cgroup v2), and back to the root
/// on drop: sockets created meanwhile belong to it, and their memory is
/// charged to it.
struct InCgroup {
    path: std::path::PathBuf,
}

impl InCgroup {
    fn enter(name: &str) -> Result<InCgroup> {
        let path = std::path::Path::new("/sys/fs/cgroup").join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        std::fs::write(path.join("cgroup.procs"), "0").context("enter the cgroup")?;
        Ok(InCgroup { path })
    }

    fn memcg_sock(&self) -> Option<u64> {
        crate::memory_stat_sock(&self.path)
    }
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/fs/cgroup/cgroup.procs", "0");
    }
}

/// Owners on a real cgroup v2 host: sockets made inside a tenant cgroup
/// (memory controller on) are grouped under it by `--group-by cgroup`, with
/// the bytes its memory.stat `sock` charges within the explained
/// difference; orphans it closes name it, and on the tiers that see
/// `tcp_close` the closing process too.
pub fn owners(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7003;
    let name = format!("tenant-{expect_tier}");
    let mut args = tier_args.to_vec();
    args.extend(["--group-by", "cgroup"]);
    let trace = Trace::start(netmem, &args)?;
    let cg = InCgroup::enter(&name)?;
    let (l, mut s) = stuck(PORT, 12, 256 * 1024)?;
    // Four servers close with data queued: orphans, closed by this process.
    let closed = s.servers.split_off(8);
    drop(closed);
    sleep(Duration::from_millis(1200));
    let memcg = cg.memcg_sock();
    let lines = trace.stop()?;
    drop((l, s));
    let group = format!("cgroup:/{name}");
    let last = crate::last_groups(&lines);
    let g = last
        .iter()
        .find(|g| g["group"] == group.as_str())
        .ok_or_else(|| {
            anyhow!(
                "no group {group} in {}",
                summary(&last.iter().collect::<Vec<_>>())
            )
        })?;
    let held: u64 = ["rmem_bytes", "wmem_queued_bytes", "fwd_alloc_bytes"]
        .iter()
        .map(|k| g[*k].as_u64().unwrap_or(0))
        .sum();
    ensure!(held > 1_000_000, "{group} holds only {held} bytes: {g}");
    let shown = g["memcg_sock_bytes"].as_u64();
    let m = memcg.ok_or_else(|| anyhow!("no memory.stat sock for {group}"))?;
    ensure!(
        shown.is_some(),
        "netmem shows no memcg_sock_bytes for {group}: {g}"
    );
    // memory.stat sock is charged in pages as buffers are allocated; the
    // sockets' own figures are bytes (forward allocation included). They
    // agree within a page or two per socket when read at one moment: the
    // memcg figure netmem read in the same pass as the sockets. (The
    // test's own read of memory.stat comes an interval or more later, on a
    // slow guest after orphans changed their queues: it failed once on 5.10
    // by 85 pages. It only has to show the figure is memory.stat's.)
    let slack = 2 * 4096 * 25;
    let shown = shown.unwrap_or(0);
    ensure!(
        shown + slack >= held && shown <= held + held / 4 + slack,
        "memory.stat sock {shown} (read by netmem with the sockets) vs the cgroup's sockets {held}"
    );
    ensure!(
        m.abs_diff(shown) <= shown / 4 + slack,
        "memory.stat sock {m} read now, {shown} as netmem read it: not the same figure"
    );
    let born: Vec<&Value> = events(&lines, "orphan_born")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(
        born.len() == 4,
        "orphan_born on {group}: {}",
        summary(&born)
    );
    for e in &born {
        let o = &e["owner"];
        ensure!(o["cgroup"] == format!("/{name}").as_str(), "owner: {e}");
        if expect_tier != "tracepoint" && e["tier"] != "polling" {
            ensure!(
                o["via"] == "closer" && o["pid"] == std::process::id(),
                "the closer (pid {}) is not named: {e}",
                std::process::id()
            );
        }
    }
    drop(cg);
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{name}"));
    Ok(format!(
        "{group}: {held} bytes held, memory.stat sock {m}; {} orphans named (via {})",
        born.len(),
        born[0]["owner"]["via"]
    ))
}

/// tcp_mem made tiny while clients do not read: the next allocation enters
/// memory pressure, closes with queued data are aborted for tcp_mem, and
/// restoring tcp_mem and freeing memory leaves pressure.
pub fn tcp_mem(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7002;
    let served = Served::start(netmem, tier_args)?;
    let trace = Trace::start(netmem, tier_args)?;
    let (l, s) = stuck(PORT, 8, 1 << 20)?;
    sleep(Duration::from_millis(300));
    let mem = Sysctl::set("net/ipv4/tcp_mem", "1 1 1")?;
    // One more connection moving data: its allocations cross tcp_mem[1].
    let mut c = TcpStream::connect(("127.0.0.1", PORT))?;
    let (mut srv, _) = l.accept()?;
    c.set_nonblocking(true)?;
    let _ = c.write(&[1u8; 32 * 1024]);
    srv.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 65536];
    let _ = std::io::Read::read(&mut srv, &mut buf);
    sleep(Duration::from_millis(400));
    drop(s.servers);
    sleep(Duration::from_millis(500));
    drop(mem);
    drop(s.clients);
    drop((c, srv));
    // Anything freed now finds usage under tcp_mem[0] and leaves pressure.
    let extra = TcpStream::connect(("127.0.0.1", PORT))?;
    let (mut es, _) = l.accept()?;
    let _ = (&extra).write(&[2u8; 4096]);
    let _ = std::io::Read::read(&mut es, &mut buf);
    drop((extra, es));
    sleep(Duration::from_millis(900));
    let lines = trace.stop()?;
    emit_recording("tcp_mem", expect_tier, &lines);
    let exposition = served.finish()?;
    let fb = check_tiers(
        &lines,
        &[HookId::TcpCheckOom, HookId::MemoryPressure],
        expect_tier,
    )?;
    let group = format!("listen:{PORT}");
    let serve = check_served(&exposition, &group, "tcp_mem")?;
    let pressure = crate::serve::sample(&exposition, "netmem_tcp_memory_pressure_seconds_total")
        .unwrap_or(0.0);
    ensure!(pressure > 0.0, "serve: no time under memory pressure");
    let ours = aborts_on(&lines, &group)?;
    for e in &ours {
        ensure!(e["cause"] == "tcp_mem", "cause is not tcp_mem: {e}");
        ensure!(e["tcp_mem_pages"][2] == 1, "tcp_mem[2] not 1: {e}");
    }
    let enter = events(&lines, "memory_pressure_enter");
    let leave = events(&lines, "memory_pressure_leave");
    ensure!(!enter.is_empty(), "no memory_pressure_enter");
    ensure!(!leave.is_empty(), "no memory_pressure_leave");
    ensure!(
        leave.iter().any(|e| e["duration_ms"].as_f64().is_some()),
        "leave without duration: {}",
        summary(&leave)
    );
    let doctor = check_doctor(netmem, &lines, "tcp_mem", &group)?;
    Ok(with_fallbacks(
        format!(
            "{} aborts (cause tcp_mem, allocated {} pages > tcp_mem[2]=1), pressure entered and left after {:.0} ms; {doctor}; {serve}, {pressure:.3} s under pressure",
            ours.len(),
            ours[0]["allocated_pages"],
            leave[0]["duration_ms"].as_f64().unwrap_or(-1.0)
        ),
        fb,
    ))
}

/// Runs `f` on a thread inside network namespace `/run/netns/NAME`;
/// sockets it creates stay in that namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::rig::enter_netns(name)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("namespace thread panicked"))?
    })
}

/// Three namespaces owned by the scenario: client -- router -- server, the
/// router's link to the server with MTU 1280.
pub struct RouterTopology {
    pub client: String,
    names: Vec<String>,
}

/// Runs `ip ARGS`; its stderr becomes the error.
pub fn ip(args: &[&str]) -> Result<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip (install iproute2)")?;
    ensure!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr).trim()
    );
    Ok(())
}

impl RouterTopology {
    pub fn new(tag: &str) -> Result<RouterTopology> {
        let p = format!("nm{}{tag}", std::process::id() % 10000);
        let (c, r, s) = (format!("{p}c"), format!("{p}r"), format!("{p}s"));
        let t = RouterTopology {
            client: c.clone(),
            names: vec![c.clone(), r.clone(), s.clone()],
        };
        for n in &t.names {
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n", &c, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", &r,
        ])?;
        ip(&[
            "-n", &r, "link", "add", "r1", "type", "veth", "peer", "name", "s0", "netns", &s,
        ])?;
        for (ns, dev, v4, v6, mtu) in [
            (&c, "c0", "10.1.0.1/24", "fd01::1/64", "1500"),
            (&r, "r0", "10.1.0.2/24", "fd01::2/64", "1500"),
            (&r, "r1", "10.2.0.1/24", "fd02::1/64", "1280"),
            (&s, "s0", "10.2.0.2/24", "fd02::2/64", "1280"),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev])?;
            ip(&["-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad"])?;
            ip(&["-n", ns, "link", "set", dev, "mtu", mtu, "up"])?;
        }
        ip(&["-n", &c, "route", "add", "10.2.0.0/24", "via", "10.1.0.2"])?;
        ip(&[
            "-n",
            &c,
            "-6",
            "route",
            "add",
            "fd02::/64",
            "via",
            "fd01::2",
        ])?;
        ip(&["-n", &s, "route", "add", "default", "via", "10.2.0.1"])?;
        ip(&["-n", &s, "-6", "route", "add", "default", "via", "fd02::1"])?;
        in_netns(&r, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
            Ok(())
        })?;
        // The links' own (link-local) addresses still run duplicate address
        // detection; until it ends, IPv6 neighbours and the router's
        // "packet too big" may not answer. A fast tracer start would then
        // send before the path exists.
        let deadline = Instant::now() + Duration::from_secs(5);
        for n in &t.names {
            while Instant::now() < deadline {
                let o = Command::new("ip")
                    .args(["-n", n, "-6", "addr", "show", "tentative"])
                    .output()?;
                if o.stdout.is_empty() {
                    break;
                }
                sleep(Duration::from_millis(50));
            }
        }
        Ok(t)
    }
}

impl Drop for RouterTopology {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn set_int(fd: i32, level: i32, opt: i32, v: i32) -> Result<()> {
    // SAFETY: setsockopt with a valid int option.
    let r = unsafe { libc::setsockopt(fd, level, opt, &v as *const i32 as *const libc::c_void, 4) };
    ensure!(r == 0, "setsockopt: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Datagrams too big for the router's next link, with "don't fragment":
/// the router answers with ICMP "fragmentation needed" / "packet too big",
/// and the client's kernel records a route exception with PMTU 1280.
pub fn routes(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    let topo = RouterTopology::new("rt")?;
    let mut args = vec!["--netns", topo.client.as_str()];
    args.extend_from_slice(tier_args);
    let trace = Trace::start(netmem, &args)?;
    in_netns(&topo.client, || {
        let v4 = UdpSocket::bind("0.0.0.0:0")?;
        set_int(
            v4.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        let v6 = UdpSocket::bind("[::]:0")?;
        set_int(
            v6.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        let big = [0u8; 1400];
        for _ in 0..5 {
            // EMSGSIZE once the exception exists: that is the point.
            let _ = v4.send_to(&big, "10.2.0.2:9");
            let _ = v6.send_to(&big, "[fd02::2]:9");
            sleep(Duration::from_millis(200));
        }
        Ok(())
    })?;
    sleep(Duration::from_millis(800));
    let lines = trace.stop()?;
    let fb = check_tiers(
        &lines,
        &[HookId::RouteExceptionV4, HookId::RouteExceptionV6],
        expect_tier,
    )?;
    let all = events(&lines, "route_exception");
    for (dst, fam) in [("10.2.0.2", "ipv4"), ("fd02::2", "ipv6")] {
        let hit = all
            .iter()
            .find(|e| e["dst"] == dst && e["pmtu"] == 1280 && e["family"] == fam);
        ensure!(
            hit.is_some(),
            "no {fam} route exception for {dst} with pmtu 1280: {}",
            summary(&all)
        );
    }
    let per_s = lines
        .iter()
        .filter(|v| v["type"] == "context")
        .filter_map(|v| v["route_exceptions"]["inserted"].as_u64())
        .sum::<u64>();
    ensure!(per_s > 0, "interval lines show no route exception growth");
    Ok(with_fallbacks(
        format!(
            "{} route exceptions (10.2.0.2 and fd02::2, pmtu 1280), {per_s} counted in intervals",
            all.len()
        ),
        fb,
    ))
}
