//! report: `netmem report` of a 10-minute recording against `netmem doctor
//! --from` of it.

use std::process::Command;

use anyhow::Result;
use serde_json::{json, Value};

use crate::common::{median, netmem, pair_ratios, spread, timed};
use crate::Opts;

/// `netmem report` of a 10-minute, 1 s recording, against `netmem doctor
/// --from` of the same file, the arms alternating.
pub(crate) fn report(o: &Opts) -> Result<Value> {
    let dir = std::env::temp_dir().join(format!("netmem-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rec = dir.join("ten-minutes.nmr");
    netmem_tests::synthetic::recording(&rec, 600, 60)?;
    let html = dir.join("report.html");
    let (mut rep, mut doc) = (Vec::new(), Vec::new());
    for i in 0..o.reps.max(3) {
        let mut arms: Vec<(&mut Vec<f64>, Vec<String>)> = vec![
            (
                &mut rep,
                vec![
                    "report".into(),
                    rec.display().to_string(),
                    "-o".into(),
                    html.display().to_string(),
                    // Each repetition writes the same page.
                    "--force".into(),
                ],
            ),
            (
                &mut doc,
                vec!["doctor".into(), "--from".into(), rec.display().to_string()],
            ),
        ];
        if i % 2 == 1 {
            arms.reverse();
        }
        for (acc, args) in arms {
            let (wall, _) = timed(Command::new(netmem()).args(&args))?;
            acc.push(wall.as_secs_f64() * 1e3);
        }
    }
    let size = std::fs::metadata(&html)?.len();
    let rec_size = std::fs::metadata(&rec)?.len();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\nreport of 600 intervals x 60 groups ({rec_size} bytes recorded): {:.0} ms median, {size} bytes of HTML; doctor --from on the same file {:.0} ms (ratio {:.2})",
        median(&rep),
        median(&doc),
        median(&rep) / median(&doc)
    );
    Ok(json!({
        "intervals": 600, "groups": 60, "recording_bytes": rec_size,
        "report_ms_median": median(&rep), "doctor_ms_median": median(&doc),
        "ratio": median(&rep) / median(&doc), "html_bytes": size,
        "ratio_spread": spread(&pair_ratios(&rep, &doc)),
    }))
}
