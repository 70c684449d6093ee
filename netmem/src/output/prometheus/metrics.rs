//! The exposition: every metric `netmem serve` exports, its name, type,
//! unit and help, written once here and encoded by `prometheus-client`
//! from an [`Exposition`]. README's metric table is checked against
//! [`NAMES`] by a unit test.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use netmem_common::Counter;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Exposition, HttpStats, Totals};
use crate::kernel::btf::{drop_reason_name, MEMORY_DROP_REASONS};
use crate::model::event::{AbortCause, Direction};

/// Every exported family, as Prometheus shows it (with the `netmem_`
/// prefix, unit and `_total`/`_info` suffixes).
pub const NAMES: &[&str] = &[
    "netmem_group_sockets",
    "netmem_group_time_wait_sockets",
    "netmem_group_orphans",
    "netmem_group_orphan_bytes",
    "netmem_group_memory_bytes",
    "netmem_group_aborts_on_memory_total",
    "netmem_group_buffer_limit_exceeded_total",
    "netmem_group_receive_queue_full_total",
    "netmem_group_memory_drops_total",
    "netmem_group_orphans_born_total",
    "netmem_group_orphans_gone_total",
    "netmem_group_connections_established_total",
    "netmem_group_connections_closed_total",
    "netmem_group_resets_sent_total",
    "netmem_group_destroyed_with_data_total",
    "netmem_group_owner_info",
    "netmem_group_memcg_sock_bytes",
    "netmem_group_proxy_info",
    "netmem_group_proxy_buffer_bytes",
    "netmem_aborts_on_memory_total",
    "netmem_buffer_limit_exceeded_total",
    "netmem_receive_queue_full_total",
    "netmem_memory_drops_total",
    "netmem_tcp_memory_allocated_bytes",
    "netmem_tcp_memory_limit_bytes",
    "netmem_tcp_memory_pressure",
    "netmem_tcp_memory_pressure_seconds_total",
    "netmem_tcp_orphans",
    "netmem_census_orphans",
    "netmem_tcp_max_orphans",
    "netmem_tcp_time_wait_sockets",
    "netmem_sockets_in_use",
    "netmem_udp_memory_allocated_bytes",
    "netmem_udp_memory_limit_bytes",
    "netmem_route_exceptions_inserted_total",
    "netmem_route_exceptions_cached",
    "netmem_events_total",
    "netmem_events_lost_total",
    "netmem_events_suppressed_total",
    "netmem_group_map_full_total",
    "netmem_groups",
    "netmem_groups_folded",
    "netmem_probe_info",
    "netmem_build_info",
    "netmem_interval_seconds",
    "netmem_interval_gather_seconds",
    "netmem_census_age_seconds",
    "netmem_last_interval_timestamp_seconds",
    "netmem_scrape_duration_seconds",
    "netmem_scrapes_total",
    "netmem_http_rejected_total",
];

/// Which format a scrape asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for clients that do not ask for
    /// OpenMetrics (curl, promtool, older scrapers).
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// From an Accept header: OpenMetrics when the client lists it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

/// The interval's part of a scrape (everything but the HTTP self-metrics),
/// the same for every scrape until the next interval: scrapes cache it.
pub fn encode_interval(e: Arc<Exposition>, format: Format) -> String {
    let mut r = Registry::with_prefix("netmem");
    r.register_collector(Box::new(IntervalPart(e)));
    encode(&r, format, false)
}

/// The scrape's own part; ends the exposition.
pub fn encode_http(h: &HttpStats, format: Format) -> String {
    let mut r = Registry::with_prefix("netmem");
    r.register_collector(Box::new(HttpPart {
        scrape_seconds: h.last_scrape_seconds(),
        scrapes: h.scrapes(),
        rejected: h.rejected(),
    }));
    encode(&r, format, true)
}

fn encode(r: &Registry, format: Format, last: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the collectors return no errors of
    // their own.
    let res = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode_registry(&mut out, r)
            .and_then(|_| {
                if last {
                    prometheus_client::encoding::text::encode_eof(&mut out)
                } else {
                    Ok(())
                }
            }),
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, r),
    };
    debug_assert!(res.is_ok());
    out
}

/// One family at a time: its descriptor, then its series.
struct Families<'a, 'b> {
    enc: &'a mut DescriptorEncoder<'b>,
}

type Fmt = Result<(), std::fmt::Error>;

/// A sample value: counts stay integers in the exposition.
#[derive(Clone, Copy, Debug)]
enum Num {
    Int(u64),
    Real(f64),
}

