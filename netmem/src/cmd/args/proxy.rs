//! The proxy flags: `--haproxy` today. A second proxy kind adds its flag
//! here, beside it, and every command that names groups after a proxy
//! (snapshot, doctor and the live ones, through `Owners`) takes it.

use anyhow::Result;
use clap::Args;

use crate::sources::proxy::ProxySpec;

/// `--haproxy`.
#[derive(Args, Clone)]
pub struct ProxyArg {
    /// Name groups after HAProxy's frontends and backend/servers, read
    /// from its stats socket (runtime API: a UNIX socket, or a TCP
    /// ADDR:PORT reached inside the traced namespace), its configuration
    /// (a file or a directory), or both (repeat the flag); `off` to name
    /// none. By default a running haproxy in the traced namespace is found
    /// through its command line (-f) and its configuration's `stats socket`.
    #[arg(long, value_name = "SOCKET|ADDR:PORT|CONFIG|off", value_parser = parse_proxy_arg)]
    haproxy: Vec<String>,
}

fn parse_proxy_arg(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "give a stats socket (a path or ADDR:PORT), a configuration file or directory, or `off`"
                .into(),
        );
    }
    Ok(s.to_string())
}

impl ProxyArg {
    /// Which proxies name the groups.
    pub fn spec(&self) -> Result<ProxySpec> {
        if self.haproxy.len() > 1 && self.haproxy.iter().any(|h| h == "off" || h == "auto") {
            anyhow::bail!("--haproxy off (or auto) cannot be combined with paths");
        }
        Ok(ProxySpec::from_args(&self.haproxy))
    }
}
