//! `netmem serve` with real parts: the real eBPF programs, real sockets in
//! a namespace of the test's own, Debian's `promtool`, and a real
//! Prometheus server scraping netmem and answering from its own storage.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use netmem_tests::serve::*;
use netmem_tests::*;

fn label_values(result: &[serde_json::Value], label: &str) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|s| s["metric"][label].as_str().map(str::to_string))
        .collect()
}

/// The incident's question, answered by Prometheus from what it stored:
/// which group held the memory at a moment now past, how it compares with
/// `ss`, the orphan burst on another port, every hook and its tier, and a
/// group that went away going stale.
#[test]
fn prometheus_answers_which_group_held_the_memory() {
    require_root();
    let ns = Netns::new("prom");
    let (port, orphan_port) = (18300u16, 18301u16);
    let load = ns.load(&[
        "stuck-readers",
        "--port",
        &port.to_string(),
        "--conns",
        "16",
    ]);
    let mut serve = Serve::start(&["--netns", &ns.name, "--interval", "1s", "--linger", "1s"]);
    let exposition = serve.wait_for(&format!("group=\"listen:{port}\""));
    promtool_check_metrics(&exposition);
    let (_, om) = http_get(
        serve.addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .unwrap();
    assert!(
        om.ends_with("# EOF\n"),
        "OpenMetrics exposition without # EOF"
    );

    let prom = Prometheus::start(serve.addr);
    let wq = format!("netmem_group_memory_bytes{{group=\"listen:{port}\",queue=\"wmem_queued\"}}");
    prom.wait_for(&wq);
    let loaded_at = now_s();
    let w: u64 = ns
        .ss()
        .iter()
        .filter(|s| s.local_port == port && s.state != "LISTEN")
        .map(|s| s.w)
        .sum();
    assert!(w > 1_000_000, "the load queued little ({w} bytes)");
    let got = prom.value(&wq, None).expect("wmem_queued series") as u64;
    assert!(
        within_10pct(got, w),
        "Prometheus has {got} for {wq}, ss says {w}"
    );

    // Every hook, each with its tier on this kernel.
    let probes = prom.query("netmem_probe_info", None);
    let hooks = label_values(&probes, "hook");
    let catalog: BTreeSet<String> = netmem::hooks::catalog::HOOKS
        .iter()
        .map(|h| h.name.to_string())
        .collect();
    assert_eq!(hooks, catalog);
    assert!(
        probes.iter().all(|s| s["metric"]["tier"] != "none"),
        "{probes:?}"
    );

    // An orphan burst on a second port.
    let before_burst = now_s();
    std::thread::sleep(Duration::from_secs(2));
    let orphans = ns.load(&[
        "orphans",
        "--port",
        &orphan_port.to_string(),
        "--conns",
        "12",
    ]);
    let oq = format!("netmem_group_orphans{{group=\"listen:{orphan_port}\"}}");
    let t0 = Instant::now();
    while prom.value(&oq, None).unwrap_or(0.0) < 12.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no orphan burst in {oq}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(prom.value(&oq, Some(before_burst)).unwrap_or(0.0), 0.0);
    let born = format!("netmem_group_orphans_born_total{{group=\"listen:{orphan_port}\"}}");
    let t0 = Instant::now();
    while prom.value(&born, None).unwrap_or(0.0) < 12.0 {
        assert!(t0.elapsed() < Duration::from_secs(15), "{born} below 12");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The kernel-wide orphan count beside its limit, as the alert rules use.
    assert!(prom.value("netmem_tcp_orphans", None).unwrap() >= 12.0);
    assert!(prom.value("netmem_tcp_max_orphans", None).unwrap() > 0.0);

    // "Which group held the memory at <then>?", asked afterwards.
    std::thread::sleep(Duration::from_secs(2));
    let top = prom.query(
        "topk(1, sum by (group) (netmem_group_memory_bytes))",
        Some(loaded_at),
    );
    assert_eq!(
        top[0]["metric"]["group"],
        format!("listen:{port}"),
        "{top:?}"
    );
    // ... and no limit fired: usage below pressure, no aborts on memory.
    assert!(!prom
        .query(
            "netmem_tcp_memory_allocated_bytes < ignoring(threshold) netmem_tcp_memory_limit_bytes{threshold=\"pressure\"}",
            Some(loaded_at)
        )
        .is_empty());
    assert_eq!(
        prom.value("sum(netmem_group_aborts_on_memory_total)", None)
            .unwrap_or(0.0),
        0.0
    );
    assert_eq!(prom.value("netmem_events_lost_total", None), Some(0.0));

    // The load ends: its series go stale instead of lingering.
    drop(load);
    let t0 = Instant::now();
    while !prom.query(&wq, None).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{wq} did not go stale"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(orphans);
    let (st, err) = serve.stop();
    assert!(st.success(), "netmem serve on SIGTERM: {st} {err}");
    assert_eq!(prom.value("up{job=\"netmem\"}", Some(loaded_at)), Some(1.0));
}

/// 500 backends at once: at most --max-groups of them keep a label, the
/// rest are summed into `other` (nothing lost from the sums); once they
/// close, their series are gone.
#[test]
fn cardinality_cap_holds_and_vanished_groups_leave() {
    require_root();
    let ns = Netns::new("cap");
    let port = 18310u16;
    let big = ns.load(&["stuck-readers", "--port", "18315", "--conns", "4"]);
    let many = ns.load(&[
        "backends",
        "--port",
        &port.to_string(),
        "--count",
        "500",
        "--waves",
        "1",
        "--hold",
    ]);
    let mut serve = Serve::start(&[
        "--netns",
        &ns.name,
        "--interval",
        "500ms",
        "--max-groups",
        "50",
        "--linger",
        "1s",
    ]);
    let text = serve.wait_for("group=\"other\"");
    let groups: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("netmem_group_sockets{"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert_eq!(groups.len(), 51, "{groups:?}");
    assert!(groups.contains("other"));
    // Chosen by memory: the group with queued data keeps its label.
    assert!(groups.contains("listen:18315"), "{groups:?}");
    let folded = sample(&text, "netmem_groups_folded").unwrap();
    let seen = sample(&text, "netmem_groups").unwrap();
    assert!(
        seen >= 505.0 && folded == seen - 50.0,
        "groups {seen}, folded {folded}"
    );
    // The sums survive folding: every client socket of the 500 backends,
    // their 500 accepted peers (listen:PORT), the load's last connection
    // to PORT+1 (both sides) and the 8 of the queued group.
    let sockets: f64 = text
        .lines()
        .filter(|l| l.starts_with("netmem_group_sockets{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        sockets,
        1000.0 + 8.0 + 1.0 + 1.0,
        "sum of netmem_group_sockets"
    );

    drop(many);
    let t0 = Instant::now();
    loop {
        let text = serve.metrics();
        let backends = text
            .lines()
            .filter(|l| l.starts_with("netmem_group_sockets{") && l.contains("kind=\"backend\""))
            .count();
        // The queued group's backend side is left; `other` stays (its
        // counters never go back) with nothing in it.
        if backends <= 1 && sample(&text, "netmem_groups_folded") == Some(0.0) {
            assert_eq!(
                sample(
                    &text,
                    "netmem_group_sockets{group=\"other\",kind=\"other\"}"
                ),
                Some(0.0)
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "backend series stayed: {backends}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(big);
}

/// Clients that misbehave get bounded resources and never stall the
/// interval loop: one sending a byte a second, a 1 MB request line, bytes
/// that are not HTTP, hundreds of idle connections, a hundred scrapes at
/// once.
#[test]
fn bad_and_slow_http_clients_do_not_stall_the_interval_loop() {
    require_root();
    let ns = Netns::new("http");
    let _load = ns.load(&["stuck-readers", "--port", "18320", "--conns", "4"]);
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "300ms"]);
    let addr = serve.addr;
    let pid = serve.child.id();
    let rss_before = rss_kib(pid).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // A slowloris: one byte a second, never finishing its head.
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut sent = 0;
            for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
                if stop.load(std::sync::atomic::Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            sent
        })
    };
    // A 1 MB request line.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
        let _ = s.write_all(line.as_bytes());
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let head = String::from_utf8_lossy(&resp[..resp.len().min(40)]).to_string();
        assert!(
            head.is_empty() || head.contains(" 431 ") || head.contains(" 400 "),
            "{head}"
        );
    }
    // Garbage.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"\x00\xff\x16\x03\x01 not http at all\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
            "{resp}"
        );
    }
    // Idle connections beyond the connection limit: the surplus is closed
    // at once, the rest hold a slot until their head times out.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(idle);
    // The server frees their slots as it reads their EOFs: until then a
    // new connection may still be over the limit and closed. It must
    // recover within a few seconds.
    let t0 = Instant::now();
    let status = loop {
        match http_get(addr, "/nope", None) {
            Ok((st, _)) => break st,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the server never took a connection again after the idle ones left: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 404);
    assert_eq!(http_get(addr, "/", None).unwrap().0, 200);

    // A hundred scrapes at once, while the slowloris is still sending: all
    // answered, each in well under a second.
    let t0 = Instant::now();
    let scrapes: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || http_get(addr, "/metrics", None)))
        .collect();
    let mut ok = 0;
    for s in scrapes {
        if let Ok((200, body)) = s.join().unwrap() {
            assert!(body.contains("netmem_group_memory_bytes{group=\"listen:18320\""));
            ok += 1;
        }
    }
    assert_eq!(ok, 100, "some of the concurrent scrapes failed");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "100 scrapes took {:?}",
        t0.elapsed()
    );

    // The interval loop kept its pace throughout: the published interval
    // is at most a few intervals old.
    for _ in 0..5 {
        let text = serve.metrics();
        let last = sample(&text, "netmem_last_interval_timestamp_seconds").unwrap();
        assert!(
            now_s() - last < 1.5,
            "last interval {:.2}s ago",
            now_s() - last
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    let sent = {
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        slow.join().unwrap()
    };
    assert!(
        sent <= 8,
        "the slow client was allowed {sent} s for its head"
    );
    let text = serve.metrics();
    assert!(
        sample(&text, "netmem_http_rejected_total").unwrap() >= 40.0,
        "rejections not counted"
    );
    let rss_after = rss_kib(pid).unwrap();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
}

fn packaging(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(path)
}

fn promtool(args: &[&str], dir: &std::path::Path) {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool");
    assert!(
        o.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The alert rules parse, and fire (or stay quiet) as their unit tests
/// say; the scrape config is a valid Prometheus config.
#[test]
fn packaged_alert_rules_and_scrape_config_pass_promtool() {
    let dir = packaging("prometheus");
    promtool(&["check", "rules", "netmem.rules.yml"], &dir);
    promtool(&["test", "rules", "netmem.rules.test.yml"], &dir);
    promtool(&["check", "config", "scrape.yml"], &dir);
}

/// A packaged unit file's capabilities, without `CAP_`: its
/// CapabilityBoundingSet, which its AmbientCapabilities must repeat.
fn unit_caps(path: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(packaging(path)).unwrap();
    let set = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    assert!(
        unit.contains(&format!("AmbientCapabilities={set}")),
        "{path}: AmbientCapabilities differ from CapabilityBoundingSet"
    );
    set.split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect()
}

/// setpriv's arguments for exactly `caps` (and nothing inherited).
fn bounding(caps: &[String]) -> [String; 2] {
    let set: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.to_lowercase()))
        .collect();
    [
        format!("--bounding-set=-all,{}", set.join(",")),
        "--inh-caps=-all".to_string(),
    ]
}

/// `netmem ARGS` under setpriv with exactly `caps`.
fn netmem_with_caps(caps: &[String], args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(bounding(caps))
        .arg(netmem_bin())
        .args(args)
        .output()
        .unwrap()
}

/// With the unit's set plus the every-namespace drop-in's, `serve --netns
/// all --owners` (the drop-in's command) sees a tenant in a namespace of
/// its own, with its process: setns and the other process's /proc entries
/// are allowed. With the unit's set alone it says what it leaves out.
#[test]
fn every_namespace_drop_in_capabilities_are_enough() {
    require_root();
    let dropin = std::fs::read_to_string(packaging("systemd/every-namespace.conf")).unwrap();
    let base = unit_caps("systemd/netmem.service");
    let args: Vec<&str> = dropin
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/netmem serve "))
        .next()
        .unwrap()
        .split_whitespace()
        // Neither the unit's address nor its state directory: the test's own.
        .filter(|a| {
            !a.starts_with("--listen")
                && !a.starts_with("127.0.0.1")
                && !a.starts_with("--flight-recorder")
                && !a.starts_with("/var/lib/netmem")
        })
        .collect();
    let ns = Netns::new("dropin");
    let _load = ns.load(&["stuck-readers", "--port", "7700", "--conns", "2"]);
    let group = format!("listen:7700@{}", ns.name);
    let all = [base.clone(), unit_caps("systemd/every-namespace.conf")].concat();
    let [b, i] = bounding(&all);
    let wrapper = ["setpriv", b.as_str(), i.as_str()];
    let mut serve = Serve::start_via(&wrapper, &args);
    let text = serve.wait_for(&group);
    assert!(
        text.lines()
            .any(|l| l.starts_with("netmem_group_owner_info{")
                && l.contains(&format!("group=\"{group}\""))
                && l.contains("process=\"netmem-load\"")),
        "{text}"
    );
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
    let snapshot = ["snapshot", "--netns", "all", "--owners"];
    // Without CAP_SYS_PTRACE the namespace is read, but whose sockets
    // they are is not, and that is said.
    let no_ptrace: Vec<String> = all.iter().filter(|c| *c != "SYS_PTRACE").cloned().collect();
    let o = netmem_with_caps(&no_ptrace, &snapshot);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("not readable by netmem"),
        "{err}"
    );
    // The unit's set alone: the other namespace is left out, and said so.
    let o = netmem_with_caps(&base, &snapshot);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("is left out"), "{err}");
}

