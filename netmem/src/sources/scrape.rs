//! A running `netmem serve`'s exposition, read the way `netmem check`
//! needs it: one HTTP/1.1 GET of `/metrics` over loopback (ureq, as
//! `doctor --prometheus` asks Prometheus), bounded in
//! time and size as a whole (a serve that accepts and never answers, or
//! trickles a byte a second, costs at most the deadline), then the text
//! format parsed into samples. Whatever answers is not trusted: an answer
//! that is not HTTP, not 200, not text, cut short or not an exposition is
//! an error that says so, never a panic.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
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
/// of a 200 answer. ureq does HTTP/1.1 (lengths, chunks, a peer that
/// closes early); the deadline bounds the whole exchange, a peer
/// trickling bytes included.
pub fn get(addr: SocketAddr, path: &str, deadline: Instant) -> Result<String, ScrapeError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(ScrapeError::Timeout)?;
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(left))
        .http_status_as_error(false)
        // Text format 0.0.4: what serve gives a client that does not ask
        // for OpenMetrics; no compression asked for.
        .accept("text/plain")
        .accept_encoding("identity")
        .user_agent(concat!("netmem-check/", env!("CARGO_PKG_VERSION")))
        .max_redirects(0)
        .build()
        .new_agent();
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock);
    let mut resp = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => ScrapeError::Timeout,
            ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => ScrapeError::Refused,
            ureq::Error::Io(io) if timed_out(&io) => ScrapeError::Timeout,
            ureq::Error::Io(io) if io.kind() == ErrorKind::UnexpectedEof => ScrapeError::Garbage(
                "it closed the connection without an answer".into(),
            ),
            ureq::Error::Io(io) => ScrapeError::Io(io.to_string()),
            // What answered speaks no HTTP: serve with a web config speaks
            // TLS, the likeliest thing on its port.
            e => ScrapeError::Garbage(format!(
                "its answer is not HTTP ({e}): a serve with --web.config.file speaks TLS, which check does not read"
            )),
        })?;
    match resp.status().as_u16() {
        200 => {}
        401 => return Err(ScrapeError::Unauthorized),
        s => return Err(ScrapeError::Status(s)),
    }
    let mut body = Vec::new();
    let read = resp
        .body_mut()
        .as_reader()
        .take(MAX_ANSWER as u64 + 1)
        .read_to_end(&mut body);
    match read {
        Ok(_) if body.len() > MAX_ANSWER => Err(ScrapeError::Garbage(format!(
            "its answer is larger than {} MiB",
            MAX_ANSWER >> 20
        ))),
        Ok(_) => String::from_utf8(body)
            .map_err(|_| ScrapeError::Garbage("its answer is not UTF-8 text".into())),
        Err(e) if timed_out(&e) || e.to_string().contains("timeout") => Err(ScrapeError::Timeout),
        Err(e) => Err(ScrapeError::Garbage(format!(
            "its answer was cut off after {} bytes ({e})",
            body.len()
        ))),
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
}
