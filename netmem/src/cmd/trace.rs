//! `netmem trace`: attach, then stream rare events as they happen and the
//! per-group table every interval until Ctrl-C, SIGTERM or --duration. The
//! live loop itself is the engine's; this command only picks the sink.

use anyhow::Result;

pub use crate::engine::Options;
use crate::output::Sink;

pub async fn run(opts: Options, sink: &mut dyn Sink) -> Result<()> {
    crate::engine::run(opts, sink).await.map(|_| ())
}
