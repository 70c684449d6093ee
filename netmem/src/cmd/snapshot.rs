//! `netmem snapshot`: one sock_diag pass, no eBPF, no privileges beyond
//! reading this namespace's sockets.

use std::time::SystemTime;

use anyhow::Result;

use crate::model::{Aggregator, Filter, Interval};
use crate::output::Sink;
use crate::sources::netns::Netns;
use crate::sources::procfs::Context;
use crate::sources::sockdiag::States;

/// The snapshot as one typed interval (no live part).
pub fn take(netns: &Netns, filter: &Filter) -> Result<Interval> {
    let mut agg = Aggregator::default();
    agg.collect(netns, States::AllButListening, &Default::default())?;
    Ok(Interval {
        ts: SystemTime::now(),
        context: Context::read(netns)?,
        groups: agg.sorted(filter),
        live: None,
    })
}

pub fn run(netns: &Netns, filter: &Filter, sink: &mut dyn Sink) -> Result<()> {
    let i = take(netns, filter)?;
    sink.interval(&i)?;
    sink.flush()
}
