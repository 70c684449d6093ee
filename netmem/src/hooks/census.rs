//! The census tier in the kernel: netmem's socket iterators
//! (`netmem-ebpf/src/census.rs`) loaded from their own copy of the object,
//! so `snapshot` needs no hooks and a live command's hooks share nothing
//! with it. A pass makes an iterator inside the namespace (the kernel walks
//! the maker's namespace only), reads it to the end, and takes the groups
//! out of the map in a few batched calls.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use aya::maps::{Array, MapData};
use aya::programs::Iter;
use aya::{Btf, Ebpf, EbpfLoader};
use netmem_common::{
    CensusRow, GroupKey, KernelLayout, CENSUS_GEN, CENSUS_OVERFLOW, CENSUS_TIME_WAIT, NO_OFFSET,
};

use super::catalog::CENSUS_PROGRAMS;
use super::object::{HOOK_MAPS, OBJECT};
use crate::kernel::startup::mark;
use crate::sources::netns::Netns;

/// Map names as netmem-ebpf's census.rs declares them.
const GROUPS: &str = "CENSUS_GROUPS";
const LISTEN: &str = "CENSUS_LISTEN";
const SETTINGS: &str = "CENSUS_SETTINGS";

/// The loaded iterators.
pub struct KernelCensus {
    ebpf: Ebpf,
    /// This pass' generation (see `CENSUS_LISTEN`).
    gen: u32,
    /// The UDP iterator loaded too (the TCP one always is).
    udp: bool,
}

/// One namespace's pass: every group with its sums, the namespace not yet
/// set in the keys.
pub type Rows = Vec<(GroupKey, CensusRow)>;

