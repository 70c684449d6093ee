//! A proxy's own buffer settings, as the proxy reads them.

use super::Side;

/// One side's socket buffer settings in bytes; None: not set, so the
/// kernel autotunes the socket within tcp_rmem / tcp_wmem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideTune {
    pub rcvbuf: Option<u64>,
    pub sndbuf: Option<u64>,
    /// Read from the configuration; false: not known (only the runtime
    /// API was read, and it does not say), so None means nothing.
    pub known: bool,
}

impl SideTune {
    /// `64.0K`, `auto` (not set), or `?` (not known).
    pub fn show(&self, v: Option<u64>) -> String {
        match (self.known, v) {
            (_, Some(b)) => crate::format::human_bytes(b),
            (true, None) => "auto".into(),
            (false, None) => "?".into(),
        }
    }
}

/// The proxy's own buffer settings (HAProxy: `tune.bufsize`,
/// `tune.rcvbuf.client|server`, `tune.sndbuf.client|server`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tune {
    /// The proxy's own buffer per stream direction (not kernel memory).
    pub bufsize: Option<u64>,
    pub client: SideTune,
    pub server: SideTune,
}

impl Tune {
    pub fn side(&self, s: Side) -> SideTune {
        match s {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }
}
