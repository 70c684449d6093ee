//! `netmem record`: `trace --json` into a zstd-compressed file, one frame
//! per interval, until --duration, --max-size, Ctrl-C or SIGTERM. `netmem
//! report` and `netmem doctor --from` read it back.

use std::path::PathBuf;

use anyhow::Result;

use crate::output::record::RecordSink;

pub struct Options {
    pub output: PathBuf,
    pub force: bool,
    pub max_size: Option<u64>,
    pub engine: crate::engine::Options,
}

pub async fn run(opts: Options) -> Result<()> {
    let mut sink = RecordSink::create(opts.output.clone(), opts.max_size, opts.force)?;
    let res = crate::engine::run(opts.engine, &mut sink).await;
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
