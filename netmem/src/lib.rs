//! netmem: live attribution of Linux socket memory to listening ports and
//! backends. The binary (`main.rs`) is a thin CLI over this library.
//!
//! Data flows one way: `kernel` facts decide how `hooks` attach; the kernel
//! programs and the `sources` (sock_diag, procfs, rtnetlink) and `polling`
//! readers feed the `engine`, which builds the typed `model` (events,
//! intervals); `cmd` runs a subcommand and hands the model to an `output`
//! sink. See ARCHITECTURE.md.
pub mod cli;
pub mod cmd;
pub mod contract;
pub mod doctor;
pub mod engine;
pub mod format;
pub mod fsutil;
pub mod hooks;
pub mod kernel;
pub mod model;
pub mod output;
pub mod polling;
pub mod report;
pub mod shutdown;
pub mod sources;
pub mod tui;
