use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netmem_common::{Counter, GroupKey};

use super::metrics::{encode_http, encode_interval, host_wide_series, Format, NAMES};
use super::*;
use crate::kernel::btf::MEMORY_DROP_REASONS;
use crate::model::event::{Abort, AbortCause, Direction, FigureSource, ProtoMem, Protocol};
use crate::model::group::{GroupMem, GroupRow};
use crate::model::{Body, Event, Interval};

fn listen(port: u16) -> GroupKey {
    GroupKey::classify(2, port, true, &[0; 16], 0)
}

/// A group holding `bytes` of send queue, with `established` connections
/// counted this interval.
fn row(bytes: u64, established: u64) -> GroupRow {
    let mut r = GroupRow {
        mem: GroupMem {
            sockets: 1,
            wmem_queued: bytes,
            ..Default::default()
        },
        ..Default::default()
    };
    r.counts[Counter::Established as usize] = established;
    r
}

fn interval(groups: Vec<(GroupKey, GroupRow)>) -> Interval {
    Interval::live_for_tests(groups)
}

fn exceed(g: GroupKey) -> Event {
    Event {
        ts: SystemTime::now(),
        hook: None,
        tier: None,
        group: Some(g),
        sock: None,
        owner: None,
        proxy: None,
        body: Body::ExceedBufLimit {
            allocated_pages: 1,
            direction: Direction::Send,
            mem: ProtoMem {
                protocol: Protocol::Tcp,
                pages: [1, 2, 3],
            },
        },
    }
}

fn sink(max: usize) -> (MetricsSink, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    (
        MetricsSink::new(shared.clone(), max, Duration::from_secs(5), Duration::ZERO),
        shared,
    )
}

fn series<'a>(e: &'a Exposition, name: &str) -> Option<&'a GroupSeries> {
    e.groups.iter().find(|g| g.group == name)
}

fn established_sum(e: &Exposition) -> u64 {
    e.groups
        .iter()
        .map(|g| g.totals.count(Counter::Established))
        .sum()
}

#[test]
fn cap_keeps_the_largest_groups_and_sums_the_rest_into_other() {
    let (mut s, shared) = sink(100);
    let groups: Vec<_> = (1..=500u16)
        .map(|p| (listen(p), row(p as u64 * 1000, 1)))
        .collect();
    s.interval(&interval(groups)).unwrap();
    let e = shared.latest().unwrap();
    assert_eq!(e.groups.len(), 101);
    assert_eq!(e.groups_seen, 500);
    assert_eq!(e.groups_folded, 400);
    // The largest first, `other` last with the 400 smallest summed.
    assert_eq!(e.groups[0].group, "listen:500");
    assert!(series(&e, "listen:401").is_some());
    assert!(series(&e, "listen:400").is_none());
    let other = series(&e, "other").unwrap();
    assert_eq!(other.kind, "other");
    assert_eq!(other.mem.wmem_queued, (1..=400u64).sum::<u64>() * 1000);
    assert_eq!(other.mem.sockets, 400);
    assert_eq!(other.totals.count(Counter::Established), 400);
    assert_eq!(established_sum(&e), 500);
}

#[test]
fn counters_only_grow_and_nothing_is_lost_when_groups_change_places() {
    let (mut s, shared) = sink(1);
    let (a, b) = (listen(1), listen(2));
    s.interval(&interval(vec![(a, row(100, 3)), (b, row(10, 2))]))
        .unwrap();
    let e = shared.latest().unwrap();
    assert_eq!(
        series(&e, "listen:1")
            .unwrap()
            .totals
            .count(Counter::Established),
        3
    );
    assert_eq!(
        series(&e, "other")
            .unwrap()
            .totals
            .count(Counter::Established),
        2
    );
    // b overtakes a: a's series end, what it counted since goes to
    // `other`, which never decreases; b's events go to b's own label.
    s.event(&exceed(a)).unwrap();
    s.event(&exceed(b)).unwrap();
    s.interval(&interval(vec![(a, row(10, 4)), (b, row(100, 1))]))
        .unwrap();
    let e = shared.latest().unwrap();
    assert!(series(&e, "listen:1").is_none());
    let bs = series(&e, "listen:2").unwrap();
    assert_eq!(bs.totals.count(Counter::Established), 1);
    assert_eq!(bs.totals.exceeded.get("send"), Some(&1));
    let other = series(&e, "other").unwrap();
    assert_eq!(other.totals.count(Counter::Established), 2 + 4);
    assert_eq!(other.totals.exceeded.get("send"), Some(&1));
    assert_eq!(
        established_sum(&e),
        3 + 2 + 4 + 1 - 3,
        "a's published 3 left with its series"
    );
}

