//! The JSON-lines contract (README, "JSON lines") as types, both ways: the
//! writer (`output::json`) builds a [`Line`] and serialises it, and every
//! reader (the doctor's `Window`, the report's `Timeline`, the recording
//! reader) takes a `&Line`. No one else reads the contract's fields by
//! name. Field names and meanings only grow; `tests` pins them against
//! README and the writer.
//!
//! Reading is lax ([`lax`]): a line of any netmem, or a damaged one, reads
//! the way it always did — a field missing or of another type is absent,
//! never an error of the line.

pub mod event;
pub mod fields;
pub mod fleet;
pub mod group;
pub mod host;
pub mod lax;
pub mod lines;
pub mod memcg;
pub mod series;

#[cfg(test)]
mod tests;

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use event::*;
pub use fields::*;
pub use fleet::*;
pub use group::*;
pub use lines::*;
pub use memcg::*;

/// One line of the contract, by its `"type"`.
// Lines are made, read and dropped one at a time: no box for the event's
// many fields.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Host(HostLine),
    Probes(ProbesLine),
    Proxy(ProxyLine),
    Context(ContextLine),
    Netns(NetnsLine),
    Group(GroupLine),
    Event(EventLine),
    Doctor(DoctorLine),
    Finding(FindingLine),
    Summary(SummaryLine),
    Incident(IncidentLine),
    Socket(SocketLine),
    Fleet(FleetLine),
    FleetFinding(FleetFindingLine),
    FleetGroup(FleetGroupLine),
    /// A type this netmem does not know (a newer one's): read, not shown.
    #[serde(other)]
    Other,
}

impl Line {
    /// A parsed line as the contract reads it; `None` when it is not one
    /// (not an object, or without a string `"type"`).
    pub fn read(v: Value) -> Option<Line> {
        fn lax<T: serde::de::DeserializeOwned + Default>(v: Value) -> T {
            // Every field reads laxly: nothing fails but a line that is
            // not an object, checked before.
            serde_json::from_value(v).unwrap_or_default()
        }
        // By `"type"` here rather than through serde's tag, which would
        // copy the line once more before reading it (the same lines).
        let tag = v.as_object()?.get("type")?.as_str()?;
        Some(match tag {
            "host" => Line::Host(lax(v)),
            "probes" => Line::Probes(lax(v)),
            "proxy" => Line::Proxy(lax(v)),
            "context" => Line::Context(lax(v)),
            "netns" => Line::Netns(lax(v)),
            "group" => Line::Group(lax(v)),
            "event" => Line::Event(lax(v)),
            "doctor" => Line::Doctor(lax(v)),
            "finding" => Line::Finding(lax(v)),
            "summary" => Line::Summary(lax(v)),
            "incident" => Line::Incident(lax(v)),
            "socket" => Line::Socket(lax(v)),
            "fleet" => Line::Fleet(lax(v)),
            "fleet_finding" => Line::FleetFinding(lax(v)),
            "fleet_group" => Line::FleetGroup(lax(v)),
            _ => Line::Other,
        })
    }

    /// The line as JSON: an object whose keys are in order (as netmem
    /// has always written them; serde_json's map is sorted).
    pub fn to_value(&self) -> Value {
        // Nothing in a line fails to serialise (no map with other keys
        // than strings, every figure fits 64 bits).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Written as one line, newline-terminated.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, &self.to_value())?;
        out.write_all(b"\n")
    }
}
