//! Whether a running process may steer netmem, and reading on its behalf.
//!
//! netmem runs as root (or with capabilities) beside processes of every
//! user, and a process names itself: `/proc/PID/comm` is whatever it set.
//! So a process called `haproxy` is believed only when its executable is
//! HAProxy as root installed it ([`check_executable`]), and what its
//! command line and configuration name (files, stats sockets) is opened
//! with its owner's filesystem rights ([`as_owner`]): netmem never reads a
//! file or connects to a socket for it that its owner could not. Every
//! read is capped ([`read_capped`]) at sizes a real proxy needs.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// A file netmem would not read, and why (said as is to the operator).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A path or name for a message: control characters escaped, since the
/// process's owner chose it and the message may reach a terminal.
pub fn shown(p: &Path) -> String {
    p.to_string_lossy().escape_debug().to_string()
}

/// Reads a regular file of at most `cap` bytes. Opened without blocking
/// (a FIFO swapped in would block the pass forever) and checked on the
/// opened file, so what is checked is what is read; read with at most
/// `cap + 1` bytes asked for, since /proc files say size 0.
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let f = open_regular(path)?;
    read_open(f, &shown(path), cap, what)
}

/// Opens `path` for reading without blocking on a FIFO or a device; a
/// directory or a regular file only.
pub fn open_any(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// [`open_any`], then refuses anything but a regular file.
pub fn open_regular(path: &Path) -> Result<File> {
    let f = open_any(path).with_context(|| shown(path))?;
    let m = f.metadata().with_context(|| shown(path))?;
    if !m.is_file() {
        bail!("{}: not a regular file", shown(path));
    }
    Ok(f)
}

/// Reads an opened file, `name` in messages, refusing more than `cap`
/// bytes (`what` names the cap).
pub fn read_open(f: File, name: &str, cap: u64, what: &str) -> Result<Vec<u8>> {
    let size = f.metadata().map(|m| m.size()).unwrap_or(0);
    let too_big = |n: u64| {
        anyhow::Error::new(Refused(format!(
            "{name} is {}: more than {} ({what})",
            crate::format::human_bytes(n),
            crate::format::human_bytes(cap)
        )))
    };
    if size > cap {
        return Err(too_big(size));
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .with_context(|| name.to_string())?;
    if buf.len() as u64 > cap {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

/// The identity of a running process netmem reads for: its filesystem
/// credentials, and its start time (a pid reused by another process is
/// not the process that was checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Filesystem user and group ids (the 4th field of `Uid:`/`Gid:`).
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

/// `/proc/PID/stat` fields, counted from the one after the command name.
pub const STAT_PPID: usize = 1;
/// Start time, in clock ticks after boot.
pub const STAT_START: usize = 19;

/// A numeric field of `/proc/PID/stat` ([`STAT_PPID`], [`STAT_START`]).
pub fn stat_field(pid: u32, nth: usize) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Counted after the command name, which may hold spaces and `)`.
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(nth)?.parse().ok()
}

impl Owner {
    /// The process as it is now.
    pub fn of(pid: u32) -> Result<Owner> {
        let status = read_capped(
            Path::new(&format!("/proc/{pid}/status")),
            64 << 10,
            "a process status",
        )?;
        let status = String::from_utf8_lossy(&status);
        let ids = |k: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (uid, gid) = (ids("Uid:"), ids("Gid:"));
        let (Some(&uid), Some(&gid)) = (uid.get(3), gid.get(3)) else {
            bail!("pid {pid}: no Uid/Gid in /proc/{pid}/status");
        };
        Ok(Owner {
            pid,
            uid,
            gid,
            groups: ids("Groups:"),
            start: stat_field(pid, STAT_START).ok_or_else(|| anyhow!("pid {pid} is gone"))?,
        })
    }

    /// Whether netmem's own rights are no more than the owner's for files:
    /// the owner is root (root's files are root's), or netmem runs as the
    /// owner's user.
    fn is_netmem_or_root(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        self.uid == 0 || self.uid == unsafe { libc::geteuid() }
    }

    /// `e` from an open or connect done as this owner, with the reason
    /// said when the owner was not allowed. The path is said as the process
    /// names it (not through /proc/PID/root).
    pub fn refused(&self, e: std::io::Error, what: &str, path: &Path) -> anyhow::Error {
        let root = format!("/proc/{}/root", self.pid);
        let path = match path.strip_prefix(&root) {
            Ok(inside) => Path::new("/").join(inside),
            Err(_) => path.to_path_buf(),
        };
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::Error::new(Refused(format!(
                "pid {} runs as uid {}, which may not {what} {} ({e}); netmem does for it only what it may",
                self.pid,
                self.uid,
                shown(&path)
            )))
        } else {
            anyhow::Error::new(e).context(format!("{what} {}", shown(&path)))
        }
    }
}

/// Runs `f` with `owner`'s filesystem rights: in a thread of its own whose
/// filesystem uid, gid and groups are the owner's (credentials are per
/// thread in Linux; the raw syscalls change this thread only, where
/// glibc's wrappers would change every thread of netmem). The kernel then
/// decides every open and UNIX connect as it would for the owner: search
/// rights on each directory, symlinks planted towards root's files, the
/// socket's mode. Without an owner, or when netmem's rights are no more
/// than the owner's, `f` runs here.
pub fn as_owner<T: Send>(owner: Option<&Owner>, f: impl FnOnce() -> T + Send) -> Result<T> {
    let Some(o) = owner.filter(|o| !o.is_netmem_or_root()) else {
        return Ok(f());
    };
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            become_owner(o)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("the reader for pid {} panicked", o.pid))?
    })
}

