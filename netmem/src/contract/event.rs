//! The event line: one struct for every kind (kinds share names such as
//! `allocated_pages`, `tcp_mem_pages` and `via`, each with one meaning).

use serde::{Deserialize, Serialize};

use super::fields::Netns;
use super::fields::{CgroupFields, ProxyFields, Sock};
use super::lax::{self, Int, Pages};

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
    /// abort_on_memory: the cause was inferred, not computed (polled).
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cause_inferred: Option<bool>,
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
    /// `cgroup_socket_pressure`: the cgroup's `memory.stat` `sock`, its
    /// memory controller's figures, and whether `memory.events` rose
    /// since the interval before.
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memcg_sock_bytes: Option<u64>,
    #[serde(flatten)]
    pub memcg: super::memcg::MemcgFields,
    #[serde(
        default,
        deserialize_with = "lax::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pushed_back: Option<bool>,
}

/// A polled abort's kernel log lines seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLog {
    #[serde(default, deserialize_with = "lax::opt")]
    pub too_many_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub out_of_tcp_mem: Option<u64>,
}
