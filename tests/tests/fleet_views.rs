//! The packaged dashboard and alert rules against a fleet: three hosts
//! (namespaces, each with its own `netmem serve`) scraped by a real
//! Prometheus under their own `instance` names. Every query of the
//! dashboard parses with `promtool`, answers with series from that
//! Prometheus, and keeps `instance` in every series; the fleet row ranks
//! every host; the alert rules load, evaluate, and alert per host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netmem::output::prometheus::metrics::NAMES;
use netmem_tests::fleet::Fleet;
use netmem_tests::require_root;
use netmem_tests::serve::{dashboard_queries, poll, DashboardQuery};
use serde_json::Value;

/// The dashboard's row that ranks hosts against each other.
const FLEET_ROW: &str = "Fleet: every host, ranked";

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(path)
}

/// `expr` as Grafana sends it with the Host variable at `instance` (a
/// regex: `.*` is "All"): every template variable replaced.
fn substitute(expr: &str, instance: &str) -> String {
    let mut q = expr.to_string();
    for (var, value) in [
        ("${instance:regex}", instance),
        ("${instance}", instance),
        ("$instance", instance),
        ("$__rate_interval", "30s"),
        ("$__interval_ms", "15000"),
        ("$__interval", "15s"),
        ("$__range_ms", "300000"),
        ("$__range_s", "300"),
        ("$__range", "5m"),
    ] {
        q = q.replace(var, value);
    }
    assert!(!q.contains('$'), "a variable left in {expr:?}: {q}");
    q
}

/// The label lists of `expr`'s `keyword (...)` clauses (`by`, `on`).
fn clauses<'a>(expr: &'a str, keyword: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find(keyword).map(|i| from + i) {
        from = at + keyword.len();
        let before = expr[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = expr[from..].trim_start();
        if let Some(list) = rest.strip_prefix('(') {
            out.push(&list[..list.find(')').unwrap()]);
        }
    }
    out
}

