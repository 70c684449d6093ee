//! Proxies in front of the sockets: what they call their listeners and
//! servers, read from the proxy itself. One small interface, [`Proxy`];
//! HAProxy (`haproxy/`) and nginx (`nginx/`) implement it. The kinds are a
//! registry (`kinds.rs`): another proxy (Envoy's admin `/clusters`) is one
//! more implementation and one more entry there.
//!
//! A running proxy names itself, so one found running is believed, and
//! read for, only as `trust.rs` allows: its executable must be the real
//! one as root installed it, its files and sockets are opened with its
//! owner's rights, and every read is capped.
//!
//! A proxy that cannot be read never fails netmem: its problem is said
//! once on stderr (and again only when it changes), the proxy's line says
//! it, and groups keep their plain names.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::proxy::{ProxyMap, ProxyView};

pub mod haproxy;
pub mod kinds;
pub mod nginx;
pub mod trust;

use kinds::{Kind, KINDS};

/// What one read of a proxy gave: its names (None when nothing could be
/// read) and what went wrong, each said in full.
#[derive(Debug, Default)]
pub struct Reading {
    pub map: Option<ProxyMap>,
    pub problems: Vec<String>,
}

/// A proxy netmem can read names from.
pub trait Proxy: Send {
    /// `haproxy`.
    fn kind(&self) -> &'static str;
    /// Where it is and what it is read from, for people.
    fn source(&self) -> String;
    /// The network namespace whose sockets it names (inode number).
    fn netns(&self) -> u32;
    /// Reads what it says now. Called at every pass, so cheap when
    /// nothing changed, and bounded in time when the proxy does not answer.
    fn read(&mut self) -> Reading;
    /// The same proxy as `other` (re-detection keeps the one it has).
    fn same(&self, other: &dyn Proxy) -> bool {
        self.kind() == other.kind()
            && self.source() == other.source()
            && self.netns() == other.netns()
    }
}

/// What looking for running proxies of one kind found.
#[derive(Default)]
pub struct Detection {
    pub proxies: Vec<Box<dyn Proxy>>,
    /// Processes named as the kind that are not believed: (pid, start
    /// time, why), said once per process by the caller.
    pub refused: Vec<(u32, u64, String)>,
}

/// One kind's flag (`--haproxy`): find it (default), read these paths, or
/// neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KindSpec {
    /// A running one in a traced namespace (HAProxy: through its command
    /// line's `-f` configuration, then its `stats socket`).
    #[default]
    Auto,
    /// `--haproxy off`.
    Off,
    /// `--haproxy PATH` (repeatable): HAProxy's stats socket, a
    /// configuration file or a directory of them; all of one proxy.
    Paths(Vec<PathBuf>),
}

impl KindSpec {
    pub fn from_args(args: &[String]) -> KindSpec {
        match args {
            [] => KindSpec::Auto,
            [one] if one == "off" => KindSpec::Off,
            [one] if one == "auto" => KindSpec::Auto,
            paths => KindSpec::Paths(paths.iter().map(PathBuf::from).collect()),
        }
    }
}

/// Every kind's flag; a kind not given is looked for ([`KindSpec::Auto`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySpec {
    given: Vec<(&'static str, KindSpec)>,
}

impl ProxySpec {
    /// With kind `kind`'s flag saying `spec`.
    pub fn with(mut self, kind: &'static str, spec: KindSpec) -> ProxySpec {
        self.given.retain(|(k, _)| *k != kind);
        self.given.push((kind, spec));
        self
    }

    /// No proxy names the groups (every kind's flag `off`).
    pub fn off() -> ProxySpec {
        ProxySpec {
            given: KINDS.iter().map(|k| (k.name, KindSpec::Off)).collect(),
        }
    }

    /// What kind `kind`'s flag says.
    pub fn of(&self, kind: &str) -> &KindSpec {
        const AUTO: &KindSpec = &KindSpec::Auto;
        self.given
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(AUTO, |(_, s)| s)
    }
}

