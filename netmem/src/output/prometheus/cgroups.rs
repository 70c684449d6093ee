//! The cgroups serve exports memory controller figures for: those that
//! own the groups exported (a share of a top group's sockets), so their
//! number is bounded by the groups' cap times the shares a group shows,
//! never by the host's cgroup count.

use std::sync::Arc;

use netmem_common::GroupKey;

use crate::model::memcg::{HostTcp, Memcg, PressureWatch};
use crate::model::types::Cgroup;
use crate::model::GroupRow;

/// One exported cgroup: its identity (the labels), its figures, and
/// whether its sockets are under memory pressure of their own now.
#[derive(Clone, Debug, PartialEq)]
pub struct CgroupSeries {
    pub cgroup: Arc<Cgroup>,
    pub memcg: Arc<Memcg>,
    pub local_pressure: bool,
}

/// The cgroups of `top` (the groups exported), first met first, each
/// once; `watch` judges them against the interval before.
pub fn cgroup_series(
    top: &[(GroupKey, GroupRow)],
    host: Option<HostTcp>,
    watch: &mut PressureWatch,
) -> Vec<CgroupSeries> {
    let under: std::collections::HashSet<u64> = watch
        .update(top, host)
        .into_iter()
        .map(|p| p.cgroup.id)
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (_, row) in top {
        for c in row.owners.iter().flat_map(|o| o.cgroups.iter()) {
            let Some(m) = &c.memcg else {
                continue;
            };
            if seen.insert(c.cgroup.id) {
                out.push(CgroupSeries {
                    cgroup: c.cgroup.clone(),
                    memcg: m.clone(),
                    local_pressure: under.contains(&c.cgroup.id),
                });
            }
        }
    }
    out
}
