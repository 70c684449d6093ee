//! `netmem serve`: the trace engine feeding a Prometheus exposition, served
//! over HTTP until SIGTERM or SIGINT (SIGHUP is ignored: nothing to reload).
//! The web config (TLS, basic auth) is read and the address bound before
//! anything is attached, so a mistake in either fails at once and leaves
//! nothing behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::engine::stop;
use crate::output::prometheus::{http, MetricsSink, Shared};

/// The default port. The Prometheus wiki's default-port allocations filled
/// 9100-9999; exporters since get ports above 10000.
pub const DEFAULT_PORT: u16 = 10077;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10077";

/// Events decoded per interval at most (the rest are counted as
/// suppressed): high enough that counters by cause, direction and reason
/// are complete in practice, bounded so a polled flood stays cheap.
pub const EVENT_LIMIT: u64 = 1_000_000;

pub struct Options {
    pub listen: SocketAddr,
    pub max_groups: usize,
    pub linger: Duration,
    /// `--web.config.file`: TLS and basic auth.
    pub web_config: Option<PathBuf>,
    /// What the engine traces; serve sets its own event limit (above) and
    /// runs until stopped.
    pub engine: crate::engine::Options,
}

pub async fn run(opts: Options) -> Result<()> {
    stop::ignore_hangup();
    let web = opts
        .web_config
        .as_deref()
        .map(http::WebConfig::load)
        .transpose()?;
    let scheme = http::WebConfig::scheme(web.as_ref());
    let auth = web.as_ref().is_some_and(|w| w.auth.is_some());
    if auth && scheme == "http" {
        log::warn!(
            "basic auth without tls_server_config: passwords cross the network in the clear"
        );
    }
    // Before the address line: a URL printed by a process that cannot
    // attach would send the user to an exporter that never existed.
    crate::kernel::privileges::check(opts.engine.command)?;
    let listener = http::bind(opts.listen)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::default());
    let server = http::Server::start(listener, shared.clone(), web)?;
    eprintln!(
        "netmem serve: {scheme}://{addr}/metrics ({}every {}; attaching the probes)",
        if auth { "basic auth; " } else { "" },
        humantime::format_duration(opts.engine.interval)
    );
    let mut sink = MetricsSink::new(shared, opts.max_groups, opts.engine.interval, opts.linger);
    let res = crate::engine::run(opts.engine, &mut sink).await;
    server.stop();
    res.map(|_| ())
}
