//! The per-cgroup families (`netmem_cgroup_*`): the memory controller of
//! each cgroup that owns an exported group, labelled by its path and the
//! container and pod its path names (empty when none).

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::families::{Families, Fmt, Num};
use crate::model::memcg::Memcg;
use crate::output::prometheus::{CgroupSeries, Exposition};

fn labels(c: &CgroupSeries) -> [(&'static str, &str); 3] {
    [
        ("cgroup", c.cgroup.path.as_str()),
        ("container", c.cgroup.container.as_deref().unwrap_or("")),
        ("pod", c.cgroup.pod.as_deref().unwrap_or("")),
    ]
}

pub(super) fn cgroups(f: &mut Families, e: &Exposition) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    let one = |f: &mut Families, name, help, ty, v: &dyn Fn(&Memcg) -> Option<u64>| {
        f.labelled(
            name,
            help,
            Some(Unit::Bytes),
            ty,
            e.cgroups
                .iter()
                .filter_map(|c| Some((labels(c), Num::from(v(&c.memcg)?)))),
        )
    };
    one(
        f,
        "cgroup_memory_current",
        "memory.current of a cgroup owning an exported group (cgroup v2).",
        G,
        &|m| m.current,
    )?;
    one(
        f,
        "cgroup_memory_max",
        "memory.max of a cgroup owning an exported group; no sample for max (no limit of its own).",
        G,
        &|m| m.max,
    )?;
    one(
        f,
        "cgroup_memory_high",
        "memory.high of a cgroup owning an exported group; no sample for max.",
        G,
        &|m| m.high,
    )?;
    one(
        f,
        "cgroup_sock",
        "memory.stat sock of a cgroup owning an exported group: socket buffers charged to it.",
        G,
        &|m| m.sock,
    )?;
    f.labelled(
        "cgroup_memory_limit",
        "The memory.max that applies to the cgroup: the tightest of it and its ancestors (limit_cgroup sets it).",
        Some(Unit::Bytes),
        G,
        e.cgroups.iter().filter_map(|c| {
            let l = c.memcg.limit.as_ref()?;
            let [a, b, d] = labels(c);
            Some(([a, b, d, ("limit_cgroup", l.cgroup.as_str())], Num::from(l.max)))
        }),
    )?;
    f.labelled(
        "cgroup_memory_events",
        "memory.events counters of the cgroup (high, max, oom, oom_kill; sock_throttled on kernels that have it), since the cgroup was made.",
        None,
        C,
        e.cgroups.iter().flat_map(|c| {
            c.memcg.events.named().into_iter().filter_map(move |(ev, n)| {
                let [a, b, d] = labels(c);
                Some(([a, b, d, ("event", ev)], Num::from(n?)))
            })
        }),
    )?;
    f.labelled(
        "cgroup_socket_pressure",
        "1 while the cgroup's sockets are under memory pressure of their own: near its memory limit (90%) or pushed back (memory.events max/high), holding socket memory, while the host's TCP memory is below tcp_mem[1].",
        None,
        G,
        e.cgroups
            .iter()
            .filter(|c| c.memcg.limit.is_some())
            .map(|c| (labels(c), Num::from(u64::from(c.local_pressure)))),
    )
}
