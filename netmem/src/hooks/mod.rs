//! Hooks: the catalog (which programs serve which hook on which tier), the
//! attach engine that picks each hook's tier on this kernel, the typed map
//! handles, and the resulting status. A new hook is one catalog entry, its
//! kernel program in netmem-ebpf, and its payload's decoder in
//! `model::event`.
pub mod attach;
pub mod catalog;
pub mod census;
pub mod maps;
pub mod object;
pub mod status;

pub use attach::{setup, Probes};
pub use catalog::{HookId, Tier, HOOKS};
pub use status::{Coverage, HookStatus, Unavailable};
