//! Proxy names: what the proxy in front of the sockets (HAProxy today)
//! calls them. A `listen:PORT` group is named after the frontends bound
//! to that port, a `backend:ADDR:PORT` group after the `backend/server`
//! at that endpoint; the rule is written once here ([`ProxyView::name`]),
//! and `--group-by proxy-backend` sums a backend's servers into one group.
//!
//! The kernel groups by port and endpoint only, so two frontends bound to
//! the same port on different addresses, or one server endpoint listed in
//! two backends, share one group: the group then carries every name (and
//! says so) rather than guessing one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use netmem_common::{GroupKey, GROUP_BACKEND, GROUP_LISTEN};

use super::filter::Filter;
use super::key::ip_from;
use super::names::Names;
use super::row::GroupRow;

pub mod named;
mod tune;
pub use named::GroupProxy;
pub use tune::{knob_of, Knob, Meaning, Side, SideTune, Tune};

/// A frontend's listening socket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub frontend: String,
    /// None: every address (`bind :80`).
    pub addr: Option<IpAddr>,
    pub port: u16,
}

/// A server as the proxy reaches it now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Server {
    pub backend: String,
    pub server: String,
    pub addr: SocketAddr,
}

/// What a proxy says of itself: its listeners, its servers where they are
/// now, and its buffer settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyMap {
    pub listeners: Vec<Listener>,
    pub servers: Vec<Server>,
    /// Every backend, with the frontends routing to it (`default_backend`,
    /// `use_backend`) when the configuration was read.
    pub backends: BTreeMap<String, BTreeSet<String>>,
    pub tune: Tune,
    /// What was read from where (e.g. "servers: runtime API PATH").
    pub origin: Vec<String>,
    /// What could not be named, and why (host names, `${VAR}`, templates
    /// without the runtime API).
    pub notes: Vec<String>,
}

/// One proxy as a pass saw it: where it was read, what it said, what
/// went wrong. Its names, indexed by port and endpoint.
#[derive(Debug, Default)]
pub struct ProxyView {
    /// `haproxy`.
    pub kind: &'static str,
    /// Where it was found and read from, for people.
    pub source: String,
    /// The network namespace whose sockets it names (inode number).
    pub netns: u32,
    pub map: Option<ProxyMap>,
    /// What could not be read, said in full (a warning each).
    pub problems: Vec<String>,
    /// Changes whenever the map or the problems change, so sinks show a
    /// proxy again only when there is something new.
    pub generation: u64,
    by_port: HashMap<u16, Arc<GroupProxy>>,
    by_endpoint: HashMap<(IpAddr, u16), Arc<GroupProxy>>,
}

impl ProxyView {
    /// Which proxy this is and where it was read: `haproxy (pid 1, ...)`.
    pub fn describe_source(&self) -> String {
        format!("{} ({})", self.kind, self.source)
    }

    /// A view of `map` (None when nothing could be read), indexed.
    pub fn new(
        kind: &'static str,
        source: String,
        netns: u32,
        map: Option<ProxyMap>,
        problems: Vec<String>,
    ) -> ProxyView {
        let mut v = ProxyView {
            kind,
            source,
            netns,
            map,
            problems,
            ..Default::default()
        };
        v.index();
        v
    }

    fn index(&mut self) {
        let Some(m) = &self.map else {
            return;
        };
        let mut ports: HashMap<u16, BTreeSet<String>> = HashMap::new();
        for l in &m.listeners {
            ports.entry(l.port).or_default().insert(l.frontend.clone());
        }
        let mut endpoints: HashMap<(IpAddr, u16), BTreeSet<(String, String)>> = HashMap::new();
        for s in &m.servers {
            endpoints
                .entry((canonical(s.addr.ip()), s.addr.port()))
                .or_default()
                .insert((s.backend.clone(), s.server.clone()));
        }
        let named = |side, frontends, servers| {
            Arc::new(GroupProxy::of_side(
                self.kind, side, frontends, servers, &m.tune,
            ))
        };
        self.by_port = ports
            .into_iter()
            .map(|(p, f)| (p, named(Side::Client, f.into_iter().collect(), Vec::new())))
            .collect();
        self.by_endpoint = endpoints
            .into_iter()
            .map(|(e, s)| (e, named(Side::Server, Vec::new(), s.into_iter().collect())))
            .collect();
    }