#[test]
fn a_vanished_group_is_no_longer_exported() {
    let (mut s, shared) = sink(10);
    let (a, b) = (listen(1), listen(2));
    s.interval(&interval(vec![(a, row(100, 1)), (b, row(10, 1))]))
        .unwrap();
    assert!(series(&shared.latest().unwrap(), "listen:2").is_some());
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let e = shared.latest().unwrap();
    assert!(series(&e, "listen:2").is_none());
    assert!(series(&e, "other").is_none(), "nothing was folded");
    assert_eq!(e.groups.len(), 1);
    // A group keeps its cumulative counts while it stays.
    assert_eq!(
        series(&e, "listen:1")
            .unwrap()
            .totals
            .count(Counter::Established),
        1
    );
}

#[test]
fn drops_and_events_are_counted_by_label() {
    let (mut s, shared) = sink(10);
    let a = listen(1);
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let mut drop = exceed(a);
    drop.body = Body::SkbDrop {
        reason: "PROTO_MEM".into(),
        truesize: 1,
        len: 1,
    };
    s.event(&drop).unwrap();
    s.event(&drop).unwrap();
    s.event(&exceed(a)).unwrap();
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let e = shared.latest().unwrap();
    let t = &series(&e, "listen:1").unwrap().totals;
    assert_eq!(t.drops.get("PROTO_MEM"), Some(&2));
    assert_eq!(t.exceeded.get("send"), Some(&1));
    assert_eq!(e.events.get("skb_drop"), Some(&2));
}

/// The family names of an exposition in the Prometheus text format.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

fn full_exposition() -> Arc<Exposition> {
    let (mut s, shared) = sink(10);
    s.host(&crate::sources::host::Host {
        mem_total_bytes: Some(1 << 30),
        ..Default::default()
    })
    .unwrap();
    s.coverage(&[]).unwrap();
    let mut i = interval(vec![(listen(1), row(100, 1))]);
    i.context.tcp_mem_pages = Some([1, 2, 3]);
    i.context.udp_mem_pages = Some([1, 2, 3]);
    i.context.max_orphans = Some(4096);
    i.context.orphans_census = Some(1);
    i.context.page_size = 4096;
    s.interval(&i).unwrap();
    shared.latest().unwrap()
}

#[test]
fn every_family_is_listed_in_names_and_every_name_is_encoded() {
    let e = full_exposition();
    let mut text = encode_interval(e, Format::Text);
    let incidents = crate::output::incidents::Incidents::new("/nonexistent".into());
    text += &encode_http(&Default::default(), Some(&incidents), Format::Text);
    let found = families(&text);
    let listed: BTreeSet<String> = NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, listed);
}

#[test]
fn openmetrics_ends_with_eof_once_and_counts_are_integers() {
    let e = full_exposition();
    let mut om = encode_interval(e.clone(), Format::OpenMetrics);
    om += &encode_http(&Default::default(), None, Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1);
    let text = encode_interval(e, Format::Text);
    assert!(text.contains("netmem_group_memory_bytes{group=\"listen:1\",kind=\"listen\",queue=\"wmem_queued\"} 100\n"), "{text}");
    assert!(
        text.contains("netmem_tcp_memory_limit_bytes{threshold=\"max\"} 12288\n"),
        "{text}"
    );
}

#[test]
fn readme_documents_every_metric() {
    let readme = include_str!("../../../../README.md");
    let missing: Vec<_> = NAMES
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README's metric table lacks {missing:?}"
    );
}

#[test]
fn accept_header_picks_the_format() {
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    assert_eq!(
        Format::negotiate(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )),
        Format::OpenMetrics
    );
}

