//! Socket pressure local to a cgroup, for real: a "pod" slice with a small
//! `memory.max` and a "container" under it without a limit of its own;
//! sockets made in the container queue data a peer never reads until the
//! slice's limit pushes back, while the host's TCP memory stays far below
//! tcp_mem[1]. netmem must read the limit from the slice (the walk up),
//! say the event, and its doctor must name the container's cgroup.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

use super::{doctor_from, events, summary, Sysctl, Trace};

/// The slice's limit: small against the guest's tcp_mem[1] (about 90 MiB
/// in a 1.5 GiB guest), large against what the scenario's own process
/// needs (it is not in the cgroup while it fills the sockets).
const LIMIT: u64 = 24 << 20;
const SLICE: &str = "memcg-pod.slice";
const CTR: &str = "ctr";

/// The slice and its container, removed on drop (once empty: the sockets
/// charged to them are closed first).
struct Pod {
    slice: PathBuf,
    ctr: PathBuf,
}

impl Pod {
    fn make() -> Result<Pod> {
        let slice = Path::new("/sys/fs/cgroup").join(SLICE);
        let ctr = slice.join(CTR);
        std::fs::create_dir_all(&ctr).with_context(|| format!("mkdir {}", ctr.display()))?;
        std::fs::write(slice.join("memory.max"), LIMIT.to_string()).context("slice memory.max")?;
        std::fs::write(slice.join("cgroup.subtree_control"), "+memory")
            .context("memory controller for the container")?;
        Ok(Pod { slice, ctr })
    }

    fn read(&self, dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap_or_default()
    }

    fn current(&self) -> u64 {
        self.read(&self.slice, "memory.current")
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// The slice's `memory.events` `max` (hierarchical: where the limit
    /// is, the pushes back are counted).
    fn events_max(&self) -> u64 {
        self.read(&self.slice, "memory.events")
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.ctr);
        let _ = std::fs::remove_dir(&self.slice);
    }
}

/// Runs `f` with this process in the container's cgroup: sockets made (and
/// accepted) meanwhile are charged to it for good (`sk_memcg` is set at
/// creation), while the process itself goes back to the root before
/// anything grows, so the slice's memory controller has no task to
/// OOM-kill (the scenario runner is the guest's init).
fn in_cgroup<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::fs::write(dir.join("cgroup.procs"), "0").context("enter the container's cgroup")?;
    let r = f();
    std::fs::write("/sys/fs/cgroup/cgroup.procs", "0").context("back to the root cgroup")?;
    r
}

fn set_sndbuf(s: &TcpStream, bytes: libc::c_int) -> Result<()> {
    // SAFETY: `s` is an open socket this process owns; the option value is
    // a c_int that lives across the call, and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(r == 0, "SO_SNDBUF: {}", std::io::Error::last_os_error());
    Ok(())
}

