//! Everything attaching needs to know about the running kernel, resolved
//! once per boot: the layout the programs read, which tracepoints and
//! functions exist with which prototypes, and which symbols kallsyms lists.
//!
//! Parsing vmlinux BTF and reading /proc/kallsyms is most of netmem's
//! start-up (about 150 ms of 350 ms on the CI machine), and neither can
//! change until the next boot. So the facts are kept in a small file keyed
//! by the boot (`boot_id`: a new kernel, or new KASLR addresses, means a new
//! boot), the BTF's size, netmem's own build and the process's
//! capabilities (which decide whether kallsyms shows addresses). Any
//! mismatch, an unreadable or foreign file, or `NETMEM_CACHE_DIR=off`
//! resolves from scratch; a cache that cannot be written is only logged.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use netmem_common::KernelLayout;
use serde::{Deserialize, Serialize};

use super::btf::{KernelBtf, Resolved, VMLINUX_BTF};
use super::kallsyms::Kallsyms;
use crate::hooks::catalog::{wanted_symbols, Kind, HOOKS};
use crate::hooks::HookId;

/// Bumped whenever what is cached changes shape or meaning.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Clone)]
pub struct KernelFacts {
    key: String,
    /// [`KernelLayout`]'s bytes, `netns_inum` zero (set per run).
    layout: Vec<u8>,
    sock_min_sndbuf: i64,
    missing: Vec<(Option<HookId>, String)>,
    drop_reason_names: Vec<(u32, String)>,
    /// Raw tracepoints of the catalog this kernel has.
    tracepoints: BTreeSet<String>,
    /// Catalog functions with a BTF prototype: parameter names and types.
    functions: BTreeMap<String, Vec<(String, String)>>,
    /// Catalog functions /proc/kallsyms lists as text symbols.
    in_kallsyms: BTreeSet<String>,
    /// Why /proc/kallsyms could not be read, said on every start.
    kallsyms_error: Option<String>,
}

impl KernelFacts {
    /// The facts for this boot: from the cache when it matches, else
    /// resolved from BTF and kallsyms (and cached for the next start).
    pub fn load() -> Result<KernelFacts> {
        let key = cache_key();
        let path = cache_dir().map(|d| d.join("kernel-facts.json"));
        if let (Some(key), Some(path)) = (&key, &path) {
            match read_cached(path, key) {
                Ok(f) => {
                    log::debug!("kernel facts from {}", path.display());
                    f.warn();
                    return Ok(f);
                }
                Err(e) => log::debug!("kernel facts not cached ({e:#}): resolving"),
            }
        }
        // kallsyms is read on a thread while BTF is parsed: each is about
        // half of resolving.
        let syms = std::thread::spawn(|| Kallsyms::load(&wanted_symbols()));
        let btf = KernelBtf::load()?;
        let syms = syms
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("kallsyms reader panicked")));
        let f = Self::resolve(&btf, syms, key.clone().unwrap_or_default());
        // Freeing BTF's many small allocations takes 20 ms: done on a
        // thread of its own while the programs load.
        std::thread::spawn(move || {
            drop(btf);
            super::startup::release_freed_memory();
        });
        f.warn();
        if let (Some(_), Some(path)) = (&key, &path) {
            if let Err(e) = write_cached(path, &f) {
                log::debug!("kernel facts not cached at {}: {e:#}", path.display());
            }
        }
        Ok(f)
    }

    /// Resolves everything the catalog can ask from `btf` and `syms`.
    pub fn resolve(btf: &KernelBtf, syms: Result<Kallsyms>, key: String) -> KernelFacts {
        let (syms, kallsyms_error) = match syms {
            Ok(s) => (s, None),
            Err(e) => (Kallsyms::default(), Some(format!("{e:#}"))),
        };
        let r = btf.resolve(0, &syms);
        let mut tracepoints = BTreeSet::new();
        let mut functions = BTreeMap::new();
        let mut in_kallsyms = BTreeSet::new();
        let progs = HOOKS
            .iter()
            .flat_map(|h| h.tiers.iter())
            .flat_map(|t| t.progs.iter());
        for p in progs {
            let name = p.target.to_string();
            if p.kind == Kind::RawTp {
                if btf.tracepoint_args(p.target).is_ok() {
                    tracepoints.insert(name);
                }
                continue;
            }
            if let Some(params) = btf.func_params(p.target) {
                functions.insert(name.clone(), params);
            }
            if syms.has_function(p.target) {
                in_kallsyms.insert(name);
            }
        }
        KernelFacts {
            key,
            layout: layout_bytes(&r.layout),
            sock_min_sndbuf: r.sock_min_sndbuf,
            missing: r.missing,
            drop_reason_names: r.drop_reason_names,
            tracepoints,
            functions,
            in_kallsyms,
            kallsyms_error,
        }
    }

    fn warn(&self) {
        if let Some(e) = &self.kallsyms_error {
            log::warn!("{e}: kprobe tier and orphan figures unavailable");
        }
    }

    /// The layout and notes, with the traced namespace filled in.
    pub fn resolved(&self, netns_inum: u32) -> Resolved {
        let mut layout = KernelLayout::unresolved();
        if self.layout.len() == std::mem::size_of::<KernelLayout>() {
            // SAFETY: KernelLayout is plain old data (#[repr(C)], integers
            // only) and the length was checked; read_unaligned copes with
            // the Vec's alignment.
            layout = unsafe { std::ptr::read_unaligned(self.layout.as_ptr().cast()) };
        }
        layout.netns_inum = netns_inum;
        Resolved {
            layout,
            sock_min_sndbuf: self.sock_min_sndbuf,
            missing: self.missing.clone(),
            drop_reason_names: self.drop_reason_names.clone(),
        }
    }

    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.tracepoints.contains(name)
    }

    /// Parameter names and types of a catalog function, or None when it
    /// has no BTF prototype (inlined, renamed, or absent).
    pub fn func_params(&self, name: &str) -> Option<&[(String, String)]> {
        self.functions.get(name).map(Vec::as_slice)
    }

    /// Whether kallsyms lists the catalog function under its own name.
    pub fn has_function(&self, name: &str) -> bool {
        self.in_kallsyms.contains(name)
    }
}

