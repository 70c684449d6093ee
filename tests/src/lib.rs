//! Harness for netmem's integration tests: network namespaces the tests own,
//! the netmem binary under test, and `ss` as the reference. The guests
//! (`tools/guest.rs`) use it too; the tool binaries are in `tools/`.
//!
//! By subject: `netns.rs` (namespaces), `cgroup.rs`, `running.rs` (a load
//! held, netmem streaming, programs left loaded), `lines.rs` (netmem's
//! JSON lines read back), `ss.rs`, `procstat.rs` (CPU and memory of a
//! process); every helper is re-exported here, where tests name it.

pub mod browser;
pub mod fleet;
pub mod no_btf;
pub mod rig;
pub mod scenarios;
pub mod serve;
pub mod synthetic;

mod cgroup;
mod lines;
mod netns;
mod procstat;
mod running;
mod ss;

pub use cgroup::{memory_stat_sock, start_in_cgroup, TestCgroup};
pub use lines::{group, json_lines, last_groups, ok_json, run_ok};
pub use netns::Netns;
pub use procstat::{cpu_seconds, hwm_kib, rss_kib};
pub use running::{
    loaded_netmem_programs, programs_after_exit, trace_while_loaded, until_probes, Held, Streaming,
};
pub use ss::{parse_ss, within_10pct, SsSocket};

use std::path::PathBuf;
use std::process::{Command, Output};

/// Tests load eBPF programs and create namespaces: they need root. Failing
/// (not skipping) keeps a non-root run from looking green.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "netmem's integration tests must run as root (they load eBPF and create network namespaces)");
}

/// A binary of this workspace: $NETMEM_BIN for netmem if set, else the one
/// beside this binary (a tool in target/release) or in this test's profile
/// dir (tests run from target/debug/deps; `cargo xtask test` builds both).
pub fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let beside = dir.join(name);
    let p = if beside.exists() {
        beside
    } else {
        dir.parent().unwrap().join(name)
    };
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` or `cargo xtask test`",
        p.display()
    );
    p
}

/// The repository's root (README.md, BENCHMARKS.md, packaging/).
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

pub fn netmem_bin() -> PathBuf {
    match std::env::var("NETMEM_BIN") {
        Ok(p) => p.into(),
        Err(_) => target_bin("netmem"),
    }
}

/// netmem run as `nobody` with no capability at all (`setpriv`), as an
/// unprivileged user would.
pub fn netmem_as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(netmem_bin())
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

pub fn load_bin() -> PathBuf {
    target_bin("netmem-load")
}
