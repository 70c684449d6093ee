//! Aborts on memory for real: too many orphans, and tcp_mem's hard limit
//! (global sysctls: guests only).

use std::io::Write;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{ensure, Result};
use netmem::hooks::HookId;
use serde_json::Value;

use super::{
    aborts_on, check, check_doctor, check_served, check_tiers, emit_recording, events, shifts,
    stuck, summary, with_fallbacks, Served, Sysctl, Trace,
};

/// tcp_max_orphans 0: the first closes make orphans; once the kernel's
/// orphan count catches up (100 ms), further closes are aborted with
/// "too many orphaned sockets".
pub fn orphans(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7001;
    let _max = Sysctl::set("net/ipv4/tcp_max_orphans", "0")?;
    let served = Served::start(netmem, tier_args)?;
    // `netmem check`'s one reading keeps its baseline before the aborts,
    // in a state of this run's own (the guest runs the scenario on every
    // tier, one after the other).
    let dir = format!("/tmp/netmem-check-state-{expect_tier}");
    let _ = std::fs::remove_dir_all(&dir);
    let state = format!("{dir}/state");
    let state = state.as_str();
    let (code, first) = check(netmem, &["--serve", "off", "--state", state])?;
    ensure!(
        code == 0 && first.contains("first reading"),
        "check before the aborts (one reading): {code} {first}"
    );
    let trace = Trace::start(netmem, tier_args)?;
    let (_l, mut s) = stuck(PORT, 16, 256 * 1024)?;
    let second = s.servers.split_off(8);
    drop(std::mem::take(&mut s.servers));
    sleep(Duration::from_millis(500));
    drop(second);
    sleep(Duration::from_millis(700));
    // The clients' resets end the orphans' lives.
    drop(s.clients);
    sleep(Duration::from_millis(900));
    let lines = trace.stop()?;
    emit_recording("orphans", expect_tier, &lines);
    // node-problem-detector's view: a problem, from serve (with the cause
    // and the group) and from one reading (the counters grew since).
    let (code, from_serve) = served.check(netmem)?;
    ensure!(
        code == 1
            && from_serve.starts_with("netmem: TCPMemoryPressure: ")
            && from_serve.contains("(orphans)")
            && from_serve.contains(&format!("most on listen:{PORT}")),
        "check from serve after the aborts: {code} {from_serve}"
    );
    let (code, reading) = check(netmem, &["--serve", "off", "--state", state])?;
    ensure!(
        code == 1 && reading.contains("aborts on memory within 10m"),
        "check from one reading after the aborts: {code} {reading}"
    );
    let exposition = served.finish()?;
    let fb = check_tiers(&lines, &[HookId::TcpCheckOom, HookId::Orphans], expect_tier)?;
    let group = format!("listen:{PORT}");
    let serve = check_served(&exposition, &group, "orphans")?;
    let ours = aborts_on(&lines, &group)?;
    for e in &ours {
        ensure!(e["cause"] == "orphans", "cause is not orphans: {e}");
        ensure!(e["max_orphans"] == 0, "max_orphans not 0: {e}");
        if e["orphans_source"] == "kernel" {
            // Read at the moment: the kernel's own test, replayed.
            ensure!(
                e["orphans"].as_i64().unwrap_or(0) > 0,
                "orphan count not > 0: {e}"
            );
            ensure!(e["cause_inferred"] == false, "cause said inferred: {e}");
        } else {
            // A kernel without CONFIG_KALLSYMS_ALL (Debian's arm64): the
            // count is sockstat's, later, and the cause must be said to be
            // inferred (tcp_mem's test was false on the kernel's figures).
            ensure!(e["cause_inferred"] == true, "cause not said inferred: {e}");
        }
    }
    let born: Vec<&Value> = events(&lines, "orphan_born")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(!born.is_empty(), "no orphan_born on {group}");
    ensure!(
        born.iter().any(|e| e["bytes"].as_i64().unwrap_or(0) > 0),
        "orphans born without unsent bytes: {}",
        summary(&born)
    );
    let gone: Vec<&Value> = events(&lines, "orphan_gone")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(!gone.is_empty(), "no orphan_gone on {group}");
    let doctor = check_doctor(netmem, &lines, "orphans", &group)?;
    // Orphans killed for memory die with their unsent data, and by then the
    // kernel has released their port: the event must still name it.
    let lost: Vec<&Value> = events(&lines, "destroy_with_data")
        .into_iter()
        .filter(|e| e["group"] == group.as_str())
        .collect();
    ensure!(
        lost.iter()
            .any(|e| e["unacked_bytes"].as_i64().unwrap_or(0) > 1
                && e["local"]
                    .as_str()
                    .is_some_and(|l| l.ends_with(&format!(":{PORT}")))),
        "no destroy_with_data with unacked bytes and local port {PORT} on {group}: {}",
        summary(&lost)
    );
    Ok(with_fallbacks(
        format!(
            "{} aborts (cause orphans, orphans={} from {}, max_orphans=0, shifts {:?}), {} born, {} gone; {doctor}; {serve}; check: {from_serve:?}, {reading:?}",
            ours.len(),
            ours[0]["orphans"],
            ours[0]["orphans_source"],
            shifts(&ours),
            born.len(),
            gone.len()
        ),
        fb,
    ))
}

