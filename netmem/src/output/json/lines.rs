//! The model as the contract's lines: each builder fills one line type of
//! `crate::contract` from the model, as README documents it. The sink
//! serialises them; the doctor's live window takes them as they are.

use netmem_common::{Counter, GroupKey, GROUP_BACKEND, GROUP_CGROUP, GROUP_PROCESS};

use crate::contract::lax::Pages;
use crate::contract::{
    self, CgroupFields, ContextLine, EventFields, EventLine, GroupLine, Line, Netns, NetnsLine,
    ProxyFields, ProxyLine,
};
use crate::format::rfc3339;
use crate::model::event::{family_name, state_name, Abort, Body, ProtoMem, Protocol};
use crate::model::group::{group_kind, ip_from, GroupRow};
use crate::model::names::Names;
use crate::model::owner;
use crate::model::proxy::{GroupProxy, ProxyView, Side};
use crate::model::{Context, Event, Interval};

/// An interval's lines: its context, then one line per group, each built
/// as it is taken (at 1000+ groups, building them all first held
/// megabytes at once). Its groups are named by `names`.
pub fn interval_lines<'a>(i: &'a Interval, names: &'a Names) -> impl Iterator<Item = Line> + 'a {
    let ts = rfc3339(i.ts);
    let mut c = context_line(&ts, &i.context);
    if let Some(l) = &i.live {
        let r = &l.routes;
        c.lost_events = Some(l.loss.lost_events);
        c.events_suppressed = Some(l.loss.events_suppressed);
        c.group_map_full = Some(l.loss.group_map_full);
        c.memory_pressure = Some(l.memory_pressure);
        // 0: the groups below were read this interval.
        c.census_age_ms = Some(l.census_age.map_or(0, |a| a.as_millis() as u64));
        c.route_exceptions = Some(contract::RouteExceptions {
            inserted: Some(r.inserted),
            per_s: Some((r.per_s() * 100.0).round() / 100.0),
            by_dst: Some(
                r.by_dst
                    .iter()
                    .map(|(d, n)| contract::DstCount {
                        dst: Some(d.clone()),
                        count: Some(*n),
                    })
                    .collect(),
            ),
            rt6_cached: r.rt6_cached,
            cached: Some(
                r.cached
                    .iter()
                    .map(|(k, n)| (k.to_string(), Some(*n as u64)))
                    .collect(),
            ),
        });
    }
    let spaces = i.netns.iter().map({
        let ts = ts.clone();
        move |f| Line::Netns(netns_line(&ts, f, names))
    });
    std::iter::once(Line::Context(c))
        .chain(spaces)
        .chain(i.groups.iter().map(move |(g, row)| {
            Line::Group(group_line(
                &ts,
                g,
                row,
                i.live.is_some(),
                i.time_wait_counted,
                names,
            ))
        }))
}

/// A namespace's counters, named as its groups are.
pub fn netns_line(ts: &str, f: &crate::model::netns::NetnsFigures, names: &Names) -> NetnsLine {
    let own = |m: &std::collections::BTreeMap<&'static str, u64>| {
        m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    NetnsLine {
        ts: Some(ts.to_string()),
        netns: Netns {
            netns: Some(names.netns_label(f.inum)),
            netns_inode: Some(f.inum.into()),
        },
        counters: Some(own(&f.totals)),
        delta: f.delta.as_ref().map(own),
        somaxconn: f.somaxconn,
    }
}

pub fn context_line(ts: &str, c: &Context) -> ContextLine {
    ContextLine {
        ts: Some(ts.to_string()),
        tcp_mem_pages: c.tcp_mem_pages.map(Pages::from),
        memory_allocated_pages: Some(c.memory_allocated_pages),
        orphans: Some(c.orphans),
        orphans_census: c.orphans_census,
        census: c.census.map(str::to_string),
        max_orphans: c.max_orphans,
        sockets_inuse: Some(c.sockets_inuse),
        tw: Some(c.tw),
        page_size: Some(c.page_size),
        tcp6_inuse: Some(c.tcp6_inuse),
        udp_inuse: Some(c.udp_inuse),
        udp_memory_allocated_pages: Some(c.udp_memory_allocated_pages),
        udp_mem_pages: c.udp_mem_pages.map(Pages::from),
        ..Default::default()
    }
}

