//! scrape: `GET /metrics` of `netmem serve` at 1000 groups against a 404
//! on the same server (the HTTP cost alone).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::common::{fetch, median, pair_ratios, percentile, spread};
use crate::Opts;

/// `netmem serve` at 1000 groups: the latency of a scrape, cold (the first
/// after a new interval: the exposition is encoded) and overall, against
/// `GET /nothing` (a 404: `/` became the live page, which renders groups
/// and findings) on the same server and connection pattern.
pub(crate) fn scrape(o: &Opts) -> Result<Value> {
    use netmem_tests::serve::{sample, Serve};
    let ns = Netns::new("bench-scrape");
    // Held open until the end of the part.
    let load = ns.load(&[
        "backends", "--port", "18400", "--count", "1000", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let mut serve = Serve::start(&[
        "--netns",
        &ns.name,
        "--interval",
        "200ms",
        "--max-groups",
        "1000",
    ]);
    serve.wait_for("netmem_groups ");
    let t0 = Instant::now();
    let groups = loop {
        let g = sample(&serve.metrics(), "netmem_groups").unwrap_or(0.0);
        if g >= 1000.0 {
            break g;
        }
        ensure!(t0.elapsed() < Duration::from_secs(30), "only {g} groups");
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = if o.quick { 100 } else { 400 };
    let (mut metrics, mut index, mut encode) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for i in 0..n {
        // Alternate the arms; 250 ms apart so most scrapes follow a new
        // interval and encode it afresh.
        let (ms, body) = fetch(serve.addr, "/metrics")?;
        metrics.push(ms);
        bytes = body.len();
        let body = String::from_utf8_lossy(&body);
        ensure!(body.starts_with("HTTP/1.1 200"), "scrape {i} failed");
        if let Some(e) = sample(&body, "netmem_scrape_duration_seconds") {
            if i > 0 {
                encode.push(e * 1e3);
            }
        }
        let (ms, body) = fetch(serve.addr, "/nothing")?;
        ensure!(body.starts_with(b"HTTP/1.1 404"));
        index.push(ms);
        std::thread::sleep(Duration::from_millis(250));
    }
    let cpu = netmem_tests::cpu_seconds(serve.child.id());
    let (st, _) = serve.stop();
    ensure!(st.success(), "netmem serve exited {st}");
    drop(load);
    let r = json!({
        "groups": groups,
        "scrapes": n,
        "exposition_bytes": bytes,
        "metrics_ms_median": median(&metrics),
        "metrics_ms_p99": percentile(&metrics, 0.99),
        "metrics_ms_max": percentile(&metrics, 1.0),
        "index_ms_median": median(&index),
        "server_encode_ms_median": median(&encode),
        "server_encode_ms_max": percentile(&encode, 1.0),
        "ratio_metrics_to_index": median(&metrics) / median(&index),
        "ratio_metrics_to_index_spread": spread(&pair_ratios(&metrics, &index)),
        "serve_cpu_s": cpu,
    });
    println!(
        "\nscrape at {groups} groups ({bytes} bytes): GET /metrics median {:.2} ms, p99 {:.2} ms, max {:.2} ms; a 404 median {:.2} ms (ratio {:.1}); server encode median {:.2} ms, max {:.2} ms",
        median(&metrics),
        percentile(&metrics, 0.99),
        percentile(&metrics, 1.0),
        median(&index),
        median(&metrics) / median(&index),
        median(&encode),
        percentile(&encode, 1.0),
    );
    Ok(r)
}