fn become_owner(o: &Owner) -> Result<()> {
    let cannot = |e: std::io::Error| {
        anyhow::Error::new(Refused(format!(
            "pid {} runs as uid {}: netmem cannot take that user's rights to read for it ({e}; it needs CAP_SETUID and CAP_SETGID, as root has); name the proxy with its flag instead (--haproxy, --nginx)",
            o.pid, o.uid
        )))
    };
    // SAFETY: a raw syscall with a pointer to `len` valid gid_t values; it
    // changes this thread's supplementary groups only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            o.groups.len(),
            o.groups.as_ptr() as *const libc::gid_t,
        )
    };
    if r != 0 {
        return Err(cannot(std::io::Error::last_os_error()));
    }
    // setfsgid/setfsuid return the previous id and never fail visibly:
    // asking again with an invalid id (-1) returns the id now in force.
    // SAFETY: raw syscalls on integers; they change this thread only.
    let now = unsafe {
        libc::syscall(libc::SYS_setfsgid, o.gid);
        libc::syscall(libc::SYS_setfsgid, u32::MAX)
    };
    if now as u32 != o.gid {
        return Err(cannot(std::io::Error::from_raw_os_error(libc::EPERM)));
    }
    // SAFETY: as above. The uid goes last: changing it from 0 drops the
    // thread's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, which is the point.
    let now = unsafe {
        libc::syscall(libc::SYS_setfsuid, o.uid);
        libc::syscall(libc::SYS_setfsuid, u32::MAX)
    };
    if now as u32 != o.uid {
        return Err(cannot(std::io::Error::from_raw_os_error(libc::EPERM)));
    }
    Ok(())
}

/// Why a process named `haproxy` (`name`) is not believed, or None when it
/// is: its executable (the file it runs, opened through /proc/PID/exe)
/// must be a regular file named `haproxy*` (`name*`), owned by root, that neither its group nor
/// others may write, in directories (as the process sees them) owned by
/// root that neither group nor others may write. An unprivileged user
/// cannot make such a file; a real HAProxy installed by a package is one.
/// `display` is the proxy as people write it (`HAProxy`), for the refusal.
pub fn check_executable(pid: u32, name: &str, display: &str) -> Option<String> {
    let link = format!("/proc/{pid}/exe");
    let path = match std::fs::read_link(&link) {
        Ok(p) => p,
        Err(e) => return Some(format!("its executable cannot be checked ({e})")),
    };
    // An executable replaced since it started (a package upgrade) is
    // still the file it runs; the link says so after its path.
    let named = PathBuf::from(
        path.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string(),
    );
    let exe = shown(&path);
    let m = match File::open(&link).and_then(|f| f.metadata()) {
        Ok(m) => m,
        Err(e) => return Some(format!("its executable {exe} cannot be opened ({e})")),
    };
    if !m.is_file() {
        return Some(format!("its executable {exe} is not a regular file"));
    }
    if m.uid() != 0 {
        return Some(format!(
            "its executable {exe} is owned by uid {}, not root",
            m.uid()
        ));
    }
    if m.permissions().mode() & 0o022 != 0 {
        return Some(format!(
            "its executable {exe} may be written by its group or others (mode {:o})",
            m.permissions().mode() & 0o7777
        ));
    }
    if !named
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(name))
    {
        return Some(format!("its executable {exe} is not {display}"));
    }
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    for dir in named.ancestors().skip(1) {
        let inside = root.join(dir.strip_prefix("/").unwrap_or(dir));
        // A directory gone since (a deleted executable's) proves nothing
        // either way; the file itself was checked above.
        let Ok(d) = std::fs::metadata(&inside) else {
            continue;
        };
        if d.uid() != 0 || d.permissions().mode() & 0o022 != 0 {
            return Some(format!(
                "its executable {exe} is in {}, which uid {} owns (mode {:o}): others than root could have put it there",
                shown(dir),
                d.uid(),
                d.permissions().mode() & 0o7777
            ));
        }
    }
    None
}

