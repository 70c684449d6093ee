//! The HTTP side of `netmem serve`: `GET /metrics` (and `/`), on a thread
//! and runtime of its own, so no client, however slow or malformed, can
//! delay the ring buffer or the interval loop. A scrape encodes the latest
//! published [`Exposition`](super::Exposition) (cached per interval and
//! format) and never reads the kernel itself.
//!
//! Bounded everywhere: connections at once ([`MAX_CONNECTIONS`], more are
//! closed at once), request head size ([`MAX_HEAD`]), time to send a head
//! ([`HEAD_TIMEOUT`], against one-byte-a-second clients) and a connection's
//! life ([`CONNECTION_LIFE`], after which it is closed between requests).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::metrics::{encode_http, encode_interval, Format};
use super::Shared;

/// Connections served at once; Prometheus needs one per server.
pub const MAX_CONNECTIONS: usize = 256;
/// A request head (request line and headers) larger than this is refused.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed (between requests) after this long.
pub const CONNECTION_LIFE: Duration = Duration::from_secs(120);
/// ... and dropped this long after that if a request is still under way.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The HTTP side's own figures, exported with the metrics.
#[derive(Debug, Default)]
pub struct HttpStats {
    last_scrape_ns: AtomicU64,
    scrapes: AtomicU64,
    rejected: AtomicU64,
}

impl HttpStats {
    pub fn last_scrape_seconds(&self) -> f64 {
        self.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Binds now, so a taken or forbidden address fails before any probe is
/// attached.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} ({e}): {}",
            bind_hint(addr, e.raw_os_error())
        )
    })?;
    l.set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    Ok(l)
}

/// What to do about a failed bind, by its errno: only a taken port means
/// another exporter.
fn bind_hint(addr: SocketAddr, errno: Option<i32>) -> String {
    match errno {
        Some(libc::EADDRINUSE) => "another netmem serve or exporter is using it; choose another port with --listen ADDR:PORT".into(),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{} is not an address of this host (in netmem's network namespace); give one of its own addresses, 127.0.0.1, or :{} for every interface with --listen",
            addr.ip(),
            addr.port()
        ),
        Some(libc::EACCES) => format!(
            "ports below {} need root or CAP_NET_BIND_SERVICE; choose a higher one with --listen ADDR:PORT (the default is {})",
            unprivileged_port_start(),
            crate::cmd::serve::DEFAULT_PORT
        ),
        _ => "choose another with --listen ADDR:PORT".into(),
    }
}

/// The first port binding needs no privilege for (1024 unless the
/// namespace's sysctl says otherwise).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The running server; [`Server::stop`] ends it.
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(listener: std::net::TcpListener, shared: Arc<Shared>) -> Result<Server> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP runtime")?;
        let thread = std::thread::Builder::new()
            .name("netmem-http".into())
            .spawn(move || {
                if let Err(e) = rt.block_on(accept_loop(listener, shared, rx)) {
                    log::error!("HTTP server stopped: {e:#}");
                }
            })
            .context("cannot start the HTTP thread")?;
        Ok(Server {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops accepting and drops every connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Ctx {
    shared: Arc<Shared>,
    /// The interval part of the last scrape per format: (generation, body).
    cache: Mutex<[Option<(u64, Bytes)>; 2]>,
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let ctx = Arc::new(Ctx {
        shared,
        cache: Mutex::new([None, None]),
    });
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let stream = match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors, typically: wait rather than spin.
                        log::warn!("HTTP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    ctx.shared.http.reject();
                    drop(stream);
                    continue;
                };
                let ctx = ctx.clone();
                conns.spawn(async move {
                    serve_connection(stream, ctx).await;
                    drop(slot);
                });
            }
        }
    }
    conns.shutdown().await;
    Ok(())
}

async fn serve_connection(stream: tokio::net::TcpStream, ctx: Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    let service_ctx = ctx.clone();
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| {
                let ctx = service_ctx.clone();
                async move { Ok::<_, Infallible>(respond(&req, &ctx)) }
            }),
        );
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = tokio::time::sleep(CONNECTION_LIFE) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = res {
        // Timeouts, oversized or malformed heads, clients gone mid-request.
        log::debug!("HTTP connection ended: {e}");
        ctx.shared.http.reject();
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

const INDEX: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netmem</title></head>\n<body><h1>netmem</h1>\n<p>Live socket memory attribution: which listening port or backend holds the kernel's socket memory, and which limit fired.</p>\n<p><a href=\"/metrics\">Metrics</a></p>\n</body></html>\n";

fn respond(req: &Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/" => {
            let mut r = Response::new(Full::new(Bytes::from_static(INDEX.as_bytes())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            metrics(ctx, Format::negotiate(accept))
        }
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
    }
}

fn metrics(ctx: &Ctx, format: Format) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let Some(expo) = ctx.shared.latest() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "netmem is attaching its probes; retry in a few seconds\n",
        );
    };
    let i = format as usize;
    let cached = {
        let c = ctx.cache.lock().unwrap_or_else(|p| p.into_inner());
        c[i].as_ref()
            .filter(|(g, _)| *g == expo.generation)
            .map(|(_, b)| b.clone())
    };
    let part = cached.unwrap_or_else(|| {
        let b = Bytes::from(encode_interval(expo.clone(), format));
        ctx.cache.lock().unwrap_or_else(|p| p.into_inner())[i] = Some((expo.generation, b.clone()));
        // Encoding 1000 groups grows a string of a megabyte by doubling:
        // what it freed goes back at once (see release_freed_memory).
        crate::kernel::startup::release_freed_memory();
        b
    });
    let stats = &ctx.shared.http;
    stats.scrapes.fetch_add(1, Ordering::Relaxed);
    let tail = encode_http(stats, format);
    let mut body = BytesMut::with_capacity(part.len() + tail.len());
    body.extend_from_slice(&part);
    body.extend_from_slice(tail.as_bytes());
    stats
        .last_scrape_ns
        .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    let mut r = Response::new(Full::new(body.freeze()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}
