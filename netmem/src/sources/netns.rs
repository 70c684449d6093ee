//! The network namespace netmem reports on: its own, or one named with
//! `--netns` (a name under /run/netns, as `ip netns` makes, or a path such as
//! /proc/PID/ns/net). Running in the host namespace and looking into another
//! keeps the global limits (tcp_mem, tcp_max_orphans), which the kernel only
//! shows in the initial namespace, readable.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use anyhow::{anyhow, bail, Context, Result};

/// statfs f_type of nsfs, the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// ioctl(2) on a namespace file: its CLONE_NEW* type (Linux 4.11+).
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// The filesystem type of `path` (following symlinks), without opening it.
fn statfs_type(path: &str) -> Result<i64> {
    let c = CString::new(path).map_err(|_| anyhow!("the path contains a NUL byte"))?;
    // SAFETY: statfs writes only into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path; st is a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(st.f_type as i64)
}

/// netmem's own namespace, as groups under `--netns all` and the host line
/// name it.
pub use crate::model::names::OWN_NAME;

pub struct Netns {
    file: Option<File>,
    /// As given on the command line, for error messages.
    label: String,
    /// The path it was opened by, when one was given.
    path: Option<String>,
}

impl Netns {
    pub fn open(arg: Option<&str>) -> Result<Netns> {
        let Some(arg) = arg else {
            return Ok(Netns {
                file: None,
                label: "own".into(),
                path: None,
            });
        };
        let path = if arg.contains('/') {
            arg.to_string()
        } else {
            format!("/run/netns/{arg}")
        };
        let shown = path.escape_debug().to_string();
        // Checked before opening: opening a FIFO blocks forever, and
        // opening a device node as root can have side effects.
        let fs_type = statfs_type(&path).with_context(|| {
            format!("cannot open network namespace {shown} (see `ip netns list`)")
        })?;
        if fs_type != NSFS_MAGIC {
            bail!("{shown} is not a namespace file (give a name from `ip netns list` or a path such as /proc/PID/ns/net)");
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .with_context(|| format!("cannot open network namespace {shown}"))?;
        // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind >= 0 && kind != libc::CLONE_NEWNET {
            bail!("{shown} is a namespace, but not a network namespace");
        }
        Ok(Netns {
            file: Some(file),
            label: arg.escape_debug().to_string(),
            path: Some(path),
        })
    }

    /// Another handle on the same namespace, for a worker thread.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            file: match &self.file {
                Some(f) => Some(f.try_clone().context("cannot duplicate the netns fd")?),
                None => None,
            },
            label: self.label.clone(),
            path: self.path.clone(),
        })
    }

    /// False once the name it was opened by is gone (`ip netns del`): the
    /// namespace lives on only while something, netmem included, holds it.
    pub fn still_named(&self) -> bool {
        self.path
            .as_ref()
            .is_none_or(|p| std::path::Path::new(p).exists())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The namespace file it was opened by; None for netmem's own.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Inode number identifying the namespace, as the kernel programs see it.
    pub fn inum(&self) -> Result<u32> {
        let m = match &self.file {
            Some(f) => f.metadata(),
            None => std::fs::metadata("/proc/self/ns/net"),
        }
        .context("cannot stat the network namespace")?;
        Ok(m.ino() as u32)
    }

    /// Runs `f` on a thread inside the namespace (sockets it creates stay in
    /// that namespace); on the calling thread when it is our own.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let Some(file) = &self.file else { return f() };
        let fd = file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid fd; it only moves this scoped thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    let e = std::io::Error::last_os_error();
                    let hint = if e.raw_os_error() == Some(libc::EPERM) {
                        " (entering a network namespace needs CAP_SYS_ADMIN: run as root)"
                    } else {
                        ""
                    };
                    bail!("cannot enter network namespace {}: {e}{hint}", self.label);
                }
                f()
            })
            .join()
            .map_err(|_| anyhow!("namespace worker panicked"))?
        })
    }
}

/// `--netns all`: every network namespace of the host, found again at each
/// pass (the named ones under /run/netns, and those of running processes),
/// deduplicated by inode. A namespace is held open only while something
/// else still holds it: one that disappears from the listing is closed, so
/// netmem never keeps a dead container's namespace alive.
#[derive(Default)]
pub struct Namespaces {
    open: std::collections::BTreeMap<u32, Netns>,
}

impl Namespaces {
    /// The namespace of inode `inum`, when the last [`Namespaces::discover`]
    /// found it.
    pub fn get(&self, inum: u32) -> Option<&Netns> {
        self.open.get(&inum)
    }

    /// Every namespace now, netmem's own first, with the name its groups
    /// show (`NAME` under /run/netns, else the container id its first
    /// process's cgroup shows, else `COMM[PID]`). A process that exits
    /// while it is looked at is skipped.
    pub fn discover(&mut self) -> Result<Vec<(&Netns, String)>> {
        let own = std::fs::metadata("/proc/self/ns/net")
            .context("cannot stat /proc/self/ns/net")?
            .ino() as u32;
        let mut found: std::collections::BTreeMap<u32, (String, String)> = Default::default();
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let (Ok(m), Some(name)) = (
                    std::fs::metadata(e.path()),
                    e.file_name().to_str().map(String::from),
                ) else {
                    continue;
                };
                found
                    .entry(m.ino() as u32)
                    .or_insert((e.path().to_string_lossy().into_owned(), name));
            }
        }
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .context("cannot list /proc")?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let path = format!("/proc/{pid}/ns/net");
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            let ino = m.ino() as u32;
            if ino == own || found.contains_key(&ino) {
                continue;
            }
            found.insert(ino, (path, process_label(pid)));
        }
        self.open
            .retain(|ino, _| *ino == own || found.contains_key(ino));
        if let std::collections::btree_map::Entry::Vacant(e) = self.open.entry(own) {
            e.insert(Netns::open(None)?);
        }
        let mut names = vec![(own, OWN_NAME.to_string())];
        for (ino, (path, name)) in found {
            if ino == own {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = self.open.entry(ino) {
                // Gone between the listing and now, or not a namespace we
                // may enter: skipped this pass, tried again at the next.
                match Netns::open(Some(&path)) {
                    Ok(n) if n.inum().ok() == Some(ino) => {
                        e.insert(n);
                    }
                    _ => continue,
                }
            }
            names.push((ino, name));
        }
        Ok(names
            .into_iter()
            .filter_map(|(ino, name)| Some((self.open.get(&ino)?, name)))
            .collect())
    }
}

/// A process's namespace as groups name it: the container id its cgroup
/// shows, else `COMM[PID]`.
fn process_label(pid: u32) -> String {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default();
    if let (Some(c), _) = super::owners::container_of(v2) {
        return format!("ctr:{c}");
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("{}[{pid}]", comm.trim_end())
}
