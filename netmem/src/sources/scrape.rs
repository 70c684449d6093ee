//! A running `netmem serve`'s exposition, read the way `netmem check`
//! needs it: one HTTP/1.1 GET of `/metrics` over loopback, bounded in
//! time and size as a whole (a serve that accepts and never answers, or
//! trickles a byte a second, costs at most the deadline), then the text
//! format parsed into samples. Whatever answers is not trusted: an answer
//! that is not HTTP, not 200, not text, cut short or not an exposition is
//! an error that says so, never a panic.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// The most an answer may be: serve's exposition at its `--max-groups`
/// cap is far below this; an endless answer stops here.
pub const MAX_ANSWER: usize = 32 << 20;

/// Why no exposition was read.
#[derive(Debug, PartialEq, Eq)]
pub enum ScrapeError {
    /// Nothing listens there (connection refused).
    Refused,
    /// No whole answer before the deadline.
    Timeout,
    /// It asks for credentials (basic auth, `--web.config.file`).
    Unauthorized,
    /// Another HTTP status.
    Status(u16),
    /// Something answered, but not an exposition over HTTP, and what.
    Garbage(String),
    /// The connection failed otherwise.
    Io(String),
}

impl std::fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrapeError::Refused => write!(f, "connection refused"),
            ScrapeError::Timeout => write!(f, "no answer in time"),
            ScrapeError::Unauthorized => write!(
                f,
                "it asks for credentials (basic auth), which check does not send"
            ),
            ScrapeError::Status(s) => write!(f, "it answered HTTP {s}"),
            ScrapeError::Garbage(what) => write!(f, "{what}"),
            ScrapeError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// GET `path` from `addr`, the whole answer before `deadline`; the body
/// of a 200 answer.
pub fn get(addr: SocketAddr, path: &str, deadline: Instant) -> Result<String, ScrapeError> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ScrapeError::Timeout)
    };
    let io = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => ScrapeError::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ScrapeError::Timeout,
        _ => ScrapeError::Io(e.to_string()),
    };
    let mut s = TcpStream::connect_timeout(&addr, left()?).map_err(io)?;
    s.set_write_timeout(Some(left()?)).map_err(io)?;
    // Text format 0.0.4: what serve gives a client that does not ask for
    // OpenMetrics; no compression asked for. One write: a server may
    // answer (a 401, say) and close as soon as it has read the first bytes.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nUser-Agent: netmem-check/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    // Even if writing fails (it closed before reading it all), its answer
    // may already be here: read it, and say the write's error only if
    // there is none.
    let wrote = s.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        // Each read waits at most what is left of the whole: a peer
        // trickling bytes cannot stretch the deadline.
        s.set_read_timeout(Some(left()?)).map_err(io)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_ANSWER {
                    return Err(ScrapeError::Garbage(format!(
                        "its answer is larger than {} MiB",
                        MAX_ANSWER >> 20
                    )));
                }
                // Done once a declared length is complete, whether or not
                // the peer closes.
                if complete(&raw) {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ScrapeError::Timeout)
            }
            // A reset after some of the answer (it closed with our request
            // unread): what came is judged, a cut-off body is said so.
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(io(wrote.err().unwrap_or(e))),
        }
    }
    match wrote {
        Err(e) if raw.is_empty() => Err(io(e)),
        _ => body(&raw),
    }
}

/// The head and body split at the blank line, when the head is whole.
fn split(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&raw[..at], &raw[at + 4..]))
}