    /// The rule: a `listen:` group is named by the frontends bound to its
    /// port, a `backend:` group by the servers at its endpoint, in the
    /// proxy's own namespace only.
    pub fn name(&self, g: &GroupKey) -> Option<Arc<GroupProxy>> {
        if g.netns != self.netns {
            return None;
        }
        match g.kind {
            GROUP_LISTEN => self.by_port.get(&g.port).cloned(),
            GROUP_BACKEND => self
                .by_endpoint
                .get(&(canonical(ip_from(g.family, &g.addr)), g.port))
                .cloned(),
            _ => None,
        }
    }

    /// Counts for people: frontends, backends, servers.
    pub fn sizes(&self) -> (usize, usize, usize) {
        self.map.as_ref().map_or((0, 0, 0), |m| {
            let fe: BTreeSet<&str> = m.listeners.iter().map(|l| l.frontend.as_str()).collect();
            (fe.len(), m.backends.len(), m.servers.len())
        })
    }
}

/// IPv4-mapped IPv6 addresses as IPv4: a dual-stack socket to a v4 server.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The first proxy's names for `g`.
pub fn name_of(views: &[Arc<ProxyView>], g: &GroupKey) -> Option<Arc<GroupProxy>> {
    views.iter().find_map(|v| v.name(g))
}

/// Names every group of a pass.
pub fn name_groups(groups: &mut BTreeMap<GroupKey, GroupRow>, views: &[Arc<ProxyView>]) {
    for (g, row) in groups.iter_mut() {
        row.proxy = name_of(views, g);
    }
}

/// The group an event of port group `g` belongs to under `--group-by
/// proxy-backend`: its server's backend (its key from `names`), or `g`
/// itself.
pub fn event_group(g: GroupKey, named: Option<&GroupProxy>, names: &Names) -> GroupKey {
    match named {
        Some(p) if g.kind == GROUP_BACKEND => match p.backend() {
            Some(b) => names.backend_key(b, g.netns),
            None => g,
        },
        _ => g,
    }
}

