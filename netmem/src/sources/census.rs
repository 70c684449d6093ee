//! One pass over the sockets netmem reports on: the traced namespace, or
//! with `--netns all` every namespace of the host, and, when asked, who
//! owns them. `snapshot` and the live engine take their passes here, so
//! both see the same namespaces and the same owners.

use std::collections::HashSet;

use anyhow::Result;

use crate::model::owner::{self, GroupBy};
use crate::model::{Aggregator, Filter};
use crate::sources::netns::{Namespaces, Netns};
use crate::sources::owners::OwnerSource;
use crate::sources::procfs::{self, Context};
use crate::sources::sockdiag::States;

/// A namespace whose pass failed: one that went away meanwhile is normal
/// churn (debug); one netmem may not enter is said once, since every pass
/// would leave it out.
fn skipped(name: &str, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    if msg.contains("CAP_SYS_ADMIN") || msg.contains("Permission denied") {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            log::warn!("--netns all: namespace {name} (and any other like it) is left out: {msg}")
        });
    } else {
        log::debug!("namespace {name} skipped this pass: {msg}");
    }
}

/// Threads dumping namespaces at once with `--netns all`.
const MAX_WORKERS: usize = 4;

/// What a pass covers; kept between passes for its caches.
pub struct Census {
    /// Some with `--netns all`.
    all: Option<Namespaces>,
    /// Some when owners are wanted (`--owners`, or a `--group-by` other
    /// than port).
    owners: Option<OwnerSource>,
    pub by: GroupBy,
    filter: Filter,
    /// `--time-wait`: count each group's TIME_WAIT sockets, which means
    /// dumping every one of them.
    pub time_wait: bool,
}

impl Census {
    /// `primary` is the namespace named on the command line (or netmem's
    /// own); its groups carry no `@NAMESPACE` suffix.
    pub fn new(
        primary: &Netns,
        all: bool,
        owners: bool,
        by: GroupBy,
        filter: &Filter,
    ) -> Result<Census> {
        owner::set_default_netns(primary.inum()?);
        owner::set_all_namespaces(all);
        Ok(Census {
            all: all.then(Namespaces::default),
            owners: (owners || by != GroupBy::Port).then(OwnerSource::new),
            by,
            filter: filter.clone(),
            time_wait: false,
        })
    }

    /// Counts TIME_WAIT sockets per group (a pass then costs in proportion
    /// to them; without it the kernel skips them).
    pub fn with_time_wait(mut self, on: bool) -> Census {
        self.time_wait = on;
        self
    }

    pub fn all_namespaces(&self) -> bool {
        self.all.is_some()
    }

    pub fn owners(&self) -> Option<&OwnerSource> {
        self.owners.as_ref()
    }

    /// One pass: sock_diag in each namespace (every state but TIME_WAIT,
    /// unless asked; `sticky`: see [`Aggregator::collect`]), then the
    /// owners.
    /// Returns the ports with a listener in any namespace, and the
    /// primary namespace's context (read first: its sockstat says which
    /// tables to dump). With `--netns all`, a namespace that goes away
    /// during its dump is skipped.
    pub fn collect(
        &mut self,
        primary: &Netns,
        agg: &mut Aggregator,
        sticky: &HashSet<u16>,
    ) -> Result<(HashSet<u16>, Context)> {
        let ctx = Context::read(primary)?;
        let others = if self.time_wait {
            States::AllButListening
        } else {
            States::Buffered
        };
        if self.owners.is_some() {
            agg.sockets = Some(Vec::new());
        }
        let time_wait = self.time_wait;
        let listening = match self.all.as_mut() {
            None => {
                let present = procfs::presence(&ctx, time_wait);
                agg.collect_present(primary, others, sticky, present)?
            }
            Some(all) => {
                let found = all.discover()?;
                for (ns, name) in &found {
                    owner::name_netns(ns.inum()?, name);
                }
                let primary_inum = primary.inum()?;
                // Each namespace's dump walks the kernel's socket hash
                // table, which every namespace shares: the dumps run on a
                // few threads at once, each into an aggregator of its own.
                let workers = std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .clamp(1, MAX_WORKERS);
                let results: Vec<Result<(Aggregator, HashSet<u16>)>> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..workers)
                        .map(|w| {
                            let mine: Vec<_> = found.iter().skip(w).step_by(workers).collect();
                            let with_sockets = agg.sockets.is_some();
                            let with_orphans = agg.orphan_records.is_some();
                            s.spawn(move || {
                                let mut part = Aggregator {
                                    sockets: with_sockets.then(Vec::new),
                                    orphan_records: with_orphans.then(Vec::new),
                                    ..Default::default()
                                };
                                let mut listening = HashSet::new();
                                for (ns, name) in mine {
                                    let inum = ns.inum()?;
                                    // An empty table is skipped: its dump
                                    // would still walk the shared hash.
                                    let pass = Context::usage(ns).and_then(|u| {
                                        let p = procfs::presence(&u, time_wait);
                                        part.collect_present(ns, others, sticky, p)
                                    });
                                    match pass {
                                        Ok(l) => listening.extend(l),
                                        Err(e) if inum == primary_inum => return Err(e),
                                        Err(e) => skipped(name, &e),
                                    }
                                }
                                Ok((part, listening))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(anyhow::anyhow!("a namespace worker panicked"))
                            })
                        })
                        .collect()
                });
                let mut listening = HashSet::new();
                for r in results {
                    let (part, l) = r?;
                    agg.merge(part);
                    listening.extend(l);
                }
                listening
            }
        };
        if let Some(src) = self.owners.as_mut() {
            let mut sockets = agg.sockets.take().unwrap_or_default();
            sockets.retain(|(_, g)| self.filter.accepts(g));
            let mut a = owner::attribute(&mut agg.groups, &sockets, src, self.by);
            a.filter = self.filter.clone();
            agg.attribution = Some(a);
        }
        Ok((listening, ctx))
    }
}
