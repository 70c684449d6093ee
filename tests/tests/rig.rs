//! netmem against the workload it was made for: Debian's HAProxy in front of
//! two backends, with slow clients that never read. `netmem trace --json`
//! must charge the frontend send queues, each backend's unread receive
//! queues, and the orphans HAProxy leaves when it times the slow clients out
//! to the right groups, each within 10% of `ss -tmne` taken at the same
//! moment (a continuous ss sampler; the samples within 200 ms of each trace
//! interval are "the same moment").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use netmem_tests::rig::{Rig, RigConfig};
use netmem_tests::scenarios::Trace;
use netmem_tests::{netmem_bin, parse_ss, require_root, within_10pct, SsSocket};
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

fn gap(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap()
}

/// Every interval of `group` inside [from, to] must be within 10% of some ss
/// sample taken within 200 ms of it; a count of sockets (`orphans`) may also
/// be one off: the vanishing clients' connections pass through short-lived
/// orphan states, and one caught by the dump but by no sample moved a
/// count of 8 by 12.5% once. Returns (intervals checked, last pair).
fn check(
    lines: &[Value],
    samples: &[Sample],
    (from, to): (SystemTime, SystemTime),
    group: &str,
    field: &str,
    from_ss: impl Fn(&[SsSocket]) -> u64,
) -> (usize, u64, u64) {
    let mut checked = 0;
    let mut last = (0, 0);
    for l in lines
        .iter()
        .filter(|l| l["type"] == "group" && l["group"] == group)
    {
        let t = ts(l);
        if t < from || t > to {
            continue;
        }
        let got = l[field].as_u64().unwrap_or(0);
        let near: Vec<u64> = samples
            .iter()
            .filter(|s| gap(s.at, t) <= Duration::from_millis(200))
            .map(|s| from_ss(&s.socks))
            .collect();
        assert!(!near.is_empty(), "no ss sample near {group} at {l}");
        assert!(
            near.iter().any(|&want| within_10pct(got, want)
                || (field == "orphans" && want > 0 && got.abs_diff(want) <= 1)),
            "{group} {field}: netmem says {got}, ss says {near:?} at the same moment"
        );
        checked += 1;
        let closest = near
            .iter()
            .min_by_key(|&&w| w.abs_diff(got))
            .copied()
            .unwrap_or(0);
        last = (got, closest);
    }
    assert!(
        checked >= 3,
        "only {checked} intervals of {group} in the window"
    );
    (checked, last.0, last.1)
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
        // Small bodies: a normal response passing through a backend socket
        // lives a few milliseconds, and at 64 KiB one caught by netmem's
        // dump but between two ss samples was 14% of a backend's steady
        // receive queue. At 1 KiB it stays far inside the 10% compared.
        normal_body: 1024,
        vanishing: 2,
        // Long enough that a slow start (the clients are processes,
        // started on a busy CI machine) still leaves phase 1's window
        // before HAProxy times them out.
        client_timeout: Duration::from_secs(20),
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
    let w1 = (
        SystemTime::now(),
        SystemTime::now() + Duration::from_millis(2500),
    );
    sleep(Duration::from_millis(2700));

    // Phase 2: HAProxy times the slow clients out and closes them with their
    // responses still queued: orphans.
    wait_for(
        "HAProxy to orphan the slow clients",
        Duration::from_secs(60),
        &samples,
        |s| frontend_orphans(s).len() >= slow,
    );
    let w2 = (
        SystemTime::now(),
        SystemTime::now() + Duration::from_millis(2500),
    );
    sleep(Duration::from_millis(2700));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let lines = trace.stop().expect("trace output");
    let samples = samples.lock().unwrap();
    let listen = format!("listen:{FRONTEND}");

    let (n, got, want) = check(
        &lines,
        &samples,
        w1,
        &listen,
        "wmem_queued_bytes",
        frontend_wmem,
    );
    eprintln!(
        "{listen} wmem_queued: {n} intervals match ss (last: netmem {got}, closest ss {want})"
    );
    for b in &backends {
        let (n, got, want) = check(
            &lines,
            &samples,
            w1,
            &format!("backend:{b}"),
            "rmem_bytes",
            |s| backend_rmem(s, b),
        );
        eprintln!(
            "backend:{b} rmem: {n} intervals match ss (last: netmem {got}, closest ss {want})"
        );
    }
    let (n, got, want) = check(&lines, &samples, w2, &listen, "orphans", |s| {
        frontend_orphans(s).len() as u64
    });
    eprintln!("{listen} orphans: {n} intervals match ss (last: netmem {got}, closest ss {want})");
    assert!(got >= slow as u64);
    let (n, got, want) = check(&lines, &samples, w2, &listen, "orphan_bytes", |s| {
        frontend_orphans(s).iter().map(|x| x.r + x.w).sum()
    });
    eprintln!(
        "{listen} orphan_bytes: {n} intervals match ss (last: netmem {got}, closest ss {want})"
    );
    assert!(
        got > 100_000 * slow as u64,
        "orphans hold the slow clients' data"
    );
    drop(rig);
}
