//! pipeline: synthetic events through netmem's real ring buffer and
//! consumer loop: the highest lossless rate, and loss accounted when
//! overloaded.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use netmem_tests::Netns;
use serde_json::{json, Value};

use crate::Opts;

pub(crate) fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One pipeline run: the producer thread (CPU 0) makes getppid() calls, each
/// of which streams `batch` synthetic events, paced to `rate` events/s (or
/// unpaced when None); netmem's trace loop consumes on CPU 1.
/// A reader of netmem's output that falls behind, like a terminal or a
/// congested pipe: 100 ms stalls for every megabyte.
#[derive(Default)]
pub(crate) struct SlowPipe(usize);

impl Write for SlowPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 >= 1 << 20 {
            self.0 = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn pipeline_run(
    ns: &str,
    rate: Option<f64>,
    secs: f64,
    batch: u32,
    event_limit: u64,
) -> Result<(u64, u64, u64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    pin_to_cpu(1);
    let opts = netmem::engine::Options {
        command: "netmem-bench",
        netns: netmem::sources::netns::Netns::open(Some(ns))?,
        all_netns: false,
        owners: false,
        group_by: Default::default(),
        time_wait: false,
        interval: Duration::from_secs(1),
        duration: Some(Duration::from_secs_f64(secs + 0.5)),
        filter: Default::default(),
        event_limit,
        max_tier: netmem::hooks::Tier::Fentry,
        census_budget: netmem::sources::census::Budget::EveryPass,
        census: None,
        proxy: netmem::sources::proxy::ProxySpec::off(),
        host_refresh: None,
    };
    let producer_time = Arc::new(AtomicU64::new(0));
    let pt = producer_time.clone();
    // The JSON sink over a discarding writer. With event_limit 0 every
    // event is read and counted but none formatted (what `trace` does with
    // events past its per-interval limit); with the maximum limit, every
    // event is decoded and formatted, which overloads the reader.
    let mut sink = if event_limit == 0 {
        netmem::output::sink(netmem::output::Format::Json, std::io::sink(), 0)
    } else {
        netmem::output::sink(netmem::output::Format::Json, SlowPipe::default(), 0)
    };
    let summary = rt.block_on(netmem::engine::run_with(opts, sink.as_mut(), move |p| {
        p.attach_synthetic(libc::SYS_getppid as u32, batch)?;
        std::thread::spawn(move || {
            pin_to_cpu(0);
            std::thread::sleep(Duration::from_millis(200));
            let t0 = Instant::now();
            let mut calls = 0u64;
            loop {
                let el = t0.elapsed().as_secs_f64();
                if el >= secs {
                    break;
                }
                if let Some(r) = rate {
                    if (calls * batch as u64) as f64 > r * el {
                        std::hint::spin_loop();
                        continue;
                    }
                }
                // SAFETY: getppid has no arguments and no side effects.
                unsafe { libc::syscall(libc::SYS_getppid) };
                calls += 1;
            }
            pt.store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
        });
        Ok(())
    }))?;
    let generated = summary.stats[netmem_common::Stat::SyntheticGenerated as usize];
    let lost = summary.stats[netmem_common::Stat::RingbufLost as usize];
    let el = producer_time.load(Ordering::SeqCst) as f64 / 1e9;
    Ok((
        generated,
        summary.events,
        lost,
        generated as f64 / el.max(1e-9),
    ))
}

pub(crate) fn pipeline(o: &Opts) -> Result<Value> {
    let netns = Netns::new("pipe");
    let ns = netns.name.as_str();
    {
        let batch = 256;
        let secs = o.secs.max(2.0);
        println!("\n== pipeline: one producer, batches of {batch} events per syscall, {secs:.1} s per rate");
        println!(
            "{:>14} {:>14} {:>12} {:>12} {:>10}  exact",
            "target ev/s", "produced ev/s", "generated", "received", "lost"
        );
        let mut runs = Vec::new();
        let mut best = 0.0f64;
        let mut exact_all = true;
        let rates: Vec<Option<f64>> = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0,
        ]
        .iter()
        .map(|m| Some(m * 1e6))
        .chain([None])
        .collect();
        let mut lossy_seen = false;
        // The producer's own rate: unpaced, as fast as it can make events.
        let mut unpaced = f64::NAN;
        let mut unpaced_lossless = false;
        for rate in rates {
            if lossy_seen && rate.is_some() {
                continue;
            }
            let (g, rcv, lost, produced) = pipeline_run(ns, rate, secs, batch, 0)?;
            let exact = g == rcv + lost;
            exact_all &= exact;
            println!(
                "{:>14} {:>14.0} {:>12} {:>12} {:>10}  {}",
                rate.map_or("unpaced".to_string(), |r| format!("{r:.0}")),
                produced,
                g,
                rcv,
                lost,
                if exact { "yes" } else { "NO" }
            );
            if lost == 0 && rate.is_some() {
                best = best.max(produced);
            }
            if rate.is_none() {
                unpaced = produced;
                unpaced_lossless = lost == 0;
            }
            if lost > 0 {
                lossy_seen = true;
            }
            runs.push(json!({"target": rate, "produced_per_s": produced, "generated": g, "received": rcv, "lost": lost, "exact": exact}));
        }
        // Overloaded on purpose: events decoded, formatted, and written to a
        // reader that stalls.
        let (g, rcv, lost, produced) = pipeline_run(ns, None, secs, batch, 1_000_000)?;
        let exact = g == rcv + lost;
        exact_all &= exact;
        println!(
            "{:>14} {produced:>14.0} {g:>12} {rcv:>12} {lost:>10}  {}",
            "slow reader",
            if exact { "yes" } else { "NO" }
        );
        ensure!(
            lost > 0,
            "the formatting reader kept up: no overload to check the loss count with"
        );
        // The judged figure: the highest rate the reader kept up with, over
        // what the producer makes unpaced in the same run (1 when the
        // reader keeps up with the producer flat out).
        let lossless_vs_unpaced = if unpaced_lossless {
            1.0
        } else {
            best / unpaced
        };
        println!("highest lossless rate: {best:.0} events/s ({lossless_vs_unpaced:.2} of the producer's unpaced rate); loss counter exact in every run: {exact_all}");
        Ok(
            json!({"batch": batch, "secs": secs, "runs": runs, "max_lossless_per_s": best,
            "unpaced_per_s": unpaced, "lossless_vs_unpaced": lossless_vs_unpaced,
            "loss_count_exact": exact_all,
            "overloaded": {"produced_per_s": produced, "generated": g, "received": rcv, "lost": lost, "exact": exact}}),
        )
    }
}
