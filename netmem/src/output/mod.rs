//! The output seam. Commands and the trace loop hand typed values (hook
//! status, events, intervals, summaries) to a [`Sink`]; each output format
//! is one implementation. A new output (the Prometheus exporter, a
//! recorder, a live view) is one new module here plus its command.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;

use crate::doctor::Report;
use crate::hooks::HookStatus;
use crate::model::proxy::ProxyView;
use crate::model::{Event, Interval, Summary};
use crate::sources::host::Host;

pub mod json;
pub mod prometheus;
pub mod record;
pub mod text;

/// A consumer of the model. Every method has a no-op default, so a sink
/// implements only what it shows.
pub trait Sink {
    /// The host facts a later diagnosis needs (`trace`'s first line).
    fn host(&mut self, _h: &Host) -> Result<()> {
        Ok(())
    }
    /// `netmem doctor`'s findings, ranked.
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
    fn host(&mut self, h: &Host) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.host(h))
    }
    fn report(&mut self, r: &Report) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.report(r))
    }
    fn coverage(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.coverage(h))
    }
    fn probe_report(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.probe_report(h))
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
pub fn sink<W: Write + 'static>(format: Format, out: W, rows: usize) -> Box<dyn Sink> {
    match format {
        Format::Text => Box::new(
            text::TextSink::new(out, rows)
                .with_color(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        ),
        Format::Json => Box::new(json::JsonSink::new(out)),
    }
}

/// `s` safe for a terminal: control characters other than a newline (from
/// a process or file name, an argument) are shown escaped (`\u{1b}`).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `1 line`, `2 lines`: every count a message gives in words.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The send queue's column (the sum of sk_wmem_queued, `ss -m`'s `w`):
/// one name in every table, text and `top`.
pub const SEND_QUEUE_COLUMN: &str = "WMEMQ";

/// Human-readable byte count (`12.3M`), binary units.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain\nline"), "plain\nline");
        assert_eq!(printable("a\x1b[2Jb\t"), "a\\u{1b}[2Jb\\t");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(2048), "2.0K");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5M");
    }
}
