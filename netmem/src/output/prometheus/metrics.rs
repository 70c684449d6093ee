//! The exposition: every metric `netmem serve` exports, its name, type,
//! unit and help, written once in this module and encoded by
//! `prometheus-client` from an [`Exposition`]: per group in `group.rs`,
//! host-wide counts in `host.rs`, the host's limits and netmem's own in
//! `global.rs`, the scrape's own here (`HttpPart`); `families.rs` is how a
//! family is written. README's metric table is checked against [`NAMES`]
//! by a unit test.

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use super::{Exposition, HttpStats};

mod cgroup;
mod facts;
mod families;
mod global;
mod group;
mod host;
mod netns;

use families::{Families, Fmt};
pub use host::host_wide_series;

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
    "netmem_group_listeners",
    "netmem_group_accept_queue",
    "netmem_group_accept_backlog",
    "netmem_group_listen_drops_total",
    "netmem_netns_info",
    "netmem_netns_somaxconn",
    "netmem_netns_listen_overflows_total",
    "netmem_netns_listen_drops_total",
    "netmem_netns_syn_queue_full_drops_total",
    "netmem_netns_syn_queue_full_cookies_total",
    "netmem_netns_aborts_on_memory_total",
    "netmem_netns_memory_pressures_total",
    "netmem_netns_rcvq_drops_total",
    "netmem_netns_backlog_drops_total",
    "netmem_netns_prune_called_total",
    "netmem_netns_rcv_pruned_total",
    "netmem_netns_ofo_pruned_total",
    "netmem_netns_aborts_on_timeout_total",
    "netmem_netns_attempt_fails_total",
    "netmem_netns_estab_resets_total",
    "netmem_cgroup_memory_current_bytes",
    "netmem_cgroup_memory_max_bytes",
    "netmem_cgroup_memory_high_bytes",
    "netmem_cgroup_memory_limit_bytes",
    "netmem_cgroup_sock_bytes",
    "netmem_cgroup_memory_events_total",
    "netmem_cgroup_socket_pressure",
    "netmem_aborts_on_memory_total",
    "netmem_aborts_on_memory_last_timestamp_seconds",
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
    "netmem_host_info",
    "netmem_sysctl_info",
    "netmem_host_memory_bytes",
    "netmem_page_size_bytes",
    "netmem_interval_seconds",
    "netmem_interval_gather_seconds",
    "netmem_census_age_seconds",
    "netmem_last_interval_timestamp_seconds",
    "netmem_scrape_duration_seconds",
    "netmem_scrapes_total",
    "netmem_http_rejected_total",
    "netmem_incidents_total",
    "netmem_last_incident_timestamp_seconds",
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

/// The scrape's own part, and the flight recorder's incidents when it
/// runs; ends the exposition.
pub fn encode_http(
    h: &HttpStats,
    incidents: Option<&crate::output::incidents::Incidents>,
    format: Format,
) -> String {
    let mut r = Registry::with_prefix("netmem");
    r.register_collector(Box::new(HttpPart {
        scrape_seconds: h.last_scrape_seconds(),
        scrapes: h.scrapes(),
        rejected: h.rejected(),
        incidents: incidents.map(|i| i.totals()),
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

#[derive(Debug)]
struct IntervalPart(Arc<Exposition>);

impl prometheus_client::collector::Collector for IntervalPart {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let e = &self.0;
        let mut f = Families { enc: &mut enc };
        group::groups(&mut f, e)?;
        cgroup::cgroups(&mut f, e)?;
        host::host(&mut f, &e.host, &e.last_abort)?;
        netns::netns(&mut f, e)?;
        global::global(&mut f, e)?;
        facts::facts(&mut f, e)?;
        global::own(&mut f, e)
    }
}

/// The HTTP side's own figures, read at each scrape.
#[derive(Debug)]
struct HttpPart {
    scrape_seconds: f64,
    scrapes: u64,
    rejected: u64,
    /// Incidents by cause, and the last one's start.
    incidents: Option<(
        [u64; crate::model::incident::Cause::COUNT],
        Option<std::time::SystemTime>,
    )>,
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
        f.counter("http_rejected", "HTTP connections or requests refused: closed to make room or refused at the connection caps, too slow, too large, malformed, failed TLS handshakes, failed basic auth (401).", None, self.rejected)?;
        let Some((totals, last)) = &self.incidents else {
            return Ok(());
        };
        use crate::model::incident::Cause;
        // Every cause from the start, at 0: increase() in an alert sees
        // the first one.
        f.labelled(
            "incidents",
            "Incidents the flight recorder started, by cause (abort-orphans, abort-tcp-mem, abort-both, abort-unknown, pressure, orphans, tcp-mem, kernel-log, events-lost, manual).",
            None,
            prometheus_client::metrics::MetricType::Counter,
            Cause::ALL
                .iter()
                .map(|c| ([("cause", c.name())], families::Num::from(totals[*c as usize]))),
        )?;
        f.gauge(
            "last_incident_timestamp",
            "When the flight recorder's last incident started (Unix time; 0: none since netmem started).",
            Some(Unit::Seconds),
            last.map(families::seconds_since_epoch).unwrap_or(0.0),
        )
    }
}
