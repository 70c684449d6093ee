//! Accept queues, and what each namespace's own counters say. A listener
//! whose accept queue is full drops the next SYN and the next completed
//! handshake (ListenOverflows, ListenDrops) while socket memory looks
//! fine: the neighbour of a memory incident that looks like one to the
//! clients (timeouts, retries).

use crate::doctor::window::{AcceptFigures, Window};
use crate::doctor::{Finding, Scope, Severity, State};
use crate::sources::proxy::kinds;

/// Findings about at most this many listen groups, the worst first.
const MAX_GROUPS: usize = 3;

/// The namespace a group's counters are under: the `@NAME` its name
/// carries (`--netns all`), else the traced one (the only namespace line,
/// or netmem's own).
fn namespace_of<'a>(w: &'a Window, group: &str) -> Option<&'a str> {
    let name = match group.rsplit_once('@') {
        Some((_, ns)) => ns,
        None if w.netns.len() == 1 => return w.netns.keys().next().map(|s| s.as_str()),
        None => crate::model::names::OWN_NAME,
    };
    w.netns.get_key_value(name).map(|(k, _)| k.as_str())
}

/// The backlog to set: room for twice the queue that overflowed, or for
/// what was dropped on top of it, as a power of two (what listen() callers
/// and HAProxy's examples use), at most the kernel's 16-bit-era ceiling
/// people keep (65535).
fn suggested_backlog(per_listener: u64, dropped: u64) -> u64 {
    let want = (per_listener * 2).max(per_listener + dropped).max(128);
    want.next_power_of_two().min(65535)
}

/// A listen group's accept queue full, near full, or dropping.
pub fn accept_queue(s: &State) -> Vec<Finding> {
    let w = &s.window;
    let mut listening: Vec<(&String, &AcceptFigures)> = w
        .groups
        .iter()
        .filter_map(|(n, g)| Some((n, g.accept.as_ref()?)))
        .filter(|(_, a)| a.peak_backlog > 0 || a.drops_grew > 0)
        .filter(|(_, a)| a.full_readings > 0 || a.drops_grew > 0 || a.peak_fill() >= 0.9)
        .collect();
    listening.sort_by(|a, b| {
        b.1.drops_grew
            .cmp(&a.1.drops_grew)
            .then(b.1.peak_fill().total_cmp(&a.1.peak_fill()))
            .then(a.0.cmp(b.0))
    });
    listening
        .into_iter()
        .take(MAX_GROUPS)
        .map(|(name, a)| one(s, name, a))
        .collect()
}

fn one(s: &State, name: &str, a: &AcceptFigures) -> Finding {
    let w = &s.window;
    let listeners = a.listeners.max(1);
    let per_listener = a.peak_backlog / listeners;
    let dropping = a.drops_grew > 0;
    let severity = if dropping {
        Severity::Critical
    } else if a.full_readings > 0 {
        Severity::Warn
    } else {
        Severity::Info
    };
    let state = if dropping {
        format!("dropping connections: {} dropped", a.drops_grew)
    } else if a.full_readings > 0 {
        "full".to_string()
    } else {
        "nearly full".to_string()
    };
    let mut f = Finding::new(
        "accept_queue",
        severity,
        format!(
            "accept queue of {} {state} ({} queued for a backlog of {} {})",
            w.label(name),
            a.peak_queue,
            a.peak_backlog,
            super::at_peak(w)
        ),
    );
    f.fired = dropping;
    f.group = Some(name.to_string());
    f.scope = Scope::Group;
    f.nearness = a.peak_fill();
    f.ev(
        format!("queued / backlog {}", super::at_peak(w)),
        format!(
            "{} / {} ({})",
            a.peak_queue,
            a.peak_backlog,
            crate::format::count(a.listeners, "listener", "listeners")
        ),
    );
    if w.intervals > 1 {
        f.ev(
            "queued / backlog now",
            format!("{} / {}", a.queue, a.backlog),
        );
        f.ev(
            "readings with a full queue",
            format!("{} of {}", a.full_readings, w.intervals),
        );
        f.ev(
            "connections its listeners dropped in the window (their own count)",
            a.drops_grew,
        );
    }
    if let Some(d) = a.drops {
        f.ev("dropped since its listeners were created", d);
    }
    let netns = namespace_of(w, name);
    if let Some((ns, n)) = netns.and_then(|ns| Some((ns, w.netns.get(ns)?))) {
        for c in ["ListenOverflows", "ListenDrops"] {
            if let Some(v) = n.grew.get(c) {
                f.ev(format!("{c} in namespace {ns} in the window"), v);
            }
        }
    }
    // The listener's namespace's own (a netns line carries it); the host
    // line's is the traced namespace's, right only for a group of it.
    let in_traced = !name.contains('@');
    let somaxconn = netns.and_then(|ns| w.netns.get(ns)?.somaxconn).or_else(|| {
        in_traced
            .then(|| s.host.number("net.core.somaxconn"))
            .flatten()
    });
    if let Some(m) = somaxconn {
        f.ev(
            match netns {
                Some(ns) => format!("net.core.somaxconn in namespace {ns}"),
                None => "net.core.somaxconn".to_string(),
            },
            m,
        );
    }
    let proxy = w
        .groups
        .get(name)
        .and_then(|g| g.proxy.as_ref())
        .and_then(|p| kinds::by_name(p.kind));
    let new = suggested_backlog(per_listener, a.drops_grew);
    let capped = somaxconn.is_some_and(|m| m > 0 && per_listener == m);
    // A sysctl of another namespace is set inside it.
    let (in_ns, exec) = match (name.rsplit_once('@'), netns) {
        (Some(_), Some(ns)) => (
            format!(" in namespace {ns}"),
            format!("ip netns exec {ns} "),
        ),
        _ => (String::new(), String::new()),
    };
    f.explanation = "A listener's accept queue holds connections the kernel completed and the application has not accepted yet. Once it holds more than the backlog, the kernel drops the next completed handshake and the next SYN (ListenOverflows, ListenDrops): clients see timeouts and retransmitted SYNs, while socket memory looks fine. The backlog is listen()'s argument capped at net.core.somaxconn (per namespace); a queue that stays full means the application accepts more slowly than connections arrive.".into();
    if capped {
        f.action.push(format!(
            "the kernel capped the backlog at net.core.somaxconn ({per_listener}){in_ns}: `{exec}sysctl -w net.core.somaxconn={new}` (the application may have asked for more; if it asked for less, raise its backlog too)"
        ));
    } else {
        let limit = match somaxconn {
            Some(m) => format!(
                "the application's listen() backlog ({per_listener} per listener) is the limit, below net.core.somaxconn ({m}){in_ns}"
            ),
            None => format!(
                "the application's listen() backlog ({per_listener} per listener), or net.core.somaxconn{in_ns} if it is lower, is the limit"
            ),
        };
        f.action.push(format!(
            "{limit}: raise it to {new} (room for twice the queue, or for what was dropped)"
        ));
        if somaxconn.is_some_and(|m| m < new) {
            f.action.push(format!(
                "and net.core.somaxconn with it: `{exec}sysctl -w net.core.somaxconn={new}`"
            ));
        }
    }
    match proxy {
        Some(k) => {
            f.action.push(format!(
                "{}: {} (set it to {new}); a queue that stays full means {} is not accepting: {}",
                k.display, k.accept.backlog, k.display, k.accept.stops_accepting
            ));
        }
        None => f.action.push(
            "a queue that stays full means the process accepts too slowly (its accept loop, or a connection limit it reached): the backlog only buys time".into(),
        ),
    }
    f
}

