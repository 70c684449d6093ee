//! `netmem record`'s output: the JSON-lines contract, exactly as `trace
//! --json` writes it, in one zstd frame per interval. Frames are appended
//! and flushed as each interval ends, so a crash loses at most the interval
//! under way, and a damaged frame costs only its own interval (the reader
//! resumes at the next frame). `--max-size` stops the recording, cleanly,
//! before the file would pass it.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::json::JsonSink;
use super::Sink;
use crate::doctor::Report;
use crate::format::human_bytes;
use crate::hooks::HookStatus;
use crate::model::{Event, Interval, Summary};
use crate::sources::host::Host;

/// zstd level: fast enough for one frame a second, and JSON lines compress
/// about 10:1 at it.
pub const LEVEL: i32 = 6;
/// Kept free under `--max-size` for the closing summary line.
pub const SUMMARY_RESERVE: u64 = 4096;

pub struct RecordSink {
    json: JsonSink<Vec<u8>>,
    file: File,
    path: PathBuf,
    written: u64,
    max_size: Option<u64>,
    /// The limit was reached: nothing more but the summary is written.
    full: bool,
    progress: bool,
    started: Instant,
    events: u64,
    lost: u64,
}

impl RecordSink {
    /// Creates `path`; anything already there (a file, a link) is replaced
    /// only with `force`, and a link is never followed.
    pub fn create(path: PathBuf, max_size: Option<u64>, force: bool) -> Result<RecordSink> {
        let file = crate::fsutil::create_new(&path, force)?;
        Ok(RecordSink {
            json: JsonSink::new(Vec::new()),
            file,
            path,
            written: 0,
            max_size,
            full: false,
            progress: std::io::stderr().is_terminal(),
            started: Instant::now(),
            events: 0,
            lost: 0,
        })
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Removes the file this sink created, once nothing could be recorded
    /// (no privileges, say), so that a retry is not refused for an empty
    /// file. Only if the name still leads to that very regular file: a
    /// device written in place (`-o /dev/null`), or whatever was put there
    /// since, is left alone.
    pub fn discard(self) {
        let ours = self.file.metadata();
        let there = std::fs::symlink_metadata(&self.path);
        if let (Ok(a), Ok(b)) = (ours, there) {
            if a.is_file() && b.is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino()) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    /// Compresses what the JSON sink wrote since the last frame into one
    /// frame and appends it. `closing`: the summary, which may use the
    /// reserve.
    fn frame(&mut self, closing: bool) -> Result<()> {
        let buf = std::mem::take(self.json.get_mut());
        if buf.is_empty() || (self.full && !closing) {
            return Ok(());
        }
        let z = zstd::bulk::compress(&buf, LEVEL).context("zstd compression failed")?;
        if let Some(max) = self.max_size {
            let limit = if closing {
                max
            } else {
                max.saturating_sub(SUMMARY_RESERVE)
            };
            if self.written + z.len() as u64 > limit {
                if !self.full {
                    self.full = true;
                    self.end_progress();
                    eprintln!(
                        "netmem record: {} reached --max-size {} after {}; stopping (the interval under way is not in it)",
                        crate::format::printable(&self.path.display().to_string()),
                        human_bytes(max),
                        self.elapsed()
                    );
                    crate::shutdown::request();
                }
                return Ok(());
            }
        }
        self.file
            .write_all(&z)
            .and_then(|_| self.file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.written += z.len() as u64;
        Ok(())
    }

    /// Time recorded, in whole seconds (`1m 23s`).
    fn elapsed(&self) -> humantime::FormattedDuration {
        humantime::format_duration(std::time::Duration::from_secs(
            self.started.elapsed().as_secs(),
        ))
    }

    fn end_progress(&mut self) {
        if self.progress {
            eprintln!();
            self.progress = false;
        }
    }
}

impl Sink for RecordSink {
    fn names(&mut self, n: &crate::model::names::Names) {
        self.json.names(n)
    }
    fn host(&mut self, h: &Host) -> Result<()> {
        self.json.host(h)
    }
    fn report(&mut self, r: &Report) -> Result<()> {
        self.json.report(r)
    }
    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        self.json.coverage(hooks)?;
        // The host and probes lines are on disk before the first event.
        self.frame(false)
    }
    fn proxies(&mut self, p: &[std::sync::Arc<crate::model::proxy::ProxyView>]) -> Result<()> {
        self.json.proxies(p)
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        self.events += 1;
        self.json.event(e)
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        self.json.interval(i)?;
        if let Some(l) = &i.live {
            self.lost = l.loss.lost_events;
        }
        self.frame(false)?;
        if self.progress && !self.full {
            eprint!(
                "\rrecording {}: {}, {}, {} events, {} lost   ",
                crate::format::printable(&self.path.display().to_string()),
                self.elapsed(),
                human_bytes(self.written),
                self.events,
                self.lost
            );
        }
        Ok(())
    }
    fn summary(&mut self, s: &Summary) -> Result<()> {
        self.json.summary(s)?;
        self.frame(true)?;
        self.end_progress();
        Ok(())
    }
    // Frames are written per interval, not per batch of events.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
