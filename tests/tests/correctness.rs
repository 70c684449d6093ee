//! Correct under real load (each found by trying netmem as an operator
//! would): accept queues are not orphans, a draining frontend keeps its
//! port, thousands of listeners and tens of thousands of backends over a
//! trace's life, UDP memory, the last partial interval, signals and bad
//! input. Every test owns its network namespace.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netmem_tests::*;
use serde_json::Value;

fn groups_named<'a>(groups: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    groups
        .iter()
        .filter(|g| g["group"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

/// Children waiting in an accept queue have no inode, like orphans, but
/// nobody closed them: sockstat counts none, and neither may netmem.
#[test]
fn accept_queue_children_are_not_orphans() {
    require_root();
    let ns = Netns::new("backlog");
    let port = 18090u16;
    let _load = ns.load(&["backlog", "--port", &port.to_string(), "--conns", "20"]);
    let snap = ok_json(&ns.netmem(&["snapshot", "--json"]));
    let g = last_groups(&snap);
    let listen = group(&g, &format!("listen:{port}"));
    assert_eq!(listen["sockets"], 20, "{listen}");
    assert_eq!(
        listen["orphans"], 0,
        "accept queue counted as orphans: {listen}"
    );
    assert_eq!(listen["orphan_bytes"], 0);
    assert!(listen["rmem_bytes"].as_u64().unwrap() >= 20 * 4000);
    // The trace's polling tier must not see them born either.
    let lines = ok_json(&ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "300ms",
        "--duration",
        "1s",
        "--max-tier",
        "polling",
    ]));
    let born: Vec<&Value> = lines
        .iter()
        .filter(|v| v["event"] == "orphan_born")
        .collect();
    assert!(
        born.is_empty(),
        "accept-queue children reported as orphans: {born:?}"
    );
}

/// Orphans as netmem counts them are the kernel's own: after the servers
/// close with data queued, sockstat's (global) orphan figure includes at
/// least netmem's count for this namespace, and netmem sees all of them.
#[test]
fn orphans_match_the_kernels_count() {
    require_root();
    let ns = Netns::new("orphcount");
    let port = 18095u16;
    let _load = ns.load(&["orphans", "--port", &port.to_string(), "--conns", "12"]);
    let snap = ok_json(&ns.netmem(&["snapshot", "--json"]));
    let ctx = snap.iter().find(|v| v["type"] == "context").unwrap();
    let g = last_groups(&snap);
    let ours: u64 = g.iter().map(|x| x["orphans"].as_u64().unwrap()).sum();
    assert_eq!(ours, 12, "{g:?}");
    assert!(ctx["orphans"].as_u64().unwrap() >= ours, "{ctx}");
}

/// A frontend whose listener closes while its accepted connections live on
/// stays one `listen:PORT` group in the trace, not one fake backend per
/// client port.
#[test]
fn draining_frontend_keeps_its_port() {
    require_root();
    let ns = Netns::new("drain");
    let port = 18100u16;
    let trace =
        ns.netmem_streaming(&["trace", "--json", "--interval", "400ms", "--duration", "3s"]);
    let _load = ns.load(&[
        "drain",
        "--port",
        &port.to_string(),
        "--conns",
        "30",
        "--close-after-ms",
        "800",
    ]);
    let lines = trace.finish();
    let g = last_groups(&lines);
    let listen = group(&g, &format!("listen:{port}"));
    assert_eq!(
        listen["listeners"], 0,
        "the listener should be closed by now: {listen}"
    );
    assert_eq!(listen["sockets"], 30, "{listen}");
    let backends = groups_named(&g, "backend:127.0.0.1:");
    assert_eq!(
        backends.len(),
        1,
        "accepted sockets became fake backends: {backends:?}"
    );
    assert_eq!(backends[0]["group"], format!("backend:127.0.0.1:{port}"));
}

/// Far more listening ports than the old 8192-entry map: the trace starts,
/// runs and charges a connection on the highest one.
#[test]
fn nine_thousand_listeners() {
    require_root();
    let ns = Netns::new("listeners");
    let (first, count) = (20000u16, 9000u16);
    let _load = ns.load(&[
        "listeners",
        "--port",
        &first.to_string(),
        "--count",
        &count.to_string(),
    ]);
    let lines = ok_json(&ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "500ms",
        "--duration",
        "1200ms",
        "--all",
    ]));
    let g = last_groups(&lines);
    let last = group(&g, &format!("listen:{}", first + count - 1));
    assert_eq!(last["sockets"], 1, "{last}");
    let listeners: u64 = g.iter().map(|x| x["listeners"].as_u64().unwrap_or(0)).sum();
    assert_eq!(listeners, count as u64);
    // Without --all the bare listeners are left out.
    let lines = ok_json(&ns.netmem(&["snapshot", "--json"]));
    assert!(
        last_groups(&lines).len() < 10,
        "bare listeners listed by default"
    );
}

