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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::memcg::{EffectiveLimit, MemcgEvents};
    use crate::model::row::{CgroupShare, Owners};
    use crate::model::Interval;
    use crate::output::prometheus::metrics::{encode_interval, Format};
    use crate::output::prometheus::{MetricsSink, Shared};
    use crate::output::Sink as _;

    fn owned_by(port: u16, cg: &Arc<Cgroup>, m: &Arc<Memcg>, bytes: u64) -> (GroupKey, GroupRow) {
        let mut row = GroupRow::default();
        row.mem.sockets = 1;
        row.mem.wmem_queued = bytes;
        row.owners = Some(Box::new(Owners {
            cgroups: vec![CgroupShare {
                cgroup: cg.clone(),
                sockets: 1,
                bytes,
                memcg_sock: m.sock,
                memcg: Some(m.clone()),
            }],
            ..Default::default()
        }));
        (GroupKey::classify(2, port, true, &[0; 16], 0), row)
    }

    /// Only the cgroups of exported groups have series, each once, and a
    /// cgroup at its pod's limit while the host is not reads 1.
    #[test]
    fn cgroups_of_exported_groups_only() {
        let pod = Arc::new(Cgroup::at(7, "/pod.slice/ctr".into()));
        let other = Arc::new(Cgroup::at(8, "/other".into()));
        let m = Arc::new(Memcg {
            sock: Some(20 << 20),
            current: Some(10 << 20),
            events: MemcgEvents {
                max: Some(3),
                ..Default::default()
            },
            limit: Some(EffectiveLimit {
                max: 24 << 20,
                current: 24 << 20,
                cgroup: "/pod.slice".into(),
                events: MemcgEvents::default(),
            }),
            ..Default::default()
        });
        let shared = Arc::new(Shared::default());
        let mut sink = MetricsSink::new(shared.clone(), 2, Duration::from_secs(5), Duration::ZERO);
        let mut i = Interval::live_for_tests(vec![
            owned_by(80, &pod, &m, 300),
            owned_by(81, &pod, &m, 200),
            owned_by(82, &other, &m, 100),
        ]);
        i.context.tcp_mem_pages = Some([1000, 2000, 3000]);
        i.context.memory_allocated_pages = 10;
        sink.interval(&i).unwrap();
        let text = encode_interval(shared.latest().unwrap(), Format::Text);
        let limit: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("netmem_cgroup_memory_limit_bytes{"))
            .collect();
        assert_eq!(limit.len(), 1, "{text}");
        assert!(limit[0].contains("cgroup=\"/pod.slice/ctr\""), "{text}");
        assert!(limit[0].contains("limit_cgroup=\"/pod.slice\""), "{text}");
        assert!(!text.contains("cgroup=\"/other\""), "{text}");
        assert!(
            text.contains("netmem_cgroup_socket_pressure{cgroup=\"/pod.slice/ctr\",container=\"\",pod=\"\"} 1"),
            "{text}"
        );
        assert!(text.contains("event=\"max\"} 3"), "{text}");
        // A max of `max`: no sample.
        assert!(!text.contains("netmem_cgroup_memory_max_bytes{"), "{text}");
    }
}
