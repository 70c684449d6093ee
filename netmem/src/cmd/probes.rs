//! `netmem probes`: what each hook runs on here, and why not on better
//! tiers. Attaches everything, reports, and detaches.

use anyhow::Result;

use crate::cmd::args::{JsonArg, TierArg};
use crate::hooks::{setup, Tier};
use crate::output::Sink;

/// List every hook, the tier that serves it on this kernel (fentry,
/// kprobe, tracepoint, polling) and why each better tier is not used.
/// Attaches and detaches at once. Needs root.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    json: JsonArg,
    #[command(flatten)]
    tier: TierArg,
}

impl Args {
    pub fn run(self) -> Result<()> {
        run(self.tier.max_tier()?, self.json.stdout_sink(0).as_mut())
    }
}

pub fn run(max_tier: Tier, sink: &mut dyn Sink) -> Result<()> {
    let (probes, resolved) = setup("netmem probes", 0, max_tier, &[])?;
    sink.probe_report(&probes.status)?;
    sink.census_report(&crate::sources::gather::census::census_status(
        &resolved.layout,
    ))?;
    sink.flush()
}
