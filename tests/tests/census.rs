//! The census tier in the kernel: BPF socket iterators sum each group in
//! the kernel. Real sockets of every kind the census reports (queues,
//! orphans, accept queues, TIME_WAIT, UDP, many listeners), read by both
//! tiers: the groups must be the same, to the byte, as sock_diag's.

use std::collections::BTreeMap;
use std::process::Command;

use netmem_tests::*;
use serde_json::Value;

/// A snapshot's groups by name (ts left out) and its context line.
fn snapshot(ns: &Netns, tier: &str, extra: &[&str]) -> (BTreeMap<String, Value>, Value) {
    let mut args = vec!["snapshot", "--json", "--all", "--census", tier];
    args.extend_from_slice(extra);
    let lines = ok_json(&ns.netmem(&args));
    by_name(&lines, |_| true)
}

fn by_name(lines: &[Value], keep: impl Fn(&str) -> bool) -> (BTreeMap<String, Value>, Value) {
    let ctx = lines
        .iter()
        .find(|v| v["type"] == "context")
        .expect("context line")
        .clone();
    let groups = last_groups(lines)
        .into_iter()
        .filter(|g| keep(g["group"].as_str().unwrap()))
        .map(|mut g| {
            g.as_object_mut().unwrap().remove("ts");
            (g["group"].as_str().unwrap().to_string(), g)
        })
        .collect();
    (groups, ctx)
}

/// The two tiers' groups, read one after the other until two neighbouring
/// reads agree (a socket may move between two reads: a retransmission, a
/// TIME_WAIT expiring). Returns the kernel tier's groups.
fn agree(read: impl Fn(&str) -> (BTreeMap<String, Value>, Value)) -> BTreeMap<String, Value> {
    let mut last = None;
    for attempt in 0..6 {
        let (k, kctx) = read("bpf-iter");
        let (d, dctx) = read("sock-diag");
        assert_eq!(kctx["census"], "bpf_iter", "{kctx}");
        assert_eq!(dctx["census"], "sock_diag", "{dctx}");
        if k == d {
            return k;
        }
        eprintln!("attempt {attempt}: tiers differ, reading again");
        last = Some((k, d));
    }
    let (k, d) = last.unwrap();
    for (name, g) in &k {
        if d.get(name) != Some(g) {
            eprintln!("bpf_iter  {name}: {g}\nsock_diag {name}: {:?}", d.get(name));
        }
    }
    for name in d.keys().filter(|n| !k.contains_key(*n)) {
        eprintln!("only sock_diag has {name}: {}", d[name]);
    }
    panic!("the in-kernel census never matched sock_diag's groups");
}

#[test]
fn in_kernel_census_equals_sock_diag_to_the_byte() {
    require_root();
    let ns = Netns::new("census");
    let _q = ns.load(&["stuck-readers", "--port", "18501", "--conns", "8"]);
    let _o = ns.load(&["orphans", "--port", "18502", "--conns", "6"]);
    let _b = ns.load(&["backlog", "--port", "18503", "--conns", "5"]);
    let _u = ns.load(&["udp-flood", "--port", "18505"]);
    let _t = ns.load(&["churn-tw", "--port", "18506", "--count", "40"]);
    let _l = ns.load(&["listeners", "--port", "18600", "--count", "50"]);
    for extra in [&[][..], &["--time-wait"][..]] {
        let groups = agree(|tier| snapshot(&ns, tier, extra));
        // Not a vacuous match: every kind of figure was there to compare.
        let l = &groups["listen:18501"];
        assert_eq!(l["sockets"], 8);
        assert!(l["wmem_queued_bytes"].as_u64().unwrap() > 100_000, "{l}");
        assert!(
            groups["backend:127.0.0.1:18501"]["rmem_bytes"]
                .as_u64()
                .unwrap()
                > 0
        );
        let o = &groups["listen:18502"];
        assert!(o["orphans"].as_u64().unwrap() > 0, "{o}");
        assert!(o["orphan_bytes"].as_u64().unwrap() > 0, "{o}");
        let b = &groups["listen:18503"];
        assert_eq!(b["accept_queue"], 5, "{b}");
        assert!(groups["listen:18505"]["drops"].as_u64().unwrap() > 0);
        assert_eq!(groups["listen:18649"]["listeners"], 1);
        if extra.is_empty() {
            assert!(groups.values().all(|g| g["time_wait"].is_null()));
        } else {
            let tw: u64 = groups
                .values()
                .filter_map(|g| g["time_wait"].as_u64())
                .sum();
            assert!(tw >= 40, "TIME_WAIT counted: {tw}");
        }
    }
}

