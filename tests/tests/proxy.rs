//! Groups named as HAProxy names them, against the real HAProxy of the rig
//! (`cargo xtask rig`): found running without being told, its frontend and
//! servers on the right groups, a server moved through the runtime API
//! followed within one interval, `--group-by proxy-backend`, the names in
//! serve's exposition and the doctor's findings; a HAProxy whose only stats
//! socket is TCP, read from inside its namespace; and sources that cannot
//! be read (missing, silent, refused, a FIFO) only warn.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use netmem_tests::rig::{request, serve, Rig, RigConfig};
use netmem_tests::scenarios::{in_netns, Trace};
use netmem_tests::serve::Serve;
use netmem_tests::{netmem_bin, require_root};
use serde_json::Value;

const INTERVAL: Duration = Duration::from_millis(300);

fn ts(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v["ts"].as_str().expect("ts")).expect("rfc3339 ts")
}

fn groups<'a>(lines: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines
        .iter()
        .filter(move |l| l["type"] == "group" && l["group"] == name)
}

/// Waits (at most `limit`) until `ok` holds for the trace's lines.
fn wait_lines(trace: &Trace, what: &str, limit: Duration, ok: impl Fn(&[Value]) -> bool) {
    let t0 = Instant::now();
    loop {
        if ok(&trace.lines()) {
            return;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

fn named(l: &Value, backend: &str, server: &str) -> bool {
    l["proxy"] == "haproxy" && l["proxy_backend"] == backend && l["proxy_server"] == server
}

fn run(args: &[&str]) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let o = Command::new(netmem_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netmem");
    (o, t0.elapsed())
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The rig (4 slow clients) with a spare listener at 127.0.0.1:9003 in its
/// namespace (where b2 is moved to), and a trace of it started with no
/// --haproxy. Each test below checks one thing of the same setup.
struct Named {
    rig: Rig,
    trace: Trace,
    stop: Arc<AtomicBool>,
    spare_thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Named {
    /// `tag` keeps the rigs of tests run at once apart.
    fn start(tag: char) -> Named {
        require_root();
        let mut rig = Rig::start(RigConfig {
            name: format!("nmpx{}{tag}", std::process::id() % 100000),
            slow: 4,
            normal: 0,
            vanishing: 0,
            client_timeout: Duration::from_secs(120),
            ..Default::default()
        })
        .expect("start the rig");
        // Where b2 will be moved to: a third backend, unknown to HAProxy's
        // configuration.
        let stop = Arc::new(AtomicBool::new(false));
        let spare = in_netns(&rig.ns, || Ok(TcpListener::bind(("127.0.0.1", 9003))?)).unwrap();
        let spare_thread = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(spare, stop))
        };
        let netmem = netmem_bin();
        // No --haproxy: the rig's HAProxy is found through its command line.
        let trace = Trace::start(
            netmem.to_str().unwrap(),
            &["--netns", &rig.ns, "--census-budget", "100"],
        )
        .expect("trace");
        rig.start_clients().expect("clients");

        Named {
            rig,
            trace,
            stop,
            spare_thread,
        }
    }

    /// Waits until the frontend's and each server's groups carry their names.
    fn wait_named(&self) {
        let trace = &self.trace;
        // The frontend's and each server's groups carry their names.
        wait_lines(
            trace,
            "named groups holding the slow clients' data",
            Duration::from_secs(20),
            |lines| {
                groups(lines, "listen:8080").any(|l| {
                    l["proxy_frontend"] == "rig" && l["wmem_queued_bytes"].as_u64() > Some(0)
                }) && groups(lines, "backend:127.0.0.1:9001")
                    .any(|l| named(l, "servers", "b1") && l["rmem_bytes"].as_u64() > Some(0))
                    && groups(lines, "backend:127.0.0.1:9002")
                        .any(|l| named(l, "servers", "b2") && l["rmem_bytes"].as_u64() > Some(0))
            },
        );
    }

    fn finish(self) {
        let Named {
            rig,
            trace,
            stop,
            spare_thread,
        } = self;
        trace.stop().expect("trace output");
        stop.store(true, Ordering::SeqCst);
        drop(rig);
        let _ = spare_thread.join();
    }
}

#[test]
fn haproxy_is_found_and_said_in_the_proxy_and_probes_lines() {
    let n = Named::start('a');
    let (rig, trace) = (&n.rig, &n.trace);
    // The proxy line: found, read from both the runtime API and the config.
    let head = trace.lines();
    let proxy = head
        .iter()
        .find(|l| l["type"] == "proxy")
        .unwrap_or_else(|| panic!("no proxy line before the probes line: {head:?}"));
    let pid = rig.haproxy_pid().unwrap().to_string();
    let src = proxy["source"].as_str().unwrap();
    assert!(
        src.contains(&pid) && src.contains(rig.config_path().to_str().unwrap()),
        "{proxy}"
    );
    assert_eq!(proxy["named"], true, "{proxy}");
    assert_eq!(proxy["problems"], serde_json::json!([]), "{proxy}");
    assert_eq!(proxy["frontends"][0]["name"], "rig", "{proxy}");
    assert_eq!(proxy["frontends"][0]["ports"], serde_json::json!([8080]));
    // What the running binary uses (show pools), HAProxy's default here.
    assert_eq!(proxy["tune"]["bufsize"], 16384, "{proxy}");
    let origin = proxy["origin"].to_string();
    assert!(origin.contains("runtime API"), "{proxy}");
    // The probes line says which proxy names the groups.
    let probes = head.iter().find(|l| l["type"] == "probes").unwrap();
    assert!(
        probes["proxies"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("haproxy (pid ") && p.contains(&pid)),
        "{probes}"
    );

    n.finish();
}

#[test]
fn haproxy_names_the_frontend_and_server_groups() {
    let n = Named::start('b');
    n.wait_named();
    let trace = &n.trace;
    let lines = trace.lines();
    let fe = groups(&lines, "listen:8080").last().unwrap();
    assert_eq!(
        (&fe["proxy_side"], &fe["proxy_frontends"]),
        (&serde_json::json!("client"), &serde_json::json!(["rig"]))
    );
    let b1 = groups(&lines, "backend:127.0.0.1:9001").last().unwrap();
    assert_eq!(b1["proxy_servers"], serde_json::json!(["servers/b1"]));
    assert_eq!(b1["proxy_side"], "server");
    assert_eq!(b1["proxy_tune"]["bufsize"], 16384);
    assert_eq!(b1["proxy_tune"]["rcvbuf"], Value::Null);

    n.finish();
}

#[test]
fn snapshot_doctor_serve_and_report_show_the_proxy_names() {
    let n = Named::start('c');
    n.wait_named();
    let rig = &n.rig;
    // --group-by proxy-backend sums the backend's servers, in one pass.
    let (o, _) = run(&[
        "snapshot",
        "--netns",
        &rig.ns,
        "--json",
        "--group-by",
        "proxy-backend",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap = json_lines(&o.stdout);
    let be = groups(&snap, "proxy-backend:servers")
        .next()
        .unwrap_or_else(|| panic!("no proxy-backend:servers group: {snap:?}"));
    assert_eq!(be["kind"], "proxy-backend");
    assert_eq!(be["proxy_backend"], "servers");
    assert_eq!(
        be["proxy_servers"],
        serde_json::json!(["servers/b1", "servers/b2"])
    );
    assert!(be["sockets"].as_u64().unwrap() >= 4, "{be}");
    assert!(
        groups(&snap, "backend:127.0.0.1:9001").next().is_none(),
        "servers are summed into their backend"
    );
    assert!(groups(&snap, "listen:8080").next().is_some());
    // Given only the stats socket: names from the runtime API, and the
    // buffer settings it cannot tell are said to be unknown, not unset.
    let sock = rig.stats_socket();
    let (o, _) = run(&[
        "snapshot",
        "--netns",
        &rig.ns,
        "--json",
        "--haproxy",
        sock.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let api_only = json_lines(&o.stdout);
    let b1 = groups(&api_only, "backend:127.0.0.1:9001").next().unwrap();
    assert!(named(b1, "servers", "b1"), "{b1}");
    assert_eq!(b1["proxy_tune"]["from_configuration"], false, "{b1}");
    assert_eq!(b1["proxy_tune"]["bufsize"], 16384, "{b1}");
    let line = api_only.iter().find(|l| l["type"] == "proxy").unwrap();
    assert_eq!(line["frontends"][0]["name"], "rig", "{line}");
    let (o, _) = run(&[
        "snapshot",
        "--netns",
        &rig.ns,
        "--haproxy",
        sock.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("server rcvbuf ? sndbuf ?"), "{text}");

    // The text table has a PROXY column.
    let (o, _) = run(&["snapshot", "--netns", &rig.ns]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("PROXY") && text.contains("servers/b1"),
        "{text}"
    );

    // The doctor names the holders as HAProxy does.
    let (o, _) = run(&["doctor", "--netns", &rig.ns, "--json"]);
    let findings = json_lines(&o.stdout);
    let all = serde_json::to_string(&findings).unwrap();
    // (The rig's servers run beside HAProxy: their own listen:900x groups
    // hold the most, and are not HAProxy's.)
    assert!(
        all.contains("\"held by frontend rig (listen:8080)\""),
        "{all}"
    );

    // serve: the names as an info series per group, and bufsize beside it.
    let mut served = Serve::start(&["--netns", &rig.ns, "--interval", "300ms"]);
    let body = served.wait_for("netmem_group_proxy_info{");
    assert!(
        body.lines()
            .any(|l| l.starts_with("netmem_group_proxy_info{")
                && l.contains("group=\"backend:127.0.0.1:9001\"")
                && l.contains("backend=\"servers\"")
                && l.contains("server=\"b1\"")),
        "{body}"
    );
    assert!(body.contains(
        "netmem_group_proxy_buffer_bytes{group=\"listen:8080\",kind=\"listen\",setting=\"bufsize\"} 16384"
    ));
    drop(served);

    // A recording keeps the names, and its report shows them.
    let rec = rig_dir_file(rig, "names.nmr");
    let html = rig_dir_file(rig, "names.html");
    let (o, _) = run(&[
        "record",
        "-o",
        &rec,
        "--netns",
        &rig.ns,
        "--interval",
        "300ms",
        "--duration",
        "1500ms",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (o, _) = run(&["report", &rec, "-o", &html]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<th>proxy</th>") && page.contains("backend servers, server b1"),
        "the report's group table names the servers"
    );
    assert!(page.contains("frontend rig"));

    n.finish();
}

#[test]
fn haproxy_names_follow_a_server_that_moves() {
    let n = Named::start('d');
    n.wait_named();
    let (rig, trace) = (&n.rig, &n.trace);
    // Move b2 through the runtime API: the next interval names the new
    // endpoint b2, and the old one no longer.
    let moved_at = SystemTime::now();
    let answer = rig
        .api("set server servers/b2 addr 127.0.0.1 port 9003")
        .expect("set server");
    assert!(
        answer.contains("changed from") || answer.contains("no need to change"),
        "{answer}"
    );
    let t0 = Instant::now();
    wait_lines(
        trace,
        "a proxy line with b2 at its new address",
        Duration::from_secs(5),
        |lines| {
            lines.iter().any(|l| {
                l["type"] == "proxy"
                    && l["backends"][0]["servers"].as_array().is_some_and(|s| {
                        s.iter()
                            .any(|x| x["name"] == "b2" && x["addr"] == "127.0.0.1:9003")
                    })
            })
        },
    );
    let after = moved_at + Duration::from_millis(100);
    wait_lines(
        trace,
        "an interval after the move",
        Duration::from_secs(5),
        |lines| groups(lines, "backend:127.0.0.1:9002").any(|l| ts(l) > after),
    );
    let followed_in = t0.elapsed();
    eprintln!("the move was followed in {followed_in:?}");
    assert!(
        followed_in < 2 * INTERVAL + Duration::from_millis(700),
        "followed in {followed_in:?}"
    );
    // The old endpoint's connections stay, unnamed.
    for l in groups(&trace.lines(), "backend:127.0.0.1:9002").filter(|l| ts(l) > after) {
        assert!(l.get("proxy").is_none(), "{l}");
    }
    // New connections reach b2 at its new address, under its name.
    let fe_addr = rig.frontend;
    let _held: Vec<TcpStream> = in_netns(&rig.client_ns, || {
        (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(fe_addr)?;
                s.write_all(request(1 << 40).as_bytes())?;
                sleep(Duration::from_millis(30));
                Ok(s)
            })
            .collect()
    })
    .unwrap();
    wait_lines(
        trace,
        "b2's group at its new address",
        Duration::from_secs(20),
        |lines| {
            groups(lines, "backend:127.0.0.1:9003")
                .any(|l| named(l, "servers", "b2") && l["rmem_bytes"].as_u64() > Some(0))
        },
    );
    n.finish();
}

fn rig_dir_file(rig: &Rig, name: &str) -> String {
    rig.stats_socket()
        .with_file_name(name)
        .to_string_lossy()
        .into_owned()
}

/// A listener in netmem's own namespace, so a snapshot has a group to show.
fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    (l, port)
}

fn plain_groups(stdout: &[u8], port: &str) {
    let lines = json_lines(stdout);
    let name = format!("listen:{port}");
    let g = groups(&lines, &name)
        .next()
        .unwrap_or_else(|| panic!("no listen:{port} group"));
    assert!(g.get("proxy").is_none(), "{g}");
}

#[test]
fn proxy_sources_that_cannot_be_read_warn_and_keep_plain_groups() {
    let (_l, port) = listener();
    let dir = std::env::temp_dir().join(format!("netmem-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = |h: &str| -> Vec<String> {
        [
            "snapshot",
            "--json",
            "--all",
            "--port",
            &port,
            "--haproxy",
            h,
        ]
        .map(String::from)
        .to_vec()
    };
    let snapshot = |h: &str| run(&args(h).iter().map(String::as_str).collect::<Vec<_>>());

    // A configuration that is not there.
    let missing = dir.join("nowhere/haproxy.cfg");
    let (o, t) = snapshot(missing.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // A snapshot reads once: it promises no later look.
    assert!(err.contains("no such file or socket:"), "{err}");
    plain_groups(&o.stdout, &port);
    let proxy = json_lines(&o.stdout)
        .into_iter()
        .find(|l| l["type"] == "proxy")
        .expect("a proxy line saying it was not read");
    assert_eq!(proxy["named"], false);
    assert!(t < Duration::from_secs(5));

    // A configuration its reader may not read (netmem as nobody, the file
    // root's alone).
    let private = dir.join("private.cfg");
    std::fs::write(&private, "frontend fe\n    bind :1\n").unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // (nobody must reach the file: the directory is searchable by all.)
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let as_nobody = args(private.to_str().unwrap());
    let o =
        netmem_tests::netmem_as_nobody(&as_nobody.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("cannot read HAProxy's configuration") && err.contains("Permission denied"),
        "{err}"
    );
    plain_groups(&o.stdout, &port);

    // A stats socket that accepts and never answers: bounded, then warned.
    let silent = dir.join("silent.sock");
    let _silent = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let (o, t) = snapshot(silent.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no complete answer"), "{err}");
    assert!(err.contains("keep their plain names"), "{err}");
    assert!(t < Duration::from_secs(3), "took {t:?}");
    plain_groups(&o.stdout, &port);

    // A socket file nothing listens on any more.
    let dead = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let (o, _) = snapshot(dead.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    plain_groups(&o.stdout, &port);

    // A FIFO would block a read forever: refused at once.
    let fifo = dir.join("haproxy.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (o, t) = snapshot(fifo.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(t < Duration::from_secs(3));

    // A configuration without HAProxy sections names nothing, quietly.
    let empty = dir.join("empty.cfg");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    let (o, _) = snapshot(empty.to_str().unwrap());
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.is_empty(), "{err}");
    plain_groups(&o.stdout, &port);

    // Nonsense flags are errors, not warnings.
    let (o, _) = run(&["snapshot", "--haproxy", "off", "--haproxy", "/x.cfg"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be combined"));
    let (o, _) = run(&["snapshot", "--haproxy", ""]);
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_stats_socket_is_said_once_and_the_trace_goes_on() {
    require_root();
    let (_l, port) = listener();
    let dir = std::env::temp_dir().join(format!("netmem-proxy-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let silent = dir.join("silent.sock");
    let _silent = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let (o, _) = run(&[
        "trace",
        "--json",
        "--interval",
        "300ms",
        "--duration",
        "3s",
        "--port",
        &port,
        "--all",
        "--haproxy",
        silent.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("no complete answer").count(), 1, "{err}");
    let lines = json_lines(&o.stdout);
    let name = format!("listen:{port}");
    let intervals = groups(&lines, &name).count();
    assert!(intervals >= 5, "{intervals} intervals in 3 s");
    plain_groups(&o.stdout, &port);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A HAProxy the test started in a namespace of its own (not the rig's),
/// in TCP mode, and the backend server behind it: both stopped, and its
/// directory removed, when dropped.
struct OwnHaproxy {
    child: std::process::Child,
    dir: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    backend: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl OwnHaproxy {
    /// Frontend `fe` binding `bind`, backend `be` with one server `srv` at
    /// 127.0.0.1:`port`; `stats` is the `stats socket` line's address
    /// (`{dir}` stands for the HAProxy's directory).
    fn start(
        ns: &netmem_tests::Netns,
        [fe, be, srv]: [&str; 3],
        bind: &str,
        port: u16,
        stats: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> OwnHaproxy {
        let stop = Arc::new(AtomicBool::new(false));
        let listener = in_netns(&ns.name, || Ok(TcpListener::bind(("127.0.0.1", port))?)).unwrap();
        let backend = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(listener, stop))
        };
        let dir = std::env::temp_dir().join(format!("netmem-proxy-{fe}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n    stats socket {} level admin\n\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
                 frontend {fe}\n    bind {bind}\n    default_backend {be}\n\n\
                 backend {be}\n    server {srv} 127.0.0.1:{port}\n",
                stats.replace("{dir}", &dir.to_string_lossy())
            ),
        )
        .unwrap();
        let haproxy = netmem_tests::rig::which("haproxy").expect("haproxy installed");
        let child = ns
            .cmd(&haproxy)
            .args(args)
            .arg("-f")
            .arg(&cfg)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        OwnHaproxy {
            child,
            dir,
            stop,
            backend: Some(backend),
        }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.join("haproxy.cfg")
    }
}

impl Drop for OwnHaproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(b) = self.backend.take() {
            let _ = b.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_tcp_stats_socket_is_read_inside_haproxys_namespace() {
    require_root();
    let ns = netmem_tests::Netns::new("pxtcp");
    // Its only stats socket is TCP, as containers often have it, and its
    // bind comes from its environment.
    let proxy = OwnHaproxy::start(
        &ns,
        ["fe_tcp", "be_tcp", "s1"],
        "\"${FE_BIND}\"",
        9101,
        "ipv4@127.0.0.1:9199",
        &["-db"],
        &[("FE_BIND", ":8181")],
    );
    let cfg = proxy.config();
    // A connection through it, held: both of its sides have a group.
    let held: TcpStream = {
        let t0 = Instant::now();
        loop {
            let c = in_netns(&ns.name, || {
                let s = TcpStream::connect(("127.0.0.1", 8181))?;
                TcpStream::connect(("127.0.0.1", 9199))?;
                Ok(s)
            });
            match c {
                Ok(s) => break s,
                Err(e) => assert!(t0.elapsed() < Duration::from_secs(10), "haproxy: {e:#}"),
            }
            sleep(Duration::from_millis(50));
        }
    };
    let snapshot = |extra: &[&str]| {
        let mut args = vec!["snapshot", "--netns", &ns.name, "--json", "--all"];
        args.extend_from_slice(extra);
        let (o, t) = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            json_lines(&o.stdout),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            t,
        )
    };
    let server_named =
        |lines: &[Value]| groups(lines, "backend:127.0.0.1:9101").any(|l| named(l, "be_tcp", "s1"));

    // Found running: its configuration names the TCP socket, which netmem
    // reaches from inside the namespace (netmem itself runs outside it).
    let t0 = Instant::now();
    let lines = loop {
        let (lines, _, _) = snapshot(&[]);
        if server_named(&lines) || t0.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        sleep(Duration::from_millis(200));
    };
    let proxy = lines
        .iter()
        .find(|l| l["type"] == "proxy")
        .expect("a proxy line");
    assert_eq!(proxy["problems"], serde_json::json!([]), "{proxy}");
    let origin = proxy["origin"].to_string();
    assert!(
        origin.contains("servers: runtime API tcp 127.0.0.1:9199"),
        "{proxy}"
    );
    // show fd and show pools answered over TCP too.
    assert!(origin.contains("frontends: runtime API tcp"), "{proxy}");
    assert_eq!(proxy["tune"]["bufsize"], 16384, "{proxy}");
    assert!(server_named(&lines), "{lines:?}");
    assert!(
        groups(&lines, "listen:8181").any(|l| l["proxy_frontend"] == "fe_tcp"),
        "{lines:?}"
    );
    // Its configuration's "${FE_BIND}" was expanded from its environment.
    assert_eq!(proxy["notes"], serde_json::json!([]), "{proxy}");
    let (lines, _, _) = snapshot(&["--haproxy", cfg.to_str().unwrap()]);
    let proxy = lines.iter().find(|l| l["type"] == "proxy").unwrap();
    assert!(
        proxy["notes"]
            .to_string()
            .contains("${FE_BIND} (environment variable)"),
        "a configuration given by path has no environment to expand it: {proxy}"
    );

    // Given as --haproxy ADDR:PORT, it is reached inside --netns as well.
    let (lines, err, _) = snapshot(&["--haproxy", "127.0.0.1:9199"]);
    assert!(err.is_empty(), "{err}");
    let proxy = lines.iter().find(|l| l["type"] == "proxy").unwrap();
    assert_eq!(proxy["source"], "--haproxy 127.0.0.1:9199", "{proxy}");
    assert!(server_named(&lines), "{lines:?}");
    let b = groups(&lines, "backend:127.0.0.1:9101").next().unwrap();
    assert_eq!(b["proxy_tune"]["from_configuration"], false, "{b}");

    // A TCP address nothing listens on: warned, bounded, plain names.
    let (lines, err, t) = snapshot(&["--haproxy", "127.0.0.1:9198"]);
    assert!(
        err.contains("tcp 127.0.0.1:9198")
            && err.contains("Connection refused")
            && err.contains(&format!("network namespace (/run/netns/{})", ns.name)),
        "the warning names where it was tried: {err}"
    );
    assert!(t < Duration::from_secs(3), "took {t:?}");
    assert!(!server_named(&lines));
    drop(held);
}

/// `show info`'s Pid: the worker answering the stats socket.
fn worker_pid(sock: &std::path::Path) -> Option<String> {
    let info = netmem_tests::rig::haproxy_api(sock, "show info").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .map(str::to_string)
}

#[test]
fn names_survive_a_master_worker_reload() {
    require_root();
    let ns = netmem_tests::Netns::new("pxreload");
    // -W: a master that stays, and workers replaced at each reload (USR2).
    let master = OwnHaproxy::start(
        &ns,
        ["fe_r", "be_r", "r1"],
        ":8182",
        9102,
        "{dir}/admin.sock",
        &["-W", "-db"],
        &[],
    );
    let sock = master.dir.join("admin.sock");
    let t0 = Instant::now();
    let first = loop {
        if let Some(p) = worker_pid(&sock) {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "haproxy's stats socket"
        );
        sleep(Duration::from_millis(50));
    };
    let through = || in_netns(&ns.name, || Ok(TcpStream::connect(("127.0.0.1", 8182))?)).unwrap();
    let _before = through();
    let netmem = netmem_bin();
    let trace =
        Trace::start(netmem.to_str().unwrap(), &["--netns", &ns.name, "--all"]).expect("trace");
    let both_named = |lines: &[Value], after: SystemTime| {
        groups(lines, "backend:127.0.0.1:9102").any(|l| ts(l) > after && named(l, "be_r", "r1"))
            && groups(lines, "listen:8182").any(|l| ts(l) > after && l["proxy_frontend"] == "fe_r")
    };
    wait_lines(&trace, "named groups", Duration::from_secs(10), |l| {
        both_named(l, SystemTime::UNIX_EPOCH)
    });
    let source = trace
        .lines()
        .iter()
        .find(|l| l["type"] == "proxy")
        .map(|l| l["source"].clone())
        .unwrap();
    assert!(
        source
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", master.child.id())),
        "the master is the one found: {source}"
    );

    // Reload: a new worker (new Pid) binds the frontend and the socket again.
    let reloaded_at = SystemTime::now();
    // SAFETY: kill has no memory preconditions; the pid is our child.
    unsafe { libc::kill(master.child.id() as i32, libc::SIGUSR2) };
    let t0 = Instant::now();
    loop {
        if worker_pid(&sock).is_some_and(|p| p != first) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no new worker");
        sleep(Duration::from_millis(50));
    }
    let _after = through();
    wait_lines(
        &trace,
        "named groups after the reload",
        Duration::from_secs(10),
        |l| both_named(l, reloaded_at + Duration::from_millis(500)),
    );
    let lines = trace.stop().expect("trace output");
    for p in lines.iter().filter(|l| l["type"] == "proxy") {
        assert_eq!(p["problems"], serde_json::json!([]), "{p}");
        assert_eq!(p["source"], source, "{p}");
    }
}
