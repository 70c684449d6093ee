//! JSON lines: the documented contract (README, "JSON lines"), as the
//! types of `crate::contract`. `lines` builds them from the model; the
//! sink writes each as one line. `contract::tests` pins every line type's
//! fields.

mod lines;

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value};

use super::Sink;
use crate::contract::{self, DoctorLine, FindingLine, HostLine, Line, ProbesLine, SummaryLine};
use crate::format::rfc3339;
use crate::hooks::HookStatus;
use crate::model::names::Names;
use crate::model::proxy::ProxyView;
use crate::model::{Event, Interval, Summary};

pub use lines::{
    context_line, event_line, group_line, interval_lines, netns_line, proxy_line, socket_line,
};

pub struct JsonSink<W: Write> {
    out: W,
    /// The proxies naming groups (`kind (source)`), for the probes line.
    proxies: Vec<String>,
    /// The run's names (see [`Sink::names`]).
    names: Names,
}

impl<W: Write> JsonSink<W> {
    /// A doctor line and its findings, of `instance` when a fleet's.
    fn doctor(&mut self, r: &crate::doctor::Report, instance: Option<&str>) -> Result<()> {
        self.line(&Line::Doctor(DoctorLine {
            source: Some(r.source.clone()),
            kernel_release: Some(r.kernel_release.clone()),
            namespace: Some(r.namespace.clone()),
            unreadable: Some(r.unreadable.clone()),
            findings: Some(r.findings.len() as u64),
            instance: instance.map(String::from),
        }))?;
        for (i, f) in r.findings.iter().enumerate() {
            let mut l = finding_line(i + 1, f);
            l.instance = instance.map(String::from);
            self.line(&Line::Finding(l))?;
        }
        Ok(())
    }

    pub fn new(out: W) -> Self {
        JsonSink {
            out,
            proxies: Vec::new(),
            names: Names::default(),
        }
    }

