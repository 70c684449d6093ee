//! The output seam. Commands and the trace loop hand typed values (hook
//! status, events, intervals, summaries) to a [`Sink`]; each output format
//! is one implementation. A new output (the Prometheus exporter, a
//! recorder, a live view) is one new module here plus its command.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;

use crate::doctor::Report;
use crate::hooks::HookStatus;
use crate::model::names::Names;
use crate::model::proxy::ProxyView;
use crate::model::{Event, Interval, Summary};
use crate::sources::host::Host;

pub mod incidents;
pub mod json;
pub mod live;
pub mod prometheus;
pub mod record;
pub mod recorder;
pub mod text;

/// A consumer of the model. Every method has a no-op default, so a sink
/// implements only what it shows.
pub trait Sink {
    /// The run's names, which turn group keys into group names
    /// (namespaces, processes, cgroups, proxy backends): handed once,
    /// before anything else, by whatever runs the passes (the engine,
    /// `snapshot`). A sink that names groups keeps the handle, which
    /// learns every later pass's names.
    fn names(&mut self, _n: &Names) {}
    /// The host facts a later diagnosis needs (`trace`'s first line).
    fn host(&mut self, _h: &Host) -> Result<()> {
        Ok(())
    }
    /// `netmem doctor`'s findings, ranked.
    /// `doctor --prometheus`'s verdict on a fleet.
    fn fleet(&mut self, _r: &crate::doctor::fleet::FleetReport) -> Result<()> {
        Ok(())
    }
    fn report(&mut self, _r: &Report) -> Result<()> {
        Ok(())
    }
    /// `trace` is live: every hook is attached, on these tiers.
    fn coverage(&mut self, _hooks: &[HookStatus]) -> Result<()> {
        Ok(())
    }
    /// `netmem probes`: the full report of every hook's tier.
    fn probe_report(&mut self, _hooks: &[HookStatus]) -> Result<()> {
        Ok(())
    }
    /// `probes`' census row: the tier every pass's census runs on here.
    fn census_report(&mut self, _c: &crate::hooks::status::CensusStatus) -> Result<()> {
        Ok(())
    }
    /// The proxies naming the groups, at start and whenever one changes
    /// (its names, or what could not be read).
    fn proxies(&mut self, _p: &[Arc<ProxyView>]) -> Result<()> {
        Ok(())
    }
    fn event(&mut self, _e: &Event) -> Result<()> {
        Ok(())
    }
    /// One pass: a snapshot, or one interval of a trace.
    fn interval(&mut self, _i: &Interval) -> Result<()> {
        Ok(())
    }
    fn summary(&mut self, _s: &Summary) -> Result<()> {
        Ok(())
    }
    /// Whoever reads us (a pipe, a test) sees what was handed over so far.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Hands everything to each of several sinks, in order.
impl Sink for Vec<Box<dyn Sink>> {
    fn names(&mut self, n: &Names) {
        self.iter_mut().for_each(|s| s.names(n))
    }
    fn host(&mut self, h: &Host) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.host(h))
    }
    fn report(&mut self, r: &Report) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.report(r))
    }
    fn fleet(&mut self, r: &crate::doctor::fleet::FleetReport) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.fleet(r))
    }
    fn coverage(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.coverage(h))
    }
    fn probe_report(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.probe_report(h))
    }
    fn census_report(&mut self, c: &crate::hooks::status::CensusStatus) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.census_report(c))
    }
    fn proxies(&mut self, p: &[Arc<ProxyView>]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.proxies(p))
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.event(e))
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.interval(i))
    }
    fn summary(&mut self, x: &Summary) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.summary(x))
    }
    fn flush(&mut self) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.flush())
    }
}

/// The formats of standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// tables and one line per event, for people
    Text,
    /// JSON lines, the documented contract
    Json,
}

/// The sink for `format` over `out`; `rows` caps a text table (0: all).
// The seam picks among its own sinks here, the one import that runs up from it.
pub fn sink<W: Write + 'static>(format: Format, out: W, rows: usize) -> Box<dyn Sink> {
    match format {
        Format::Text => Box::new(
            text::TextSink::new(out, rows)
                .with_color(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        ),
        Format::Json => Box::new(json::JsonSink::new(out)),
    }
}

/// The send queue's column (the sum of sk_wmem_queued, `ss -m`'s `w`):
/// one name in every table, text and `top`.
pub const SEND_QUEUE_COLUMN: &str = "WMEMQ";