/// One group line, named by `names`. `time_wait`: whether the pass
/// counted TIME_WAIT sockets (else the field is null).
pub fn group_line(
    ts: &str,
    g: &GroupKey,
    row: &GroupRow,
    live: bool,
    time_wait: bool,
    names: &Names,
) -> GroupLine {
    let m = &row.mem;
    let mut o = GroupLine {
        ts: Some(ts.to_string()),
        group: Some(names.group_name(g)),
        kind: Some(group_kind(g).to_string()),
        port: Some(g.port.into()),
        addr: (g.kind == GROUP_BACKEND).then(|| ip_from(g.family, &g.addr).to_string()),
        netns: netns(g, names),
        proxy: row.proxy.as_deref().map(proxy_fields).unwrap_or_default(),
        owners: row.owners.as_deref().map(owners),
        sockets: Some(m.sockets),
        listeners: Some(m.listeners),
        // Skipped by the pass (see sockdiag::States::Buffered): null.
        time_wait: time_wait.then_some(m.time_wait),
        orphans: Some(m.orphans),
        rmem_bytes: Some(m.rmem),
        wmem_queued_bytes: Some(m.wmem_queued),
        fwd_alloc_bytes: Some(m.fwd_alloc),
        orphan_bytes: Some(m.orphan_bytes),
        drops: Some(m.drops),
        // Only a group with a listener has an accept queue.
        accept_queue: (m.listeners > 0).then_some(m.accept_queue),
        accept_backlog: (m.listeners > 0).then_some(m.accept_backlog),
        accept_full: (m.listeners > 0).then_some(m.accept_full),
        listen_drops: (m.listeners > 0).then_some(m.listen_drops),
        ..Default::default()
    };
    owner_group_fields(g, row, &mut o, names);
    if live {
        for c in Counter::ALL {
            if let Some(n) = o.counts.get_mut(*c) {
                *n = Some(row.count(*c));
            }
        }
    }
    o
}

/// What the proxy calls a group (or an event's group), and its buffer
/// settings for that side. The first name is in `proxy_frontend` /
/// `proxy_backend` / `proxy_server`; the lists hold every one when the
/// kernel's group is shared.
fn proxy_fields(p: &GroupProxy) -> ProxyFields {
    let mut o = ProxyFields {
        proxy: Some(p.kind.to_string()),
        proxy_side: Some(p.side.name().to_string()),
        proxy_tune: Some(contract::SideTune {
            bufsize: p.bufsize,
            rcvbuf: p.tune.rcvbuf,
            sndbuf: p.tune.sndbuf,
            from_configuration: Some(p.tune.known),
        }),
        ..Default::default()
    };
    match p.side {
        Side::Client => {
            o.proxy_frontend = Some(p.frontend().map(String::from));
            o.proxy_frontends = Some(p.frontends.clone());
        }
        Side::Server => {
            o.proxy_backend = Some(p.backend().map(String::from));
            o.proxy_server = Some(p.server().map(String::from));
            o.proxy_servers = Some(p.server_paths());
        }
    }
    o
}

/// A `proxy` line: where a proxy was read, what it named, its settings,
/// and what could not be read; its namespace named by `names`.
pub fn proxy_line(ts: &str, v: &ProxyView, names: &Names) -> ProxyLine {
    let mut o = ProxyLine {
        ts: Some(ts.to_string()),
        proxy: Some(v.kind.to_string()),
        source: Some(v.source.clone()),
        named: Some(v.map.is_some()),
        problems: Some(v.problems.clone()),
        ..Default::default()
    };
    if names.all_namespaces() {
        o.netns = Netns {
            netns: Some(names.netns_name(v.netns)),
            netns_inode: Some(v.netns.into()),
        };
    }
    if let Some(m) = &v.map {
        let mut fe: std::collections::BTreeMap<&str, std::collections::BTreeSet<u16>> =
            Default::default();
        for l in &m.listeners {
            fe.entry(&l.frontend).or_default().insert(l.port);
        }
        o.frontends = Some(
            fe.iter()
                .map(|(n, ports)| contract::Frontend {
                    name: Some(n.to_string()),
                    ports: Some(ports.iter().copied().collect()),
                })
                .collect(),
        );
        o.backends = Some(
            m.backends
                .iter()
                .map(|(b, from)| contract::Backend {
                    name: Some(b.clone()),
                    frontends: Some(from.iter().cloned().collect()),
                    servers: Some(
                        m.servers
                            .iter()
                            .filter(|s| &s.backend == b)
                            .map(|s| contract::ServerAddr {
                                name: Some(s.server.clone()),
                                addr: Some(s.addr.to_string()),
                            })
                            .collect(),
                    ),
                })
                .collect(),
        );
        let t = &m.tune;
        let (c, s) = (
            t.side(crate::model::proxy::Side::Client),
            t.side(crate::model::proxy::Side::Server),
        );
        o.tune = Some(contract::ProxyTune {
            bufsize: t.buffer(),
            rcvbuf_client: c.rcvbuf,
            sndbuf_client: c.sndbuf,
            rcvbuf_server: s.rcvbuf,
            sndbuf_server: s.sndbuf,
            from_configuration: Some(s.known),
        });
        o.origin = Some(m.origin.clone());
        o.notes = Some(m.notes.clone());
    }
    o
}

