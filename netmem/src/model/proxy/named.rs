//! What the proxy calls one group ([`GroupProxy`]): the names the rule in
//! `model/proxy.rs` gives a group, with the proxy's buffer settings for
//! its side. Plain data beneath the group rows that carry it
//! (`model/row.rs`), so the rows need nothing of the naming rule.

use super::tune::{Side, SideTune, Tune};

/// A group's proxy names, and the proxy's buffer settings for its side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupProxy {
    pub kind: &'static str,
    pub side: Side,
    /// Frontends bound to a `listen:` group's port, by name; more than one
    /// when several binds share the port.
    pub frontends: Vec<String>,
    /// `(backend, server)` at a `backend:` group's endpoint; more than one
    /// when backends share a server. For a `proxy-backend:` group, every
    /// server summed into it.
    pub servers: Vec<(String, String)>,
    /// A `proxy-backend:` group: its servers summed, not one endpoint.
    pub summed: bool,
    pub bufsize: Option<u64>,
    pub tune: SideTune,
}

impl GroupProxy {
    /// One group's names, with the proxy's settings for its side.
    pub(super) fn of_side(
        kind: &'static str,
        side: Side,
        frontends: Vec<String>,
        servers: Vec<(String, String)>,
        tune: &Tune,
    ) -> GroupProxy {
        GroupProxy {
            kind,
            side,
            frontends,
            servers,
            summed: false,
            bufsize: tune.buffer(),
            tune: tune.side(side),
        }
    }

    pub fn frontend(&self) -> Option<&str> {
        self.frontends.first().map(String::as_str)
    }

    pub fn backend(&self) -> Option<&str> {
        self.servers.first().map(|s| s.0.as_str())
    }

    /// The server, for a group of one endpoint (not a backend's sum).
    pub fn server(&self) -> Option<&str> {
        if self.summed {
            return None;
        }
        self.servers.first().map(|s| s.1.as_str())
    }

    /// The backends named, each once, in order.
    pub fn backends(&self) -> Vec<&str> {
        let mut b: Vec<&str> = Vec::new();
        for (name, _) in &self.servers {
            if !b.contains(&name.as_str()) {
                b.push(name);
            }
        }
        b
    }

    /// `backend/server` for every server.
    pub fn server_paths(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|(b, s)| format!("{b}/{s}"))
            .collect()
    }

    /// Shared by several frontends or backends: the kernel cannot tell
    /// their sockets apart.
    pub fn shared(&self) -> bool {
        self.frontends.len() > 1 || self.backends().len() > 1
    }

    /// How people read it: `frontend fe_https`, `backend app, server
    /// app3`, `frontends fe_a + fe_b (one port)`, `backend app (3 servers)`.
    pub fn describe(&self) -> String {
        // A name with a blank carries its kind's own word (nginx's
        // `server shop.example`, `upstream app`): said as it is. HAProxy's
        // names cannot hold one, and get `frontend`/`backend`.
        let word = |w: &str, name: &str| {
            if name.contains(' ') {
                name.to_string()
            } else {
                format!("{w} {name}")
            }
        };
        match self.side {
            Side::Client if self.frontends.len() > 1 => {
                format!("frontends {} (one port)", self.frontends.join(" + "))
            }
            Side::Client => word("frontend", self.frontend().unwrap_or("?")),
            Side::Server if self.summed => format!(
                "{} ({} servers)",
                word("backend", self.backend().unwrap_or("?")),
                self.servers.len()
            ),
            Side::Server if self.shared() => {
                format!("servers {} (one endpoint)", self.server_paths().join(" + "))
            }
            Side::Server => format!(
                "{}, server {}",
                word("backend", self.backend().unwrap_or("?")),
                self.server().unwrap_or("?")
            ),
        }
    }

    /// A short label for table columns: `fe_https`, `app/app3`,
    /// `fe_a+fe_b`, `app (3)`.
    pub fn label(&self) -> String {
        match self.side {
            Side::Client => self.frontends.join("+"),
            Side::Server if self.summed => {
                format!("{} ({})", self.backend().unwrap_or("?"), self.servers.len())
            }
            Side::Server => self.server_paths().join("+"),
        }
    }
}
