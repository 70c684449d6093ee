//! The `"host"` line's payload: the machine's facts a diagnosis needs and
//! what was traced. `sources::host` reads them from the system; the writer
//! and every reader of a recording use this one type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub kernel_release: String,
    pub page_size: u64,
    pub mem_total_bytes: Option<u64>,
    /// sysctl name (dotted) → value as the kernel prints it (whitespace
    /// collapsed); absent when the file does not exist or is unreadable.
    pub sysctls: BTreeMap<String, String>,
    /// TcpExt counters at the time of reading.
    pub nstat: BTreeMap<String, u64>,
    /// `rhash_entries=` on the kernel command line, if given.
    pub rhash_entries: Option<String>,
    /// The host's name (its UTS namespace's), to tell recordings apart.
    /// Absent from recordings made before it was added.
    #[serde(default)]
    pub hostname: Option<String>,
    /// What the recording is of (since the report issue; absent from older
    /// recordings, and only `netmem_version` is set outside a trace): so a
    /// report or `doctor --from` can say it, and a comparison of two
    /// recordings of different namespaces or groupings can tell.
    #[serde(default)]
    pub netmem_version: Option<String>,
    /// The traced namespace as `--netns` named it, `host` for netmem's
    /// own (as groups under `--netns all` call it), `all` for every one.
    #[serde(default)]
    pub netns: Option<String>,
    /// Its inode (None with `--netns all`), as `netns_inode` of groups.
    #[serde(default)]
    pub netns_inode: Option<u32>,
    /// `--group-by`, as spelled on the command line.
    #[serde(default)]
    pub group_by: Option<String>,
    /// `--owners`.
    #[serde(default)]
    pub owners: Option<bool>,
    /// `--interval`, milliseconds.
    #[serde(default)]
    pub interval_ms: Option<u64>,
}
