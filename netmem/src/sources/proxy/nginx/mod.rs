//! nginx: its names and buffer settings, from its configuration (nginx has
//! no runtime API that lists them). `server` blocks name the ports they
//! listen on, `upstream` blocks and `proxy_pass` targets the servers; see
//! `config.rs` for the names and `syntax.rs`/`files.rs` for the reading.
//!
//! A detected nginx is read through its master's root (`/proc/PID/root`)
//! with its owner's rights, from the configuration its command line names
//! (`-c FILE`, `-p PREFIX`), else Debian's `/etc/nginx/nginx.conf`. The
//! master re-reads its configuration on a reload (SIGHUP) and starts new
//! workers when the new one is good; netmem reads it again when the
//! master's workers change, so it names what nginx runs, not a file edited
//! and not yet reloaded (nor one nginx refused).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::trust::{self, Owner, Refused};
use super::{Proxy, Reading};
use crate::model::proxy::{Knob, Meaning, ProxyMap, Side};

mod config;
mod detect;
mod files;
mod syntax;
#[cfg(test)]
mod tests;

pub use detect::detect;
use files::{load, Files, Loaded};

/// nginx's buffer settings netmem reads, by the names nginx reads them
/// under. `proxy_buffer_size` is nginx's own first buffer of a response
/// (its memory, not a socket's); `sndbuf=`/`rcvbuf=` are parameters of a
/// `server` block's `listen`, set on the listening socket and inherited by
/// the accepted ones. nginx sets no buffer size on its connections to
/// servers, so it has no server-side knob (the doctor then says so).
/// `proxy_buffers` and `proxy_busy_buffers_size` have no meaning in the
/// model: the proxy line notes them.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "proxy_buffer_size",
        meaning: Meaning::ProxyBuffer,
    },
    Knob {
        name: "rcvbuf",
        meaning: Meaning::Rcvbuf(Side::Client),
    },
    Knob {
        name: "sndbuf",
        meaning: Meaning::Sndbuf(Side::Client),
    },
];

/// Debian's configuration, when the command line names none.
pub const DEFAULT_CONFIG: &str = "/etc/nginx/nginx.conf";
/// A master's children list at most (its workers' pids).
const CHILDREN_MAX_BYTES: u64 = 64 << 10;
/// A configuration that could not be read is tried again after this.
const RETRY: Duration = Duration::from_secs(10);

/// One nginx: a running master, or a configuration given with `--nginx`.
pub struct Nginx {
    /// `--nginx PATH` as given.
    explicit: Option<PathBuf>,
    /// The main configuration file, as nginx names it.
    config: PathBuf,
    /// A detected master: its files are read through its root.
    pid: Option<u32>,
    /// The master's start time, as checked.
    started: u64,
    netns: u32,
    /// What the last read gave, and what it depends on: the master's
    /// workers (a reload replaces them), and the files' signatures.
    last: Option<Last>,
    once: bool,
}

struct Last {
    workers: Option<Vec<u32>>,
    sigs: Vec<Sig>,
    reading: (Option<ProxyMap>, Vec<String>),
    at: Instant,
}

/// A file or directory as last read: path (as opened), mtime (ns), size,
/// inode. A directory's changes when an entry is added or removed.
type Sig = (PathBuf, i64, u64, u64);

fn sig_of(p: &Path) -> Option<Sig> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((
        p.to_path_buf(),
        m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        m.size(),
        m.ino(),
    ))
}

/// The machine's page size: nginx's default buffer sizes are one page.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Reads files as a process sees them (through `/proc/PID/root`), with
/// the rights of the thread it runs on (`trust::as_owner`), within caps.
struct Rooted {
    root: Option<PathBuf>,
    owner: Option<Owner>,
    /// Every file and directory opened, as opened.
    opened: Vec<PathBuf>,
}

impl Rooted {
    fn resolve(&self, p: &Path) -> PathBuf {
        match &self.root {
            Some(r) if p.is_absolute() => r.join(p.strip_prefix("/").unwrap_or(p)),
            _ => p.to_path_buf(),
        }
    }

    fn refused(&self, e: std::io::Error, p: &Path) -> anyhow::Error {
        match &self.owner {
            Some(o) => o.refused(e, "read", p),
            None => anyhow::Error::new(e).context(trust::shown(p)),
        }
    }
}

