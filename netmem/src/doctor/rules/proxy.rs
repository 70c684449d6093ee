//! What a group's holder can change, in its proxy's terms.

use crate::doctor::bytes;

/// What a group's holder can change, said in the proxy's terms: a frontend
/// (`listen:`) holds what it sends to clients and reads from them; a backend
/// what it reads from servers. When HAProxy names the group, the setting of
/// that side holding the most (send or receive queues), with its value now
/// and, given `budget` (bytes per socket), the value to set.
pub(super) fn group_hint(w: &crate::doctor::Window, group: &str, budget: Option<u64>) -> String {
    if let Some((g, p)) = w
        .groups
        .get(group)
        .and_then(|g| Some((g, g.proxy.as_ref()?)))
    {
        let side = p.side.name();
        let (knob, now, sysctl) = if g.wmem >= g.rmem {
            (format!("tune.sndbuf.{side}"), p.tune.sndbuf, "tcp_wmem")
        } else {
            (format!("tune.rcvbuf.{side}"), p.tune.rcvbuf, "tcp_rmem")
        };
        let now = match (now, p.tune.known) {
            (Some(b), _) => bytes(b),
            (None, true) => format!("unset: the kernel grows each socket up to {sysctl}'s maximum"),
            (None, false) => {
                "not known: netmem read only HAProxy's runtime API, not its configuration".into()
            }
        };
        // Below HAProxy's own buffer a socket cannot take one full buffer.
        let floor = p.bufsize.unwrap_or(16384);
        return match budget {
            Some(b) => format!(
                "its {side}-side sockets: HAProxy `{knob} {}` in the global section (now {now}; tune.bufsize {})",
                b.max(floor),
                bytes(floor)
            ),
            None => format!(
                "its {side}-side sockets with HAProxy's {knob} (now {now}; tune.bufsize {})",
                bytes(floor)
            ),
        };
    }
    if group.starts_with("listen:") {
        "its accepted connections' buffers (a proxy's client side: HAProxy tune.sndbuf.client / tune.rcvbuf.client)".into()
    } else if group.starts_with("backend:") {
        "its outgoing connections' buffers (a proxy's server side: HAProxy tune.rcvbuf.server / tune.sndbuf.server)".into()
    } else {
        // An owner group (--group-by process|cgroup) holds both sides.
        "its sockets' buffers, on both sides (group by port to see which side holds them)".into()
    }
}