    /// The writer, e.g. to take what was written to a buffer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn line(&mut self, l: &Line) -> Result<()> {
        l.write(&mut self.out)?;
        Ok(())
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
    }

    fn host(&mut self, h: &crate::sources::host::Host) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.line(&Line::Host(HostLine {
            ts: Some(ts),
            host: Some(h.clone()),
        }))
    }

    fn report(&mut self, r: &crate::doctor::Report) -> Result<()> {
        self.doctor(r, None)?;
        self.flush()
    }

    fn fleet(&mut self, r: &crate::doctor::fleet::FleetReport) -> Result<()> {
        use crate::contract::{FleetFindingLine, FleetGroupHost, FleetGroupLine, FleetLine};
        self.line(&Line::Fleet(FleetLine {
            source: Some(r.source.clone()),
            instances: Some(r.instances.iter().map(|j| j.instance.clone()).collect()),
            notes: Some(r.notes.clone()),
            hosts: Some(
                r.instances
                    .iter()
                    .map(|j| {
                        let f = &j.figures;
                        crate::contract::FleetHost {
                            instance: Some(j.instance.clone()),
                            worst: serde_name(&j.worst()),
                            peak_tcp_memory_bytes: Some(f.peak_tcp_memory_bytes),
                            tcp_memory_of_max: f.tcp_memory_of_max,
                            peak_orphans: Some(f.peak_orphans),
                            orphans_of_threshold: f.orphans_of_threshold,
                            peak_held_bytes: Some(f.peak_held_bytes),
                            peak_census_orphans: Some(f.peak_census_orphans),
                            aborts: Some(f.aborts),
                        }
                    })
                    .collect(),
            ),
        }))?;
        for j in &r.instances {
            self.doctor(&j.report, Some(&j.instance))?;
        }
        for x in &r.shared {
            self.line(&Line::FleetFinding(FleetFindingLine {
                id: Some(x.id.to_string()),
                severity: serde_name(&x.severity),
                fired: Some(x.fired),
                hosts: Some(x.hosts.clone()),
                of: Some(x.of as u64),
                example: Some(x.example.clone()),
            }))?;
        }
        for g in &r.groups {
            self.line(&Line::FleetGroup(FleetGroupLine {
                group: Some(g.group.clone()),
                kind: Some(g.kind.clone()),
                peak_memory_bytes: Some(g.peak_memory_bytes),
                hosts: Some(
                    g.hosts
                        .iter()
                        .map(|h| FleetGroupHost {
                            instance: Some(h.instance.clone()),
                            memory_bytes: Some(h.memory_bytes),
                            peak_memory_bytes: Some(h.peak_memory_bytes),
                            peak_orphans: Some(h.peak_orphans),
                            sockets: Some(h.sockets),
                        })
                        .collect(),
                ),
            }))?;
        }
        self.flush()
    }

    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.line(&Line::Probes(ProbesLine {
            ts: Some(ts),
            hooks: Some(hooks.iter().map(hook).collect()),
            proxies: Some(self.proxies.clone()),
        }))?;
        self.flush()
    }

    fn probe_report(&mut self, hooks: &[HookStatus]) -> Result<()> {
        // The probes line's hook objects, one per line (no "type").
        for h in hooks {
            serde_json::to_writer(&mut self.out, &serde_json::to_value(hook(h))?)?;
            self.out.write_all(b"\n")?;
        }
        self.flush()
    }

    fn census_report(&mut self, c: &crate::hooks::status::CensusStatus) -> Result<()> {
        // As a hook object of the report, named "census".
        let h = contract::Hook {
            hook: Some("census".to_string()),
            tier: Some(c.tier.name().to_string()),
            via: Some(c.via()),
            unavailable: Some(
                c.why_not
                    .iter()
                    .map(|why| contract::Unavailable {
                        tier: Some(
                            crate::hooks::catalog::CensusTier::BpfIter
                                .name()
                                .to_string(),
                        ),
                        reason: Some(why.clone()),
                    })
                    .collect(),
            ),
            note: None,
        };
        serde_json::to_writer(&mut self.out, &h)?;
        self.out.write_all(b"\n")?;
        self.flush()
    }

    fn proxies(&mut self, p: &[std::sync::Arc<ProxyView>]) -> Result<()> {
        let ts = rfc3339(std::time::SystemTime::now());
        self.proxies.clear();
        for v in p {
            self.line(&Line::Proxy(proxy_line(&ts, v, &self.names)))?;
            if v.map.is_some() {
                self.proxies.push(v.describe_source());
            }
        }
        self.flush()
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        let l = Line::Event(event_line(e, &self.names));
        self.line(&l)
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        for l in interval_lines(i, &self.names) {
            l.write(&mut self.out)?;
        }
        self.flush()
    }

    fn summary(&mut self, s: &Summary) -> Result<()> {
        use netmem_common::Stat;
        let ts = rfc3339(s.ts.unwrap_or_else(std::time::SystemTime::now));
        self.line(&Line::Summary(SummaryLine {
            ts: Some(ts),
            events: Some(s.events),
            lost_events: Some(s.stat(Stat::RingbufLost)),
            events_suppressed: Some(s.events_suppressed),
            events_unread_at_exit: Some(s.events_unread_at_exit),
            group_map_full: Some(s.stat(Stat::GroupMapFull)),
            orphan_map_full: Some(s.stat(Stat::OrphanMapFull)),
            duration_s: Some((s.duration.as_secs_f64() * 1000.0).round() / 1000.0),
        }))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// A name as its type serialises (`snake_case` enums), for a line.
fn serde_name(v: &impl serde::Serialize) -> Option<String> {
    serde_json::to_value(v).ok()?.as_str().map(String::from)
}

/// A hook's status as the probes line (and `netmem probes --json`) say it.
fn hook(h: &HookStatus) -> contract::Hook {
    contract::Hook {
        hook: Some(h.hook.to_string()),
        tier: h.tier.as_ref().and_then(serde_name),
        via: Some(h.via.clone()),
        unavailable: Some(
            h.unavailable
                .iter()
                .map(|u| contract::Unavailable {
                    tier: serde_name(&u.tier),
                    reason: Some(u.reason.clone()),
                })
                .collect(),
        ),
        note: h.note.clone(),
    }
}

fn finding_line(rank: usize, f: &crate::doctor::Finding) -> FindingLine {
    FindingLine {
        rank: Some(rank as u64),
        id: Some(f.id.to_string()),
        severity: serde_name(&f.severity),
        fired: Some(f.fired),
        title: Some(f.title.clone()),
        evidence: Some(
            f.evidence
                .iter()
                .map(|e| contract::Evidence {
                    name: Some(e.name.clone()),
                    value: Some(e.value.clone()),
                })
                .collect(),
        ),
        explanation: Some(f.explanation.clone()),
        action: Some(f.action.clone()),
        scope: serde_name(&f.scope),
        group: f.group.clone(),
        group_proxy: f.group_proxy.clone(),
        instance: None,
    }
}

/// An event's fields as a JSON object, for the text sink (which prints
/// the same list, so both outputs say the same thing).
pub fn event_object(e: &Event, names: &Names) -> Map<String, Value> {
    match Line::Event(event_line(e, names)).to_value() {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}
