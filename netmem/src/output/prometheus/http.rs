//! The HTTP side of `netmem serve`: `GET /metrics` (and `/`), on a thread
//! and runtime of its own, so no client, however slow or malformed, can
//! delay the ring buffer or the interval loop. A scrape encodes the latest
//! published [`Exposition`](super::Exposition) (cached per interval and
//! format) and never reads the kernel itself.
//!
//! Bounded everywhere: connections at once ([`MAX_CONNECTIONS`], and
//! [`MAX_PER_PEER`] from one address), request head size ([`MAX_HEAD`]),
//! time to send a head ([`HEAD_TIMEOUT`], against one-byte-a-second
//! clients) and a connection's life ([`CONNECTION_LIFE`], after which it is
//! closed between requests). At a cap, the connection that has waited
//! longest without sending a request head is dropped to make room, so
//! clients that connect and send nothing cannot lock scrapes out: a scrape
//! sends its head at once and is served. Only when every connection in
//! the way is in the middle of a request is the new one refused.
//!
//! With `--web.config.file` ([`WebConfig`]), connections are TLS (rustls)
//! and requests need basic auth (see [`auth`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use super::metrics::{encode_http, encode_interval, Format};
use super::Shared;

pub mod auth;
mod web_config;
pub use web_config::WebConfig;

