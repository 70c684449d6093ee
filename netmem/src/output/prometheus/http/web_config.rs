//! `--web.config.file`: TLS and basic auth for `netmem serve`, in the
//! Prometheus exporter-toolkit's `web-config.yml` format, so the file a
//! fleet already hands node_exporter works here too. Read and checked
//! whole before anything is bound or attached: a mistake is one line.
//!
//! What netmem takes: `tls_server_config` (`cert_file`, `key_file`,
//! `client_auth_type`, `client_ca_file`, `min_version`, `max_version`) and
//! `basic_auth_users` (user: bcrypt hash). The toolkit's other keys are
//! named in the error that refuses them, so a copied file never silently
//! means less than it says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::auth::BasicAuth;

/// The flag, as errors name it.
pub const FLAG: &str = "--web.config.file";

/// A checked web config: what the HTTP server wraps connections and
/// requests in.
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    tls_server_config: Option<Tls>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    // The toolkit's, not netmem's (HTTP/2 and extra headers): refused by
    // name below rather than as unknown.
    http_server_config: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: String,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // The toolkit's, refused by name: rustls picks its own safe cipher
    // suites and curves; inline PEM and SAN allow-lists are not offered.
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
}

impl WebConfig {
    /// Reads and checks `path`; every error names the file.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {FLAG} {}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("{FLAG} {}", path.display()))
    }

    /// `dir` is where relative file names in the config are taken from
    /// (the config's own directory, as the toolkit does).
    fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
        let top: Option<Top> =
            serde_norway::from_str(text).map_err(|e| anyhow!("not a valid web config: {e}"))?;
        let Some(top) = top else {
            bail!("{}", NOTHING_SET);
        };
        if top.http_server_config.is_some() {
            bail!("netmem does not support http_server_config (it serves HTTP/1.1 only and sets no extra headers): remove it");
        }
        if top.tls_server_config.is_none() && top.basic_auth_users.is_none() {
            bail!("{}", NOTHING_SET);
        }
        let tls = top
            .tls_server_config
            .map(|t| tls_config(t, dir).context("tls_server_config"))
            .transpose()?;
        let auth = top
            .basic_auth_users
            .map(|u| BasicAuth::new(u).context("basic_auth_users"))
            .transpose()?
            .map(Arc::new);
        Ok(WebConfig { tls, auth })
    }

    /// "https" or "http", for the start-up line.
    pub fn scheme(this: Option<&WebConfig>) -> &'static str {
        match this.and_then(|w| w.tls.as_ref()) {
            Some(_) => "https",
            None => "http",
        }
    }
}

const NOTHING_SET: &str = "sets neither tls_server_config nor basic_auth_users, so it would change nothing: add one, or drop the flag to serve plain HTTP";

