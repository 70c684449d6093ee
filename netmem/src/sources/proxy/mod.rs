//! Proxies in front of the sockets: what they call their listeners and
//! servers, read from the proxy itself. One small interface, [`Proxy`];
//! HAProxy is its one implementation today (`haproxy.rs`). Another proxy
//! (nginx `upstream` blocks, Envoy's admin `/clusters`) is one more
//! implementation and one more arm in [`Proxies::new`].
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
pub mod trust;

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

/// `--haproxy`: find it (default), read these paths, or neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxySpec {
    /// A running `haproxy` in a traced namespace, through its command line
    /// (`-f` configuration, then its `stats socket`).
    #[default]
    Auto,
    /// `--haproxy off`.
    Off,
    /// `--haproxy PATH` (repeatable): a stats socket, a configuration
    /// file or a directory of them; all of one HAProxy.
    Paths(Vec<PathBuf>),
}

impl ProxySpec {
    pub fn from_args(args: &[String]) -> ProxySpec {
        match args {
            [] => ProxySpec::Auto,
            [one] if one == "off" => ProxySpec::Off,
            [one] if one == "auto" => ProxySpec::Auto,
            paths => ProxySpec::Paths(paths.iter().map(PathBuf::from).collect()),
        }
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
    /// Processes named haproxy refused at the last detection (pid, start
    /// time): each is said once.
    refused: std::collections::HashSet<(u32, u64)>,
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
        if let ProxySpec::Paths(paths) = &p.spec {
            p.sources.push(Box::new(haproxy::HaProxy::explicit(
                paths,
                primary,
                p.enter.clone(),
                reads != Reads::Live,
            )));
        }
        p
    }

    /// Looks for running proxies again when due (auto-detection only).
    fn detect(&mut self) {
        if self.spec != ProxySpec::Auto || self.detected_at.is_some_and(|t| t.elapsed() < REDETECT)
        {
            return;
        }
        self.detected_at = Some(Instant::now());
        let found = haproxy::detect(self.primary, self.all);
        for line in self.newly_refused(found.refused) {
            log::warn!("{line}");
        }
        let mut kept: Vec<Box<dyn Proxy>> = Vec::new();
        for f in found.proxies {
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
    fn newly_refused(&mut self, refused: Vec<(u32, u64, String)>) -> Vec<String> {
        const SAID_IN_FULL: usize = 5;
        let mut new = refused
            .iter()
            .filter(|(pid, start, _)| !self.refused.contains(&(*pid, *start)));
        let mut said: Vec<String> = new
            .by_ref()
            .take(SAID_IN_FULL)
            .map(|(_, _, why)| why.clone())
            .collect();
        let rest: Vec<String> = new.map(|(pid, _, _)| pid.to_string()).collect();
        if !rest.is_empty() {
            said.push(format!(
                "{} more processes named haproxy not trusted (pids {}{}): their executables are not HAProxy as root installed it",
                rest.len(),
                rest.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                if rest.len() > 10 { ", ..." } else { "" }
            ));
        }
        self.refused = refused
            .iter()
            .map(|(pid, start, _)| (*pid, *start))
            .collect();
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
        let mut p = Proxies::new(ProxySpec::Auto, 1, None, false, Reads::Live);
        let fake = |pid: u32| {
            (
                pid,
                100 + pid as u64,
                format!("haproxy pid {pid}: not trusted"),
            )
        };
        assert_eq!(
            p.newly_refused(vec![fake(7)]),
            vec!["haproxy pid 7: not trusted"]
        );
        // Still running at the next detection: not said again.
        assert!(p.newly_refused(vec![fake(7)]).is_empty());
        // The same pid, another process (start time): said.
        let again = (7, 999, "haproxy pid 7: not trusted".to_string());
        assert_eq!(p.newly_refused(vec![again]).len(), 1);
        // Twenty at once: five in full, one line for the rest.
        let said = p.newly_refused((10..30).map(fake).collect());
        assert_eq!(said.len(), 6, "{said:?}");
        assert!(
            said[5].starts_with("15 more processes named haproxy not trusted (pids 15, 16,"),
            "{}",
            said[5]
        );
        assert!(p.newly_refused((10..30).map(fake).collect()).is_empty());
    }
}
