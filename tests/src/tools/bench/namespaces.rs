//! namespaces: `snapshot --netns all` over many namespaces against one.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Result;
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread, timed_cpu, Holders};
use crate::Opts;

/// 20k sockets (10k connections) in one namespace, or spread over 20:
/// `snapshot --netns all` over the twenty against `snapshot --netns ONE`
/// over the one, each also with `--owners`. Both setups cannot coexist
/// (all would count both), so they alternate in blocks within the run:
/// one, twenty, one, twenty.
pub(crate) fn namespaces(o: &Opts) -> Result<Value> {
    const CONNS: usize = 10_000;
    const SPREAD: usize = 20;
    println!(
        "\n== namespaces: {} sockets in 1 vs {SPREAD} namespaces, {} repetitions per arm and block",
        2 * CONNS,
        o.reps
    );
    let mut ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut cpu_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // `snapshot --netns NETNS` as TAG, and with --owners as TAG+owners,
    // alternating, each repetition's wall and CPU time kept.
    let mut measure = |tag: &str, netns: &str| -> Result<()> {
        let owners = format!("{tag}+owners");
        let arms: [(&str, &[&str]); 2] = [(tag, &[]), (&owners, &["--owners"])];
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, extra) = arms[(i + rep) % arms.len()];
                let (wall, _, cpu) = timed_cpu(
                    Command::new(netmem())
                        .args(["snapshot", "--json", "--netns", netns])
                        .args(extra),
                )?;
                ms.entry(name.into())
                    .or_default()
                    .push(wall.as_secs_f64() * 1e3);
                cpu_ms
                    .entry(name.into())
                    .or_default()
                    .push(cpu.as_secs_f64() * 1e3);
            }
        }
        Ok(())
    };
    for _block in 0..2 {
        {
            let mut h = Holders {
                ns: Netns::new("one"),
                kids: vec![],
                conns: 0,
            };
            h.grow(CONNS)?;
            measure("one", &h.ns.name)?;
        }
        // Twenty namespaces sharing the host's socket hash, then twenty
        // with a hash of their own (created inside a parent namespace whose
        // tcp_child_ehash_entries is set; the machine's own is untouched).
        for own_hash in [false, true] {
            let parent = own_hash.then(|| Netns::new("parent"));
            if let Some(p) = &parent {
                netmem_tests::run_ok(p.cmd("sh").args([
                    "-c",
                    "echo 1024 > /proc/sys/net/ipv4/tcp_child_ehash_entries",
                ]));
            }
            let mut spread = Vec::new();
            for _ in 0..SPREAD {
                let ns = match &parent {
                    Some(p) => Netns::new_child_of(p, "many"),
                    None => Netns::new("many"),
                };
                let mut h = Holders {
                    ns,
                    kids: vec![],
                    conns: 0,
                };
                h.grow(CONNS / SPREAD)?;
                spread.push(h);
            }
            measure(if own_hash { "all-own-hash" } else { "all" }, "all")?;
            drop(spread);
        }
    }
    let m = |a: &str| median(&ms[a]);
    let c = |a: &str| median(&cpu_ms[a]);
    println!(
        "{:<6} {:>8} {:>8} {:>7} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "ms", "one", "all", "ratio", "own hash", "ratio", "one+own", "all+own", "ratio"
    );
    for (what, f) in [("wall", &m as &dyn Fn(&str) -> f64), ("cpu", &c)] {
        println!(
            "{:<6} {:>8.1} {:>8.1} {:>6.2}x {:>10.1} {:>6.2}x {:>10.1} {:>10.1} {:>6.2}x",
            what,
            f("one"),
            f("all"),
            f("all") / f("one"),
            f("all-own-hash"),
            f("all-own-hash") / f("one"),
            f("one+owners"),
            f("all+owners"),
            f("all+owners") / f("one+owners")
        );
    }
    Ok(json!({
        "sockets": 2 * CONNS, "namespaces": SPREAD, "ms": ms, "cpu_ms": cpu_ms,
        "median_cpu_ms": {"one": c("one"), "all": c("all"), "one+owners": c("one+owners"), "all+owners": c("all+owners")},
        "cpu_all_vs_one": c("all") / c("one"),
        "all_own_hash_vs_one": m("all-own-hash") / m("one"),
        "cpu_all_own_hash_vs_one": c("all-own-hash") / c("one"),
        "median_ms": {"one": m("one"), "all": m("all"), "all-own-hash": m("all-own-hash"), "one+owners": m("one+owners"), "all+owners": m("all+owners")},
        "all_vs_one": m("all") / m("one"),
        "all_vs_one_spread": spread(&pair_ratios(&ms["all"], &ms["one"])),
        "cpu_all_vs_one_spread": spread(&pair_ratios(&cpu_ms["all"], &cpu_ms["one"])),
        "all_vs_one_with_owners": m("all+owners") / m("one+owners"),
    }))
}
