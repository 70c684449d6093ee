//! What a group's holder can change, in its proxy's terms.

use crate::doctor::bytes;
use crate::model::proxy::{Meaning, Side};
use crate::sources::proxy::kinds;

/// What a group's holder can change, said in the proxy's terms: a frontend
/// (`listen:`) holds what it sends to clients and reads from them; a backend
/// what it reads from servers. When a proxy names the group, the setting of
/// that side holding the most (send or receive queues), by its kind's knob
/// name, with its value now and, given `budget` (bytes per socket), the
/// value to set.
pub(super) fn group_hint(w: &crate::doctor::Window, group: &str, budget: Option<u64>) -> String {
    if let Some((g, p, kind)) = w.groups.get(group).and_then(|g| {
        let p = g.proxy.as_ref()?;
        Some((g, p, kinds::by_name(p.kind)?))
    }) {
        let side = p.side.name();
        let (meaning, now, sysctl) = if g.wmem >= g.rmem {
            (Meaning::Sndbuf(p.side), p.tune.sndbuf, "tcp_wmem")
        } else {
            (Meaning::Rcvbuf(p.side), p.tune.rcvbuf, "tcp_rmem")
        };
        let (name, buffer) = (
            kind.display,
            kind.knob(Meaning::ProxyBuffer).unwrap_or("its buffer"),
        );
        let Some(knob) = kind.knob(meaning) else {
            return format!("its {side}-side sockets' buffers ({name} does not set them)");
        };
        let now = match (now, p.tune.known) {
            (Some(b), _) => bytes(b),
            (None, true) => format!("unset: the kernel grows each socket up to {sysctl}'s maximum"),
            (None, false) => {
                format!("not known: netmem read only {name}'s runtime API, not its configuration")
            }
        };
        // Below the proxy's own buffer a socket cannot take one full buffer.
        let floor = p.bufsize.unwrap_or(16384);
        return match budget {
            Some(b) => format!(
                "its {side}-side sockets: {name} `{knob} {}` {} (now {now}; {buffer} {})",
                b.max(floor),
                kind.knobs_where,
                bytes(floor)
            ),
            None => format!(
                "its {side}-side sockets with {name}'s {knob} (now {now}; {buffer} {})",
                bytes(floor)
            ),
        };
    }
    // Every kind's knobs of the side (which proxy holds the group is not
    // known), the one that side's holder fills first: a frontend sends, a
    // backend reads.
    let knobs = |m: [Meaning; 2]| {
        kinds::KINDS
            .iter()
            // A kind that sets none of the side's buffers (nginx, to its
            // servers) has nothing to advise there.
            .filter_map(|k| {
                let names: Vec<&str> = m.iter().filter_map(|m| k.knob(*m)).collect();
                (!names.is_empty()).then(|| format!("{} {}", k.display, names.join(" / ")))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if group.starts_with("listen:") {
        format!(
            "its accepted connections' buffers (a proxy's client side: {})",
            knobs([Meaning::Sndbuf(Side::Client), Meaning::Rcvbuf(Side::Client)])
        )
    } else if group.starts_with("backend:") {
        format!(
            "its outgoing connections' buffers (a proxy's server side: {})",
            knobs([Meaning::Rcvbuf(Side::Server), Meaning::Sndbuf(Side::Server)])
        )
    } else {
        // An owner group (--group-by process|cgroup) holds both sides.
        "its sockets' buffers, on both sides (group by port to see which side holds them)".into()
    }
}

/// How the holder of a group that makes orphans can stop making them, in
/// its proxy's terms when a proxy names the group (its setting that closes
/// with a reset: no orphan, the unsent data dropped), else generically.
pub(super) fn orphan_hint(w: &crate::doctor::Window, group: &str) -> String {
    let named = w.groups.get(group).and_then(|g| {
        let p = g.proxy.as_ref()?;
        Some((p, kinds::by_name(p.kind)?))
    });
    match named {
        Some((p, kind)) => match kind.no_linger {
            Some(setting) => format!(
                "{} closes connections whose peers stopped reading, with data unsent: `{setting}` in {} makes it reset them instead (the data is dropped, no orphan is left); or lower net.ipv4.tcp_orphan_retries so orphans end sooner",
                kind.display,
                match p.side {
                    Side::Client => format!("frontend {}", p.frontends.join(", ")),
                    Side::Server => format!("backend {}", p.backends().join(", ")),
                }
            ),
            None => format!(
                "{} closes connections with data unsent; lower net.ipv4.tcp_orphan_retries so orphans end sooner",
                kind.display
            ),
        },
        None => "its peers leave with data unsent; lower net.ipv4.tcp_orphan_retries so orphans end sooner, or have its program close such connections with a reset (SO_LINGER 0)".into(),
    }
}
