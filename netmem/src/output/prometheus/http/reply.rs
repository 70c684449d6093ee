//! Plain-text answers (a status and a fixed body, maybe one more header),
//! shared by every endpoint of the server.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// [`text`] with one more header.
pub(super) fn text_with(
    status: StatusCode,
    body: impl Into<Bytes>,
    (name, value): (HeaderName, &'static str),
) -> Response<Full<Bytes>> {
    let mut r = text(status, body);
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}
