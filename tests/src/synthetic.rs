//! A long recording made without a kernel, for what only depends on a
//! recording's size: the report's size and speed at 10 minutes of 1 s
//! intervals. It is written by netmem's own recorder from model values, so
//! it is exactly the contract a real recording has; the kernel-facing tests
//! record real sockets instead.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use netmem::model::event::{Abort, AbortCause, FigureSource, ProtoMem, Protocol};
use netmem::model::group::{GroupMem, GroupRow};
use netmem::model::{Body, Event, Interval, Live, Summary};
use netmem::output::record::RecordSink;
use netmem::output::Sink;
use netmem_common::GroupKey;

/// `intervals` of 1 s, `groups` listening ports whose memory rises and
/// falls at their own pace, an orphan burst and an abort every minute.
pub fn recording(path: &Path, intervals: u64, groups: u16) -> Result<()> {
    let mut sink = RecordSink::create(path.to_path_buf(), None, true)?;
    feed(&mut sink, SystemTime::now(), intervals, groups)
}

/// What [`recording`] writes, handed to any sink (the flight recorder's
/// tests), starting at `t0`.
pub fn feed(sink: &mut dyn Sink, t0: SystemTime, intervals: u64, groups: u16) -> Result<()> {
    let host = netmem::sources::host::Host {
        kernel_release: "synthetic".into(),
        page_size: 4096,
        ..Default::default()
    };
    sink.host(&host)?;
    sink.coverage(&[])?;
    for i in 0..intervals {
        let ts = t0 + Duration::from_secs(i);
        let minute_mark = i % 60 == 30;
        let mut rows = Vec::new();
        for g in 0..groups {
            let key = GroupKey::classify(2, 8000 + g, true, &[0; 16], 0);
            let phase = (i as f64 / (20.0 + g as f64)).sin().abs();
            let orphans = if minute_mark && g == 0 { 40 } else { 0 };
            rows.push((
                key,
                GroupRow {
                    mem: GroupMem {
                        sockets: 10 + g as u64,
                        wmem_queued: (phase * 4e6 / (1 + g) as f64) as u64,
                        rmem: (phase * 1e6) as u64,
                        orphans,
                        orphan_bytes: orphans * 65536,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ));
            if minute_mark && g == 0 {
                sink.event(&abort(ts, key))?;
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.mem.total()));
        let mut context = netmem::model::Context {
            tcp_mem_pages: Some([188_000, 250_000, 376_000]),
            max_orphans: Some(131_072),
            page_size: 4096,
            ..Default::default()
        };
        context.memory_allocated_pages = rows.iter().map(|r| r.1.mem.total()).sum::<u64>() / 4096;
        sink.interval(&Interval {
            netns: Vec::new(),
            time_wait_counted: false,
            ts,
            context,
            groups: rows,
            live: Some(Live::default()),
        })?;
    }
    sink.summary(&Summary {
        ts: Some(t0 + Duration::from_secs(intervals)),
        events: intervals / 60,
        duration: Duration::from_secs(intervals),
        ..Default::default()
    })
}

/// An abort on memory of `g` at `ts`, for the orphan limit.
pub fn abort(ts: SystemTime, g: GroupKey) -> Event {
    Event {
        ts,
        hook: None,
        tier: None,
        group: Some(g),
        sock: None,
        owner: None,
        proxy: None,
        body: Body::AbortOnMemory(Abort {
            cause: AbortCause::Orphans,
            via: None,
            orphans: Some(40),
            orphans_source: FigureSource::Kernel,
            shift: Some(2),
            max_orphans: Some(128),
            max_orphans_source: FigureSource::Procfs,
            allocated_pages: 1000,
            mem: ProtoMem {
                protocol: Protocol::Tcp,
                pages: [188_000, 250_000, 376_000],
            },
            sock_min_sndbuf: 4608,
            kernel_log: None,
            cause_inferred: false,
        }),
    }
}
