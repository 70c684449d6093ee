//! The fleet doctor's lines (`doctor --prometheus --json`): `"fleet"`
//! first, then each instance's `"doctor"` and `"finding"` lines (with
//! their `instance`), then the findings hosts share (`"fleet_finding"`)
//! and the groups across hosts (`"fleet_group"`).

use serde::{Deserialize, Serialize};

use super::lax;

/// `"fleet"`: what was asked, and the instances, worst first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lax::list")]
    pub instances: Option<Vec<String>>,
    /// What Prometheus does not hold, so was not judged.
    #[serde(default, deserialize_with = "lax::list")]
    pub notes: Option<Vec<String>>,
    /// Each instance's figures, in the same order.
    #[serde(default, deserialize_with = "lax::places")]
    pub hosts: Option<Vec<FleetHost>>,
}

/// One instance's figures over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetHost {
    #[serde(default, deserialize_with = "lax::opt")]
    pub instance: Option<String>,
    /// Its worst finding's severity.
    #[serde(default, deserialize_with = "lax::opt")]
    pub worst: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_tcp_memory_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub tcp_memory_of_max: Option<f64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub orphans_of_threshold: Option<f64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_held_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_census_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub aborts: Option<u64>,
}

/// `"fleet_finding"`: one rule at one severity, on these hosts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetFindingLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub severity: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub fired: Option<bool>,
    #[serde(default, deserialize_with = "lax::list")]
    pub hosts: Option<Vec<String>>,
    /// Of how many instances judged.
    #[serde(default, deserialize_with = "lax::opt")]
    pub of: Option<u64>,
    /// The first host's title (its numbers).
    #[serde(default, deserialize_with = "lax::opt")]
    pub example: Option<String>,
}

/// `"fleet_group"`: a group by name across hosts, hosts most first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetGroupLine {
    #[serde(default, deserialize_with = "lax::opt")]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::places")]
    pub hosts: Option<Vec<FleetGroupHost>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetGroupHost {
    #[serde(default, deserialize_with = "lax::opt")]
    pub instance: Option<String>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub memory_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub peak_orphans: Option<u64>,
    #[serde(default, deserialize_with = "lax::opt")]
    pub sockets: Option<u64>,
}
