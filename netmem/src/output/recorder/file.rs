//! The incident files: created private (0600, `O_EXCL|O_NOFOLLOW`) under a
//! hidden temporary name in DIR, appended frame by frame while the
//! incident lasts, then given their name without replacing anything
//! (`fsutil::publish`); the census and findings made on a thread of their
//! own; the files already in DIR found at start; retention by count and
//! bytes (`model::incident::to_remove`).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

use super::{compress, Census, CENSUS_SOCKETS};
use crate::contract::Line;
use crate::doctor::{diagnose, Report, State};
use crate::model::incident::{incident_id, to_remove, valid_id, Cause};
use crate::output::incidents::{Incident, SUFFIX};
use crate::output::json::{socket_line, JsonSink};
use crate::output::Sink;

/// A temporary file's suffix after `.ID.jsonl.zst`.
const PART: &str = ".part";
/// How long closing an incident waits for its census and findings.
const CENSUS_WAIT: Duration = Duration::from_secs(10);

/// What the census and the doctor need at a trigger.
pub struct Moment {
    pub ts: String,
    pub id: String,
    pub head: Vec<u8>,
    pub frames: Vec<Arc<Vec<u8>>>,
    pub top: Vec<String>,
    pub census: Census,
    pub names: crate::model::names::Names,
    pub kernel_log: Vec<String>,
    pub keep: Duration,
}

/// An incident being written.
pub struct Open {
    pub id: String,
    pub started: SystemTime,
    pub until: SystemTime,
    pub written: u64,
    file: File,
    part: PathBuf,
    path: PathBuf,
    census: Option<Receiver<Vec<u8>>>,
}

impl Open {
    pub fn create(dir: &Path, cause: Cause, now: SystemTime, until: SystemTime) -> Result<Open> {
        let stamp = humantime::format_rfc3339_seconds(now).to_string();
        for n in 1..1000 {
            let id = incident_id(&stamp, cause, n);
            let path = dir.join(format!("{id}{SUFFIX}"));
            let part = dir.join(format!(".{id}{SUFFIX}{PART}"));
            if std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            match crate::fsutil::create_private(&part) {
                Ok(file) => {
                    return Ok(Open {
                        id,
                        started: now,
                        until,
                        written: 0,
                        file,
                        part,
                        path,
                        census: None,
                    })
                }
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        anyhow::bail!("no free incident name in {} for {stamp}", dir.display())
    }

    pub fn append(&mut self, z: &[u8]) -> Result<()> {
        self.file
            .write_all(z)
            .and_then(|_| self.file.flush())
            .with_context(|| format!("cannot write {}", self.part.display()))?;
        self.written += z.len() as u64;
        Ok(())
    }

    /// The census of the top groups and the doctor's findings over the
    /// minutes before, on a thread of their own: a dump of thousands of
    /// sockets must not hold up the ring buffer.
    pub fn start_census(&mut self, m: Moment) {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("netmem-incident".into())
            .spawn(move || {
                let _ = tx.send(census_and_findings(m));
            });
        if spawned.is_ok() {
            self.census = Some(rx);
        }
    }

    /// Appends the census and findings once they are there (`wait`: for a
    /// moment, at close).
    pub fn take_census(&mut self, wait: bool) -> Result<()> {
        let Some(rx) = &self.census else {
            return Ok(());
        };
        let got = if wait {
            rx.recv_timeout(CENSUS_WAIT).ok()
        } else {
            rx.try_recv().ok()
        };
        if let Some(lines) = got {
            self.census = None;
            if !lines.is_empty() {
                self.append(&compress(&lines)?)?;
            }
        } else if wait {
            self.census = None;
        }
        Ok(())
    }

    /// Gives the file its name; returns its id and size.
    pub fn finish(mut self) -> Result<(String, u64)> {
        self.take_census(true)?;
        self.file
            .sync_all()
            .with_context(|| format!("cannot write {}", self.part.display()))?;
        crate::fsutil::publish(&self.part, &self.path)?;
        Ok((self.id, self.written))
    }
}

/// The socket lines of the top groups, then the doctor's report on the
/// head and ring (read as `doctor --from` reads a recording).
fn census_and_findings(m: Moment) -> Vec<u8> {
    let mut out = Vec::new();
    for g in &m.top {
        for r in (m.census)(g, &m.names).iter().take(CENSUS_SOCKETS) {
            let _ = Line::Socket(socket_line(&m.ts, g, r)).write(&mut out);
        }
    }
    let mut bytes = m.head.clone();
    for f in &m.frames {
        bytes.extend_from_slice(f);
    }
    let mut state = State::default();
    let window = &mut state.window;
    let _ = crate::sources::recording::read_from(std::io::Cursor::new(bytes), &m.id, |l| {
        window.feed(l)
    });
    if let Some(h) = state.window.host.take() {
        state.host = h;
    }
    state.add_kernel_log(m.kernel_log.iter().map(String::as_str));
    state.kernel_log_source = Some("/dev/kmsg (the kernel's own lines)".into());
    let report = Report {
        source: format!(
            "the flight recorder's last {} before incident {}",
            humantime::format_duration(m.keep),
            m.id
        ),
        kernel_release: state.host.kernel_release.clone(),
        namespace: state.host.traced_netns().unwrap_or("as recorded".into()),
        unreadable: state.window.dropped(),
        findings: diagnose(&state),
    };
    let mut json = JsonSink::new(out);
    let _ = json.report(&report);
    std::mem::take(json.get_mut())
}

/// The incident files in DIR (regular files named by an id), and any
/// temporary one a crash left: named now, as the recording it is.
pub fn scan(dir: &Path) -> Result<Vec<Incident>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        // Only netmem's own regular files (DIR is private; this is the
        // second look).
        // SAFETY: geteuid has no preconditions.
        if !m.file_type().is_file() || m.uid() != unsafe { libc::geteuid() } {
            continue;
        }
        let (id, path) = match name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(PART))
            .and_then(|n| n.strip_suffix(SUFFIX))
        {
            Some(id) if valid_id(id) => {
                let to = dir.join(format!("{id}{SUFFIX}"));
                if crate::fsutil::publish(&e.path(), &to).is_err() {
                    continue;
                }
                (id.to_string(), to)
            }
            _ => match name.strip_suffix(SUFFIX) {
                Some(id) if valid_id(id) => (id.to_string(), e.path()),
                _ => continue,
            },
        };
        let Some((started, cause)) = parse_id(&id) else {
            continue;
        };
        let bytes = std::fs::symlink_metadata(&path)
            .map(|m| m.len())
            .unwrap_or(0);
        out.push(Incident {
            id,
            cause,
            started,
            bytes,
            ongoing: false,
        });
    }
    Ok(out)
}