#[test]
fn every_namespace_by_the_kernel_equals_sock_diag() {
    require_root();
    let a = Netns::new("censa");
    let b = Netns::new("censb");
    let _qa = a.load(&["stuck-readers", "--port", "18510", "--conns", "4"]);
    let _qb = b.load(&["stuck-readers", "--port", "18510", "--conns", "6"]);
    let _ob = b.load(&["orphans", "--port", "18511", "--conns", "3"]);
    let ours =
        |g: &str| g.ends_with(&format!("@{}", a.name)) || g.ends_with(&format!("@{}", b.name));
    let groups = agree(|tier| {
        let o = Command::new(netmem_bin())
            .args([
                "snapshot", "--json", "--all", "--netns", "all", "--census", tier,
            ])
            .output()
            .unwrap();
        by_name(&ok_json(&o), ours)
    });
    assert_eq!(groups[&format!("listen:18510@{}", a.name)]["sockets"], 4);
    assert_eq!(groups[&format!("listen:18510@{}", b.name)]["sockets"], 6);
    assert!(
        groups[&format!("listen:18511@{}", b.name)]["orphans"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn a_pass_that_needs_each_socket_reads_sock_diag_and_says_so() {
    require_root();
    let ns = Netns::new("censown");
    let _q = ns.load(&["stuck-readers", "--port", "18520", "--conns", "3"]);
    let lines = ok_json(&ns.netmem(&["snapshot", "--json", "--owners"]));
    let ctx = lines.iter().find(|v| v["type"] == "context").unwrap();
    assert_eq!(ctx["census"], "sock_diag", "--owners needs each socket");
    // A single pass: loading the iterators would cost more than the walk
    // saves (the live commands load them once).
    let lines = ok_json(&ns.netmem(&["snapshot", "--json"]));
    let ctx = lines.iter().find(|v| v["type"] == "context").unwrap();
    assert_eq!(ctx["census"], "sock_diag", "a small snapshot");
}

#[test]
fn a_live_trace_takes_its_census_in_the_kernel() {
    require_root();
    let ns = Netns::new("censlive");
    let _q = ns.load(&["stuck-readers", "--port", "18530", "--conns", "5"]);
    let lines = ns
        .netmem_streaming(&[
            "trace",
            "--json",
            "--interval",
            "300ms",
            "--duration",
            "1500ms",
        ])
        .finish();
    let ctx: Vec<&Value> = lines.iter().filter(|v| v["type"] == "context").collect();
    assert!(!ctx.is_empty());
    assert!(ctx.iter().all(|c| c["census"] == "bpf_iter"), "{ctx:?}");
    let g = last_groups(&lines);
    assert_eq!(group(&g, "listen:18530")["sockets"], 5);
}

#[test]
fn probes_names_the_census_tier_and_a_demand_it_cannot_meet_fails_clearly() {
    require_root();
    let o = run_ok(Command::new(netmem_bin()).args(["probes", "--json"]));
    let rows = json_lines(&String::from_utf8_lossy(&o.stdout));
    let census = rows
        .iter()
        .find(|r| r["hook"] == "census")
        .expect("census row");
    assert_eq!(census["tier"], "bpf_iter", "{census}");
    assert!(census["via"].as_str().unwrap().contains("bpf_iter_tcp"));

    // Without kernel BTF the iterators cannot be found: sock_diag, and why.
    let hidden = |args: &[&str]| {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs none /sys/kernel/btf && exec "$0" "$@""#)
            .arg(netmem_bin())
            .args(args)
            .output()
            .unwrap()
    };
    let o = hidden(&["probes", "--json"]);
    let rows = json_lines(&String::from_utf8_lossy(&o.stdout));
    let census = rows
        .iter()
        .find(|r| r["hook"] == "census")
        .expect("census row");
    assert_eq!(census["tier"], "sock_diag", "{census}");
    assert!(
        census["unavailable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("BTF"),
        "{census}"
    );
    let o = hidden(&["snapshot", "--json"]);
    assert!(o.status.success());
    let o = hidden(&["snapshot", "--census", "bpf-iter"]);
    assert_eq!(o.status.code(), Some(1), "a demanded tier that cannot run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--census bpf-iter") && err.contains("BTF"),
        "{err}"
    );
    assert!(
        o.stdout.is_empty(),
        "no partial output: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}
