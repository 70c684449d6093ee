//! Names the model cannot derive from a key alone: namespaces, processes
//! and cgroups. The gathering layer fills them as it learns them
//! (`sources::gather`), and [`super::group::group_name`] reads them on any
//! thread. Kept apart from the owner rule so the one piece of shared state
//! the model has sits in one small place.
//
// Still a process-wide registry (issue 26 asks for a value passed in): the
// sinks name groups through `group_name(&GroupKey)` alone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::types::Cgroup;

/// What the default namespace is called where groups name theirs.
pub const OWN_NAME: &str = "host";

/// Names the model cannot derive from a key alone: namespaces, processes
/// and cgroups. Filled by the sources as they learn them, read by
/// [`super::group::group_name`] on any thread.
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

static REGISTRY: RwLock<Option<Registry>> = RwLock::new(None);

fn with<T>(f: impl FnOnce(&Registry) -> T) -> T {
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    match r.as_ref() {
        Some(r) => f(r),
        None => f(&Registry::default()),
    }
}

fn with_mut(f: impl FnOnce(&mut Registry)) {
    let mut r = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    f(r.get_or_insert_with(Registry::default))
}

/// The namespace reported without a suffix (the traced one, or netmem's
/// own with `--netns all`).
pub fn set_default_netns(inum: u32) {
    with_mut(|r| r.default_netns = inum);
}

/// `--netns all` is on: every group names its namespace.
pub fn set_all_namespaces(all: bool) {
    with_mut(|r| r.all = all);
}

pub fn all_namespaces() -> bool {
    with(|r| r.all)
}

pub fn name_netns(inum: u32, name: &str) {
    with_mut(|r| {
        r.netns.insert(inum, name.to_string());
    });
}

/// `@NAME` for a group outside the default namespace, else empty.
pub fn netns_suffix(inum: u32) -> String {
    with(|r| {
        if inum == 0 || inum == r.default_netns {
            String::new()
        } else {
            match r.netns.get(&inum) {
                Some(n) => format!("@{n}"),
                None => format!("@netns:{inum}"),
            }
        }
    })
}

/// The namespace's name, as groups show it (`host` for the default one).
pub fn netns_name(inum: u32) -> String {
    with(|r| {
        if inum == r.default_netns {
            OWN_NAME.to_string()
        } else {
            r.netns
                .get(&inum)
                .cloned()
                .unwrap_or_else(|| format!("netns:{inum}"))
        }
    })
}

pub fn cgroup(id: u64) -> Option<Arc<Cgroup>> {
    with(|r| r.cgroups.get(&id).cloned())
}

pub fn register_cgroup(c: Arc<Cgroup>) {
    with_mut(|r| {
        r.cgroups.insert(c.id, c);
    });
}

pub fn comm(pid: u32) -> Option<String> {
    with(|r| r.processes.get(&pid).cloned())
}

/// Registers what one pass learned: processes' names and cgroups.
pub fn learn(
    processes: impl IntoIterator<Item = (u32, String)>,
    cgroups: impl IntoIterator<Item = Arc<Cgroup>>,
) {
    with_mut(|reg| {
        reg.processes.extend(processes);
        for c in cgroups {
            reg.cgroups.insert(c.id, c);
        }
    });
}
