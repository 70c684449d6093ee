//! A fleet of three hosts (namespaces, each with its own sysctls, load and
//! `netmem serve`) scraped by a real Prometheus: `netmem doctor
//! --prometheus` names the host with the orphans and the host with queued
//! memory, and says of each what `doctor` run on it alone says.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use netmem_tests::fleet::{Fleet, PORT_ORPHANS, PORT_QUEUED};
use netmem_tests::serve::poll;
use netmem_tests::{json_lines, netmem_bin, require_root};
use serde_json::Value;

fn doctor(args: &[&str]) -> Output {
    Command::new(netmem_bin())
        .arg("doctor")
        .args(args)
        .output()
        .expect("run netmem doctor")
}

fn ok_lines(o: &Output) -> Vec<Value> {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    json_lines(&String::from_utf8_lossy(&o.stdout))
}

/// (id, severity, group) of each finding line, of `instance` when given.
fn verdict(lines: &[Value], instance: Option<&str>) -> BTreeSet<(String, String, String)> {
    lines
        .iter()
        .filter(|l| l["type"] == "finding")
        .filter(|l| instance.is_none_or(|i| l["instance"] == i))
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
            (s("id"), s("severity"), s("group"))
        })
        .collect()
}

/// An evidence's value in an instance's (or the only) finding `id`.
fn evidence(lines: &[Value], instance: Option<&str>, id: &str, name: &str) -> Option<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "finding" && l["id"] == id)
        .filter(|l| instance.is_none_or(|i| l["instance"] == i))
        .flat_map(|l| l["evidence"].as_array().cloned().unwrap_or_default())
        .find(|e| e["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .and_then(|e| e["value"].as_str().map(String::from))
}

#[test]
fn the_fleet_doctor_names_each_host_as_doctor_on_it_would() {
    require_root();
    let fleet = Fleet::start(&[], None);
    let url = fleet.url();
    // A few scrapes of every host, so that the window has its peaks.
    poll(std::time::Duration::from_secs(60), || {
        let q = "count_over_time(netmem_tcp_orphans[1m]) >= 5";
        match fleet.prometheus.query(q, None).len() {
            3 => Ok(()),
            n => Err(format!("{q}: {n} hosts")),
        }
    });
    let lines = ok_lines(&doctor(&["--prometheus", &url, "--since", "10m", "--json"]));
    let head = &lines[0];
    assert_eq!(head["type"], "fleet", "{lines:?}");
    let hosts = head["hosts"].as_array().unwrap();
    let names: BTreeSet<&str> = hosts
        .iter()
        .map(|h| h["instance"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["host-orphans", "host-queued", "host-calm"])
    );
    let host = |i: &str| hosts.iter().find(|h| h["instance"] == i).unwrap();
    // The orphans are host-orphans' (the kernel's count is the whole
    // machine's, as every namespace shares it; the census' is each
    // host's own).
    assert_eq!(host("host-orphans")["peak_census_orphans"], 8, "{head}");
    assert_eq!(host("host-queued")["peak_census_orphans"], 0, "{head}");
    assert_eq!(host("host-calm")["peak_census_orphans"], 0, "{head}");
    // Across hosts: the group with the orphans, the group with the queued
    // memory, each on its host.
    let groups: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "fleet_group")
        .collect();
    let across = |g: &str| {
        groups
            .iter()
            .find(|l| l["group"] == g)
            .unwrap_or_else(|| panic!("no fleet_group {g}: {groups:?}"))
    };
    let orphans = across(&format!("listen:{PORT_ORPHANS}"));
    assert_eq!(orphans["hosts"][0]["instance"], "host-orphans");
    assert_eq!(orphans["hosts"][0]["peak_orphans"], 8);
    let queued = across(&format!("listen:{PORT_QUEUED}"));
    assert_eq!(queued["hosts"][0]["instance"], "host-queued");
    assert!(
        queued["hosts"][0]["peak_memory_bytes"].as_u64().unwrap() > 8 << 20,
        "{queued}"
    );
    let peaks: Vec<u64> = groups
        .iter()
        .map(|g| g["peak_memory_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        peaks.windows(2).all(|w| w[0] >= w[1]),
        "the most held first: {peaks:?}"
    );

    // Each host's findings are those `doctor` gives on it alone (the
    // fleet doctor reads no kernel log: neither does this one), with the
    // host's own per-namespace sysctls behind them.
    let empty_log = std::env::temp_dir().join(format!("netmem-fleet-log-{}", std::process::id()));
    std::fs::write(&empty_log, "").unwrap();
    for h in &fleet.hosts {
        let alone = ok_lines(&h.ns.netmem(&[
            "doctor",
            "--json",
            "--kernel-log",
            empty_log.to_str().unwrap(),
        ]));
        let i = Some(h.instance);
        assert_eq!(
            verdict(&lines, i),
            verdict(&alone, None),
            "{}: the fleet doctor and doctor alone disagree",
            h.instance
        );
        // tcp_wmem of its namespace, not the machine's.
        let defaults = "... at the tcp_rmem/tcp_wmem defaults";
        assert_eq!(
            evidence(&lines, i, "buffers.per_connection", defaults),
            evidence(&alone, None, "buffers.per_connection", defaults),
            "{}",
            h.instance
        );
    }
    let _ = std::fs::remove_file(&empty_log);
    let ids = |i: &str| {
        verdict(&lines, Some(i))
            .into_iter()
            .map(|v| (v.0, v.2))
            .collect::<Vec<_>>()
    };
    assert!(
        ids("host-queued").contains(&(
            "buffers.per_connection".into(),
            format!("listen:{PORT_QUEUED}")
        )),
        "{:?}",
        ids("host-queued")
    );
    // The ranking: the hosts holding memory before the calm one.
    assert_eq!(head["instances"][2], "host-calm", "{head}");

    // The text names them the same way.
    let text = doctor(&["--prometheus", &url, "--since", "10m"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("3 instances"), "{text}");
    assert!(
        text.contains(&format!("listen:{PORT_ORPHANS} on 1 host")) && text.contains(", 8 orphans"),
        "{text}"
    );
    assert!(text.contains("== host-calm =="), "{text}");

    // --match narrows the fleet.
    let one = ok_lines(&doctor(&[
        "--prometheus",
        &url,
        "--match",
        "{instance=\"host-calm\"}",
        "--json",
    ]));
    assert_eq!(
        one[0]["instances"],
        serde_json::json!(["host-calm"]),
        "{one:?}"
    );
}

/// What is not a Prometheus, or not netmem's, is said, with a non-zero
/// exit, and never a panic.
#[test]
fn the_fleet_doctor_refuses_what_it_cannot_read() {
    require_root();
    let fleet = Fleet::start(&[], None);
    let url = fleet.url();
    let serve = format!("http://{}", fleet.hosts[0].serve.addr);
    let cases: [(&[&str], &str); 10] = [
        (&["--prometheus", &serve], "is not a Prometheus server's API"),
        (&["--prometheus", "ftp://example"], "only http:// and https://"),
        (&["--prometheus", "http://127.0.0.1:99999"], "\"99999\" is not a port"),
        (&["--prometheus", "http://127.0.0.1:1"], "asking http://127.0.0.1:1/api/v1/query"),
        (
            &["--prometheus", &url, "--match", "{job=\"none\"}"],
            "has no netmem series matching {job=\"none\"} in the last 1d: without --match it has 3 instances: host-calm, host-orphans, host-queued",
        ),
        (&["--prometheus", &url, "--match", "job=\"x\"}) or vector(1"], "give label matchers only"),
        (&["--prometheus", &url, "--match", "netmem_tcp_orphans"], "give label matchers only"),
        (
            &["--prometheus", &url, "--match", "{group=\"listen:18420\"}"],
            "`group` is a label of netmem's own series",
        ),
        (&["--prometheus", &url, "--match", "{job=~\"(\"}"], "Prometheus refused"),
        (&["--prometheus", &url, "--since", "1ms"], "must be between 1m and 366d"),
    ];
    for (args, want) in cases {
        let o = doctor(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(want) && !err.contains("panicked"),
            "{args:?}: {:?} {err}",
            o.status
        );
    }
    // A URL copied from the browser's graph page is the server's.
    let graph = format!("{url}/graph?g0.expr=up&g0.tab=1");
    let lines = ok_lines(&doctor(&["--prometheus", &graph, "--json"]));
    assert_eq!(lines[0]["instances"].as_array().unwrap().len(), 3);
    // --match alone is an error of the command line.
    let o = doctor(&["--match", "{job=\"x\"}"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A port every host serves (a fleet of identical proxies): the group is
/// ranked across hosts, the host holding the most first.
#[test]
fn a_port_on_every_host_is_ranked_across_them() {
    require_root();
    let fleet = Fleet::start(&[], None);
    let port = 18440u16;
    // Queued memory in proportion to the connections, and to each host's
    // tcp_wmem (host-queued's maximum is twice the others').
    let conns = [
        ("host-orphans", "1"),
        ("host-calm", "2"),
        ("host-queued", "4"),
    ];
    let _loads: Vec<_> = conns
        .iter()
        .map(|(i, n)| {
            fleet
                .host(i)
                .ns
                .load(&["stuck-readers", "--port", &port.to_string(), "--conns", n])
        })
        .collect();
    let group = format!("listen:{port}");
    poll(std::time::Duration::from_secs(60), || {
        let q = format!("netmem_group_sockets{{group=\"{group}\"}} > 0");
        match fleet.prometheus.query(&q, None).len() {
            3 => Ok(()),
            n => Err(format!("{q}: {n} hosts")),
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let lines = ok_lines(&doctor(&[
        "--prometheus",
        &fleet.url(),
        "--since",
        "5m",
        "--json",
    ]));
    let g = lines
        .iter()
        .find(|l| l["type"] == "fleet_group" && l["group"] == group.as_str())
        .unwrap_or_else(|| panic!("no fleet_group {group}: {lines:?}"));
    let hosts: Vec<&str> = g["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["instance"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["host-queued", "host-calm", "host-orphans"], "{g}");
    let sum: u64 = g["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["peak_memory_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(g["peak_memory_bytes"], sum, "{g}");
    let text = doctor(&["--prometheus", &fleet.url(), "--since", "5m"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("{group} on 3 hosts")), "{text}");
}

/// serve exports the host line's facts for the fleet doctor, and reads
/// them again while it runs: a namespace's tcp_wmem changed under it shows
/// in `netmem_sysctl_info` within its refresh (a minute).
#[test]
fn serve_exports_the_host_facts_and_follows_a_sysctl_change() {
    require_root();
    let ns = netmem_tests::Netns::new("facts");
    let mut serve = netmem_tests::serve::Serve::start(&["--netns", &ns.name, "--interval", "1s"]);
    let wmem =
        |v: &str| format!("netmem_sysctl_info{{sysctl=\"net.ipv4.tcp_wmem\",value=\"{v}\"}} 1");
    let before = serve.wait_for("netmem_sysctl_info");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        before.contains(&format!("kernel_release=\"{}\"", kernel.trim())),
        "{before}"
    );
    assert!(before.contains("netmem_host_memory_bytes "), "{before}");
    assert!(before.contains("netmem_page_size_bytes "), "{before}");
    netmem_tests::serve::promtool_check_metrics(&before);
    netmem_tests::run_ok(ns.cmd("sysctl").args([
        "-q",
        "-w",
        "net.ipv4.tcp_wmem=4096 20480 1048576",
    ]));
    let t0 = std::time::Instant::now();
    let after = serve.wait_for_within(
        &wmem("4096 20480 1048576"),
        std::time::Duration::from_secs(90),
    );
    assert!(!after.contains(&wmem("4096 16384 4194304")), "{after}");
    eprintln!("the change showed after {:?}", t0.elapsed());
}

/// What Prometheus holds of a host is judged even when nobody watched:
/// its memory drops (a UDP flood), and a host whose netmem stopped is
/// said to be silent, not healthy.
#[test]
fn drops_are_judged_and_a_silent_host_is_said() {
    require_root();
    let mut fleet = Fleet::start(&[], None);
    let url = fleet.url();
    let calm = fleet.host("host-calm");
    let _flood = calm
        .ns
        .load(&["udp-flood", "--port", "15353", "--count", "3000"]);
    // The group is born with its drops (its series starts at them).
    let q = "netmem_group_memory_drops_total{instance=\"host-calm\",group=\"listen:15353\"} > 0";
    fleet.prometheus.wait_for(q);
    let lines = ok_lines(&doctor(&["--prometheus", &url, "--since", "5m", "--json"]));
    let limits = lines
        .iter()
        .find(|l| {
            l["type"] == "finding" && l["id"] == "buffers.limits" && l["instance"] == "host-calm"
        })
        .unwrap_or_else(|| panic!("no buffers.limits on host-calm: {lines:?}"));
    assert_eq!(limits["group"], "listen:15353", "{limits}");
    assert!(
        limits["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "drop reason SOCKET_RCVBUFF"),
        "{limits}"
    );

    // host-calm's netmem stops: its scrape fails.
    let calm = fleet
        .hosts
        .iter_mut()
        .find(|h| h.instance == "host-calm")
        .unwrap();
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(calm.serve.child.id() as i32, libc::SIGTERM) };
    let _ = calm.serve.child.wait();
    fleet.prometheus.wait_for("up{instance=\"host-calm\"} == 0");
    let lines = ok_lines(&doctor(&["--prometheus", &url, "--since", "5m", "--json"]));
    let first = lines
        .iter()
        .find(|l| l["type"] == "finding" && l["instance"] == "host-calm")
        .unwrap();
    assert_eq!(first["id"], "fleet.silent", "{first}");
    assert_eq!(first["severity"], "warn", "{first}");
}
