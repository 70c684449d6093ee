//! `netmem snapshot`: one sock_diag pass, no eBPF, no privileges beyond
//! reading this namespace's sockets.

use std::collections::HashSet;
use std::io::Write;
use std::time::SystemTime;

use anyhow::Result;

use crate::attribution::{Aggregator, Filter};
use crate::netns::Netns;
use crate::output::{context_json, context_text, emit_line, group_json, rfc3339, table};
use crate::procfs::Context;
use crate::sockdiag::{dump_tcp, States};

/// Dumps the listening sockets first, so every other socket can be charged
/// to its group in one streaming pass. `others`: which non-listening states.
pub fn collect(netns: &Netns, agg: &mut Aggregator, others: States) -> Result<HashSet<u16>> {
    let mut listening = HashSet::new();
    let mut listeners = Vec::new();
    dump_tcp(netns, States::Listening, |r| {
        listening.insert(r.lport);
        listeners.push(r.clone());
    })?;
    for r in &listeners {
        agg.add_socket(r, &listening);
    }
    dump_tcp(netns, others, |r| agg.add_socket(r, &listening))?;
    Ok(listening)
}

pub fn run(netns: &Netns, json: bool, filter: &Filter, out: &mut impl Write) -> Result<()> {
    let mut agg = Aggregator::default();
    collect(netns, &mut agg, States::AllButListening)?;
    let ctx = Context::read(netns)?;
    let ts = rfc3339(SystemTime::now());
    let rows = agg.sorted(filter);
    if json {
        emit_line(out, &context_json(&ts, &ctx))?;
        for (g, r) in &rows {
            emit_line(out, &group_json(&ts, g, r, false))?;
        }
    } else {
        writeln!(out, "{}", context_text(&ctx))?;
        write!(out, "{}", table(&rows, false))?;
    }
    out.flush()?;
    Ok(())
}
