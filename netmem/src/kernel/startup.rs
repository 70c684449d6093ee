//! Where start-up time goes. `-v` logs each phase with the time since
//! exec, so a slow start on some kernel can be explained without a profiler.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Called first thing in `main`, before any thread exists.
pub fn begin() {
    START.get_or_init(Instant::now);
    // glibc gives each thread that allocates an arena of its own, up to 8
    // per CPU, and an arena keeps what was freed in it. Hooks attach on a
    // thread each and passes run on workers: with the default, `trace` at
    // 100k sockets held 16 MB of heap; with two arenas, 6 MB, but in 10
    // starts of 24 the second arena kept 10 MB of start-up's memory that
    // malloc_trim could not hand back. One arena: never (36 starts), and
    // `serve` at 100k sockets holds 17 MB instead of 26. netmem's threads
    // allocate little at once, so sharing one arena costs nothing seen.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tunable; no thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Time since [`begin`] (zero when it was not called, as in tests).
pub fn elapsed() -> Duration {
    START.get().map(Instant::elapsed).unwrap_or_default()
}

/// Logs that `phase` is done (at debug level, so `-v` shows it).
pub fn mark(phase: &str) {
    log::debug!(
        "start-up: {phase} at {:.1} ms",
        elapsed().as_secs_f64() * 1e3
    );
}

/// Hands memory freed so far back to the kernel. Start-up parses vmlinux
/// BTF (aya's loader always does) on several threads, and glibc keeps what
/// they freed in per-thread arenas: 15-20 MB of RSS that a long-running
/// `trace` or `serve` would never use again. Also after each interval's
/// report: at 1000+ groups its pass and lines allocate megabytes that glibc
/// would otherwise keep (17 MB of heap instead of 6, for the same CPU).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