/// With `--netns all`: the group's namespace, by name and inode.
fn netns(g: &GroupKey, names: &Names) -> Netns {
    if names.all_namespaces() && g.netns != 0 {
        Netns {
            netns: Some(names.netns_name(g.netns)),
            netns_inode: Some(g.netns.into()),
        }
    } else {
        Netns::default()
    }
}

fn cgroup_fields(c: &crate::sources::owners::Cgroup) -> CgroupFields {
    CgroupFields {
        cgroup: Some(Some(c.path.clone())),
        cgroup_id: Some(c.id),
        container: Some(c.container.clone()),
        pod: Some(c.pod.clone()),
    }
}

/// An owner group's own identity (`--group-by process|cgroup`).
fn owner_group_fields(g: &GroupKey, row: &GroupRow, o: &mut GroupLine, names: &Names) {
    let id = owner::owner_id(g);
    match g.kind {
        GROUP_PROCESS => {
            o.pid = Some((id != 0).then_some(id));
            o.comm = Some(names.comm(id as u32));
        }
        GROUP_CGROUP => {
            o.cgroup = match names.cgroup(id) {
                Some(c) => cgroup_fields(&c),
                None => CgroupFields {
                    cgroup: Some(None),
                    ..Default::default()
                },
            };
            // The cross-check: what the memory controller charged the
            // cgroup for sockets, beside what its sockets hold.
            let share = row
                .owners
                .as_ref()
                .and_then(|w| w.cgroups.iter().find(|c| c.cgroup.id == id));
            o.memcg_sock_bytes = Some(share.and_then(|c| c.memcg_sock));
            o.memcg = memcg_fields(share.and_then(|c| c.memcg.as_deref()));
        }
        _ => {}
    }
}

/// A cgroup's memory controller figures, as read (none when unread).
pub fn memcg_fields(m: Option<&crate::model::memcg::Memcg>) -> contract::MemcgFields {
    let Some(m) = m else {
        return contract::MemcgFields::default();
    };
    // A limit is written only where the controller answered: `current`
    // says it is there, and then an absent max is `max`.
    let here = m.current.is_some();
    contract::MemcgFields {
        memory_current_bytes: m.current,
        memory_max_bytes: here.then_some(m.max),
        memory_high_bytes: here.then_some(m.high),
        memory_limit_bytes: m.limit.as_ref().map(|l| l.max),
        memory_limit_current_bytes: m.limit.as_ref().map(|l| l.current),
        memory_limit_cgroup: m.limit.as_ref().map(|l| l.cgroup.clone()),
        memory_limit_events_max: m.limit.as_ref().and_then(|l| l.events.max),
        memory_limit_events_high: m.limit.as_ref().and_then(|l| l.events.high),
        memory_events_high: m.events.high,
        memory_events_max: m.events.max,
        memory_events_oom: m.events.oom,
        memory_events_oom_kill: m.events.oom_kill,
        memory_events_sock_throttled: m.events.sock_throttled,
        tcp_kmem_limit_bytes: m.tcp_kmem.as_ref().map(|t| t.limit),
        tcp_kmem_usage_bytes: m.tcp_kmem.as_ref().and_then(|t| t.usage),
        tcp_kmem_failcnt: m.tcp_kmem.as_ref().and_then(|t| t.failcnt),
    }
}

