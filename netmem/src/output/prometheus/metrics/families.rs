//! How a family is written: its descriptor, then its series, counts kept
//! integers.

use std::time::SystemTime;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// One family at a time: its descriptor, then its series.
pub(super) struct Families<'a, 'b> {
    pub(super) enc: &'a mut DescriptorEncoder<'b>,
}

pub(super) type Fmt = Result<(), std::fmt::Error>;

/// A sample value: counts stay integers in the exposition.
#[derive(Clone, Copy, Debug)]
pub(super) enum Num {
    Int(u64),
    Real(f64),
}

impl From<u64> for Num {
    fn from(v: u64) -> Num {
        Num::Int(v)
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        Num::Real(v)
    }
}

impl Families<'_, '_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        ty: MetricType,
        body: impl FnOnce(&mut MetricEncoder) -> Fmt,
    ) -> Fmt {
        let mut m = self.enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
        body(&mut m)
    }

    pub(super) fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        v: impl Into<Num>,
    ) -> Fmt {
        let v = v.into();
        self.family(name, help, unit, MetricType::Gauge, |m| gauge(m, v))
    }

    pub(super) fn counter(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        v: impl Into<Num>,
    ) -> Fmt {
        let v = v.into();
        self.family(name, help, unit, MetricType::Counter, |m| counter(m, v))
    }

    /// A family whose series are `rows`: label set and value.
    pub(super) fn labelled<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        ty: MetricType,
        rows: impl IntoIterator<Item = (L, Num)>,
    ) -> Fmt {
        self.family(name, help, unit, ty, |m| {
            for (labels, v) in rows {
                match ty {
                    MetricType::Info => m.encode_info(&labels)?,
                    MetricType::Counter => counter(&mut m.encode_family(&labels)?, v)?,
                    _ => gauge(&mut m.encode_family(&labels)?, v)?,
                }
            }
            Ok(())
        })
    }
}

pub(super) fn counter(m: &mut MetricEncoder, v: Num) -> Fmt {
    use prometheus_client::encoding::NoLabelSet;
    match v {
        Num::Int(v) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        Num::Real(v) => m.encode_counter::<NoLabelSet, _, f64>(&v, None),
    }
}

pub(super) fn gauge(m: &mut MetricEncoder, v: Num) -> Fmt {
    match v {
        Num::Int(v) => m.encode_gauge(&v),
        Num::Real(v) => m.encode_gauge(&v),
    }
}

pub(super) fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
