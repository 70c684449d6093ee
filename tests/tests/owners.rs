//! Owners, for real: two cgroups the test creates (under its own
//! `netmem-test-PID/` subtree), each running a server in its own network
//! namespace with clients that do not read. netmem, run from the host
//! namespace with `--netns all`, must tell the two apart by cgroup, by
//! namespace and by process, with the bytes `ss` sees in each namespace.

use std::process::Command;
use std::time::{Duration, Instant};

use netmem_tests::*;
use serde_json::Value;

const CONNS: usize = 12;

fn bytes(g: &Value) -> u64 {
    ["rmem_bytes", "wmem_queued_bytes", "fwd_alloc_bytes"]
        .iter()
        .map(|k| g[*k].as_u64().unwrap_or(0))
        .sum()
}

/// What `ss -tmn` in the namespace says its sockets hold (r + t + f).
fn ss_bytes(ns: &Netns) -> u64 {
    ns.ss().iter().map(|s| s.r + s.w + s.f).sum()
}

fn snapshot_all(args: &[&str]) -> Vec<Value> {
    let o = Command::new(netmem_bin())
        .args(["snapshot", "--json", "--netns", "all"])
        .args(args)
        .output()
        .expect("run netmem");
    last_groups(&ok_json(&o))
}

struct Two {
    // Declared first: dropped (processes gone) before the cgroups.
    _loads: Vec<Held>,
    ns: [Netns; 2],
    cg: [TestCgroup; 2],
}

/// Both servers up, each in its namespace and cgroup, with full queues.
fn two_tenants(scenario: &str) -> Two {
    let ns = [Netns::new("own-a"), Netns::new("own-b")];
    let cg = [TestCgroup::new("a"), TestCgroup::new("b")];
    let loads = (0..2)
        .map(|i| {
            ns[i].load_in(
                &cg[i],
                &[scenario, "--port", "7100", "--conns", &CONNS.to_string()],
            )
        })
        .collect();
    Two {
        _loads: loads,
        ns,
        cg,
    }
}