impl KernelCensus {
    /// Loads the iterators, or says why this kernel will not run them.
    pub fn load(layout: &KernelLayout) -> Result<KernelCensus> {
        if layout.sk_family == NO_OFFSET {
            bail!("{}", crate::kernel::btf::missing_reason());
        }
        for (name, off) in [
            ("sock.sk_socket", layout.sk_socket),
            ("sock.sk_ack_backlog", layout.sk_ack_backlog),
            ("inet_timewait_sock.tw_substate", layout.tw_substate),
            ("sock.sk_rmem_alloc", layout.sk_rmem_alloc),
        ] {
            if off == NO_OFFSET {
                bail!("the kernel's BTF has no {name}");
            }
        }
        // The iterators attach to the kernel's bpf_iter_tcp/udp functions,
        // which only vmlinux BTF names.
        let btf = Btf::from_sys_fs().context("no kernel BTF to find the socket iterators in")?;
        mark("census: BTF parsed");
        let mut loader = EbpfLoader::new();
        loader.btf(None).override_global("LAYOUT", layout, true);
        for (map, size) in HOOK_MAPS {
            loader.map_max_entries(map, *size);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .context("the kernel refused netmem's eBPF object")?;
        mark("census: object loaded");
        let mut udp = false;
        for (program, target) in CENSUS_PROGRAMS {
            let p: &mut Iter = ebpf
                .program_mut(program)
                .with_context(|| format!("program {program} missing from netmem's eBPF object"))?
                .try_into()?;
            match p.load(target, &btf) {
                Ok(()) => udp |= *target == "udp",
                Err(e) if *target == "tcp" => {
                    return Err(anyhow::Error::new(e)
                        .context("the kernel refused the TCP socket iterator (bpf_iter, 5.9+)"))
                }
                Err(e) => log::debug!("UDP socket iterator refused, UDP by sock_diag: {e}"),
            }
        }
        mark("census: iterators loaded");
        Ok(KernelCensus { ebpf, gen: 0, udp })
    }

    /// Whether UDP is censused here too (else by sock_diag).
    pub fn has_udp(&self) -> bool {
        self.udp
    }

    /// One namespace's pass: TCP (then UDP, when loaded), `sticky` ports
    /// grouped as listening, TIME_WAIT sockets counted when `time_wait`.
    /// Fails, leaving the pass to sock_diag, when a group did not fit.
    pub fn pass(
        &mut self,
        netns: &Netns,
        sticky: &HashSet<u16>,
        time_wait: bool,
        udp: bool,
    ) -> Result<Rows> {
        self.gen = self.gen.wrapping_add(1).max(1);
        let gen = self.gen;
        {
            let mut settings: Array<&mut MapData, u32> = self.map(SETTINGS)?;
            settings.set(CENSUS_GEN, gen, 0)?;
            settings.set(CENSUS_TIME_WAIT, time_wait as u32, 0)?;
            settings.set(CENSUS_OVERFLOW, 0, 0)?;
        }
        {
            let mut listen: Array<&mut MapData, u32> = self.map(LISTEN)?;
            for p in sticky {
                listen.set(*p as u32, gen, 0)?;
            }
        }
        for (program, target) in CENSUS_PROGRAMS {
            if *target == "udp" && !(udp && self.udp) {
                continue;
            }
            let p: &mut Iter = self
                .ebpf
                .program_mut(program)
                .context("census program")?
                .try_into()?;
            let t0 = std::time::Instant::now();
            let id = p.attach()?;
            let link = p.take_link(id)?;
            // The iterator walks its maker's namespace: made on a thread
            // inside `netns`, read to the end there or here alike.
            let mut file = netns.run(|| Ok(link.into_file()?))?;
            let t1 = t0.elapsed();
            let mut sink = [0u8; 64];
            loop {
                match file.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A read stops after a million sockets without output
                    // (EAGAIN); the next one goes on from there.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("reading the {target} iterator"))
                    }
                }
            }
            let stats = p
                .info()
                .map(|i| format!("{} runs, {:?} in the program", i.run_count(), i.run_time()))
                .unwrap_or_default();
            log::debug!(
                "census {target}: iterator made in {t1:?}, walked in {:?} ({stats})",
                t0.elapsed() - t1
            );
        }
        let t0 = std::time::Instant::now();
        let rows = self.take_groups()?;
        log::debug!("census: {} groups taken in {:?}", rows.len(), t0.elapsed());
        let overflow = {
            let settings: Array<&mut MapData, u32> = self.map(SETTINGS)?;
            settings.get(&CENSUS_OVERFLOW, 0)?
        };
        if overflow != 0 {
            bail!(
                "more than {} groups in one namespace: the in-kernel census is incomplete",
                netmem_common::CENSUS_GROUPS_MAX
            );
        }
        Ok(rows)
    }

    fn map<V: aya::Pod>(&mut self, name: &str) -> Result<Array<&mut MapData, V>> {
        let m = self
            .ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing from netmem's eBPF object"))?;
        Array::try_from(m).context(name.to_string())
    }

    /// Every group of the pass, taken out of the map: batched
    /// lookup-and-delete, a few calls for thousands of groups.
    fn take_groups(&mut self) -> Result<Rows> {
        let m = self
            .ebpf
            .map(GROUPS)
            .with_context(|| format!("map {GROUPS} missing"))?;
        let aya::maps::Map::HashMap(data) = m else {
            bail!("map {GROUPS} is not a hash");
        };
        let fd = data.fd().as_fd().as_raw_fd();
        lookup_and_delete_all(fd)
    }
}

/// `union bpf_attr`'s batch member (uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;

/// Takes every entry out of the hash map `fd` (BPF_MAP_LOOKUP_AND_DELETE_BATCH,
/// 5.6+, so on every kernel with iterators).
fn lookup_and_delete_all(fd: i32) -> Result<Rows> {
    const CHUNK: usize = 4096;
    let mut out = Vec::new();
    let mut keys = vec![GroupKey::default(); CHUNK];
    let mut values = vec![CensusRow::default(); CHUNK];
    // A hash map's batch token is its next bucket (a u32); room for more.
    let mut token = [0u64; 2];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_ptr() as u64 },
            out_batch: token.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: bpf(2) with a batch attribute whose buffers hold `count`
        // keys and values of the map's sizes (GroupKey, CensusRow: the
        // types the map was declared with) and an 8-byte-aligned token.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        let err = (r < 0).then(std::io::Error::last_os_error);
        let n = (attr.count as usize).min(CHUNK);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        first = false;
        match err {
            None => continue,
            // ENOENT: no more entries (the last ones came with it).
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Some(e) => return Err(e).context("taking the census' groups out of the kernel"),
        }
    }
}
