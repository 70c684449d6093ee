//! Names of the series `serve` exports that `doctor --prometheus` reads
//! back (the other half of the contract: the JSON lines are one, these
//! are the other). The exporter writes them from here, the fleet doctor
//! asks for them from here.

use netmem_common::Counter;

/// The host line's facts: `netmem_host_info`, `netmem_sysctl_info`,
/// `netmem_host_memory_bytes`, `netmem_page_size_bytes`.
pub const HOST_INFO: &str = "host";
pub const SYSCTL_INFO: &str = "sysctl";
pub const MEMORY_TOTAL: &str = "host_memory";
pub const PAGE_SIZE: &str = "page_size";

/// The per-group counts exported as `netmem_<name>_total`, one per kernel
/// counter: the exporter and `doctor --prometheus` (which reads them back
/// into a window) take the names from here.
pub const GROUP_COUNTS: &[(Counter, &str, &str)] = &[
    (
        Counter::RcvqueueFull,
        "group_receive_queue_full",
        "Packets dropped because the receive queue was full (sock_rcvqueue_full).",
    ),
    (
        Counter::OrphansBorn,
        "group_orphans_born",
        "Sockets orphaned (closed with the connection still open).",
    ),
    (
        Counter::OrphansGone,
        "group_orphans_gone",
        "Orphans that ended (freed).",
    ),
    (
        Counter::Established,
        "group_connections_established",
        "Connections that reached ESTABLISHED.",
    ),
    (
        Counter::Closed,
        "group_connections_closed",
        "Connections that reached CLOSE.",
    ),
    (
        Counter::Resets,
        "group_resets_sent",
        "Resets sent (tcp_send_reset).",
    ),
    (
        Counter::DestroyedWithData,
        "group_destroyed_with_data",
        "Sockets destroyed with unread or unacknowledged data.",
    ),
];
