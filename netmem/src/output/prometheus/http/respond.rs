//! What a request is answered: basic auth first (if configured), then
//! `/` (the live page), `/metrics` (the cached interval part and the scrape's own), the
//! flight recorder's `/incidents` (its list, a file, `POST` from loopback
//! to trigger one), or an error in plain text.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};

use super::reply::{text, text_with};
use super::{auth, Ctx};
use crate::output::prometheus::metrics::{encode_http, encode_interval, Format};

/// [`respond`], once basic auth (if configured) let the request through.
pub(super) async fn authorized(
    req: Request<Incoming>,
    ctx: &Ctx,
    loopback: bool,
) -> Response<Full<Bytes>> {
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
    // Without a flight recorder, /incidents is a path like any other.
    if ctx.shared.incidents.get().is_some() && req.uri().path().starts_with("/incidents") {
        return super::incidents::respond(&req, ctx, loopback).await;
    }
    respond(&req, ctx)
}

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
            let mut r = Response::new(Full::new(Bytes::from(super::page::index(ctx))));
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
    stats.scraped();
    let tail = encode_http(stats, ctx.shared.incidents.get().map(|i| &**i), format);
    let mut body = BytesMut::with_capacity(part.len() + tail.len());
    body.extend_from_slice(&part);
    body.extend_from_slice(tail.as_bytes());
    stats.took(started.elapsed());
    let mut r = Response::new(Full::new(body.freeze()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}
