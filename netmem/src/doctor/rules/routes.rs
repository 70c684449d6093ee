//! The route cache's knobs and exceptions.

use crate::doctor::{Finding, Severity, State};

/// What each route knob does on the running kernel.
fn route_knob(family: &str, knob: &str, version: (u32, u32)) -> &'static str {
    match (family, knob) {
        (
            "ipv4",
            "gc_thresh" | "max_size" | "gc_interval" | "gc_min_interval" | "gc_min_interval_ms"
            | "gc_elasticity",
        ) => "no effect: the IPv4 route cache it tuned was removed in 3.6",
        ("ipv4", "gc_timeout") => "expiry of redirect exceptions (not memory)",
        ("ipv4" | "ipv6", "mtu_expires") => "expiry of PMTU exceptions (not memory)",
        ("ipv6", "max_size") if version >= (6, 3) => {
            "no effect since 6.3 (also 6.1.73+ and 5.15.147+)"
        }
        ("ipv6", "max_size") => "bounds IPv6 cached routes on this kernel (not socket memory)",
        ("ipv6", _) if knob.starts_with("gc_") => {
            "IPv6 route garbage collection (not socket memory)"
        }
        _ => "not socket memory",
    }
}

/// The kernel's defaults of the route knobs the rule judges (as the files
/// show them: seconds, or -1 for ~0), every one a kernel since 3.6 has
/// had. A knob at its default says nothing about this host.
fn route_default(family: &str, knob: &str) -> &'static [&'static str] {
    match (family, knob) {
        ("ipv4", "gc_thresh") => &["-1"],
        ("ipv4", "max_size") => &["2147483647"],
        ("ipv4", "gc_timeout") => &["300"],
        ("ipv4", "gc_interval") => &["60"],
        ("ipv4" | "ipv6", "gc_min_interval") => &["0"],
        ("ipv4" | "ipv6", "gc_min_interval_ms") => &["500"],
        ("ipv4", "gc_elasticity") => &["8"],
        ("ipv4" | "ipv6", "mtu_expires") => &["600"],
        ("ipv6", "gc_thresh") => &["1024"],
        // INT_MAX since 6.3, when its check went.
        ("ipv6", "max_size") => &["4096", "2147483647"],
        ("ipv6", "gc_timeout") => &["60"],
        ("ipv6", "gc_interval") => &["30"],
        ("ipv6", "gc_elasticity") => &["9"],
        _ => &[],
    }
}

/// Route knobs that are not socket memory and that nobody tunes for it
/// (PMTU floors, redirect and ICMP rate limits): never listed.
fn route_knob_unjudged(knob: &str) -> bool {
    knob.starts_with("redirect_")
        || knob.starts_with("error_")
        || knob == "min_pmtu"
        || knob == "min_adv_mss"
        || knob == "skip_notify_on_dev_down"
        || knob == "flush"
}

/// Said only when there is something to say: a route knob set away from
/// its default (the old route cache's knobs are what an incident's
/// operators reach for), `rhash_entries=` on the boot line, a
/// `secret_interval` knob (a kernel before 3.6), or route exceptions that
/// grew in the window.
pub fn routes(s: &State) -> Option<Finding> {
    let version = s.host.version().unwrap_or((0, 0));
    let w = &s.window;
    let changed: Vec<(&str, &str, &String)> = s
        .host
        .sysctls
        .iter()
        .filter_map(|(k, v)| {
            let (fam, knob) = if let Some(x) = k.strip_prefix("net.ipv4.route.") {
                ("ipv4", x)
            } else {
                ("ipv6", k.strip_prefix("net.ipv6.route.")?)
            };
            let normal = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (!route_knob_unjudged(knob)
                && knob != "secret_interval"
                && !route_default(fam, knob).contains(&normal.as_str()))
            .then_some((fam, knob, v))
        })
        .collect();
    let secret = s.host.sysctls.get("net.ipv4.route.secret_interval");
    let grew = w.route_exceptions_inserted > 0;
    if changed.is_empty() && s.host.rhash_entries.is_none() && secret.is_none() && !grew {
        return None;
    }
    let mut f = Finding::new(
        "routes",
        Severity::Info,
        if changed.is_empty() {
            format!(
                "Route exceptions: {} added in the window; none of them is socket memory",
                w.route_exceptions_inserted
            )
        } else {
            format!(
                "Route knobs set away from their defaults: none affects socket memory; {} route exceptions added in the window",
                w.route_exceptions_inserted
            )
        },
    );
    for (fam, knob, v) in &changed {
        let what = route_knob(fam, knob, version);
        let d = route_default(fam, knob);
        f.ev(
            format!("net.{fam}.route.{knob} = {v}"),
            if d.is_empty() {
                what.to_string()
            } else {
                format!("{what} (default {})", d.join(" or "))
            },
        );
    }
    if let Some(v) = secret {
        f.ev(
            format!("net.ipv4.route.secret_interval = {v}"),
            "the route cache's hash secret (a kernel before 3.6; gone since)",
        );
    }
    if let Some(v) = &s.host.rhash_entries {
        f.ev("rhash_entries= (boot)", format!("{v}: a no-op since 3.6"));
    }
    if grew {
        if let Some(n) = w.rt6_cached {
            f.ev("IPv6 cached routes (rt6_stats)", n);
        }
        for (dst, n) in w.route_exception_dsts.iter().take(5) {
            f.ev(format!("exceptions to {dst}"), n);
        }
    }
    f.explanation = "The IPv4 route cache was replaced in 3.6 by next-hop exceptions (PMTU and redirects), kept per next hop and bounded by the kernel; the old gc_* knobs remain as files that do nothing. Messages about route hash chains come from kernels before 3.6.".into();
    f.action.push(
        "no change: leave the route.* knobs alone; size socket memory with the findings above"
            .into(),
    );
    Some(f)
}
