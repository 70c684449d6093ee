//! The HAProxy test rig: Debian's `haproxy` in a network namespace of its
//! own, with one frontend and N backends (small HTTP servers that serve
//! bodies of any size), and a mix of clients in a second namespace behind a
//! veth pair, as real clients would be:
//!
//! - normal clients fetch a body, read it all and close, again and again;
//! - slow clients send one request for a huge body and never read, so
//!   HAProxy's frontend send queues fill, then HAProxy stops reading its
//!   backend connections and their receive queues fill; when HAProxy's
//!   `timeout client` fires it closes them with data still queued, which
//!   leaves orphans holding that data;
//! - vanishing clients read part of a response and disappear (close with
//!   unread data, which resets the connection).
//!
//! `cargo xtask rig` runs it for people; the integration test `rig` and
//! `cargo xtask bench` use it too. HAProxy's configuration is written by
//! [`haproxy_config`] into the rig's own directory, never read from the
//! system's.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::scenarios::{in_netns, ip};

/// The rig's frontend as clients see it (the rig side of the veth pair).
pub const FRONTEND_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const CLIENT_ADDR: &str = "10.77.0.2/24";

#[derive(Clone, Debug)]
pub struct RigConfig {
    /// Namespace names are `NAME` (HAProxy and backends) and `NAME-c` (clients).
    pub name: String,
    pub frontend_port: u16,
    /// Each backend is an HTTP server on 127.0.0.1:PORT inside the rig.
    pub backend_ports: Vec<u16>,
    pub normal: usize,
    pub slow: usize,
    pub vanishing: usize,
    /// Body size a normal client fetches.
    pub normal_body: u64,
    /// Body size slow and vanishing clients ask for (more than any queue holds).
    pub huge_body: u64,
    /// Bytes a vanishing client reads before it disappears.
    pub vanish_after: u64,
    /// How long a vanishing client holds its half-read response.
    pub vanish_hold: Duration,
    /// HAProxy's `timeout client`: how long it waits on a client that does
    /// not read before closing the connection (and orphaning its data).
    pub client_timeout: Duration,
    /// Sysctls set in HAProxy's namespace before anything starts (the
    /// per-namespace ones, e.g. net.ipv4.tcp_wmem), for tuning sessions.
    pub sysctls: Vec<(String, String)>,
    /// SO_SNDBUF of the backends' connections, when set: the seed
    /// scenario's servers stand for machines elsewhere, whose send queues
    /// are not the proxy host's memory, so they keep theirs small.
    pub server_sndbuf: Option<usize>,
}

impl Default for RigConfig {
    fn default() -> Self {
        RigConfig {
            name: "netmem-rig".into(),
            frontend_port: 8080,
            backend_ports: vec![9001, 9002],
            normal: 2,
            slow: 8,
            vanishing: 2,
            normal_body: 64 * 1024,
            huge_body: 1 << 40,
            vanish_after: 64 * 1024,
            vanish_hold: Duration::from_millis(300),
            server_sndbuf: None,
            client_timeout: Duration::from_secs(30),
            sysctls: Vec::new(),
        }
    }
}

/// HAProxy's configuration for the rig: HTTP mode, round-robin over the
/// backends, and a stats socket in the rig's directory for `show sess`.
/// maxconn stays under half of RLIMIT_NOFILE (20000 here): HAProxy needs
/// two fds per connection and refuses to start otherwise.
pub fn haproxy_config(cfg: &RigConfig, dir: &Path) -> String {
    let mut s = format!(
        "# written by netmem's rig; not read from the system\n\
         global\n    maxconn 9000\n    stats socket {}/haproxy.sock mode 600 level admin\n\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client {}ms\n    timeout server 60s\n\n\
         frontend rig\n    bind :{}\n    default_backend servers\n\n\
         backend servers\n    balance roundrobin\n",
        dir.display(),
        cfg.client_timeout.as_millis(),
        cfg.frontend_port
    );
    for (i, p) in cfg.backend_ports.iter().enumerate() {
        s += &format!("    server b{} 127.0.0.1:{p}\n", i + 1);
    }
    s
}

/// `GET /bytes/N`: the backends answer with an N-byte body.
pub fn request(body: u64) -> String {
    format!("GET /bytes/{body} HTTP/1.1\r\nHost: rig\r\nConnection: close\r\n\r\n")
}

/// The body size a request asks for (`/bytes/N`), if it is one.
pub fn requested_size(head: &str) -> Option<u64> {
    let path = head.split_whitespace().nth(1)?;
    path.strip_prefix("/bytes/")?.parse().ok()
}

