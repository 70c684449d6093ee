//! Builds netmem-ebpf for the BPF target and leaves the object in OUT_DIR,
//! where `hooks/attach.rs` embeds it. As in aya-template, the eBPF crate is
//! found through cargo's metadata rather than a path written here.
//!
//! It also sets NETMEM_LONG_VERSION for `netmem --version`: the git commit
//! (NETMEM_GIT_COMMIT, else `git rev-parse`), the build date
//! (SOURCE_DATE_EPOCH, else now) and the SHA-256 of the embedded object, so
//! a binary found on a host says which source and which kernel programs it
//! carries.
use std::process::Command;

use anyhow::{anyhow, Context as _};
use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let find = |wanted: &str| {
        packages
            .iter()
            .find(|p| p.name.as_str() == wanted)
            .ok_or_else(|| anyhow!("{wanted} package not found in the workspace"))
    };
    let ebpf = find("netmem-ebpf")?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("netmem-ebpf's manifest has no parent directory"))?;
    // The kernel programs compile netmem-common too: rebuild when it changes.
    let common = find("netmem-common")?;
    if let Some(dir) = common.manifest_path.parent() {
        println!("cargo:rerun-if-changed={dir}");
    }
    // A rebuilt bpf-linker (another LLVM) must relink the object.
    if let Some(linker) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("bpf-linker"))
            .find(|p| p.exists())
    }) {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;
    version_info()
}

/// Emits NETMEM_LONG_VERSION: "0.1.0 (commit C, built YYYY-MM-DD, eBPF
/// sha256:H)"; clap prints it after "netmem ".
fn version_info() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NETMEM_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = match std::env::var("NETMEM_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => git_commit().unwrap_or_else(|| "unknown".into()),
    };
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse()
            .context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let out = std::env::var("OUT_DIR")?;
    let object = std::fs::read(format!("{out}/netmem")).context("read the eBPF object")?;
    let hash: String = Sha256::digest(&object)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "cargo:rustc-env=NETMEM_LONG_VERSION={} (commit {commit}, built {}, eBPF sha256:{hash})",
        std::env::var("CARGO_PKG_VERSION")?,
        civil_date(secs)
    );
    Ok(())
}

/// HEAD's short hash, rebuilt when HEAD moves (a commit, a checkout).
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let o = Command::new("git").args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--git-path", "HEAD"])?;
    println!("cargo:rerun-if-changed={head}");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let r = git(&["rev-parse", "--git-path", &branch])?;
        if std::path::Path::new(&r).exists() {
            println!("cargo:rerun-if-changed={r}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// YYYY-MM-DD (UTC) of a Unix time: days to a civil date (Howard
/// Hinnant's algorithm), as no date crate is a dependency.
fn civil_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
