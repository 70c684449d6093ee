//! A cgroup's memory controller, read for the cgroups that own shown
//! groups: cgroup v2's `memory.current`, `memory.max`, `memory.high`,
//! `memory.events` and `memory.stat` `sock`, the limit that applies on
//! the way up (a pod's slice often sets it, not the container), and,
//! where the v1 memory controller is mounted (a hybrid host), v1's TCP
//! accounting `memory.kmem.tcp.*` under the same path.
//!
//! The files are the kernel's, but a container runtime may bind-mount
//! anything over them: each is read capped, without blocking, and what is
//! not a number reads as unknown, never as an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model::memcg::{EffectiveLimit, Memcg, MemcgEvents, TcpKmem};

/// More than any of these files holds (memory.stat is about 2 KiB on
/// 6.x): a file past it is not the kernel's.
const CAP: u64 = 64 * 1024;

/// Ancestors walked up at most: a real hierarchy is a handful deep.
const MAX_DEPTH: usize = 64;

/// A file's text, or None (absent, unreadable, too big, not UTF-8).
fn read(path: &Path) -> Option<String> {
    let b = crate::sources::proxy::trust::read_capped(path, CAP, "a cgroup file's cap").ok()?;
    String::from_utf8(b).ok()
}

/// `memory.max` / `memory.high`: Some(None) for `max` (no limit),
/// Some(Some(bytes)) for a number, None for anything else.
pub fn parse_limit(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    if s == "max" {
        return Some(None);
    }
    s.parse().ok().map(Some)
}

