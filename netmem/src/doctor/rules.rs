//! The rules. Each reads the [`State`] and returns findings with their
//! evidence; none guesses: a rule whose figures are unknown says nothing,
//! and the command lines it proposes carry computed values.

use super::{LogSeen, State};
use crate::sources::kernel_log::LogMessage;

mod accept;
mod buffers;
mod cgroup;
mod kernel_log;
mod limits;
mod proxy;
mod routes;
#[cfg(test)]
mod tests;

pub use accept::{accept_queue, netns_counters};
pub use buffers::{aborts, buffer_limits, per_connection};
pub use cgroup::cgroup_pressure;
pub use kernel_log::kernel_log;
pub use limits::{orphans, tcp_mem, tcp_mem_vs_ram};
pub use routes::routes;

/// "at peak" over a window of intervals; "now" for a single reading, which
/// has no peak to speak of.
fn at_peak(w: &crate::doctor::Window) -> &'static str {
    if w.intervals > 1 {
        "at peak"
    } else {
        "now"
    }
}

/// What to run so the next incident leaves the figures a kernel log
/// cannot: `what` names them.
fn learn_more(what: &str) -> String {
    format!(
        "to learn {what}: keep `netmem record -o FILE` running (or `netmem serve` with Prometheus scraping it) and run `netmem doctor --from FILE` after the next incident; while one is under way, `netmem doctor --watch 60s`"
    )
}

/// The kernel log's lines of one message, for evidence: `"too many
/// orphaned sockets", 1 line, at Nov 29 03:12:01 (/var/log/kern.log)`.
fn log_evidence(s: &State, m: LogMessage, seen: &LogSeen) -> String {
    format!(
        "\"{}\", {} ({})",
        m.pattern(),
        seen.describe(),
        s.kernel_log_source.as_deref().unwrap_or("?").escape_debug()
    )
}
