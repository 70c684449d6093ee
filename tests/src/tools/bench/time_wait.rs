//! time-wait: `snapshot` with 16k established and 64k TIME_WAIT sockets.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{ensure, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread, timed, Holders};
use crate::Opts;

/// 8000 idle connections (16k sockets), then 64k TIME_WAIT sockets from
/// real churn beside them in the same namespace: `netmem snapshot` against
/// `ss -tmnH` (which skips TIME_WAIT), before and after, and `netmem
/// snapshot --time-wait` (which counts them per group) after. TIME_WAIT
/// lasts 60 s, so the arms after the churn run at once.
pub(crate) fn time_wait(o: &Opts) -> Result<Value> {
    const TW: usize = 64_000;
    let mut h = Holders {
        ns: Netns::new("tw"),
        kids: vec![],
        conns: 0,
    };
    h.grow(8000)?;
    let ns = h.ns.name.clone();
    println!(
        "\n== time_wait: 16000 established sockets, then {TW} TIME_WAIT beside them, {} repetitions",
        o.reps
    );
    let netmem_arm = |extra: &'static [&'static str]| {
        let ns = ns.clone();
        move || {
            let mut c = Command::new(netmem());
            c.args(["snapshot", "--json", "--netns", &ns]).args(extra);
            c
        }
    };
    let ss_arm = {
        let ns = ns.clone();
        move || {
            let mut c = Command::new("ss");
            c.args(["-N", &ns, "-tmnH"]);
            c
        }
    };
    let mut ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut measure = |phase: &str, arms: &[(&str, &dyn Fn() -> Command)]| -> Result<()> {
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, mk) = arms[(i + rep) % arms.len()];
                let (wall, _) = timed(&mut mk())?;
                ms.entry(format!("{phase} {name}"))
                    .or_default()
                    .push(wall.as_secs_f64() * 1e3);
            }
        }
        Ok(())
    };
    let plain = netmem_arm(&[]);
    let counted = netmem_arm(&["--time-wait"]);
    measure("before", &[("netmem", &plain), ("ss", &ss_arm)])?;
    let mut churn =
        h.ns.cmd(netmem_tests::load_bin())
            .args(["churn-tw", "--port", "21000", "--count", &TW.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
    let mut line = String::new();
    BufReader::new(churn.stdout.take().unwrap()).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "churn-tw failed");
    let tw = netmem_tests::run_ok(h.ns.cmd("ss").args(["-tanH", "state", "time-wait"]));
    let tw_now = String::from_utf8_lossy(&tw.stdout).lines().count();
    measure(
        "after",
        &[
            ("netmem", &plain),
            ("netmem --time-wait", &counted),
            ("ss", &ss_arm),
        ],
    )?;
    drop(churn.stdin.take());
    let _ = churn.wait();
    let m = |a: &str| median(&ms[a]);
    println!(
        "{:<10} {:>10} {:>10} {:>8} {:>16}",
        "ms", "netmem", "ss", "ratio", "netmem --tw"
    );
    println!(
        "{:<10} {:>10.1} {:>10.1} {:>7.2}x {:>16}",
        "before",
        m("before netmem"),
        m("before ss"),
        m("before netmem") / m("before ss"),
        "-"
    );
    println!(
        "{:<10} {:>10.1} {:>10.1} {:>7.2}x {:>16.1}",
        format!("+{tw_now} tw"),
        m("after netmem"),
        m("after ss"),
        m("after netmem") / m("after ss"),
        m("after netmem --time-wait")
    );
    println!(
        "netmem with TIME_WAIT / without: {:.2}x",
        m("after netmem") / m("before netmem")
    );
    Ok(json!({
        "established_sockets": 16000, "time_wait_sockets": tw_now, "ms": ms,
        "netmem_vs_ss": m("after netmem") / m("after ss"),
        "netmem_vs_ss_spread": spread(&pair_ratios(&ms["after netmem"], &ms["after ss"])),
        "netmem_after_vs_before_spread": spread(&pair_ratios(&ms["after netmem"], &ms["before netmem"])),
        "netmem_vs_ss_before": m("before netmem") / m("before ss"),
        "netmem_after_vs_before": m("after netmem") / m("before netmem"),
        "counted_vs_ss": m("after netmem --time-wait") / m("after ss"),
    }))
}