fn tls_config(t: Tls, dir: &Path) -> Result<Arc<ServerConfig>> {
    for (set, key, why) in [
        (
            t.cipher_suites.is_some(),
            "cipher_suites",
            "rustls offers only suites without known weaknesses",
        ),
        (
            t.curve_preferences.is_some(),
            "curve_preferences",
            "rustls picks among X25519, P-256 and P-384",
        ),
        (
            t.prefer_server_cipher_suites.is_some(),
            "prefer_server_cipher_suites",
            "rustls always prefers the server's order",
        ),
        (
            t.client_allowed_sans.is_some(),
            "client_allowed_sans",
            "any client certificate the CA signed is accepted",
        ),
        (t.cert.is_some(), "cert", "use cert_file"),
        (t.key.is_some(), "key", "use key_file"),
        (t.client_ca.is_some(), "client_ca", "use client_ca_file"),
    ] {
        if set {
            bail!("netmem does not support {key} ({why}): remove it");
        }
    }
    let (Some(cert_file), Some(key_file)) = (t.cert_file, t.key_file) else {
        bail!("needs both cert_file and key_file (PEM files)");
    };
    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let cert_file = dir.join(cert_file);
    let key_file = dir.join(key_file);
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        bail!(
            "cert_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        anyhow!(
            "key_file {}: {e} (a PEM private key: PKCS#8, RSA or EC)",
            key_file.display()
        )
    })?;

    // ring, not aws-lc-rs: a small Rust and assembly build instead of a
    // large C one. rustls marks it deprecated because it lacks
    // post-quantum key exchange, which a metrics endpoint can do without.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("cannot set up TLS")?;
    let verifier = match t.client_auth_type.as_str() {
        "" | "NoClientCert" => {
            if t.client_ca_file.is_some() {
                bail!("client_ca_file is set but client_auth_type is not: say RequireAndVerifyClientCert (or VerifyClientCertIfGiven)");
            }
            None
        }
        kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven") => {
            let Some(ca) = t.client_ca_file else {
                bail!("client_auth_type {kind} needs client_ca_file (the PEM CA that signs client certificates)");
            };
            let ca = dir.join(ca);
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow!("client_ca_file {}: {e}", ca.display()))?;
            let (added, _) = roots.add_parsable_certificates(cas);
            if added == 0 {
                bail!(
                    "client_ca_file {} holds no usable PEM CA certificate",
                    ca.display()
                );
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let b = if kind == "VerifyClientCertIfGiven" {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(b.build().context("cannot use client_ca_file")?)
        }
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => bail!(
            "netmem does not support client_auth_type {} (a client certificate nobody verifies proves nothing): use RequireAndVerifyClientCert with client_ca_file",
            t.client_auth_type
        ),
        other => bail!(
            "client_auth_type {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        ),
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow!(
            "key_file {} is not the key of cert_file {} (the first certificate in it)",
            key_file.display(),
            cert_file.display()
        ),
        e => anyhow!(
            "cert_file {} and key_file {}: {e}",
            cert_file.display(),
            key_file.display()
        ),
    })?;
    // Only HTTP/1.1 is served: a client offering h2 too settles on it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn version(v: &str, key: &str) -> Result<u8> {
    match v {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => bail!("{key} {v}: netmem (rustls) speaks TLS12 and TLS13 only"),
        _ => bail!("{key} {v:?} is not one of TLS12, TLS13"),
    }
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    // The toolkit's default minimum is TLS 1.2, as is rustls's.
    let lo = min
        .map(|v| version(v, "min_version"))
        .transpose()?
        .unwrap_or(2);
    let hi = max
        .map(|v| version(v, "max_version"))
        .transpose()?
        .unwrap_or(3);
    if lo > hi {
        bail!("min_version is above max_version");
    }
    Ok([(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(n, _)| (lo..=hi).contains(n))
        .map(|(_, v)| v)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match WebConfig::parse(text, Path::new("/nonexistent")) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn basic_auth_only_is_accepted() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let w = WebConfig::parse(
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        assert!(w.tls.is_none() && w.auth.is_some());
        assert_eq!(WebConfig::scheme(Some(&w)), "http");
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        for (text, want) in [
            ("", "sets neither"),
            ("# only a comment\n", "sets neither"),
            ("tls_server_config: [1\n", "not a valid web config"),
            ("basic_auth_user:\n  a: b\n", "unknown field `basic_auth_user`"),
            (
                "tls_server_config:\n  cert_file: a\n  key_fil: b\n",
                "unknown field `key_fil`",
            ),
            ("basic_auth_users:\n  alice: hunter2\n", "not a bcrypt hash"),
            ("tls_server_config:\n  cert_file: a.pem\n", "needs both cert_file and key_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "does not support cipher_suites",
            ),
            ("http_server_config:\n  http2: false\n", "does not support http_server_config"),
            (
                "tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n",
                "/nonexistent/a.pem",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
                "TLS12 and TLS13 only",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: more than one line: {e}");
        }
    }

    #[test]
    fn versions_between_min_and_max() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(
            versions(Some("TLS13"), None).unwrap()[0].version,
            rustls::ProtocolVersion::TLSv1_3
        );
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
    }
}