#[test]
fn group_by_cgroup_over_every_namespace_matches_ss_per_namespace() {
    require_root();
    let t = two_tenants("stuck-readers");
    let groups = snapshot_all(&["--group-by", "cgroup"]);
    for i in 0..2 {
        let name = format!("cgroup:{}@{}", t.cg[i].rel, t.ns[i].name);
        let g = group(&groups, &name);
        assert_eq!(g["kind"], "cgroup");
        assert_eq!(g["netns"], t.ns[i].name.as_str());
        assert_eq!(g["cgroup"], t.cg[i].rel.as_str());
        assert_eq!(g["cgroup_id"], t.cg[i].id());
        // Both ends of every connection, and the listener.
        assert_eq!(g["sockets"], 2 * CONNS as u64, "{g}");
        assert_eq!(g["listeners"], 1);
        let (got, want) = (bytes(g), ss_bytes(&t.ns[i]));
        assert!(want > 1_000_000, "the load queued little ({want} bytes)");
        assert!(within_10pct(got, want), "{name}: {got} vs ss {want}");
        // The cross-check: with a v2 memory controller on this cgroup,
        // memory.stat's sock is what the memory controller charged for
        // the same sockets. It counts in pages what sockets hold in bytes
        // (forward allocations included), so it is at least the bytes held
        // less a page per socket and not far above them.
        match (t.cg[i].memcg_sock(), g["memcg_sock_bytes"].as_u64()) {
            (Some(_), Some(m)) => {
                let slack = 4096 * (2 * CONNS as u64 + 1);
                assert!(
                    m + slack >= got && m <= got + got / 4 + slack,
                    "{name}: memory.stat sock {m} vs sockets {got}"
                );
            }
            (None, None) => {}
            (a, b) => panic!("memory.stat sock {a:?} but netmem says {b:?}"),
        }
    }
    // The same port in two namespaces is two port groups.
    let ports = snapshot_all(&["--owners"]);
    for i in 0..2 {
        let g = group(&ports, &format!("listen:7100@{}", t.ns[i].name));
        let owners = &g["owners"];
        assert_eq!(owners["cgroups"][0]["cgroup"], t.cg[i].rel.as_str(), "{g}");
        assert_eq!(owners["processes"][0]["comm"], "netmem-load", "{g}");
        assert_eq!(owners["processes"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn group_by_process_names_each_server() {
    require_root();
    let t = two_tenants("stuck-readers");
    let groups = snapshot_all(&["--group-by", "process"]);
    let mut pids = Vec::new();
    for i in 0..2 {
        let suffix = format!("@{}", t.ns[i].name);
        let g = groups
            .iter()
            .find(|g| g["kind"] == "process" && g["group"].as_str().unwrap().ends_with(&suffix))
            .unwrap_or_else(|| panic!("no process group in {} in {groups:#?}", t.ns[i].name));
        assert_eq!(g["comm"], "netmem-load");
        assert_eq!(g["sockets"], 2 * CONNS as u64);
        let pid = g["pid"].as_u64().unwrap();
        // The pid netmem names is in the cgroup the test put it in.
        let procs = std::fs::read_to_string(t.cg[i].path.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "pid {pid} not in {}: {procs}",
            t.cg[i].rel
        );
        assert!(within_10pct(bytes(g), ss_bytes(&t.ns[i])));
        pids.push(pid);
    }
    assert_ne!(pids[0], pids[1]);
}

/// A live trace over every namespace, one attachment: the kernel counts
/// per namespace, and the interval's groups carry namespace and cgroup.
#[test]
fn trace_over_every_namespace_attributes_each_tenant() {
    require_root();
    let t = two_tenants("stuck-readers");
    let o = Command::new(netmem_bin())
        .args([
            "trace",
            "--json",
            "--netns",
            "all",
            "--group-by",
            "cgroup",
            "--interval",
            "700ms",
            "--duration",
            "1600ms",
        ])
        .output()
        .unwrap();
    let lines = ok_json(&o);
    let groups = last_groups(&lines);
    for i in 0..2 {
        let g = group(&groups, &format!("cgroup:{}@{}", t.cg[i].rel, t.ns[i].name));
        assert!(within_10pct(bytes(g), ss_bytes(&t.ns[i])), "{g}");
        assert_eq!(g["netns_inode"], netns_inode(&t.ns[i]));
    }
}

fn netns_inode(ns: &Netns) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
}

/// Orphans have no inode, so no process: their cgroup is still the
/// socket's own, and the group names its owners.
#[test]
fn owners_of_an_orphan_burst_are_named() {
    require_root();
    let ns = Netns::new("own-orph");
    let cg = TestCgroup::new("orph");
    let trace = ns.netmem_streaming(&[
        "trace",
        "--json",
        "--owners",
        "--interval",
        "500ms",
        "--duration",
        "3s",
    ]);
    let load = ns.load_in(&cg, &["orphans", "--port", "7200", "--conns", "10"]);
    let lines = trace.finish();
    drop(load);
    let born: Vec<&Value> = lines
        .iter()
        .filter(|v| v["event"] == "orphan_born" && v["group"] == "listen:7200")
        .collect();
    assert_eq!(born.len(), 10, "orphan_born events: {born:#?}");
    for e in &born {
        let o = &e["owner"];
        assert_eq!(o["cgroup"], cg.rel.as_str(), "{e}");
        assert_eq!(o["cgroup_id"], cg.id());
        // The tier that sees tcp_close records the closing process; the
        // polling tier only has the socket's cgroup.
        match e["tier"].as_str().unwrap() {
            "polling" => assert_eq!(o["via"], "socket"),
            _ => {
                assert_eq!(o["via"], "closer");
                assert_eq!(o["comm"], "netmem-load");
            }
        }
    }
    let last = last_groups(&lines);
    let g = group(&last, "listen:7200");
    assert_eq!(g["orphans"], 10);
    assert_eq!(g["owners"]["cgroups"][0]["cgroup"], cg.rel.as_str());
    // The orphans are held by no process; the group's live sockets are.
    assert!(g["owners"]["unheld_sockets"].as_u64().unwrap() >= 10, "{g}");
}

/// Processes that come and go while `/proc` is scanned (their fd
/// directories vanish mid-read) never break a pass.
#[test]
fn processes_exiting_during_the_scan_do_not_break_a_pass() {
    require_root();
    let ns = Netns::new("own-churn");
    let _steady = ns.load(&["stuck-readers", "--port", "7300", "--conns", "4"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let name = ns.name.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each holds sockets for an instant, then exits.
                let kids: Vec<_> = (0..8)
                    .map(|_| {
                        Command::new("ip")
                            .args(["netns", "exec", &name])
                            .arg(load_bin())
                            .args(["idle", "--port", "0", "--conns", "3"])
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .unwrap()
                    })
                    .collect();
                for mut k in kids {
                    let _ = k.wait();
                    n += 1;
                }
            }
            n
        })
    };
    let started = Instant::now();
    let mut passes = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let o = Command::new(netmem_bin())
            .args(["snapshot", "--json", "--owners", "--netns", &ns.name])
            .output()
            .unwrap();
        let groups = last_groups(&ok_json(&o));
        let g = group(&groups, "listen:7300");
        assert_eq!(g["owners"]["processes"][0]["comm"], "netmem-load");
        passes += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.join().unwrap();
    assert!(
        passes >= 5 && churned >= 16,
        "{passes} passes, {churned} processes"
    );
}

/// Every namespace of the host is found, named ones by name, and a live
/// trace lets go of one that is deleted: it holds no descriptor on it
/// afterwards (so the namespace really goes), and its groups leave.
#[test]
fn namespaces_are_found_by_name_and_let_go() {
    require_root();
    let a = Netns::new("own-gone");
    let inode = netns_inode(&a);
    let load = a.load(&["stuck-readers", "--port", "7400", "--conns", "2"]);
    let mut trace = Command::new(netmem_bin())
        .args([
            "trace",
            "--json",
            "--netns",
            "all",
            "--interval",
            "300ms",
            "--duration",
            "4s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = trace.id();
    let out = trace.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { out }, &mut s).unwrap();
        s
    });
    let holds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                // The descriptor's target is the namespace's inode,
                // whichever path opened it.
                d.flatten().any(|e| {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata(e.path()).is_ok_and(|m| {
                        m.ino() == inode && m.dev() != 0 && {
                            std::fs::read_link(e.path()).is_ok_and(|l| {
                                let l = l.to_string_lossy();
                                l.starts_with("net:[") || l.starts_with("/run/netns/")
                            })
                        }
                    })
                })
            })
            .unwrap_or(false)
    };
    let t0 = Instant::now();
    while !holds() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "netmem never opened the namespace"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(load);
    let name = a.name.clone();
    drop(a);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!holds(), "netmem still holds the deleted namespace {name}");
    let st = trace.wait().unwrap();
    assert!(st.success());
    let lines = json_lines(&reader.join().unwrap());
    let first = lines
        .iter()
        .filter(|v| v["type"] == "group")
        .any(|g| g["group"] == format!("listen:7400@{name}").as_str());
    assert!(first, "the namespace's group was never reported");
    let last = last_groups(&lines);
    assert!(
        !last.iter().any(|g| g["netns"] == name.as_str()),
        "the deleted namespace's groups are still reported: {last:#?}"
    );
}

