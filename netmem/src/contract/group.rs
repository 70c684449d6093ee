//! The group line and what it shares with the event line: a cgroup's
//! identity, a proxy's names for the group, and the owners.

use serde::{Deserialize, Serialize};

use super::fields::{CgroupFields, Netns, ProxyFields};
use super::lax;

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
    /// `--group-by cgroup`: the cgroup's memory controller.
    #[serde(flatten)]
    pub memcg: super::memcg::MemcgFields,
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
    /// Its listeners' accept queues (absent in recordings made before
    /// netmem read them).
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_queue: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_backlog: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_full: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen_drops: Option<u64>,
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
    #[serde(flatten)]
    pub memcg: super::memcg::MemcgFields,
}
