//! A Prometheus server's HTTP API, read as `doctor --prometheus` needs it:
//! instant queries, each answer split by `instance`. What to ask is the
//! doctor's (`doctor::fleet::queries`); this file only asks and reads the
//! answers, bounded whatever the server sends.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The most an answer may hold: a fleet's series fit well within it; a
/// server sending more is cut off with an error, not read into memory.
const MAX_ANSWER: u64 = 64 << 20;
/// Per request; a server that does not answer in this time is an error.
const TIMEOUT: Duration = Duration::from_secs(30);
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
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (basic, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, authority),
        };
        if host.is_empty() {
            bail!("--prometheus {url:?}: no host in it");
        }
        let base = format!("{scheme}://{host}{}", path.trim_end_matches('/'));
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("netmem/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Api { base, agent, basic })
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
            .with_context(|| format!("asking {url}"))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_ANSWER + 1)
            .read_to_end(&mut body)
            .with_context(|| format!("reading {url}'s answer"))?;
        if body.len() as u64 > MAX_ANSWER {
            bail!(
                "{url} answered more than {} to {q:?}: narrow --match",
                crate::format::human_bytes(MAX_ANSWER)
            );
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|e| {
            let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            anyhow!(
                "{url} answered {status} with something that is not the Prometheus API ({e}): {}",
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
