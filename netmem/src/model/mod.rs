//! The typed model every source produces and every sink consumes: groups
//! (the grouping rule, aggregation, filters), events (decoded, with their
//! domain rules) and intervals (one pass's figures).
pub mod decode;
pub mod event;
pub mod filter;
pub mod group;
pub mod health;
pub mod incident;
pub mod interval;
pub mod key;
pub mod memcg;
pub mod names;
pub mod netns;
pub mod owner;
pub mod proxy;
#[cfg(test)]
mod purity;
pub mod row;
pub mod types;

pub use event::{Body, Event};
pub use group::{Aggregator, Filter, GroupMem, GroupRow};
pub use interval::{Context, Interval, Live, Loss, RouteFigures, Summary};
