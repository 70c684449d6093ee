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
//! mismatch, an unreadable or foreign file (or a link), a directory others
//! could change (said once), or `NETMEM_CACHE_DIR=off` resolves from
//! scratch; a cache that cannot be written is only logged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use netmem_common::KernelLayout;
use serde::{Deserialize, Serialize};

use super::btf::{BtfSource, KernelBtf, Resolved, VMLINUX_BTF};
use super::kallsyms::Kallsyms;
// Upward on purpose: the facts are "what this kernel offers each hook", so
// they read the catalog's list of programs and symbols (plain data).
use crate::hooks::catalog::{wanted_symbols, Kind, HOOKS};
use crate::hooks::HookId;

/// Bumped whenever what is cached changes shape or meaning.
const FORMAT: u32 = 2;

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
    /// Whether any BTF was resolved. Without it nothing above is known:
    /// every hook is served by its poller.
    btf: bool,
}

impl KernelFacts {
    /// The facts for this boot: from the cache when it matches, else
    /// resolved from BTF and kallsyms (and cached for the next start).
    pub fn load() -> Result<KernelFacts> {
        let key = cache_key();
        let dir = key
            .as_ref()
            .and_then(|_| cache_dir())
            .and_then(CacheDir::open);
        if let (Some(key), Some(dir)) = (&key, &dir) {
            match read_cached(dir, key) {
                Ok(f) => {
                    log::debug!("kernel facts from {}", dir.shown(CACHE_FILE).display());
                    f.warn();
                    return Ok(f);
                }
                Err(e) => log::debug!("kernel facts not cached ({e:#}): resolving"),
            }
        }
        // kallsyms is read on a thread while BTF is parsed: each is about
        // half of resolving.
        let syms = std::thread::spawn(|| Kallsyms::load(&wanted_symbols()));
        if crate::kernel::btf::source().is_none() {
            let syms = syms
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("kallsyms reader panicked")));
            let f = Self::without_btf(syms, key.unwrap_or_default());
            f.warn();
            return Ok(f);
        }
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
        if let Some(dir) = &dir {
            if let Err(e) = write_cached(dir, &f) {
                log::debug!(
                    "kernel facts not cached at {}: {e:#}",
                    dir.shown(CACHE_FILE).display()
                );
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
            btf: true,
        }
    }

    /// The facts of a kernel without BTF: no layout, no prototypes, no
    /// tracepoint arguments, so every hook falls to its poller. Not cached:
    /// there is nothing to parse.
    pub fn without_btf(syms: Result<Kallsyms>, key: String) -> KernelFacts {
        let (syms, kallsyms_error) = match syms {
            Ok(s) => (s, None),
            Err(e) => (Kallsyms::default(), Some(format!("{e:#}"))),
        };
        let in_kallsyms = HOOKS
            .iter()
            .flat_map(|h| h.tiers.iter())
            .flat_map(|t| t.progs.iter())
            .filter(|p| p.kind != Kind::RawTp && syms.has_function(p.target))
            .map(|p| p.target.to_string())
            .collect();
        KernelFacts {
            key,
            layout: layout_bytes(&KernelLayout::unresolved()),
            // The usual figure (x86_64, 64-byte cache lines); only the
            // tcp_mem test of a socket's abort uses it.
            sock_min_sndbuf: 4608,
            missing: vec![(None, crate::kernel::btf::missing_reason())],
            drop_reason_names: Vec::new(),
            tracepoints: BTreeSet::new(),
            functions: BTreeMap::new(),
            in_kallsyms,
            kallsyms_error,
            btf: false,
        }
    }

    /// Whether offsets, prototypes and tracepoints were resolved from BTF.
    pub fn has_btf(&self) -> bool {
        self.btf
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
    // The BTF's identity: the kernel's by size (it changes with the
    // kernel, which the boot id covers too), a named file by where it is
    // and its size and time, so replacing it resolves again.
    let btf = match crate::kernel::btf::source() {
        Some(BtfSource::Kernel) => std::fs::metadata(VMLINUX_BTF).ok()?.len().to_string(),
        Some(BtfSource::File(p)) => {
            let m = std::fs::metadata(&p).ok()?;
            format!(
                "{}:{}:{}:{}:{}",
                p.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            )
        }
        None => "none".into(),
    };
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

const CACHE_FILE: &str = "kernel-facts.json";

/// The cache's directory, opened and checked once. What netmem loads into
/// the kernel follows from the cache, so the directory must be one no one
/// else can change: owned by us and writable by no one else, or sticky
/// (like /tmp: others cannot remove or rename our files in it). Its files
/// are then reached through the open descriptor (`/proc/self/fd/N/...`),
/// so the check holds for what is used even if a directory above it is
/// renamed meanwhile.
struct CacheDir {
    dir: std::fs::File,
    path: PathBuf,
}

impl CacheDir {
    /// None when it cannot be used: said once as a warning when it is not
    /// safe to use, only logged when it cannot be made or opened.
    fn open(path: PathBuf) -> Option<CacheDir> {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
        };
        let opened = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .and_then(|_| open()),
            r => r,
        };
        let refuse = |why: String| {
            log::warn!(
                "not using the kernel-facts cache in {}: {why}; set NETMEM_CACHE_DIR to a directory of your own, or to off",
                path.display()
            );
            None
        };
        let dir = match opened {
            Ok(d) => d,
            // O_DIRECTORY|O_NOFOLLOW refuses a link with ENOTDIR (or
            // ELOOP): look again to say which it is.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
                return refuse(if link {
                    "it is a symbolic link".into()
                } else {
                    "it is not a directory".into()
                });
            }
            Err(e) => {
                log::debug!("kernel facts not cached: {}: {e}", path.display());
                return None;
            }
        };
        // fstat of what was opened, not a second look at the path.
        let meta = dir.metadata().ok()?;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return refuse(format!("it is owned by uid {}, not {me}", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & libc::S_ISVTX == 0 {
            return refuse(format!(
                "it is writable by others (mode {:o}) without the sticky bit",
                meta.mode() & 0o7777
            ));
        }
        Some(CacheDir { dir, path })
    }

    /// `name` in the directory that was checked.
    fn file(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd())).join(name)
    }

    /// `name` as the user knows it, for messages.
    fn shown(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

fn read_cached(dir: &CacheDir, key: &str) -> Result<KernelFacts> {
    let shown = dir.shown(CACHE_FILE);
    // Not through a link, and not waiting on a FIFO someone put there.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(dir.file(CACHE_FILE))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow::anyhow!("{} is a symbolic link", shown.display()),
            Some(libc::ENOENT) => anyhow::anyhow!("no cache file"),
            _ => anyhow::Error::new(e).context(format!("cannot open {}", shown.display())),
        })?;
    // The file that was opened, not whatever the name leads to now.
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", shown.display());
    // A file another user could have written would decide what netmem
    // loads into the kernel: only our own, writable by us alone, is used.
    anyhow::ensure!(
        meta.uid() == me && meta.mode() & 0o022 == 0,
        "{} is not owned by uid {me} alone",
        shown.display()
    );
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let f: KernelFacts = serde_json::from_slice(&bytes).context("unreadable")?;
    anyhow::ensure!(f.key == key, "made for another boot or build");
    anyhow::ensure!(
        f.layout.len() == std::mem::size_of::<KernelLayout>(),
        "layout of another size"
    );
    Ok(f)
}

