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
use crate::sources::sockdiag::States;

/// What a pass covers; kept between passes for its caches.
pub struct Census {
    /// Some with `--netns all`.
    all: Option<Namespaces>,
    /// Some when owners are wanted (`--owners`, or a `--group-by` other
    /// than port).
    owners: Option<OwnerSource>,
    pub by: GroupBy,
    filter: Filter,
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
        })
    }

    pub fn all_namespaces(&self) -> bool {
        self.all.is_some()
    }

    pub fn owners(&self) -> Option<&OwnerSource> {
        self.owners.as_ref()
    }

    /// One pass: sock_diag in each namespace (`others`: which non-listening
    /// TCP states; `sticky`: see [`Aggregator::collect`]), then the owners.
    /// Returns the ports with a listener in any namespace. With `--netns
    /// all`, a namespace that goes away during its dump is skipped.
    pub fn collect(
        &mut self,
        primary: &Netns,
        agg: &mut Aggregator,
        others: States,
        sticky: &HashSet<u16>,
    ) -> Result<HashSet<u16>> {
        if self.owners.is_some() {
            agg.sockets = Some(Vec::new());
        }
        let listening = match self.all.as_mut() {
            None => agg.collect(primary, others, sticky)?,
            Some(all) => {
                let mut listening = HashSet::new();
                for (ns, name) in all.discover()? {
                    let inum = ns.inum()?;
                    owner::name_netns(inum, &name);
                    match agg.collect(ns, others, sticky) {
                        Ok(l) => listening.extend(l),
                        Err(e) if inum == primary.inum()? => return Err(e),
                        Err(e) => log::debug!("namespace {name} skipped this pass: {e:#}"),
                    }
                }
                listening
            }
        };
        if let Some(src) = self.owners.as_mut() {
            let mut sockets = agg.sockets.take().unwrap_or_default();
            sockets.retain(|(_, g)| self.filter.accepts(g));
            agg.attribution = Some(owner::attribute(&mut agg.groups, &sockets, src, self.by));
        }
        Ok(listening)
    }
}
