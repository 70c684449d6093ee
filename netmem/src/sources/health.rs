//! The figures `netmem check` judges (`model::health`), gathered one of
//! two ways: from a running `netmem serve`'s `/metrics` over loopback
//! (cheap: serve has read everything already, its aborts carry their
//! cause and time), or from one reading of the host (sockstat, the
//! sysctls, each namespace's TCPAbortOnMemory, and the cgroup tree's
//! memory controllers), which compares the abort counters with the
//! previous check's kept in a small state file.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::scrape::{self, Exposition, ScrapeError};
use crate::model::health::{Aborts, CgroupUnderPressure, Cgroups, Facts, Orphans, TcpMemory};
use crate::model::memcg::{local_pressure, HostTcp};

/// The check's figures from serve at `addr`, read before `deadline`.
/// `Err` when serve's answer cannot be judged (said as the reason).
pub fn from_serve(
    addr: SocketAddr,
    deadline: Instant,
    window: Duration,
    now: SystemTime,
) -> Result<Facts, ScrapeError> {
    let text = scrape::get(addr, "/metrics", deadline)?;
    let samples = scrape::parse(&text).map_err(|e| {
        ScrapeError::Garbage(format!("its answer is not a Prometheus exposition ({e})"))
    })?;
    serve_facts(&Exposition(samples), addr, window, now).map_err(ScrapeError::Garbage)
}

/// What serve's exposition says; `Err` when it is not serve's, or serve
/// is not reading (no interval yet, or its last one is stale).
pub fn serve_facts(
    e: &Exposition,
    addr: SocketAddr,
    window: Duration,
    now: SystemTime,
) -> Result<Facts, String> {
    if !e.has("netmem_build_info") {
        return Err("it answered, but not with netmem serve's metrics".into());
    }
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let Some(last) = e.value("netmem_last_interval_timestamp_seconds", &[]) else {
        return Err("serve has not read its first interval yet".into());
    };
    // Three intervals late, and at least a minute: a pass may be slow
    // (a census under load), but a serve this far behind is stuck.
    let interval = e.value("netmem_interval_seconds", &[]).unwrap_or(5.0);
    let stale = (3.0 * interval).max(60.0);
    if now_s - last > stale {
        return Err(format!(
            "serve's last interval is {:.0}s old: is it stuck?",
            now_s - last
        ));
    }
    let tcp = match (
        e.value("netmem_tcp_memory_allocated_bytes", &[]),
        e.value(
            "netmem_tcp_memory_limit_bytes",
            &[("threshold", "pressure")],
        ),
    ) {
        (Some(a), Some(p)) if a >= 0.0 && p >= 0.0 => Some(TcpMemory {
            allocated_pages: a as u64,
            tcp_mem_pages: [0, p as u64, 0],
            page_size: 1,
        }),
        _ => None,
    };
    let orphans = match (
        e.value("netmem_tcp_orphans", &[]),
        e.value("netmem_tcp_max_orphans", &[]),
    ) {
        (Some(c), Some(m)) if c >= 0.0 && m >= 0.0 => Some(Orphans {
            count: c as u64,
            max: m as u64,
        }),
        _ => None,
    };
    Ok(Facts {
        tcp,
        orphans,
        aborts: serve_aborts(e, window, now_s),
        cgroups: serve_cgroups(e),
        window,
        source: format!("from serve {addr}"),
    })
}

