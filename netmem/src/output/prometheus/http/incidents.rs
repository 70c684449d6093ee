//! The flight recorder's endpoints: `GET /incidents` (the list, JSON),
//! `GET /incidents/ID` (its report, as `netmem report` renders it),
//! `GET /incidents/ID/file` (an incident file), `POST /incidents` (a
//! manual trigger, from loopback only). Basic auth, when configured, was
//! checked before.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::reply::{text, text_with};
use super::Ctx;
use crate::output::incidents::{Incidents, Request as Ask, SUFFIX};

/// An incident file larger than this is not served over HTTP (copy it
/// from DIR): a download is read whole into memory, one at a time, so the
/// packaged unit's MemoryMax holds (an incident at the default --ring-max
/// is about 32M at most).
pub const MAX_DOWNLOAD: u64 = 64 * 1024 * 1024;

/// A download under way: the next waits (503, Retry-After).
static DOWNLOADING: AtomicBool = AtomicBool::new(false);
/// A report being rendered: the next waits, so memory holds one report's
/// (a recording is read within `recording::MEMORY_BUDGET`).
static RENDERING: AtomicBool = AtomicBool::new(false);

/// Clears its flag however the work ends.
struct OneAtATime(&'static AtomicBool);

impl OneAtATime {
    fn take(flag: &'static AtomicBool) -> Option<OneAtATime> {
        (!flag.swap(true, Ordering::SeqCst)).then_some(OneAtATime(flag))
    }
}

impl Drop for OneAtATime {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn busy(what: &str) -> Response<Full<Bytes>> {
    text_with(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("another incident is being {what}; retry\n"),
        (hyper::header::RETRY_AFTER, "1"),
    )
}

/// `GET /incidents/ID`: the incident's report, the page `netmem report`
/// writes, rendered on request off the HTTP thread, one at a time.
async fn report(incidents: &Incidents, id: &str) -> Response<Full<Bytes>> {
    let Some(file) = incidents.file_of(id) else {
        return text(
            StatusCode::NOT_FOUND,
            "no such incident (or still being written: try again when it is listed as finished)\n",
        );
    };
    let Some(one) = OneAtATime::take(&RENDERING) else {
        return busy("rendered");
    };
    let name = format!("{id}{SUFFIX}");
    let page = tokio::task::spawn_blocking(move || {
        let _one = one;
        let f = crate::sources::recording::open(&file.to_string_lossy())?;
        // Titled by its name, never its path.
        let run = crate::report::Run::read_from(f, &name)?;
        crate::report::render(&[run])
    })
    .await;
    match page {
        Ok(Ok(html)) => {
            let mut r = Response::new(Full::new(Bytes::from(html)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render this incident: {e:#}\n"),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering this incident failed\n",
        ),
    }
}

pub(super) async fn respond(
    req: &Request<Incoming>,
    ctx: &Ctx,
    loopback: bool,
) -> Response<Full<Bytes>> {
    // Only asked with a recorder (see respond::authorized).
    let Some(incidents) = ctx.shared.incidents.get() else {
        return text(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    };
    let path = req.uri().path();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    if path == "/incidents" {
        if req.method() == Method::POST {
            if !loopback {
                ctx.shared.http.reject();
                return text(
                    StatusCode::FORBIDDEN,
                    "POST /incidents is taken from loopback only\n",
                );
            }
            incidents.request(Ask::Manual("POST /incidents"));
            return text(
                StatusCode::ACCEPTED,
                "incident requested: it is listed on GET /incidents from the next interval\n",
            );
        }
        if !get {
            return text_with(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET, HEAD or POST\n",
                (ALLOW, "GET, HEAD, POST"),
            );
        }
        let mut r = Response::new(Full::new(Bytes::from(incidents.to_json())));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    if !get {
        return text_with(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
            (ALLOW, "GET, HEAD"),
        );
    }
    let Some(rest) = path.strip_prefix("/incidents/") else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /incidents, /incidents/ID or /incidents/ID/file\n",
        );
    };
    let Some(id) = rest.strip_suffix("/file") else {
        return report(incidents, rest).await;
    };
    // Only an id in the list leads to a file (file_of validates it first).
    let Some(file) = incidents.file_of(id) else {
        return text(StatusCode::NOT_FOUND, "no such incident\n");
    };
    let Some(_one) = OneAtATime::take(&DOWNLOADING) else {
        return busy("downloaded");
    };
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&file)
        .and_then(|f| {
            let m = f.metadata()?;
            if !m.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            if m.len() > MAX_DOWNLOAD {
                return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
            }
            let mut buf = Vec::with_capacity(m.len() as usize);
            f.take(MAX_DOWNLOAD).read_to_end(&mut buf)?;
            Ok(buf)
        });
    match read {
        Ok(buf) => {
            let mut r = Response::new(Full::new(Bytes::from(buf)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/zstd"));
            // The id is [0-9a-zT Z-] only: nothing to quote.
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}{SUFFIX}\""))
            {
                r.headers_mut().insert(CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "this incident is too large to serve: copy it from the flight recorder's directory\n",
        ),
        Err(_) => text(StatusCode::NOT_FOUND, "no such incident (removed)\n"),
    }
}