/// Moves the calling thread into network namespace NAME: every socket it
/// creates from then on lives there.
pub fn enter_netns(name: &str) -> Result<()> {
    let f = File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("no network namespace {name}"))?;
    // SAFETY: setns on this thread only, with an fd we hold open.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {name}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A thread that runs `f` inside namespace NAME.
pub fn spawn_in_netns(
    name: &str,
    f: impl FnOnce() -> Result<()> + Send + 'static,
) -> JoinHandle<Result<()>> {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter_netns(&name)?;
        f()
    })
}

/// Totals the rig's clients report, for `cargo xtask rig` and the bench.
#[derive(Default, Debug)]
pub struct ClientStats {
    pub responses: AtomicU64,
    pub bytes: AtomicU64,
    pub vanished: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Rig {
    pub cfg: RigConfig,
    /// HAProxy and the backends.
    pub ns: String,
    /// The clients.
    pub client_ns: String,
    pub dir: PathBuf,
    pub frontend: SocketAddr,
    /// As HAProxy reaches them: 127.0.0.1:PORT in the rig namespace.
    pub backends: Vec<SocketAddr>,
    pub stats: Arc<ClientStats>,
    stop: Arc<AtomicBool>,
    /// Set: normal and vanishing clients finish the exchange they are in
    /// and start no new one ([`Rig::hold_clients`]).
    held: Arc<AtomicBool>,
    haproxy: Option<Child>,
    slow: Vec<TcpStream>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl Rig {
    /// Creates the namespaces, starts the backends and HAProxy, and waits
    /// until the frontend answers. Clients start with [`Rig::start_clients`].
    pub fn start(cfg: RigConfig) -> Result<Rig> {
        let haproxy = which("haproxy").ok_or_else(|| {
            anyhow!("haproxy not found: install Debian's package (`apt-get install haproxy`)")
        })?;
        let ns = cfg.name.clone();
        let client_ns = format!("{}-c", cfg.name);
        let dir = std::env::temp_dir().join(format!("{}-{}", cfg.name, std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut rig = Rig {
            frontend: SocketAddr::V4(SocketAddrV4::new(FRONTEND_ADDR, cfg.frontend_port)),
            backends: cfg
                .backend_ports
                .iter()
                .map(|p| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, *p)))
                .collect(),
            cfg,
            ns,
            client_ns,
            dir,
            stats: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            held: Arc::new(AtomicBool::new(false)),
            haproxy: None,
            slow: Vec::new(),
            threads: Vec::new(),
        };
        rig.topology()?;
        for port in rig.cfg.backend_ports.clone() {
            let listener = in_netns(&rig.ns, || {
                TcpListener::bind(("0.0.0.0", port))
                    .with_context(|| format!("bind backend :{port}"))
            })?;
            let stop = rig.stop.clone();
            let sndbuf = rig.cfg.server_sndbuf;
            rig.threads.push(std::thread::spawn(move || {
                serve_with(listener, stop, sndbuf)
            }));
        }
        let conf = rig.dir.join("haproxy.cfg");
        std::fs::write(&conf, haproxy_config(&rig.cfg, &rig.dir))?;
        let log = File::create(rig.dir.join("haproxy.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &rig.ns])
            .arg(&haproxy)
            .args(["-db", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start haproxy")?;
        rig.haproxy = Some(child);
        rig.wait_for_frontend()?;
        Ok(rig)
    }

    fn topology(&self) -> Result<()> {
        for n in [&self.ns, &self.client_ns] {
            // A namespace left by a killed run would make `add` fail.
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        for (k, v) in &self.cfg.sysctls {
            let o = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns,
                    "sysctl",
                    "-qw",
                    &format!("{k}={v}"),
                ])
                .output()
                .context("cannot run sysctl")?;
            ensure!(
                o.status.success(),
                "sysctl {k}={v} in {}: {}",
                self.ns,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        ip(&[
            "-n",
            &self.ns,
            "link",
            "add",
            "rig0",
            "type",
            "veth",
            "peer",
            "name",
            "rig1",
            "netns",
            &self.client_ns,
        ])?;
        ip(&[
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{FRONTEND_ADDR}/24"),
            "dev",
            "rig0",
        ])?;
        ip(&[
            "-n",
            &self.client_ns,
            "addr",
            "add",
            CLIENT_ADDR,
            "dev",
            "rig1",
        ])?;
        ip(&["-n", &self.ns, "link", "set", "rig0", "up"])?;
        ip(&["-n", &self.client_ns, "link", "set", "rig1", "up"])?;
        Ok(())
    }

    fn wait_for_frontend(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let fe = self.frontend;
        loop {
            let up = in_netns(&self.client_ns, || {
                Ok(TcpStream::connect_timeout(&fe, Duration::from_millis(200)).is_ok())
            })?;
            if up {
                return Ok(());
            }
            if let Some(st) = self
                .haproxy
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default();
                bail!("haproxy exited ({st}):\n{log}");
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "haproxy's frontend {fe} did not answer within 10 s"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Starts the configured mix. Slow clients come first and one at a time,
    /// so round-robin spreads them evenly over the backends.
    pub fn start_clients(&mut self) -> Result<()> {
        let (fe, huge) = (self.frontend, self.cfg.huge_body);
        self.add_slow(self.cfg.slow)?;
        for _ in 0..self.cfg.normal {
            let (stop, held) = (self.stop.clone(), self.held.clone());
            let (stats, body) = (self.stats.clone(), self.cfg.normal_body);
            self.threads.push(spawn_in_netns(&self.client_ns, move || {
                normal_client(fe, body, &stop, &held, &stats)
            }));
        }
        for _ in 0..self.cfg.vanishing {
            let (stop, held, stats) = (self.stop.clone(), self.held.clone(), self.stats.clone());
            let (after, hold) = (self.cfg.vanish_after, self.cfg.vanish_hold);
            self.threads.push(spawn_in_netns(&self.client_ns, move || {
                vanishing_client(fe, huge, after, hold, &stop, &held, &stats)
            }));
        }
        Ok(())
    }

    /// `n` more slow clients: each asks for the huge body and never reads.
    /// One at a time, so round-robin spreads them evenly over the backends.
    pub fn add_slow(&mut self, n: usize) -> Result<()> {
        let (fe, huge) = (self.frontend, self.cfg.huge_body);
        let more = in_netns(&self.client_ns, || {
            (0..n)
                .map(|_| {
                    let mut s = TcpStream::connect(fe)?;
                    s.write_all(request(huge).as_bytes())?;
                    // Until HAProxy has forwarded this request, the next one
                    // could overtake it in the round-robin.
                    sleep(Duration::from_millis(30));
                    Ok(s)
                })
                .collect::<Result<Vec<_>>>()
        })
        .context("slow clients")?;
        self.slow.extend(more);
        Ok(())
    }

    /// `n` more stalled clients: a receive buffer of `rcvbuf` bytes (set
    /// before connecting, so the window they offer stays that small), a
    /// request for `body` bytes, and nothing read. HAProxy writes the whole
    /// response into its socket and closes it: the kernel keeps an orphan
    /// holding what the client's window did not take, a little memory
    /// each, as a crowd of stalled mobile clients leaves on a proxy.
    pub fn add_stalled(&mut self, n: usize, body: u64, rcvbuf: usize) -> Result<()> {
        let fe = self.frontend;
        let more = in_netns(&self.client_ns, || {
            (0..n)
                .map(|_| {
                    let s =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                    s.set_recv_buffer_size(rcvbuf)?;
                    s.connect(&fe.into())?;
                    let mut s: TcpStream = s.into();
                    s.write_all(request(body).as_bytes())?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>>>()
        })
        .context("stalled clients")?;
        self.slow.extend(more);
        Ok(())
    }

    /// Slow and stalled clients held so far.
    pub fn stuck_clients(&self) -> usize {
        self.slow.len()
    }

    /// Closes every slow and stalled client: with data unread, each close
    /// resets its connection, which ends HAProxy's orphan of it too.
    pub fn release_stuck(&mut self) {
        self.slow.clear();
    }

    /// Holds the normal and vanishing clients still (`true`): each finishes
    /// the exchange it is in and starts no new one, so after a moment no
    /// socket of the rig moves but the slow clients' full queues, and a
    /// figure can be compared with `ss` as the same sockets at the same
    /// moment. `false` lets them go on.
    pub fn hold_clients(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    /// HAProxy's stats socket (its runtime API), `level admin`.
    pub fn stats_socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }

    /// HAProxy's configuration, as the rig wrote it.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    /// One runtime API command (e.g. `set server servers/b2 addr ...`);
    /// its answer.
    pub fn api(&self, cmd: &str) -> Result<String> {
        haproxy_api(&self.stats_socket(), cmd)
    }

    pub fn haproxy_pid(&self) -> Option<u32> {
        self.haproxy.as_ref().map(|c| c.id())
    }

    /// `ss -N NS ARGS` (ss switches namespace itself).
    pub fn ss(&self, args: &[&str]) -> Result<String> {
        let o = Command::new("ss")
            .args(["-N", &self.ns])
            .args(args)
            .output()
            .context("cannot run ss")?;
        ensure!(
            o.status.success(),
            "ss: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.slow.clear();
        if let Some(mut c) = self.haproxy.take() {
            // `ip netns exec` execs haproxy, so this is haproxy itself.
            // SAFETY: plain kill of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for n in [&self.client_ns, &self.ns] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command on a HAProxy stats socket (UNIX); its answer.
pub fn haproxy_api(socket: &Path, cmd: &str) -> Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connect to HAProxy's stats socket {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Socket timeouts let every rig thread notice `stop` within a second.
const TICK: Duration = Duration::from_millis(250);

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// An HTTP backend: answers `GET /bytes/N` with N bytes, one thread per
/// connection (blocking writes are what makes the queues fill).
pub fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> Result<()> {
    serve_with(listener, stop, None)
}

/// [`serve`], each connection's SO_SNDBUF set to `sndbuf` when given.
pub fn serve_with(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    sndbuf: Option<usize>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while !stopped(&stop) {
        // SAFETY: one valid pollfd; waiting (not sleeping) keeps accept latency
        // out of the churn benchmark.
        unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    if let Some(b) = sndbuf {
                        let _ = socket2::SockRef::from(&s).set_send_buffer_size(b);
                    }
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let _ = answer(s, &stop);
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

static BODY: [u8; 64 * 1024] = [b'x'; 64 * 1024];

fn answer(mut s: TcpStream, stop: &AtomicBool) -> Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(TICK))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let size = requested_size(&String::from_utf8_lossy(&head)).unwrap_or(0);
    s.write_all(
        format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut left = size;
    while left > 0 && !stopped(stop) {
        let chunk = &BODY[..left.min(BODY.len() as u64) as usize];
        match s.write(chunk) {
            Ok(n) => left -= n as u64,
            // The peer is not reading: keep the connection, look at `stop`.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One request, the response read to the end; returns the bytes read.
pub fn fetch(to: SocketAddr, body: u64) -> Result<u64> {
    let mut s = TcpStream::connect(to)?;
    s.write_all(request(body).as_bytes())?;
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Waits while the clients are held; false once the rig stops.
fn my_turn(stop: &AtomicBool, held: &AtomicBool) -> bool {
    while held.load(Ordering::Relaxed) && !stopped(stop) {
        sleep(Duration::from_millis(10));
    }
    !stopped(stop)
}

fn normal_client(
    fe: SocketAddr,
    body: u64,
    stop: &AtomicBool,
    held: &AtomicBool,
    st: &ClientStats,
) -> Result<()> {
    while my_turn(stop, held) {
        match fetch(fe, body) {
            Ok(n) => {
                st.responses.fetch_add(1, Ordering::Relaxed);
                st.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn vanishing_client(
    fe: SocketAddr,
    huge: u64,
    after: u64,
    hold: Duration,
    stop: &AtomicBool,
    held: &AtomicBool,
    st: &ClientStats,
) -> Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while my_turn(stop, held) {
        let r = (|| -> Result<u64> {
            let mut s = TcpStream::connect(fe)?;
            s.write_all(request(huge).as_bytes())?;
            let mut got = 0u64;
            while got < after {
                let n = s.read(&mut buf)?;
                ensure!(n > 0, "response ended early");
                got += n as u64;
            }
            sleep(hold);
            // Dropped with unread data: the kernel resets the connection.
            Ok(got)
        })();
        match r {
            Ok(n) => {
                st.vanished.fetch_add(1, Ordering::Relaxed);
                st.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_backend_and_the_timeout() {
        let cfg = RigConfig {
            client_timeout: Duration::from_secs(8),
            ..Default::default()
        };
        let c = haproxy_config(&cfg, Path::new("/tmp/r"));
        assert!(c.contains("bind :8080"));
        assert!(c.contains("server b1 127.0.0.1:9001"));
        assert!(c.contains("server b2 127.0.0.1:9002"));
        assert!(c.contains("timeout client 8000ms"));
        assert!(c.contains("stats socket /tmp/r/haproxy.sock"));
    }

    #[test]
    fn parses_the_requested_size() {
        assert_eq!(requested_size(&request(12345)), Some(12345));
        assert_eq!(requested_size("GET / HTTP/1.1\r\n"), None);
    }
}
