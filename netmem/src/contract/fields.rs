//! Field sets several line types flatten in (`#[serde(flatten)]`): the
//! namespace, an event's or socket line's socket, a cgroup's identity and
//! the proxy's names. Kept apart so each line type's file takes them from
//! below instead of from a sibling line.

use serde::{Deserialize, Serialize};

use super::lax::{self, Int};

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
