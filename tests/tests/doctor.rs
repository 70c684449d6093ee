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

#[test]
fn kernel_log_file_with_each_message() {
    let path = std::env::temp_dir().join(format!("netmem-kern-{}.log", std::process::id()));
    std::fs::write(
        &path,
        "Nov 29 03:12:01 lb1 kernel: [81234.5] TCP: too many orphaned sockets\n\
         Nov 29 03:12:02 lb1 kernel: [81235.5] TCP: out of memory -- consider tuning tcp_mem\n\
         Out of socket memory\n\
         kernel: Route hash chain too long!\n\
         kernel: Adjust your secret_interval!\n\
         Nov 29 03:12:03 lb1 kernel: eth0: link up\n",
    )
    .unwrap();
    let o = Command::new(netmem_bin())
        .args(["doctor", "--json", "--kernel-log"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let f = findings(&o);
    let logs: Vec<&Value> = f.iter().filter(|f| f["id"] == "kernel_log").collect();
    assert_eq!(logs.len(), 4, "{logs:#?}");
    // The log says a limit fired: the orphan and tcp_mem findings say so
    // too, and outrank everything that did not fire.
    let orphans = f.iter().find(|f| f["id"] == "orphans").unwrap();
    assert_eq!(orphans["fired"], true);
    let tm = f.iter().find(|f| f["id"] == "tcp_mem").unwrap();
    assert_eq!(tm["fired"], true);
    assert!(["orphans", "tcp_mem"].contains(&f[0]["id"].as_str().unwrap()));
    let route = logs
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("Route hash"))
        .unwrap();
    assert_eq!(route["fired"], false);
    // A log file that is not there is an error, not a silent empty log.
    let o = Command::new(netmem_bin())
        .args(["doctor", "--kernel-log", "/nonexistent/kern.log"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read kernel log"));
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