/// Counters that say a namespace dropped or aborted something, with what
/// each points to.
const DROP_COUNTERS: &[(&str, &str)] = &[
    ("TCPAbortOnMemory", "aborts on memory: see the tcp_mem / orphans findings"),
    ("ListenOverflows", "accept queues overflowed: see accept_queue"),
    ("TCPReqQFullDrop", "SYN queue full with syncookies off: net.ipv4.tcp_max_syn_backlog, or net.ipv4.tcp_syncookies=1"),
    ("TCPRcvQDrop", "segments dropped because receive memory could not be charged (tcp_mem, or the socket's cgroup)"),
    ("TCPBacklogDrop", "segments dropped on a full socket backlog"),
    ("PruneCalled", "receive queues pruned to fit their buffer"),
    ("RcvPruned", "segments dropped after pruning failed"),
    ("OfoPruned", "out-of-order queues dropped"),
];

/// Each namespace whose own counters show drops or aborts in the window:
/// where they happened, which the host-wide figures cannot say.
pub fn netns_counters(s: &State) -> Vec<Finding> {
    let w = &s.window;
    let mut out = Vec::new();
    for (ns, n) in &w.netns {
        let grew: Vec<(&str, u64, &str)> = DROP_COUNTERS
            .iter()
            .filter_map(|(c, what)| Some((*c, *n.grew.get(*c)?, *what)))
            .filter(|(_, v, _)| *v > 0)
            .collect();
        if grew.is_empty() {
            continue;
        }
        let aborts = grew.iter().any(|(c, _, _)| *c == "TCPAbortOnMemory");
        let total: u64 = grew.iter().map(|(_, v, _)| v).sum();
        let mut f = Finding::new(
            "netns.counters",
            if aborts {
                Severity::Warn
            } else {
                Severity::Info
            },
            format!(
                "namespace {ns}: {}",
                grew.iter()
                    .map(|(c, v, _)| format!("{c} +{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        f.scope = Scope::Group;
        f.nearness = total as f64 / (total as f64 + 100.0);
        if let Some(i) = n.inode {
            f.ev("namespace inode", i);
        }
        for (c, v, what) in &grew {
            f.ev(format!("{c} in the window"), format!("{v} ({what})"));
        }
        f.explanation = "The kernel counts these per network namespace: a pod's drops and aborts are in the pod's namespace, not the host's. Read with --netns all, each namespace's counters are its own.".into();
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn backlog_suggestions() {
        assert_eq!(super::suggested_backlog(4, 14), 128);
        assert_eq!(super::suggested_backlog(511, 3), 1024);
        assert_eq!(super::suggested_backlog(4096, 100_000), 65535);
    }
}
