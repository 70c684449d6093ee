//! `netmem check`, node-problem-detector's custom plugin, with real
//! parts: a real `netmem serve` (OK), servers that answer garbage or
//! never answer (unknown, within the timeout), one reading of the host
//! without serve (OK), nothing readable (unknown), and bad flags (unknown,
//! never 1). A real problem (status 1) needs aborts or a global limit
//! crossed, which a test may not cause on this machine: the guests' orphans
//! scenario asserts it (`tests/src/scenarios/aborts.rs`), against serve
//! and against one reading.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use netmem_tests::serve::*;
use netmem_tests::*;

/// `netmem check ARGS`: (exit code, its one line), after checking that it
/// printed exactly one line on standard output.
fn check(args: &[&str]) -> (i32, String) {
    let o = Command::new(netmem_bin())
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    one_line(&o, args)
}

fn one_line(o: &Output, args: &[&str]) -> (i32, String) {
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().count(),
        1,
        "check {args:?} printed {out:?} (stderr {:?})",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.ends_with('\n'));
    (o.status.code().unwrap(), out.trim_end().to_string())
}

/// A loopback server that answers every request with `answer` (None:
/// accepts and never answers, holding the connection).
fn fake_serve(answer: Option<Vec<u8>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            match &answer {
                Some(a) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(a);
                }
                None => held.push(s),
            }
        }
    });
    addr
}

/// A calm namespace under a real serve: OK, said from serve, with the new
/// last-abort gauge in an exposition promtool accepts.
#[test]
fn ok_from_a_real_serve() {
    require_root();
    let ns = Netns::new("check");
    let _load = ns.load(&["stuck-readers", "--port", "18470", "--conns", "4"]);
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "1s"]);
    let exposition = serve.metrics();
    promtool_check_metrics(&exposition);
    for cause in ["orphans", "tcp_mem", "orphans+tcp_mem", "unknown"] {
        let s = format!("netmem_aborts_on_memory_last_timestamp_seconds{{cause=\"{cause}\"}}");
        assert_eq!(sample(&exposition, &s), Some(0.0), "{s} in {exposition}");
    }
    let addr = serve.addr.to_string();
    let t0 = Instant::now();
    let (code, line) = check(&["--serve", &addr]);
    eprintln!("{line} ({:?})", t0.elapsed());
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("netmem: OK: no aborts in 10m, TCP memory "),
        "{line}"
    );
    assert!(line.contains(&format!("(from serve {addr})")), "{line}");
    assert!(
        line.contains("not checked: cgroups (serve runs without --owners)"),
        "{line}"
    );
    // Cheap: one scrape.
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // Without root too (a scrape needs none).
    let o = netmem_as_nobody(&["check", "--serve", &addr, "--window", "1h"]);
    let (code, line) = one_line(&o, &["as nobody"]);
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("no aborts in 1h"), "{line}");
}

/// Something on the port that is not a working serve: unknown (2) with a
/// line that says what it answered, never 1, never a panic.
#[test]
fn garbage_answers_are_unknown() {
    let cases: [(&[u8], &str); 7] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>",
            "not a Prometheus exposition",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nup 1\n",
            "not with netmem serve's metrics",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\nnetmem_build_info 1\n",
            "cut off",
        ),
        (
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
            "credentials",
        ),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", "HTTP 503"),
        (b"\x15\x03\x03\x00\x02\x02\x46", "TLS"),
    ];
    for (answer, says) in cases {
        let addr = fake_serve(Some(answer.to_vec())).to_string();
        let (code, line) = check(&["--serve", &addr]);
        assert_eq!(code, 2, "{line}");
        assert!(
            line.starts_with(&format!("netmem: Unknown: serve on {addr}")) && line.contains(says),
            "{says:?} not in {line}"
        );
    }
    // Random bytes, as an exposition and as an answer.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8 {
        let mut body = Vec::new();
        for _ in 0..512 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            body.push((seed >> 24) as u8);
        }
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend(&body);
        for a in [answer, body] {
            let addr = fake_serve(Some(a)).to_string();
            let (code, line) = check(&["--serve", &addr]);
            assert_eq!(code, 2, "{line}");
        }
    }
}

