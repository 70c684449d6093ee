//! A kernel without BTF: netmem runs in a mount namespace where
//! /sys/kernel/btf is an empty tmpfs, as on a kernel built without
//! CONFIG_DEBUG_INFO_BTF. Every hook falls to its poller and says why, and
//! the figures still come from the sockets the test made; `--btf` (or
//! NETMEM_BTF) with a copy of the real BTF, raw or inside an ELF file,
//! brings the attach tiers back.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use netmem_tests::{
    group, json_lines, last_groups, netmem_bin, require_root, until_probes, within_10pct, Netns,
};
use serde_json::Value;

/// `netmem ARGS` with /sys/kernel/btf hidden for netmem alone: a private
/// mount namespace (the machine's own mounts are not touched), then exec,
/// so the pid the test signals is netmem's.
fn without_btf(args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs none /sys/kernel/btf && exec "$0" "$@""#)
        .arg(netmem_bin())
        .args(args);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn probes(mut c: Command) -> (Vec<Value>, String) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "netmem probes failed: {}", stderr(&o));
    (json_lines(&String::from_utf8_lossy(&o.stdout)), stderr(&o))
}

fn row<'a>(rows: &'a [Value], hook: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["hook"] == hook)
        .unwrap_or_else(|| panic!("{hook} missing from netmem probes: {rows:#?}"))
}

fn reasons(row: &Value) -> Vec<(String, String)> {
    row["unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["tier"].as_str().unwrap().to_string(),
                u["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn without_btf_every_hook_is_polled_or_unavailable_and_says_why() {
    require_root();
    let (rows, err) = probes(without_btf(&["probes", "--json"]));
    for hook in netmem::hooks::catalog::HOOKS {
        let r = row(&rows, hook.name);
        let expected = if hook.polling.is_some() {
            Value::from("polling")
        } else {
            Value::Null
        };
        assert_eq!(r["tier"], expected, "{}: {r}", hook.name);
        let why = reasons(r);
        // Every tier the hook has is explained, each by the missing BTF
        // (or, for a tier built on another hook, by that hook's absence).
        assert_eq!(why.len(), hook.tiers.len(), "{}: {r}", hook.name);
        for (tier, reason) in why {
            assert!(
                (reason.contains("no kernel BTF") && reason.contains("--btf"))
                    || reason.ends_with("is not attached"),
                "{} {tier}: {reason}",
                hook.name
            );
        }
    }
    // Said once, not once per hook.
    assert_eq!(err.matches("no kernel BTF").count(), 1, "stderr: {err}");
    assert!(err.contains("polling tier"), "stderr: {err}");
}

#[test]
fn without_btf_a_trace_reports_memory_and_orphans_of_real_sockets() {
    require_root();
    const CONNS: usize = 6;
    let ns = Netns::new("nobtf");
    let port = 18091u16;
    let mut child = without_btf(&[
        "trace",
        "--json",
        "--interval",
        "400ms",
        "--duration",
        "3s",
        "--netns",
        &ns.name,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let first = until_probes(&mut out);
    // The orphans are made after netmem is live, so the poller sees them
    // born between two of its dumps.
    let load = ns.load(&[
        "orphans",
        "--port",
        &port.to_string(),
        "--conns",
        &CONNS.to_string(),
    ]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let ss = ns.ss();
    let o = child.wait_with_output().unwrap();
    drop(load);
    assert!(o.status.success(), "netmem trace failed: {}", stderr(&o));
    let lines = json_lines(&(first + &rest));

    let probes = lines.iter().find(|v| v["type"] == "probes").unwrap();
    for h in probes["hooks"].as_array().unwrap() {
        assert!(
            h["tier"] == "polling" || h["tier"].is_null(),
            "a hook attached without BTF: {h}"
        );
    }
    let name = format!("listen:{port}");
    let listen = group(&last_groups(&lines), &name).clone();
    let held: u64 = ss
        .iter()
        .filter(|s| s.local_port == port && s.state.starts_with("FIN-WAIT"))
        .map(|s| s.w + s.r)
        .sum();
    assert_eq!(listen["orphans"], CONNS as u64, "{listen}");
    let got = listen["orphan_bytes"].as_u64().unwrap();
    assert!(
        held > 1_000_000,
        "orphans hold too little ({held}) for a meaningful test"
    );
    assert!(within_10pct(got, held), "orphan_bytes {got} vs ss {held}");
    let born: Vec<&Value> = lines
        .iter()
        .filter(|v| v["type"] == "event" && v["event"] == "orphan_born" && v["group"] == name)
        .collect();
    assert_eq!(born.len(), CONNS, "orphan_born on {name}: {born:#?}");
    for e in &born {
        assert_eq!(e["tier"], "polling", "{e}");
        assert_eq!(e["via"], "sock_diag", "{e}");
    }
    let err = stderr(&o);
    assert_eq!(err.matches("no kernel BTF").count(), 1, "stderr: {err}");
}

/// The real BTF, copied where `--btf` can name it: raw, and inside an ELF
/// file's `.BTF` section (as BTFHub and `pahole` ship it).
fn btf_copies(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = dir.join("vmlinux.btf");
    std::fs::copy("/sys/kernel/btf/vmlinux", &raw).unwrap();
    let elf = dir.join("vmlinux.elf");
    let o = Command::new("objcopy")
        .args(["--add-section"])
        .arg(format!(".BTF={}", raw.display()))
        .args(["--set-section-flags", ".BTF=readonly"])
        .arg("/bin/true")
        .arg(&elf)
        .output()
        .expect("objcopy (binutils)");
    assert!(o.status.success(), "objcopy: {}", stderr(&o));
    (raw, elf)
}

#[test]
fn an_external_btf_brings_the_attach_tiers_back() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (raw, elf) = btf_copies(dir.path());
    let with_flag = {
        let mut c = without_btf(&["probes", "--json", "--btf"]);
        c.arg(&raw);
        c
    };
    let with_env = {
        let mut c = without_btf(&["probes", "--json"]);
        c.env("NETMEM_BTF", &elf);
        c
    };
    for (how, c) in [("--btf raw", with_flag), ("NETMEM_BTF elf", with_env)] {
        let (rows, err) = probes(c);
        assert!(!err.contains("no kernel BTF"), "{how}: {err}");
        let r = row(&rows, "sock:inet_sock_set_state");
        assert_eq!(r["tier"], "tracepoint", "{how}: {r}");
        // Trampolines need the kernel's own BTF, and say so.
        let oom = row(&rows, "tcp_check_oom");
        let fentry = reasons(oom)
            .into_iter()
            .find(|(t, _)| t == "fentry")
            .unwrap();
        assert!(fentry.1.contains("trampolines"), "{how}: {oom}");
        assert_ne!(oom["tier"], "polling", "{how}: {oom}");
    }
}

#[test]
fn a_file_that_is_not_btf_is_one_clear_error() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not btf at all, just some words").unwrap();
    let missing = dir.path().join("missing");
    for (f, says) in [(&junk, "is not a vmlinux BTF"), (&missing, "cannot read")] {
        let o = without_btf(&["trace", "--btf", f.to_str().unwrap()])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(o.stdout.is_empty());
    }
    assert_eq!(
        netmem_tests::loaded_netmem_programs(),
        0,
        "programs left loaded"
    );
}
