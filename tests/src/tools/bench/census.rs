//! census: the in-kernel census (BPF socket iterators) against the
//! sock_diag census on the same sockets, in one run with the arms
//! alternating: the cost of one pass as a live command pays it at every
//! interval (the library's census, in this process), and `netmem snapshot`
//! with each tier; then `--netns all` over 20 namespaces against one.

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use netmem::hooks::catalog::CensusTier;
use netmem::model::names::Names;
use netmem::model::Aggregator;
use netmem::sources::census::Census;
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, timed_cpu, Holders};
use crate::Opts;

const TIERS: [(&str, CensusTier); 2] = [
    ("bpf_iter", CensusTier::BpfIter),
    ("sock_diag", CensusTier::SockDiag),
];

/// This thread's (user, system) CPU time so far, in ms.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD on the calling thread, into `ru`.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    (ms(ru.ru_utime), ms(ru.ru_stime))
}

/// Milliseconds of one census pass of `netns` (`all`: every namespace) on
/// `tier`, in this process, `reps` times after one pass that loads; also
/// the passes' user and system CPU in ms (an iterator made inside another
/// namespace walks on a thread of its own, so `all` passes' system time
/// is partly elsewhere).
fn passes_cpu(
    netns: &str,
    all: bool,
    tier: CensusTier,
    reps: usize,
) -> Result<(Vec<f64>, f64, f64)> {
    let (u0, s0) = thread_cpu();
    let ms = passes(netns, all, tier, reps)?;
    let (u1, s1) = thread_cpu();
    Ok((ms, u1 - u0, s1 - s0))
}