fn write_cached(dir: &CacheDir, f: &KernelFacts) -> Result<()> {
    // A temp file with a random name, created O_EXCL, renamed onto the
    // cache: two netmem starting at once never read a half-written file,
    // and no link planted for a guessable name is ever written through.
    crate::fsutil::replace(&dir.file(CACHE_FILE), &serde_json::to_vec(f)?, 0o600, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a regular file of ours is read: a link (even to our own valid
    /// file) and a FIFO are refused at once, the FIFO without waiting for
    /// a writer.
    #[test]
    fn cache_file_is_opened_without_following_or_blocking() {
        let d = tempfile::tempdir().unwrap();
        let dir = CacheDir::open(d.path().to_path_buf()).expect("a 0700 dir of ours");
        let err = |dir: &CacheDir| format!("{:#}", read_cached(dir, "k").err().unwrap());
        assert!(err(&dir).contains("no cache file"));
        let real = d.path().join("real");
        std::fs::write(&real, b"{}").unwrap();
        std::os::unix::fs::symlink(&real, d.path().join(CACHE_FILE)).unwrap();
        assert!(err(&dir).contains("is a symbolic link"), "{}", err(&dir));
        std::fs::remove_file(d.path().join(CACHE_FILE)).unwrap();
        let fifo = std::ffi::CString::new(
            d.path()
                .join(CACHE_FILE)
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other input.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(err(&dir).contains("not a regular file"), "{}", err(&dir));
    }

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
