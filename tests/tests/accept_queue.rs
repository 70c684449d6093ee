//! Accept queues and each namespace's own counters, on real listeners: a
//! listener that never accepts, filled past its backlog in a namespace
//! the test owns (the kernel drops the next SYNs: ListenOverflows). Its
//! queue and backlog equal `ss -ltn`'s Recv-Q and Send-Q; its drops are
//! counted on its group (the listener's own count) and on its namespace's
//! counters; the doctor names the backlog that applies; serve exports
//! both; and with `--netns all`, drops in one of two namespaces are
//! charged to that one only.

use std::process::Command;
use std::time::Duration;

use netmem_tests::serve::{poll, sample, Serve};
use netmem_tests::*;
use serde_json::Value;

fn groups<'a>(lines: &'a [Value], name: &'a str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "group" && l["group"] == name)
        .collect()
}

fn netns_lines<'a>(lines: &'a [Value], name: &'a str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "netns" && l["netns"] == name)
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What the namespace's counter `c` grew by over its lines.
fn grew(lines: &[&Value], c: &str) -> u64 {
    lines.iter().filter_map(|l| l["delta"][c].as_u64()).sum()
}

/// `ss -ltnH` in the namespace: (Recv-Q, Send-Q) of the listener on `port`.
fn ss_queue(ns: &Netns, port: u16) -> (u64, u64) {
    let o = ns
        .cmd("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss");
    let text = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(f.len() >= 3, "ss -ltn: {text}");
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

#[test]
fn a_full_accept_queue_is_counted_attributed_and_diagnosed() {
    require_root();
    let ns = Netns::new("acceptq");
    let port = 18310u16;
    let _load = ns.load(&[
        "overflow",
        "--port",
        &port.to_string(),
        "--backlog",
        "4",
        "--conns",
        "12",
    ]);
    let (recv_q, send_q) = ss_queue(&ns, port);
    assert_eq!((recv_q, send_q), (5, 4), "ss: a backlog of 4 holds 5");
    // Long enough to see the dropped SYNs retransmitted: 1 s after the
    // clients' connect, then 3 s (the trace starts within the first).
    let lines =
        ok_json(&ns.netmem(&["trace", "--json", "--interval", "300ms", "--duration", "4s"]));
    let name = format!("listen:{port}");
    let g = groups(&lines, &name);
    assert!(g.len() >= 3, "{name} in every interval: {g:?}");
    let last = g.last().unwrap();
    assert_eq!(
        (n(&last["accept_queue"]), n(&last["accept_backlog"])),
        (recv_q, send_q),
        "netmem's queue and backlog are ss's: {last}"
    );
    assert_eq!(n(&last["accept_full"]), 1, "{last}");
    let first_drops = n(&g[0]["listen_drops"]);
    let last_drops = n(&last["listen_drops"]);
    assert!(
        first_drops >= 7,
        "12 clients, 5 queued: at least 7 SYNs dropped on the listener: {}",
        g[0]
    );
    assert!(
        last_drops > first_drops,
        "retransmitted SYNs dropped again: {first_drops} -> {last_drops}"
    );
    // The namespace's own counters: nothing else listens in it, so its
    // overflows are the listener's drops.
    let spaces = netns_lines(&lines, &ns.name);
    assert!(spaces.len() >= 3, "a netns line per interval: {lines:?}");
    let total = n(&spaces.last().unwrap()["counters"]["ListenOverflows"]);
    assert!(
        total >= last_drops,
        "ListenOverflows {total} vs the listener's {last_drops}"
    );
    assert_eq!(
        spaces.last().unwrap()["counters"]["ListenOverflows"],
        spaces.last().unwrap()["counters"]["ListenDrops"]
    );
    assert!(
        grew(&spaces, "ListenOverflows") >= last_drops - first_drops,
        "{spaces:?}"
    );
    assert!(spaces.last().unwrap()["delta"].is_object(), "{spaces:?}");
    // The doctor on what was recorded names the listener and the limit.
    let dir = std::env::temp_dir().join(format!("netmem-acceptq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("trace.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let out = Command::new(netmem_bin())
        .args(["doctor", "--json", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    let report = ok_json(&out);
    let f = report
        .iter()
        .find(|l| l["type"] == "finding" && l["id"] == "accept_queue")
        .unwrap_or_else(|| panic!("no accept_queue finding: {report:?}"));
    assert_eq!(f["group"], name.as_str(), "{f}");
    assert_eq!(f["severity"], "critical", "{f}");
    assert_eq!(f["fired"], true, "{f}");
    assert_eq!(f["rank"], 1, "the first finding: {f}");
    let actions = f["action"].to_string();
    assert!(
        actions.contains("listen() backlog (4 per listener)")
            && actions.contains("raise it to 128"),
        "{actions}"
    );
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains(&format!("ListenOverflows in namespace {}", ns.name)),
        "{evidence}"
    );
    // The report draws the accept queues.
    let html = dir.join("report.html");
    let o = Command::new(netmem_bin())
        .args(["report", "--force", "-o"])
        .arg(&html)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-plot=\"accept\""), "no accept plot");
    assert!(
        page.contains(&format!("accept queue of {name}")),
        "{name} not drawn"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_exports_accept_queues_and_namespace_counters() {
    require_root();
    let ns = Netns::new("acceptm");
    let port = 18320u16;
    let _load = ns.load(&[
        "overflow",
        "--port",
        &port.to_string(),
        "--backlog",
        "2",
        "--conns",
        "8",
    ]);
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "300ms"]);
    let group = format!("group=\"listen:{port}\",kind=\"listen\"");
    poll(Duration::from_secs(10), || {
        let m = serve.metrics();
        let queue = sample(&m, &format!("netmem_group_accept_queue{{{group}}}"));
        let backlog = sample(&m, &format!("netmem_group_accept_backlog{{{group}}}"));
        let drops = sample(&m, &format!("netmem_group_listen_drops_total{{{group}}}"));
        let overflows = sample(
            &m,
            &format!(
                "netmem_netns_listen_overflows_total{{netns=\"{}\"}}",
                ns.name
            ),
        );
        match (queue, backlog, drops, overflows) {
            (Some(3.0), Some(2.0), Some(d), Some(o)) if d >= 5.0 && o >= d => Ok(()),
            got => Err(format!("queue, backlog, drops, overflows: {got:?}")),
        }
    });
    let m = serve.metrics();
    assert!(
        m.contains(&format!("netmem_netns_info{{netns=\"{}\",inode=", ns.name)),
        "{m}"
    );
    netmem_tests::serve::promtool_check_metrics(&m);
}

/// Two namespaces, drops in one: `--netns all` charges them to that one,
/// on its counters and on its listener's group, and none to the other.
#[test]
fn counters_are_charged_to_the_namespace_they_happened_in() {
    require_root();
    let full = Netns::new("aqfull");
    let calm = Netns::new("aqcalm");
    let port = 18330u16;
    let p = port.to_string();
    // The kernel caps the listener's 8 at the namespace's somaxconn, 3
    // (a sysctl of the test's own namespace).
    run_ok(full.cmd("sysctl").args(["-qw", "net.core.somaxconn=3"]));
    let _a = full.load(&["overflow", "--port", &p, "--backlog", "8", "--conns", "10"]);
    let _b = calm.load(&["backlog", "--port", &p, "--conns", "5"]);
    let o = Command::new(netmem_bin())
        .args([
            "trace",
            "--netns",
            "all",
            "--json",
            "--interval",
            "400ms",
            "--duration",
            "2500ms",
        ])
        .output()
        .unwrap();
    let lines = ok_json(&o);
    let (f, c) = (
        netns_lines(&lines, &full.name),
        netns_lines(&lines, &calm.name),
    );
    assert!(
        f.len() >= 2 && c.len() >= 2,
        "both namespaces read: {f:?} {c:?}"
    );
    assert!(n(&f.last().unwrap()["counters"]["ListenOverflows"]) >= 6);
    assert_eq!(n(&c.last().unwrap()["counters"]["ListenOverflows"]), 0);
    assert_eq!(grew(&c, "ListenOverflows"), 0);
    assert_eq!(grew(&c, "ListenDrops"), 0);
    let (nf, nc) = (
        format!("listen:{port}@{}", full.name),
        format!("listen:{port}@{}", calm.name),
    );
    let (gf, gc) = (groups(&lines, &nf), groups(&lines, &nc));
    let (gf, gc) = (
        gf.last().expect("full's group"),
        gc.last().expect("calm's group"),
    );
    assert!(n(&gf["listen_drops"]) >= 6, "{gf}");
    assert_eq!(n(&gf["accept_full"]), 1, "{gf}");
    assert_eq!(n(&gc["listen_drops"]), 0, "{gc}");
    assert_eq!(n(&gc["accept_full"]), 0, "{gc}");
    assert_eq!(
        n(&gc["accept_queue"]),
        5,
        "calm's clients wait, within its backlog: {gc}"
    );
    // The doctor scopes them: a finding for the full namespace, none for
    // the calm one.
    let dir = std::env::temp_dir().join(format!("netmem-aqns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("all.jsonl");
    std::fs::write(
        &file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let report = ok_json(
        &Command::new(netmem_bin())
            .args(["doctor", "--json", "--from"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    let scoped: Vec<&Value> = report
        .iter()
        .filter(|l| l["id"] == "netns.counters")
        .collect();
    assert!(
        scoped.iter().any(|l| l["title"]
            .as_str()
            .unwrap()
            .starts_with(&format!("namespace {}:", full.name))),
        "{scoped:?}"
    );
    assert!(
        !scoped
            .iter()
            .any(|l| l["title"].as_str().unwrap().contains(&calm.name)),
        "{scoped:?}"
    );
    let aq = report
        .iter()
        .find(|l| l["id"] == "accept_queue")
        .expect("accept_queue finding");
    assert_eq!(aq["group"], format!("listen:{port}@{}", full.name), "{aq}");
    // The cap is the namespace's own somaxconn, set inside it.
    assert_eq!(f.last().unwrap()["somaxconn"], 3, "{:?}", f.last());
    let actions = aq["action"].to_string();
    assert!(
        actions.contains("capped the backlog at net.core.somaxconn (3)")
            && actions.contains(&format!(
                "ip netns exec {} sysctl -w net.core.somaxconn=",
                full.name
            )),
        "{actions}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