/// Each metric selector of `expr`: the metric's name and its matchers
/// (the text between braces, empty without them).
fn selectors(expr: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find("netmem_").map(|i| from + i) {
        let end = expr[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(expr.len(), |i| at + i);
        let matchers = match expr[end..].strip_prefix('{') {
            Some(m) => &m[..m.find('}').unwrap()],
            None => "",
        };
        out.push((&expr[at..end], matchers));
        from = end;
    }
    out
}

/// `promtool check rules` on every query as a recording rule: promtool's
/// own parser reads each one.
fn promtool_parses(queries: &[(String, String)]) {
    let mut file = "groups:\n  - name: dashboard\n    rules:\n".to_string();
    for (i, (_, q)) in queries.iter().enumerate() {
        file += &format!(
            "      - record: netmem_dashboard:query_{i}\n        expr: |-\n          {q}\n"
        );
    }
    let path =
        std::env::temp_dir().join(format!("netmem-dashboard-{}.rules.yml", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let o = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool (Debian's prometheus package; run `cargo xtask setup`)");
    let _ = std::fs::remove_file(&path);
    assert!(
        o.status.success(),
        "promtool does not parse the dashboard's queries: {}{}\n{file}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `promtool query instant` against the fleet's Prometheus: the result
/// vector, in the order Prometheus gave it.
fn promtool_query(url: &str, q: &str) -> Vec<Value> {
    let o = Command::new("promtool")
        .args(["query", "instant", "-o", "json", url, q])
        .output()
        .expect("promtool");
    assert!(
        o.status.success(),
        "promtool query instant {q}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{q}: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    v.as_array()
        .unwrap_or_else(|| panic!("{q}: not a vector: {v}"))
        .clone()
}

fn instances(r: &[Value]) -> BTreeSet<String> {
    r.iter()
        .map(|s| {
            s["metric"]["instance"]
                .as_str()
                .unwrap_or_else(|| panic!("a series without instance: {s}"))
                .to_string()
        })
        .collect()
}

fn value(s: &Value) -> f64 {
    s["value"][1].as_str().unwrap().parse().unwrap()
}

/// The queries of the fleet row name no host and keep `instance`; the
/// others are per host: every selector filtered by the Host variable.
/// Either way every by- and on-clause keeps `instance`, and so does every
/// legend.
fn check_text(d: &DashboardQuery) {
    let expr = d.expr();
    let at = format!("panel {:?}: {expr}", d.panel);
    for list in clauses(expr, "by").into_iter().chain(clauses(expr, "on")) {
        assert!(
            list.split(',').any(|l| l.trim() == "instance"),
            "{at}: ({list}) adds hosts together"
        );
    }
    if d.target["format"] != "table" || d.legend().is_some() {
        let legend = d.legend().unwrap_or_default();
        assert!(
            legend.contains("{{instance}}"),
            "{at}: its legend {legend:?} does not say the host"
        );
    }
    let sel = selectors(expr);
    assert!(!sel.is_empty(), "{at}: reads no netmem metric");
    for (metric, matchers) in sel {
        // A metric netmem exports (so a query is never empty for a typo).
        assert!(NAMES.contains(&metric), "{at}: netmem exports no {metric}");
        let filtered = matchers.contains("instance=~\"$instance\"");
        match d.row.as_deref() == Some(FLEET_ROW) {
            true => assert!(
                !expr.contains("$instance"),
                "{at}: the fleet row ranks every host, whatever the Host variable"
            ),
            false => assert!(
                filtered,
                "{at}: {metric} is not filtered by the Host variable"
            ),
        }
    }
}

#[test]
fn dashboard_and_alerts_keep_the_fleets_hosts_apart() {
    require_root();
    let rules = packaging("prometheus/netmem.rules.yml");
    let mut fleet = Fleet::start(&[], Some(&rules));
    let url = fleet.url();
    let all: BTreeSet<String> = fleet.hosts.iter().map(|h| h.instance.to_string()).collect();

    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(packaging("grafana/netmem.json")).unwrap())
            .unwrap();
    // Valid for Grafana's import: a schema version, the data source and
    // Host variables (several hosts and All allowed).
    assert!(dashboard["schemaVersion"].as_u64() >= Some(36));
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("instance")["multi"], true);
    assert_eq!(var("instance")["includeAll"], true);
    // The fleet row comes first; panel ids are unique, rows' panels too.
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: Vec<u64> = panels
        .iter()
        .chain(
            panels
                .iter()
                .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
        )
        .map(|p| {
            p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("a panel without id: {p}"))
        })
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    assert_eq!(panels[0]["type"], "row");
    assert_eq!(panels[0]["title"], FLEET_ROW);

    let queries = dashboard_queries(&dashboard);
    let fleet_row: Vec<&DashboardQuery> = queries
        .iter()
        .filter(|d| d.row.as_deref() == Some(FLEET_ROW))
        .collect();
    assert!(fleet_row.len() >= 4, "the fleet row: {fleet_row:?}");
    for d in &queries {
        check_text(d);
    }

    // promtool parses every query, with the Host variable at All and at
    // one host.
    let one = "host-queued";
    let substituted: Vec<(String, String)> = queries
        .iter()
        .flat_map(|d| [".*", one].map(|i| (d.panel.clone(), substitute(d.expr(), i))))
        .collect();
    promtool_parses(&substituted);

    // Every query answers from the fleet's Prometheus, every series with its
    // host. A per-host query may read a metric of netmem's that this
    // fleet never has (HAProxy's names, owners without --owners, a group's
    // drops before any): then it is empty, and that metric has no series
    // at all here. The fleet row's queries read none such.
    let has_series = |metric: &str| {
        !fleet
            .prometheus
            .query(&format!("count({metric})"), None)
            .is_empty()
    };
    let mut answered = 0;
    let mut unexported = BTreeSet::new();
    for d in &queries {
        let q = substitute(d.expr(), ".*");
        let absent: Vec<&str> = selectors(d.expr())
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| !has_series(m))
            .collect();
        let in_fleet_row = d.row.as_deref() == Some(FLEET_ROW);
        assert!(
            !in_fleet_row || absent.is_empty(),
            "fleet row, {:?}: {q} reads {absent:?}, which no host exports",
            d.panel
        );
        let mut r = Vec::new();
        if absent.is_empty() {
            // increase() and rate() need a second scrape of a new series;
            // the fleet row answers for every host.
            poll(Duration::from_secs(60), || {
                r = promtool_query(&url, &q);
                match r.is_empty() || (in_fleet_row && instances(&r) != all) {
                    true => Err(format!(
                        "panel {:?}: {q} returns {r:?}; scrapes: {:?}",
                        d.panel,
                        fleet
                            .prometheus
                            .query("up or scrape_duration_seconds", None)
                    )),
                    false => Ok(()),
                }
            });
            answered += 1;
        } else {
            r = promtool_query(&url, &q);
            match r.is_empty() {
                true => {
                    unexported.insert(absent.join(" "));
                }
                // Its metric came meanwhile (a group's first drop).
                false => {
                    assert!(
                        absent.iter().all(|m| has_series(m)),
                        "{q}: series while {absent:?} has none? {r:?}"
                    );
                    answered += 1;
                }
            }
        }
        let hosts = instances(&r);
        assert!(hosts.is_subset(&all), "{q}: {hosts:?}");
        if in_fleet_row {
            assert_eq!(hosts, all, "fleet row, {:?}: {q}: {r:?}", d.panel);
        } else {
            // One host picked: its series alone, and some when All had
            // some of it.
            let q1 = substitute(d.expr(), one);
            poll(Duration::from_secs(30), || {
                let r1 = promtool_query(&url, &q1);
                let hosts1 = instances(&r1);
                assert!(
                    hosts1.is_empty() || hosts1 == BTreeSet::from([one.to_string()]),
                    "{q1}: {hosts1:?}"
                );
                match r1.is_empty() && hosts.contains(one) {
                    true => Err(format!("{q1}: no series, while All had {one}'s")),
                    false => Ok(()),
                }
            });
        }
    }
    eprintln!(
        "{answered} of {} queries answered; empty, their metric unexported by this fleet: {unexported:?}",
        queries.len()
    );

    // The fleet row's own questions.
    let fleet_query = |needle: &str| {
        let d = fleet_row
            .iter()
            .find(|d| d.expr().contains(needle))
            .unwrap_or_else(|| panic!("the fleet row has no query of {needle}"));
        promtool_query(&url, &substitute(d.expr(), ".*"))
    };
    // Hosts ranked by TCP memory against tcp_mem max, highest first: one
    // figure per host (the three share a kernel, so they are the same here).
    let ranked = fleet_query("netmem_tcp_memory_allocated_bytes");
    assert_eq!(ranked.len(), 3, "{ranked:?}");
    assert!(
        ranked.windows(2).all(|w| value(&w[0]) >= value(&w[1])),
        "not ranked: {ranked:?}"
    );
    assert!(
        ranked.iter().all(|s| (0.0..=1.0).contains(&value(s))),
        "{ranked:?}"
    );
    // Orphans against tcp_max_orphans: a fraction per host.
    let orphans = fleet_query("netmem_tcp_orphans");
    assert_eq!(instances(&orphans), all);
    // Aborts by cause per host: every cause at 0 from netmem's start.
    let aborts = fleet_query("netmem_aborts_on_memory_total");
    for h in &all {
        let causes: BTreeSet<&str> = aborts
            .iter()
            .filter(|s| s["metric"]["instance"] == h.as_str())
            .map(|s| s["metric"]["cause"].as_str().unwrap())
            .collect();
        assert!(
            causes.contains("orphans") && causes.contains("tcp_mem"),
            "{h}: {aborts:?}"
        );
    }
    // The top groups across hosts: the orphans' listener on host-orphans and
    // the stuck readers' on host-queued, each with its own host, hold most.
    let top = |r: &[Value]| {
        let mut top: Vec<(f64, String, String)> = r
            .iter()
            .map(|s| {
                let m = &s["metric"];
                (
                    value(s),
                    m["instance"].as_str().unwrap().into(),
                    m["group"].as_str().unwrap().into(),
                )
            })
            .collect();
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        top
    };
    let expected = BTreeSet::from(
        ["host-orphans", "host-queued"].map(|i| (i.to_string(), fleet.host(i).group.clone())),
    );
    let mut groups = Vec::new();
    // The orphans are made at once but their send queues fill as the peers'
    // windows allow: wait for the figures to settle into that order.
    poll(Duration::from_secs(60), || {
        groups = top(&fleet_query("netmem_group_memory_bytes"));
        let first_two: BTreeSet<(String, String)> = groups
            .iter()
            .take(2)
            .map(|(_, i, g)| (i.clone(), g.clone()))
            .collect();
        match first_two == expected && groups.len() <= 10 {
            true => Ok(()),
            false => Err(format!("top groups: {groups:?}")),
        }
    });
    // As promtool shows it (README quotes this).
    let shown = Command::new("promtool")
        .args(["query", "instant", &url])
        .arg(substitute(
            fleet_row
                .iter()
                .find(|d| d.expr().contains("netmem_group_memory_bytes"))
                .unwrap()
                .expr(),
            ".*",
        ))
        .output()
        .unwrap();
    eprintln!(
        "top groups across hosts:\n{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    // The packaged rules load and evaluate in the fleet's Prometheus.
    let rules_now = || -> Vec<Value> {
        let groups = fleet.prometheus.api("/api/v1/rules");
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect()
    };
    poll(Duration::from_secs(30), || {
        let rules = rules_now();
        assert!(rules.len() >= 10, "{rules:?}");
        assert!(
            rules.iter().all(|r| r["health"] != "err"),
            "a rule fails: {rules:?}"
        );
        match rules.iter().all(|r| r["health"] == "ok") {
            true => Ok(()),
            false => Err(format!("rules never evaluated: {rules:?}")),
        }
    });
    // Each alert's expression, evaluated now, is per host (NetmemDown's
    // "no target at all" aside, which names none).
    for r in rules_now() {
        let q = r["query"].as_str().unwrap();
        for s in fleet.prometheus.query(q, None) {
            assert!(
                s["metric"]["instance"].is_string() || r["name"] == "NetmemDown",
                "{}: {q} adds hosts together: {s}",
                r["name"]
            );
        }
    }
    // Whatever is pending or firing names its host.
    let active = |name: &str| -> Vec<Value> {
        let alerts = fleet.prometheus.api("/api/v1/alerts");
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| name.is_empty() || a["labels"]["alertname"] == name)
            .cloned()
            .collect()
    };
    for a in active("") {
        assert!(
            a["labels"]["instance"].is_string(),
            "an alert of no host: {a}"
        );
    }

    // One host's netmem stops: NetmemDown is pending for that host alone.
    let calm = fleet
        .hosts
        .iter()
        .position(|h| h.instance == "host-calm")
        .unwrap();
    drop(fleet.hosts.remove(calm));
    poll(Duration::from_secs(60), || {
        let down = active("NetmemDown");
        let hosts: Vec<&str> = down
            .iter()
            .map(|a| a["labels"]["instance"].as_str().unwrap_or("(none)"))
            .collect();
        match hosts == ["host-calm"] {
            true => Ok(()),
            false => Err(format!("NetmemDown: {down:?}")),
        }
    });
    for a in active("") {
        assert!(
            a["labels"]["instance"].is_string(),
            "an alert of no host: {a}"
        );
    }
}

/// The panels of a collapsed row are in its own `panels`, those of an
/// expanded one follow it: both are the row's, and a panel above every
/// row is in none.
#[test]
fn dashboard_queries_reads_every_row() {
    let target = |e: &str| serde_json::json!({"expr": e, "refId": "A"});
    let dashboard = serde_json::json!({"panels": [
        {"type": "timeseries", "title": "top", "targets": [target("a")]},
        {"type": "row", "title": "open", "collapsed": false, "panels": []},
        {"type": "table", "title": "t", "targets": [target("b"), target("c")]},
        {"type": "row", "title": "shut", "collapsed": true, "panels": [
            {"type": "timeseries", "title": "inner", "targets": [target("d")]}
        ]},
    ]});
    let got: Vec<(Option<String>, String, String)> = dashboard_queries(&dashboard)
        .iter()
        .map(|d| (d.row.clone(), d.panel.clone(), d.expr().to_string()))
        .collect();
    let row = |r: &str| Some(r.to_string());
    assert_eq!(
        got,
        [
            (None, "top".into(), "a".into()),
            (row("open"), "t".into(), "b".into()),
            (row("open"), "t".into(), "c".into()),
            (row("shut"), "inner".into(), "d".into()),
        ]
    );
}
