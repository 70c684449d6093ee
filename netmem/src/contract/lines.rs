//! One struct per line type of the contract (README, "JSON lines"), each
//! field as README names it. Every field is an `Option`, read laxly (see
//! [`super::lax`]): `None` is written as `null` where the line always has
//! the field, and not at all (`skip_serializing_if`) where the line has it
//! only sometimes; a field that is sometimes `null` and sometimes absent
//! is an `Option<Option<_>>`. The group line is in `group.rs`, the event
//! line in `event.rs`; the others are here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fields::{Netns, Sock};
use super::host::Host;
use super::lax::{self, Pages};

/// `"host"`: the machine, and what was traced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub host: Option<Host>,
}

/// `"probes"`: which tier serves each hook, and the proxies naming groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbesLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::places")]
    pub hooks: Option<Vec<Hook>>,
    #[serde(default, deserialize_with = "lax::list")]
    pub proxies: Option<Vec<String>>,
}

/// A hook of the probes line (and of `netmem probes --json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    #[serde(default, deserialize_with = "lax::opt")]
    pub hook: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tier: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub via: Option<String>,
    #[serde(default, deserialize_with = "lax::places")]
    pub unavailable: Option<Vec<Unavailable>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Unavailable {
    #[serde(default, deserialize_with = "lax::opt")]
    pub tier: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub reason: Option<String>,
}

/// `"netns"`: one network namespace's TCP counters at an interval (the
/// traced namespace; with `--netns all`, every one with TCP sockets), by
/// the kernel's names (`ListenOverflows`), since the namespace was
/// created, and what they grew by since netmem's previous reading of it
/// (`null` at the first).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetnsLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(flatten)]
    pub netns: Netns,
    #[serde(default, deserialize_with = "lax::opt")]
    pub counters: Option<BTreeMap<String, u64>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub delta: Option<BTreeMap<String, u64>>,
    /// The namespace's `net.core.somaxconn` (since the accept-queue
    /// issue's review; absent when not read).
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub somaxconn: Option<u64>,
}

impl NetnsLine {
    /// The growth of counter `name` in the interval (0 when unknown).
    pub fn grew(&self, name: &str) -> u64 {
        self.delta
            .as_ref()
            .and_then(|d| d.get(name).copied())
            .unwrap_or(0)
    }
}

/// `"proxy"`: where a proxy was read, what it names, its settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub proxy: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub source: Option<String>,
    #[serde(flatten)]
    pub netns: Netns,
    #[serde(default, deserialize_with = "lax::opt")]
    pub named: Option<bool>,
    #[serde(default, deserialize_with = "lax::list")]
    pub problems: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lax::places",
        skip_serializing_if = "Option::is_none"
    )]
    pub frontends: Option<Vec<Frontend>>,
    #[serde(
        default,
        deserialize_with = "lax::places",
        skip_serializing_if = "Option::is_none"
    )]
    pub backends: Option<Vec<Backend>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub tune: Option<ProxyTune>,
    #[serde(
        default,
        deserialize_with = "lax::list",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lax::list",
        skip_serializing_if = "Option::is_none"
    )]
    pub notes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frontend {
    #[serde(default, deserialize_with = "lax::opt")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lax::list")]
    pub ports: Option<Vec<u16>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    #[serde(default, deserialize_with = "lax::opt")]
    pub name: Option<String>,
    /// The frontends routing to it.
    #[serde(default, deserialize_with = "lax::list")]
    pub frontends: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lax::places")]
    pub servers: Option<Vec<ServerAddr>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerAddr {
    #[serde(default, deserialize_with = "lax::opt")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub addr: Option<String>,
}

/// A proxy line's `tune` (bytes, `null` when not set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyTune {
    #[serde(default, deserialize_with = "lax::opt")]
    pub bufsize: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub rcvbuf_client: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sndbuf_client: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub rcvbuf_server: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sndbuf_server: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub from_configuration: Option<bool>,
}

/// `"context"`: the interval's host-wide figures; the live ones (`trace`)
/// only in a live interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tcp_mem_pages: Option<Pages>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub memory_allocated_pages: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphans_census: Option<u64>,
    /// The census tier that read the groups: `bpf_iter` (summed in the
    /// kernel) or `sock_diag` (one record per socket). Absent before
    /// 2026-12-07.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub census: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub max_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sockets_inuse: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tw: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub page_size: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tcp6_inuse: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub udp_inuse: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub udp_memory_allocated_pages: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub udp_mem_pages: Option<Pages>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub lost_events: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub events_suppressed: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_map_full: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_pressure: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub census_age_ms: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_exceptions: Option<RouteExceptions>,
}

/// The exception cache's growth this interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteExceptions {
    #[serde(default, deserialize_with = "lax::opt")]
    pub inserted: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub per_s: Option<f64>,
    #[serde(default, deserialize_with = "lax::list")]
    pub by_dst: Option<Vec<DstCount>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub rt6_cached: Option<u64>,
    /// The polling tier's dump sizes by family (`ipv4`, `ipv6`).
    #[serde(default, deserialize_with = "lax::figures")]
    pub cached: Option<BTreeMap<String, Option<u64>>>,
}

/// One destination of `by_dst` (read only when both are there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DstCount {
    #[serde(default, deserialize_with = "lax::opt")]
    pub dst: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub count: Option<u64>,
}

/// `"doctor"`: what was diagnosed; its findings follow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DoctorLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub kernel_release: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "lax::list")]
    pub unreadable: Option<Vec<String>>,
    /// Their number.
    #[serde(default, deserialize_with = "lax::opt")]
    pub findings: Option<u64>,
    /// `doctor --prometheus`: the instance judged.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub instance: Option<String>,
}

/// `"finding"`: one finding of the doctor, most urgent first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub rank: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub severity: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub fired: Option<bool>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lax::places")]
    pub evidence: Option<Vec<Evidence>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub explanation: Option<String>,
    #[serde(default, deserialize_with = "lax::list")]
    pub action: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub group_proxy: Option<String>,
    /// `doctor --prometheus`: the instance it is of.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub instance: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, deserialize_with = "lax::opt")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub value: Option<String>,
}

/// `"summary"`: the end of a trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub events: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub lost_events: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub events_suppressed: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub events_unread_at_exit: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub group_map_full: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphan_map_full: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub duration_s: Option<f64>,
}

/// `"incident"` (an incident file of the flight recorder): a trigger, at
/// the moment it fired. The first one of a file started it; later ones
/// extended it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    /// The incident's id (its file name without `.jsonl.zst`).
    #[serde(default, deserialize_with = "lax::opt")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub cause: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub detail: Option<String>,
    /// Whether this trigger started the incident (false: it extended it).
    #[serde(default, deserialize_with = "lax::opt")]
    pub started: Option<bool>,
}

/// `"socket"` (an incident file): one socket of a top group at the
/// trigger, as `top`'s drill-down shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub group: Option<String>,
    #[serde(flatten)]
    pub sock: Sock,
}