/// The systemd unit's capability set is enough: netmem serve, started
/// with exactly that bounding set, attaches every hook and serves them.
/// The DaemonSet asks for the same set.
#[test]
fn packaged_capabilities_are_enough_to_serve() {
    require_root();
    let unit = std::fs::read_to_string(packaging("systemd/netmem.service")).unwrap();
    let caps = unit_caps("systemd/netmem.service");
    // The DaemonSet reports every namespace: the unit's set plus the
    // every-namespace drop-in's.
    let ds = std::fs::read_to_string(packaging("kubernetes/daemonset.yaml")).unwrap();
    let all_caps = [caps.clone(), unit_caps("systemd/every-namespace.conf")].concat();
    let quoted: Vec<String> = all_caps.iter().map(|c| format!("\"{c}\"")).collect();
    assert!(
        ds.contains(&format!("add: [{}]", quoted.join(", "))),
        "DaemonSet capabilities differ from the unit's and drop-in's {all_caps:?}"
    );
    assert!(ds.contains("\"--netns\", \"all\", \"--owners\""));
    assert!(unit.contains(&format!("--listen {}", netmem::cmd::serve::DEFAULT_LISTEN)));

    let [b, i] = bounding(&caps);
    let setpriv = ["setpriv", b.as_str(), i.as_str()];
    // With the flight recorder, as the unit runs it (into a directory of
    // the test's own).
    assert!(unit.contains("--flight-recorder /var/lib/netmem/incidents"));
    let fr = std::env::temp_dir().join(format!("netmem-unit-fr-{}", std::process::id()));
    let serve = Serve::start_via(
        &setpriv,
        &[
            "--interval",
            "300ms",
            "--flight-recorder",
            fr.to_str().unwrap(),
        ],
    );
    let text = serve.metrics();
    assert!(
        text.contains("netmem_incidents_total{cause=\"manual\"} 0"),
        "{text}"
    );
    let hooks = text
        .lines()
        .filter(|l| l.starts_with("netmem_probe_info{"))
        .count();
    assert_eq!(hooks, netmem::hooks::catalog::HOOKS.len());
    assert!(!text.contains("tier=\"none\""), "{text}");
    let (st, err) = serve.stop();
    assert!(st.success(), "netmem serve with {b}: {st} {err}");
    let _ = std::fs::remove_dir_all(&fr);
}

