//! `--check`: the parts' figures against the baseline committed in
//! BENCHMARKS.md.
//!
//! Only ratios taken in one run against a baseline arm (netmem against ss,
//! bpftrace, nothing attached, the same server's 404, ...) are judged: the
//! machine moves both arms alike, so a ratio moves only when the code
//! does. Absolute figures (ms, MB, CPU %, events/s) are printed under a
//! heading of their own and never fail the check: they move with the
//! machine. A ratio whose repetitions disagree too much (its spread above
//! the entry's `max_spread`) is reported as not judged rather than passed
//! or failed on noise.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// How much worse a judged ratio may get before `--check` fails.
pub(crate) const TOLERANCE: f64 = 0.20;

/// The ratio's spread any entry gets unless it says otherwise: the
/// relative interquartile range of its per-repetition ratios. Beyond it,
/// the median itself can move by about the tolerance from noise alone
/// (with 3 repetitions the IQR is half the range: a 15% spread is a 30%
/// range). 25% let two noisy ratios (spreads 23-24%) fail a run.
pub(crate) const MAX_SPREAD: f64 = 0.15;

/// One entry of the ```json bench-baseline block.
struct Entry {
    path: Vec<String>,
    value: f64,
    higher: bool,
    judged: bool,
    what: String,
    spread: Option<Vec<String>>,
    max_spread: f64,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    })
}

fn parse(b: &Value) -> Result<Entry> {
    let path = strings(&b["path"]).context("a baseline entry without a path")?;
    let value = b["value"]
        .as_f64()
        .with_context(|| format!("baseline {path:?}: no value"))?;
    let higher = match b["better"].as_str() {
        Some("higher") => true,
        Some("lower") => false,
        _ => bail!("baseline {path:?}: better must be \"higher\" or \"lower\""),
    };
    let judged = match b["judge"].as_str() {
        Some("ratio") => true,
        Some("print") => false,
        _ => bail!("baseline {path:?}: judge must be \"ratio\" (one run against a baseline arm) or \"print\" (an absolute figure)"),
    };
    let what = b["what"]
        .as_str()
        .with_context(|| format!("baseline {path:?}: say what the figure is (\"what\")"))?
        .to_string();
    let spread = strings(&b["spread"]);
    ensure!(
        judged || spread.is_none(),
        "baseline {path:?}: a printed figure needs no spread"
    );
    let max_spread = b["max_spread"].as_f64().unwrap_or(MAX_SPREAD);
    Ok(Entry {
        path,
        value,
        higher,
        judged,
        what,
        spread,
        max_spread,
    })
}

fn at(results: &Value, path: &[String]) -> Option<f64> {
    path.iter()
        .try_fold(results, |v, k| v.get(k.as_str()))
        .and_then(Value::as_f64)
}

/// The baseline block of BENCHMARKS.md, parsed and checked for shape.
fn baseline() -> Result<Vec<Entry>> {
    let md_path = netmem_tests::workspace_root().join("BENCHMARKS.md");
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("cannot read {}", md_path.display()))?;
    let block = md
        .split("```json bench-baseline")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("BENCHMARKS.md has no ```json bench-baseline block")?;
    let raw: Vec<Value> =
        serde_json::from_str(block).context("the bench-baseline block is not a JSON array")?;
    raw.iter().map(parse).collect()
}

/// `--check`: every judged ratio of the parts that ran, now against then;
/// every printed figure shown beside its baseline value. The baseline is
/// the `json bench-baseline` block of BENCHMARKS.md: `[{"path": [...],
/// "value": V, "better": "higher"|"lower", "judge": "ratio"|"print",
/// "what": "...", "spread": [...], "max_spread": S}]`, each path into
/// results.json.
pub(crate) fn check(results: &Value) -> Result<()> {
    let baseline = baseline()?;
    println!(
        "\n== check against BENCHMARKS.md: ratios taken in one run (fail beyond {:.0}% worse)",
        TOLERANCE * 100.0
    );
    let mut failed = Vec::new();
    let (mut judged, mut unjudged) = (0, 0);
    for e in baseline.iter().filter(|e| e.judged) {
        let name = e.path.join(" / ");
        let Some(now) = at(results, &e.path) else {
            println!("{name:<52} {:>9.3} (not run)", e.value);
            continue;
        };
        let worse = if e.higher {
            (e.value - now) / e.value
        } else {
            (now - e.value) / e.value
        };
        let spread = e.spread.as_ref().and_then(|p| at(results, p));
        let verdict = match spread {
            Some(s) if s.is_nan() || s > e.max_spread => {
                unjudged += 1;
                format!(
                    "not judged: spread {:.0}% > {:.0}%",
                    s * 100.0,
                    e.max_spread * 100.0
                )
            }
            _ => {
                judged += 1;
                if worse > TOLERANCE || now.is_nan() {
                    failed.push(name.clone());
                    "WORSE".to_string()
                } else {
                    "ok".to_string()
                }
            }
        };
        let spread = spread.map_or(String::new(), |s| format!(" (spread {:.0}%)", s * 100.0));
        println!(
            "{name:<52} {:>9.3} -> {now:>9.3}  {:>+6.1}%  {verdict}{spread}",
            e.value,
            -worse * 100.0
        );
        println!("    {}", e.what);
    }
    println!("\n== absolute figures (printed, not judged: they move with the machine)");
    for e in baseline.iter().filter(|e| !e.judged) {
        let name = e.path.join(" / ");
        match at(results, &e.path) {
            Some(now) => println!("{name:<52} {:>12.3} -> {now:>12.3}  ({})", e.value, e.what),
            None => println!("{name:<52} {:>12.3} (not run)", e.value),
        }
    }
    ensure!(
        judged + unjudged > 0,
        "no judged ratio was measured by the parts run"
    );
    ensure!(
        failed.is_empty(),
        "more than {:.0}% worse than BENCHMARKS.md: {}",
        TOLERANCE * 100.0,
        failed.join(", ")
    );
    println!(
        "\ncheck: {judged} ratios within {:.0}% of the baseline, {unjudged} not judged (too noisy in this run)",
        TOLERANCE * 100.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_baseline_parses_and_says_what_each_entry_is() {
        let b = super::baseline().unwrap();
        assert!(b.iter().any(|e| e.judged));
        assert!(b.iter().all(|e| !e.what.is_empty()));
    }
}
