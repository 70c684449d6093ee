//! Socket pressure local to a cgroup: its memory controller is at its
//! limit while the host's TCP memory is not, so TCP treats its sockets
//! (and only its) as under memory pressure
//! (`mem_cgroup_under_socket_pressure` in `tcp_under_memory_pressure`):
//! smaller windows, collapsed queues, slow or dropped connections that no
//! host figure explains.

use crate::doctor::cgroups::CgroupMem;
use crate::doctor::{bytes, Finding, Scope, Severity, State};
use crate::model::memcg::Local;

/// One finding per cgroup whose sockets were under pressure of their own
/// in the window, the one nearest its limit first.
pub fn cgroup_pressure(s: &State) -> Vec<Finding> {
    let mut out: Vec<Finding> = s
        .window
        .cgroups
        .cgroups
        .iter()
        .filter_map(|(path, c)| finding(s, path, c))
        .collect();
    out.sort_by(|a, b| b.nearness.total_cmp(&a.nearness));
    out
}

/// `pod P / container C` when the path names them.
fn who(c: &CgroupMem) -> Option<String> {
    let parts: Vec<String> = [("pod", &c.pod), ("container", &c.container)]
        .iter()
        .filter_map(|(what, v)| Some(format!("{what} {}", v.as_ref()?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" / "))
}

fn finding(s: &State, path: &str, c: &CgroupMem) -> Option<Finding> {
    let worst: &Local = c.worst_local.as_ref()?;
    let first = c.first_local.as_ref().unwrap_or(worst);
    let limit = &worst.limit;
    let shown_path = path.escape_debug().to_string();
    let named = match who(c) {
        Some(w) => format!("{shown_path} ({w})"),
        None => shown_path.clone(),
    };
    let inc = c.events_increase();
    let oom_killed = inc.oom_kill.unwrap_or(0) > 0;
    let mut f = Finding::new(
        "cgroup.socket_pressure",
        if oom_killed {
            Severity::Critical
        } else {
            Severity::Warn
        },
        format!("socket pressure local to cgroup {named}"),
    );
    f.fired = true;
    f.scope = Scope::Group;
    f.group = c.groups.first().cloned();
    f.nearness = limit.ratio();
    // Below the host's own limits, the limits come first.
    f.priority = 1;
    let pct = |a: u64, b: u64| {
        if b == 0 {
            "?".to_string()
        } else {
            format!("{:.0}%", a as f64 * 100.0 / b as f64)
        }
    };
    let setter = if limit.cgroup == path {
        "its own memory.max".to_string()
    } else {
        format!("memory.max of its ancestor {}", limit.cgroup.escape_debug())
    };
    f.ev(
        "memory.current vs the limit that applies",
        format!(
            "{} of {} ({}), {setter}",
            bytes(limit.current),
            bytes(limit.max),
            pct(limit.current, limit.max)
        ),
    );
    f.ev(
        "socket memory charged to it (memory.stat sock)",
        bytes(c.last.sock.unwrap_or(worst.sock)),
    );
    let mut events: Vec<String> = inc
        .named()
        .iter()
        .filter_map(|(name, n)| Some(format!("{name} +{}", (*n)?)))
        .collect();
    if events.is_empty() {
        events.push("not read".into());
    }
    f.ev("memory.events in the window", events.join(", "));
    if let Some((at, inc)) = c.limit_events_increase().filter(|(at, _)| *at != path) {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| format!("+{v}"));
        f.ev(
            format!(
                "memory.events of {} (where the limit is)",
                at.escape_debug()
            ),
            format!("max {}, high {}", n(inc.max), n(inc.high)),
        );
    }
    let page = s.page();
    let h = first.host;
    f.ev(
        "host TCP memory vs tcp_mem[1] (pressure)",
        format!(
            "{} pages ({}) vs {} pages ({}): {}",
            h.allocated_pages,
            bytes(h.allocated_pages.saturating_mul(page)),
            h.tcp_mem_pages[1],
            bytes(h.tcp_mem_pages[1].saturating_mul(page)),
            pct(h.allocated_pages, h.tcp_mem_pages[1])
        ),
    );
    if s.window.intervals > 1 {
        f.ev(
            "intervals under local pressure",
            format!("{} of {}", c.local_intervals, s.window.intervals),
        );
    }
    if !c.groups.is_empty() {
        f.ev("its groups", c.groups.join(", "));
    }
    f.explanation = format!(
        "The kernel charges socket buffers to the socket's memory cgroup. With {setter} nearly used up (or pushing back: memory.events max/high rising), TCP treats this cgroup's sockets as under memory pressure (mem_cgroup_under_socket_pressure): receive windows shrink, queues are collapsed and pruned, new buffer growth is refused. The host's tcp_mem is nowhere near, so host-wide figures show nothing; the connections of this cgroup alone slow down or drop."
    );
    // A limit with room for what its sockets hold again, in whole MiB.
    const MIB: u64 = 1 << 20;
    let sock = c.last.sock.unwrap_or(worst.sock);
    let raise = limit
        .max
        .saturating_add(sock.max(limit.max / 4))
        .div_ceil(MIB)
        .saturating_mul(MIB);
    let setter_path = limit.cgroup.escape_debug();
    match &c.pod {
        Some(pod) => f.action.push(format!(
            "raise the memory limit of pod {pod} (its containers' resources.limits.memory) so that {setter_path} allows at least {} ({raise} bytes)",
            bytes(raise)
        )),
        None => f.action.push(format!(
            "raise the limit: echo {raise} > <cgroup2 mount>{setter_path}/memory.max (or the unit's MemoryMax={raise}), {} instead of {}",
            bytes(raise),
            bytes(limit.max)
        )),
    }
    f.action.push(
        "or make its sockets hold less: lower net.ipv4.tcp_rmem / tcp_wmem max in its network namespace (per namespace since 4.15), or the application's SO_RCVBUF / SO_SNDBUF and its number of connections".into(),
    );
    Some(f)
}