/// `netmem_group_time_wait_sockets` has samples only with `--time-wait`:
/// without it the pass skips TIME_WAIT sockets, and a zero would read as
/// "none".
#[test]
fn time_wait_metric_only_when_counted() {
    require_root();
    let ns = Netns::new("servetw");
    let _tw = ns.load(&["churn-tw", "--port", "21100", "--count", "400"]);
    let series = "netmem_group_time_wait_sockets{group=\"listen:21100\",kind=\"listen\"}";
    let plain = Serve::start(&["--netns", &ns.name, "--interval", "300ms"]);
    let text = plain.metrics();
    assert!(!text.contains("netmem_group_time_wait_sockets{"), "{text}");
    drop(plain);
    let mut counted = Serve::start(&["--netns", &ns.name, "--interval", "300ms", "--time-wait"]);
    let text = counted.wait_for(series);
    let n = sample(&text, series).unwrap();
    assert!(
        (45.0..=55.0).contains(&n),
        "{series} = {n} (400 over 8 ports)"
    );
}

/// The `expr:` of alert `name` in the packaged rules.
fn alert_expr(name: &str) -> String {
    let rules = std::fs::read_to_string(packaging("prometheus/netmem.rules.yml")).unwrap();
    let at = rules
        .find(&format!("- alert: {name}\n"))
        .unwrap_or_else(|| panic!("no alert {name}"));
    rules[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("expr: "))
        .unwrap()
        .to_string()
}

