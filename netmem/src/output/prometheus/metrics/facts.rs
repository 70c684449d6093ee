//! The host line's facts as series: what `doctor --prometheus` reads to
//! run the host doctor's rules on a host it cannot log into (kernel, RAM,
//! page size, the sysctls the rules read). One series per fact, none per
//! group: a fleet's cardinality does not grow with its groups.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::families::{Families, Fmt, Num};
use crate::output::prometheus::Exposition;

use crate::contract::series::{HOST_INFO, MEMORY_TOTAL, PAGE_SIZE, SYSCTL_INFO};

pub(super) fn facts(f: &mut Families, e: &Exposition) -> Fmt {
    let Some(h) = e.facts.as_deref() else {
        return Ok(());
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    f.labelled(
        HOST_INFO,
        "The host netmem runs on and what it traces, as its host line says (kernel release, hostname, traced namespace, --group-by, rhash_entries from the boot command line).",
        None,
        MetricType::Info,
        [(
            [
                ("kernel_release", h.kernel_release.clone()),
                ("hostname", s(&h.hostname)),
                ("netns", s(&h.netns)),
                ("group_by", s(&h.group_by)),
                ("rhash_entries", s(&h.rhash_entries)),
            ],
            Num::from(1),
        )],
    )?;
    f.labelled(
        SYSCTL_INFO,
        "A sysctl the doctor reads, with its value as the kernel prints it (tcp_mem, tcp_max_orphans, tcp_rmem/tcp_wmem of the traced namespace, somaxconn, the route knobs), read when netmem started.",
        None,
        MetricType::Info,
        h.sysctls
            .iter()
            .map(|(k, v)| ([("sysctl", k.as_str()), ("value", v.as_str())], Num::from(1))),
    )?;
    if let Some(m) = h.mem_total_bytes {
        f.gauge(
            MEMORY_TOTAL,
            "The host's RAM (MemTotal in /proc/meminfo).",
            Some(Unit::Bytes),
            m,
        )?;
    }
    f.gauge(
        PAGE_SIZE,
        "The kernel's page size: tcp_mem and sockstat count in pages of it.",
        Some(Unit::Bytes),
        h.page_size,
    )
}
