//! Reading the contract leniently: a recording from any netmem, or damaged,
//! reads as it always did. A field that is missing, `null` or of another
//! type than the contract's reads as absent (`None`) and never fails the
//! line; lists keep what reads (or keep their places, where a reader looks
//! at a position). Used as `#[serde(default, deserialize_with = ...)]` on
//! every field of the line types.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Any field: `None` when it does not read as `T`.
pub fn opt<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A field written sometimes as `null`, sometimes not at all: present
/// (`Some`), with its value when it reads as `T`.
pub fn nullable<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(serde_json::from_value(Value::deserialize(d)?).ok()))
}

/// A list whose elements that do not read as `T` are skipped; `None` when
/// it is not a list.
pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => Some(
            a.into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// A list whose elements keep their places: one that does not read as
/// `T` is `T::default()` (every field absent).
pub fn places<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => Some(
            a.into_iter()
                .map(|v| serde_json::from_value(v).unwrap_or_default())
                .collect(),
        ),
        _ => None,
    })
}

/// An object of figures by name (e.g. the polling tier's dump sizes),
/// each absent when it is not an unsigned integer.
pub fn figures<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Option<u64>>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => Some(m.into_iter().map(|(k, v)| (k, v.as_u64())).collect()),
        _ => None,
    })
}

/// A whole number as the kernel's figures are (an event's are signed in
/// the kernel, a recording may hold any): read as either sign, so a
/// reader can take it as `u64` or `i64` exactly as the JSON says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int(pub i128);

impl Int {
    pub fn u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    pub fn i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }
}

impl From<i64> for Int {
    fn from(n: i64) -> Int {
        Int(n.into())
    }
}

impl From<u64> for Int {
    fn from(n: u64) -> Int {
        Int(n.into())
    }
}

impl std::fmt::Display for Int {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Int {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.i64(), self.u64()) {
            (Some(n), _) => s.serialize_i64(n),
            (None, Some(n)) => s.serialize_u64(n),
            _ => Err(serde::ser::Error::custom("a figure past 64 bits")),
        }
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        let v = Value::deserialize(d)?;
        v.as_i64()
            .map(Int::from)
            .or(v.as_u64().map(Int::from))
            .ok_or_else(|| serde::de::Error::custom("not a whole number"))
    }
}

/// `[min, pressure, max]` pages (tcp_mem, udp_mem): as written, three
/// figures; as read, whatever list was there, each figure absent when it
/// is not a whole number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pages(pub Vec<Option<Int>>);

impl Pages {
    /// All three, when all three are unsigned.
    pub fn triple(&self) -> Option<[u64; 3]> {
        let f = |i: usize| self.0.get(i).copied().flatten()?.u64();
        Some([f(0)?, f(1)?, f(2)?])
    }

    /// The third (the limit), signed.
    pub fn max_i64(&self) -> Option<i64> {
        self.0.get(2).copied().flatten()?.i64()
    }
}

impl From<[u64; 3]> for Pages {
    fn from(p: [u64; 3]) -> Pages {
        Pages(p.iter().map(|n| Some(Int::from(*n))).collect())
    }
}

impl From<[i64; 3]> for Pages {
    fn from(p: [i64; 3]) -> Pages {
        Pages(p.iter().map(|n| Some(Int::from(*n))).collect())
    }
}

impl Serialize for Pages {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pages, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(a) => Ok(Pages(
                a.into_iter()
                    .map(|v| serde_json::from_value(v).ok())
                    .collect(),
            )),
            _ => Err(serde::de::Error::custom("not a list")),
        }
    }
}
