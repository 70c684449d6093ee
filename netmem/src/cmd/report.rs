//! `netmem report FILE [FILE2] -o report.html`: draws a recording, or
//! compares two, as one self-contained HTML file (see `report/`).

use std::path::Path;

use anyhow::Result;

use crate::report::{render, Run};

/// `force`: replace `output` if it exists (refused otherwise, before any
/// recording is read, as `record` refuses).
pub fn run(files: &[String], output: &Path, force: bool) -> Result<()> {
    crate::fsutil::refuse_existing(output, force)?;
    let runs = files
        .iter()
        .map(|f| Run::read(f))
        .collect::<Result<Vec<_>>>()?;
    // File names and what was unreadable in them reach the terminal escaped.
    use crate::format::printable;
    for r in &runs {
        for w in &r.warnings {
            eprintln!(
                "netmem report: warning: {}: {}",
                printable(&r.path),
                printable(w)
            );
        }
    }
    let html = render(&runs)?;
    // Anything already there (a link itself, never what it points to) is
    // replaced only with --force, the same refusal `record -o` gives.
    crate::fsutil::write_whole(output, html.as_bytes(), force)?;
    eprintln!(
        "netmem report: {} ({}, {}{})",
        printable(&output.display().to_string()),
        crate::format::human_bytes(html.len() as u64),
        runs.iter()
            .map(|r| crate::format::count(r.timeline.intervals, "interval", "intervals"))
            .collect::<Vec<_>>()
            .join(" + "),
        if runs.iter().any(|r| !r.warnings.is_empty()) {
            "; parts of the input were unreadable, see the warnings above"
        } else {
            ""
        }
    );
    Ok(())
}
