//! Where the figures come from besides the kernel programs: sock_diag (per
//! socket memory, as `ss -tm`), procfs (global limits and usage), rtnetlink
//! (cached routes), all read inside the traced network namespace.
pub mod gather;
pub mod health;
pub mod host;
pub mod kernel_log;
pub mod memcg;
pub mod netlink;
pub mod netns;
pub mod owners;
pub mod procfs;
pub mod prometheus;
pub mod proxy;
pub mod recording;
pub mod routes;
pub mod scrape;
pub mod sockdiag;

/// The census is part of the gathering layer; its old path stays.
pub use gather::census;
