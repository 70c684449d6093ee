//! The flight recorder (`--flight-recorder DIR` of `serve` and `record`):
//! the JSON lines `trace --json` writes, kept in memory as one zstd frame
//! per interval for the last `--keep` (within `--ring-max` bytes), and,
//! when a trigger fires (the rules are `model::incident`), written to an
//! incident file: an ordinary recording of the host, probes and proxy
//! lines, the ring's minutes before, the trigger, a census of the top
//! groups' sockets and the doctor's findings at that moment, then
//! `--after` more. `file.rs` writes the files and keeps retention.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

use super::incidents::{Incidents, Request};
use super::json::JsonSink;
use super::Sink;
use crate::contract::{IncidentLine, Line};
use crate::hooks::HookStatus;
use crate::model::incident::{Trigger, Triggers, MAX_INCIDENT};
use crate::model::names::Names;
use crate::model::proxy::ProxyView;
use crate::model::types::SockRecord;
use crate::model::{Event, Interval, Summary};
use crate::sources::host::Host;

mod file;

use file::Open;

/// Groups whose sockets the census at a trigger lists, the most memory
/// first, and sockets per group.
pub const CENSUS_GROUPS: usize = 5;
pub const CENSUS_SOCKETS: usize = 20;
/// Kernel log messages kept for the doctor's findings at a trigger.
const KERNEL_LOG_KEPT: usize = 1000;

/// The top groups' sockets at a trigger, by group name: `top`'s
/// drill-down, which the command gives (`sources::gather`), so the sink
/// reads nothing itself.
pub type Census = Arc<dyn Fn(&str, &Names) -> Vec<SockRecord> + Send + Sync>;

pub struct Config {
    pub dir: std::path::PathBuf,
    pub keep: Duration,
    pub ring_max: u64,
    pub after: Duration,
    pub incidents_max: usize,
    pub incidents_max_bytes: u64,
}

/// A frame of the ring: when it was cut, and its zstd bytes.
struct Frame {
    ts: SystemTime,
    z: Arc<Vec<u8>>,
}

pub struct RecorderSink {
    cfg: Config,
    incidents: Arc<Incidents>,
    census: Census,
    /// The run's names (`Sink::names`): the top groups' names, and the
    /// census's at a trigger.
    names: Names,
    /// The lines since the last frame.
    json: JsonSink<Vec<u8>>,
    /// The host, probes and latest proxy lines: every incident file
    /// starts with them.
    head: JsonSink<Vec<u8>>,
    host_line: Vec<u8>,
    probes_line: Vec<u8>,
    proxy_lines: Vec<u8>,
    host: Option<Host>,
    ring: VecDeque<Frame>,
    ring_bytes: u64,
    rules: Triggers,
    open: Option<Open>,
    /// The last interval's largest groups, by name.
    top: Vec<String>,
    /// Kernel log messages (their patterns) seen with the kernel's
    /// facility, for the doctor's findings at a trigger.
    kernel_log: Vec<String>,
}

impl RecorderSink {
    /// Prepares DIR (0700; a link is refused) and lists the incidents
    /// already in it.
    pub fn new(cfg: Config, incidents: Arc<Incidents>, census: Census) -> Result<RecorderSink> {
        crate::fsutil::private_dir(&cfg.dir)?;
        incidents.found(file::scan(&cfg.dir)?);
        Ok(RecorderSink {
            cfg,
            incidents,
            census,
            names: Names::default(),
            json: JsonSink::new(Vec::new()),
            head: JsonSink::new(Vec::new()),
            host_line: Vec::new(),
            probes_line: Vec::new(),
            proxy_lines: Vec::new(),
            host: None,
            ring: VecDeque::new(),
            ring_bytes: 0,
            rules: Triggers::default(),
            open: None,
            top: Vec::new(),
            kernel_log: Vec::new(),
        })
    }

    /// What the ring holds now: (frames, compressed bytes).
    pub fn ring_size(&self) -> (usize, u64) {
        (self.ring.len(), self.ring_bytes)
    }

