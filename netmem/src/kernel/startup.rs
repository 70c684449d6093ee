//! Where start-up time goes. `-v` logs each phase with the time since
//! exec, so a slow start on some kernel can be explained without a profiler.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Called first thing in `main`.
pub fn begin() {
    START.get_or_init(Instant::now);
}

/// Time since [`begin`] (zero when it was not called, as in tests).
pub fn elapsed() -> Duration {
    START.get().map(Instant::elapsed).unwrap_or_default()
}

/// Logs that `phase` is done (at debug level, so `-v` shows it).
pub fn mark(phase: &str) {
    log::debug!("start-up: {phase} at {:.1} ms", elapsed().as_secs_f64() * 1e3);
}
