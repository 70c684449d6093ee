//! `netmem doctor` on real sockets in namespaces the tests own: one reading
//! names the group holding the memory (within 10% of `ss`), a recording
//! made by `trace --json` is diagnosed after the fact, and a kernel log file
//! with each message is explained. The limits that fire for real (tiny
//! tcp_max_orphans, tiny tcp_mem) are checked in the QEMU guests
//! (`scenarios::orphans` and `scenarios::tcp_mem`), which own their sysctls.

use std::process::Command;

use netmem_tests::*;
use serde_json::Value;

fn findings(o: &std::process::Output) -> Vec<Value> {
    ok_json(o)
        .into_iter()
        .filter(|v| v["type"] == "finding")
        .collect()
}

fn held_by(f: &Value, group: &str) -> u64 {
    let name = format!("held by {group}");
    let ev = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no {name} in {f}"));
    ev["value"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn reading_names_the_holder_within_ten_percent_of_ss() {
    require_root();
    let ns = Netns::new("docread");
    let port = 18300u16;
    let _load = ns.load(&[
        "stuck-readers",
        "--port",
        &port.to_string(),
        "--conns",
        "16",
    ]);
    let f = findings(&ns.netmem(&["doctor", "--json"]));
    let tm = f
        .iter()
        .find(|f| f["id"] == "tcp_mem")
        .expect("tcp_mem finding");
    let group = format!("listen:{port}");
    assert_eq!(tm["group"], group.as_str(), "{tm}");
    let got = held_by(tm, &group);
    let ss: u64 = ns
        .ss()
        .iter()
        .filter(|s| s.local_port == port && s.state != "LISTEN")
        .map(|s| s.r + s.w + s.f)
        .sum();
    assert!(within_10pct(got, ss), "doctor {got} vs ss {ss}");
    // The per-connection rule speaks of the same group, with numbers.
    let pc = f
        .iter()
        .find(|f| f["id"] == "buffers.per_connection")
        .unwrap();
    assert_eq!(pc["group"], group.as_str());
    // The doctor line says what was diagnosed.
    let o = ns.netmem(&["doctor", "--json"]);
    let head = ok_json(&o)
        .into_iter()
        .find(|v| v["type"] == "doctor")
        .unwrap();
    assert_eq!(head["namespace"], ns.name.as_str());
}

#[test]
fn recording_is_diagnosed_after_the_fact() {
    require_root();
    let ns = Netns::new("docrec");
    let port = 18310u16;
    let load = ns.load(&["stuck-readers", "--port", &port.to_string(), "--conns", "8"]);
    let rec = ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "400ms",
        "--duration",
        "1200ms",
    ]);
    assert!(rec.status.success());
    drop(load);
    let lines = json_lines(&String::from_utf8_lossy(&rec.stdout));
    assert_eq!(
        lines[0]["type"], "host",
        "a recording starts with the host line"
    );
    assert!(lines[0]["host"]["sysctls"]["net.ipv4.tcp_mem"].is_string());
    let path = std::env::temp_dir().join(format!("netmem-docrec-{}.jsonl", std::process::id()));
    std::fs::write(&path, &rec.stdout).unwrap();
    // Diagnosed later, when the sockets are long gone.
    let o = Command::new(netmem_bin())
        .args(["doctor", "--json", "--from"])
        .arg(&path)
        .output()
        .unwrap();
    let all = ok_json(&o);
    let head = all.iter().find(|v| v["type"] == "doctor").unwrap();
    assert!(
        head["source"].as_str().unwrap().starts_with("recording "),
        "{head}"
    );
    let tm = all.iter().find(|f| f["id"] == "tcp_mem").unwrap();
    assert_eq!(tm["group"], format!("listen:{port}"), "{tm}");
    // A file that is not a recording is refused with a clear message.
    std::fs::write(&path, "hello\n").unwrap();
    let o = Command::new(netmem_bin())
        .args(["doctor", "--from"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a netmem recording"));
    let _ = std::fs::remove_file(&path);
    let o = Command::new(netmem_bin())
        .args(["doctor", "--from", "/nonexistent/rec"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read recording"));
}

/// The four messages of `sources::kernel_log`, as syslog wrote them
/// (the route cache's with its second line), and a line that is none.
const FOUR_MESSAGES: &str = "\
Nov 29 03:12:01 lb1 kernel: [81234.5] TCP: too many orphaned sockets
Nov 29 03:12:02 lb1 kernel: [81235.5] TCP: out of memory -- consider tuning tcp_mem
Nov 29 03:12:04 lb1 kernel: [81237.5] TCP: out of memory -- consider tuning tcp_mem
Nov 29 03:12:03 lb1 kernel: [81236.0] Out of socket memory
Nov 29 03:12:05 lb1 kernel: [81238.0] Route hash chain too long!
Nov 29 03:12:05 lb1 kernel: [81238.0] Adjust your secret_interval!
Nov 29 03:12:06 lb1 kernel: eth0: link up
";

fn temp_file(tag: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("netmem-{tag}-{}.log", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A log says what it shows: which message, how many lines, when; what it
/// does not show; what to run to learn it. No limit "was X when it fired"
/// (a log carries no figures), and no `sysctl -w` that sets today's values.
#[test]
fn kernel_log_file_says_what_it_shows() {
    require_root();
    // A namespace of its own: the reading's census is empty and today's
    // figures are far from every limit.
    let ns = Netns::new("doclog");
    let path = temp_file("kern", FOUR_MESSAGES);
    let p = path.to_str().unwrap();
    let text = ns.netmem(&["doctor", "--kernel-log", p]);
    let json = ns.netmem(&["doctor", "--json", "--kernel-log", p]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let out = String::from_utf8_lossy(&text.stdout).to_string();
    let has = |line: &str| {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        )
    };
    let starts = |prefix: &str| {
        assert!(
            out.lines().any(|l| l.starts_with(prefix)),
            "no line starting {prefix:?} in:\n{out}"
        )
    };
    starts("1. [CRITICAL] tcp_mem: The kernel log says tcp_mem fired (2 lines, from Nov 29 03:12:02 to Nov 29 03:12:04); now TCP holds ");
    has(&format!("     kernel log: \"out of memory -- consider tuning tcp_mem\", 2 lines, from Nov 29 03:12:02 to Nov 29 03:12:04 ({p})"));
    has("     what the log does not show: how much TCP held and what tcp_mem was when it was written, nor which group held it");
    has("   do:  to learn how much memory TCP held, against which tcp_mem, and which group held it: keep `netmem record -o FILE` running (or `netmem serve` with Prometheus scraping it) and run `netmem doctor --from FILE` after the next incident; while one is under way, `netmem doctor --watch 60s`");
    starts("2. [CRITICAL] orphans: The kernel log says the orphan limit fired (1 line, at Nov 29 03:12:01); now ");
    has(&format!(
        "     kernel log: \"too many orphaned sockets\", 1 line, at Nov 29 03:12:01 ({p})"
    ));
    has("     what the log does not show: how many orphans there were and what tcp_max_orphans was when it was written, nor which port made them");
    has("   do:  to learn how many orphans there were, against which limit, and on which port: keep `netmem record -o FILE` running (or `netmem serve` with Prometheus scraping it) and run `netmem doctor --from FILE` after the next incident; while one is under way, `netmem doctor --watch 60s`");
    has("3. [CRITICAL] kernel_log: Kernel log: \"too many orphaned sockets\", 1 line, at Nov 29 03:12:01");
    has("     first written: Nov 29 03:12:01");
    has("4. [CRITICAL] kernel_log: Kernel log: \"out of memory -- consider tuning tcp_mem\", 2 lines, from Nov 29 03:12:02 to Nov 29 03:12:04");
    has("     last written: Nov 29 03:12:04");
    has("5. [WARN] kernel_log: Kernel log: \"Out of socket memory\", 1 line, at Nov 29 03:12:03");
    has("6. [INFO] kernel_log: Kernel log: \"Route hash chain too long\", 1 line, at Nov 29 03:12:05");
    for never in [
        "when it fired",
        "sysctl -w",
        "1 lines",
        "twice the peak",
        "4x today",
    ] {
        assert!(!out.contains(never), "{never:?} in:\n{out}");
    }
    // The same in JSON: the log says a limit fired; the orphan and tcp_mem
    // findings say so too, and outrank everything that did not fire.
    let f = findings(&json);
    let logs: Vec<&Value> = f.iter().filter(|f| f["id"] == "kernel_log").collect();
    assert_eq!(logs.len(), 4, "{logs:#?}");
    for id in ["orphans", "tcp_mem"] {
        let x = f.iter().find(|f| f["id"] == id).unwrap();
        assert_eq!(x["fired"], true);
        assert_eq!(x["action"].as_array().unwrap().len(), 1, "{x}");
    }
    assert!(["orphans", "tcp_mem"].contains(&f[0]["id"].as_str().unwrap()));
    let route = logs
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("Route hash"))
        .unwrap();
    assert_eq!(route["fired"], false);
    let _ = std::fs::remove_file(&path);
    // A log file that is not there is an error, not a silent empty log.
    let o = Command::new(netmem_bin())
        .args(["doctor", "--kernel-log", "/nonexistent/kern.log"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read kernel log"));
}

/// A healthy reading is short: the route knobs, at their defaults on this
/// machine, and no route exceptions, are not worth a finding.
#[test]
fn healthy_reading_is_short() {
    require_root();
    let ns = Netns::new("dochealthy");
    let empty = temp_file("kern-empty", "");
    let o = ns.netmem(&["doctor", "--kernel-log", empty.to_str().unwrap()]);
    let _ = std::fs::remove_file(&empty);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("route"), "{out}");
    assert!(
        out.lines().count() <= 20,
        "{} lines:\n{out}",
        out.lines().count()
    );
    // Which figure is the kernel's and which the census', even at rest.
    assert!(out.contains("orphans now, kernel (sockstat: every namespace): "));
    assert!(out.contains("orphans now, census (sock_diag: the groups' sockets): 0"));
}

/// The value of the evidence `name` of finding `f`.
fn evidence<'a>(f: &'a Value, name: &str) -> Option<&'a str> {
    f["evidence"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?
        .get("value")?
        .as_str()
}

/// The count leading an evidence value (`3 holding 1.2M`).
fn leading(v: &str) -> u64 {
    v.split(' ').next().unwrap().parse().unwrap()
}

/// Orphans born and gone all the time while netmem reads: in every
/// interval no group has more orphans than the census' total of the same
/// interval, and the doctor says which figure is the kernel's and which
/// the census'; no group it names has more than that.
#[test]
fn a_part_never_exceeds_its_whole_under_churn() {
    require_root();
    let ns = Netns::new("docchurn");
    let port = 18320u16;
    let _load = ns.load(&["orphan-churn", "--port", &port.to_string(), "--conns", "8"]);
    let lines =
        ok_json(&ns.netmem(&["trace", "--json", "--interval", "200ms", "--duration", "3s"]));
    let (mut intervals, mut with_orphans, mut kernel_below) = (0, 0, 0);
    let mut check = |ctx: &Value, parts: &[&Value]| {
        let whole = ctx["orphans_census"]
            .as_u64()
            .unwrap_or_else(|| panic!("no orphans_census: {ctx}"));
        let sum: u64 = parts.iter().map(|g| g["orphans"].as_u64().unwrap()).sum();
        assert!(sum <= whole, "groups {sum} > census {whole}: {ctx}");
        intervals += 1;
        with_orphans += u64::from(whole > 0);
        kernel_below += u64::from(ctx["orphans"].as_u64().unwrap() < sum);
    };
    let mut ctx: Option<&Value> = None;
    let mut parts = Vec::new();
    for v in &lines {
        match v["type"].as_str() {
            Some("context") => {
                if let Some(c) = ctx.replace(v) {
                    check(c, &parts);
                }
                parts.clear();
            }
            Some("group") => parts.push(v),
            _ => {}
        }
    }
    check(ctx.expect("no interval"), &parts);
    assert!(intervals >= 5, "{intervals} intervals");
    assert!(with_orphans > 0, "the churn made no orphans");
    eprintln!(
        "{intervals} intervals, {with_orphans} with orphans, {kernel_below} where the kernel's count was below the groups' sum"
    );
    // One reading at a time, and a watch: each finding's parts within its
    // census figures, and each figure named for its source.
    for args in [
        &["doctor", "--json"][..],
        &["doctor", "--json"][..],
        &["doctor", "--json", "--watch", "2s"][..],
    ] {
        let f = findings(&ns.netmem(args));
        let o = f.iter().find(|f| f["id"] == "orphans").unwrap();
        assert!(
            evidence(o, "orphans now, kernel (sockstat: every namespace)").is_some(),
            "{o}"
        );
        let now: u64 = evidence(o, "orphans now, census (sock_diag: the groups' sockets)")
            .unwrap_or_else(|| panic!("{o}"))
            .parse()
            .unwrap();
        let watch = args.contains(&"--watch");
        let whole = if watch {
            evidence(o, "orphans at peak, census")
                .unwrap_or_else(|| panic!("{o}"))
                .parse()
                .unwrap()
        } else {
            now
        };
        let suffix = if watch {
            " at peak (census)"
        } else {
            " (census)"
        };
        for e in o["evidence"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            if name.starts_with("orphans on ") {
                assert!(name.ends_with(suffix), "{name}");
                let part = leading(e["value"].as_str().unwrap());
                assert!(part <= whole, "{name}: {part} > {whole}: {o}");
            }
        }
    }
}

/// Without privileges a reading still works and says what it could not
/// read; probes and --watch say which capability is missing.
#[test]
fn unprivileged_reading_says_what_it_could_not_read() {
    require_root();
    let nobody = netmem_as_nobody;
    let o = nobody(&["doctor", "--json"]);
    let all = ok_json(&o);
    let head = all.iter().find(|v| v["type"] == "doctor").unwrap();
    let restricted = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if restricted {
        assert!(
            head["unreadable"].to_string().contains("/dev/kmsg"),
            "{head}"
        );
    }
    assert!(all
        .iter()
        .any(|v| v["type"] == "finding" && v["id"] == "tcp_mem"));
    for (args, command) in [
        (&["probes"][..], "netmem probes"),
        (&["doctor", "--watch", "1s"][..], "netmem doctor --watch"),
    ] {
        let o = nobody(args);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(command) && err.contains("lacks CAP_BPF and CAP_PERFMON"),
            "{err}"
        );
    }
}

/// A log that holds none of the memory messages gives no finding; the
/// report says it was read, so silence is not mistaken for "not looked at".
#[test]
fn a_log_without_the_messages_says_it_was_read() {
    require_root();
    let ns = Netns::new("doclog0");
    let path = temp_file(
        "kern-quiet",
        "Dec  6 05:00:00 host kernel: [    1.000000] eth0: link up\nDec  6 05:00:01 host kernel: [    2.000000] EXT4-fs (vda): mounted\n",
    );
    let o = ns.netmem(&["doctor", "--kernel-log", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let head = out.lines().next().unwrap_or_default();
    assert!(
        head.contains("2 lines, none of the memory messages"),
        "the header does not say the log was read: {head}"
    );
    assert!(!out.contains("kernel_log"), "no kernel_log finding: {out}");
}
