//! The table of groups, and its owner cells (also `top`'s).

use netmem_common::{Counter, GroupKey};

use crate::format::{columns, human_bytes, Shown};
use crate::model::group::GroupRow;
use crate::model::names::Names;

/// The interval's event counts shown as columns, with their headers.
const COUNT_COLUMNS: [(&str, Counter); 6] = [
    ("EXCEED", Counter::ExceedBufLimit),
    ("RQFULL", Counter::RcvqueueFull),
    ("ABORT", Counter::MemAborts),
    ("SKBDROP", Counter::SkbDrops),
    ("NEW", Counter::Established),
    ("CLOSED", Counter::Closed),
];

/// The table of groups. Names (groups, proxies, processes, cgroups) are
/// [`Shown`]: escaped, and at most [`crate::format::NAME_MAX`] columns each, so a
/// row is one line of bounded width whatever others named their things.
/// Groups are named by `names`.
pub fn table(rows: &[(GroupKey, GroupRow)], with_counts: bool, named: &Names) -> String {
    // Wide enough for the longest name (IPv6 backends run past 28).
    let names: Vec<String> = rows.iter().map(|(g, _)| named.group_name(g)).collect();
    let w = names
        .iter()
        .map(|n| Shown(n).width())
        .max()
        .unwrap_or(0)
        .max(28);
    // The proxy's name for each group, when a proxy names any.
    let labels: Vec<String> = rows
        .iter()
        .map(|(_, r)| r.proxy.as_ref().map_or("-".into(), |p| p.label()))
        .collect();
    let pw = rows.iter().any(|(_, r)| r.proxy.is_some()).then(|| {
        labels
            .iter()
            .map(|l| Shown(l).width())
            .max()
            .unwrap_or(0)
            .max(5)
    });
    let mut s = format!("{:<w$}", "GROUP");
    if let Some(pw) = pw {
        s += &format!(" {:<pw$}", "PROXY");
    }
    s += &format!(
        " {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "SOCKS",
        "ORPH",
        "RMEM",
        crate::output::SEND_QUEUE_COLUMN,
        "FWD",
        "ORPH_B",
        "DROPS"
    );
    if with_counts {
        for (h, _) in COUNT_COLUMNS {
            s += &format!(" {h:>w$}", w = h.len().max(6));
        }
    }
    let owners = rows.iter().any(|(_, r)| r.owners.is_some());
    let procs: Vec<String> = rows
        .iter()
        .map(|(_, r)| match &r.owners {
            Some(w) => process_cell(w),
            None => "-".into(),
        })
        .collect();
    let procw = procs.iter().map(|p| columns(p)).max().unwrap_or(0).max(24);
    // Only when a group has a listener: queued/backlog, `!` when full.
    let accept = rows.iter().any(|(_, r)| r.mem.listeners > 0);
    if accept {
        s += &format!(" {:>11}", "ACCEPTQ");
    }
    let memcg = rows
        .iter()
        .any(|(g, _)| g.kind == netmem_common::GROUP_CGROUP);
    if memcg {
        s += &format!(" {:>10}", "MEMCG_SOCK");
    }
    if owners {
        s += &format!(" {:<procw$} {}", "PROCESS", "CGROUP");
    }
    s.push('\n');
    for ((((g, r), name), label), proc) in rows.iter().zip(&names).zip(&labels).zip(&procs) {
        let m = &r.mem;
        s += &format!("{:<w$}", Shown(name));
        if let Some(pw) = pw {
            s += &format!(" {:<pw$}", Shown(label));
        }
        s += &format!(
            " {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6}",
            m.sockets,
            m.orphans,
            human_bytes(m.rmem),
            human_bytes(m.wmem_queued),
            human_bytes(m.fwd_alloc),
            human_bytes(m.orphan_bytes),
            m.drops
        );
        if with_counts {
            for (h, c) in COUNT_COLUMNS {
                s += &format!(" {:>w$}", r.count(c), w = h.len().max(6));
            }
        }
        if accept {
            s += &format!(" {:>11}", accept_cell(m));
        }
        if memcg {
            let v = r.owners.as_ref().and_then(|w| {
                let id = crate::model::owner::owner_id(g);
                w.cgroups.iter().find(|c| c.cgroup.id == id)?.memcg_sock
            });
            s += &format!(" {:>10}", v.map_or("-".to_string(), human_bytes));
        }
        if let (true, Some(w)) = (owners, &r.owners) {
            // The cell is already shown: pad it in columns, not chars.
            let pad = procw.saturating_sub(columns(proc));
            s += &format!(" {proc}{:pad$} {}", "", cgroup_cell(w));
        }
        s.push('\n');
    }
    s
}

/// A group's accept queues: `queued/backlog`, `!` when a listener's is
/// full (the kernel drops the next handshake); `-` without a listener.
pub fn accept_cell(m: &crate::model::group::GroupMem) -> String {
    if m.listeners == 0 {
        return "-".into();
    }
    let full = if m.accept_full > 0 { "!" } else { "" };
    format!("{}/{}{full}", m.accept_queue, m.accept_backlog)
}

/// `haproxy[812]`, `+N` more holders after it; the name [`Shown`].
pub fn process_cell(w: &crate::model::owner::Owners) -> String {
    let Some(p) = w.processes.first() else {
        return "-".into();
    };
    let more = w.processes.len() as u64 - 1 + w.more_processes;
    let mut s = format!("{}[{}]", Shown(&p.comm), p.pid);
    if more > 0 {
        s += &format!(" +{more}");
    }
    s
}

/// The largest cgroup's path ([`Shown`]), with its container or pod when
/// it has one.
pub fn cgroup_cell(w: &crate::model::owner::Owners) -> String {
    let Some(c) = w.cgroups.first() else {
        return "-".into();
    };
    let mut s = Shown(&c.cgroup.path).to_string();
    if let Some(id) = &c.cgroup.container {
        s += &format!(" (container {id})");
    } else if let Some(pod) = &c.cgroup.pod {
        s += &format!(" (pod {pod})");
    }
    let more = w.cgroups.len() as u64 - 1 + w.more_cgroups;
    if more > 0 {
        s += &format!(" +{more}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ipv6_names_keep_columns_aligned() {
        let a6: [u8; 16] = "2001:db8:1234:5678:9abc:def0:1234:5678"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let g = GroupKey::classify(netmem_common::AF_INET6, 40000, false, &a6, 9001);
        let t = table(
            &[
                (g, GroupRow::default()),
                (GroupKey::UNATTRIBUTED, GroupRow::default()),
            ],
            false,
            &Names::default(),
        );
        let widths: Vec<usize> = t.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
    }

    #[test]
    fn table_has_count_columns_when_live() {
        let mut row = GroupRow::default();
        row.counts[Counter::MemAborts as usize] = 3;
        let t = table(&[(GroupKey::UNATTRIBUTED, row)], true, &Names::default());
        assert!(t.lines().next().unwrap().ends_with("CLOSED"));
        assert!(t.contains("unattributed"));
    }
}