/// 17,000 distinct backends over a trace's life (more than the kernel's
/// per-group map holds at once): a backend that appears last is still
/// counted, and no count is dropped for a full map.
#[test]
fn seventeen_thousand_backends_never_blind_the_trace() {
    require_root();
    let ns = Netns::new("backends");
    let port = 18200u16;
    let trace = ns.netmem_streaming(&[
        "trace",
        "--json",
        "--interval",
        "200ms",
        "--event-limit",
        "0",
    ]);
    let load = ns.load(&[
        "backends",
        "--port",
        &port.to_string(),
        "--count",
        "17000",
        "--waves",
        "6",
        "--gap-ms",
        "400",
    ]);
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill has no memory preconditions; the pid is our child.
    unsafe { libc::kill(trace.child.id() as i32, libc::SIGINT) };
    let lines = trace.finish();
    drop(load);
    let last = format!("backend:127.255.255.254:{}", port + 1);
    let established: u64 = lines
        .iter()
        .filter(|v| v["type"] == "group" && v["group"] == last.as_str())
        .map(|v| v["established"].as_u64().unwrap_or(0))
        .sum();
    if established != 1 {
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|v| v["type"] != "group" || v["group"] == last.as_str())
            .collect();
        panic!("the last backend was not counted: {mine:#?}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["group_map_full"], 0, "{summary}");
    let seen: std::collections::HashSet<&str> = lines
        .iter()
        .filter(|v| v["type"] == "group" && v["established"].as_u64().unwrap_or(0) > 0)
        .filter_map(|v| v["group"].as_str())
        .filter(|g| g.starts_with("backend:127."))
        .collect();
    assert!(seen.len() > 16_384, "only {} backends counted", seen.len());
}

/// UDP sockets and their memory are in every group figure.
#[test]
fn udp_memory_is_visible() {
    require_root();
    let ns = Netns::new("udpmem");
    let port = 15400u16;
    let _load = ns.load(&["udp-flood", "--port", &port.to_string(), "--count", "500"]);
    let snap = ok_json(&ns.netmem(&["snapshot", "--json"]));
    let g = last_groups(&snap);
    let l = group(&g, &format!("listen:{port}"));
    assert!(l["sockets"].as_u64().unwrap() >= 1, "{l}");
    assert!(l["rmem_bytes"].as_u64().unwrap() > 0, "{l}");
    assert!(l["drops"].as_u64().unwrap() > 0, "{l}");
    let ctx = snap.iter().find(|v| v["type"] == "context").unwrap();
    assert!(ctx["udp_inuse"].as_u64().unwrap() >= 2, "{ctx}");
}

/// A trace shorter than its interval still reports the interval it saw.
#[test]
fn last_partial_interval_is_reported() {
    require_root();
    let ns = Netns::new("partial");
    let lines = ok_json(&ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "10s",
        "--duration",
        "1500ms",
    ]));
    let ctx: Vec<&Value> = lines.iter().filter(|v| v["type"] == "context").collect();
    assert_eq!(ctx.len(), 1, "{lines:?}");
    assert!(ctx[0]["lost_events"].is_u64());
    assert_eq!(lines.last().unwrap()["type"], "summary");
}