/// `--group-by proxy-backend`: the `backend:` groups of a proxy's servers
/// summed per backend (a server shared by two backends goes to the first
/// by name, and the group lists it); every other group stays as it is.
/// Owners are not summed: a proxy backend's owner is the proxy.
pub fn regroup(
    groups: BTreeMap<GroupKey, GroupRow>,
    filter: &Filter,
    names: &Names,
) -> BTreeMap<GroupKey, GroupRow> {
    let mut out = BTreeMap::new();
    let mut members: HashMap<GroupKey, BTreeSet<(String, String)>> = HashMap::new();
    for (g, row) in groups {
        let named = row.proxy.clone();
        let k = event_group(g, named.as_deref(), names);
        if k == g {
            out.insert(g, row);
            continue;
        }
        if !filter.accepts(&g) {
            continue;
        }
        let p = named.expect("named: its key changed");
        members
            .entry(k)
            .or_default()
            .extend(p.servers.iter().cloned());
        let r: &mut GroupRow = out.entry(k).or_insert_with(|| GroupRow {
            proxy: Some(p.clone()),
            ..Default::default()
        });
        r.mem.absorb(&row.mem);
        for (a, b) in r.counts.iter_mut().zip(row.counts.iter()) {
            *a += b;
        }
    }
    for (k, servers) in members {
        if let Some(r) = out.get_mut(&k) {
            let base = r.proxy.as_deref().expect("set above");
            let backend = base.backend().unwrap_or_default().to_string();
            let mut servers: Vec<_> = servers.into_iter().collect();
            // The backend's own servers first, so `backend()` names it.
            servers.sort_by_key(|s| (s.0 != backend, s.clone()));
            r.proxy = Some(Arc::new(GroupProxy {
                servers,
                summed: true,
                ..base.clone()
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::AF_INET;

    const KNOBS: &[Knob] = &[
        Knob {
            name: "bufsize",
            meaning: Meaning::ProxyBuffer,
        },
        Knob {
            name: "rcvbuf.server",
            meaning: Meaning::Rcvbuf(Side::Server),
        },
    ];

    fn view() -> ProxyView {
        let s = |b: &str, n: &str, a: &str| Server {
            backend: b.into(),
            server: n.into(),
            addr: a.parse().unwrap(),
        };
        let l = |f: &str, a: Option<&str>, port| Listener {
            frontend: f.into(),
            addr: a.map(|a| a.parse().unwrap()),
            port,
        };
        ProxyView::new(
            "haproxy",
            "test".into(),
            0,
            Some(ProxyMap {
                listeners: vec![
                    l("fe_https", None, 8443),
                    l("fe_https", Some("10.0.0.1"), 8080),
                    l("fe_b", Some("10.0.0.2"), 8080),
                ],
                servers: vec![
                    s("app", "app1", "10.0.3.17:9001"),
                    s("app", "app2", "10.0.3.18:9001"),
                    s("static", "st1", "10.0.3.18:9001"),
                ],
                tune: {
                    let mut t = Tune::new(KNOBS);
                    t.set(Meaning::ProxyBuffer, Some(16384));
                    t.set(Meaning::Rcvbuf(Side::Server), Some(262144));
                    t.set_known(Side::Server, true);
                    t
                },
                ..Default::default()
            }),
            Vec::new(),
        )
    }

    fn backend(a: [u8; 4], port: u16) -> GroupKey {
        GroupKey::classify(AF_INET, 40000, false, &ip16(a), port).in_netns(0)
    }

    fn ip16(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    fn listen(port: u16) -> GroupKey {
        GroupKey::classify(AF_INET, port, true, &[0; 16], 0).in_netns(0)
    }

    #[test]
    fn ports_and_endpoints_are_named_in_the_proxys_namespace_only() {
        let v = view();
        let fe = v.name(&listen(8443)).unwrap();
        assert_eq!(
            (fe.side, fe.frontend(), fe.describe().as_str()),
            (Side::Client, Some("fe_https"), "frontend fe_https")
        );
        let shared = v.name(&listen(8080)).unwrap();
        assert_eq!(shared.frontends, vec!["fe_b", "fe_https"]);
        assert!(shared.shared());
        assert_eq!(shared.label(), "fe_b+fe_https");
        let one = v.name(&backend([10, 0, 3, 17], 9001)).unwrap();
        assert_eq!(
            (one.backend(), one.server(), one.tune.rcvbuf, one.bufsize),
            (Some("app"), Some("app1"), Some(262144), Some(16384))
        );
        assert_eq!(one.describe(), "backend app, server app1");
        let two = v.name(&backend([10, 0, 3, 18], 9001)).unwrap();
        assert!(two.shared());
        assert_eq!(two.server_paths(), vec!["app/app2", "static/st1"]);
        assert_eq!(two.server(), Some("app2"));
        assert!(v.name(&backend([10, 0, 3, 17], 9002)).is_none());
        assert!(v.name(&listen(9999)).is_none());
        let mut elsewhere = listen(8443);
        elsewhere.netns = 8;
        assert!(v.name(&elsewhere).is_none());
    }

    #[test]
    fn proxy_backend_sums_a_backends_servers_and_keeps_the_rest() {
        let views = vec![Arc::new(view())];
        let mut groups = BTreeMap::new();
        for (k, bytes) in [
            (backend([10, 0, 3, 17], 9001), 1000),
            (backend([10, 0, 3, 18], 9001), 500),
            (backend([10, 0, 9, 9], 80), 7),
            (listen(8443), 3),
        ] {
            let mut r = GroupRow::default();
            r.mem.rmem = bytes;
            r.mem.sockets = 1;
            r.counts[0] = 1;
            groups.insert(k, r);
        }
        name_groups(&mut groups, &views);
        let named = Names::default();
        let out = regroup(groups, &Filter::default(), &named);
        let names: BTreeMap<String, &GroupRow> =
            out.iter().map(|(k, r)| (named.group_name(k), r)).collect();
        let app = names["proxy-backend:app"];
        assert_eq!((app.mem.rmem, app.mem.sockets, app.counts[0]), (1500, 2, 2));
        let p = app.proxy.as_ref().unwrap();
        assert_eq!(p.backend(), Some("app"));
        assert_eq!(p.server_paths(), vec!["app/app1", "app/app2", "static/st1"]);
        // A sum names its backend, not one of its servers.
        assert_eq!(p.server(), None);
        assert_eq!(p.describe(), "backend app (3 servers)");
        assert_eq!(p.label(), "app (3)");
        assert!(names.contains_key("backend:10.0.9.9:80"));
        assert!(names.contains_key("listen:8443"));
        assert_eq!(out.len(), 3);
    }
}