impl Files for Rooted {
    fn read(&mut self, path: &Path, cap: u64) -> Result<Vec<u8>> {
        let p = self.resolve(path);
        // Checked before opening as well: opening a device node can have
        // side effects.
        if let Ok(m) = std::fs::metadata(&p) {
            if !m.is_file() {
                bail!("{}: not a regular file", trust::shown(path));
            }
        }
        let f = trust::open_any(&p).map_err(|e| self.refused(e, &p))?;
        // And on the opened file: a FIFO swapped in since would block the
        // pass on its read.
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            bail!("{}: not a regular file", trust::shown(path));
        }
        self.opened.push(p);
        trust::read_open(
            f,
            &trust::shown(path),
            cap,
            "what is left of netmem's cap for one nginx configuration",
        )
    }

    fn list(&mut self, dir: &Path, max: usize) -> Result<Vec<String>> {
        let p = self.resolve(dir);
        let rd = std::fs::read_dir(&p).map_err(|e| self.refused(e, &p))?;
        self.opened.push(p);
        let mut out = Vec::new();
        for e in rd {
            if out.len() >= max {
                return Err(anyhow::Error::new(Refused(format!(
                    "{}: more than {max} entries (netmem's cap)",
                    trust::shown(dir)
                ))));
            }
            let Ok(e) = e else { continue };
            out.push(e.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }
}

impl Nginx {
    /// `--nginx PATH`: a configuration file (or a directory holding
    /// `nginx.conf`), naming the sockets of `netns`.
    pub fn explicit(path: &Path, netns: u32, once: bool) -> Nginx {
        let config = if path.is_dir() {
            path.join("nginx.conf")
        } else {
            path.to_path_buf()
        };
        Nginx {
            explicit: Some(path.to_path_buf()),
            config,
            pid: None,
            started: 0,
            netns,
            last: None,
            once,
        }
    }

    /// A detected master, checked at `started`.
    pub(super) fn running(pid: u32, started: u64, config: PathBuf, netns: u32) -> Nginx {
        Nginx {
            explicit: None,
            config,
            pid: Some(pid),
            started,
            netns,
            last: None,
            once: false,
        }
    }

    /// The master now, whose rights its files are read with; an error
    /// when the process checked at detection is gone.
    fn owner(&self) -> Result<Option<Owner>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        match Owner::of(pid) {
            Ok(o) if o.start == self.started => Ok(Some(o)),
            _ => bail!(
                "nginx pid {pid} is no longer running; running nginx masters are looked for again within {} s",
                super::REDETECT.as_secs()
            ),
        }
    }

    /// The master's workers (its children), sorted: a reload replaces
    /// them. None when the kernel does not list children.
    fn workers(&self) -> Option<Vec<u32>> {
        let pid = self.pid?;
        let raw = trust::read_capped(
            Path::new(&format!("/proc/{pid}/task/{pid}/children")),
            CHILDREN_MAX_BYTES,
            "netmem's cap for a process's children",
        )
        .ok()?;
        let mut w: Vec<u32> = String::from_utf8_lossy(&raw)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        w.sort_unstable();
        Some(w)
    }

    /// Whether what the last read depended on is as it was.
    fn unchanged(&self, last: &Last, workers: &Option<Vec<u32>>) -> bool {
        let failed = last.reading.0.is_none();
        if failed && last.at.elapsed() >= RETRY {
            return false;
        }
        match (workers, &last.workers) {
            // A master: its workers say when it re-read its files.
            (Some(now), Some(before)) => now == before,
            // A configuration given by path (or a kernel without children
            // lists): its files say.
            _ => last.sigs.iter().all(|s| sig_of(&s.0).as_ref() == Some(s)),
        }
    }

    fn load(&self, owner: Option<Owner>) -> Result<(Loaded, Vec<Sig>)> {
        let root = self
            .pid
            .map(|pid| PathBuf::from(format!("/proc/{pid}/root")))
            .filter(|r| std::fs::read_link(r).is_ok());
        let mut files = Rooted {
            root,
            owner: owner.clone(),
            opened: Vec::new(),
        };
        let config = self.config.clone();
        let loaded = trust::as_owner(owner.as_ref(), || load(&mut files, &config))??;
        let sigs = files.opened.iter().filter_map(|p| sig_of(p)).collect();
        Ok((loaded, sigs))
    }
}

impl Proxy for Nginx {
    fn kind(&self) -> &'static str {
        "nginx"
    }

    fn source(&self) -> String {
        match (&self.explicit, self.pid) {
            (Some(p), _) => format!("--nginx {}", p.display()),
            (None, Some(pid)) => format!("pid {pid}, config {}", self.config.display()),
            (None, None) => format!("config {}", self.config.display()),
        }
    }

    fn netns(&self) -> u32 {
        self.netns
    }

    fn read(&mut self) -> Reading {
        let owner = match self.owner() {
            Ok(o) => o,
            Err(e) => {
                return Reading {
                    map: None,
                    problems: vec![format!("{e:#}")],
                }
            }
        };
        let workers = self.workers();
        if let Some(last) = self.last.as_ref().filter(|l| self.unchanged(l, &workers)) {
            return Reading {
                map: last.reading.0.clone(),
                problems: last.reading.1.clone(),
            };
        }
        let (map, problems, sigs) = match self.load(owner) {
            Ok((loaded, sigs)) => {
                let mut map = config::read_config(&loaded.directives, page_size());
                let mut notes = loaded.notes;
                notes.append(&mut map.notes);
                map.notes = notes;
                map.origin = vec![format!(
                    "names and tune: configuration {} ({} file{})",
                    self.config.display(),
                    loaded.files.len(),
                    if loaded.files.len() == 1 { "" } else { "s" }
                )];
                (Some(map), Vec::new(), sigs)
            }
            Err(e) => {
                let p = if e.chain().any(|c| c.is::<Refused>()) {
                    format!("nginx's configuration is not read: {e:#}")
                } else if self.explicit.is_some() {
                    format!(
                        "--nginx {}: {e:#}: give nginx's configuration file{}",
                        self.config.display(),
                        if self.once {
                            ""
                        } else {
                            " (netmem looks again at every interval)"
                        }
                    )
                } else {
                    format!(
                        "cannot read nginx's configuration {e:#} (netmem needs read access; run it as root or point --nginx at a readable copy)"
                    )
                };
                (
                    None,
                    vec![p],
                    vec![sig_of(&self.config)].into_iter().flatten().collect(),
                )
            }
        };
        self.last = Some(Last {
            workers,
            sigs,
            reading: (map.clone(), problems.clone()),
            at: Instant::now(),
        });
        Reading { map, problems }
    }
}