fn serve_aborts(e: &Exposition, window: Duration, now_s: f64) -> Aborts {
    const LAST: &str = "netmem_aborts_on_memory_last_timestamp_seconds";
    if !e.has(LAST) {
        return Aborts::Unknown("serve is older than check: no time of its last aborts".into());
    }
    let mut causes = Vec::new();
    let mut count = 0u64;
    let mut newest: Option<f64> = None;
    for s in e.all(LAST) {
        if !(s.value.is_finite() && s.value > 0.0) || now_s - s.value > window.as_secs_f64() {
            continue;
        }
        let cause = s.label("cause");
        causes.push(cause.to_string());
        count += e
            .value("netmem_aborts_on_memory_total", &[("cause", cause)])
            .unwrap_or(0.0) as u64;
        newest = Some(newest.map_or(s.value, |n: f64| n.max(s.value)));
    }
    let Some(newest) = newest else {
        return Aborts::None;
    };
    // The group with the most since serve started (groups have no time
    // of their own: that would be a series per group).
    let mut by_group: BTreeMap<&str, f64> = BTreeMap::new();
    for s in e.all("netmem_group_aborts_on_memory_total") {
        if s.value.is_finite() && s.value > 0.0 {
            *by_group.entry(s.label("group")).or_default() += s.value;
        }
    }
    let group = by_group
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(g, _)| g.to_string());
    let window = humantime::format_duration(window);
    Aborts::Seen {
        count: Some(count),
        causes,
        counted: Some(format!("since serve started, the last within {window}")),
        group,
        last_ago: Some(Duration::from_secs_f64((now_s - newest).max(0.0))),
    }
}

fn serve_cgroups(e: &Exposition) -> Cgroups {
    let series: Vec<_> = e.all("netmem_cgroup_socket_pressure").collect();
    if series.is_empty() && !e.has("netmem_group_owner_info") {
        return Cgroups::NotChecked("serve runs without --owners".into());
    }
    let under = series
        .iter()
        .filter(|s| s.value == 1.0)
        .map(|s| {
            let cg = s.label("cgroup");
            let pod = s.label("pod");
            CgroupUnderPressure {
                cgroup: if pod.is_empty() {
                    cg.to_string()
                } else {
                    format!("pod {pod}")
                },
                sock: e
                    .value("netmem_cgroup_sock_bytes", &[("cgroup", cg)])
                    .map(|v| v as u64),
            }
        })
        .collect();
    Cgroups::Checked {
        checked: series.len(),
        under,
    }
}

/// Where a one-reading check keeps the previous reading's counters.
pub const STATE: &str = "/run/netmem/check-state";

/// The cgroups a one-reading check looks at, at most: a node's pods and
/// their containers are far fewer; past this the rest are not read.
pub const MAX_CGROUPS: usize = 20_000;

/// The check's figures from one reading of the host, its aborts compared
/// with `state`'s (None: not kept).
pub fn one_reading(window: Duration, state: Option<&Path>, now: SystemTime, note: &str) -> Facts {
    let netns = super::netns::Netns::open(None).ok();
    let ctx = netns
        .as_ref()
        .and_then(|n| super::procfs::Context::read(n).ok());
    let tcp = ctx.as_ref().and_then(|c| {
        Some(TcpMemory {
            allocated_pages: c.memory_allocated_pages,
            tcp_mem_pages: c.tcp_mem_pages?,
            page_size: c.page_size,
        })
    });
    let orphans = ctx.as_ref().and_then(|c| {
        Some(Orphans {
            count: c.orphans,
            max: c.max_orphans?,
        })
    });
    let host = tcp.map(|t| HostTcp {
        allocated_pages: t.allocated_pages,
        tcp_mem_pages: t.tcp_mem_pages,
    });
    let source = if note.is_empty() {
        "one reading".to_string()
    } else {
        format!("one reading; {note}")
    };
    Facts {
        tcp,
        orphans,
        aborts: reading_aborts(window, state, now),
        cgroups: reading_cgroups(host),
        window,
        source,
    }
}

