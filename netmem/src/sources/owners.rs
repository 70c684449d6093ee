//! Who holds a socket: the processes with a file descriptor on it (socket
//! inode to pid, from `/proc/*/fd`, as `ss -p` finds them) and the cgroup
//! v2 it was created in (sock_diag's INET_DIAG_CGROUP_ID to a path under
//! the cgroup2 mount), with the container or pod id a path shows, and the
//! cgroup's own `memory.stat` `sock` figure to cross-check against.
//!
//! Both maps are caches: `/proc` is scanned again only when a pass brings
//! socket inodes it has not placed, at most once per pass, and the cgroup
//! tree is walked again only for cgroup ids it has not seen. A process or
//! cgroup that vanishes while it is read is skipped, never an error.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::model::types::{container_of, Cgroup, OwnerTable};

/// What a scan of `/proc` met, for the tests and the curious.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub scans: u64,
    /// Processes that were gone while scanned.
    pub vanished: u64,
    /// Processes whose descriptors this user may not read (another
    /// user's, without root).
    pub unreadable: u64,
    pub cgroup_walks: u64,
}

#[derive(Default)]
pub struct OwnerSource {
    /// What is known so far: the caches the model reads.
    table: OwnerTable,
    /// inodes a scan looked for and no process held (in flight, or held by
    /// the kernel): not looked for again while they live
    unheld: HashSet<u32>,
    /// cgroup ids a walk did not find (removed since)
    unknown_cgroups: HashSet<u64>,
    /// The cgroup2 mount point; None on a host without one.
    root: Option<PathBuf>,
    /// Where the memory controllers are (v2, and v1's on a hybrid host).
    memcg_roots: crate::sources::memcg::MemcgRoots,
    pub stats: ScanStats,
}

impl OwnerSource {
    pub fn new() -> OwnerSource {
        let root = cgroup2_mount();
        OwnerSource {
            memcg_roots: crate::sources::memcg::MemcgRoots::new(root.clone()),
            root,
            ..Default::default()
        }
    }

    /// What the source knows after its last refresh.
    pub fn table(&self) -> &OwnerTable {
        &self.table
    }

    /// Brings the caches up to date for one pass: forgets sockets that are
    /// gone, scans `/proc` if some socket is not placed yet, walks the
    /// cgroup tree if some cgroup id is new.
    pub fn refresh(&mut self, inodes: &HashSet<u32>, cgroup_ids: &HashSet<u64>) {
        self.memcg_roots.new_pass();
        self.table.by_inode.retain(|i, _| inodes.contains(i));
        self.unheld.retain(|i| inodes.contains(i));
        let missing = inodes
            .iter()
            .any(|i| *i != 0 && !self.table.by_inode.contains_key(i) && !self.unheld.contains(i));
        if missing {
            self.scan_proc(inodes);
        }
        let new_cgroup = cgroup_ids.iter().any(|c| {
            *c != 0 && !self.table.cgroups.contains_key(c) && !self.unknown_cgroups.contains(c)
        });
        if new_cgroup {
            self.walk_cgroups(cgroup_ids);
        }
    }

    /// The processes holding socket `inode`, lowest pid first.
    pub fn holders(&self, inode: u32) -> &[u32] {
        self.table.holders(inode)
    }

    pub fn comm(&self, pid: u32) -> &str {
        self.table.comm(pid)
    }

    /// The cgroup's memory controller: `memory.stat` `sock`, current,
    /// limits, events and the limit that applies on the way up (see
    /// `sources::memcg`). None when nothing of it can be read.
    pub fn memcg(&self, id: u64) -> Option<Arc<crate::model::memcg::Memcg>> {
        let cg = self.table.cgroups.get(&id)?;
        self.memcg_roots.read(&cg.path).map(Arc::new)
    }