/// A serve that accepts and never answers: unknown within the timeout
/// (node-problem-detector kills a plugin at 5 s by default).
#[test]
fn a_hung_serve_is_unknown_in_time() {
    let addr = fake_serve(None).to_string();
    let t0 = Instant::now();
    let (code, line) = check(&["--serve", &addr]);
    let took = t0.elapsed();
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("no answer in time"), "{line}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let t0 = Instant::now();
    let (code, _) = check(&["--serve", &addr, "--timeout", "500ms"]);
    assert_eq!(code, 2);
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

/// `--serve ADDR` must answer; `auto` reads the host when nothing listens.
#[test]
fn a_serve_that_is_not_there() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (code, line) = check(&["--serve", &addr]);
    assert_eq!(code, 2, "{line}");
    assert_eq!(
        line,
        format!("netmem: Unknown: serve on {addr}: connection refused")
    );
}

/// Without serve, one reading: OK on this calm machine, first without a
/// baseline for the aborts, then compared with the state the first kept
/// (a file of its own, 0600, in a directory it made 0700).
#[test]
fn one_reading_without_serve() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("netmem").join("check-state");
    let s = state.to_str().unwrap();
    let (code, first) = check(&["--serve", "off", "--state", s]);
    eprintln!("{first}");
    assert_eq!(code, 0, "{first}");
    assert!(first.starts_with("netmem: OK: TCP memory "), "{first}");
    assert!(
        first.contains("not checked: aborts (first reading, none to compare with)"),
        "{first}"
    );
    assert!(first.ends_with("(one reading)"), "{first}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o600);
    assert_eq!(mode(state.parent().unwrap()), 0o700);
    let t0 = Instant::now();
    let (code, second) = check(&["--serve", "off", "--state", s]);
    eprintln!("{second} ({:?})", t0.elapsed());
    assert_eq!(code, 0, "{second}");
    assert!(
        second.starts_with("netmem: OK: no aborts in 10m, TCP memory "),
        "{second}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // A state file someone else could have written is not believed.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, third) = check(&["--serve", "off", "--state", s]);
    assert_eq!(code, 0, "{third}");
    assert!(third.contains("first reading"), "{third}");
    // ... and replaced by a private one.
    assert_eq!(mode(&state), 0o600);
    // Garbage in it: not believed, and not replaced (it may be a file the
    // user named by mistake): said in the line.
    std::fs::write(&state, b"\xff{{{").unwrap();
    let (code, fourth) = check(&["--serve", "off", "--state", s]);
    assert_eq!(code, 0, "{fourth}");
    assert!(fourth.contains("not replaced"), "{fourth}");
    assert_eq!(std::fs::read(&state).unwrap(), b"\xff{{{");
    std::fs::remove_file(&state).unwrap();
    let (code, _) = check(&["--serve", "off", "--state", s]);
    assert_eq!(code, 0);

    // Nothing listens at serve's port in `auto`: one reading, said so.
    // (Only when nobody's serve runs there on this machine.)
    if std::net::TcpStream::connect(("127.0.0.1", 10077)).is_err() {
        let (code, line) = check(&["--state", s]);
        assert_eq!(code, 0, "{line}");
        assert!(
            line.ends_with("(one reading; no serve on 127.0.0.1:10077)"),
            "{line}"
        );
    }

    // Without root: the namespace's own counters, no state kept.
    let o = netmem_as_nobody(&["check", "--serve", "off", "--state", "none"]);
    let (code, line) = one_line(&o, &["as nobody"]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains("not checked: aborts (no state file kept (--state none))"),
        "{line}"
    );
}

/// Nothing readable (procfs hidden in a mount namespace of the test's
/// own): unknown, saying what could not be read.
#[test]
fn nothing_readable_is_unknown() {
    require_root();
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs none /proc && exec {} check --serve off --state none",
            netmem_bin().display()
        ))
        .output()
        .unwrap();
    let (code, line) = one_line(&o, &["without /proc"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("netmem: Unknown: nothing could be read: aborts ("),
        "{line}"
    );
    assert!(
        line.contains("TCP memory, orphans, cgroups (no cgroup2 mount)"),
        "{line}"
    );
}