/// Every `netmem_*` name the packaged rules and dashboard use is exported.
#[test]
fn packaging_uses_only_exported_metrics() {
    let files = [
        (
            "rules",
            include_str!("../../../../packaging/prometheus/netmem.rules.yml"),
        ),
        (
            "rule tests",
            include_str!("../../../../packaging/prometheus/netmem.rules.test.yml"),
        ),
        (
            "dashboard",
            include_str!("../../../../packaging/grafana/netmem.json"),
        ),
    ];
    let dashboard: serde_json::Value = serde_json::from_str(files[2].1).expect("dashboard JSON");
    assert!(dashboard["panels"].as_array().unwrap().len() >= 5);
    for (what, text) in files {
        let mut rest = text;
        while let Some(i) = rest.find("netmem_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            // Alert names and the like are not metrics.
            if name == "netmem_" {
                continue;
            }
            assert!(
                NAMES.contains(&name.as_str()),
                "{what} uses {name}, which netmem does not export"
            );
        }
    }
}

#[test]
fn a_group_gone_from_the_pass_keeps_its_counts_under_its_name() {
    let (mut s, shared) = sink(10);
    let (a, b) = (listen(1), listen(2));
    s.interval(&interval(vec![(a, row(100, 0)), (b, row(10, 0))]))
        .unwrap();
    // b's last sockets are aborted: the event comes, the group is gone.
    s.event(&exceed(b)).unwrap();
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let e = shared.latest().unwrap();
    let bs = series(&e, "listen:2").expect("b's count kept its name");
    assert_eq!(bs.totals.exceeded.get("send"), Some(&1));
    assert_eq!(bs.mem.total(), 0);
    assert!(series(&e, "other").is_none());
    // With nothing more to say, it leaves the next interval.
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    assert!(series(&shared.latest().unwrap(), "listen:2").is_none());
}

#[test]
fn a_vanished_group_lingers_with_its_counts_then_leaves() {
    let shared = Arc::new(Shared::default());
    // 5 s intervals, 12 s of linger: three more intervals.
    let mut s = MetricsSink::new(
        shared.clone(),
        10,
        Duration::from_secs(5),
        Duration::from_secs(12),
    );
    let (a, b) = (listen(1), listen(2));
    s.interval(&interval(vec![(a, row(100, 0)), (b, row(10, 2))]))
        .unwrap();
    for _ in 0..3 {
        s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
        let e = shared.latest().unwrap();
        let bs = series(&e, "listen:2").expect("lingers");
        assert_eq!(bs.totals.count(Counter::Established), 2);
        assert_eq!(bs.mem.total(), 0);
    }
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    assert!(series(&shared.latest().unwrap(), "listen:2").is_none());
}

fn abort(g: Option<GroupKey>, cause: AbortCause) -> Event {
    let mut e = exceed(g.unwrap_or(listen(0)));
    e.group = g;
    e.body = Body::AbortOnMemory(Abort {
        cause,
        via: None,
        orphans: None,
        orphans_source: FigureSource::Kernel,
        shift: None,
        max_orphans: None,
        max_orphans_source: FigureSource::Kernel,
        allocated_pages: 0,
        mem: ProtoMem {
            protocol: Protocol::Tcp,
            pages: [1, 2, 3],
        },
        sock_min_sndbuf: 0,
        kernel_log: None,
        cause_inferred: false,
    });
    e
}

fn text_of(shared: &Shared) -> String {
    encode_interval(shared.latest().unwrap(), Format::Text)
}

/// The host-wide counters exist at 0, for every label value netmem knows,
/// from the first publication (before any interval or event): an alert's
/// `increase()` then sees their first event as 0 -> 1.
#[test]
fn host_wide_counters_exist_at_zero_from_the_start() {
    let (mut s, shared) = sink(10);
    s.coverage(&[]).unwrap();
    let text = text_of(&shared);
    let expected = host_wide_series();
    assert_eq!(
        expected.len(),
        AbortCause::ALL.len() + 2 + MEMORY_DROP_REASONS.len() + 1
    );
    assert!(expected.contains(&"netmem_memory_drops_total{reason=\"PROTO_MEM\"}".to_string()));
    assert!(
        expected.contains(&"netmem_aborts_on_memory_total{cause=\"orphans+tcp_mem\"}".to_string())
    );
    for l in &expected {
        assert!(text.contains(&format!("\n{l} 0\n")), "no {l} 0 in {text}");
    }
}

