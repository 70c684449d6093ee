//! `netmem record`: `trace --json` into a zstd-compressed file, one frame
//! per interval, until --duration, --max-size, Ctrl-C or SIGTERM. `netmem
//! report` and `netmem doctor --from` read it back.

use std::path::PathBuf;

use anyhow::Result;

use crate::cmd::args::{DurationArg, EngineArgs, EventLimitArg, FlightRecorderArgs, OutputArgs};
use crate::output::record::RecordSink;

/// Record a trace (the JSON lines of `trace --json`) to a zstd file,
/// flushed every interval, for `netmem report` and `doctor --from`.
/// Needs root like `trace`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    duration: DurationArg,
    /// Stop before the file passes this size, e.g. 50M, 1G (binary units; at least 16K).
    #[arg(long, value_name = "SIZE", value_parser = parse_max_size)]
    max_size: Option<u64>,
    #[command(flatten)]
    live: EngineArgs,
    #[command(flatten)]
    events: EventLimitArg,
    #[command(flatten)]
    recorder: FlightRecorderArgs,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let rt = super::runtime()?;
        let opts = Options {
            output: self.output.output,
            force: self.output.force,
            max_size: self.max_size,
            recorder: self.recorder,
            engine: crate::engine::Options {
                duration: self.duration.duration,
                event_limit: self.events.event_limit,
                ..self.live.options("netmem record")?
            },
        };
        rt.block_on(run(opts))
    }
}

fn parse_max_size(s: &str) -> Result<u64, String> {
    // K, M, G in powers of 1024, as `human_bytes` prints them.
    let n = parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{e} (examples: 50M, 1G, 200000)"))?;
    if n < 16 * 1024 {
        return Err("must be at least 16K (the first lines and one interval)".into());
    }
    Ok(n)
}

pub struct Options {
    pub output: PathBuf,
    pub force: bool,
    pub max_size: Option<u64>,
    /// `--flight-recorder` and its limits.
    pub recorder: FlightRecorderArgs,
    pub engine: crate::engine::Options,
}

pub async fn run(opts: Options) -> Result<()> {
    let mut sink = RecordSink::create(opts.output.clone(), opts.max_size, opts.force)?;
    let recorder = match opts
        .recorder
        .start(&opts.engine.netns, opts.engine.all_netns)
    {
        Ok(r) => r,
        Err(e) => {
            sink.discard();
            return Err(e);
        }
    };
    let res = match recorder {
        Some(r) => {
            let mut tee = crate::output::recorder::Tee::new(&mut sink, r.sink);
            crate::engine::run(opts.engine, &mut tee).await
        }
        None => crate::engine::run(opts.engine, &mut sink).await,
    };
    let written = sink.written();
    if res.is_err() && written == 0 {
        sink.discard();
    } else {
        drop(sink);
    }
    let summary = res?;
    let path = crate::format::printable(&opts.output.display().to_string()).into_owned();
    eprintln!(
        "netmem record: {} ({}, {} events, {} lost): `netmem report {}` draws it, `netmem doctor --from {}` diagnoses it",
        path,
        crate::format::human_bytes(written),
        summary.events,
        summary.stat(netmem_common::Stat::RingbufLost),
        path,
        path
    );
    Ok(())
}