fn owners(w: &owner::Owners) -> contract::Owners {
    contract::Owners {
        processes: Some(
            w.processes
                .iter()
                .map(|p| contract::ProcessShare {
                    pid: Some(p.pid.into()),
                    comm: Some(p.comm.clone()),
                    sockets: Some(p.sockets),
                    bytes: Some(p.bytes),
                })
                .collect(),
        ),
        more_processes: Some(w.more_processes),
        cgroups: Some(
            w.cgroups
                .iter()
                .map(|c| contract::CgroupShare {
                    cgroup: cgroup_fields(&c.cgroup),
                    sockets: Some(c.sockets),
                    bytes: Some(c.bytes),
                    memcg_sock_bytes: c.memcg_sock,
                    memcg: memcg_fields(c.memcg.as_deref()),
                })
                .collect(),
        ),
        more_cgroups: Some(w.more_cgroups),
        unheld_sockets: Some(w.unheld),
    }
}

/// Every field of an event, named as the contract says. The text sink
/// prints the same list, so both outputs say the same thing. Its group
/// is named by `names`.
pub fn event_line(e: &Event, names: &Names) -> EventLine {
    let mut o = EventLine {
        ts: Some(rfc3339(e.ts)),
        event: Some(e.body.kind().name().to_string()),
        tier: Some(e.tier.map_or("none", |t| t.name()).to_string()),
        ..Default::default()
    };
    if let Some(g) = &e.group {
        o.group = Some(names.group_name(g));
        o.netns = netns(g, names);
    }
    if let Some(p) = &e.proxy {
        o.proxy = proxy_fields(p);
    }
    if let Some(w) = &e.owner {
        let mut cgroup = CgroupFields {
            cgroup_id: w.cgroup_id,
            ..Default::default()
        };
        if let Some(c) = &w.cgroup {
            cgroup = cgroup_fields(c);
        }
        o.owner = Some(contract::EventOwner {
            pid: w.pid.map(u64::from),
            comm: w.comm.clone(),
            cgroup,
            via: Some(w.via.name().to_string()),
        });
    }
    if let Some(s) = &e.sock {
        let n = |v: i32| Some(i64::from(v).into());
        o.sock = contract::Sock {
            local: Some(s.local.to_string()),
            remote: Some(s.remote.to_string()),
            protocol: Some(s.protocol.name().to_string()),
            state: Some(state_name(s.state).to_string()),
            rmem_alloc: n(s.rmem_alloc),
            rcvbuf: n(s.rcvbuf),
            wmem_queued: n(s.wmem_queued),
            wmem_alloc: n(s.wmem_alloc),
            sndbuf: n(s.sndbuf),
            fwd_alloc: n(s.fwd_alloc),
            sk_drops: n(s.drops),
        };
    }
    o.body = body_fields(&e.body);
    o
}

/// `tcp_mem_pages` or `udp_mem_pages`, as the protocol's limit is.
fn put_mem(m: &ProtoMem, o: &mut EventFields) {
    let pages = Some(Pages::from(m.pages));
    if m.protocol == Protocol::Udp {
        o.udp_mem_pages = pages;
    } else {
        o.tcp_mem_pages = pages;
    }
}

fn ms(d: Option<std::time::Duration>) -> Option<Option<f64>> {
    Some(d.map(|d| d.as_nanos() as f64 / 1e6))
}

