//! netmem against the workload it was made for: Debian's HAProxy in front of
//! two backends, with slow clients that never read. `netmem trace --json`
//! must charge the frontend send queues, each backend's unread receive
//! queues, and the orphans HAProxy leaves when it times the slow clients out
//! to the right groups, to the byte of what `ss -tmne` reports for the same
//! sockets at the same moment.
//!
//! "The same moment" is made, not hoped for: listen:8080's queues move by
//! more than 10% within milliseconds while clients come and go, so two
//! readings a few milliseconds apart differ. For each comparison the rig
//! holds its normal and vanishing clients still ([`Rig::hold_clients`]);
//! once a continuous `ss` sampler has seen the figures unchanged for a
//! while, every census netmem takes in that window (an interval's
//! timestamp less its `census_age_ms`) must equal them exactly. The clients
//! churn again between the windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use netmem_tests::rig::{Rig, RigConfig};
use netmem_tests::scenarios::Trace;
use netmem_tests::{netmem_bin, parse_ss, require_root, SsSocket};
use serde_json::Value;

struct Sample {
    at: SystemTime,
    socks: Vec<SsSocket>,
}

const FRONTEND: u16 = 8080;

fn frontend_wmem(s: &[SsSocket]) -> u64 {
    s.iter()
        .filter(|x| x.local_port == FRONTEND)
        .map(|x| x.w)
        .sum()
}

fn backend_rmem(s: &[SsSocket], backend: &str) -> u64 {
    s.iter().filter(|x| x.peer == backend).map(|x| x.r).sum()
}

fn frontend_orphans(s: &[SsSocket]) -> Vec<&SsSocket> {
    s.iter()
        .filter(|x| x.local_port == FRONTEND && x.ino == Some(0) && x.state != "TIME-WAIT")
        .collect()
}

fn ts(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v["ts"].as_str().expect("ts")).expect("rfc3339 ts")
}

