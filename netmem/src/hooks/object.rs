//! The eBPF object built by build.rs from netmem-ebpf, and how each of its
//! two users sizes the other's maps to nothing: the hooks' copy
//! (`attach.rs`) and the census' (`census.rs`) load the same object, each
//! with the maps it does not use shrunk.

/// The object: every program and map of netmem-ebpf.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netmem"));

/// The hooks' maps, sized to nothing in the census' copy.
pub const HOOK_MAPS: &[(&str, u32)] = &[
    ("EVENTS", 4096),
    ("GROUP_COUNTS", 1),
    ("LISTEN_PORTS", 1),
    ("ORPHANS", 1),
    ("ENTRY_ARGS", 1),
];

/// The census' maps, sized to nothing in the hooks' copy.
pub const CENSUS_MAPS: &[(&str, u32)] = &[("CENSUS_GROUPS", 1), ("CENSUS_LISTEN", 1)];
