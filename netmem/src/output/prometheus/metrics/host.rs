//! The host-wide counts of every event, with a group or without, each
//! label value known in advance exported at 0 from the start.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use netmem_common::Counter;
use std::time::SystemTime;

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::families::{seconds_since_epoch, Families, Fmt, Num};
use crate::kernel::btf::{drop_reason_name, MEMORY_DROP_REASONS};
use crate::model::event::{AbortCause, Direction};
use crate::output::prometheus::Totals;

/// A labelled count's series: every label value known in advance, at 0
/// until counted, so that a series exists before its first event and
/// `increase()` sees that event; then any other value counted (a drop
/// reason netmem does not know by name).
fn zero_filled<'a, K: Borrow<str> + Ord>(
    known: impl IntoIterator<Item = &'static str>,
    counted: &'a BTreeMap<K, u64>,
) -> Vec<(&'a str, u64)> {
    let mut out: Vec<(&'a str, u64)> = known
        .into_iter()
        .map(|k| (k, counted.get(k).copied().unwrap_or(0)))
        .collect();
    let n = out.len();
    for (k, v) in counted {
        if !out[..n].iter().any(|(o, _)| *o == k.borrow()) {
            out.push((k.borrow(), *v));
        }
    }
    out
}

/// Aborts on memory by cause: every cause tcp_check_oom can have.
pub(super) fn causes(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(AbortCause::ALL.iter().map(|c| c.name()), &t.aborts)
}

/// Buffer limits exceeded, by direction.
fn directions(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(Direction::ALL.iter().map(|d| d.name()), &t.exceeded)
}

/// Memory drops by reason: the memory reasons netmem traces, then any
/// other reason counted.
fn reasons(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(
        MEMORY_DROP_REASONS.iter().map(|m| drop_reason_name(m)),
        &t.drops,
    )
}

/// Every host-wide counter series as exposed (`name{label="value"}`), each
/// at 0 from the first exposition: what a test or the guests' scenario
/// expects before any event.
pub fn host_wide_series() -> Vec<String> {
    let t = Totals::default();
    let labelled = |name: &str, label: &str, values: Vec<(&str, u64)>| {
        values
            .into_iter()
            .map(|(v, _)| format!("netmem_{name}_total{{{label}=\"{v}\"}}"))
            .collect::<Vec<_>>()
    };
    let mut all = labelled("aborts_on_memory", "cause", causes(&t));
    all.extend(labelled(
        "buffer_limit_exceeded",
        "direction",
        directions(&t),
    ));
    all.extend(labelled("memory_drops", "reason", reasons(&t)));
    all.push("netmem_receive_queue_full_total".into());
    all
}

/// The host-wide counts: every event, with a group or without. They exist
/// from the first scrape on, at 0 for every label value known in advance,
/// so that alerts on them fire on the first event of any group (a group's
/// series is born with its first interval, which may be the one with its
/// first abort).
pub(super) fn host(
    f: &mut Families,
    t: &Totals,
    last_abort: &BTreeMap<&'static str, SystemTime>,
) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    f.labelled(
        "aborts_on_memory",
        "Connections the kernel reset for lack of memory (tcp_check_oom), the whole host, by the limit that fired; 0 from netmem's start. By group: netmem_group_aborts_on_memory_total.",
        None,
        C,
        causes(t).into_iter().map(|(c, n)| ([("cause", c)], Num::from(n))),
    )?;
    // One series per cause, never per group: what `netmem check` needs to
    // tell an abort within its window from one since serve started.
    f.labelled(
        "aborts_on_memory_last_timestamp",
        "When the last abort on memory of each cause was (Unix time; 0: none since netmem started).",
        Some(Unit::Seconds),
        G,
        causes(t).into_iter().map(|(c, _)| {
            let ts = last_abort.get(c).map_or(0.0, |t| seconds_since_epoch(*t));
            ([("cause", c)], Num::from(ts))
        }),
    )?;
    f.labelled(
        "buffer_limit_exceeded",
        "Allocations over the protocol's memory limit (sock_exceed_buf_limit), the whole host, by direction; 0 from netmem's start.",
        None,
        C,
        directions(t).into_iter().map(|(d, n)| ([("direction", d)], Num::from(n))),
    )?;
    f.counter(
        "receive_queue_full",
        "Packets dropped because the receive queue was full (sock_rcvqueue_full), the whole host; 0 from netmem's start.",
        None,
        t.count(Counter::RcvqueueFull),
    )?;
    f.labelled(
        "memory_drops",
        "Packets dropped for memory reasons (kfree_skb), the whole host, by the kernel's drop reason; 0 from netmem's start.",
        None,
        C,
        reasons(t).into_iter().map(|(r, n)| ([("reason", r)], Num::from(n))),
    )
}