/// The host-wide counters an alert can watch exist at 0 from netmem's
/// first exposition, so Prometheus sees a group's first burst as 0 -> N
/// even when the group is born with it (here: a flooded UDP socket's
/// SOCKET_RCVBUFF drops). On a Prometheus scraping two hosts, every query
/// of the packaged dashboard keeps them apart (each series has its
/// `instance`), the packaged rules evaluate without error, and NetmemDown's
/// expression names both hosts once netmem is gone.
#[test]
fn host_wide_counters_start_at_zero_and_hosts_stay_apart() {
    require_root();
    let ns = Netns::new("hostwide");
    let port = 18330u16;
    let mut serve = Serve::spawn_via(&[], &["--netns", &ns.name, "--interval", "1s"]);
    // The first exposition: no interval may be in it yet, never an event.
    let first = serve.wait_for("netmem_build_info");
    promtool_check_metrics(&first);
    for z in host_wide_series() {
        assert_eq!(
            sample(&first, &z),
            Some(0.0),
            "{z} in the first scrape:\n{first}"
        );
    }

    let rules = packaging("prometheus/netmem.rules.yml");
    let prom = Prometheus::start_with(serve.addr, &["host-a", "host-b"], Some(&rules));
    let drops = "netmem_memory_drops_total{reason=\"SOCKET_RCVBUFF\"}";
    let both = BTreeSet::from(["host-a".to_string(), "host-b".to_string()]);
    // Holds once `q` has a series for each host.
    let on_both = |q: &str| {
        let r = prom.query(q, None);
        match label_values(&r, "instance") == both {
            true => Ok(()),
            false => Err(format!("{q}: {r:?}")),
        }
    };
    poll(Duration::from_secs(60), || {
        on_both(&format!("{drops} == 0"))
    });
    // The group is born with its drops.
    let flood = ns.load(&["udp-flood", "--port", &port.to_string(), "--count", "3000"]);
    let group = format!("listen:{port}");
    let first_burst = format!("increase({drops}[30s]) > 0");
    poll(Duration::from_secs(30), || on_both(&first_burst));
    let text = serve.wait_for(&format!("group=\"{group}\""));
    let by_group = sample(
        &text,
        &format!("netmem_group_memory_drops_total{{group=\"{group}\",kind=\"listen\",reason=\"SOCKET_RCVBUFF\"}}"),
    )
    .unwrap_or(0.0);
    let host = sample(&text, drops).unwrap();
    assert!(
        by_group > 0.0 && host >= by_group,
        "host-wide {host}, {group} {by_group}"
    );
    // Every series at 0 from the group's first interval: a cause it never had.
    assert_eq!(
        sample(
            &text,
            &format!("netmem_group_aborts_on_memory_total{{group=\"{group}\",kind=\"listen\",cause=\"tcp_mem\"}}")
        ),
        Some(0.0),
        "{text}"
    );

    // The dashboard with "All" hosts: every series of every query is one
    // host's, and the flooded group is there once per host.
    prom.wait_for(&format!("netmem_group_memory_bytes{{group=\"{group}\"}}"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(packaging("grafana/netmem.json")).unwrap())
            .unwrap();
    let mut per_group = 0;
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 20, "{queries:?}");
    for d in &queries {
        let q = d
            .expr()
            .replace("$instance", ".*")
            .replace("$__rate_interval", "30s");
        let r = prom.query(&q, None);
        for s in &r {
            assert!(
                s["metric"]["instance"].is_string(),
                "panel {:?}: {q} adds hosts together: {s}",
                d.panel
            );
        }
        let hosts = r
            .iter()
            .filter(|s| s["metric"]["group"] == group.as_str())
            .map(|s| s["metric"]["instance"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>();
        if q.starts_with("sum by (instance, group) (netmem_group_memory_bytes") {
            assert_eq!(hosts.len(), 2, "{q}: {r:?}");
            per_group += 1;
        }
    }
    assert_eq!(per_group, 1, "the dashboard has no memory-by-group query");

    // The packaged rules run against real series without error; no abort,
    // so no NetmemAbortOnMemory.
    poll(Duration::from_secs(20), || {
        let groups = prom.api("/api/v1/rules");
        let rules: Vec<&serde_json::Value> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        assert!(rules.len() >= 8, "{groups}");
        assert!(
            rules.iter().all(|r| r["health"] != "err"),
            "a rule fails: {groups}"
        );
        if !rules.iter().all(|r| r["health"] == "ok") {
            return Err(format!("rules never evaluated: {groups}"));
        }
        let aborts = rules
            .iter()
            .find(|r| r["name"] == "NetmemAbortOnMemory")
            .unwrap();
        assert_eq!(aborts["state"], "inactive", "{aborts}");
        Ok(())
    });

    // netmem gone: NetmemDown's expression names both hosts.
    drop(flood);
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
    poll(Duration::from_secs(20), || {
        on_both(&alert_expr("NetmemDown"))
    });
}
