//! Typed handles on the kernel programs' maps: the one place that names a
//! map, knows its key and value types, and sums its per-CPU values (the
//! aya equivalent of a libbpf skeleton's `skel->maps`).

use anyhow::{Context, Result};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::Ebpf;
use netmem_common::{GroupCounters, GroupKey, Setting, Stat};

/// Map names as netmem-ebpf declares them (`#[map] pub static NAME`).
const EVENTS: &str = "EVENTS";
const GROUP_COUNTS: &str = "GROUP_COUNTS";
const LISTEN_PORTS: &str = "LISTEN_PORTS";
const STATS: &str = "STATS";
const SETTINGS: &str = "SETTINGS";
/// The kernel's own table of live orphans (orphans.rs), sized at load.
pub const ORPHANS: &str = "ORPHANS";

/// Live orphans the kernel can track, from this host's tcp_max_orphans:
/// the kernel aborts orphans past that limit (sooner with its shift), so a
/// quarter more is room enough; bounded so a huge setting does not pin
/// tens of megabytes. A full map is counted (`orphan_map_full`), not silent.
pub fn orphans_capacity() -> u32 {
    let max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_orphans")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65536);
    (max + max / 4).clamp(1024, 1 << 18) as u32
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("map {name} missing from netmem's eBPF object"))
}

fn map<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    ebpf.map(name)
        .with_context(|| format!("map {name} missing from netmem's eBPF object"))
}

/// The event stream. Taken out of the object once, for the event loop.
pub fn take_events(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>> {
    let m = ebpf
        .take_map(EVENTS)
        .with_context(|| format!("map {EVENTS} missing (or already taken)"))?;
    RingBuf::try_from(m).context(EVENTS)
}

/// The listening-port set the kernel's grouping rule reads: one slot per
/// port, non-zero when listening (1: seeded by userspace; otherwise the
/// CLOCK_MONOTONIC ns at which the kernel saw a socket enter LISTEN).
pub fn listen_ports(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, u64>> {
    Array::try_from(map_mut(ebpf, LISTEN_PORTS)?).context(LISTEN_PORTS)
}

/// Removes idle groups from the per-group map, so it only holds groups
/// that counted something recently and never fills for good.
pub fn forget_groups(ebpf: &mut Ebpf, keys: &[GroupKey]) -> Result<()> {
    let mut m: PerCpuHashMap<&mut MapData, GroupKey, GroupCounters> =
        PerCpuHashMap::try_from(map_mut(ebpf, GROUP_COUNTS)?).context(GROUP_COUNTS)?;
    for k in keys {
        // Already gone is fine: nothing else deletes, but be tolerant.
        let _ = m.remove(k);
    }
    Ok(())
}

/// Each group's cumulative counters, summed over CPUs, handed to `f` one
/// at a time (no copy of the whole map).
pub fn for_each_group_count(ebpf: &Ebpf, mut f: impl FnMut(GroupKey, GroupCounters)) -> Result<()> {
    let m: PerCpuHashMap<&MapData, GroupKey, GroupCounters> =
        PerCpuHashMap::try_from(map(ebpf, GROUP_COUNTS)?).context(GROUP_COUNTS)?;
    for item in m.iter() {
        let (k, per_cpu) = item.with_context(|| format!("reading {GROUP_COUNTS}"))?;
        let mut sum = GroupCounters::default();
        for v in per_cpu.iter() {
            for (a, b) in sum.counts.iter_mut().zip(v.counts.iter()) {
                *a += b;
            }
        }
        f(k, sum);
    }
    Ok(())
}

/// A STATS counter summed over CPUs.
pub fn stat(ebpf: &Ebpf, s: Stat) -> Result<u64> {
    let m: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map(ebpf, STATS)?).context(STATS)?;
    Ok(m.get(&(s as u32), 0)
        .with_context(|| format!("reading {STATS}[{}]", s.name()))?
        .iter()
        .sum())
}

pub fn set(ebpf: &mut Ebpf, s: Setting, v: u32) -> Result<()> {
    let mut m: Array<&mut MapData, u32> =
        Array::try_from(map_mut(ebpf, SETTINGS)?).context(SETTINGS)?;
    m.set(s as u32, v, 0)
        .with_context(|| format!("cannot write {SETTINGS}[{}]", s.name()))
}