fn passes(netns: &str, all: bool, tier: CensusTier, reps: usize) -> Result<Vec<f64>> {
    let ns = netmem::sources::netns::Netns::open(Some(netns))?;
    let names = Names::default();
    let mut census = Census::new(
        &ns,
        all,
        false,
        Default::default(),
        &Default::default(),
        &names,
    )?
    .with_tier(Some(tier));
    let sticky = HashSet::new();
    census.collect(&ns, &mut Aggregator::default(), &sticky)?;
    let mut ms = Vec::new();
    for _ in 0..reps {
        let mut agg = Aggregator::default();
        let t0 = Instant::now();
        census.collect(&ns, &mut agg, &sticky)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

pub(crate) fn census(o: &Opts) -> Result<Value> {
    // The kernel-facts cache is one file keyed by the binary: this
    // process's passes (netmem-bench's) and the snapshots' (netmem's)
    // would make each other resolve every time. Ours go elsewhere.
    let own = std::env::temp_dir().join("netmem-bench-facts");
    std::fs::create_dir_all(&own)?;
    std::env::set_var("NETMEM_CACHE_DIR", &own);
    let levels: Vec<usize> = if o.quick {
        vec![10_000]
    } else {
        o.census_levels.clone()
    };
    let mut h = Holders {
        ns: Netns::new("census"),
        kids: vec![],
        conns: 0,
    };
    let ns = h.ns.name.clone();
    println!(
        "\n== census: one pass in kernel (bpf_iter) vs sock_diag, {} alternating repetitions",
        o.reps
    );
    println!(
        "{:<9} {:>11} {:>11} {:>7} {:>13} {:>13} {:>7} {:>10} {:>10}",
        "sockets",
        "iter ms",
        "diag ms",
        "ratio",
        "snap iter ms",
        "snap diag ms",
        "ratio",
        "iter CPU",
        "diag CPU"
    );
    let mut out = serde_json::Map::new();
    for &sockets in &levels {
        // Each connection is two sockets, both in the namespace.
        h.grow(sockets / 2)?;
        let mut pass: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        // Per repetition, its passes' median in the kernel over sock_diag's.
        let mut ratios: Vec<f64> = Vec::new();
        let mut snap: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        // Per pass (of the four a repetition runs, the loading one too).
        let mut user: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut system: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for rep in 0..o.reps {
            let mut this: BTreeMap<&str, f64> = BTreeMap::new();
            for i in 0..TIERS.len() {
                let (name, tier) = TIERS[(i + rep) % TIERS.len()];
                let (p, u, sys) = passes_cpu(&ns, false, tier, 3)?;
                this.insert(name, median(&p));
                pass.entry(name).or_default().extend(p);
                user.entry(name).or_default().push(u / 4.0);
                system.entry(name).or_default().push(sys / 4.0);
                let (wall, _, c) =
                    timed_cpu(Command::new(netmem()).env_remove("NETMEM_CACHE_DIR").args([
                        "snapshot",
                        "--json",
                        "--netns",
                        &ns,
                        "--census",
                        &name.replace('_', "-"),
                    ]))?;
                snap.entry(name).or_default().push(wall.as_secs_f64() * 1e3);
                cpu.entry(name).or_default().push(c.as_secs_f64() * 1e3);
            }
            ratios.push(this["bpf_iter"] / this["sock_diag"]);
        }
        let p = |a: &str| median(&pass[a]);
        let s = |a: &str| median(&snap[a]);
        let c = |a: &str| median(&cpu[a]);
        println!(
            "{:<9} {:>11.2} {:>11.2} {:>6.3}x {:>13.1} {:>13.1} {:>6.3}x {:>8.1}ms {:>8.1}ms",
            sockets,
            p("bpf_iter"),
            p("sock_diag"),
            p("bpf_iter") / p("sock_diag"),
            s("bpf_iter"),
            s("sock_diag"),
            s("bpf_iter") / s("sock_diag"),
            c("bpf_iter"),
            c("sock_diag"),
        );
        let u = |a: &str| median(&user[a]);
        let sy = |a: &str| median(&system[a]);
        println!(
            "{:<9} per pass, user/system ms: bpf_iter {:.1}/{:.1}, sock_diag {:.1}/{:.1}",
            "",
            u("bpf_iter"),
            sy("bpf_iter"),
            u("sock_diag"),
            sy("sock_diag")
        );
        out.insert(
            sockets.to_string(),
            json!({
                "pass_user_ms": {"bpf_iter": u("bpf_iter"), "sock_diag": u("sock_diag")},
                "pass_system_ms": {"bpf_iter": sy("bpf_iter"), "sock_diag": sy("sock_diag")},
                "pass_ms": pass, "snapshot_ms": snap, "snapshot_cpu_ms": cpu,
                "median_pass_ms": {"bpf_iter": p("bpf_iter"), "sock_diag": p("sock_diag")},
                "median_snapshot_ms": {"bpf_iter": s("bpf_iter"), "sock_diag": s("sock_diag")},
                "iter_vs_diag": p("bpf_iter") / p("sock_diag"),
                "iter_vs_diag_spread": crate::common::spread(&ratios),
                "snapshot_iter_vs_diag": s("bpf_iter") / s("sock_diag"),
            }),
        );
    }
    drop(h);
    out.insert("namespaces".into(), namespaces(o)?);
    Ok(Value::Object(out))
}

/// 20k sockets in one namespace, or spread over 20: one `--netns all`
/// pass over the twenty against one pass of the one, per tier. Both
/// setups cannot coexist (all would count both): they alternate in blocks.
fn namespaces(o: &Opts) -> Result<Value> {
    const CONNS: usize = 10_000;
    const SPREAD: usize = 20;
    let mut ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _block in 0..2 {
        {
            let mut h = Holders {
                ns: Netns::new("cone"),
                kids: vec![],
                conns: 0,
            };
            h.grow(CONNS)?;
            for (name, tier) in TIERS {
                ms.entry(format!("one {name}"))
                    .or_default()
                    .extend(passes(&h.ns.name, false, tier, o.reps)?);
            }
        }
        let mut spread = Vec::new();
        for _ in 0..SPREAD {
            let mut h = Holders {
                ns: Netns::new("cmany"),
                kids: vec![],
                conns: 0,
            };
            h.grow(CONNS / SPREAD)?;
            spread.push(h);
        }
        let primary = spread[0].ns.name.clone();
        for (name, tier) in TIERS {
            ms.entry(format!("all {name}"))
                .or_default()
                .extend(passes(&primary, true, tier, o.reps)?);
        }
    }
    let m = |a: &str| median(&ms[a]);
    println!(
        "\n== census --netns all: {} sockets in 1 vs {SPREAD} namespaces, one pass (ms)",
        2 * CONNS
    );
    println!("{:<10} {:>9} {:>9} {:>7}", "tier", "one", "all", "ratio");
    let mut ratios = serde_json::Map::new();
    for (name, _) in TIERS {
        let (one, all) = (m(&format!("one {name}")), m(&format!("all {name}")));
        println!("{name:<10} {one:>9.2} {all:>9.2} {:>6.2}x", all / one);
        ratios.insert(format!("{name}_all_vs_one"), json!(all / one));
    }
    Ok(json!({"sockets": 2 * CONNS, "namespaces": SPREAD, "pass_ms": ms, "ratios": ratios}))
}
