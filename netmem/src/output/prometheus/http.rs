//! The HTTP side of `netmem serve`: `GET /metrics` (and `/`, and the
//! flight recorder's `/incidents`), on a thread
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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::Shared;

pub mod auth;
mod conns;
mod incidents;
mod page;
mod reply;
mod respond;
mod web_config;
pub use web_config::WebConfig;

use conns::{peer_of, Admitted, Conns};
use respond::authorized;

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

/// The default port. The Prometheus wiki's default-port allocations filled
/// 9100-9999; exporters since get ports above 10000.
pub const DEFAULT_PORT: u16 = 10077;
/// The default `--listen`: loopback, [`DEFAULT_PORT`].
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10077";

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
            DEFAULT_PORT
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
    // Who connected: `POST /incidents` is taken from loopback only.
    let loopback = stream
        .peer_addr()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback());
    let res = match ctx.tls.clone() {
        None => serve_http(TokioIo::new(stream), id, loopback, &ctx).await,
        Some(tls) => match handshake(stream, &tls).await {
            Ok(stream) => serve_http(TokioIo::new(stream), id, loopback, &ctx).await,
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

async fn serve_http<I>(io: I, id: u64, loopback: bool, ctx: &Arc<Ctx>) -> Result<(), String>
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
                    let r = authorized(req, &ctx, loopback).await;
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