/// How often a running proxy is looked for again (a restarted or newly
/// started HAProxy is found within this).
const REDETECT: Duration = Duration::from_secs(30);

/// The proxies of a trace, read at each pass.
pub struct Proxies {
    spec: ProxySpec,
    /// The namespaces traced: the primary one, or every one.
    primary: u32,
    /// The primary namespace's file, to reach an explicit TCP stats socket
    /// from inside it (None: netmem's own namespace).
    enter: Option<PathBuf>,
    all: bool,
    sources: Vec<Box<dyn Proxy>>,
    views: Vec<Arc<ProxyView>>,
    detected_at: Option<Instant>,
    generation: u64,
    reads: Reads,
    /// Processes refused at the last detection of their kind (kind, pid,
    /// start time): each is said once.
    refused: std::collections::HashSet<(&'static str, u32, u64)>,
}

/// How often the proxies are read, and who says what went wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reads {
    /// At every pass (the live commands); new problems said on stderr.
    #[default]
    Live,
    /// Once (a snapshot, a doctor's reading): nothing is looked for
    /// again, so no problem promises it; said on stderr.
    Once,
    /// Once, by a caller whose output says each problem itself (a text
    /// snapshot, the doctor's report): not said on stderr too.
    OnceQuiet,
}

impl Proxies {
    /// `primary`: the traced namespace's inode (an explicit `--haproxy`
    /// names its sockets), and its file when it is not netmem's own;
    /// `all`: every namespace is traced.
    pub fn new(
        spec: ProxySpec,
        primary: u32,
        enter: Option<PathBuf>,
        all: bool,
        reads: Reads,
    ) -> Proxies {
        let mut p = Proxies {
            sources: Vec::new(),
            views: Vec::new(),
            detected_at: None,
            generation: 0,
            refused: Default::default(),
            spec,
            primary,
            enter,
            all,
            reads,
        };
        for k in KINDS {
            if let KindSpec::Paths(paths) = p.spec.of(k.name) {
                let s = (k.explicit)(paths, primary, p.enter.clone(), reads != Reads::Live);
                p.sources.push(s);
            }
        }
        p
    }

    /// The kinds looked for (their flag not given, or `auto`).
    fn auto(&self, kind: &str) -> bool {
        *self.spec.of(kind) == KindSpec::Auto
    }