/// Every namespace's TCPAbortOnMemory this process can read, by inode:
/// the kernel counts it per namespace, so a pod's aborts are in the
/// pod's. Without the right to enter the others, netmem's own alone.
fn abort_counters() -> Result<BTreeMap<u32, u64>, String> {
    let mut out = BTreeMap::new();
    let mut all = super::netns::Namespaces::default();
    let found = all.discover().map_err(|e| format!("{e:#}"))?;
    for (ns, _) in found {
        let (Ok(inum), Ok((_, mibs))) = (
            ns.inum(),
            super::procfs::Context::usage_and_counters(ns, true),
        ) else {
            continue;
        };
        if let Some(n) = mibs.get("TCPAbortOnMemory") {
            out.insert(inum, *n);
        }
    }
    if out.is_empty() {
        return Err("no TCPAbortOnMemory in /proc/net/netstat".into());
    }
    Ok(out)
}

/// The previous check's reading, as kept in the state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The boot it was taken in (counters start again at boot).
    pub boot_id: String,
    /// When (Unix seconds).
    pub taken: u64,
    /// TCPAbortOnMemory by namespace inode.
    pub aborts: BTreeMap<u32, u64>,
    /// When a check last saw the counters grow (Unix seconds), and by how
    /// much.
    pub last_abort: Option<u64>,
    pub last_count: u64,
}

/// At most this many namespaces are kept (a node has far fewer).
const MAX_KEPT: usize = 65_536;

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Aborts within the window from the counters now and the state's.
pub fn compare(
    before: Option<&State>,
    now_counts: &BTreeMap<u32, u64>,
    boot_id: &str,
    now: u64,
    window: Duration,
) -> (Aborts, State) {
    let before = before.filter(|b| b.boot_id == boot_id && b.taken <= now);
    let mut next = State {
        boot_id: boot_id.to_string(),
        taken: now,
        aborts: now_counts.clone(),
        last_abort: before.and_then(|b| b.last_abort),
        last_count: before.map_or(0, |b| b.last_count),
    };
    let Some(b) = before else {
        return (Aborts::NoBaseline, next);
    };
    // A namespace seen before counts what it grew by; one not seen before
    // was made since (or could not be read then): all of its count is new.
    // A count that went down is a namespace made again under the same
    // inode: its count now is new.
    let grew: u64 = now_counts
        .iter()
        .map(|(ns, n)| match b.aborts.get(ns) {
            Some(was) if n >= was => n - was,
            _ => *n,
        })
        .sum();
    let w = window.as_secs();
    let since = now - b.taken;
    if grew > 0 {
        next.last_abort = Some(now);
        next.last_count = grew;
        let counted = (since > w).then(|| {
            format!(
                "in the {} since the last check",
                humantime::format_duration(Duration::from_secs(since))
            )
        });
        return (
            Aborts::Seen {
                count: Some(grew),
                causes: vec![],
                counted,
                group: None,
                last_ago: None,
            },
            next,
        );
    }
    match next.last_abort {
        Some(t) if t <= now && now - t <= w => (
            Aborts::Seen {
                count: Some(next.last_count),
                causes: vec![],
                counted: None,
                group: None,
                last_ago: Some(Duration::from_secs(now - t)),
            },
            next,
        ),
        _ => (Aborts::None, next),
    }
}

fn reading_aborts(window: Duration, state: Option<&Path>, now: SystemTime) -> Aborts {
    let counts = match abort_counters() {
        Ok(c) => c,
        Err(e) => return Aborts::Unknown(e),
    };
    let Some(path) = state else {
        return Aborts::Unknown("no state file kept (--state none)".into());
    };
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let before = read_state(path);
    let (aborts, mut next) = compare(before.as_ref(), &counts, &boot_id, secs(now), window);
    if next.aborts.len() > MAX_KEPT {
        next.aborts = next.aborts.into_iter().take(MAX_KEPT).collect();
    }
    if let Err(e) = write_state(path, &next) {
        // Judged all the same; the next check has no baseline.
        log::warn!("{e:#}");
        if aborts == Aborts::NoBaseline {
            return Aborts::Unknown(format!(
                "cannot keep state in {}: {}",
                path.display(),
                e.root_cause()
            ));
        }
    }
    aborts
}

