//! `netmem trace`: attach, then stream rare events as they happen and the
//! per-group table every interval until Ctrl-C, SIGTERM or --duration. The
//! live loop itself is the engine's; this command only picks the sink.

use anyhow::Result;

use crate::cmd::args::{DurationArg, EngineArgs, EventLimitArg, Table};
pub use crate::engine::Options;
use crate::output::Sink;

/// Attach the eBPF probes; print events as they happen and the per-group
/// table every interval. Needs root (or CAP_BPF + CAP_PERFMON).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    live: EngineArgs,
    #[command(flatten)]
    table: Table,
    #[command(flatten)]
    duration: DurationArg,
    #[command(flatten)]
    events: EventLimitArg,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let rt = super::runtime()?;
        let opts = Options {
            time_wait: self.table.time_wait.time_wait,
            duration: self.duration.duration,
            filter: self.table.filter(),
            event_limit: self.events.event_limit,
            ..self.live.options("netmem trace")?
        };
        let mut sink = self.table.stdout_sink();
        rt.block_on(run(opts, sink.as_mut()))
    }
}

pub async fn run(opts: Options, sink: &mut dyn Sink) -> Result<()> {
    crate::engine::run(opts, sink).await.map(|_| ())
}
