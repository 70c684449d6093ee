//! netmem: live attribution of Linux socket memory to listening ports and
//! backends. The binary (`main.rs`) is a thin CLI over these modules.
pub mod attribution;
pub mod btf_offsets;
pub mod kallsyms;
pub mod netlink;
pub mod netns;
pub mod output;
pub mod pollers;
pub mod privileges;
pub mod probes;
pub mod procfs;
pub mod snapshot;
pub mod sockdiag;
pub mod trace;
