//! `--flight-recorder DIR` and its limits, for `serve` and `record`: the
//! flags, and the start of the recorder (its sink, the shared incident
//! list, and the watcher thread that reads /dev/kmsg and takes SIGUSR1).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::parse_bounded;
use crate::output::incidents::{Incidents, Request};
use crate::output::recorder::{Config, RecorderSink};
use crate::sources::netns::Netns;

/// The ring's cap by default: 15 minutes of 1000 groups at 1 s take about
/// 20 MB of zstd frames (README, "Flight recorder"), with room to spare.
pub const DEFAULT_RING_MAX: &str = "32M";

#[derive(Args)]
pub struct FlightRecorderArgs {
    /// Keep the last minutes of the trace in memory and write an incident
    /// file (a recording) to DIR when something goes wrong: an abort on
    /// memory, memory pressure, orphans or TCP memory past their marks,
    /// the kernel's memory messages, lost events, SIGUSR1 (or POST
    /// /incidents on serve). DIR is created 0700.
    #[arg(long, value_name = "DIR")]
    pub flight_recorder: Option<PathBuf>,
    /// How much of the past the flight recorder keeps.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_keep, requires = "flight_recorder")]
    pub keep: Duration,
    /// How long an incident goes on being recorded after its trigger
    /// (pushed out by each later trigger while it lasts).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_after, requires = "flight_recorder")]
    pub after: Duration,
    /// The flight recorder's memory at most (compressed frames), e.g. 32M.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_RING_MAX, value_parser = parse_size, requires = "flight_recorder")]
    pub ring_max: u64,
    /// Incident files kept in DIR at most; the oldest go first.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000), requires = "flight_recorder")]
    pub incidents_max: u64,
    /// Bytes of incident files kept in DIR at most, e.g. 1G; the oldest go
    /// first (the newest is always kept).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size, requires = "flight_recorder")]
    pub incidents_max_bytes: u64,
}

fn parse_keep(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::from_secs(1), Duration::from_secs(24 * 3600))
}

fn parse_after(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::ZERO, Duration::from_secs(3600))
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{e} (examples: 32M, 1G)"))
}

/// A running flight recorder's parts a command keeps: the sink (to tee
/// into), the list (for serve's HTTP side), and the watcher (stopped when
/// this is dropped).
pub struct Recorder {
    pub sink: RecorderSink,
    pub incidents: Arc<Incidents>,
    _watcher: Watcher,
}

impl FlightRecorderArgs {
    /// The recorder, if `--flight-recorder` was given: DIR prepared, the
    /// census of `netns` (every namespace with `all`) ready for a trigger,
    /// /dev/kmsg read and SIGUSR1 taken from now on.
    pub fn start(&self, netns: &Netns, all: bool) -> Result<Option<Recorder>> {
        let Some(dir) = &self.flight_recorder else {
            return Ok(None);
        };
        let incidents = Arc::new(Incidents::new(dir.clone()));
        let ns = netns.try_clone()?;
        // The census at a trigger is top's drill-down, read where every
        // dump is (sources/gather).
        let census: crate::output::recorder::Census =
            Arc::new(move |group: &str, names: &crate::model::names::Names| {
                crate::sources::gather::sockets_of(&ns, all, group, false, names)
                    .unwrap_or_default()
            });
        let sink = RecorderSink::new(
            Config {
                dir: dir.clone(),
                keep: self.keep,
                ring_max: self.ring_max,
                after: self.after,
                incidents_max: self.incidents_max as usize,
                incidents_max_bytes: self.incidents_max_bytes,
            },
            incidents.clone(),
            census,
        )?;
        let watcher = Watcher::start(incidents.clone())?;
        Ok(Some(Recorder {
            sink,
            incidents,
            _watcher: watcher,
        }))
    }
}

/// Set by the SIGUSR1 handler, taken by the watcher.
static USR1: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    // An atomic store is all a signal handler may safely do here.
    USR1.store(true, Ordering::SeqCst);
}

/// How often the watcher looks at /dev/kmsg and SIGUSR1.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The thread that hands the recorder what happens outside the engine:
/// kernel log records (with their facility: the rules believe the
/// kernel's alone) and SIGUSR1.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(incidents: Arc<Incidents>) -> Result<Watcher> {
        // SAFETY: a zeroed sigaction with a handler that only stores to an
        // atomic; SA_RESTART so no other thread's system call fails with
        // EINTR because of it.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr1 as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) != 0 {
                anyhow::bail!("cannot take SIGUSR1: {}", std::io::Error::last_os_error());
            }
        }
        let mut kmsg = match crate::sources::kernel_log::Kmsg::open(true) {
            Ok(k) => Some(k),
            Err(e) => {
                log::warn!("flight recorder: {e:#}; the kernel's messages will not trigger");
                None
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netmem-recorder".into())
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    if USR1.swap(false, Ordering::SeqCst) {
                        incidents.request(Request::Manual("SIGUSR1"));
                    }
                    if let Some(k) = &mut kmsg {
                        for (facility, m) in k.read_classified() {
                            // Only the memory messages concern the rules.
                            if let (Some(facility), Some(m)) = (facility, m) {
                                incidents.request(Request::KernelLog {
                                    facility,
                                    message: Some(m.pattern()),
                                });
                            }
                        }
                    }
                    std::thread::sleep(WATCH_EVERY);
                }
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
