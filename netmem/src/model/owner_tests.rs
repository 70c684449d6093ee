//! The owner rule's tests (`model::owner`), apart to keep that file short.

use super::*;
use crate::model::group::Aggregator;
use netmem_common::{Counter, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_TIME_WAIT};
use std::collections::HashSet;

fn sock(lport: u16, rport: u16, state: u8, inode: u32, cgroup: u64, wmem: u32) -> SockRecord {
    SockRecord {
        family: netmem_common::AF_INET,
        protocol: netmem_common::IPPROTO_TCP,
        full: state != TCP_TIME_WAIT,
        state,
        local: "127.0.0.1".parse().unwrap(),
        lport,
        remote: "127.0.0.1".parse().unwrap(),
        rport,
        inode,
        cookie: inode as u64,
        rmem_alloc: 0,
        rcvbuf: 0,
        wmem_alloc: 0,
        sndbuf: 0,
        fwd_alloc: 0,
        wmem_queued: wmem,
        drops: 0,
        cgroup_id: cgroup,
        netns: 7,
        rqueue: 0,
        wqueue: 0,
        uid: 0,
    }
}

/// Port 80: a listener held by pid 10 (cgroup 100), an accepted socket
/// held by pid 20 with more bytes (cgroup 200), an orphan (no inode,
/// cgroup 200), a TIME_WAIT (no inode, no cgroup).
fn pass() -> (Aggregator, OwnerTable) {
    let listening: HashSet<u16> = [80].into();
    let mut agg = Aggregator {
        sockets: Some(Vec::new()),
        ..Default::default()
    };
    for r in [
        sock(80, 0, TCP_LISTEN, 1, 100, 0),
        sock(80, 5000, TCP_ESTABLISHED, 2, 200, 9000),
        sock(80, 5001, TCP_FIN_WAIT1, 0, 200, 4000),
        sock(80, 5002, TCP_TIME_WAIT, 0, 0, 0),
    ] {
        agg.add_socket(&r, &listening);
    }
    let src = OwnerTable::known(
        &[(1, &[10]), (2, &[20, 21])],
        &[(10, "haproxy"), (20, "worker"), (21, "worker")],
        &[(100, "/system.slice/haproxy.service"), (200, "/shop")],
    );
    (agg, src)
}

#[test]
fn the_listener_names_the_main_owner_and_shares_are_listed() {
    let (mut agg, src) = pass();
    let sockets = agg.sockets.take().unwrap();
    let a = attribute(
        &mut agg.groups,
        &sockets,
        &src,
        &mut |_| None,
        GroupBy::Port,
        &Names::default(),
    );
    let (g, row) = agg.groups.iter().next().unwrap();
    let o = row.owners.as_ref().unwrap();
    // pid 20 holds the most bytes, but pid 10 holds the listener.
    let main = &a.event_owner[g];
    assert_eq!(
        (main.pid, main.comm.as_deref()),
        (Some(10), Some("haproxy"))
    );
    assert_eq!(
        main.cgroup.as_ref().unwrap().path,
        "/system.slice/haproxy.service"
    );
    assert_eq!(o.processes[0].pid, 20);
    assert_eq!(o.processes[0].bytes, 9000);
    assert_eq!(o.processes.len(), 3);
    // The orphan keeps its cgroup; only full sockets count as unheld.
    assert_eq!(
        (o.cgroups[0].cgroup.path.as_str(), o.cgroups[0].bytes),
        ("/shop", 13000)
    );
    assert_eq!(o.unheld, 1);
    assert!(a.group_owner.is_empty());
}