/// SIGINT right after start (before the probes are up), SIGTERM and SIGHUP
/// all end the trace with its summary; SIGINT works even when the shell
/// started netmem with SIGINT ignored (a script's background job).
#[test]
fn every_stop_signal_ends_with_a_summary() {
    require_root();
    let ns = Netns::new("signals");
    for (sig, delay) in [
        (libc::SIGINT, 0),
        (libc::SIGTERM, 1500),
        (libc::SIGHUP, 1500),
    ] {
        let mut child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "exec {} trace --json --netns {}",
                    netmem_bin().display(),
                    ns.name
                ),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay + 50));
        // SAFETY: kill has no memory preconditions; the pid is our child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let st = child.wait().unwrap();
        assert!(st.success(), "signal {sig}: {st}");
        let lines = json_lines(&out);
        assert_eq!(lines.last().unwrap()["type"], "summary", "signal {sig}");
    }
    // A script's background job: SIGINT ignored by the shell.
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{} trace --json --netns {} >/dev/null & p=$!; sleep 1.5; kill -INT $p; timeout 20 tail --pid=$p -f /dev/null && wait $p",
                netmem_bin().display(),
                ns.name
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A reader that stopped reading must not keep netmem (and its programs)
/// alive after SIGINT: it leaves within the grace period.
#[test]
fn stalled_reader_does_not_block_shutdown() {
    require_root();
    let ns = Netns::new("stalled");
    let mut child = Command::new(netmem_bin())
        .args([
            "trace",
            "--json",
            "--interval",
            "10ms",
            "--all",
            "--netns",
            &ns.name,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Never read: wait until the pipe is full (shrunk to 16 KiB so that
    // takes a few intervals however busy the machine is), so the next
    // write blocks.
    {
        use std::os::fd::AsRawFd;
        let fd = child.stdout.as_ref().unwrap().as_raw_fd();
        // SAFETY: fcntl/ioctl on a pipe fd we own, with an int argument
        // or out-parameter.
        let size = unsafe {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, 16384);
            libc::fcntl(fd, libc::F_GETPIPE_SZ)
        };
        // Full: more than half of it used and nothing added for a second
        // (an atomic write that does not fit waits for room).
        let t0 = Instant::now();
        let mut last = (-1, Instant::now());
        loop {
            let mut n: libc::c_int = 0;
            // SAFETY: as above.
            unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
            if n != last.0 {
                last = (n, Instant::now());
            } else if n > size / 2 && last.1.elapsed() > Duration::from_secs(1) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the pipe never filled ({n} of {size})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let t0 = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "still running with a blocked stdout"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // It was really tracing (not dead early): the pipe holds the probes
    // line and intervals; and it left through the grace exit, 128+SIGINT.
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("\"type\":\"probes\""), "never went live");
    assert!(out.matches("\"type\":\"context\"").count() >= 2);
    assert_eq!(st.code(), Some(128 + libc::SIGINT), "{st}");
}

#[test]
fn bad_input_fails_before_anything_is_attached() {
    let netmem = netmem_bin();
    let fifo = std::env::temp_dir().join(format!("netmem-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "trace".into(),
                "--interval".into(),
                "18446744073709551615s".into(),
            ],
            "between",
        ),
        (
            vec!["trace".into(), "--interval".into(), "1ns".into()],
            "between",
        ),
        (
            vec!["trace".into(), "--event-limit".into(), "4294967295".into()],
            "1000000",
        ),
        (
            vec!["snapshot".into(), "--port".into(), "0".into()],
            "0 is not in",
        ),
        (
            vec![
                "snapshot".into(),
                "--backend".into(),
                "[fe80::1%2]:80".into(),
            ],
            "scope id",
        ),
        (
            vec![
                "snapshot".into(),
                "--netns".into(),
                fifo.to_str().unwrap().into(),
            ],
            "not a namespace file",
        ),
        (
            vec!["snapshot".into(), "--netns".into(), "/dev/null".into()],
            "not a namespace file",
        ),
        (
            vec!["snapshot".into(), "--netns".into(), "no\u{1b}[31mpe".into()],
            "\\u{1b}",
        ),
    ];
    for (args, want) in cases {
        let t0 = Instant::now();
        let o = Command::new(&netmem).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "{args:?}: raw control character echoed"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{args:?} took too long"
        );
    }
    let _ = std::fs::remove_file(&fifo);
}

/// A traced namespace deleted under netmem is said once, not reported on
/// forever without a word.
#[test]
fn deleted_namespace_is_reported() {
    require_root();
    let ns = Netns::new("deleted");
    let mut child = Command::new(netmem_bin())
        .args([
            "trace",
            "--json",
            "--interval",
            "200ms",
            "--netns",
            &ns.name,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    run_ok(Command::new("ip").args(["netns", "del", &ns.name]));
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill has no memory preconditions; the pid is our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(err.matches("was deleted").count(), 1, "{err}");
}

/// A flood of events with a huge --event-limit does not starve the
/// interval table: tables keep coming about once per interval.
#[test]
fn event_flood_does_not_starve_the_table() {
    require_root();
    let ns = Netns::new("flood");
    let trace = ns.netmem_streaming(&[
        "trace",
        "--json",
        "--interval",
        "250ms",
        "--duration",
        "4s",
        "--event-limit",
        "1000000",
    ]);
    // Three senders at once outpace one consumer: the ring never empties.
    let floods: Vec<std::process::Child> = (0..3)
        .map(|i| {
            ns.cmd(load_bin())
                .args([
                    "udp-flood",
                    "--port",
                    &(15500 + i).to_string(),
                    "--count",
                    "600000",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut f in floods {
        f.wait().unwrap();
    }
    let lines = trace.finish();
    let events = lines.iter().filter(|v| v["type"] == "event").count();
    assert!(
        events > 10_000,
        "the flood was too small to test anything: {events}"
    );
    let ts: Vec<std::time::SystemTime> = lines
        .iter()
        .filter(|v| v["type"] == "context")
        .map(|v| humantime::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap())
        .collect();
    // The last table comes after the stop, which first decodes what the
    // flood left in the ring (for at most 300 ms): not part of the cadence.
    let worst = ts[..ts.len() - 1]
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .max()
        .unwrap();
    assert!(ts.len() >= 8, "{} tables in 4 s at 250 ms", ts.len());
    assert!(
        worst < Duration::from_millis(1000),
        "{worst:?} between tables"
    );
    let summary = lines.last().unwrap();
    assert!(summary["events_unread_at_exit"].is_u64(), "{summary}");
}

/// TIME_WAIT sockets are skipped unless asked for: a snapshot's groups say
/// `time_wait: null` (and cost nothing per TIME_WAIT socket); with
/// `--time-wait` each group counts its own, as `ss` sees them.
#[test]
fn time_wait_is_counted_only_when_asked() {
    require_root();
    let ns = Netns::new("tw");
    let _tw = ns.load(&["churn-tw", "--port", "21000", "--count", "400"]);
    let ss_tw: Vec<SsSocket> = ns
        .ss()
        .into_iter()
        .filter(|s| s.state == "TIME-WAIT")
        .collect();
    assert!(ss_tw.len() >= 390, "only {} TIME_WAIT sockets", ss_tw.len());
    let plain = last_groups(&ok_json(&ns.netmem(&["snapshot", "--json", "--all"])));
    assert!(!plain.is_empty());
    for g in &plain {
        assert_eq!(g["time_wait"], serde_json::Value::Null, "{g}");
    }
    let counted = last_groups(&ok_json(&ns.netmem(&[
        "snapshot",
        "--json",
        "--all",
        "--time-wait",
    ])));
    for port in 21000..21008u16 {
        let want = ss_tw.iter().filter(|s| s.local_port == port).count() as u64;
        let g = group(&counted, &format!("listen:{port}"));
        // A few may expire or be recycled between ss and the snapshot.
        let got = g["time_wait"].as_u64().unwrap();
        assert!(got.abs_diff(want) <= 2, "listen:{port}: {got} vs ss {want}");
    }
}

/// `--census-budget`: between full passes an interval carries the last
/// census's groups and says how old they are; when the namespace's socket
/// memory moves by a quarter, a census runs at once and the new memory is
/// attributed in that interval. At 100 (percent) every interval is fresh.
#[test]
fn census_runs_within_its_budget_and_at_once_when_memory_moves() {
    require_root();
    let ns = Netns::new("budget");
    let _idle = ns.load(&["idle", "--port", "20400", "--conns", "2000"]);
    let args = |budget: &'static str| {
        vec![
            "trace",
            "--json",
            "--interval",
            "250ms",
            "--duration",
            "4s",
            "--census-budget",
            budget,
        ]
    };
    // A hundredth of a percent: the first census pays for the next
    // minute, so only a memory move can bring one sooner.
    let trace = ns.netmem_streaming(&args("0.01"));
    std::thread::sleep(Duration::from_millis(1500));
    let stuck = ns.load(&["stuck-readers", "--port", "18085", "--conns", "20"]);
    let lines = trace.finish();
    drop(stuck);
    let contexts: Vec<&Value> = lines.iter().filter(|v| v["type"] == "context").collect();
    let ages: Vec<u64> = contexts
        .iter()
        .map(|c| c["census_age_ms"].as_u64().expect("census_age_ms"))
        .collect();
    assert!(ages.len() >= 10, "{ages:?}");
    // Reused censuses before the load, growing with time. A census
    // sooner is one a memory move brought: the host's TCP memory is every
    // namespace's, and the other tests of a run move it, so one such
    // census is allowed here (it starts the ages again).
    let before: Vec<u64> = ages[1..5].to_vec();
    assert!(before.iter().filter(|&&a| a > 0).count() >= 3, "{ages:?}");
    assert!(
        before
            .windows(2)
            .all(|w| w[0] == 0 || w[1] == 0 || w[1] > w[0]),
        "{ages:?}"
    );
    // The idle holders' groups are in every interval, fresh or not.
    let mut interval = Vec::new();
    let mut fresh_with_load = false;
    for v in &lines {
        match v["type"].as_str() {
            Some("context") => {
                check_interval(&interval, &mut fresh_with_load);
                interval = vec![v];
            }
            Some("group") => interval.push(v),
            _ => {}
        }
    }
    check_interval(&interval, &mut fresh_with_load);
    assert!(
        fresh_with_load,
        "no fresh census showed listen:18085's queues after the memory moved: {ages:?}"
    );

    fn check_interval(lines: &[&Value], fresh_with_load: &mut bool) {
        let Some((ctx, groups)) = lines.split_first() else {
            return;
        };
        assert!(
            groups.iter().any(|g| g["group"] == "listen:20400"),
            "an interval without the idle holders' group: {ctx}"
        );
        let stuck = groups
            .iter()
            .find(|g| g["group"] == "listen:18085")
            .map(|g| {
                g["wmem_queued_bytes"].as_u64().unwrap_or(0) + g["rmem_bytes"].as_u64().unwrap_or(0)
            })
            .unwrap_or(0);
        if ctx["census_age_ms"] == 0 && stuck > 1 << 20 {
            *fresh_with_load = true;
        }
    }

    let every = ns.netmem_streaming(&args("100")).finish();
    let fresh: Vec<&Value> = every.iter().filter(|v| v["type"] == "context").collect();
    assert!(fresh.len() >= 10);
    assert!(fresh.iter().all(|c| c["census_age_ms"] == 0), "{fresh:?}");

    // serve says the same to a scraper: the groups' age, as a gauge.
    let serve = netmem_tests::serve::Serve::start(&[
        "--netns",
        &ns.name,
        "--interval",
        "250ms",
        "--census-budget",
        "0.01",
    ]);
    std::thread::sleep(Duration::from_millis(1200));
    let m = serve.metrics();
    let age = netmem_tests::serve::sample(&m, "netmem_census_age_seconds").unwrap();
    assert!(age > 0.2, "census age {age} s at a hundredth of a percent");
    assert!(
        netmem_tests::serve::sample(
            &m,
            "netmem_group_sockets{group=\"listen:20400\",kind=\"listen\"}"
        )
        .is_some_and(|n| n >= 2000.0),
        "the idle holders' group left the exposition between censuses"
    );
}

/// A trace's text event lines are `key=value` words, an owner's fields
/// as `owner.field=value`, with no embedded JSON (an `orphan_born` line
/// with its owner once ran past 600 characters of it).
#[test]
fn text_event_lines_are_key_value_words() {
    require_root();
    let ns = Netns::new("evwords");
    let port = 18096u16;
    let mut child = Command::new(netmem_bin())
        .args([
            "trace",
            "--owners",
            "--interval",
            "500ms",
            "--duration",
            "3s",
            "--netns",
            &ns.name,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut text = until_probes(&mut out);
    let load = ns.load(&["orphans", "--port", &port.to_string(), "--conns", "4"]);
    out.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success(), "{text}");
    drop(load);
    let born: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("orphan_born"))
        .collect();
    assert_eq!(born.len(), 4, "{text}");
    for l in &born {
        assert!(!l.contains('{') && !l.contains('}'), "JSON in: {l}");
        let words: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(words[2], format!("listen:{port}"), "{l}");
        for w in &words[3..] {
            let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{w} in {l}"));
            assert!(
                !k.is_empty()
                    && !v.is_empty()
                    && k.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '_'
                        || c == '.'),
                "{w} in {l}"
            );
        }
        for k in ["bytes=", "state=", "owner.via=", "owner.cgroup_id="] {
            assert!(l.contains(&format!(" {k}")), "no {k} in {l}");
        }
        assert!(!l.contains("=null"), "{l}");
    }
}
