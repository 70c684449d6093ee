//! snapshot: `netmem snapshot --json` against `ss -tmnH` with awk per-port
//! sums, at each connection count.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Result;
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread, timed, Holders};
use crate::Opts;

/// The same per-port sums as netmem's groups: sockets and ss `w` by local port.
pub(crate) const AWK_PER_PORT: &str = r#"/^[A-Z]/ { n = split($4, a, ":"); p = a[n]; next }
/skmem/ { match($0, /,w[0-9]+/); w[p] += substr($0, RSTART + 2, RLENGTH - 2); c[p]++ }
END { for (p in w) print p, c[p], w[p] }"#;

pub(crate) fn snapshot(o: &Opts) -> Result<Value> {
    let mut h = Holders {
        ns: Netns::new("snap"),
        kids: vec![],
        conns: 0,
    };
    let ns = h.ns.name.clone();
    println!("\n== snapshot: {} alternating repetitions per size", o.reps);
    println!(
        "{:<12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "connections",
        "netmem ms",
        "ss ms",
        "ss+awk ms",
        "netmem KB",
        "ss KB",
        "ss+awk KB",
        "speedup"
    );
    let mut out = serde_json::Map::new();
    for &level in &o.levels {
        h.grow(level)?;
        type Arm<'a> = (&'a str, Box<dyn Fn() -> Command + 'a>);
        let arms: [Arm; 3] = [
            (
                "netmem",
                Box::new(|| {
                    let mut c = Command::new(netmem());
                    c.args(["snapshot", "--json", "--netns", &ns]);
                    c
                }),
            ),
            (
                "ss",
                Box::new(|| {
                    let mut c = Command::new("ss");
                    c.args(["-N", &ns, "-tmnH"]);
                    c
                }),
            ),
            (
                "ss+awk",
                Box::new(|| {
                    let mut c = Command::new("sh");
                    c.args(["-c", &format!("ss -N {ns} -tmnH | awk '{AWK_PER_PORT}'")]);
                    c
                }),
            ),
        ];
        let mut ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for rep in 0..o.reps {
            for i in 0..arms.len() {
                let (name, mk) = &arms[(i + rep) % arms.len()];
                let (wall, kb) = timed(&mut mk())?;
                ms.entry(name).or_default().push(wall.as_secs_f64() * 1e3);
                rss.entry(name).or_default().push(kb as f64);
            }
        }
        let m = |a: &str| median(&ms[a]);
        let r = |a: &str| median(&rss[a]);
        println!(
            "{:<12} {:>12.1} {:>12.1} {:>12.1} {:>10.0} {:>10.0} {:>10.0} {:>8.2}x",
            level,
            m("netmem"),
            m("ss"),
            m("ss+awk"),
            r("netmem"),
            r("ss"),
            r("ss+awk"),
            m("ss+awk") / m("netmem")
        );
        out.insert(
            level.to_string(),
            json!({"ms": ms, "peak_rss_kb": rss,
                   "median_ms": {"netmem": m("netmem"), "ss": m("ss"), "ss+awk": m("ss+awk")},
                   "median_rss_kb": {"netmem": r("netmem"), "ss": r("ss"), "ss+awk": r("ss+awk")},
                   "speedup_vs_ss": m("ss") / m("netmem"), "speedup_vs_ss_awk": m("ss+awk") / m("netmem"),
                   "speedup_vs_ss_awk_spread": spread(&pair_ratios(&ms["ss+awk"], &ms["netmem"]))}),
        );
    }
    Ok(Value::Object(out))
}