/// Who owns the TCP listener at `addr` in netmem's own namespace (its
/// `idiag_uid`), if one listens there: serve is root's (or the caller's
/// own); a port any user can bind is not believed because it answers.
pub fn listener_uid(addr: std::net::SocketAddr) -> anyhow::Result<Option<u32>> {
    let netns = super::netns::Netns::open(None)?;
    let mut uid = None;
    super::sockdiag::dump_tcp(&netns, super::sockdiag::States::Listening, |r| {
        let same_ip = r.local == addr.ip() || r.local.is_unspecified();
        if r.lport == addr.port() && same_ip && uid.is_none() {
            uid = Some(r.uid);
        }
    })?;
    Ok(uid)
}

/// The state file, when it is one netmem wrote: a regular file (never
/// through a link), of this user, writable by no one else, small, and
/// the state's own format. Anything else is as if there were none.
pub fn read_state(path: &Path) -> Option<State> {
    state_file(path, true)
}

/// The state at `path` if it is a regular file of this user in the
/// state's format; `private`: and writable by no one else (believed).
fn state_file(path: &Path, private: bool) -> Option<State> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.uid() != me || (private && m.mode() & 0o022 != 0) || m.len() > 4 << 20 {
        return None;
    }
    let mut text = String::new();
    f.take(4 << 20).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state whole (a temp file renamed onto it), 0600, in a