/// One number alone in a file (`memory.current`).
pub fn parse_number(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// A flat keyed file's value (`memory.stat`, `memory.events`): the first
/// line `key value`.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

pub fn parse_events(text: &str) -> MemcgEvents {
    MemcgEvents {
        high: keyed(text, "high"),
        max: keyed(text, "max"),
        oom: keyed(text, "oom"),
        oom_kill: keyed(text, "oom_kill"),
        sock_throttled: keyed(text, "sock_throttled"),
    }
}

/// v1's "no limit" is PAGE_COUNTER_MAX pages in bytes (about 2^63): a
/// limit this large is none.
fn v1_limit(n: u64) -> Option<u64> {
    (n < 1 << 62).then_some(n)
}

/// Where the memory controllers are: the cgroup2 mount and, on a v1 or
/// hybrid host, the v1 `memory` hierarchy's mount.
#[derive(Debug, Default)]
pub struct MemcgRoots {
    pub v2: Option<PathBuf>,
    pub v1_memory: Option<PathBuf>,
    /// A pass's limits by cgroup path: the containers of one pod share
    /// their ancestors, which are read once per pass, not once each.
    limits: std::sync::Mutex<HashMap<String, Option<Limit>>>,
}

/// One cgroup's `memory.max` (a number), `memory.current` and events.
type Limit = (u64, u64, MemcgEvents);

impl MemcgRoots {
    pub fn new(v2: Option<PathBuf>) -> MemcgRoots {
        MemcgRoots {
            v2,
            v1_memory: v1_memory_mount(),
            limits: Default::default(),
        }
    }

    /// A new pass: what the last one read of the ancestors is forgotten.
    pub fn new_pass(&self) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The figures of the cgroup at `path` (as `Cgroup::path`: `/a/b`).
    /// None when there is nothing to read at all (no v2 memory controller
    /// there and no v1 TCP accounting).
    pub fn read(&self, path: &str) -> Option<Memcg> {
        let rel = path.trim_start_matches('/');
        let mut m = Memcg::default();
        if let Some(root) = &self.v2 {
            let dir = root.join(rel);
            m.sock = read(&dir.join("memory.stat")).and_then(|s| keyed(&s, "sock"));
            m.current = read(&dir.join("memory.current")).and_then(|s| parse_number(&s));
            m.max = read(&dir.join("memory.max"))
                .and_then(|s| parse_limit(&s))
                .flatten();
            m.high = read(&dir.join("memory.high"))
                .and_then(|s| parse_limit(&s))
                .flatten();
            m.events = read(&dir.join("memory.events"))
                .map(|s| parse_events(&s))
                .unwrap_or_default();
            let mut cache = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            m.limit = effective_limit(root, path, &mut cache);
        }
        if let Some(v1) = &self.v1_memory {
            let dir = v1.join(rel);
            let f = |name: &str| read(&dir.join(name)).and_then(|s| parse_number(&s));
            let usage = f("memory.kmem.tcp.usage_in_bytes");
            if usage.is_some() {
                m.tcp_kmem = Some(TcpKmem {
                    limit: f("memory.kmem.tcp.limit_in_bytes").and_then(v1_limit),
                    usage,
                    failcnt: f("memory.kmem.tcp.failcnt"),
                });
            }
        }
        (m != Memcg::default()).then_some(m)
    }
}

/// The tightest `memory.max` from `path` up to (not including) the root,
/// which has none: the one with the least room left.
fn effective_limit(
    root: &Path,
    path: &str,
    cache: &mut HashMap<String, Option<Limit>>,
) -> Option<EffectiveLimit> {
    let mut best: Option<(u64, EffectiveLimit)> = None;
    let mut at = path.trim_end_matches('/').to_string();
    for _ in 0..MAX_DEPTH {
        if at.is_empty() || at == "/" {
            break;
        }
        let limit = cache
            .entry(at.clone())
            .or_insert_with(|| {
                let dir = root.join(at.trim_start_matches('/'));
                let max = read(&dir.join("memory.max"))
                    .and_then(|s| parse_limit(&s))
                    .flatten()?;
                let current = read(&dir.join("memory.current")).and_then(|s| parse_number(&s))?;
                let events = read(&dir.join("memory.events"))
                    .map(|s| parse_events(&s))
                    .unwrap_or_default();
                Some((max, current, events))
            })
            .clone();
        if let Some((max, current, events)) = limit {
            let room = max.saturating_sub(current);
            if best.as_ref().is_none_or(|(r, _)| room < *r) {
                best = Some((
                    room,
                    EffectiveLimit {
                        max,
                        current,
                        cgroup: at.clone(),
                        events,
                    },
                ));
            }
        }
        at = match at.rsplit_once('/') {
            Some((parent, _)) => parent.to_string(),
            None => break,
        };
    }
    best.map(|(_, l)| l)
}

/// The v1 memory hierarchy's mount point from /proc/self/mountinfo
/// (`/sys/fs/cgroup/memory` on a hybrid host), if any.
fn v1_memory_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        if post.next()? != "cgroup" {
            return None;
        }
        let superopts = post.nth(1)?;
        if !superopts.split(',').any(|o| o == "memory") {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_files_read_as_unknown() {
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("31457280\n"), Some(Some(31457280)));
        assert_eq!(parse_limit("99999999999999999999999"), None);
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(parse_limit("\u{0}garbage"), None);
        assert_eq!(parse_number(""), None);
        let ev = parse_events("low 0\nhigh 3\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n");
        assert_eq!(ev.max, Some(17));
        assert_eq!(ev.high, Some(3));
        assert_eq!(ev.sock_throttled, None);
        let ev = parse_events("max x\nmax 5\nsock_throttled 2");
        assert_eq!((ev.max, ev.sock_throttled), (None, Some(2)));
        assert_eq!(keyed("sockets 5\nsock 4096\n", "sock"), Some(4096));
        assert_eq!(v1_limit(9223372036854771712), None);
        assert_eq!(v1_limit(1 << 20), Some(1 << 20));
    }

    #[test]
    fn the_tightest_limit_on_the_way_up_applies() {
        let d = std::env::temp_dir().join(format!("netmem-memcg-{}", std::process::id()));
        let pod = d.join("pod");
        let ctr = pod.join("ctr");
        std::fs::create_dir_all(&ctr).unwrap();
        let put = |dir: &Path, f: &str, v: &str| std::fs::write(dir.join(f), v).unwrap();
        put(&pod, "memory.max", "33554432\n");
        put(&pod, "memory.current", "33000000\n");
        put(&ctr, "memory.max", "max\n");
        put(&ctr, "memory.current", "20000000\n");
        put(&ctr, "memory.stat", "anon 1\nsock 8192\n");
        put(&ctr, "memory.events", "max 4\n");
        put(&pod, "memory.events", "max 9\nhigh 1\n");
        let roots = MemcgRoots {
            v2: Some(d.clone()),
            v1_memory: None,
            limits: Default::default(),
        };
        let m = roots.read("/pod/ctr").unwrap();
        assert_eq!(m.sock, Some(8192));
        assert_eq!(m.max, None);
        assert_eq!(m.events.max, Some(4));
        let l = m.limit.unwrap();
        assert_eq!(
            (l.max, l.current, l.cgroup.as_str()),
            (33554432, 33000000, "/pod")
        );
        assert_eq!((l.events.max, l.events.high), (Some(9), Some(1)));
        // Within a pass the ancestors are read once; a new pass reads
        // them again.
        put(&pod, "memory.current", "1\n");
        assert_eq!(
            roots.read("/pod/ctr").unwrap().limit.unwrap().current,
            33000000
        );
        roots.new_pass();
        assert_eq!(roots.read("/pod/ctr").unwrap().limit.unwrap().current, 1);
        // Garbage where a number goes, and a file too big: unknown.
        roots.new_pass();
        put(&pod, "memory.max", "lots");
        put(&ctr, "memory.stat", &"x".repeat(CAP as usize + 10));
        let m = roots.read("/pod/ctr").unwrap();
        assert_eq!((m.sock, m.limit), (None, None));
        assert_eq!(roots.read("/gone"), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
