//! The host's limits beside their usage, the interval's own figures, and
//! netmem's: probes, build, interval.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::families::{seconds_since_epoch, Families, Fmt, Num};
use crate::output::prometheus::Exposition;

pub(super) fn global(f: &mut Families, e: &Exposition) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    let Some(gl) = &e.global else {
        return Ok(());
    };
    let c = &gl.context;
    let page = c.page_size;
    let thresholds = |pages: [u64; 3]| {
        ["min", "pressure", "max"]
            .into_iter()
            .zip(pages)
            .map(move |(t, p)| ([("threshold", t)], Num::from(p * page)))
    };
    f.gauge(
        "tcp_memory_allocated",
        "TCP memory the kernel has charged (sockstat mem), all namespaces.",
        Some(Unit::Bytes),
        c.memory_allocated_pages * page,
    )?;
    if let Some(m) = c.tcp_mem_pages {
        f.labelled(
            "tcp_memory_limit",
            "net.ipv4.tcp_mem: min, pressure and max.",
            Some(Unit::Bytes),
            G,
            thresholds(m),
        )?;
    }
    f.gauge(
        "tcp_memory_pressure",
        "1 while TCP is under memory pressure (tcp_enter_memory_pressure), else 0.",
        None,
        gl.memory_pressure as u64,
    )?;
    f.counter(
        "tcp_memory_pressure",
        "Time TCP spent under memory pressure since netmem started.",
        Some(Unit::Seconds),
        gl.pressure_time.as_secs_f64(),
    )?;
    f.gauge(
        "tcp_orphans",
        "Orphaned TCP sockets, all namespaces (sockstat orphan).",
        None,
        c.orphans,
    )?;
    // The groups' figures come from the census; the kernel's sockstat count
    // is read at another moment. This one is the groups' own whole: never
    // below the sum of netmem_group_orphans of the same interval.
    if let Some(n) = c.orphans_census {
        f.gauge(
            "census_orphans",
            "Orphaned TCP sockets the census counted in the traced namespace(s), from the same sock_diag pass as the groups (netmem_group_orphans sums to at most this).",
            None,
            n,
        )?;
    }
    if let Some(m) = c.max_orphans {
        f.gauge("tcp_max_orphans", "net.ipv4.tcp_max_orphans. Aborts start at a quarter of it for sockets idle or in error (tcp_out_of_resources).", None, m)?;
    }
    f.gauge(
        "tcp_time_wait_sockets",
        "TCP sockets in TIME_WAIT, in the traced namespace (sockstat tw).",
        None,
        c.tw,
    )?;
    f.labelled(
        "sockets_in_use",
        "Sockets in use in the traced namespace (sockstat inuse), by protocol: tcp, tcp6, udp (v4 and v6).",
        None,
        G,
        [("tcp", c.sockets_inuse), ("tcp6", c.tcp6_inuse), ("udp", c.udp_inuse)].map(|(p, v)| ([("protocol", p)], Num::from(v))),
    )?;
    f.gauge(
        "udp_memory_allocated",
        "UDP memory the kernel has charged (sockstat UDP mem).",
        Some(Unit::Bytes),
        c.udp_memory_allocated_pages * page,
    )?;
    if let Some(m) = c.udp_mem_pages {
        f.labelled(
            "udp_memory_limit",
            "net.ipv4.udp_mem: min, pressure and max.",
            Some(Unit::Bytes),
            G,
            thresholds(m),
        )?;
    }
    f.labelled(
        "route_exceptions_inserted",
        "Route exceptions (PMTU, redirects) inserted since netmem started, by family.",
        None,
        C,
        gl.routes_inserted
            .iter()
            .map(|(k, v)| ([("family", *k)], Num::from(*v))),
    )?;
    f.labelled(
        "route_exceptions_cached",
        "Cached routes (exceptions) now, by family, where a dump or /proc/net/rt6_stats tells.",
        None,
        G,
        gl.routes_cached
            .iter()
            .map(|(k, v)| ([("family", *k)], Num::from(*v))),
    )?;
    f.labelled(
        "events",
        "Events netmem received, by kind.",
        None,
        C,
        e.events
            .iter()
            .map(|(k, v)| ([("kind", *k)], Num::from(*v))),
    )?;
    f.counter(
        "events_lost",
        "Events lost because the ring buffer was full: the event counters above miss this many.",
        None,
        gl.lost_events,
    )?;
    f.counter(
        "events_suppressed",
        "Events over the per-interval limit, counted but not decoded.",
        None,
        gl.events_suppressed,
    )?;
    f.counter(
        "group_map_full",
        "Kernel per-group counts lost because the group map was full.",
        None,
        gl.group_map_full,
    )?;
    f.gauge(
        "groups",
        "Groups the last interval had (after filtering empty ones).",
        None,
        e.groups_seen as u64,
    )?;
    f.gauge(
        "groups_folded",
        "Groups summed into group=\"other\" at the last interval (over --max-groups).",
        None,
        e.groups_folded as u64,
    )?;
    f.gauge(
        "interval_gather",
        "How long the last interval's reads (sock_diag, procfs, pollers) took.",
        Some(Unit::Seconds),
        gl.gather_time.as_secs_f64(),
    )?;
    f.gauge(
        "census_age",
        "How old the census behind the group series is: 0 when read at the last interval, more between full passes (--census-budget).",
        Some(Unit::Seconds),
        gl.census_age.as_secs_f64(),
    )?;
    f.gauge(
        "last_interval_timestamp",
        "When the last interval's figures were read (Unix time).",
        Some(Unit::Seconds),
        seconds_since_epoch(gl.ts),
    )
}

pub(super) fn own(f: &mut Families, e: &Exposition) -> Fmt {
    f.labelled(
        "probe",
        "One series per hook, with the tier serving it on this kernel: fentry, kprobe, tracepoint, polling, or none.",
        None,
        MetricType::Info,
        e.probes.iter().map(|(h, t)| ([("hook", *h), ("tier", *t)], Num::from(1))),
    )?;
    f.labelled(
        "build",
        "netmem's version.",
        None,
        MetricType::Info,
        [([("version", env!("CARGO_PKG_VERSION"))], Num::from(1))],
    )?;
    f.gauge(
        "interval",
        "The configured interval (--interval).",
        Some(Unit::Seconds),
        e.interval.as_secs_f64(),
    )
}