/// Bad flags are "unknown" (2) for node-problem-detector, never "problem".
#[test]
fn bad_flags_are_unknown() {
    for args in [
        &["--bogus"][..],
        &["--window", "soon"],
        &["--window", "0s"],
        &["--timeout", "1h"],
        &["--serve", "10.1.2.3:10077"],
        &["--serve", "localhost"],
        &["extra"],
    ] {
        let o = Command::new(netmem_bin())
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&o.stderr).is_empty(),
            "{args:?}: no error said"
        );
    }
    let o = Command::new(netmem_bin())
        .args(["check", "--serve", "10.1.2.3:10077"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The monitor configuration shipped for node-problem-detector is valid
/// JSON, runs `netmem check` within its own timeout, and declares the
/// condition the check's line names.
#[test]
fn the_shipped_monitor_configuration() {
    let p = workspace_root().join("packaging/node-problem-detector/netmem-monitor.json");
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(c["plugin"], "custom");
    let secs = |v: &serde_json::Value| {
        humantime::parse_duration(v.as_str().unwrap())
            .unwrap()
            .as_secs_f64()
    };
    let pc = &c["pluginConfig"];
    assert!(pc["max_output_length"].as_u64().unwrap() >= 200);
    assert_eq!(c["conditions"][0]["type"], "TCPMemoryPressure");
    assert_eq!(c["conditions"][0]["reason"], "TCPMemoryOK");
    let rules = c["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for r in rules {
        assert_eq!(r["path"], "/usr/bin/netmem");
        let args: Vec<&str> = r["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "check");
        // The check's own timeout is below the rule's, which is at most
        // the plugin's: NPD never kills it, it says "unknown" itself.
        let own = args
            .iter()
            .position(|a| *a == "--timeout")
            .map(|i| {
                humantime::parse_duration(args[i + 1])
                    .unwrap()
                    .as_secs_f64()
            })
            .unwrap_or(3.0);
        assert!(own < secs(&r["timeout"]), "{r}");
        assert!(secs(&r["timeout"]) <= secs(&pc["timeout"]), "{r}");
        // The arguments parse.
        let o = Command::new(netmem_bin())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}");
        if r["type"] == "permanent" {
            assert_eq!(r["condition"], "TCPMemoryPressure");
            assert_eq!(r["reason"], "TCPMemoryPressure");
        }
    }
}

/// serve's port is one any user can bind while serve is down: a listener
/// there that is not root's is not read, as if no serve were there (auto)
/// or unknown (named).
#[test]
fn a_listener_of_another_user_is_not_serve() {
    netmem_tests::require_root();
    let port = netmem_tests::serve::free_port();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(netmem_tests::load_bin())
        .args(["listeners", "--port", &port.to_string(), "--count", "1"]);
    let _held = netmem_tests::Held::start(&mut cmd);
    let addr = format!("127.0.0.1:{port}");
    let (code, line) = check(&["--serve", &addr]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains(&format!(
            "{addr} is held by uid 65534, not root: not netmem serve"
        )),
        "{line}"
    );
}

/// `--state` never replaces what is not its own state: a device, another
/// format (a typo as root naming /dev/null or a system file).
#[test]
fn the_state_file_never_replaces_another_file() {
    netmem_tests::require_root();
    let dir = std::env::temp_dir().join(format!("netmem-check-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let text = dir.join("passwd");
    std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let dev = dir.join("null");
    netmem_tests::run_ok(Command::new("mknod").arg(&dev).args(["c", "1", "3"]));
    for (path, what) in [(&text, "a file of another format"), (&dev, "a device")] {
        let (code, line) = check(&["--serve", "off", "--state", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{what}: {line}");
        assert!(
            line.contains(&format!("cannot keep state in {}", path.display()))
                && line.contains("not replaced"),
            "{what}: {line}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "root:x:0:0:root:/root:/bin/bash\n"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&dev)
        .unwrap()
        .file_type()
        .is_char_device());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stdout that cannot be written (a full disk, a closed pipe) is
/// "unknown", never a panic.
#[test]
fn an_unwritable_stdout_is_unknown() {
    let o = Command::new(netmem_bin())
        .args(["check", "--serve", "off", "--state", "none"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

/// A name in the line comes from serve's series, which carry process and
/// proxy names: a hostile one (ESC, OSC, a newline) reaches no terminal
/// raw, and the answer stays one line.
#[test]
fn hostile_names_from_serve_are_escaped() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let group = "process:\u{1b}]0;owned\u{7}\u{1b}[2Jx\\nnext";
    let body = format!(
        "netmem_build_info{{version=\"0.1.0\"}} 1\nnetmem_interval_seconds 1.0\nnetmem_last_interval_timestamp_seconds {now:.1}\nnetmem_tcp_memory_allocated_bytes 4096\nnetmem_tcp_memory_limit_bytes{{threshold=\"pressure\"}} 409600000\nnetmem_tcp_orphans 1\nnetmem_tcp_max_orphans 1600\nnetmem_aborts_on_memory_total{{cause=\"orphans\"}} 3\nnetmem_aborts_on_memory_last_timestamp_seconds{{cause=\"orphans\"}} {now:.1}\nnetmem_group_aborts_on_memory_total{{group=\"{group}\",cause=\"orphans\"}} 3\n"
    );
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = fake_serve(Some(answer.into_bytes())).to_string();
    let (code, line) = check(&["--serve", &addr]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("most on process:\\u{1b}]0;owned"), "{line}");
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
}
