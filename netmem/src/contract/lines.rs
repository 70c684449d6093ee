//! One struct per line type of the contract (README, "JSON lines"), each
//! field as README names it. Every field is an `Option`, read laxly (see
//! [`super::lax`]): `None` is written as `null` where the line always has
//! the field, and not at all (`skip_serializing_if`) where the line has it
//! only sometimes; a field that is sometimes `null` and sometimes absent
//! is an `Option<Option<_>>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lax::{self, Int, Pages};
use crate::sources::host::Host;

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

/// One destination of `by_dst`; read only when both are there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DstCount {
    pub dst: String,
    pub count: u64,
}

/// With `--netns all`: the namespace, by name and inode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Netns {
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub netns: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub netns_inode: Option<u64>,
}

/// `"group"`: one group's figures in an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub port: Option<u64>,
    /// Backend groups only.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub addr: Option<String>,
    #[serde(flatten)]
    pub netns: Netns,
    /// `--group-by process`: the process (`null` when not known).
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub pid: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub comm: Option<Option<String>>,
    /// `--group-by cgroup`: the cgroup (`cgroup` `null` when not known).
    #[serde(flatten)]
    pub cgroup: CgroupFields,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub memcg_sock_bytes: Option<Option<u64>>,
    #[serde(flatten)]
    pub proxy: ProxyFields,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub owners: Option<Owners>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sockets: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub listeners: Option<u64>,
    /// `null` unless the pass counted TIME_WAIT sockets.
    #[serde(default, deserialize_with = "lax::opt")]
    pub time_wait: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub rmem_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub wmem_queued_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub fwd_alloc_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphan_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub drops: Option<u64>,
    /// In a live interval: its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

impl GroupLine {
    /// rmem + wmem_queued + fwd_alloc, bytes (absent figures count 0).
    pub fn memory(&self) -> u64 {
        let n = |f: Option<u64>| f.unwrap_or(0);
        n(self.rmem_bytes)
            .saturating_add(n(self.wmem_queued_bytes))
            .saturating_add(n(self.fwd_alloc_bytes))
    }
}

/// A cgroup's identity, on a `--group-by cgroup` group line and in an
/// owner: the path (`null` when the id is not known), its id, and the
/// container and pod its path carries (`null` when none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupFields {
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup_id: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub container: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod: Option<Option<String>>,
}

/// A live group's counts of the interval, one per `Counter`, by its name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub established: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub closed: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub exceed_buf_limit: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub rcvqueue_full: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_aborts: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub skb_drops: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub resets: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub destroyed_with_data: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub orphans_born: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub orphans_gone: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pressure_entered: Option<u64>,
}

impl Counts {
    /// The count named by `c` (its field is its name, a test checks).
    pub fn get_mut(&mut self, c: netmem_common::Counter) -> Option<&mut Option<u64>> {
        Some(match c.name() {
            "established" => &mut self.established,
            "closed" => &mut self.closed,
            "exceed_buf_limit" => &mut self.exceed_buf_limit,
            "rcvqueue_full" => &mut self.rcvqueue_full,
            "mem_aborts" => &mut self.mem_aborts,
            "skb_drops" => &mut self.skb_drops,
            "resets" => &mut self.resets,
            "destroyed_with_data" => &mut self.destroyed_with_data,
            "orphans_born" => &mut self.orphans_born,
            "orphans_gone" => &mut self.orphans_gone,
            "pressure_entered" => &mut self.pressure_entered,
            _ => return None,
        })
    }

    pub fn get(&self, c: netmem_common::Counter) -> Option<u64> {
        match c.name() {
            "established" => self.established,
            "closed" => self.closed,
            "exceed_buf_limit" => self.exceed_buf_limit,
            "rcvqueue_full" => self.rcvqueue_full,
            "mem_aborts" => self.mem_aborts,
            "skb_drops" => self.skb_drops,
            "resets" => self.resets,
            "destroyed_with_data" => self.destroyed_with_data,
            "orphans_born" => self.orphans_born,
            "orphans_gone" => self.orphans_gone,
            "pressure_entered" => self.pressure_entered,
            _ => None,
        }
    }
}

/// What the proxy in front calls a group (or an event's group), and the
/// side's buffer settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyFields {
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_side: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_frontend: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::list",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_frontends: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_backend: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_server: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::list",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_servers: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_tune: Option<SideTune>,
}

/// A group's side of the proxy's settings (`proxy_tune`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideTune {
    #[serde(default, deserialize_with = "lax::opt")]
    pub bufsize: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub rcvbuf: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sndbuf: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub from_configuration: Option<bool>,
}

/// Who holds a group's sockets (`--owners`, `--group-by`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Owners {
    #[serde(default, deserialize_with = "lax::places")]
    pub processes: Option<Vec<ProcessShare>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub more_processes: Option<u64>,
    #[serde(default, deserialize_with = "lax::places")]
    pub cgroups: Option<Vec<CgroupShare>>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub more_cgroups: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub unheld_sockets: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessShare {
    #[serde(default, deserialize_with = "lax::opt")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub comm: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sockets: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupShare {
    #[serde(flatten)]
    pub cgroup: CgroupFields,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sockets: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub memcg_sock_bytes: Option<u64>,
}

/// `"event"`: one event, with its socket and its kind's fields. One
/// struct for every kind: kinds share names (`allocated_pages`,
/// `tcp_mem_pages`, `via`), each with one meaning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub event: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tier: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub group: Option<String>,
    #[serde(flatten)]
    pub netns: Netns,
    #[serde(flatten)]
    pub proxy: ProxyFields,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner: Option<EventOwner>,
    #[serde(flatten)]
    pub sock: Sock,
    #[serde(flatten)]
    pub body: EventFields,
}

/// An event's owner, when known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventOwner {
    #[serde(default, deserialize_with = "lax::opt")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub comm: Option<String>,
    #[serde(flatten)]
    pub cgroup: CgroupFields,
    #[serde(default, deserialize_with = "lax::opt")]
    pub via: Option<String>,
}

/// The socket of an event, when it has one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sock {
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub local: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub protocol: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub rmem_alloc: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub rcvbuf: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub wmem_queued: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub wmem_alloc: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub sndbuf: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub fwd_alloc: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub sk_drops: Option<Int>,
}

/// The kind-specific fields (README lists which kind has which). A field
/// that can be `null` for its kind is an `Option<Option<_>>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFields {
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub allocated_pages: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub direction: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_mem_pages: Option<Pages>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub udp_mem_pages: Option<Pages>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub truesize: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cause: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub via: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub orphans: Option<Option<Int>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub orphans_source: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub shift: Option<Option<Int>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_orphans: Option<Option<Int>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_orphans_source: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub sock_min_sndbuf: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub kernel_log: Option<KernelLog>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub len: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub unread_bytes: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub unacked_bytes: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub bytes: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime_ms: Option<Option<f64>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub bytes_at_birth: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_state: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_ms: Option<Option<f64>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub family: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub dst: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub dev: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pmtu: Option<Int>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub exception: Option<String>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub seq: Option<Int>,
}

/// A polled abort's kernel log lines seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLog {
    #[serde(default, deserialize_with = "lax::opt")]
    pub too_many_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub out_of_tcp_mem: Option<u64>,
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
