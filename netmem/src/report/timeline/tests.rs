//! Series, statistics and caps of a timeline, from lines read as a
//! recording's are.

use super::*;
use serde_json::{json, Value};

/// Lines as a recording's are read.
fn read(l: &[Value]) -> Vec<Line> {
    l.iter().map(|v| line(v.clone())).collect()
}

fn line(v: Value) -> Line {
    Line::read(v).expect("a line of the contract")
}

fn lines() -> Vec<Value> {
    vec![
        json!({"type":"host","ts":"2026-11-29T10:00:00Z","host":{"kernel_release":"6.1","page_size":4096,"mem_total_bytes":null,"sysctls":{"net.ipv4.tcp_wmem":"4096 16384 4194304"},"nstat":{},"rhash_entries":null,"netns":"rig"}}),
        json!({"type":"probes","ts":"2026-11-29T10:00:00Z","hooks":[{"hook":"orphans","tier":"fentry"}]}),
        json!({"type":"context","ts":"2026-11-29T10:00:01Z","tcp_mem_pages":[10,20,30],"memory_allocated_pages":5,"orphans":0,"max_orphans":100,"page_size":4096,"memory_pressure":false}),
        json!({"type":"group","ts":"2026-11-29T10:00:01Z","group":"listen:80","rmem_bytes":0,"wmem_queued_bytes":1000,"fwd_alloc_bytes":0,"orphans":0}),
        json!({"type":"event","ts":"2026-11-29T10:00:01.5Z","event":"abort_on_memory","group":"listen:80","cause":"orphans"}),
        json!({"type":"context","ts":"2026-11-29T10:00:02Z","tcp_mem_pages":[10,20,30],"memory_allocated_pages":7,"orphans":4,"max_orphans":100,"page_size":4096,"memory_pressure":true}),
        json!({"type":"group","ts":"2026-11-29T10:00:02Z","group":"listen:80","rmem_bytes":0,"wmem_queued_bytes":3000,"fwd_alloc_bytes":0,"orphans":4}),
        json!({"type":"group","ts":"2026-11-29T10:00:02Z","group":"backend:10.0.0.1:9000","rmem_bytes":500,"wmem_queued_bytes":0,"fwd_alloc_bytes":0,"orphans":0}),
        json!({"type":"summary","ts":"2026-11-29T10:00:02Z","events":1,"lost_events":0}),
    ]
}

#[test]
fn series_and_statistics() {
    let tl = Timeline::from_lines(&read(&lines()));
    assert_eq!(tl.points.len(), 2);
    assert_eq!(tl.points[1].t, 1.0);
    assert_eq!(
        tl.points[0].tcp_mem,
        Some([10 * 4096, 20 * 4096, 30 * 4096])
    );
    assert_eq!(tl.points[1].allocated, 7 * 4096);
    assert_eq!(tl.hooks, [("orphans".to_string(), "fentry".to_string())]);
    let g = tl.groups();
    assert_eq!(g[0].group, "listen:80");
    assert_eq!(g[0].memory.peak, 3000.0);
    assert_eq!(g[0].memory.mean, 2000.0);
    assert_eq!(g[0].orphans.peak, 4.0);
    assert_eq!(g[0].events.get("abort_on_memory"), Some(&1));
    assert_eq!(g[1].memory.mean, 250.0, "absent intervals count as 0");
    assert_eq!(tl.aborts()[0].cause.as_deref(), Some("orphans"));
    // The namespace's total: both groups, named as the host line says.
    assert_eq!(tl.points[1].namespaces["rig"], 3500);
    assert_eq!(tl.namespaces()[0].0, "rig");
    assert_eq!(tl.namespaces()[0].1.peak, 3500.0);
    assert_eq!(tl.pressure_spans(), [(0.0, 1.0)]);
    let rates = tl.event_rates();
    assert_eq!(rates["abort_on_memory"][1], (1.0, 1.0));
}

#[test]
fn all_sockets_orphans_never_below_a_group() {
    // sockstat said 8 before the dump found 9 on listen:8080.
    let mut l = lines();
    l[5]["orphans"] = json!(3);
    l[6]["orphans"] = json!(9);
    assert_eq!(Timeline::from_lines(&read(&l)).points[1].orphans, 9);
    l[5]["orphans_census"] = json!(11);
    assert_eq!(Timeline::from_lines(&read(&l)).points[1].orphans, 11);
}

fn at(i: u64) -> String {
    humantime::format_rfc3339_millis(
        humantime::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
            + std::time::Duration::from_millis(i * 1000),
    )
    .to_string()
}

