//! The per-group families (`netmem_group_*`): one series per exported
//! group, labelled by its name and kind.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::families::{Families, Fmt, Num};

use super::host::causes;
use crate::contract::series::GROUP_COUNTS;
use crate::output::prometheus::{Exposition, GroupSeries};

pub(super) fn groups(f: &mut Families, e: &Exposition) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    let per_group = |f: &mut Families, name, help, unit, ty, v: &dyn Fn(&GroupSeries) -> u64| {
        f.labelled(
            name,
            help,
            unit,
            ty,
            e.groups.iter().map(|g| (labels(g), Num::from(v(g)))),
        )
    };
    per_group(
        f,
        "group_sockets",
        "Sockets of the group, neither listening nor in TIME_WAIT.",
        None,
        G,
        &|g| g.mem.sockets,
    )?;
    // Only when counted (`serve --time-wait`): a pass skips TIME_WAIT
    // sockets otherwise, and a zero would read as "none".
    let tw = e.global.as_ref().is_some_and(|g| g.time_wait_counted);
    f.labelled(
        "group_time_wait_sockets",
        "TIME_WAIT sockets of the group (with serve --time-wait only).",
        None,
        G,
        e.groups
            .iter()
            .filter(|_| tw)
            .map(|g| (labels(g), Num::from(g.mem.time_wait))),
    )?;
    per_group(
        f,
        "group_orphans",
        "Orphaned TCP sockets of the group (closed by their process, still in the kernel).",
        None,
        G,
        &|g| g.mem.orphans,
    )?;
    per_group(
        f,
        "group_orphan",
        "Receive and send queue bytes held by the group's orphans.",
        Some(Unit::Bytes),
        G,
        &|g| g.mem.orphan_bytes,
    )?;
    f.labelled(
        "group_memory",
        "Socket memory the group holds, by queue: rmem (receive queue), wmem_queued (send queue), fwd_alloc (reserved ahead); sum() is what it holds.",
        Some(Unit::Bytes),
        G,
        e.groups.iter().flat_map(|g| {
            [
                ("rmem", g.mem.rmem),
                ("wmem_queued", g.mem.wmem_queued),
                ("fwd_alloc", g.mem.fwd_alloc),
            ]
            .map(|(q, v)| ([("group", g.group.as_str()), ("kind", g.kind), ("queue", q)], Num::from(v)))
        }),
    )?;
    // Only groups with a listener have an accept queue.
    let listening = |g: &&GroupSeries| g.mem.listeners > 0;
    f.labelled(
        "group_listeners",
        "Listening sockets in the group (several with SO_REUSEPORT): its backlog is theirs summed.",
        None,
        G,
        e.groups
            .iter()
            .filter(listening)
            .map(|g| (labels(g), Num::from(g.mem.listeners))),
    )?;
    f.labelled(
        "group_accept_queue",
        "Connections waiting in the group's listeners' accept queues (completed by the kernel, not yet accepted).",
        None,
        G,
        e.groups.iter().filter(listening).map(|g| (labels(g), Num::from(g.mem.accept_queue))),
    )?;
    f.labelled(
        "group_accept_backlog",
        "The group's listeners' backlogs: the accept queues' limit (listen()'s backlog capped at net.core.somaxconn); a queue above it drops new connections.",
        None,
        G,
        e.groups.iter().filter(listening).map(|g| (labels(g), Num::from(g.mem.accept_backlog))),
    )?;
    f.labelled(
        "group_listen_drops",
        "Connections the group's listeners dropped (accept queue overflows included), since each listener was created: the namespace's ListenDrops, attributed to the listener.",
        None,
        C,
        e.groups.iter().filter(listening).map(|g| (labels(g), Num::from(g.mem.listen_drops))),
    )?;
    // Every cause at 0 from the group's first interval, so that a group
    // that exists before its first abort has a 0 before it (an incident's
    // `increase()` by group). Only aborts: buffer limits and drops would
    // add 11 series of zeros to every group (at 100 groups the exposition
    // would double); their host-wide series have every value at 0 instead.
    f.labelled(
        "group_aborts_on_memory",
        "Connections the kernel reset for lack of memory (tcp_check_oom), by the limit that fired: orphans, tcp_mem, orphans+tcp_mem, unknown; each at 0 from the group's first interval.",
        None,
        C,
        e.groups.iter().flat_map(|g| {
            causes(&g.totals).into_iter().map(move |(c, n)| ([("group", g.group.as_str()), ("kind", g.kind), ("cause", c)], Num::from(n)))
        }),
    )?;
    f.labelled(
        "group_buffer_limit_exceeded",
        "Allocations over the protocol's memory limit (sock_exceed_buf_limit), by direction.",
        None,
        C,
        e.groups.iter().flat_map(|g| {
            g.totals.exceeded.iter().map(move |(d, n)| {
                (
                    [
                        ("group", g.group.as_str()),
                        ("kind", g.kind),
                        ("direction", d),
                    ],
                    Num::from(*n),
                )
            })
        }),
    )?;
    for (c, name, help) in GROUP_COUNTS {
        per_group(f, name, help, None, C, &|g| g.totals.count(*c))?;
    }
    f.labelled(
        "group_memory_drops",
        "Packets dropped for memory reasons (kfree_skb), by the kernel's drop reason.",
        None,
        C,
        e.groups.iter().flat_map(|g| {
            g.totals.drops.iter().map(move |(r, n)| {
                (
                    [
                        ("group", g.group.as_str()),
                        ("kind", g.kind),
                        ("reason", r.as_str()),
                    ],
                    Num::from(*n),
                )
            })
        }),
    )?;
    f.labelled(
        "group_owner",
        "Who holds the group (--owners, --group-by, --netns all): its namespace, its largest process (comm, pid) and cgroup (path, container, pod); empty when unknown. Join on group.",
        None,
        MetricType::Info,
        e.groups.iter().filter_map(|g| {
            let o = g.owner.as_ref()?;
            Some((
                [
                    ("group", g.group.as_str()),
                    ("kind", g.kind),
                    ("netns", o.netns.as_str()),
                    ("process", o.process.as_str()),
                    ("pid", o.pid.as_str()),
                    ("cgroup", o.cgroup.as_str()),
                    ("container", o.container.as_str()),
                    ("pod", o.pod.as_str()),
                ],
                Num::from(1),
            ))
        }),
    )?;
    f.labelled(
        "group_proxy",
        "What the proxy in front calls the group (--haproxy, --nginx, or one found running): its side, frontend, or backend and server; several names joined by '+' when the kernel's group is shared. Join on group.",
        None,
        MetricType::Info,
        e.groups.iter().filter_map(|g| {
            let p = g.proxy.as_ref()?;
            Some((
                [
                    ("group", g.group.clone()),
                    ("kind", g.kind.to_string()),
                    ("proxy", p.kind.to_string()),
                    ("side", p.side.name().to_string()),
                    ("frontend", p.frontends.join("+")),
                    ("backend", p.backends().join("+")),
                    ("server", p.server().map(str::to_string).unwrap_or_default()),
                ],
                Num::from(1),
            ))
        }),
    )?;
    f.labelled(
        "group_proxy_buffer",
        "The proxy's buffer settings for the group's side, when set: tune.bufsize, and the side's tune.rcvbuf / tune.sndbuf (unset ones, autotuned by the kernel, have no sample).",
        Some(Unit::Bytes),
        G,
        e.groups.iter().flat_map(|g| {
            let p = g.proxy.as_deref();
            [
                ("bufsize", p.and_then(|p| p.bufsize)),
                ("rcvbuf", p.and_then(|p| p.tune.rcvbuf)),
                ("sndbuf", p.and_then(|p| p.tune.sndbuf)),
            ]
            .into_iter()
            .filter_map(move |(k, v)| {
                Some((
                    [("group", g.group.as_str()), ("kind", g.kind), ("setting", k)],
                    Num::from(v?),
                ))
            })
        }),
    )?;
    f.labelled(
        "group_memcg_sock",
        "A cgroup group's memory.stat sock: what the memory controller charged the cgroup for socket buffers (cgroup v2), beside netmem_group_memory_bytes for the cross-check.",
        Some(Unit::Bytes),
        G,
        e.groups.iter().filter_map(|g| Some((labels(g), Num::from(g.memcg_sock?)))),
    )
}

fn labels(g: &GroupSeries) -> [(&'static str, &str); 2] {
    [("group", g.group.as_str()), ("kind", g.kind)]
}
