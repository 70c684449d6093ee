//! Groups named as nginx names them, against Debian's real `nginx` run in
//! a network namespace the test creates, as a reverse proxy to backends in
//! the same namespace, with slow clients that never read holding its send
//! queues: found running without being told, its `server` blocks and
//! upstreams on the right groups (`server NAME`, `upstream NAME/ADDR:PORT`,
//! a bare `proxy_pass` as nginx's implicit upstream), a reload followed,
//! the doctor's advice (on a recording) in nginx's knobs, and a process
//! that only calls itself nginx not believed.
//!
//! nginx runs with its own prefix, configuration, pid file, error log and
//! temporary directories in the test's directory (`-p DIR -c DIR/nginx.conf
//! -e DIR/error.log`): nothing of the system's nginx is read or touched,
//! and a system nginx running or not changes nothing. The only sysctl set
//! is the namespace's own tcp_wmem.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use netmem_tests::rig::{request, serve_with};
use netmem_tests::scenarios::{in_netns, Trace};
use netmem_tests::serve::Serve;
use netmem_tests::{netmem_bin, require_root, Netns};
use serde_json::Value;

const NGINX: &str = "/usr/sbin/nginx";

/// The test's directory: nginx's prefix, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("netmem-nginx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::set_permissions(&d, PermissionsExt::from_mode(0o755)).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# written by netmem's nginx test; not read from the system\n\
         user root;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   proxy_buffer_size 8k;\n\
         \x20   proxy_buffers 4 8k;\n\
         \x20   # Not to disk: nginx stops reading a server ahead of a slow client.\n\
         \x20   proxy_max_temp_file_size 0;\n\
         \x20   send_timeout 300s;\n\
         \x20   upstream app {{ server 127.0.0.1:9101; }}\n\
         \x20   include conf.d/*.conf;\n\
         }}\n"
    )
}

/// The sites, `shop` the name of the first: `sndbuf=` on both listens
/// keeps the slow clients' send queues at a known size.
fn sites(shop: &str) -> String {
    format!(
        "server {{\n    listen 8080 sndbuf=1m;\n    server_name {shop} www.{shop};\n    location / {{ proxy_pass http://app; }}\n}}\n\
         server {{\n    listen 8081 sndbuf=256k;\n    server_name direct.test;\n    location / {{ proxy_pass http://127.0.0.1:9102; }}\n}}\n"
    )
}

/// The namespace, nginx in it, its two backends and slow clients.
struct Site {
    ns: Netns,
    dir: Dir,
    nginx: Child,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
    clients: Vec<TcpStream>,
}

impl Site {
    fn start(tag: &str) -> Site {
        require_root();
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: `cargo xtask setup --test` installs nginx"
        );
        let ns = Netns::new(tag);
        // The namespace's own send buffer maximum (not the host's): high,
        // so the doctor sees what a few sockets at maximum would cost.
        let o = ns
            .cmd("sysctl")
            .args(["-qw", "net.ipv4.tcp_wmem=4096 16384 1073741824"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let dir = Dir::new(tag);
        std::fs::write(dir.0.join("nginx.conf"), main_conf(&dir.0)).unwrap();
        std::fs::write(dir.0.join("conf.d/sites.conf"), sites("shop.test")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for port in [9101, 9102] {
            let l = in_netns(&ns.name, || Ok(TcpListener::bind(("127.0.0.1", port))?)).unwrap();
            let stop = stop.clone();
            // The servers' own send queues stay small: nginx's are tested.
            threads.push(std::thread::spawn(move || {
                serve_with(l, stop, Some(16 << 10))
            }));
        }
        let d = dir.0.to_str().unwrap().to_string();
        let nginx = ns
            .cmd(NGINX)
            .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
            .args(["-e", &format!("{d}/error.log"), "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let s = Site {
            ns,
            dir,
            nginx,
            stop,
            threads,
            clients: Vec::new(),
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&self) {
        let t0 = Instant::now();
        while in_netns(&self.ns.name, || {
            Ok(TcpStream::connect(("127.0.0.1", 8081))?)
        })
        .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nginx did not start: {}",
                std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn master(&self) -> u32 {
        std::fs::read_to_string(self.dir.0.join("nginx.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(self.nginx.id())
    }

    /// `n` clients of `port` that ask for a huge body and never read,
    /// each with a small receive buffer: nginx's send queues hold it.
    fn slow_clients(&mut self, port: u16, n: usize) {
        for _ in 0..n {
            let c = in_netns(&self.ns.name, || {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_recv_buffer_size(4096)?;
                s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())?;
                let mut t: TcpStream = s.into();
                t.write_all(request(1 << 40).as_bytes())?;
                Ok(t)
            })
            .expect("slow client");
            self.clients.push(c);
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.clients.clear();
        // SAFETY: signalling the nginx master this test started: a fast
        // shutdown, its workers with it.
        unsafe { libc::kill(self.master() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.nginx.try_wait().ok().flatten().is_none()
            && t0.elapsed() < Duration::from_secs(5)
        {
            sleep(Duration::from_millis(20));
        }
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn group<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "group" && l["group"] == name)
        .collect()
}

/// Waits (at most `limit`) until `ok` holds for the trace's lines.
fn wait_lines(trace: &Trace, what: &str, limit: Duration, ok: impl Fn(&[Value]) -> bool) {
    let t0 = Instant::now();
    loop {
        let lines = trace.lines();
        if ok(&lines) {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "timed out waiting for {what}; proxy lines: {:?}; last groups: {:?}",
            lines
                .iter()
                .filter(|l| l["type"] == "proxy")
                .collect::<Vec<_>>(),
            lines
                .iter()
                .rev()
                .filter(|l| l["type"] == "group")
                .take(8)
                .collect::<Vec<_>>()
        );
        sleep(Duration::from_millis(100));
    }
}

fn frontend_is(l: &Value, name: &str) -> bool {
    l["proxy"] == "nginx" && l["proxy_frontend"] == name && l["proxy_side"] == "client"
}

fn server_is(l: &Value, backend: &str, server: &str) -> bool {
    l["proxy"] == "nginx"
        && l["proxy_backend"] == backend
        && l["proxy_server"] == server
        && l["proxy_servers"] == serde_json::json!([format!("{backend}/{server}")])
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(netmem_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netmem")
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn nginx_names_its_servers_and_upstreams_follows_a_reload_and_advises_its_knobs() {
    let mut site = Site::start("ngx");
    let ns = site.ns.name.clone();
    // No --nginx: the master is found through its command line.
    let trace = Trace::start(
        netmem_bin().to_str().unwrap(),
        &["--netns", &ns, "--census-budget", "100"],
    )
    .expect("trace");
    site.slow_clients(8080, 3);
    site.slow_clients(8081, 1);

    wait_lines(
        &trace,
        "nginx's names on the groups",
        Duration::from_secs(20),
        |l| {
            group(l, "listen:8080")
                .iter()
                .any(|g| frontend_is(g, "server shop.test"))
                && group(l, "listen:8081")
                    .iter()
                    .any(|g| frontend_is(g, "server direct.test"))
                && group(l, "backend:127.0.0.1:9101")
                    .iter()
                    .any(|g| server_is(g, "upstream app", "127.0.0.1:9101"))
                && group(l, "backend:127.0.0.1:9102")
                    .iter()
                    .any(|g| server_is(g, "upstream 127.0.0.1:9102", "127.0.0.1:9102"))
        },
    );
    let lines = trace.lines();
    let proxy = lines
        .iter()
        .find(|l| l["type"] == "proxy" && l["proxy"] == "nginx")
        .expect("a proxy line");
    let source = proxy["source"].as_str().unwrap();
    assert!(
        source.contains(&format!("config {}/nginx.conf", site.dir.0.display())),
        "{proxy}"
    );
    // The listen group carries nginx's settings for the client side.
    let fe = group(&lines, "listen:8080")
        .into_iter()
        .rev()
        .find(|g| frontend_is(g, "server shop.test"))
        .unwrap();
    assert_eq!(fe["proxy_tune"]["bufsize"], 8192, "{fe}");
    assert_eq!(fe["proxy_tune"]["sndbuf"], 1 << 20, "{fe}");
    assert_eq!(fe["proxy_tune"]["from_configuration"], true, "{fe}");
    assert!(
        fe["wmem_queued_bytes"].as_u64().unwrap_or(0) > 1 << 20,
        "slow clients hold memory: {fe}"
    );

    // A snapshot names them alike.
    let o = run(&["snapshot", "--json", "--netns", &ns]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap = json_lines(&o.stdout);
    assert!(group(&snap, "listen:8080")
        .iter()
        .any(|g| frontend_is(g, "server shop.test")));

    // serve: the names as an info series per group.
    let mut served = Serve::start(&["--netns", &ns, "--interval", "300ms"]);
    let body = served.wait_for("netmem_group_proxy_info{");
    assert!(
        body.lines()
            .any(|l| l.starts_with("netmem_group_proxy_info{")
                && l.contains("group=\"backend:127.0.0.1:9101\"")
                && l.contains("proxy=\"nginx\"")
                && l.contains("backend=\"upstream app\"")
                && l.contains("server=\"127.0.0.1:9101\"")),
        "{body}"
    );
    drop(served);

    // A reload: the site renamed, the master told with SIGHUP; the trace
    // follows within a few intervals (new workers, so read again).
    std::fs::write(site.dir.0.join("conf.d/sites.conf"), sites("shop2.test")).unwrap();
    // SAFETY: signalling the nginx master this test started.
    assert_eq!(unsafe { libc::kill(site.master() as i32, libc::SIGHUP) }, 0);
    wait_lines(&trace, "the reloaded name", Duration::from_secs(20), |l| {
        group(l, "listen:8080")
            .iter()
            .any(|g| frontend_is(g, "server shop2.test"))
    });
    // A reload nginx refuses (a broken file): it keeps its workers and
    // its configuration, and netmem keeps naming what nginx runs.
    std::fs::write(
        site.dir.0.join("conf.d/sites.conf"),
        sites("broken.test").replace("location / {", "location / "),
    )
    .unwrap();
    // SAFETY: signalling the nginx master this test started.
    assert_eq!(unsafe { libc::kill(site.master() as i32, libc::SIGHUP) }, 0);
    let refused_at = trace.lines().len();
    sleep(Duration::from_secs(2));
    let after = trace.lines();
    let later: Vec<&Value> = group(&after[refused_at..], "listen:8080");
    assert!(!later.is_empty());
    assert!(
        later.iter().all(|g| frontend_is(g, "server shop2.test")),
        "{later:?}"
    );
    let _ = trace.stop().expect("trace ends cleanly");

    // The doctor, on a recording: the slow clients' memory is nginx's
    // client side, and its advice names nginx's knobs.
    let rec = site.dir.0.join("ngx.nmr");
    let o = run(&[
        "record",
        "-o",
        rec.to_str().unwrap(),
        "--netns",
        &ns,
        "--interval",
        "300ms",
        "--duration",
        "2s",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["doctor", "--from", rec.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        all.contains("nginx `sndbuf ") && all.contains("proxy_buffer_size 8.0K"),
        "the advice is in nginx's terms: {all}"
    );
    assert!(!all.contains("tune.sndbuf.client"), "{all}");
    for advice in all.lines().filter(|l| l.contains("nginx `sndbuf ")) {
        eprintln!("doctor: {advice}");
    }
    drop(site);
}

#[test]
fn a_process_that_only_calls_itself_nginx_is_not_believed() {
    require_root();
    let ns = Netns::new("ngxfake");
    let dir = Dir::new("fake");
    let cfg = dir.0.join("nginx.conf");
    std::fs::write(&cfg, "http { server { listen 4444; server_name fake; } }").unwrap();
    std::fs::set_permissions(&cfg, PermissionsExt::from_mode(0o644)).unwrap();
    // python renamed nginx by prctl(PR_SET_NAME), run by nobody, with a
    // command line like a master's.
    let mut py = ns
        .cmd("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([
            "/usr/bin/python3",
            "-c",
            "import ctypes,time; ctypes.CDLL(None).prctl(15,b'nginx',0,0,0); time.sleep(300)",
            "-c",
            cfg.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv (util-linux)");
    let pid = py.id();
    let t0 = Instant::now();
    // setpriv execs python in place: the same pid.
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != "nginx"
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the fake never called itself nginx"
        );
        sleep(Duration::from_millis(20));
    }
    let o = run(&[
        "snapshot",
        "--json",
        "--netns",
        &ns.name,
        "--haproxy",
        "off",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches(&format!("nginx pid {pid}: not trusted: its executable"))
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("--nginx"), "the way out is said: {err}");
    let lines = json_lines(&o.stdout);
    assert!(
        !lines.iter().any(|l| l["type"] == "proxy"),
        "nothing is named after the fake: {lines:?}"
    );
    // `--nginx off`: not even looked for.
    let o = run(&["snapshot", "--json", "--netns", &ns.name, "--nginx", "off"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("nginx pid"));
    let _ = py.kill();
    let _ = py.wait();
}

#[test]
fn a_configuration_given_with_the_flag_names_the_groups() {
    require_root();
    let ns = Netns::new("ngxflag");
    let dir = Dir::new("flag");
    std::fs::write(
        dir.0.join("nginx.conf"),
        "http { upstream api { server 127.0.0.1:9201; } server { listen 9200; server_name flagged; location / { proxy_pass http://api; } } }",
    )
    .unwrap();
    let l = in_netns(&ns.name, || Ok(TcpListener::bind(("127.0.0.1", 9200))?)).unwrap();
    let o = run(&[
        "snapshot",
        "--json",
        "--all",
        "--netns",
        &ns.name,
        "--nginx",
        dir.0.join("nginx.conf").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&o.stdout);
    let p = lines
        .iter()
        .find(|l| l["type"] == "proxy")
        .expect("a proxy line");
    assert_eq!(p["proxy"], "nginx", "{p}");
    assert!(
        group(&lines, "listen:9200")
            .iter()
            .any(|g| frontend_is(g, "server flagged")),
        "{lines:?}"
    );
    drop(l);
}

/// A real nginx run by `nobody`: believed (its executable is the packaged
/// one), but its configuration is read with nobody's rights only. The
/// user swaps an included file for a link to a root-only file after
/// nginx started; netmem does not read it for them.
#[test]
fn a_real_nginx_run_by_a_user_is_read_with_that_users_rights() {
    require_root();
    const NOBODY: u32 = 65534;
    let ns = Netns::new("ngxuser");
    let dir = Dir::new("user");
    let d = dir.0.display().to_string();
    std::os::unix::fs::chown(&dir.0, Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(dir.0.join("tmp"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::write(
        dir.0.join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
             \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n\
             \x20   include extra.conf;\n    server {{ listen 7070; server_name open; }}\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.0.join("extra.conf"), "").unwrap();
    let mut nginx = ns
        .cmd("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(NGINX)
        .args([
            "-p",
            &d,
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ])
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv (util-linux)");
    let t0 = Instant::now();
    while in_netns(&ns.name, || Ok(TcpStream::connect(("127.0.0.1", 7070))?)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nginx as nobody did not start: {}",
            std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default()
        );
        sleep(Duration::from_millis(50));
    }
    // Root's file, and the user's link to it where nginx's include looks.
    let secret_dir = Dir::new("secret");
    let secret = secret_dir.0.join("secret.conf");
    std::fs::write(&secret, "server { listen 7777; server_name secret; }").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::remove_file(dir.0.join("extra.conf")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.0.join("extra.conf")).unwrap();

    let o = run(&[
        "snapshot",
        "--json",
        "--all",
        "--netns",
        &ns.name,
        "--haproxy",
        "off",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines = json_lines(&o.stdout);
    assert!(
        group(&lines, "listen:7070")
            .iter()
            .any(|g| frontend_is(g, "server open")),
        "{out}\n{err}"
    );
    assert!(
        format!("{out}{err}").contains("runs as uid 65534, which may not read"),
        "the refusal is said: {out}\n{err}"
    );
    assert!(
        !out.contains("server secret"),
        "root's file was not read: {out}"
    );
    // SAFETY: signalling the nginx master this test started.
    unsafe { libc::kill(nginx.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    while nginx.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(20));
    }
    let _ = nginx.kill();
    let _ = nginx.wait();
}
