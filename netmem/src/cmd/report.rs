//! `netmem report FILE [FILE2] -o report.html`: draws a recording, or
//! compares two, as one self-contained HTML file (see `report/`).

use std::path::Path;

use anyhow::Result;

use crate::report::{render, Run};

pub fn run(files: &[String], output: &Path) -> Result<()> {
    let runs = files
        .iter()
        .map(|f| Run::read(f))
        .collect::<Result<Vec<_>>>()?;
    for r in &runs {
        for w in &r.warnings {
            eprintln!("netmem report: warning: {}: {w}", r.path);
        }
    }
    let html = render(&runs)?;
    // An existing output is replaced (a link itself, never what it points
    // to): `report -o` has always overwritten.
    crate::fsutil::write_whole(output, html.as_bytes(), true)?;
    eprintln!(
        "netmem report: {} ({}, {} intervals{})",
        output.display(),
        crate::output::human_bytes(html.len() as u64),
        runs.iter()
            .map(|r| r.timeline.points.len().to_string())
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
