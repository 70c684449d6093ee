//! `--check`: the parts' figures against the baseline committed in
//! BENCHMARKS.md.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// How much worse a figure may get before `--check` fails.
pub(crate) const TOLERANCE: f64 = 0.20;

/// `--check`: every baseline figure of the parts that ran, now against
/// then. The baseline is the `json bench-baseline` block of BENCHMARKS.md:
/// `[{"path": [...], "value": V, "better": "higher"|"lower"}]`, each path
/// into results.json.
pub(crate) fn check(results: &Value) -> Result<()> {
    let md_path = netmem_tests::workspace_root().join("BENCHMARKS.md");
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("cannot read {}", md_path.display()))?;
    let block = md
        .split("```json bench-baseline")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("BENCHMARKS.md has no ```json bench-baseline block")?;
    let baseline: Vec<Value> =
        serde_json::from_str(block).context("the bench-baseline block is not a JSON array")?;
    println!(
        "\n== check against BENCHMARKS.md (fails beyond {:.0}% worse)",
        TOLERANCE * 100.0
    );
    let mut failed = Vec::new();
    let mut compared = 0;
    for b in &baseline {
        let path: Vec<&str> = b["path"]
            .as_array()
            .context("a baseline entry without a path")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let then = b["value"]
            .as_f64()
            .context("a baseline entry without a value")?;
        let higher = match b["better"].as_str() {
            Some("higher") => true,
            Some("lower") => false,
            _ => bail!("baseline {path:?}: better must be \"higher\" or \"lower\""),
        };
        let now = path
            .iter()
            .try_fold(results, |v, k| v.get(*k))
            .and_then(Value::as_f64);
        let Some(now) = now else {
            println!(
                "{:<58} {:>12} (not run)",
                path.join(" / "),
                format!("{then}")
            );
            continue;
        };
        compared += 1;
        let worse = if higher {
            (then - now) / then
        } else {
            (now - then) / then
        };
        let verdict = if worse > TOLERANCE { "WORSE" } else { "ok" };
        println!(
            "{:<58} {:>12.3} -> {:>12.3}  {:>+6.1}%  {verdict}",
            path.join(" / "),
            then,
            now,
            -worse * 100.0
        );
        if worse > TOLERANCE {
            failed.push(path.join(" / "));
        }
    }
    ensure!(
        compared > 0,
        "no baseline figure was measured by the parts run"
    );
    ensure!(
        failed.is_empty(),
        "more than {:.0}% worse than BENCHMARKS.md: {}",
        TOLERANCE * 100.0,
        failed.join(", ")
    );
    println!(
        "check: {compared} figures within {:.0}% of the baseline",
        TOLERANCE * 100.0
    );
    Ok(())
}