/// `serve --netns all --group-by cgroup`: the tenants are label values of
/// their own, and `netmem_group_owner_info` joins namespace and cgroup to
/// each; promtool accepts the exposition.
#[test]
fn serve_labels_each_tenant_by_cgroup_and_namespace() {
    require_root();
    let t = two_tenants("stuck-readers");
    let mut s = netmem_tests::serve::Serve::start(&[
        "--netns",
        "all",
        "--group-by",
        "cgroup",
        "--interval",
        "500ms",
    ]);
    let want: Vec<String> = (0..2)
        .map(|i| format!("cgroup:{}@{}", t.cg[i].rel, t.ns[i].name))
        .collect();
    let body = s.wait_for(&want[1]);
    for (i, group) in want.iter().enumerate() {
        let info = body
            .lines()
            .find(|l| {
                l.starts_with("netmem_group_owner_info{")
                    && l.contains(&format!("group=\"{group}\""))
            })
            .unwrap_or_else(|| panic!("no owner info for {group}:\n{body}"));
        assert!(
            info.contains(&format!("netns=\"{}\"", t.ns[i].name)),
            "{info}"
        );
        assert!(
            info.contains(&format!("cgroup=\"{}\"", t.cg[i].rel)),
            "{info}"
        );
        assert!(info.contains("process=\"netmem-load\""), "{info}");
        let mem: f64 = ["rmem", "wmem_queued", "fwd_alloc"]
            .iter()
            .map(|q| {
                netmem_tests::serve::sample(
                    &body,
                    &format!("netmem_group_memory_bytes{{group=\"{group}\",kind=\"cgroup\",queue=\"{q}\"}}"),
                )
                .unwrap_or(0.0)
            })
            .sum();
        assert!(
            within_10pct(mem as u64, ss_bytes(&t.ns[i])),
            "{group}: {mem} vs ss"
        );
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), s.metrics().as_bytes()).unwrap();
    drop(check.stdin.take());
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, err) = s.stop();
    assert!(st.success(), "{err}");
}

/// A recording made with owners carries them, and its report names them.
#[test]
fn recordings_and_reports_carry_the_owners() {
    require_root();
    let t = two_tenants("stuck-readers");
    let dir = std::env::temp_dir().join(format!("netmem-own-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("owners.nmr");
    let html = dir.join("owners.html");
    run_ok(Command::new(netmem_bin()).args([
        "record",
        "-o",
        rec.to_str().unwrap(),
        "--force",
        "--netns",
        "all",
        "--owners",
        "--interval",
        "500ms",
        "--duration",
        "1600ms",
    ]));
    run_ok(Command::new(netmem_bin()).args([
        "report",
        rec.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    for i in 0..2 {
        assert!(
            page.contains(&format!("listen:7100@{}", t.ns[i].name)),
            "no group of {} in the report",
            t.ns[i].name
        );
        assert!(
            page.contains(&t.cg[i].rel),
            "no cgroup {} in the report",
            t.cg[i].rel
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without root, `--netns all --owners` still reports what it may read,
/// and says what it had to leave out: namespaces it may not enter, and
/// processes whose descriptors it may not read.
#[test]
fn without_root_what_is_left_out_is_said() {
    require_root();
    let ns = Netns::new("own-nobody");
    let _l = ns.load(&["stuck-readers", "--port", "7600", "--conns", "2"]);
    let o = netmem_as_nobody(&["snapshot", "--netns", "all", "--owners"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("is left out") && err.contains("CAP_SYS_ADMIN"),
        "{err}"
    );
    assert!(err.contains("not readable by netmem"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("7600"));
}