    /// Looks for running proxies again when due (the kinds looked for
    /// only; a kind read from its flag's paths keeps its reader).
    fn detect(&mut self) {
        if !KINDS.iter().any(|k| self.auto(k.name))
            || self.detected_at.is_some_and(|t| t.elapsed() < REDETECT)
        {
            return;
        }
        self.detected_at = Some(Instant::now());
        let mut proxies = Vec::new();
        let looked_for: Vec<&'static Kind> = KINDS.iter().filter(|k| self.auto(k.name)).collect();
        for k in looked_for {
            let found = (k.detect)(self.primary, self.all);
            for line in self.newly_refused(k, found.refused) {
                log::warn!("{line}");
            }
            proxies.extend(found.proxies);
        }
        // Kinds read from their flag's paths keep their readers.
        let (mut kept, looked_for): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sources)
            .into_iter()
            .partition(|s| !self.auto(s.kind()));
        self.sources = looked_for;
        for f in proxies {
            match self.sources.iter().position(|s| s.same(f.as_ref())) {
                Some(i) => kept.push(self.sources.swap_remove(i)),
                None => {
                    log::info!("found {} ({})", f.kind(), f.source());
                    kept.push(f);
                }
            }
        }
        for gone in &self.sources {
            log::info!(
                "{} ({}) is no longer running; its groups keep their plain names",
                gone.kind(),
                gone.source()
            );
        }
        self.sources = kept;
    }

    /// What to say of the processes refused at this detection: each once
    /// (while it runs), the first few in full and the rest of a burst
    /// counted, so a user starting many fake proxies cannot flood the log.
    fn newly_refused(&mut self, kind: &Kind, refused: Vec<(u32, u64, String)>) -> Vec<String> {
        const SAID_IN_FULL: usize = 5;
        let mut new = refused
            .iter()
            .filter(|(pid, start, _)| !self.refused.contains(&(kind.name, *pid, *start)));
        let mut said: Vec<String> = new
            .by_ref()
            .take(SAID_IN_FULL)
            .map(|(_, _, why)| why.clone())
            .collect();
        let rest: Vec<String> = new.map(|(pid, _, _)| pid.to_string()).collect();
        if !rest.is_empty() {
            said.push(format!(
                "{} more processes named {} not trusted (pids {}{}): their executables are not {} as root installed it",
                rest.len(),
                kind.name,
                rest.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                if rest.len() > 10 { ", ..." } else { "" },
                kind.display
            ));
        }
        self.refused.retain(|(k, _, _)| *k != kind.name);
        self.refused.extend(
            refused
                .iter()
                .map(|(pid, start, _)| (kind.name, *pid, *start)),
        );
        said
    }

    /// Reads every proxy; a view whose names and problems did not change
    /// is kept as it was (same generation). New problems are said on
    /// stderr once (unless the caller's output says them: [`Reads`]).
    pub fn refresh(&mut self) -> &[Arc<ProxyView>] {
        self.detect();
        let mut views = Vec::with_capacity(self.sources.len());
        for s in self.sources.iter_mut() {
            let r = s.read();
            let (kind, source, netns) = (s.kind(), s.source(), s.netns());
            let before = self
                .views
                .iter()
                .find(|o| o.kind == kind && o.source == source && o.netns == netns);
            // Unchanged (the usual pass): the view and its index are kept,
            // not rebuilt.
            if let Some(b) = before.filter(|b| b.map == r.map && b.problems == r.problems) {
                views.push(b.clone());
                continue;
            }
            match before {
                _ if self.reads == Reads::OnceQuiet => {}
                Some(b) => {
                    for p in r.problems.iter().filter(|p| !b.problems.contains(p)) {
                        log::warn!("{p}");
                    }
                    if r.problems.is_empty() && !b.problems.is_empty() {
                        log::warn!("{kind} ({source}) is read again");
                    }
                }
                None => {
                    for p in &r.problems {
                        log::warn!("{p}");
                    }
                }
            }
            let mut v = ProxyView::new(kind, source, netns, r.map, r.problems);
            self.generation += 1;
            v.generation = self.generation;
            views.push(Arc::new(v));
        }
        self.views = views;
        &self.views
    }

    pub fn views(&self) -> &[Arc<ProxyView>] {
        &self.views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_process_is_said_once_and_a_burst_is_counted() {
        let mut p = Proxies::new(ProxySpec::default(), 1, None, false, Reads::Live);
        let haproxy = kinds::by_name("haproxy").unwrap();
        let fake = |pid: u32| {
            (
                pid,
                100 + pid as u64,
                format!("haproxy pid {pid}: not trusted"),
            )
        };
        assert_eq!(
            p.newly_refused(haproxy, vec![fake(7)]),
            vec!["haproxy pid 7: not trusted"]
        );
        // Still running at the next detection: not said again.
        assert!(p.newly_refused(haproxy, vec![fake(7)]).is_empty());
        // The same pid, another process (start time): said.
        let again = (7, 999, "haproxy pid 7: not trusted".to_string());
        assert_eq!(p.newly_refused(haproxy, vec![again]).len(), 1);
        // Twenty at once: five in full, one line for the rest.
        let said = p.newly_refused(haproxy, (10..30).map(fake).collect());
        assert_eq!(said.len(), 6, "{said:?}");
        assert!(
            said[5].starts_with("15 more processes named haproxy not trusted (pids 15, 16,"),
            "{}",
            said[5]
        );
        assert!(p
            .newly_refused(haproxy, (10..30).map(fake).collect())
            .is_empty());
    }
}