/// An id's start time and cause.
fn parse_id(id: &str) -> Option<(SystemTime, Cause)> {
    let (stamp, rest) = id.split_at_checked(20)?;
    let (date, time) = stamp.split_once('T')?;
    let t = humantime::parse_rfc3339(&format!("{date}T{}", time.replace('-', ":"))).ok()?;
    let rest = rest.strip_prefix('-')?;
    let cause = Cause::ALL.iter().copied().find(|c| {
        rest == c.name()
            || rest
                .strip_prefix(c.name())
                .and_then(|n| n.strip_prefix('-'))
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    })?;
    Some((t, cause))
}

/// Removes the oldest incident files past `max` files or `max_bytes`
/// bytes; returns their ids.
pub fn retain(dir: &Path, max: usize, max_bytes: u64) -> Result<Vec<String>> {
    let files: Vec<(String, u64)> = scan(dir)?.into_iter().map(|i| (i.id, i.bytes)).collect();
    let mut removed = Vec::new();
    for id in to_remove(&files, max, max_bytes) {
        let p = dir.join(format!("{id}{SUFFIX}"));
        // Only a regular file (scan looked; remove_file never follows a link).
        if std::fs::remove_file(&p).is_ok() {
            removed.push(id);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back() {
        let (t, c) = parse_id("2026-12-06T21-03-04Z-abort-tcp-mem-3").unwrap();
        assert_eq!(c, Cause::AbortTcpMem);
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-12-06T21:03:04Z"
        );
        assert_eq!(
            parse_id("2026-12-06T21-03-04Z-manual").unwrap().1,
            Cause::Manual
        );
        assert!(parse_id("2026-12-06T21-03-04Z-nothing").is_none());
    }
}