/// The header `name`'s value (case-insensitive name), the first one.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A `Content-Length` answer whose body is all here.
fn complete(raw: &[u8]) -> bool {
    let Some((head, body)) = split(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(head);
    header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

/// The body of a whole answer, checked.
fn body(raw: &[u8]) -> Result<String, ScrapeError> {
    if !raw.starts_with(b"HTTP/1.") {
        let what = if raw.is_empty() {
            "it closed the connection without an answer".to_string()
        } else if raw.first() == Some(&0x15) || raw.first() == Some(&0x16) {
            // A TLS record (alert or handshake): serve with
            // tls_server_config.
            "it answered TLS (serve with --web.config.file): check reads plain HTTP only"
                .to_string()
        } else {
            format!(
                "its answer is not HTTP (begins {:?})",
                String::from_utf8_lossy(&raw[..raw.len().min(24)])
            )
        };
        return Err(ScrapeError::Garbage(what));
    }
    let Some((head, body)) = split(raw) else {
        return Err(ScrapeError::Garbage(
            "its HTTP answer was cut off in its head".into(),
        ));
    };
    let head = String::from_utf8_lossy(head);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ScrapeError::Garbage("its HTTP status line has no status".into()))?;
    match status {
        200 => {}
        401 => return Err(ScrapeError::Unauthorized),
        s => return Err(ScrapeError::Status(s)),
    }
    let body = if header(&head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(body)?
    } else if let Some(n) = header(&head, "content-length") {
        let n: usize = n
            .parse()
            .map_err(|_| ScrapeError::Garbage(format!("its Content-Length {n:?} is no number")))?;
        if body.len() < n {
            return Err(ScrapeError::Garbage(format!(
                "its answer was cut off ({} of {n} bytes)",
                body.len()
            )));
        }
        body[..n].to_vec()
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| ScrapeError::Garbage("its answer is not UTF-8 text".into()))
}

/// A chunked body, strictly: a bad size or a missing end is an error.
fn dechunk(mut s: &[u8]) -> Result<Vec<u8>, ScrapeError> {
    let bad = |what: &str| ScrapeError::Garbage(format!("its chunked answer is {what}"));
    let mut out = Vec::new();
    loop {
        let at = s
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("cut off"))?;
        let line = std::str::from_utf8(&s[..at]).map_err(|_| bad("malformed"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).map_err(|_| bad("malformed"))?;
        s = &s[at + 2..];
        if n == 0 {
            return Ok(out);
        }
        if s.len() < n + 2 || &s[n..n + 2] != b"\r\n" {
            return Err(bad("cut off"));
        }
        out.extend_from_slice(&s[..n]);
        s = &s[n + 2..];
    }
}

/// One sample of an exposition: its name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The label `k`'s value ("" when absent, as Prometheus reads it).
    pub fn label(&self, k: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Every sample of a text exposition (0.0.4 or OpenMetrics); comments and
/// blank lines skipped. The first line that is not a sample is an error
/// naming its number: an answer that merely looks like HTTP is not taken
/// for figures.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(sample(line).ok_or_else(|| format!("line {} is not a sample", n + 1))?);
    }
    Ok(out)
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (l, after) = label_set(r)?;
        labels = l;
        rest = after;
    }
    // A value, then an optional timestamp.
    let mut words = rest.split_whitespace();
    let value = match words.next()? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    if rest.starts_with(|c: char| !c.is_whitespace()) {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` and what follows the closing brace.
#[allow(clippy::type_complexity)]
fn label_set(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Some((out, r));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let body = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut chars = body.char_indices();
        let mut v = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    '\\' => v.push('\\'),
                    '"' => v.push('"'),
                    _ => return None,
                },
                c => v.push(c),
            }
        };
        out.push((key.to_string(), v));
        s = body[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// What an answer holds, found by name.
pub struct Exposition(pub Vec<Sample>);

impl Exposition {
    /// Every sample of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }

    /// The first sample of `name` whose labels include `with`.
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.all(name)
            .find(|s| with.iter().all(|(k, v)| s.label(k) == *v))
            .map(|s| s.value)
            .filter(|v| v.is_finite())
    }

    pub fn has(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_escapes_and_timestamps() {
        let e = parse(
            "# HELP x y\n# TYPE x gauge\nnetmem_a 1\nnetmem_b{cause=\"orphans\",g=\"a\\\"b\\\\c\\nd\"} 2.5 1700000000\nnetmem_c{} +Inf\n\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].value, 1.0);
        assert_eq!(e[1].label("cause"), "orphans");
        assert_eq!(e[1].label("g"), "a\"b\\c\nd");
        assert_eq!(e[1].label("none"), "");
        assert_eq!(e[1].value, 2.5);
        assert!(e[2].value.is_infinite());
        let x = Exposition(e);
        assert_eq!(x.value("netmem_b", &[("cause", "orphans")]), Some(2.5));
        assert_eq!(x.value("netmem_b", &[("cause", "tcp_mem")]), None);
        assert_eq!(x.value("netmem_c", &[]), None);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bad in [
            "<html>hello</html>",
            "netmem_a",
            "netmem_a{x=\"1\" 2",
            "netmem_a{x=1} 2",
            "netmem_a{=\"1\"} 2",
            "netmem_a{x=\"\\q\"} 2",
            "netmem_a 1x",
            "9netmem 1",
            "netmem_a{x=\"é\"",
            "{} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        // Every prefix of a good exposition either parses or is an error.
        let good = "netmem_b{cause=\"orphans\",g=\"é\\\"\"} 2.5\n";
        for i in 0..good.len() {
            if good.is_char_boundary(i) {
                let _ = parse(&good[..i]);
            }
        }
    }

    #[test]
    fn http_answers_are_checked() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body(ok).unwrap(), "hello");
        assert!(complete(ok));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello"
        ));
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello"),
            Err(ScrapeError::Garbage(
                "its answer was cut off (5 of 9 bytes)".into()
            ))
        );
        assert_eq!(
            body(b"HTTP/1.1 401 Unauthorized\r\n\r\n"),
            Err(ScrapeError::Unauthorized)
        );
        assert_eq!(
            body(b"HTTP/1.1 503 Busy\r\n\r\n"),
            Err(ScrapeError::Status(503))
        );
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x\r\n!\r\n0\r\n\r\n")
                .unwrap(),
            "hello!"
        );
        for bad in [
            &b""[..],
            b"\x15\x03\x03\x00\x02\x02\x46",
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\n\r\n\xff\xfe",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-",
        ] {
            assert!(
                matches!(body(bad), Err(ScrapeError::Garbage(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