    fn scan_proc(&mut self, wanted: &HashSet<u32>) {
        self.stats.scans += 1;
        let mut found: HashMap<u32, Vec<u32>> = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut live = HashSet::new();
        // The processes refused this scan, to name in the warning.
        let mut refused: Vec<u32> = Vec::new();
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let fds = match std::fs::read_dir(ent.path().join("fd")) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    self.stats.unreadable += 1;
                    refused.push(pid);
                    continue;
                }
                Err(_) => {
                    self.stats.vanished += 1;
                    continue;
                }
            };
            let mut holds = false;
            for fd in fds.flatten() {
                let target = match std::fs::read_link(fd.path()) {
                    Ok(t) => t,
                    // Listing is allowed but following is not (a process
                    // with capabilities netmem lacks): the whole process
                    // is unreadable.
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        self.stats.unreadable += 1;
                        refused.push(pid);
                        break;
                    }
                    Err(_) => continue,
                };
                let Some(inode) = socket_inode(&target) else {
                    continue;
                };
                if wanted.contains(&inode) {
                    found.entry(inode).or_default().push(pid);
                    holds = true;
                }
            }
            if holds {
                live.insert(pid);
                if let std::collections::hash_map::Entry::Vacant(e) = self.table.comm.entry(pid) {
                    match read_comm(&ent.path()) {
                        Some(c) => {
                            e.insert(c);
                        }
                        None => self.stats.vanished += 1,
                    }
                }
            }
        }
        if !refused.is_empty() {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| log::warn!("{}", refused_warning(&refused)));
        }
        // pids are reused: a name is kept only while its process holds
        // something.
        self.table.comm.retain(|p, _| live.contains(p));
        for (inode, mut pids) in found {
            pids.sort_unstable();
            pids.dedup();
            self.table.by_inode.insert(inode, pids);
        }
        for i in wanted {
            if *i != 0 && !self.table.by_inode.contains_key(i) {
                self.unheld.insert(*i);
            }
        }
    }

    fn walk_cgroups(&mut self, wanted: &HashSet<u64>) {
        let Some(root) = self.root.clone() else {
            return;
        };
        self.stats.cgroup_walks += 1;
        let mut found = Vec::new();
        walk(
            &root,
            |id| !self.table.cgroups.contains_key(&id),
            |c| found.push(c),
        );
        for c in found {
            self.table.cgroups.insert(c.id, c);
        }
        for c in wanted {
            if *c != 0 && !self.table.cgroups.contains_key(c) {
                self.unknown_cgroups.insert(*c);
            }
        }
    }
}

/// A process's name as its owner set it (`prctl(PR_SET_NAME)`, or the name
/// of the file it ran): any bytes but NUL, so not always UTF-8; those that
/// are not are shown as U+FFFD rather than losing the process. None when it
/// is gone.
fn read_comm(proc_dir: &Path) -> Option<String> {
    let raw = std::fs::read(proc_dir.join("comm")).ok()?;
    let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
    Some(String::from_utf8_lossy(raw).into_owned())
}

/// Which processes' descriptors could not be read, by name, and what to
/// do: running as root (CAP_SYS_PTRACE) helps only when netmem lacks it.
fn refused_warning(pids: &[u32]) -> String {
    const NAMED: usize = 3;
    let mut names: Vec<String> = pids
        .iter()
        .take(NAMED)
        .map(|pid| {
            let comm = read_comm(Path::new(&format!("/proc/{pid}"))).unwrap_or_default();
            format!("{}[{pid}]", crate::format::Shown(&comm))
        })
        .collect();
    if pids.len() > NAMED {
        names.push(format!("{} more", pids.len() - NAMED));
    }
    let which = format!("the file descriptors of {}", names.join(", "));
    if crate::kernel::privileges::has_ptrace() {
        format!(
            "owners: {which} cannot be read although netmem has CAP_SYS_PTRACE, as root does (the kernel's access check refuses them: another user namespace, a security module, or privileges netmem lacks), so their sockets have no process owner"
        )
    } else {
        format!(
            "owners: {which} are not readable by netmem, so their sockets have no process owner (run as root, or with CAP_SYS_PTRACE)"
        )
    }
}

/// Every cgroup under `root`: `new(id)` says whether one is worth naming,
/// `found` gets those.
fn walk(root: &Path, new: impl Fn(u64) -> bool, mut found: impl FnMut(Arc<Cgroup>)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let id = meta.ino();
        if new(id) {
            let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
            let path = format!("/{}", rel.to_string_lossy());
            found(Arc::new(Cgroup::at(id, path)));
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// A cgroup the kernel named by id in an event (an orphan's closer) that no
/// pass has met yet: the tree is walked for it, at most once a second, and
/// what is found is registered in `names` for every later name.
pub fn lookup_cgroup(id: u64, names: &crate::model::names::Names) -> Option<Arc<Cgroup>> {
    use std::sync::Mutex;
    use std::time::Instant;
    if let Some(c) = names.cgroup(id) {
        return Some(c);
    }
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return None;
        }
        *last = Some(Instant::now());
    }
    let root = cgroup2_mount()?;
    walk(
        &root,
        |c| names.cgroup(c).is_none(),
        |c| names.register_cgroup(c),
    );
    names.cgroup(id)
}

/// `socket:[12345]` -> 12345.
fn socket_inode(target: &Path) -> Option<u32> {
    let s = target.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The cgroup2 mount point from /proc/self/mountinfo (`/sys/fs/cgroup` on
/// a unified host, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(Path::new("socket:[4242]")), Some(4242));
        assert_eq!(socket_inode(Path::new("pipe:[4242]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn finds_its_own_sockets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            l.as_raw_fd()
        }))
        .unwrap()
        .ino() as u32;
        let mut o = OwnerSource::new();
        o.refresh(&[ino].into(), &HashSet::new());
        assert_eq!(o.holders(ino), &[std::process::id()]);
        assert!(!o.comm(std::process::id()).is_empty());
        // A second pass with nothing new does not scan again.
        o.refresh(&[ino].into(), &HashSet::new());
        assert_eq!(o.stats.scans, 1);
    }
}