/// Connections served at once; Prometheus needs one per server.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections from one address (an IPv6 /64) at once: half the total, so
/// one host cannot drop the connections of others to make room for its
/// own, and a burst of a hundred scrapes from one host still fits.
pub const MAX_PER_PEER: usize = MAX_CONNECTIONS / 2;
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
    pub fn start(
        listener: std::net::TcpListener,
        shared: Arc<Shared>,
        web: Option<WebConfig>,
    ) -> Result<Server> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP runtime")?;
        let thread = std::thread::Builder::new()
            .name("netmem-http".into())
            .spawn(move || {
                if let Err(e) = rt.block_on(accept_loop(listener, shared, web, rx)) {
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
    conns: Mutex<Conns>,
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<auth::BasicAuth>>,
}

impl Ctx {
    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The live connections, for the caps and for choosing whom to drop.
#[derive(Default)]
struct Conns {
    next_id: u64,
    live: HashMap<u64, Conn>,
}

struct Conn {
    peer: IpAddr,
    /// Since when it has waited for a request head (or its TLS handshake);
    /// `None` while a request is being answered.
    waiting: Option<Instant>,
    /// Its task, to drop it; set right after it is spawned.
    task: Option<AbortHandle>,
}

/// What [`Conns::admit`] decided.
struct Admitted {
    id: u64,
    /// A connection dropped to make room.
    evicted: Option<AbortHandle>,
}

impl Conns {
    /// Makes room for a connection from `peer` (see the module doc), or
    /// `None`: refuse it.
    fn admit(&mut self, peer: IpAddr, now: Instant) -> Option<Admitted> {
        let from_peer = self.live.values().filter(|c| c.peer == peer).count();
        let victim = if from_peer >= MAX_PER_PEER {
            Some(self.longest_waiting(|c| c.peer == peer)?)
        } else if self.live.len() >= MAX_CONNECTIONS {
            Some(self.longest_waiting(|_| true)?)
        } else {
            None
        };
        let evicted = victim.and_then(|v| self.live.remove(&v)?.task);
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(
            id,
            Conn {
                peer,
                waiting: Some(now),
                task: None,
            },
        );
        Some(Admitted { id, evicted })
    }

    fn longest_waiting(&self, among: impl Fn(&Conn) -> bool) -> Option<u64> {
        self.live
            .iter()
            .filter(|(_, c)| among(c))
            .filter_map(|(id, c)| Some((c.waiting?, *id)))
            .min()
            .map(|(_, id)| id)
    }

    fn set_task(&mut self, id: u64, task: AbortHandle) {
        if let Some(c) = self.live.get_mut(&id) {
            c.task = Some(task);
        }
    }

    /// A request head arrived (`false`), or its answer went out and the
    /// next head is awaited (`true`).
    fn set_waiting(&mut self, id: u64, waiting: bool) {
        if let Some(c) = self.live.get_mut(&id) {
            c.waiting = waiting.then(Instant::now);
        }
    }
}

/// Which peer a connection counts against: its address, or the /64 of an
/// IPv6 one (a host has a whole /64 to pick addresses from).
fn peer_of(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Takes a connection out of [`Conns`] when its task ends, however it
/// ends (finished, failed, dropped to make room, server stopped).
struct Registered {
    ctx: Arc<Ctx>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.ctx.conns().live.remove(&self.id);
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    web: Option<WebConfig>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (tls, auth) = web.map(|w| (w.tls, w.auth)).unwrap_or_default();
    let ctx = Arc::new(Ctx {
        shared,
        cache: Mutex::new([None, None]),
        conns: Mutex::default(),
        tls: tls.map(TlsAcceptor::from),
        auth,
    });
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let (stream, addr) = match r {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of descriptors, typically: wait rather than spin.
                        log::warn!("HTTP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let admitted = ctx.conns().admit(peer_of(addr), Instant::now());
                let Some(Admitted { id, evicted }) = admitted else {
                    ctx.shared.http.reject();
                    drop(stream);
                    continue;
                };
                if let Some(task) = evicted {
                    ctx.shared.http.reject();
                    task.abort();
                }
                let registered = Registered { ctx: ctx.clone(), id };
                let task = conns.spawn(async move {
                    let ctx = registered.ctx.clone();
                    serve_connection(stream, id, ctx).await;
                    drop(registered);
                });
                ctx.conns().set_task(id, task);
                // Let the new connection read what it was sent before
                // more are accepted: under a flood of connections, one
                // whose head already arrived must not be dropped as
                // headless before it was ever looked at.
                tokio::task::yield_now().await;
            }
        }
    }
    conns.shutdown().await;
    Ok(())
}

async fn serve_connection(stream: TcpStream, id: u64, ctx: Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    let res = match ctx.tls.clone() {
        None => serve_http(TokioIo::new(stream), id, &ctx).await,
        Some(tls) => match handshake(stream, &tls).await {
            Ok(stream) => serve_http(TokioIo::new(stream), id, &ctx).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = res {
        // Timeouts, oversized or malformed heads, failed handshakes,
        // clients gone mid-request.
        log::debug!("HTTP connection ended: {e}");
        ctx.shared.http.reject();
    }
}

/// What a client speaking plain HTTP to the TLS port is told.
const PLAIN_TO_TLS: &str = "this port speaks HTTPS: scrape https:// instead\n";

/// The TLS handshake, within the time a client has for a request head.
async fn handshake(
    mut stream: TcpStream,
    tls: &TlsAcceptor,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err("no TLS handshake in time".into()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(0)) => return Err("closed before its TLS handshake".into()),
        // A TLS handshake record.
        Ok(Ok(_)) if first[0] == 0x16 => {}
        Ok(Ok(_)) => {
            // Plain HTTP, most likely: say so in plain HTTP, as Go's
            // servers do. What the client sent is read first, so closing
            // does not reset the connection before the answer is read.
            let mut buf = vec![0u8; MAX_HEAD];
            let _ = tokio::time::timeout_at(deadline, async {
                let _ = stream.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{PLAIN_TO_TLS}",
                    PLAIN_TO_TLS.len()
                );
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await?;
                while stream.read(&mut buf).await? > 0 {}
                Ok::<_, std::io::Error>(())
            })
            .await;
            return Err("plain HTTP to the TLS port".into());
        }
    }
    match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
        Err(_) => Err("TLS handshake not finished in time".into()),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Ok(Ok(s)) => Ok(s),
    }
}

async fn serve_http<I>(io: I, id: u64, ctx: &Arc<Ctx>) -> Result<(), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service_ctx = ctx.clone();
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(
            io,
            hyper::service::service_fn(move |req| {
                let ctx = service_ctx.clone();
                async move {
                    ctx.conns().set_waiting(id, false);
                    let r = authorized(req, &ctx).await;
                    ctx.conns().set_waiting(id, true);
                    Ok::<_, Infallible>(r)
                }
            }),
        );
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = tokio::time::sleep(CONNECTION_LIFE) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return Ok(()),
            }
        }
    };
    res.map_err(|e| e.to_string())
}