impl From<u64> for Num {
    fn from(v: u64) -> Num {
        Num::Int(v)
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        Num::Real(v)
    }
}

impl Families<'_, '_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        ty: MetricType,
        body: impl FnOnce(&mut MetricEncoder) -> Fmt,
    ) -> Fmt {
        let mut m = self.enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
        body(&mut m)
    }

    fn gauge(&mut self, name: &str, help: &str, unit: Option<Unit>, v: impl Into<Num>) -> Fmt {
        let v = v.into();
        self.family(name, help, unit, MetricType::Gauge, |m| gauge(m, v))
    }

    fn counter(&mut self, name: &str, help: &str, unit: Option<Unit>, v: impl Into<Num>) -> Fmt {
        let v = v.into();
        self.family(name, help, unit, MetricType::Counter, |m| counter(m, v))
    }

    /// A family whose series are `rows`: label set and value.
    fn labelled<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        ty: MetricType,
        rows: impl IntoIterator<Item = (L, Num)>,
    ) -> Fmt {
        self.family(name, help, unit, ty, |m| {
            for (labels, v) in rows {
                match ty {
                    MetricType::Info => m.encode_info(&labels)?,
                    MetricType::Counter => counter(&mut m.encode_family(&labels)?, v)?,
                    _ => gauge(&mut m.encode_family(&labels)?, v)?,
                }
            }
            Ok(())
        })
    }
}

fn counter(m: &mut MetricEncoder, v: Num) -> Fmt {
    use prometheus_client::encoding::NoLabelSet;
    match v {
        Num::Int(v) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        Num::Real(v) => m.encode_counter::<NoLabelSet, _, f64>(&v, None),
    }
}

fn gauge(m: &mut MetricEncoder, v: Num) -> Fmt {
    match v {
        Num::Int(v) => m.encode_gauge(&v),
        Num::Real(v) => m.encode_gauge(&v),
    }
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug)]
struct IntervalPart(Arc<Exposition>);

impl prometheus_client::collector::Collector for IntervalPart {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let e = &self.0;
        let mut f = Families { enc: &mut enc };
        groups(&mut f, e)?;
        host(&mut f, &e.host)?;
        global(&mut f, e)?;
        own(&mut f, e)
    }
}