    /// The lines since the last frame, as a frame: into the ring, and into
    /// the open incident's file.
    fn cut(&mut self, now: SystemTime) -> Result<()> {
        let buf = std::mem::take(self.json.get_mut());
        if buf.is_empty() {
            return Ok(());
        }
        let z = Arc::new(compress(&buf)?);
        if let Some(o) = &mut self.open {
            o.append(&z)?;
            self.incidents.update(&o.id, o.written, true);
        }
        self.ring_bytes += z.len() as u64;
        self.ring.push_back(Frame { ts: now, z });
        while let Some(f) = self.ring.front() {
            let old = now.duration_since(f.ts).unwrap_or_default() > self.cfg.keep;
            if !old && self.ring_bytes <= self.cfg.ring_max {
                break;
            }
            self.ring_bytes -= f.z.len() as u64;
            self.ring.pop_front();
        }
        Ok(())
    }

    /// The head lines, as one frame.
    fn head_frame(&self) -> Result<Vec<u8>> {
        let mut head = self.host_line.clone();
        head.extend_from_slice(&self.probes_line);
        head.extend_from_slice(&self.proxy_lines);
        compress(&head)
    }

    /// Acts on what fired: a new incident, or the open one extended.
    fn fire(&mut self, t: Trigger, now: SystemTime) -> Result<()> {
        if let Some(o) = &self.open {
            if now.duration_since(o.started).unwrap_or_default() >= MAX_INCIDENT {
                self.close()?;
            }
        }
        let ts = crate::format::rfc3339(now);
        if let Some(o) = &mut self.open {
            o.until = o.until.max(now + self.cfg.after);
            let line = incident_line(&ts, &o.id, &t, false);
            o.append(&compress(&line)?)?;
            self.incidents.update(&o.id, o.written, true);
            return Ok(());
        }
        // The events since the last frame belong to the minutes before.
        self.cut(now)?;
        let frames: Vec<Arc<Vec<u8>>> = self.ring.iter().map(|f| f.z.clone()).collect();
        let head = self.head_frame()?;
        let mut o = Open::create(&self.cfg.dir, t.cause, now, now + self.cfg.after)?;
        o.append(&head)?;
        for z in &frames {
            o.append(z)?;
        }
        o.append(&compress(&incident_line(&ts, &o.id, &t, true))?)?;
        log::warn!(
            "flight recorder: incident {} ({}): {}",
            o.id,
            t.cause.name(),
            crate::format::printable(&t.detail)
        );
        o.start_census(file::Moment {
            ts,
            id: o.id.clone(),
            head,
            frames,
            top: self.top.clone(),
            census: self.census.clone(),
            names: self.names.clone(),
            kernel_log: self.kernel_log.clone(),
            keep: self.cfg.keep,
        });
        self.incidents.started(super::incidents::Incident {
            id: o.id.clone(),
            cause: t.cause,
            started: now,
            bytes: o.written,
            ongoing: true,
        });
        self.open = Some(o);
        Ok(())
    }

    /// Ends the open incident: its census and findings (waited for a
    /// moment), its name given, retention applied.
    fn close(&mut self) -> Result<()> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        let (id, bytes) = o.finish()?;
        self.incidents.update(&id, bytes, false);
        let removed = file::retain(
            &self.cfg.dir,
            self.cfg.incidents_max,
            self.cfg.incidents_max_bytes,
        )?;
        self.incidents.removed(&removed);
        Ok(())
    }

    /// The census and findings, when the worker has them.
    fn pump(&mut self) -> Result<()> {
        if let Some(o) = &mut self.open {
            o.take_census(false)?;
        }
        Ok(())
    }

    /// Requests from outside (manual, kernel log), then the rules' verdicts.
    fn requests(&mut self, now: SystemTime) -> Result<()> {
        for r in self.incidents.take_requests() {
            let t = match r {
                Request::Manual(how) => self.rules.manual(how, now),
                Request::KernelLog { facility, message } => {
                    let t = self.rules.kernel_log(facility, message, now);
                    if facility == crate::model::incident::KERNEL_FACILITY {
                        if let Some(m) = message {
                            // The latest only: the doctor counts and
                            // dates them, and a storm must not grow this.
                            if self.kernel_log.len() >= KERNEL_LOG_KEPT {
                                self.kernel_log.remove(0);
                            }
                            self.kernel_log.push(m.to_string());
                        }
                    }
                    t
                }
            };
            if let Some(t) = t {
                self.fire(t, now)?;
            }
        }
        Ok(())
    }

    /// Closes the open incident once its "after" window has passed.
    fn tick(&mut self, now: SystemTime) -> Result<()> {
        self.requests(now)?;
        self.pump()?;
        if self.open.as_ref().is_some_and(|o| now >= o.until) {
            self.close()?;
        }
        Ok(())
    }
}

