//! A cgroup's memory controller figures, as the group line of a cgroup
//! group (`--group-by cgroup`) and each of the owners' cgroup shares
//! carry them (flattened into both). Absent when not read; `null` for a
//! limit of `max`.

use serde::{Deserialize, Serialize};

use super::lax;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemcgFields {
    /// `memory.current`, bytes.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_current_bytes: Option<u64>,
    /// `memory.max`, bytes; `null` for `max`.
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_max_bytes: Option<Option<u64>>,
    /// `memory.high`, bytes; `null` for `max`.
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_high_bytes: Option<Option<u64>>,
    /// The limit that applies: the tightest `memory.max` of the cgroup
    /// and its ancestors, that cgroup's `memory.current`, and its path.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_bytes: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_current_bytes: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_cgroup: Option<String>,
    /// That cgroup's `memory.events` `max` and `high` (where an
    /// ancestor's limit pushes back, it counts them).
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_events_max: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_events_high: Option<u64>,
    /// `memory.events`' counters (cumulative).
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_events_high: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_events_max: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_events_oom: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_events_oom_kill: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_events_sock_throttled: Option<u64>,
    /// cgroup v1's `memory.kmem.tcp.*` (a v1 or hybrid host).
    #[serde(
        default,
        deserialize_with = "lax::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_kmem_limit_bytes: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_kmem_usage_bytes: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_kmem_failcnt: Option<u64>,
}