fn groups(f: &mut Families, e: &Exposition) -> Fmt {
    use MetricType::{Counter as C, Gauge as G};
    let per_group =
        |f: &mut Families, name, help, unit, ty, v: &dyn Fn(&super::GroupSeries) -> u64| {
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
    per_group(
        f,
        "group_receive_queue_full",
        "Packets dropped because the receive queue was full (sock_rcvqueue_full).",
        None,
        C,
        &|g| g.totals.count(Counter::RcvqueueFull),
    )?;
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
    per_group(
        f,
        "group_orphans_born",
        "Sockets orphaned (closed with the connection still open).",
        None,
        C,
        &|g| g.totals.count(Counter::OrphansBorn),
    )?;
    per_group(
        f,
        "group_orphans_gone",
        "Orphans that ended (freed).",
        None,
        C,
        &|g| g.totals.count(Counter::OrphansGone),
    )?;
    per_group(
        f,
        "group_connections_established",
        "Connections that reached ESTABLISHED.",
        None,
        C,
        &|g| g.totals.count(Counter::Established),
    )?;
    per_group(
        f,
        "group_connections_closed",
        "Connections that reached CLOSE.",
        None,
        C,
        &|g| g.totals.count(Counter::Closed),
    )?;
    per_group(
        f,
        "group_resets_sent",
        "Resets sent (tcp_send_reset).",
        None,
        C,
        &|g| g.totals.count(Counter::Resets),
    )?;
    per_group(
        f,
        "group_destroyed_with_data",
        "Sockets destroyed with unread or unacknowledged data.",
        None,
        C,
        &|g| g.totals.count(Counter::DestroyedWithData),
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
        "What the proxy in front calls the group (--haproxy, or a haproxy found running): its side, frontend, or backend and server; several names joined by '+' when the kernel's group is shared. Join on group.",
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

fn labels(g: &super::GroupSeries) -> [(&'static str, &str); 2] {
    [("group", g.group.as_str()), ("kind", g.kind)]
}

/// A labelled count's series: every label value known in advance, at 0
/// until counted, so that a series exists before its first event and
/// `increase()` sees that event; then any other value counted (a drop
/// reason netmem does not know by name).
fn zero_filled<'a, K: Borrow<str> + Ord>(
    known: impl IntoIterator<Item = &'static str>,
    counted: &'a BTreeMap<K, u64>,
) -> Vec<(&'a str, u64)> {
    let mut out: Vec<(&'a str, u64)> = known
        .into_iter()
        .map(|k| (k, counted.get(k).copied().unwrap_or(0)))
        .collect();
    let n = out.len();
    for (k, v) in counted {
        if !out[..n].iter().any(|(o, _)| *o == k.borrow()) {
            out.push((k.borrow(), *v));
        }
    }
    out
}

/// Aborts on memory by cause: every cause tcp_check_oom can have.
fn causes(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(AbortCause::ALL.iter().map(|c| c.name()), &t.aborts)
}

/// Buffer limits exceeded, by direction.
fn directions(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(Direction::ALL.iter().map(|d| d.name()), &t.exceeded)
}

/// Memory drops by reason: the memory reasons netmem traces, then any
/// other reason counted.
fn reasons(t: &Totals) -> Vec<(&str, u64)> {
    zero_filled(
        MEMORY_DROP_REASONS.iter().map(|m| drop_reason_name(m)),
        &t.drops,
    )
}

/// Every host-wide counter series as exposed (`name{label="value"}`), each
/// at 0 from the first exposition: what a test or the guests' scenario
/// expects before any event.
pub fn host_wide_series() -> Vec<String> {
    let t = Totals::default();
    let labelled = |name: &str, label: &str, values: Vec<(&str, u64)>| {
        values
            .into_iter()
            .map(|(v, _)| format!("netmem_{name}_total{{{label}=\"{v}\"}}"))
            .collect::<Vec<_>>()
    };
    let mut all = labelled("aborts_on_memory", "cause", causes(&t));
    all.extend(labelled(
        "buffer_limit_exceeded",
        "direction",
        directions(&t),
    ));
    all.extend(labelled("memory_drops", "reason", reasons(&t)));
    all.push("netmem_receive_queue_full_total".into());
    all
}

/// The host-wide counts: every event, with a group or without. They exist
/// from the first scrape on, at 0 for every label value known in advance,
/// so that alerts on them fire on the first event of any group (a group's
/// series is born with its first interval, which may be the one with its
/// first abort).
fn host(f: &mut Families, t: &Totals) -> Fmt {
    use MetricType::Counter as C;
    f.labelled(
        "aborts_on_memory",
        "Connections the kernel reset for lack of memory (tcp_check_oom), the whole host, by the limit that fired; 0 from netmem's start. By group: netmem_group_aborts_on_memory_total.",
        None,
        C,
        causes(t).into_iter().map(|(c, n)| ([("cause", c)], Num::from(n))),
    )?;
    f.labelled(
        "buffer_limit_exceeded",
        "Allocations over the protocol's memory limit (sock_exceed_buf_limit), the whole host, by direction; 0 from netmem's start.",
        None,
        C,
        directions(t).into_iter().map(|(d, n)| ([("direction", d)], Num::from(n))),
    )?;
    f.counter(
        "receive_queue_full",
        "Packets dropped because the receive queue was full (sock_rcvqueue_full), the whole host; 0 from netmem's start.",
        None,
        t.count(Counter::RcvqueueFull),
    )?;
    f.labelled(
        "memory_drops",
        "Packets dropped for memory reasons (kfree_skb), the whole host, by the kernel's drop reason; 0 from netmem's start.",
        None,
        C,
        reasons(t).into_iter().map(|(r, n)| ([("reason", r)], Num::from(n))),
    )
}

fn global(f: &mut Families, e: &Exposition) -> Fmt {
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

fn own(f: &mut Families, e: &Exposition) -> Fmt {
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

/// The HTTP side's own figures, read at each scrape.
#[derive(Debug)]
struct HttpPart {
    scrape_seconds: f64,
    scrapes: u64,
    rejected: u64,
}

impl prometheus_client::collector::Collector for HttpPart {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let mut f = Families { enc: &mut enc };
        f.gauge(
            "scrape_duration",
            "How long the previous scrape of /metrics took to encode.",
            Some(Unit::Seconds),
            self.scrape_seconds,
        )?;
        f.counter(
            "scrapes",
            "Scrapes of /metrics answered.",
            None,
            self.scrapes,
        )?;
        f.counter("http_rejected", "HTTP connections or requests refused: closed to make room or refused at the connection caps, too slow, too large, malformed, failed TLS handshakes, failed basic auth (401).", None, self.rejected)
    }
}
