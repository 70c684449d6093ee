//! Shutdown, a process-wide service (the engine waits on it; the recording
//! sink at its size limit and the live view's `q` ask for it; `main`
//! installs it), from the first instruction: SIGINT, SIGTERM and SIGHUP are
//! blocked in every thread and taken by one thread of their own (sigwait),
//! so a signal is never lost, whether it arrives before the probes are
//! loaded, while the event loop runs, or while standard output is blocked
//! by a reader that stopped reading.
//!
//! The first signal asks the engine to stop: it reports the last partial
//! interval and the summary, detaches, and exits 0. If that has not
//! happened within [`GRACE`] (a stalled reader blocks the write), or on a
//! second signal, the process exits at once with status 128+signal: the
//! kernel detaches every program and link with the process's descriptors,
//! so nothing is left behind either way. SIGHUP is a stop like SIGTERM
//! (the terminal went away); run under `nohup` to ignore it. A daemon
//! (`netmem serve`) calls [`ignore_hangup`]: service managers send SIGHUP
//! to mean "reload", and there is nothing to reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a stop may take before the process exits without finishing.
pub const GRACE: Duration = Duration::from_secs(3);

static REQUESTED: AtomicBool = AtomicBool::new(false);
static BEFORE_FORCED_EXIT: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// `f` runs before a forced exit (a second signal, or a stop that outlived
/// [`GRACE`]): the live view restores the terminal with it.
pub fn before_forced_exit(f: fn()) {
    let _ = BEFORE_FORCED_EXIT.set(f);
}

fn forced_exit(code: i32) -> ! {
    if let Some(f) = BEFORE_FORCED_EXIT.get() {
        f();
    }
    std::process::exit(code)
}
static HANGUP_IGNORED: AtomicBool = AtomicBool::new(false);

/// From now on SIGHUP is taken and dropped instead of stopping netmem.
pub fn ignore_hangup() {
    HANGUP_IGNORED.store(true, Ordering::SeqCst);
}
static NOTIFY: Notify = Notify::const_new();

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the stop signals in this thread (so in every thread it starts
/// later) and starts the thread that takes them. Call it first in `main`.
pub fn install() {
    let set = signal_set();
    // SAFETY: a valid set; the old mask is not needed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // An ignored signal is discarded even while blocked. A shell starts
    // background jobs of a script with SIGINT ignored, and `kill -INT` must
    // still stop netmem: SIGINT and SIGTERM get their default back (they
    // are blocked, so sigwait takes them). SIGHUP stays ignored when it
    // was, as `nohup` wants.
    for s in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: resetting a disposition to SIG_DFL has no preconditions.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
    std::thread::Builder::new()
        .name("netmem-signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: waits for one of the blocked signals in `set`.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            if sig == libc::SIGHUP && HANGUP_IGNORED.load(Ordering::SeqCst) {
                log::info!("SIGHUP ignored: netmem serve has no configuration to reload");
                continue;
            }
            if REQUESTED.swap(true, Ordering::SeqCst) {
                // A second signal: the user insists.
                forced_exit(128 + sig);
            }
            // Wakes every `wait` already created; later ones see REQUESTED.
            NOTIFY.notify_waiters();
            std::thread::spawn(move || {
                std::thread::sleep(GRACE);
                // Still here: output is blocked (or shutdown hangs).
                forced_exit(128 + sig);
            });
        })
        .expect("cannot start the signal thread");
}

/// Asks the engine to stop as a signal would (report the last interval,
/// the summary, detach, exit 0), from inside netmem: a recording that
/// reached its size limit.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    NOTIFY.notify_waiters();
}

/// A stop was asked for (by a signal or [`request`]).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Resolves once a stop is asked for (at once if it already was).
pub async fn wait() {
    loop {
        let n = NOTIFY.notified();
        if requested() {
            return;
        }
        n.await;
    }
}
