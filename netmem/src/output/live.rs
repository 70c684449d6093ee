//! The doctor behind serve's live page (`/`): the same rules as `doctor
//! --watch`, over everything serve has seen since it started, fed the
//! contract's lines as `doctor --watch` feeds them and run again after
//! each interval. The findings are published beside the exposition for
//! the HTTP side, which only presents them.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Result;

use super::json::{event_line, interval_lines};
use super::Sink;
use crate::contract::Line;
use crate::doctor::{diagnose, Finding, State};
use crate::model::names::Names;
use crate::model::{Event, Interval};
use crate::sources::host::Host;

/// Findings the live page shows at most.
pub const SHOWN: usize = 5;

/// The doctor's latest verdict: when, and its first findings, ranked.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub at: Option<SystemTime>,
    pub findings: Vec<Finding>,
    /// Findings beyond [`SHOWN`].
    pub more: usize,
}

/// Where the live doctor publishes and the HTTP side reads.
#[derive(Debug, Default)]
pub struct LiveFindings(Mutex<Arc<Verdict>>);

impl LiveFindings {
    pub fn latest(&self) -> Arc<Verdict> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, v: Verdict) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }
}

pub struct LiveDoctorSink {
    state: State,
    names: Names,
    out: Arc<LiveFindings>,
}

impl LiveDoctorSink {
    pub fn new(out: Arc<LiveFindings>) -> LiveDoctorSink {
        LiveDoctorSink {
            state: State::default(),
            names: Names::default(),
            out,
        }
    }
}

impl Sink for LiveDoctorSink {
    fn names(&mut self, n: &Names) {
        self.names = n.clone();
    }

    fn host(&mut self, h: &Host) -> Result<()> {
        self.state.host = h.clone();
        Ok(())
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        self.state
            .window
            .feed(&Line::Event(event_line(e, &self.names)));
        Ok(())
    }

    fn interval(&mut self, i: &Interval) -> Result<()> {
        for v in interval_lines(i, &self.names) {
            self.state.window.feed(&v);
        }
        let mut findings = diagnose(&self.state);
        let more = findings.len().saturating_sub(SHOWN);
        findings.truncate(SHOWN);
        self.out.publish(Verdict {
            at: Some(i.ts),
            findings,
            more,
        });
        Ok(())
    }
}
