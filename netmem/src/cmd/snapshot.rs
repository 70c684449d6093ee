//! `netmem snapshot`: one sock_diag pass, no eBPF, no privileges beyond
//! reading this namespace's sockets.

use std::time::SystemTime;

use anyhow::Result;

use crate::cmd::args::{NetnsArg, Owners, Table};
use crate::model::names::Names;
use crate::model::owner::GroupBy;
use crate::model::{Aggregator, Filter, Interval};
use crate::output::Sink;
use crate::sources::census::Census;
use crate::sources::netns::Netns;

/// One-shot per-group table from sock_diag (no eBPF, no root needed).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    netns: NetnsArg,
    #[command(flatten)]
    who: Owners,
    #[command(flatten)]
    table: Table,
    #[command(flatten)]
    census: crate::cmd::args::CensusArg,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let (netns, all) = self.netns.open()?;
        let filter = self.table.filter();
        let json = self.table.json.json;
        let names = Names::default();
        let mut census = Census::new(
            &netns,
            all,
            self.who.owners,
            self.who.group_by,
            &filter,
            &names,
        )?
        .with_time_wait(self.table.time_wait.time_wait)
        .with_tier(self.census.census)
        // A table's proxy lines say the problems; JSON lines are not
        // read by people, who then learn them on stderr.
        .one_shot(!json)
        .with_proxies(self.who.proxy.spec()?, &netns)?;
        let mut sink = self.table.stdout_sink();
        run(&netns, &filter, &mut census, sink.as_mut())
    }
}

/// The snapshot as one typed interval (no live part), and the proxies
/// that named it: their problems are the caller's to say. Its groups are
/// named by `names`.
pub fn take(
    netns: &Netns,
    filter: &Filter,
    proxy: crate::sources::proxy::ProxySpec,
    names: &Names,
) -> Result<(
    Interval,
    Vec<std::sync::Arc<crate::model::proxy::ProxyView>>,
)> {
    let mut census = Census::new(netns, false, false, GroupBy::Port, filter, names)?
        .one_shot(true)
        .with_proxies(proxy, netns)?;
    let i = take_with(netns, filter, &mut census)?;
    Ok((i, census.proxies()))
}

/// The snapshot over `census`'s namespaces, with its owners.
pub fn take_with(netns: &Netns, filter: &Filter, census: &mut Census) -> Result<Interval> {
    let mut agg = Aggregator::default();
    let (_, context) = census.collect(netns, &mut agg, &Default::default())?;
    agg.finish(census.by, filter, &census.proxies(), census.names());
    Ok(Interval {
        time_wait_counted: census.time_wait,
        ts: SystemTime::now(),
        context,
        netns: std::mem::take(&mut agg.netns),
        groups: agg.into_sorted(filter),
        live: None,
    })
}

pub fn run(netns: &Netns, filter: &Filter, census: &mut Census, sink: &mut dyn Sink) -> Result<()> {
    let i = take_with(netns, filter, census)?;
    sink.names(census.names());
    sink.proxies(&census.proxies())?;
    sink.interval(&i)?;
    sink.flush()
}