#[test]
fn group_by_cgroup_charges_sockets_to_their_own_and_counts_to_the_main_owner() {
    let (mut agg, src) = pass();
    let sockets = agg.sockets.take().unwrap();
    let port_group = *agg.groups.keys().next().unwrap();
    let names = Names::default();
    agg.attribution = Some(attribute(
        &mut agg.groups,
        &sockets,
        &src,
        &mut |_| None,
        GroupBy::Cgroup,
        &names,
    ));
    let mut counts = netmem_common::GroupCounters::default();
    counts.counts[Counter::MemAborts as usize] = 3;
    agg.add_counts(port_group, &counts);
    let total: u64 = agg.groups.values().map(|r| r.mem.total()).sum();
    agg.regroup(GroupBy::Cgroup, &Default::default(), &names);
    let rows: BTreeMap<String, GroupRow> = agg
        .groups
        .iter()
        .map(|(k, r)| (names.group_name(k), r.clone()))
        .collect();
    let shop = rows
        .iter()
        .find(|(n, _)| n.starts_with("cgroup:/shop"))
        .unwrap()
        .1;
    let proxy = rows
        .iter()
        .find(|(n, _)| n.starts_with("cgroup:/system.slice/haproxy.service"))
        .unwrap()
        .1;
    assert_eq!(
        (shop.mem.sockets, shop.mem.orphans, shop.mem.total()),
        (2, 1, 13000)
    );
    // The listener and the TIME_WAIT mini-socket (no cgroup of its
    // own) go to the main owner, and so do the kernel's counts.
    assert_eq!((proxy.mem.listeners, proxy.mem.time_wait), (1, 1));
    assert_eq!(proxy.count(Counter::MemAborts), 3);
    assert_eq!(shop.count(Counter::MemAborts), 0);
    // Nothing is lost in the regrouping.
    assert_eq!(
        agg.groups.values().map(|r| r.mem.total()).sum::<u64>(),
        total
    );
    assert_eq!(
        agg.groups.keys().map(|k| k.netns).collect::<Vec<_>>(),
        vec![7, 7]
    );
}

#[test]
fn only_the_port_groups_asked_for_are_regrouped() {
    let (mut agg, src) = pass();
    let sockets = agg.sockets.take().unwrap();
    let port_group = *agg.groups.keys().next().unwrap();
    let names = Names::default();
    let mut a = attribute(
        &mut agg.groups,
        &[],
        &src,
        &mut |_| None,
        GroupBy::Process,
        &names,
    );
    assert!(!sockets.is_empty());
    // `--port 81`: port 80's sockets were left out of the pass's
    // owners, and its kernel counts must not land in `(none)`.
    a.filter = crate::model::Filter {
        ports: vec![81],
        ..Default::default()
    };
    agg.attribution = Some(a);
    let mut counts = netmem_common::GroupCounters::default();
    counts.counts[Counter::MemAborts as usize] = 3;
    agg.add_counts(port_group, &counts);
    agg.regroup(GroupBy::Process, &Default::default(), &names);
    assert!(
        agg.groups.is_empty(),
        "{:?}",
        agg.groups
            .keys()
            .map(|k| names.group_name(k))
            .collect::<Vec<_>>()
    );
}

#[test]
fn events_go_to_the_recorded_owner_then_the_groups() {
    let (mut agg, src) = pass();
    let sockets = agg.sockets.take().unwrap();
    let g = *agg.groups.keys().next().unwrap();
    let a = attribute(
        &mut agg.groups,
        &sockets,
        &src,
        &mut |_| None,
        GroupBy::Process,
        &Names::default(),
    );
    let closer = EventOwner {
        pid: Some(21),
        comm: None,
        cgroup: None,
        cgroup_id: Some(200),
        via: OwnerVia::Closer,
    };
    let k = event_group(g, Some(&closer), Some(&a), GroupBy::Process);
    assert_eq!((k.kind, owner_id(&k)), (GROUP_PROCESS, 21));
    let k = event_group(g, None, Some(&a), GroupBy::Process);
    assert_eq!(owner_id(&k), 10);
    let k = event_group(g, Some(&closer), Some(&a), GroupBy::Cgroup);
    assert_eq!((k.kind, owner_id(&k)), (GROUP_CGROUP, 200));
    // A group no pass has seen: nobody yet.
    let unseen = GroupKey { port: 9, ..g };
    assert_eq!(
        owner_id(&event_group(unseen, None, Some(&a), GroupBy::Process)),
        0
    );
    assert_eq!(event_group(g, None, Some(&a), GroupBy::Port), g);
}
