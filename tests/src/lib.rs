//! Harness for netmem's integration tests: network namespaces the tests own,
//! the netmem binary under test, and `ss` as the reference.

pub mod no_btf;
pub mod rig;
pub mod scenarios;
pub mod serve;
pub mod synthetic;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// Tests load eBPF programs and create namespaces: they need root. Failing
/// (not skipping) keeps a non-root run from looking green.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "netmem's integration tests must run as root (they load eBPF and create network namespaces)");
}

/// A binary of this workspace: $NETMEM_BIN for netmem if set, else the one
/// beside this binary (a tool in target/release) or in this test's profile
/// dir (tests run from target/debug/deps; `cargo xtask test` builds both).
pub fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let beside = dir.join(name);
    let p = if beside.exists() {
        beside
    } else {
        dir.parent().unwrap().join(name)
    };
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` or `cargo xtask test`",
        p.display()
    );
    p
}

/// The repository's root (README.md, BENCHMARKS.md, packaging/).
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

pub fn netmem_bin() -> PathBuf {
    match std::env::var("NETMEM_BIN") {
        Ok(p) => p.into(),
        Err(_) => target_bin("netmem"),
    }
}

/// netmem run as `nobody` with no capability at all (`setpriv`), as an
/// unprivileged user would.
pub fn netmem_as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(netmem_bin())
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

pub fn load_bin() -> PathBuf {
    target_bin("netmem-load")
}

/// A network namespace with only `lo`, removed on drop. Sysctls and sockets
/// inside it never touch the machine's own network.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "netmem-t{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            tag
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    /// A namespace created from inside `parent`: it takes `parent`'s
    /// `net.ipv4.tcp_child_ehash_entries` (a hash table of its own when
    /// set there, Linux 5.19+), without touching the machine's setting.
    pub fn new_child_of(parent: &Netns, tag: &str) -> Netns {
        let name = format!(
            "netmem-t{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            tag
        );
        // nsenter, not `ip netns exec`: the new name must be mounted in
        // this mount namespace, where the exec's private one would hide it.
        run_ok(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", parent.name))
                .args(["ip", "netns", "add", &name]),
        );
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts `netmem-load` and waits for its `ready`.
    pub fn load(&self, args: &[&str]) -> Held {
        self.load_with(args, None)
    }

    /// `load`, with netmem-load started inside `cgroup` (moved there
    /// before it execs, so every socket it creates belongs to it).
    pub fn load_in(&self, cgroup: &TestCgroup, args: &[&str]) -> Held {
        self.load_with(args, Some(cgroup))
    }

    fn load_with(&self, args: &[&str], cgroup: Option<&TestCgroup>) -> Held {
        let mut cmd = self.cmd(load_bin());
        if let Some(cg) = cgroup {
            start_in_cgroup(&mut cmd, &cg.path);
        }
        cmd.args(args);
        Held::start(&mut cmd)
    }

    /// netmem runs in the host namespace and looks into this one with
    /// --netns, as an operator would from the host.
    pub fn netmem(&self, args: &[&str]) -> Output {
        Command::new(netmem_bin())
            .args(args)
            .args(["--netns", &self.name])
            .output()
            .expect("run netmem")
    }

    /// Starts netmem and returns once it printed its probes line (`trace
    /// --json` prints the host line, then probes): from then on every hook
    /// is live.
    pub fn netmem_streaming(&self, args: &[&str]) -> Streaming {
        let mut child = Command::new(netmem_bin())
            .args(args)
            .args(["--netns", &self.name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netmem");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let first = until_probes(&mut out);
        // The rest is read as it comes: a reader that stops reading would
        // block netmem's output (and so its loop) on a full pipe.
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
            rest
        });
        Streaming {
            child,
            rest: Some(rest),
            first,
        }
    }

    /// `ss -tmnH` in the namespace, parsed.
    pub fn ss(&self) -> Vec<SsSocket> {
        let o = self.cmd("ss").args(["-tamnH"]).output().expect("ss");
        assert!(o.status.success());
        parse_ss(&String::from_utf8_lossy(&o.stdout))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `cmd` starts inside the cgroup v2 directory `cgroup` (moved there
/// before it execs, so every socket it creates belongs to it).
pub fn start_in_cgroup(cmd: &mut Command, cgroup: &std::path::Path) {
    let procs =
        std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: open,
    // write and close on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A cgroup's `memory.stat` `sock`, read by the test itself (not through
/// netmem, whose figure it checks), when it has a v2 memory controller.
pub fn memory_stat_sock(cgroup: &std::path::Path) -> Option<u64> {
    let s = std::fs::read_to_string(cgroup.join("memory.stat")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("sock "))
        .and_then(|v| v.trim().parse().ok())
}

/// A cgroup v2 the test owns, under `netmem-test-PID/` at the cgroup2
/// root; removed (with the subtree, once empty) on drop. Nothing else on
/// the machine is moved or limited.
pub struct TestCgroup {
    pub path: PathBuf,
    /// As netmem names it: the path under the cgroup2 mount.
    pub rel: String,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let root = netmem::sources::owners::cgroup2_mount()
            .expect("a cgroup2 mount (cgroup v2 or hybrid)");
        let parent = root.join(format!("netmem-test-{}", std::process::id()));
        let _ = std::fs::create_dir(&parent);
        let path = parent.join(format!("{name}-{}", SEQ.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", path.display()));
        let rel = format!("/{}", path.strip_prefix(&root).unwrap().display());
        TestCgroup { path, rel }
    }

    /// The cgroup's id, as sock_diag and bpf_get_current_cgroup_id give it.
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).unwrap().ino()
    }

    /// `memory.stat`'s `sock`, when this cgroup has a v2 memory controller.
    pub fn memcg_sock(&self) -> Option<u64> {
        memory_stat_sock(&self.path)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The processes have exited by now (their Held dropped first); a
        // cgroup is removed with rmdir once empty.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

pub struct Held {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Held {
    /// Starts `cmd` (netmem-load, however wrapped) and waits for its
    /// `ready`.
    pub fn start(cmd: &mut Command) -> Held {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn netmem-load");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{cmd:?} did not get ready");
        Held {
            stdin: child.stdin.take(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub struct Streaming {
    pub child: Child,
    rest: Option<std::thread::JoinHandle<String>>,
    pub first: String,
}

impl Streaming {
    /// Waits for exit; returns every JSON line including the first.
    pub fn finish(mut self) -> Vec<Value> {
        let rest = self.rest.take().unwrap().join().unwrap();
        let st = self.child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(st.success(), "netmem failed: {err}");
        json_lines(&(self.first.clone() + &rest))
    }
}

/// Reads lines up to and including the probes line (or the end); returns
/// them all. `trace --json` is live from the probes line on.
pub fn until_probes(out: &mut impl BufRead) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all += &line;
        if line.contains("\"type\":\"probes\"") || line.starts_with("probes:") {
            return all;
        }
    }
}

pub fn run_ok(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn ok_json(o: &Output) -> Vec<Value> {
    assert!(
        o.status.success(),
        "netmem failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json_lines(&String::from_utf8_lossy(&o.stdout))
}

/// Runs `netmem-load SCENARIO` on PORT with N connections, then a short
/// `netmem trace --json`, then `ss`: the JSON lines, the ss sockets, and the
/// last interval's group lines, all taken while the load holds its sockets
/// (until the returned `Held` is dropped).
pub fn trace_while_loaded(
    ns: &Netns,
    scenario: &str,
    port: u16,
    conns: usize,
) -> (Held, Vec<Value>, Vec<SsSocket>, Vec<Value>) {
    let load = ns.load(&[
        scenario,
        "--port",
        &port.to_string(),
        "--conns",
        &conns.to_string(),
    ]);
    let lines = ok_json(&ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "700ms",
        "--duration",
        "1600ms",
    ]));
    let ss = ns.ss();
    let groups = last_groups(&lines);
    (load, lines, ss, groups)
}

/// The group lines of the last interval (or of a snapshot).
pub fn last_groups(lines: &[Value]) -> Vec<Value> {
    let last_ctx = lines
        .iter()
        .rposition(|v| v["type"] == "context")
        .expect("no context line");
    lines[last_ctx..]
        .iter()
        .filter(|v| v["type"] == "group")
        .cloned()
        .collect()
}

pub fn group<'a>(groups: &'a [Value], name: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {groups:#?}"))
}

#[derive(Debug, Default, Clone)]
pub struct SsSocket {
    pub state: String,
    pub local_port: u16,
    pub peer: String,
    pub peer_port: u16,
    /// With `ss -e`: the inode; 0 for an orphan.
    pub ino: Option<u64>,
    pub r: u64,
    pub w: u64,
    pub f: u64,
}

fn port_of(ep: &str) -> u16 {
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Parses `ss -tamnH` output: a socket line, then (with -m) its
/// `skmem:(r..,rb..,t..,tb..,f..,w..,o..,bl..,d..)` on the same or next line.
pub fn parse_ss(s: &str) -> Vec<SsSocket> {
    let mut out: Vec<SsSocket> = Vec::new();
    for line in s.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.is_empty() {
            continue;
        }
        if !toks[0].starts_with("skmem") && toks.len() >= 5 {
            out.push(SsSocket {
                state: toks[0].into(),
                local_port: port_of(toks[3]),
                peer: toks[4].into(),
                peer_port: port_of(toks[4]),
                ..Default::default()
            });
        }
        if let (Some(cur), Some(ino)) = (
            out.last_mut(),
            toks.iter().find_map(|t| t.strip_prefix("ino:")),
        ) {
            cur.ino = ino.parse().ok();
        }
        if let (Some(cur), Some(sk)) = (
            out.last_mut(),
            toks.iter().find(|t| t.starts_with("skmem:(")),
        ) {
            for f in sk
                .trim_start_matches("skmem:(")
                .trim_end_matches(')')
                .split(',')
            {
                let (k, v) = f.split_at(f.find(|c: char| c.is_ascii_digit()).unwrap_or(f.len()));
                let v: u64 = v.parse().unwrap_or(0);
                match k {
                    "r" => cur.r = v,
                    "w" => cur.w = v,
                    "f" => cur.f = v,
                    _ => {}
                }
            }
        }
    }
    out
}

/// |a - b| <= 10% of b (and both non-zero).
pub fn within_10pct(a: u64, b: u64) -> bool {
    a > 0 && b > 0 && (a as f64 - b as f64).abs() <= 0.10 * b as f64
}

/// CPU seconds (user + system) process `pid` has used so far; 0 when gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name (which may hold spaces);
    // of the numeric ones, utime and stime are the 11th and 12th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.get(10)
        .zip(f.get(11))
        .map_or(0.0, |(u, s)| (u + s) as f64 / hz)
}

/// Resident set size of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of process `pid` so far (VmHWM), KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Counts loaded BPF programs named like netmem's (via /proc fdinfo is not
/// global, so ask the kernel through bpftool-free means: the program id
/// space, read with BPF_PROG_GET_NEXT_ID).
pub fn loaded_netmem_programs() -> usize {
    let mut n = 0;
    let mut id: u32 = 0;
    loop {
        let mut attr = [0u32; 32];
        attr[0] = id;
        // BPF_PROG_GET_NEXT_ID = 11
        // SAFETY: attr is a zeroed buffer larger than union bpf_attr's
        // members this command reads and writes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                11,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if r != 0 {
            break;
        }
        id = attr[1];
        // BPF_PROG_GET_FD_BY_ID = 13
        let mut a2 = [0u32; 32];
        a2[0] = id;
        // SAFETY: as above; the returned fd is ours and closed below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                13,
                a2.as_mut_ptr(),
                std::mem::size_of_val(&a2),
            )
        };
        if fd < 0 {
            continue;
        }
        // BPF_OBJ_GET_INFO_BY_FD = 15: struct bpf_prog_info's name is at byte 64.
        let mut info = [0u8; 256];
        let mut a3 = [0u64; 4];
        a3[0] = fd as u64 | ((info.len() as u64) << 32);
        a3[1] = info.as_mut_ptr() as u64;
        // SAFETY: the kernel writes at most info.len() bytes into info,
        // which outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                15,
                a3.as_mut_ptr(),
                std::mem::size_of_val(&a3),
            )
        };
        // SAFETY: fd came from BPF_PROG_GET_FD_BY_ID and is closed once.
        unsafe { libc::close(fd as i32) };
        if r == 0 {
            let name = String::from_utf8_lossy(&info[64..80])
                .trim_end_matches('\0')
                .to_string();
            if [
                "inet_sock_set_s",
                "sock_exceed_buf",
                "sock_rcvqueue_f",
                "tcp_send_reset",
                "tcp_destroy_soc",
                "kfree_skb",
            ]
            .contains(&name.as_str())
            {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ss_with_skmem_on_next_line() {
        let s = "ESTAB 0 2626560 127.0.0.1:18080 127.0.0.1:45678\n\t skmem:(r0,rb131072,t0,tb2626560,f4096,w2637824,o0,bl0,d3)\nLISTEN 0 128 127.0.0.1:18080 0.0.0.0:*\n\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)\n";
        let v = parse_ss(s);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].local_port, v[0].peer_port, v[0].w, v[0].f),
            (18080, 45678, 2637824, 4096)
        );
        assert_eq!(v[1].state, "LISTEN");
    }
}
