//! Probe tiers on this machine's kernel: every hook is served by some tier
//! and says why better ones are not used; the polling tier of the route
//! exception hooks sees real PMTU exceptions in namespaces the test owns.

use netmem::hooks::HookId;
use netmem_tests::{json_lines, netmem_bin, require_root, scenarios};
use serde_json::Value;

fn probes(args: &[&str]) -> Vec<Value> {
    let o = std::process::Command::new(netmem_bin())
        .arg("probes")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json_lines(&String::from_utf8_lossy(&o.stdout))
}

/// The mission hooks, from netmem's own catalog: a hook added there is
/// tested here without touching this file.
fn mission() -> Vec<&'static netmem::hooks::catalog::Hook> {
    netmem::hooks::catalog::mission_hooks().collect()
}

#[test]
fn every_hook_is_served_and_explains_better_tiers() {
    require_root();
    let rows = probes(&[]);
    for hook in mission() {
        let h = hook.name;
        let row = rows
            .iter()
            .find(|r| r["hook"] == h)
            .unwrap_or_else(|| panic!("{h} missing from netmem probes"));
        let tier = row["tier"]
            .as_str()
            .unwrap_or_else(|| panic!("{h} not served: {row}"));
        let order = ["fentry", "kprobe", "tracepoint", "polling"];
        let pos = order.iter().position(|t| *t == tier).unwrap();
        let unavailable: Vec<&str> = row["unavailable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["tier"].as_str().unwrap())
            .collect();
        // Each better tier this hook has is explained.
        for better in &order[..pos] {
            if !hook.tiers.iter().any(|t| t.tier.name() == *better) {
                continue;
            }
            assert!(
                unavailable.contains(better),
                "{h}: no reason for not using {better}: {row}"
            );
        }
        for u in row["unavailable"].as_array().unwrap() {
            assert!(!u["reason"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn max_tier_polling_leaves_mission_hooks_to_userspace() {
    require_root();
    let rows = probes(&["--max-tier", "polling"]);
    for hook in mission() {
        let row = rows.iter().find(|r| r["hook"] == hook.name).unwrap();
        assert_eq!(row["tier"], "polling", "{row}");
        assert!(row["unavailable"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["reason"].as_str().unwrap().contains("--max-tier")));
    }
}

#[test]
fn route_exceptions_seen_on_this_kernel() {
    require_root();
    let rows = probes(&[]);
    let tier = rows
        .iter()
        .find(|r| r["hook"] == HookId::RouteExceptionV4.name())
        .and_then(|r| r["tier"].as_str())
        .unwrap()
        .to_string();
    let netmem = netmem_bin();
    match scenarios::routes(netmem.to_str().unwrap(), &[], &tier) {
        Ok(detail) => eprintln!("{detail}"),
        Err(e) => panic!("{e:#}"),
    }
}

/// The kernel facts cache: the first start resolves and writes it, the
/// next reads it; a file others could have written is not trusted, and a
/// damaged one is resolved again. Every start attaches the same hooks.
#[test]
fn kernel_facts_cache_is_used_and_distrusted_when_foreign() {
    require_root();
    let dir = std::env::temp_dir().join(format!("netmem-facts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("kernel-facts.json");
    let start = || {
        let o = std::process::Command::new(netmem_bin())
            .args(["-v", "probes", "--json"])
            .env("NETMEM_CACHE_DIR", &dir)
            .env("RUST_LOG", "netmem=debug")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let tiers: Vec<String> = json_lines(&String::from_utf8_lossy(&o.stdout))
            .iter()
            .map(|r| format!("{}={}", r["hook"], r["tier"]))
            .collect();
        (String::from_utf8_lossy(&o.stderr).into_owned(), tiers)
    };
    let (first, tiers) = start();
    assert!(first.contains("kernel facts not cached"), "{first}");
    assert!(file.exists(), "no cache written: {first}");
    let (second, again) = start();
    assert!(second.contains("kernel facts from"), "{second}");
    assert_eq!(tiers, again);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (foreign, again) = start();
    assert!(foreign.contains("not owned by uid 0 alone"), "{foreign}");
    assert_eq!(tiers, again);
    std::fs::write(&file, b"{ not json").unwrap();
    let (damaged, again) = start();
    assert!(damaged.contains("unreadable"), "{damaged}");
    assert_eq!(tiers, again);
    let (healed, _) = start();
    assert!(healed.contains("kernel facts from"), "{healed}");
    let _ = std::fs::remove_dir_all(&dir);
}
