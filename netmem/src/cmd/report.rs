//! `netmem report FILE [FILE2] -o report.html`: draws a recording, or
//! compares two, as one self-contained HTML file (see `report/`).

use std::path::Path;

use anyhow::Result;

use crate::cmd::args::OutputArgs;
use crate::report::{render, Run};

/// Draw one recording, or compare two, as a self-contained HTML file:
/// the doctor's findings, memory by group against tcp_mem, orphans
/// against tcp_max_orphans, event rates, route exceptions, tables.
// The page has a default name; a recording has none.
#[derive(clap::Args)]
#[command(mut_arg("output", |a| a.required(false).default_value("report.html")))]
pub struct Args {
    /// A recording (`netmem record`, or `trace --json` output,
    /// zstd-compressed or not); a second one to compare with.
    #[arg(value_name = "FILE", num_args = 1..=2, required = true)]
    files: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
}

impl Args {
    pub fn run(self) -> Result<()> {
        run(&self.files, &self.output.output, self.output.force)
    }
}

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
