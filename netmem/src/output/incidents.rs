//! The flight recorder's incidents as the rest of netmem sees them: the
//! list (what `GET /incidents` shows, and a live page will), the counts by
//! cause and the last one's time (metrics), and the requests waiting for
//! the recorder (a manual trigger, a kernel log record). Shared between
//! the recorder sink (`output/recorder/`), which alone writes files, and
//! whoever reads or asks: the HTTP thread, the watcher thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::model::incident::{valid_id, Cause};

/// One incident file.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Its file name without `.jsonl.zst` (no path).
    pub id: String,
    pub cause: Cause,
    pub started: SystemTime,
    pub bytes: u64,
    /// Still being written (its "after" window is open): not yet in DIR
    /// under its name.
    pub ongoing: bool,
}

/// What the recorder is asked to look at, from outside the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// A person asked: how (`SIGUSR1`, `POST /incidents`).
    Manual(&'static str),
    /// A /dev/kmsg record: its facility, and which memory message it is
    /// (its name), if any.
    KernelLog {
        facility: u32,
        message: Option<&'static str>,
    },
}

/// An incident file's name: `ID.jsonl.zst`.
pub const SUFFIX: &str = ".jsonl.zst";

#[derive(Debug, Default)]
struct Inner {
    /// Oldest first.
    list: Vec<Incident>,
    /// Incidents started, by cause, since netmem started.
    totals: [u64; Cause::COUNT],
    last: Option<SystemTime>,
    requests: Vec<Request>,
}

#[derive(Debug)]
pub struct Incidents {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl Incidents {
    pub fn new(dir: PathBuf) -> Incidents {
        Incidents {
            dir,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every incident, oldest first.
    pub fn list(&self) -> Vec<Incident> {
        self.lock().list.clone()
    }

    /// Incidents started since netmem started, by cause (indexed by
    /// `Cause as usize`), and when the last one started.
    pub fn totals(&self) -> ([u64; Cause::COUNT], Option<SystemTime>) {
        let i = self.lock();
        (i.totals, i.last)
    }

    pub fn request(&self, r: Request) {
        let mut i = self.lock();
        // Bounded: a flood of requests between two looks is one look.
        if i.requests.len() < 1024 {
            i.requests.push(r);
        }
    }

    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.lock().requests)
    }

    /// A finished incident's file, by id: only an id that is well formed
    /// and in the list leads to a file, so no request names a path.
    pub fn file_of(&self, id: &str) -> Option<PathBuf> {
        if !valid_id(id) {
            return None;
        }
        let i = self.lock();
        let inc = i.list.iter().find(|x| x.id == id && !x.ongoing)?;
        Some(self.dir.join(format!("{}{SUFFIX}", inc.id)))
    }

    /// Files found in DIR at start (a restart keeps its list).
    pub fn found(&self, mut found: Vec<Incident>) {
        found.sort_by(|a, b| a.id.cmp(&b.id));
        self.lock().list = found;
    }

    pub fn started(&self, inc: Incident) {
        let mut i = self.lock();
        i.totals[inc.cause as usize] += 1;
        i.last = Some(inc.started);
        i.list.push(inc);
    }

    /// An incident's size so far, and whether it is still being written.
    pub fn update(&self, id: &str, bytes: u64, ongoing: bool) {
        if let Some(x) = self.lock().list.iter_mut().find(|x| x.id == id) {
            x.bytes = bytes;
            x.ongoing = ongoing;
        }
    }

    pub fn removed(&self, ids: &[String]) {
        self.lock().list.retain(|x| !ids.contains(&x.id));
    }

    /// `GET /incidents`: `{"incidents":[{"id","cause","started","bytes",
    /// "ongoing"}...]}`, oldest first; names, never paths.
    pub fn to_json(&self) -> String {
        let list: Vec<serde_json::Value> = self
            .list()
            .iter()
            .map(|x| {
                serde_json::json!({
                    "id": x.id,
                    "cause": x.cause.name(),
                    "started": crate::format::rfc3339(x.started),
                    "bytes": x.bytes,
                    "ongoing": x.ongoing,
                    "file": format!("{}{SUFFIX}", x.id),
                })
            })
            .collect();
        let mut s = serde_json::json!({ "incidents": list }).to_string();
        s.push('\n');
        s
    }
}