/// Past MAX_POINTS intervals, neighbours merge: peaks, the duration
/// and every event stay; the report says the rest are upper bounds.
#[test]
fn a_long_recording_is_held_merged() {
    let n = 5 * MAX_POINTS as u64 + 3;
    let mut tl = Timeline::default();
    for i in 0..n {
        tl.feed(&line(
            json!({"type":"event","ts":at(i),"event":"skb_drop","group":"listen:80"}),
        ));
        tl.feed(&line(json!({"type":"context","ts":at(i),"memory_allocated_pages":i % 7,"memory_pressure":i == 77})));
        tl.feed(&line(json!({"type":"group","ts":at(i),"group":"listen:80","rmem_bytes":i % 1000,"orphans":u64::from(i == 4321)})));
    }
    tl.finish();
    assert!(tl.points.len() < MAX_POINTS && tl.points.len() > MAX_POINTS / 4);
    assert_eq!(tl.intervals, n);
    assert_eq!(tl.points.iter().map(|p| p.span).sum::<u64>(), n);
    assert_eq!(tl.duration(), (n - 1) as f64);
    assert_eq!(tl.interval_s, 1.0);
    let g = &tl.groups()[0];
    assert_eq!((g.memory.peak, g.orphans.peak), (999.0, 1.0));
    // Each merged interval counts at its peak: an upper bound.
    let mean = (0..n).map(|i| (i % 1000) as f64).sum::<f64>() / n as f64;
    assert!(
        g.memory.mean >= mean && g.memory.mean < mean * 1.02,
        "{:?}",
        g.memory
    );
    assert_eq!(g.events["skb_drop"], n);
    let rates = &tl.event_rates()["skb_drop"];
    let counted: f64 = rates
        .iter()
        .zip(&tl.points)
        .enumerate()
        .map(|(i, ((_, r), p))| {
            r * if i == 0 {
                1.0
            } else {
                p.t - tl.points[i - 1].t
            }
        })
        .sum();
    assert_eq!(counted.round() as u64, n);
    assert_eq!(tl.global(|p| p.allocated).peak, 6.0 * 4096.0);
    assert_eq!(tl.pressure_spans().len(), 1);
    assert!(tl.dropped()[0].starts_with(&format!("{n} intervals are drawn as ")));
}

/// Past MAX_GROUPS, groups are summed into `other`: each interval's
/// total stays whole.
#[test]
fn groups_past_the_cap_are_summed_into_other() {
    let mut l = vec![json!({"type":"context","ts":at(0)})];
    for i in 0..MAX_GROUPS + 5 {
        l.push(
            json!({"type":"group","ts":at(0),"group":format!("g{i}"),"rmem_bytes":10,"orphans":1}),
        );
    }
    let tl = Timeline::from_lines(&read(&l));
    let p = &tl.points[0];
    assert_eq!(p.groups.len(), MAX_GROUPS + 1);
    assert_eq!(
        p.groups["other"],
        GroupPoint {
            memory: 50,
            orphans: 5,
            ..Default::default()
        }
    );
    assert_eq!(
        p.namespaces[UNNAMED_NAMESPACE],
        10 * (MAX_GROUPS as u64 + 5)
    );
    assert_eq!(p.orphans, MAX_GROUPS as u64 + 5);
    assert_eq!(
        tl.dropped(),
        [format!(
            "5 groups past the first {MAX_GROUPS} were summed into \"other\""
        )]
    );
}

/// An event counts in the first interval that ends at or after it,
/// whether it comes before that interval's line or after.
#[test]
fn events_fall_in_their_interval() {
    let l = vec![
        json!({"type":"event","ts":at(0),"event":"x"}),
        json!({"type":"context","ts":at(1)}),
        json!({"type":"event","ts":at(2),"event":"x"}),
        json!({"type":"event","ts":at(4),"event":"x"}),
        json!({"type":"context","ts":at(3)}),
        // Late: written after the interval it belongs to.
        json!({"type":"event","ts":at(2),"event":"x"}),
        json!({"type":"context","ts":at(5)}),
        // After the last interval: not in any.
        json!({"type":"event","ts":at(9),"event":"x"}),
    ];
    let tl = Timeline::from_lines(&read(&l));
    let counts: Vec<u64> = tl.points.iter().map(|p| p.events["x"]).collect();
    assert_eq!(counts, [1, 2, 1]);
    assert_eq!(tl.events_recorded, 5);
}

#[test]
fn p95_of_twenty() {
    let v: Vec<f64> = (1..=20).map(f64::from).collect();
    let s = Stats::of(&v);
    assert_eq!((s.peak, s.p95, s.mean), (20.0, 19.0, 10.5));
}

#[test]
fn weighted_statistics_count_each_interval() {
    let s = Stats::weighted(vec![(1.0, 19), (5.0, 1)]);
    assert_eq!((s.peak, s.p95, s.mean), (5.0, 1.0, 24.0 / 20.0));
    assert_eq!(Stats::weighted(vec![]), Stats::default());
}
