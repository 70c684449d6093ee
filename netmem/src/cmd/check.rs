//! `netmem check`: one line and an exit status for node-problem-detector's
//! custom plugin monitor (0 OK, 1 problem, 2 unknown). The figures come
//! from a running `netmem serve` on loopback when there is one, else from
//! one reading of the host (`sources::health`); the rule is
//! `model::health`. Whatever happens, the answer is one of the three
//! statuses within `--timeout`: an error, a hung serve or a stuck read is
//! "unknown", never a hang or another exit code.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use crate::cmd::args::parse_bounded;
use crate::model::health::{judge, Verdict};
use crate::sources::health;
use crate::sources::scrape::ScrapeError;

/// One line and an exit status for Kubernetes' node-problem-detector: 0
/// OK, 1 a problem (an abort on memory within --window, TCP memory above
/// tcp_mem's pressure mark, orphans past a quarter of tcp_max_orphans, a
/// cgroup's sockets under pressure of their own), 2 unknown. Reads a
/// running `netmem serve` on loopback, else the host once (no root needed;
/// as root, every namespace's aborts).
#[derive(clap::Args)]
pub struct Args {
    /// Where `netmem serve` listens: a loopback ADDR:PORT (it must
    /// answer), `auto` (serve's default address, read the host if nothing
    /// listens there) or `off` (read the host).
    #[arg(long, value_name = "auto|off|ADDR:PORT", default_value = "auto", value_parser = parse_serve)]
    serve: ServeArg,
    /// An abort on memory this recent is a problem.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_window)]
    window: Duration,
    /// Answer within this long, whatever serve or the host does
    /// (node-problem-detector's own timeout is 5s by default).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Where a check without serve keeps the previous reading's abort
    /// counters (in a directory of its own, 0700), or `none`.
    #[arg(long, value_name = "FILE|none", default_value = health::STATE)]
    state: String,
}

/// `--serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeArg {
    Auto,
    Off,
    At(SocketAddr),
}

fn parse_serve(s: &str) -> Result<ServeArg, String> {
    match s {
        "auto" => Ok(ServeArg::Auto),
        "off" => Ok(ServeArg::Off),
        _ => {
            let a: SocketAddr = s.parse().map_err(|_| {
                format!("expected auto, off or a loopback ADDR:PORT such as 127.0.0.1:10077 or [::1]:10077, not {s:?}")
            })?;
            // Another machine's serve would judge that machine's kernel.
            if !a.ip().is_loopback() {
                return Err(format!(
                    "{a} is not a loopback address: check judges this node, so it reads this node's serve (127.0.0.1 or [::1])"
                ));
            }
            Ok(ServeArg::At(a))
        }
    }
}

fn parse_window(s: &str) -> Result<Duration, String> {
    parse_bounded(
        s,
        Duration::from_secs(1),
        Duration::from_secs(7 * 24 * 3600),
    )
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_bounded(s, Duration::from_millis(100), Duration::from_secs(60))
}

impl Args {
    pub fn run(self) -> Result<ExitCode> {
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        // The work runs on a thread of its own so that the answer keeps
        // its deadline even if a read blocks (a hung procfs or cgroup
        // file, a namespace that cannot be entered): the process exits
        // with "unknown" and the thread with it.
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("check".into())
            .spawn(move || {
                let v = std::panic::catch_unwind(|| self.verdict(deadline)).unwrap_or_else(|_| {
                    Verdict::unknown("netmem check failed (a bug: please report it)")
                });
                let _ = tx.send(v);
            });
        let v = match worker {
            Ok(_) => rx.recv_timeout(timeout).unwrap_or_else(|_| {
                Verdict::unknown(&format!(
                    "no answer within {} (--timeout)",
                    humantime::format_duration(timeout)
                ))
            }),
            Err(e) => Verdict::unknown(&format!("cannot start: {e}")),
        };
        // A closed or full stdout is "unknown" (NPD reads none), never a
        // panic.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // Names in the line (a group, a cause) come from serve's series,
        // which carry process and proxy names: escaped as every output is.
        if writeln!(out, "{}", crate::format::printable(&v.line))
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(ExitCode::from(crate::model::health::Status::Unknown.code()));
        }
        Ok(ExitCode::from(v.status.code()))
    }

    fn verdict(&self, deadline: Instant) -> Verdict {
        let state = health::state_path(&self.state);
        // A little of the time is left for the reading and the line.
        let http_deadline = deadline - deadline.saturating_duration_since(Instant::now()) / 10;
        // serve's default --listen.
        let default = SocketAddr::from(([127, 0, 0, 1], crate::cmd::serve::DEFAULT_PORT));
        let (addr, must) = match self.serve {
            ServeArg::Off => {
                return judge(&health::one_reading(
                    self.window,
                    state.as_deref(),
                    SystemTime::now(),
                    "",
                ))
            }
            ServeArg::Auto => (default, false),
            ServeArg::At(a) => (a, true),
        };
        // Serve's port is one any user can bind while serve is down: a
        // listener that is neither root's nor this user's is not serve.
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if let Ok(Some(uid)) = health::listener_uid(addr) {
            if uid != 0 && uid != me {
                let why =
                    format!("{addr} is held by uid {uid}, not root: not netmem serve, not read");
                return match must {
                    true => Verdict::unknown(&why),
                    false => judge(&health::one_reading(
                        self.window,
                        state.as_deref(),
                        SystemTime::now(),
                        &why,
                    )),
                };
            }
        }
        match health::from_serve(addr, http_deadline, self.window, SystemTime::now()) {
            Ok(f) => judge(&f),
            Err(ScrapeError::Refused) if !must => judge(&health::one_reading(
                self.window,
                state.as_deref(),
                SystemTime::now(),
                &format!("no serve on {addr}"),
            )),
            Err(ScrapeError::Unauthorized) => Verdict::unknown(&format!(
                "serve on {addr} asks for credentials (basic auth), which check does not send: run a serve without --web.config.file on loopback for it, or give --serve off"
            )),
            Err(e) => Verdict::unknown(&format!("serve on {addr}: {e}")),
        }
    }
}