/// tcp_mem made tiny while clients do not read: the next allocation enters
/// memory pressure, closes with queued data are aborted for tcp_mem, and
/// restoring tcp_mem and freeing memory leaves pressure.
pub fn tcp_mem(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    const PORT: u16 = 7002;
    let served = Served::start(netmem, tier_args)?;
    let trace = Trace::start(netmem, tier_args)?;
    let (l, s) = stuck(PORT, 8, 1 << 20)?;
    sleep(Duration::from_millis(300));
    let mem = Sysctl::set("net/ipv4/tcp_mem", "1 1 1")?;
    // One more connection moving data: its allocations cross tcp_mem[1].
    let mut c = TcpStream::connect(("127.0.0.1", PORT))?;
    let (mut srv, _) = l.accept()?;
    c.set_nonblocking(true)?;
    let _ = c.write(&[1u8; 32 * 1024]);
    srv.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 65536];
    let _ = std::io::Read::read(&mut srv, &mut buf);
    sleep(Duration::from_millis(400));
    drop(s.servers);
    sleep(Duration::from_millis(500));
    drop(mem);
    drop(s.clients);
    drop((c, srv));
    // Anything freed now finds usage under tcp_mem[0] and leaves pressure.
    let extra = TcpStream::connect(("127.0.0.1", PORT))?;
    let (mut es, _) = l.accept()?;
    let _ = (&extra).write(&[2u8; 4096]);
    let _ = std::io::Read::read(&mut es, &mut buf);
    drop((extra, es));
    sleep(Duration::from_millis(900));
    let lines = trace.stop()?;
    emit_recording("tcp_mem", expect_tier, &lines);
    let exposition = served.finish()?;
    let fb = check_tiers(
        &lines,
        &[HookId::TcpCheckOom, HookId::MemoryPressure],
        expect_tier,
    )?;
    let group = format!("listen:{PORT}");
    let serve = check_served(&exposition, &group, "tcp_mem")?;
    let pressure = crate::serve::sample(&exposition, "netmem_tcp_memory_pressure_seconds_total")
        .unwrap_or(0.0);
    ensure!(pressure > 0.0, "serve: no time under memory pressure");
    let ours = aborts_on(&lines, &group)?;
    for e in &ours {
        ensure!(e["cause"] == "tcp_mem", "cause is not tcp_mem: {e}");
        ensure!(e["tcp_mem_pages"][2] == 1, "tcp_mem[2] not 1: {e}");
    }
    let enter = events(&lines, "memory_pressure_enter");
    let leave = events(&lines, "memory_pressure_leave");
    ensure!(!enter.is_empty(), "no memory_pressure_enter");
    ensure!(!leave.is_empty(), "no memory_pressure_leave");
    ensure!(
        leave.iter().any(|e| e["duration_ms"].as_f64().is_some()),
        "leave without duration: {}",
        summary(&leave)
    );
    let doctor = check_doctor(netmem, &lines, "tcp_mem", &group)?;
    Ok(with_fallbacks(
        format!(
            "{} aborts (cause tcp_mem, allocated {} pages > tcp_mem[2]=1), pressure entered and left after {:.0} ms; {doctor}; {serve}, {pressure:.3} s under pressure",
            ours.len(),
            ours[0]["allocated_pages"],
            leave[0]["duration_ms"].as_f64().unwrap_or(-1.0)
        ),
        fb,
    ))
}