/// What a proxy's `/proc/PID/cmdline` or `environ` may take.
pub const PROC_MAX_BYTES: u64 = 1 << 20;

/// A running master of a proxy kind, believed: its pid, start time (to
/// check it is still the same process after a read), its namespace's
/// inode and its command line (read capped, after the executable check).
pub struct Master {
    pub pid: u32,
    pub started: u64,
    pub netns: u32,
    pub cmdline: Vec<u8>,
}

/// Every process named `name` whose parent is not (a master, not its
/// workers) in namespace `netns` (every one with `all`), believed only
/// when its executable is `name` as root installed it
/// ([`check_executable`]); each refused one is said in `refused` as
/// (pid, start time, why), with `hint` (how to read another) after it.
pub fn masters(
    name: &str,
    display: &str,
    hint: &str,
    netns: u32,
    all: bool,
    refused: &mut Vec<(u32, u64, String)>,
) -> Vec<Master> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let comm = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default()
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut out = Vec::new();
    for pid in pids {
        if comm(pid) != name {
            continue;
        }
        if stat_field(pid, STAT_PPID).is_some_and(|p| comm(p as u32) == name) {
            continue;
        }
        let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        let inum = ns.ino() as u32;
        if !all && inum != netns {
            continue;
        }
        let Some(started) = stat_field(pid, STAT_START) else {
            continue;
        };
        if let Some(why) = check_executable(pid, name, display) {
            refused.push((
                pid,
                started,
                format!("{name} pid {pid}: not trusted: {why}. {hint}"),
            ));
            continue;
        }
        let cmdline = match read_capped(
            std::path::Path::new(&format!("/proc/{pid}/cmdline")),
            PROC_MAX_BYTES,
            "netmem's cap for a command line",
        ) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("{name} pid {pid}: {e:#}");
                continue;
            }
        };
        // Still the process whose executable was checked.
        if stat_field(pid, STAT_START) != Some(started) {
            continue;
        }
        out.push(Master {
            pid,
            started,
            netns: inum,
            cmdline,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_refuse_what_is_too_big_and_what_is_not_a_file() {
        let dir = std::env::temp_dir().join(format!("netmem-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.cfg");
        std::fs::write(&f, vec![b'a'; 100]).unwrap();
        assert_eq!(read_capped(&f, 100, "t").unwrap().len(), 100);
        let e = read_capped(&f, 99, "a test cap").unwrap_err().to_string();
        assert!(
            e.contains("is 100: more than 99") && e.contains("a test cap"),
            "{e}"
        );
        // /proc files say size 0: the read itself is capped.
        let e = read_capped(Path::new("/proc/self/maps"), 10, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 10"), "{e}");
        let e = read_capped(&dir, 10, "t").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reader_with_another_users_rights_gets_what_that_user_may() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: taking another user's rights needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("netmem-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o755)).unwrap();
        let secret = dir.join("secret.cfg");
        let public = dir.join("public.cfg");
        std::fs::write(&secret, "root's").unwrap();
        std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(&public, "anyone's").unwrap();
        std::fs::set_permissions(&public, PermissionsExt::from_mode(0o644)).unwrap();
        // A link the user could have planted, towards root's file.
        let link = dir.join("planted.cfg");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let nobody = Owner {
            pid: 1,
            uid: 65534,
            gid: 65534,
            groups: vec![],
            start: 0,
        };
        let read = |p: &Path| as_owner(Some(&nobody), || std::fs::read(p)).unwrap();
        assert_eq!(read(&public).unwrap(), b"anyone's");
        for p in [&secret, &link] {
            let e = read(p).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{p:?}");
            let said = nobody.refused(e, "read", p).to_string();
            assert!(said.contains("uid 65534, which may not read"), "{said}");
        }
        // Only the reader's thread had the user's rights.
        assert_eq!(std::fs::read(&secret).unwrap(), b"root's");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_is_not_haproxy() {
        let me = std::process::id();
        let why =
            check_executable(me, "haproxy", "HAProxy").expect("the test binary is not HAProxy");
        assert!(why.contains("its executable"), "{why}");
        let o = Owner::of(me).unwrap();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(o.uid, unsafe { libc::geteuid() });
        assert_eq!(Some(o.start), stat_field(me, STAT_START));
        // Its own rights: run here, no thread needed.
        assert_eq!(as_owner(Some(&o), || 7).unwrap(), 7);
    }
}
