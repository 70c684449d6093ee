//! The per-namespace families (`netmem_netns_*`): each namespace's own TCP
//! counters (the kernel keeps them per namespace), labelled by the
//! namespace's name as groups show it. One series per namespace read:
//! the traced one, or with `--netns all` every one with TCP sockets.

use prometheus_client::metrics::MetricType;

use super::families::{Families, Fmt, Num};
use crate::model::netns::NETNS_COUNTERS;
use crate::output::prometheus::Exposition;

pub(super) fn netns(f: &mut Families, e: &Exposition) -> Fmt {
    let spaces = e.global.as_ref().map_or(&[][..], |g| &g.netns[..]);
    f.labelled(
        "netns",
        "A network namespace netmem reads counters in: its name (as groups show it) and inode. Join on netns.",
        None,
        MetricType::Info,
        spaces.iter().map(|s| {
            let inode = s.figures.inum.to_string();
            ([("netns", s.name.clone()), ("inode", inode)], Num::from(1))
        }),
    )?;
    f.labelled(
        "netns_somaxconn",
        "The namespace's net.core.somaxconn: the cap on every listen() backlog in it.",
        None,
        MetricType::Gauge,
        spaces.iter().filter_map(|s| {
            Some((
                [("netns", s.name.as_str())],
                Num::from(s.figures.somaxconn?),
            ))
        }),
    )?;
    for c in NETNS_COUNTERS {
        f.labelled(
            &format!("netns_{}", c.metric),
            &format!(
                "{} ({} {}, the namespace's own count since it was created).",
                capitalised(c.help),
                c.section,
                c.name
            ),
            None,
            MetricType::Counter,
            spaces.iter().filter_map(|s| {
                let v = *s.figures.totals.get(c.name)?;
                Some(([("netns", s.name.as_str())], Num::from(v)))
            }),
        )?;
    }
    Ok(())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