fn layout_bytes(l: &KernelLayout) -> Vec<u8> {
    // SAFETY: KernelLayout is #[repr(C)] plain data with no padding
    // (netmem-common asserts its size), so all its bytes are initialised.
    unsafe {
        std::slice::from_raw_parts(
            (l as *const KernelLayout).cast::<u8>(),
            std::mem::size_of::<KernelLayout>(),
        )
    }
    .to_vec()
}

/// Where the cache lives: `NETMEM_CACHE_DIR` (`off` disables it), else
/// /var/cache/netmem for root, else the user's cache directory.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("NETMEM_CACHE_DIR") {
        Some(d) if d == "off" || d.is_empty() => return None,
        Some(d) => return Some(d.into()),
        None => {}
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some("/var/cache/netmem".into());
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("netmem"))
}

/// What the facts depend on; None when the boot cannot be identified.
fn cache_key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let btf = std::fs::metadata(VMLINUX_BTF).ok()?.len();
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or("")
        .trim();
    Some(format!(
        "v{FORMAT} boot={} btf={btf} exe={}:{}:{}:{} caps={caps}",
        boot.trim(),
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime_nsec() + exe.mtime() * 1_000_000_000,
    ))
}

fn read_cached(path: &PathBuf, key: &str) -> Result<KernelFacts> {
    let meta = std::fs::metadata(path).context("no cache file")?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    // A file another user could have written would decide what netmem
    // loads into the kernel: only our own, writable by us alone, is used.
    anyhow::ensure!(
        meta.uid() == me && meta.mode() & 0o022 == 0,
        "{} is not owned by uid {me} alone",
        path.display()
    );
    let f: KernelFacts = serde_json::from_slice(&std::fs::read(path)?).context("unreadable")?;
    anyhow::ensure!(f.key == key, "made for another boot or build");
    anyhow::ensure!(
        f.layout.len() == std::mem::size_of::<KernelLayout>(),
        "layout of another size"
    );
    Ok(f)
}

fn write_cached(path: &PathBuf, f: &KernelFacts) -> Result<()> {
    let dir = path.parent().context("no directory")?;
    std::fs::create_dir_all(dir)?;
    // Written aside and renamed: two netmem starting at once never read a
    // half-written file.
    let tmp = dir.join(format!(".kernel-facts.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(f)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cached facts give exactly what resolving gives.
    #[test]
    fn cached_facts_equal_resolved_ones() {
        let Ok(btf) = KernelBtf::load() else {
            eprintln!("no kernel BTF here; skipped");
            return;
        };
        let f = KernelFacts::resolve(&btf, Kallsyms::load(&wanted_symbols()), "k".into());
        let back: KernelFacts = serde_json::from_slice(&serde_json::to_vec(&f).unwrap()).unwrap();
        let (a, b) = (f.resolved(7), back.resolved(7));
        assert_eq!(a.layout, b.layout);
        assert_eq!(
            a.layout,
            btf.resolve(7, &Kallsyms::load(&wanted_symbols()).unwrap_or_default())
                .layout
        );
        assert_eq!(a.missing, b.missing);
        assert!(back.has_tracepoint("inet_sock_set_state"));
        assert!(!back.has_tracepoint("no_such_tracepoint"));
        assert_eq!(
            back.func_params("tcp_check_oom").map(|p| p[1].0.as_str()),
            Some("shift")
        );
    }
}