/// directory of netmem's own (created 0700). Whatever else is at `path`
/// (a device such as /dev/null, a link, another user's file, a file of
/// another format) is left alone: a `--state` typo as root must not
/// replace a file.
pub fn write_state(path: &Path, s: &State) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Its own state, even one made writable by others (not believed, but
    // replaced by a private one), is the only thing it replaces.
    if std::fs::symlink_metadata(path).is_ok() && state_file(path, false).is_none() {
        anyhow::bail!(
            "{} is there and is not netmem check's state (a device, a link, another user's file or another format): not replaced; give --state a path of its own, or none",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::private_dir(dir)?;
    }
    let bytes = serde_json::to_vec(s)?;
    crate::fsutil::replace(path, &bytes, 0o600, true)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The default state file, or none (`--state none`).
pub fn state_path(arg: &str) -> Option<PathBuf> {
    (arg != "none").then(|| PathBuf::from(arg))
}

/// Every cgroup under the cgroup2 mount that holds socket memory, judged
/// by the rule serve applies (`local_pressure`), without a pass before
/// (so only "near its limit", not "pushed back since").
fn reading_cgroups(host: Option<HostTcp>) -> Cgroups {
    let Some(root) = super::owners::cgroup2_mount() else {
        return Cgroups::NotChecked("no cgroup2 mount".into());
    };
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Cgroups::NotChecked("no cgroup v2 memory controller".into());
    }
    if host.is_none() {
        return Cgroups::NotChecked("tcp_mem unreadable".into());
    }
    let roots = super::memcg::MemcgRoots::new(Some(root.clone()));
    let mut checked = 0;
    let mut under = Vec::new();
    let mut seen = 0;
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_CGROUPS {
            break;
        }
        if depth > 0 {
            // Cheap first: only a cgroup holding socket memory is read whole.
            let sock = std::fs::read_to_string(dir.join("memory.stat"))
                .ok()
                .and_then(|s| super::memcg::keyed(&s, "sock"))
                .unwrap_or(0);
            if sock > 0 {
                let rel = format!("/{}", dir.strip_prefix(&root).unwrap_or(&dir).display());
                if let Some(m) = roots.read(&rel) {
                    if m.limit.is_some() {
                        checked += 1;
                    }
                    if let Some(l) = local_pressure(&m, None, host) {
                        under.push((
                            depth,
                            CgroupUnderPressure {
                                cgroup: rel,
                                sock: Some(l.sock),
                            },
                        ));
                    }
                }
            }
        }
        if depth < 64 {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), depth + 1));
                    }
                }
            }
        }
    }
    // The deepest first: a container names the trouble better than its pod's slice.
    under.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.sock.cmp(&a.1.sock)));
    Cgroups::Checked {
        checked,
        under: under.into_iter().map(|(_, u)| u).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(600);

    fn counts(v: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn first_reading_has_no_baseline_and_another_boot_starts_again() {
        let (a, s) = compare(None, &counts(&[(1, 5)]), "b1", 1000, W);
        assert_eq!(a, Aborts::NoBaseline);
        assert_eq!(s.aborts, counts(&[(1, 5)]));
        let (a, _) = compare(Some(&s), &counts(&[(1, 2)]), "b2", 1030, W);
        assert_eq!(a, Aborts::NoBaseline);
        // A state from the future is not believed either.
        let (a, _) = compare(Some(&s), &counts(&[(1, 5)]), "b1", 900, W);
        assert_eq!(a, Aborts::NoBaseline);
    }

    #[test]
    fn growth_is_seen_then_remembered_for_the_window() {
        let (_, s0) = compare(None, &counts(&[(1, 5), (2, 0)]), "b", 1000, W);
        let (a, s1) = compare(Some(&s0), &counts(&[(1, 5), (2, 0)]), "b", 1030, W);
        assert_eq!(a, Aborts::None);
        // Namespace 2 grew by 2, namespace 3 is new with 1.
        let (a, s2) = compare(Some(&s1), &counts(&[(1, 5), (2, 2), (3, 1)]), "b", 1060, W);
        assert!(
            matches!(
                a,
                Aborts::Seen {
                    count: Some(3),
                    counted: None,
                    ..
                }
            ),
            "{a:?}"
        );
        // Still within the window at the next checks, then not.
        let (a, s3) = compare(Some(&s2), &counts(&[(1, 5), (2, 2), (3, 1)]), "b", 1300, W);
        assert!(
            matches!(a, Aborts::Seen { count: Some(3), last_ago: Some(d), .. } if d == Duration::from_secs(240)),
            "{a:?}"
        );
        let (a, _) = compare(Some(&s3), &counts(&[(1, 5), (2, 2), (3, 1)]), "b", 1661, W);
        assert_eq!(a, Aborts::None);
        // A namespace made again under an inode counts from 0.
        let (a, _) = compare(Some(&s3), &counts(&[(1, 1)]), "b", 1400, W);
        assert!(matches!(a, Aborts::Seen { count: Some(1), .. }), "{a:?}");
    }

    #[test]
    fn growth_over_a_longer_gap_says_so() {
        let (_, s0) = compare(None, &counts(&[(1, 0)]), "b", 1000, W);
        let (a, _) = compare(Some(&s0), &counts(&[(1, 4)]), "b", 1000 + 7200, W);
        match a {
            Aborts::Seen {
                counted: Some(c), ..
            } => {
                assert_eq!(c, "in the 2h since the last check")
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn a_hostile_or_broken_state_file_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let good = State {
            boot_id: "b".into(),
            taken: 5,
            ..Default::default()
        };
        write_state(&p, &good).unwrap();
        assert_eq!(read_state(&p), Some(good.clone()));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for bad in ["", "{", "[]", "{\"boot_id\":1}", "\u{0}\u{ff}", "{\"boot_id\":\"b\",\"taken\":5,\"aborts\":{},\"last_abort\":null,\"last_count\":0,\"x\":1}"] {
            std::fs::write(&p, bad).unwrap();
            assert_eq!(read_state(&p), None, "{bad:?}");
        }
        // Something else there (the last of those): never replaced.
        assert!(write_state(&p, &good).is_err());
        std::fs::remove_file(&p).unwrap();
        // Writable by others: not believed, but its own state is replaced
        // (by a private one).
        write_state(&p, &good).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_state(&p), None);
        write_state(&p, &good).unwrap();
        assert_eq!(read_state(&p), Some(good.clone()));
        // A link to a good one: not followed, and not replaced.
        let real = dir.path().join("real");
        write_state(&real, &good).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&real, &p).unwrap();
        assert_eq!(read_state(&p), None);
        assert!(write_state(&p, &State::default()).is_err());
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read_state(&real), Some(good));
        // A directory where the file should be.
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        assert_eq!(read_state(&d), None);
    }

    fn expo(text: &str) -> Exposition {
        Exposition(scrape::parse(text).unwrap())
    }

    #[test]
    fn serve_figures_are_read_by_name() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let addr: SocketAddr = "127.0.0.1:10077".parse().unwrap();
        let base = "netmem_build_info{version=\"0.1.0\"} 1\nnetmem_interval_seconds 5.0\nnetmem_last_interval_timestamp_seconds 9998.0\nnetmem_tcp_memory_allocated_bytes 4096\nnetmem_tcp_memory_limit_bytes{threshold=\"pressure\"} 40960\nnetmem_tcp_orphans 1\nnetmem_tcp_max_orphans 16\n";
        let f = serve_facts(&expo(base), addr, W, now).unwrap();
        assert_eq!(f.tcp.unwrap().allocated_pages, 4096);
        assert_eq!(f.orphans, Some(Orphans { count: 1, max: 16 }));
        assert!(matches!(f.aborts, Aborts::Unknown(_)));
        assert!(matches!(f.cgroups, Cgroups::NotChecked(_)));
        let with = format!(
            "{base}netmem_aborts_on_memory_total{{cause=\"orphans\"}} 3\nnetmem_aborts_on_memory_total{{cause=\"tcp_mem\"}} 1\nnetmem_aborts_on_memory_last_timestamp_seconds{{cause=\"orphans\"}} 9900.5\nnetmem_aborts_on_memory_last_timestamp_seconds{{cause=\"tcp_mem\"}} 100.0\nnetmem_aborts_on_memory_last_timestamp_seconds{{cause=\"unknown\"}} 0.0\nnetmem_group_aborts_on_memory_total{{group=\"listen:443\",cause=\"orphans\"}} 3\nnetmem_group_aborts_on_memory_total{{group=\"listen:80\",cause=\"orphans\"}} 1\nnetmem_group_owner_info{{group=\"listen:443\"}} 1\nnetmem_cgroup_socket_pressure{{cgroup=\"/a\",container=\"\",pod=\"\"}} 0\nnetmem_cgroup_socket_pressure{{cgroup=\"/b\",container=\"c\",pod=\"web-1\"}} 1\nnetmem_cgroup_sock_bytes{{cgroup=\"/b\",container=\"c\",pod=\"web-1\"}} 1048576\n"
        );
        let f = serve_facts(&expo(&with), addr, W, now).unwrap();
        assert_eq!(
            f.aborts,
            Aborts::Seen {
                count: Some(3),
                causes: vec!["orphans".into()],
                counted: Some("since serve started, the last within 10m".into()),
                group: Some("listen:443".into()),
                last_ago: Some(Duration::from_secs_f64(99.5)),
            }
        );
        assert_eq!(
            f.cgroups,
            Cgroups::Checked {
                checked: 2,
                under: vec![CgroupUnderPressure {
                    cgroup: "pod web-1".into(),
                    sock: Some(1 << 20)
                }]
            }
        );
        // Not serve's, no interval yet, or stuck: not judged.
        assert!(serve_facts(&expo("up 1\n"), addr, W, now).is_err());
        let fresh = base.replace("netmem_last_interval_timestamp_seconds 9998.0\n", "");
        assert!(serve_facts(&expo(&fresh), addr, W, now)
            .unwrap_err()
            .contains("first interval"));
        let stuck = base.replace("9998.0", "9000.0");
        assert!(serve_facts(&expo(&stuck), addr, W, now)
            .unwrap_err()
            .contains("stuck"));
    }
}