/// [`respond`], once basic auth (if configured) let the request through.
async fn authorized(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    if let Some(auth) = &ctx.auth {
        match auth.check(req.headers().get(AUTHORIZATION)).await {
            auth::Verdict::Allowed => {}
            auth::Verdict::Denied => {
                ctx.shared.http.reject();
                return text_with(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized\n",
                    (WWW_AUTHENTICATE, "Basic realm=\"netmem\""),
                );
            }
            auth::Verdict::Busy => {
                ctx.shared.http.reject();
                return text_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many password checks at once; retry\n",
                    (RETRY_AFTER, "1"),
                );
            }
        }
    }
    respond(&req, ctx)
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

/// [`text`] with one more header.
fn text_with(
    status: StatusCode,
    body: &'static str,
    (name, value): (HeaderName, &'static str),
) -> Response<Full<Bytes>> {
    let mut r = text(status, body);
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

const INDEX: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netmem</title></head>\n<body><h1>netmem</h1>\n<p>Live socket memory attribution: which listening port or backend holds the kernel's socket memory, and which limit fired.</p>\n<p><a href=\"/metrics\">Metrics</a></p>\n</body></html>\n";

fn respond(req: &Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text_with(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
            (ALLOW, "GET, HEAD"),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Fills `conns` with `n` connections from `peer`, one millisecond
    /// apart from `t0`; their ids.
    fn fill(conns: &mut Conns, peer: IpAddr, n: usize, t0: Instant) -> Vec<u64> {
        (0..n)
            .map(|i| {
                let a = conns
                    .admit(peer, t0 + Duration::from_millis(i as u64))
                    .unwrap();
                assert!(a.evicted.is_none());
                a.id
            })
            .collect()
    }

    #[test]
    fn a_peer_at_its_cap_displaces_its_own_longest_waiting() {
        let mut c = Conns::default();
        let t0 = Instant::now();
        let other = fill(&mut c, ip(2), 10, t0);
        let own = fill(&mut c, ip(1), MAX_PER_PEER, t0 + Duration::from_secs(1));
        // Its first is answering a request: the second is the one to go,
        // not the other peer's older ones.
        c.set_waiting(own[0], false);
        c.admit(ip(1), t0 + Duration::from_secs(9)).unwrap();
        assert!(!c.live.contains_key(&own[1]));
        assert!(c.live.contains_key(&own[0]));
        assert!(other.iter().all(|id| c.live.contains_key(id)));
        assert_eq!(c.live.len(), 10 + MAX_PER_PEER);
        // All of its connections answering requests: the new one is refused.
        for id in c.live.keys().copied().collect::<Vec<_>>() {
            c.set_waiting(id, false);
        }
        assert!(c.admit(ip(1), t0 + Duration::from_secs(10)).is_none());
        // Another peer still gets in.
        assert!(c.admit(ip(3), t0 + Duration::from_secs(10)).is_some());
    }

    #[test]
    fn at_the_total_cap_the_longest_waiting_anywhere_goes() {
        let mut c = Conns::default();
        // A minute ago, so that waiting anew (below) is later than all.
        let t0 = Instant::now() - Duration::from_secs(60);
        let a = fill(&mut c, ip(1), MAX_PER_PEER, t0);
        let b = fill(&mut c, ip(2), MAX_PER_PEER, t0 + Duration::from_secs(1));
        // A kept-alive connection that was just answered waits anew.
        c.set_waiting(a[0], false);
        c.set_waiting(a[0], true);
        c.admit(ip(3), Instant::now()).unwrap();
        assert!(!c.live.contains_key(&a[1]));
        assert!(c.live.contains_key(&a[0]) && c.live.contains_key(&b[0]));
        assert_eq!(c.live.len(), MAX_CONNECTIONS);
    }

    #[test]
    fn an_ipv6_host_is_one_peer_per_64() {
        let p = |s: &str| peer_of(SocketAddr::new(s.parse().unwrap(), 1));
        assert_eq!(p("2001:db8:1:2::1"), p("2001:db8:1:2:ffff::9"));
        assert_ne!(p("2001:db8:1:2::1"), p("2001:db8:1:3::1"));
        assert_eq!(p("::ffff:10.0.0.1"), p("10.0.0.1"));
    }
}