/// The figures compared, as ss gives them for one sample.
type Figures = Vec<(String, &'static str, u64)>;

/// How long the figures must stay unchanged before the rig counts as still.
const STILL_FOR: Duration = Duration::from_millis(800);
/// How long each still window lasts (several 300 ms intervals).
const WINDOW: Duration = Duration::from_secs(4);

/// Holds the clients, waits until `figures` has been the same in every ss
/// sample for [`STILL_FOR`], keeps the window open for [`WINDOW`], then lets
/// the clients go. Returns the window: from the first sample of the still
/// run to its end.
fn still_window(
    rig: &Rig,
    samples: &Mutex<Vec<Sample>>,
    figures: &impl Fn(&[SsSocket]) -> Figures,
) -> (SystemTime, SystemTime) {
    rig.hold_clients(true);
    let t0 = Instant::now();
    let since = loop {
        {
            let s = samples.lock().unwrap();
            if let Some(last) = s.last() {
                let now = figures(&last.socks);
                let run_start = s
                    .iter()
                    .rev()
                    .take_while(|x| figures(&x.socks) == now)
                    .last()
                    .map(|x| x.at)
                    .unwrap();
                if last.at.duration_since(run_start).unwrap_or_default() >= STILL_FOR {
                    break run_start;
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the rig did not hold still within 20 s with its clients held"
        );
        sleep(Duration::from_millis(50));
    };
    sleep(WINDOW);
    let end = SystemTime::now();
    rig.hold_clients(false);
    (since, end)
}

/// Every census netmem took inside `window` (an interval's `ts` less its
/// `census_age_ms`) must give exactly what ss gave for the same sockets in
/// that window, in which every ss sample agreed. Returns the censuses
/// compared and the figures.
fn check(
    lines: &[Value],
    samples: &[Sample],
    (from, to): (SystemTime, SystemTime),
    figures: impl Fn(&[SsSocket]) -> Figures,
) -> (usize, Figures) {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    assert!(
        inside.len() >= 10,
        "only {} ss samples in the window",
        inside.len()
    );
    let want = figures(&inside[0].socks);
    for s in &inside {
        assert_eq!(
            figures(&s.socks),
            want,
            "the rig moved while its clients were held: not the same sockets at one moment"
        );
    }
    let mut checked = 0;
    for ctx in lines.iter().filter(|l| l["type"] == "context") {
        let at = ts(ctx);
        let census = at - Duration::from_millis(ctx["census_age_ms"].as_u64().unwrap_or(0));
        if census < from || census > to {
            continue;
        }
        for (group, field, w) in &want {
            let got = lines
                .iter()
                .find(|l| l["type"] == "group" && l["group"] == group.as_str() && ts(l) == at)
                .map_or(0, |l| l[*field].as_u64().unwrap_or(0));
            assert_eq!(
                got, *w,
                "{group} {field}: netmem says {got}, ss says {w} for the same sockets (census at {})",
                humantime::format_rfc3339_millis(census)
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "only {checked} censuses fell inside the {:?} still window",
        to.duration_since(from).unwrap_or_default()
    );
    (checked, want)
}

fn wait_for(
    what: &str,
    limit: Duration,
    samples: &Mutex<Vec<Sample>>,
    ok: impl Fn(&[SsSocket]) -> bool,
) {
    let t0 = Instant::now();
    loop {
        if let Some(s) = samples.lock().unwrap().last() {
            if ok(&s.socks) {
                return;
            }
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_queues_and_orphans_are_attributed_as_ss_sees_them() {
    require_root();
    let slow = 8;
    let mut rig = Rig::start(RigConfig {
        name: format!("nmrig{}", std::process::id() % 100000),
        slow,
        normal: 2,
        vanishing: 2,
        // Long enough that a slow start (the clients are processes,
        // started on a busy CI machine) still leaves phase 1's window
        // before HAProxy times them out.
        client_timeout: Duration::from_secs(25),
        ..Default::default()
    })
    .expect("start the rig");
    let netmem = netmem_bin();
    let trace = Trace::start(netmem.to_str().unwrap(), &["--netns", &rig.ns]).expect("trace");
    rig.start_clients().expect("clients");

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done, ns) = (samples.clone(), done.clone(), rig.ns.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let start = SystemTime::now();
                let o = std::process::Command::new("ss")
                    .args(["-N", &ns, "-tmneH"])
                    .output()
                    .expect("ss");
                let end = SystemTime::now();
                let mid = start + end.duration_since(start).unwrap_or_default() / 2;
                samples.lock().unwrap().push(Sample {
                    at: mid,
                    socks: parse_ss(&String::from_utf8_lossy(&o.stdout)),
                });
                sleep(Duration::from_millis(10));
            }
        })
    };
    let backends: Vec<String> = rig.backends.iter().map(|b| b.to_string()).collect();
    let listen = format!("listen:{FRONTEND}");

    // Phase 1: the slow clients' queues fill (and stay full until HAProxy's
    // client timeout).
    wait_for(
        "slow clients' queues to fill",
        Duration::from_secs(16),
        &samples,
        |s| {
            let stuck = s
                .iter()
                .filter(|x| x.local_port == FRONTEND && x.state == "ESTAB" && x.w > 100_000)
                .count();
            stuck >= slow
                && backends
                    .iter()
                    .all(|b| s.iter().any(|x| &x.peer == b && x.r > 100_000))
        },
    );
    let queues = |s: &[SsSocket]| -> Figures {
        let mut f = vec![(listen.clone(), "wmem_queued_bytes", frontend_wmem(s))];
        for b in &backends {
            f.push((format!("backend:{b}"), "rmem_bytes", backend_rmem(s, b)));
        }
        f
    };
    let w1 = still_window(&rig, &samples, &queues);

    // Phase 2: HAProxy times the slow clients out and closes them with their
    // responses still queued: orphans. The other clients churn meanwhile.
    wait_for(
        "HAProxy to orphan the slow clients",
        Duration::from_secs(60),
        &samples,
        |s| frontend_orphans(s).len() >= slow,
    );
    let orphans = |s: &[SsSocket]| -> Figures {
        let o = frontend_orphans(s);
        vec![
            (listen.clone(), "orphans", o.len() as u64),
            (
                listen.clone(),
                "orphan_bytes",
                o.iter().map(|x| x.r + x.w).sum(),
            ),
        ]
    };
    let w2 = still_window(&rig, &samples, &orphans);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let lines = trace.stop().expect("trace output");
    let samples = samples.lock().unwrap();

    let (n, f) = check(&lines, &samples, w1, queues);
    eprintln!("queues: {n} censuses equal ss to the byte: {f:?}");
    let (n, f) = check(&lines, &samples, w2, orphans);
    eprintln!("orphans: {n} censuses equal ss to the byte: {f:?}");
    assert!(f[0].2 >= slow as u64, "every slow client orphaned");
    assert!(
        f[1].2 > 100_000 * slow as u64,
        "orphans hold the slow clients' data"
    );
    drop(rig);
}

/// `netmem-rig --duration N --trace ...` ends by itself after N seconds:
/// netmem gets SIGINT (its last interval and summary), then the rig comes
/// down. It used to run until killed.
#[test]
fn rig_duration_ends_its_trace() {
    require_root();
    let rig = netmem_tests::target_bin("netmem-rig");
    let name = format!("nmrd{}", std::process::id() % 100000);
    let mut child = std::process::Command::new(&rig)
        .args([
            "--name",
            &name,
            "--frontend-port",
            "8090",
            "--duration",
            "4",
        ])
        .args(["--trace", "--json", "--interval", "500ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start netmem-rig");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("netmem-rig --duration 4 --trace still ran after 40 s");
        }
        sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "netmem-rig exited with {status}: {out}");
    assert!(
        out.lines().any(|l| l.contains("\"type\":\"summary\"")),
        "the trace ended with its summary:\n{out}"
    );
}
