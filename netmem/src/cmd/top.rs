//! `netmem top`: the trace engine feeding a live terminal view (see
//! `tui/`). Refuses when stdout is not a terminal.

use std::io::IsTerminal;

use anyhow::{bail, Context as _, Result};

use crate::cmd::args::{EngineArgs, FilterArgs};
use crate::doctor::State;
use crate::tui::{run_ui, TopSink};

/// A live view for the person on call: groups sorted by memory with
/// their last minute, the limits as gauges, the latest events, the
/// doctor's top finding. Keys: m o d a s sort, Enter sockets, / filter,
/// p pause, ? help, q quit. Needs root like `trace`, and a terminal.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    live: EngineArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let rt = super::runtime()?;
        let opts = crate::engine::Options {
            filter: self.filter.filter(false),
            ..self.live.options("netmem top")?
        };
        rt.block_on(run(opts))
    }
}

pub async fn run(opts: crate::engine::Options) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("netmem top draws on a terminal and standard output is not one: use `netmem trace` (or `trace --json`) for a pipe or a file");
    }
    // Before the screen is taken: a refusal is then one plain line.
    crate::kernel::privileges::check(opts.command)?;
    let doctor = State {
        host: crate::sources::host::Host::read(&opts.netns)?,
        ..Default::default()
    };
    let netns = opts.netns.try_clone()?;
    let all_netns = opts.all_netns;
    let (tx, rx) = std::sync::mpsc::channel();
    let ui = std::thread::Builder::new()
        .name("netmem-top".into())
        .spawn(move || run_ui(rx, netns, all_netns, doctor))
        .context("cannot start the view")?;
    let mut sink = TopSink { tx };
    let res = crate::engine::run(opts, &mut sink).await;
    drop(sink);
    let ui_res = ui
        .join()
        .map_err(|_| anyhow::anyhow!("the view panicked"))?;
    res?;
    ui_res
}
