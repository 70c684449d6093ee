//! Names a key alone cannot give (namespaces, processes, cgroups, proxy
//! backends) and the one rule that names a group from its key with them
//! ([`Names::group_name`]). The gathering layer fills them as it learns
//! them (`sources::gather`); the decoder, the aggregator and every sink
//! read them.
//
// A value, not a process global: the engine (or `snapshot`) makes one per
// run and hands it to whatever names groups, so two runs in one process
// (tests, the bench) never share names. It is a cheap-clone handle onto
// tables behind locks rather than a struct lent out, because it is written
// on the gathering worker (a blocking thread of the engine's) while the
// engine's task and the `top` view's thread read it; `snapshot` and tests
// use it from one thread alike.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use netmem_common::{
    GroupKey, GROUP_BACKEND, GROUP_CGROUP, GROUP_LISTEN, GROUP_PROCESS, GROUP_PROXY_BACKEND,
};

use super::key::{endpoint, id_key, ip_from, owner_id};
use super::types::Cgroup;

/// What the default namespace is called where groups name theirs.
pub const OWN_NAME: &str = "host";

/// The naming tables of one run; clones share them.
#[derive(Clone, Default)]
pub struct Names(Arc<Tables>);

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.read();
        f.debug_struct("Names")
            .field("default_netns", &r.default_netns)
            .field("all", &r.all)
            .field("netns", &r.netns.len())
            .field("processes", &r.processes.len())
            .field("cgroups", &r.cgroups.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tables {
    registry: RwLock<Registry>,
    backends: RwLock<Backends>,
}

/// Namespaces, processes and cgroups, as the passes learned them.
#[derive(Default)]
struct Registry {
    /// The namespace whose groups carry no `@NAME` suffix.
    default_netns: u32,
    /// `--netns all`: groups say which namespace they are in.
    all: bool,
    netns: HashMap<u32, String>,
    processes: HashMap<u32, String>,
    cgroups: HashMap<u64, Arc<Cgroup>>,
}

/// Backend names behind `proxy-backend:` keys: the key carries an id;
/// names are never forgotten, so a key always names the same backend.
/// Looked up per event under `--group-by proxy-backend`, hence the index.
#[derive(Default)]
struct Backends {
    names: Vec<String>,
    ids: HashMap<String, u64>,
}

impl Names {
    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.0.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.0.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The group's name, unique within a pass: `listen:8080`,
    /// `backend:10.0.0.2:9001`, `process:haproxy[812]`, `cgroup:/PATH`,
    /// `proxy-backend:NAME`; with `@NAMESPACE` when it is not the default
    /// namespace's (`--netns all`).
    pub fn group_name(&self, g: &GroupKey) -> String {
        let base = match g.kind {
            GROUP_LISTEN => format!("listen:{}", g.port),
            GROUP_BACKEND => format!("backend:{}", endpoint(&ip_from(g.family, &g.addr), g.port)),
            GROUP_PROCESS | GROUP_CGROUP => self.owner_group_name(g),
            GROUP_PROXY_BACKEND => self.backend_group_name(g),
            // With its namespace when it has one: a polled abort is
            // counted per namespace, with no socket to group it by.
            _ => "unattributed".to_string(),
        };
        base + &self.netns_suffix(g.netns)
    }

    /// `process:haproxy[1234]`, `cgroup:/system.slice/haproxy.service`, or
    /// `(none)` when nothing owns the sockets (without the namespace
    /// suffix).
    pub fn owner_group_name(&self, k: &GroupKey) -> String {
        let id = owner_id(k);
        match k.kind {
            GROUP_PROCESS if id == 0 => "process:(none)".to_string(),
            GROUP_PROCESS => format!(
                "process:{}[{id}]",
                self.comm(id as u32).unwrap_or_else(|| "?".into())
            ),
            _ if id == 0 => "cgroup:(none)".to_string(),
            _ => match self.cgroup(id) {
                Some(c) => format!("cgroup:{}", c.path),
                None => format!("cgroup:{id}"),
            },
        }
    }

    /// `proxy-backend:NAME` (without its namespace suffix).
    pub fn backend_group_name(&self, g: &GroupKey) -> String {
        let id = owner_id(g) as usize;
        let b = self.0.backends.read().unwrap_or_else(|e| e.into_inner());
        match id.checked_sub(1).and_then(|i| b.names.get(i)) {
            Some(n) => format!("proxy-backend:{n}"),
            None => format!("proxy-backend:{id}"),
        }
    }

    /// The `proxy-backend:` key of backend `name` in namespace `netns`
    /// (the same key for the same name for the whole run).
    pub fn backend_key(&self, name: &str, netns: u32) -> GroupKey {
        id_key(GROUP_PROXY_BACKEND, self.backend_id(name), netns)
    }

    fn backend_id(&self, name: &str) -> u64 {
        let known = self.0.backends.read().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = known.ids.get(name) {
            return *id;
        }
        drop(known);
        let mut b = self.0.backends.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = b.ids.get(name) {
            return *id;
        }
        b.names.push(name.to_string());
        let id = b.names.len() as u64;
        b.ids.insert(name.to_string(), id);
        id
    }

    /// The namespace reported without a suffix (the traced one, or netmem's
    /// own with `--netns all`).
    pub fn set_default_netns(&self, inum: u32) {
        self.write().default_netns = inum;
    }

    /// `--netns all` is on: every group names its namespace.
    pub fn set_all_namespaces(&self, all: bool) {
        self.write().all = all;
    }

    pub fn all_namespaces(&self) -> bool {
        self.read().all
    }

    pub fn name_netns(&self, inum: u32, name: &str) {
        self.write().netns.insert(inum, name.to_string());
    }

    /// `@NAME` for a group outside the default namespace, else empty.
    pub fn netns_suffix(&self, inum: u32) -> String {
        let r = self.read();
        if inum == 0 || inum == r.default_netns {
            String::new()
        } else {
            match r.netns.get(&inum) {
                Some(n) => format!("@{n}"),
                None => format!("@netns:{inum}"),
            }
        }
    }

    /// The namespace's name, as groups show it (`host` for the default one).
    pub fn netns_name(&self, inum: u32) -> String {
        let r = self.read();
        if inum == r.default_netns {
            OWN_NAME.to_string()
        } else {
            r.netns
                .get(&inum)
                .cloned()
                .unwrap_or_else(|| format!("netns:{inum}"))
        }
    }

    /// The namespace's own name where it has one (`--netns NAME` for the
    /// traced namespace), else as [`Names::netns_name`]: what a namespace's
    /// counters are reported under.
    pub fn netns_label(&self, inum: u32) -> String {
        match self.read().netns.get(&inum) {
            Some(n) => n.clone(),
            None => self.netns_name(inum),
        }
    }

    pub fn cgroup(&self, id: u64) -> Option<Arc<Cgroup>> {
        self.read().cgroups.get(&id).cloned()
    }

    pub fn register_cgroup(&self, c: Arc<Cgroup>) {
        self.write().cgroups.insert(c.id, c);
    }

    pub fn comm(&self, pid: u32) -> Option<String> {
        self.read().processes.get(&pid).cloned()
    }

    /// Registers what one pass learned: processes' names and cgroups.
    pub fn learn(
        &self,
        processes: impl IntoIterator<Item = (u32, String)>,
        cgroups: impl IntoIterator<Item = Arc<Cgroup>>,
    ) {
        let mut reg = self.write();
        reg.processes.extend(processes);
        for c in cgroups {
            reg.cgroups.insert(c.id, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmem_common::AF_INET;

    fn listen(port: u16, netns: u32) -> GroupKey {
        GroupKey::classify(AF_INET, port, true, &[0; 16], 0).in_netns(netns)
    }

    #[test]
    fn namespaces_are_named_by_the_run_that_learned_them() {
        let n = Names::default();
        n.set_default_netns(7);
        n.name_netns(8, "blue");
        assert_eq!(n.group_name(&listen(80, 7)), "listen:80");
        assert_eq!(n.group_name(&listen(80, 8)), "listen:80@blue");
        assert_eq!(n.group_name(&listen(80, 9)), "listen:80@netns:9");
        assert_eq!(n.netns_name(7), OWN_NAME);
        // Another run's names are its own; a clone shares them.
        let other = Names::default();
        assert_eq!(other.group_name(&listen(80, 8)), "listen:80@netns:8");
        let shared = n.clone();
        shared.name_netns(9, "green");
        assert_eq!(n.group_name(&listen(80, 9)), "listen:80@green");
    }

    #[test]
    fn owners_and_proxy_backends_keep_their_names() {
        let n = Names::default();
        n.learn(
            [(812, "haproxy".to_string())],
            [Arc::new(Cgroup {
                id: 40,
                path: "/shop".into(),
                container: None,
                pod: None,
            })],
        );
        let process = id_key(GROUP_PROCESS, 812, 0);
        assert_eq!(n.group_name(&process), "process:haproxy[812]");
        assert_eq!(
            n.group_name(&id_key(GROUP_PROCESS, 813, 0)),
            "process:?[813]"
        );
        assert_eq!(n.group_name(&id_key(GROUP_CGROUP, 40, 0)), "cgroup:/shop");
        assert_eq!(n.group_name(&id_key(GROUP_CGROUP, 0, 0)), "cgroup:(none)");
        let app = n.backend_key("app", 0);
        assert_eq!(
            n.backend_key("static", 0),
            id_key(GROUP_PROXY_BACKEND, 2, 0)
        );
        assert_eq!(n.backend_key("app", 0), app);
        assert_eq!(n.group_name(&app), "proxy-backend:app");
        // A key another run made names no backend here.
        assert_eq!(Names::default().group_name(&app), "proxy-backend:1");
    }
}