/// The kind-specific fields. One match arm per kind on purpose, like the
/// decoder: each kind's fields read in one place.
fn body_fields(b: &Body) -> EventFields {
    let mut o = EventFields::default();
    let n = |v: i64| Some(v.into());
    match b {
        Body::ExceedBufLimit {
            allocated_pages,
            direction,
            mem,
        } => {
            o.allocated_pages = n(*allocated_pages);
            o.direction = Some(direction.name().to_string());
            put_mem(mem, &mut o);
        }
        Body::RcvqueueFull { truesize } => o.truesize = n(*truesize),
        Body::AbortOnMemory(a) => abort_fields(a, &mut o),
        Body::SkbDrop {
            reason,
            truesize,
            len,
        } => {
            o.reason = Some(reason.clone());
            o.truesize = n(*truesize);
            o.len = n(*len);
        }
        Body::DestroyWithData {
            unread_bytes,
            unacked_bytes,
        } => {
            o.unread_bytes = n(*unread_bytes);
            o.unacked_bytes = n(*unacked_bytes);
        }
        Body::OrphanBorn { bytes, via } => {
            o.bytes = n(*bytes);
            o.via = Some(via.map_or("unknown", |v| v.name()).to_string());
        }
        Body::OrphanGone {
            lifetime,
            bytes_at_birth,
            last_state,
            ended,
        } => {
            o.lifetime_ms = ms(*lifetime);
            o.bytes_at_birth = n(*bytes_at_birth);
            o.last_state = Some(state_name(*last_state).to_string());
            o.ended = Some(ended.name().to_string());
        }
        Body::PressureEnter {
            allocated_pages,
            tcp_mem_pages,
        } => {
            o.allocated_pages = n(*allocated_pages);
            o.tcp_mem_pages = Some(Pages::from(*tcp_mem_pages));
        }
        Body::PressureLeave {
            allocated_pages,
            tcp_mem_pages,
            duration,
        } => {
            o.allocated_pages = n(*allocated_pages);
            o.tcp_mem_pages = Some(Pages::from(*tcp_mem_pages));
            o.duration_ms = ms(*duration);
        }
        Body::RouteException(r) => {
            o.family = Some(family_name(r.family).to_string());
            o.dst = Some(r.dst.to_string());
            o.gateway = Some(r.gateway.map(|g| g.to_string()));
            o.dev = Some(r.dev.clone());
            o.pmtu = n(r.pmtu);
            o.exception = Some(if r.is_pmtu() { "pmtu" } else { "redirect" }.to_string());
        }
        Body::Synthetic { seq } => o.seq = n(*seq),
        Body::CgroupSocketPressure { memcg, local } => {
            o.allocated_pages = Some(local.host.allocated_pages.into());
            o.tcp_mem_pages = Some(Pages::from(local.host.tcp_mem_pages));
            o.memcg_sock_bytes = Some(local.sock);
            o.memcg = memcg_fields(Some(memcg));
            o.pushed_back = Some(local.pushed_back);
        }
    }
    o
}

fn abort_fields(a: &Abort, o: &mut EventFields) {
    let n = |v: i64| Some(v.into());
    o.cause = Some(a.cause.name().to_string());
    o.cause_inferred = Some(a.cause_inferred);
    o.via = Some(a.via.map_or("unknown", |v| v.name()).to_string());
    o.orphans = Some(a.orphans.map(Into::into));
    o.orphans_source = Some(a.orphans_source.name().to_string());
    o.shift = Some(a.shift.map(Into::into));
    o.max_orphans = Some(a.max_orphans.map(Into::into));
    o.max_orphans_source = Some(a.max_orphans_source.name().to_string());
    o.allocated_pages = n(a.allocated_pages);
    put_mem(&a.mem, o);
    o.sock_min_sndbuf = n(a.sock_min_sndbuf);
    if let Some((orphans, mem)) = a.kernel_log {
        o.kernel_log = Some(contract::KernelLog {
            too_many_orphans: Some(orphans),
            out_of_tcp_mem: Some(mem),
        });
    }
}

/// A socket of a top group at an incident's trigger (the flight
/// recorder's census), with the fields an event's socket has.
pub fn socket_line(
    ts: &str,
    group: &str,
    r: &crate::model::types::SockRecord,
) -> contract::SocketLine {
    let n = |v: u32| Some(i64::from(v).into());
    contract::SocketLine {
        ts: Some(ts.to_string()),
        group: Some(group.to_string()),
        sock: contract::Sock {
            local: Some(std::net::SocketAddr::new(r.local, r.lport).to_string()),
            remote: Some(std::net::SocketAddr::new(r.remote, r.rport).to_string()),
            protocol: Some(Protocol::from_ipproto(r.protocol).name().to_string()),
            state: Some(state_name(r.state).to_string()),
            rmem_alloc: n(r.rmem_alloc),
            rcvbuf: n(r.rcvbuf),
            wmem_queued: n(r.wmem_queued),
            wmem_alloc: n(r.wmem_alloc),
            sndbuf: n(r.sndbuf),
            fwd_alloc: n(r.fwd_alloc),
            sk_drops: n(r.drops),
        },
    }
}
