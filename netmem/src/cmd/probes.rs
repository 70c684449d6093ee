//! `netmem probes`: what each hook runs on here, and why not on better
//! tiers. Attaches everything, reports, and detaches.

use anyhow::Result;

use crate::hooks::{setup, Tier};
use crate::output::Sink;

pub fn run(max_tier: Tier, sink: &mut dyn Sink) -> Result<()> {
    let (probes, _) = setup("netmem probes", 0, max_tier, &[])?;
    sink.probe_report(&probes.status)?;
    sink.flush()
}