/// A group's first interval may be the one with its first abort: its own
/// series is born at 1, but the host-wide one went 0 -> 1. Events with no
/// group count host-wide too.
#[test]
fn a_group_born_with_its_abort_moves_the_host_wide_counter() {
    let (mut s, shared) = sink(10);
    s.coverage(&[]).unwrap();
    s.interval(&interval(vec![(listen(1), row(100, 0))]))
        .unwrap();
    let before = text_of(&shared);
    assert!(before.contains("netmem_aborts_on_memory_total{cause=\"orphans\"} 0\n"));
    let b = listen(2);
    s.event(&abort(Some(b), AbortCause::Orphans)).unwrap();
    s.event(&abort(None, AbortCause::TcpMem)).unwrap();
    let mut rq = exceed(b);
    rq.group = None;
    rq.body = Body::RcvqueueFull { truesize: 1 };
    s.event(&rq).unwrap();
    s.interval(&interval(vec![(listen(1), row(100, 0)), (b, row(10, 0))]))
        .unwrap();
    let after = text_of(&shared);
    for l in [
        "netmem_aborts_on_memory_total{cause=\"orphans\"} 1\n",
        "netmem_aborts_on_memory_total{cause=\"tcp_mem\"} 1\n",
        "netmem_aborts_on_memory_total{cause=\"unknown\"} 0\n",
        "netmem_receive_queue_full_total 1\n",
        "netmem_group_aborts_on_memory_total{group=\"listen:2\",kind=\"listen\",cause=\"orphans\"} 1\n",
    ] {
        assert!(after.contains(l), "no {l:?} in {after}");
    }
}

/// The last abort's time per cause: 0 for every cause before any, then
/// the latest event's time of that cause (an older event met later does
/// not move it back).
#[test]
fn the_last_abort_of_each_cause_has_its_time() {
    use std::time::{Duration, UNIX_EPOCH};
    let (mut s, shared) = sink(10);
    s.coverage(&[]).unwrap();
    let before = text_of(&shared);
    for c in AbortCause::ALL {
        let l = format!(
            "netmem_aborts_on_memory_last_timestamp_seconds{{cause=\"{}\"}} 0.0\n",
            c.name()
        );
        assert!(before.contains(&l), "no {l:?} in {before}");
    }
    let mut late = abort(None, AbortCause::Orphans);
    late.ts = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let mut early = abort(Some(listen(3)), AbortCause::Orphans);
    early.ts = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    s.event(&late).unwrap();
    s.event(&early).unwrap();
    s.interval(&interval(vec![(listen(3), row(10, 0))]))
        .unwrap();
    let after = text_of(&shared);
    assert!(
        after.contains(
            "netmem_aborts_on_memory_last_timestamp_seconds{cause=\"orphans\"} 2000000000.0\n"
        ),
        "{after}"
    );
    assert!(
        after.contains("netmem_aborts_on_memory_last_timestamp_seconds{cause=\"tcp_mem\"} 0.0\n"),
        "{after}"
    );
}

/// Per group, every cause of abort is at 0 from the group's first
/// interval, so a group that exists before its first abort has a 0 before
/// it; buffer limits and drops have series per group only once counted (a
/// reason netmem does not know by name too), and at 0 host-wide.
#[test]
fn group_aborts_are_at_zero_for_every_cause() {
    let (mut s, shared) = sink(10);
    let a = listen(1);
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let text = text_of(&shared);
    let l = "group=\"listen:1\",kind=\"listen\"";
    for c in AbortCause::ALL {
        let want = format!(
            "netmem_group_aborts_on_memory_total{{{l},cause=\"{}\"}} 0\n",
            c.name()
        );
        assert!(text.contains(&want), "no {want:?} in {text}");
    }
    assert!(!text.contains("netmem_group_memory_drops_total{"), "{text}");
    assert!(
        !text.contains("netmem_group_buffer_limit_exceeded_total{"),
        "{text}"
    );
    let mut drop = exceed(a);
    drop.body = Body::SkbDrop {
        reason: "4242".into(),
        truesize: 1,
        len: 1,
    };
    s.event(&drop).unwrap();
    s.interval(&interval(vec![(a, row(100, 0))])).unwrap();
    let text = text_of(&shared);
    for want in [
        format!("netmem_group_memory_drops_total{{{l},reason=\"4242\"}} 1\n"),
        "netmem_memory_drops_total{reason=\"4242\"} 1\n".to_string(),
        "netmem_memory_drops_total{reason=\"NOMEM\"} 0\n".to_string(),
    ] {
        assert!(text.contains(&want), "no {want:?} in {text}");
    }
}