fn compress(buf: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(buf, super::record::LEVEL).context("zstd compression failed")
}

fn incident_line(ts: &str, id: &str, t: &Trigger, started: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = Line::Incident(IncidentLine {
        ts: Some(ts.to_string()),
        id: Some(id.to_string()),
        cause: Some(t.cause.name().to_string()),
        detail: Some(t.detail.clone()),
        started: Some(started),
    })
    .write(&mut out);
    out
}

impl Sink for RecorderSink {
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
        self.json.names(n);
        self.head.names(n);
    }
    fn host(&mut self, h: &Host) -> Result<()> {
        self.head.host(h)?;
        self.host_line = std::mem::take(self.head.get_mut());
        self.host = Some(h.clone());
        Ok(())
    }
    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        self.head.coverage(hooks)?;
        self.probes_line = std::mem::take(self.head.get_mut());
        Ok(())
    }
    fn proxies(&mut self, p: &[Arc<ProxyView>]) -> Result<()> {
        self.head.proxies(p)?;
        self.proxy_lines = std::mem::take(self.head.get_mut());
        // In time too: a proxy that changed during the minutes before.
        self.json.get_mut().extend_from_slice(&self.proxy_lines);
        Ok(())
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        self.json.event(e)?;
        if let Some(t) = self.rules.event(e) {
            self.fire(t, e.ts)?;
        }
        Ok(())
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        self.json.interval(i)?;
        // The one place the recorder names groups.
        self.top = i
            .groups
            .iter()
            .take(CENSUS_GROUPS)
            .map(|(k, _)| self.names.group_name(k))
            .collect();
        let now = SystemTime::now().max(i.ts);
        self.cut(now)?;
        for t in self.rules.interval(i) {
            self.fire(t, now)?;
        }
        self.tick(now)
    }
    fn summary(&mut self, s: &Summary) -> Result<()> {
        self.json.summary(s)?;
        let now = SystemTime::now();
        self.requests(now)?;
        self.cut(now)?;
        self.close()
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Serve and record hand the model to their own sink and to the recorder:
/// the recorder's failure (a full disk) is logged once per incident, never
/// the end of the trace.
pub struct Tee<'a> {
    pub main: &'a mut dyn Sink,
    pub recorder: RecorderSink,
    failed: bool,
}

impl<'a> Tee<'a> {
    pub fn new(main: &'a mut dyn Sink, recorder: RecorderSink) -> Tee<'a> {
        Tee {
            main,
            recorder,
            failed: false,
        }
    }

    fn rec(&mut self, r: Result<()>) {
        match r {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                log::error!("flight recorder: {e:#}");
            }
            Err(_) => {}
        }
    }
}

impl Sink for Tee<'_> {
    fn names(&mut self, n: &Names) {
        self.recorder.names(n);
        self.main.names(n);
    }
    fn host(&mut self, h: &Host) -> Result<()> {
        let r = self.recorder.host(h);
        self.rec(r);
        self.main.host(h)
    }
    fn coverage(&mut self, h: &[HookStatus]) -> Result<()> {
        let r = self.recorder.coverage(h);
        self.rec(r);
        self.main.coverage(h)
    }
    fn proxies(&mut self, p: &[Arc<ProxyView>]) -> Result<()> {
        let r = self.recorder.proxies(p);
        self.rec(r);
        self.main.proxies(p)
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        let r = self.recorder.event(e);
        self.rec(r);
        self.main.event(e)
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        let r = self.recorder.interval(i);
        self.rec(r);
        self.main.interval(i)
    }
    fn summary(&mut self, s: &Summary) -> Result<()> {
        let r = self.recorder.summary(s);
        self.rec(r);
        self.main.summary(s)
    }
    fn flush(&mut self) -> Result<()> {
        self.main.flush()
    }
}

#[cfg(test)]
mod tests;
