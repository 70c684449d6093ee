//! A Prometheus server's HTTP API, read as `doctor --prometheus` needs it:
//! instant queries, each answer split by `instance`. What to ask is the
//! doctor's (`doctor::fleet::queries`); this file only asks and reads the
//! answers, bounded whatever the server sends.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

/// The most an answer may hold: a fleet's series fit well within it; a
/// server sending more is cut off with an error, not read into memory.
const MAX_ANSWER: u64 = 64 << 20;
/// Per request; a server that does not answer in this time is an error.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of Prometheus's web UI, whose URL people copy: the API is
/// beside them.
const UI_PAGES: &[&str] = &[
    "/graph",
    "/query",
    "/alerts",
    "/targets",
    "/rules",
    "/status",
    "/classic/graph",
    "/api/v1/query",
];

/// For every query of one verdict.
const DEADLINE: Duration = Duration::from_secs(120);

/// One sample of an instant vector: its labels (`__name__` included when
/// the server keeps it) and value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

pub struct Api {
    base: String,
    agent: ureq::Agent,
    /// `user:password` from the URL, sent as basic authentication.
    basic: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The CA bundles distributions keep (Debian/Ubuntu, Fedora/RHEL,
/// Alpine/Arch...): an internal Prometheus's certificate is signed by a CA
/// the host trusts, which a bundle compiled into netmem would not know.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The host's trusted CAs, for `https://`: `SSL_CERT_FILE` if set, else
/// the first bundle of [`CA_BUNDLES`] there is.
fn system_roots() -> Result<ureq::tls::RootCerts> {
    let env = std::env::var("SSL_CERT_FILE").ok();
    let path = env
        .as_deref()
        .into_iter()
        .chain(CA_BUNDLES.iter().copied())
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| {
            anyhow!(
                "--prometheus https://...: no CA bundle ({}); set SSL_CERT_FILE to the CA that signed Prometheus's certificate",
                CA_BUNDLES.join(", ")
            )
        })?;
    // A bundle is a few hundred KB; what is past 16 MiB is not read.
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(16 << 20).read_to_end(&mut pem))
        .map_err(|e| anyhow!("reading the CA bundle {path}: {e}"))?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        bail!("the CA bundle {path} holds no certificate");
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

impl Api {
    /// `url`: the server's base (`http://prometheus:9090`, a path prefix
    /// allowed, `user:password@` for basic authentication).
    pub fn new(url: &str) -> Result<Api> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            anyhow!("--prometheus {url:?}: give the server's URL, e.g. http://prometheus:9090")
        })?;
        if scheme != "http" && scheme != "https" {
            bail!("--prometheus {url:?}: only http:// and https:// are supported");
        }
        // A URL copied from the browser: its query and the UI's page go.
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (basic, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, authority),
        };
        if host.is_empty() {
            bail!("--prometheus {url:?}: no host in it");
        }
        // `host:port` or `[v6]:port`: a port past 65535 is a typo.
        let port = match host.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").map(|(_, p)| p),
            None => host.rsplit_once(':').map(|(_, p)| p),
        };
        if let Some(p) = port.filter(|p| p.parse::<u16>().is_err()) {
            bail!("--prometheus {url:?}: {p:?} is not a port");
        }
        let mut path = path.trim_end_matches('/');
        for page in UI_PAGES {
            if let Some(p) = path.strip_suffix(page) {
                path = p.trim_end_matches('/');
                break;
            }
        }
        let base = format!("{scheme}://{host}{path}");
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("netmem/", env!("CARGO_PKG_VERSION")));
        if scheme == "https" {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(system_roots()?)
                    .build(),
            );
        }
        let agent = config.build().new_agent();
        Ok(Api { base, agent, basic })
    }

    /// A request that got no answer, said as such.
    fn unreachable(&self, url: &str, e: ureq::Error) -> anyhow::Error {
        match e {
            ureq::Error::Timeout(_) => anyhow!(
                "no answer from {url} within {}",
                crate::format::duration(TIMEOUT)
            ),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => anyhow!(
                "no answer from {url} within {}",
                crate::format::duration(TIMEOUT)
            ),
            e if e.to_string().contains("certificate") => anyhow!(
                "asking {url}: {e} (the host does not trust the CA that signed it: SSL_CERT_FILE names a CA bundle to use)"
            ),
            e => anyhow!("asking {url}: {e}"),
        }
    }

    /// The base URL, without credentials.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An instant query evaluated at `time` (Unix seconds): its samples.
    pub fn query(&self, q: &str, time: f64) -> Result<Vec<Sample>> {
        let url = format!("{}/api/v1/query", self.base);
        let mut req = self.agent.post(&url).header("Accept", "application/json");
        if let Some(b) = &self.basic {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(b);
            req = req.header("Authorization", &format!("Basic {token}"));
        }
        let mut resp = req
            .send_form([("query", q), ("time", &format!("{time:.3}"))])
            .map_err(|e| self.unreachable(&url, e))?;
        let status = resp.status().as_u16();
        match status {
            401 | 403 if self.basic.is_none() => bail!(
                "{} answered {status}: it wants credentials (give them in the URL, https://USER:PASSWORD@host:9090)",
                self.base
            ),
            401 | 403 => bail!("{} refused the credentials in the URL ({status})", self.base),
            _ => {}
        }
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_ANSWER + 1)
            .read_to_end(&mut body)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => anyhow!(
                    "{url} did not finish its answer within {}",
                    crate::format::duration(TIMEOUT)
                ),
                _ => anyhow!("reading {url}'s answer: {e}"),
            })?;
        if body.len() as u64 > MAX_ANSWER {
            bail!(
                "{url} answered more than {} to {q:?}: narrow --match",
                crate::format::human_bytes(MAX_ANSWER)
            );
        }
        let a: Answer = serde_json::from_slice(&body)
            .ok()
            .filter(|a: &Answer| a.status == "success" || a.error.is_some())
            .ok_or_else(|| {
                // Words of the answer, whitespace collapsed (an HTML page
                // on one line).
                let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
                let words: Vec<&str> = text.split_whitespace().collect();
                let mut head = words.join(" ");
                if head.len() > 120 {
                    let cut = (0..=120).rev().find(|i| head.is_char_boundary(*i)).unwrap_or(0);
                    head.truncate(cut);
                    head += "...";
                }
                anyhow!(
                    "{} is not a Prometheus server's API: {url} answered {status} ({}); give the server's own URL, e.g. http://prometheus:9090",
                    self.base,
                    crate::format::printable(&head)
                )
            })?;
        if a.status != "success" {
            bail!(
                "Prometheus refused {q:?} ({status}): {}",
                crate::format::printable(a.error.as_deref().unwrap_or("no reason given"))
            );
        }
        let data = a
            .data
            .ok_or_else(|| anyhow!("{url}: an answer without data"))?;
        if data.result_type != "vector" {
            bail!(
                "{url}: {q:?} gave a {} where a vector was asked for",
                crate::format::printable(&data.result_type)
            );
        }
        Ok(data
            .result
            .into_iter()
            .filter_map(|s| {
                let value: f64 = s.value.1.parse().ok()?;
                value.is_finite().then_some(Sample {
                    labels: s.metric,
                    value,
                })
            })
            .collect())
    }

    /// Every `(key, query)` at `time`: each sample with its query's key.
    /// The first query that fails fails all: a verdict on part of the
    /// figures would mislead.
    pub fn fetch(&self, queries: &[(String, String)], time: f64) -> Result<Vec<(String, Sample)>> {
        let started = std::time::Instant::now();
        let mut samples = Vec::new();
        for (key, q) in queries {
            if started.elapsed() > DEADLINE {
                bail!(
                    "{} took more than {} to answer: narrow --match or --since",
                    self.base,
                    humantime::format_duration(DEADLINE)
                );
            }
            samples.extend(self.query(q, time)?.into_iter().map(|s| (key.clone(), s)));
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::Api;

    #[test]
    fn a_url_is_the_servers_whatever_page_was_copied() {
        let base = |u: &str| Api::new(u).map(|a| a.base().to_string());
        assert_eq!(base("http://p:9090").unwrap(), "http://p:9090");
        assert_eq!(base("http://p:9090/").unwrap(), "http://p:9090");
        assert_eq!(
            base("http://p:9090/graph?g0.expr=up&g0.tab=1").unwrap(),
            "http://p:9090"
        );
        assert_eq!(base("https://u:pw@p/prom/query").unwrap(), "https://p/prom");
        assert_eq!(
            base("http://[::1]:9090/alerts").unwrap(),
            "http://[::1]:9090"
        );
        for bad in [
            "p:9090",
            "ftp://p",
            "http://",
            "http://p:99999",
            "http://p:x",
        ] {
            assert!(base(bad).is_err(), "{bad}");
        }
    }
}