pub fn memcg(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7005;
    const CONNS: usize = 12;
    // Send buffers large enough that the limit, not SO_SNDBUF, stops the
    // queues (the kernel doubles the value).
    let _wmem = Sysctl::set("net/core/wmem_max", "8388608")?;
    let pod = Pod::make()?;
    let mut args = tier_args.to_vec();
    args.extend(["--group-by", "cgroup"]);
    let trace = Trace::start(netmem, &args)?;
    let events_before = pod.events_max();
    let (listener, clients, servers) = in_cgroup(&pod.ctr, || {
        let l = TcpListener::bind(("127.0.0.1", PORT)).context("bind")?;
        let clients: Vec<TcpStream> = (0..CONNS)
            .map(|_| TcpStream::connect(("127.0.0.1", PORT)))
            .collect::<std::io::Result<_>>()?;
        let servers: Vec<TcpStream> = (0..CONNS)
            .map(|_| l.accept().map(|a| a.0))
            .collect::<std::io::Result<_>>()?;
        Ok((l, clients, servers))
    })?;
    for s in &servers {
        set_sndbuf(s, 4 << 20)?;
        s.set_nonblocking(true)?;
    }
    // Queue until the limit pushes back: the slice at its limit, or every
    // socket refused more, for at most a few seconds. Not further: on 5.10
    // a socket's charge past the limit is forced (the queues keep growing
    // past memory.max), and the host's TCP memory with them.
    let chunk = vec![0x6du8; 64 * 1024];
    let t0 = Instant::now();
    let mut queued = 0u64;
    let mut refused_since: Option<Instant> = None;
    while t0.elapsed() < Duration::from_secs(8) {
        if pod.current() >= LIMIT {
            break;
        }
        let mut wrote = false;
        for s in &servers {
            match (&*s).write(&chunk) {
                Ok(n) => {
                    queued += n as u64;
                    wrote = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("write"),
            }
        }
        if wrote {
            refused_since = None;
        } else {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(800) {
                break;
            }
            sleep(Duration::from_millis(20));
        }
    }
    let current = pod.current();
    let events_after = pod.events_max();
    // A few intervals of the trace with the queues held.
    sleep(Duration::from_millis(1500));
    let lines = trace.stop()?;
    drop((listener, clients, servers));
    let ctr_path = format!("/{SLICE}/{CTR}");
    let group = format!("cgroup:{ctr_path}");
    ensure!(
        current * 10 >= LIMIT * 9,
        "the slice's memory.current is {current} of {LIMIT} after queueing {queued} bytes: the limit did not push back"
    );
    // The host far from its own pressure, every interval.
    let mut host_peak = (0u64, 0u64);
    for c in lines.iter().filter(|v| v["type"] == "context") {
        let allocated = c["memory_allocated_pages"].as_u64().unwrap_or(0);
        let pressure = c["tcp_mem_pages"][1]
            .as_u64()
            .ok_or_else(|| anyhow!("no tcp_mem_pages in {c}"))?;
        ensure!(
            allocated * 2 < pressure,
            "the host's TCP memory ({allocated} pages) is not far below tcp_mem[1] ({pressure}): {c}"
        );
        host_peak = host_peak.max((allocated, pressure));
    }
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
    ensure!(
        g["memory_limit_bytes"] == LIMIT
            && g["memory_limit_cgroup"] == format!("/{SLICE}").as_str(),
        "{group}'s limit is not the slice's {LIMIT}: {g}"
    );
    ensure!(
        g["memory_max_bytes"] == Value::Null && g.get("memory_max_bytes").is_some(),
        "{group} has a memory.max of its own? {g}"
    );
    ensure!(
        g["memcg_sock_bytes"].as_u64().unwrap_or(0) > LIMIT / 2,
        "{group}: memory.stat sock is not most of the limit: {g}"
    );
    let began: Vec<&Value> = events(&lines, "cgroup_socket_pressure");
    ensure!(
        began
            .iter()
            .any(|e| e["owner"]["cgroup"] == ctr_path.as_str() && e["group"] == group.as_str()),
        "no cgroup_socket_pressure event for {ctr_path}: {}",
        summary(&began)
    );
    let findings = doctor_from(netmem, &lines, &format!("memcg-{expect_tier}"))?;
    let f = findings
        .iter()
        .find(|f| f["id"] == "cgroup.socket_pressure")
        .ok_or_else(|| {
            anyhow!(
                "the doctor has no cgroup.socket_pressure finding: {}",
                summary(&findings.iter().collect::<Vec<_>>())
            )
        })?;
    let title = f["title"].as_str().unwrap_or("");
    ensure!(
        title.contains(&ctr_path) && f["fired"] == true,
        "the finding does not name {ctr_path}: {f}"
    );
    let text = f.to_string();
    ensure!(
        text.contains(&format!("ancestor /{SLICE}")) && text.contains("memory.max"),
        "the finding does not say the slice sets the limit: {f}"
    );
    let _ = std::fs::remove_dir(&pod.ctr);
    Ok(format!(
        "{group}: slice current {current} of {LIMIT}, memory.events max {events_before} -> {events_after}, {queued} bytes queued, sock {}; host TCP at most {} pages vs tcp_mem[1] {}; {} event(s); doctor: {title}",
        g["memcg_sock_bytes"],
        host_peak.0,
        host_peak.1,
        began.len()
    ))
}
