//! `cargo xtask dist`: what an operator installs, built into target/dist/
//! with one command and nothing but Debian's own tools:
//!
//! - netmem-x86_64-linux-musl: static, stripped, the eBPF object embedded;
//! - netmem-aarch64-linux-musl: the same, cross-built (see [`aarch64_binary`]);
//! - man/ and completions/: from the library's command line (netmem-docs);
//! - netmem_VERSION_amd64.deb: dpkg-deb, checked by lintian;
//! - netmem-VERSION-oci.tar: an OCI image archive built with umoci (no
//!   daemon), holding the static binary alone.
//!
//! The build date is the commit's (SOURCE_DATE_EPOCH), so two builds of one
//! commit say the same `--version`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo, output, sh, target_dir, workspace_root};

/// Debian packages `dist` and the install tests run: debootstrap (the
/// install test's rootfs), lintian (checks the .deb), umoci (builds and
/// unpacks the OCI image), gcc-aarch64-linux-gnu (links the aarch64
/// binary) and libc6-dev-arm64-cross (its C headers, which the cross gcc
/// only recommends). dpkg-deb, strip and setpriv come with dpkg, binutils
/// and util-linux.
pub const PACKAGES: &[&str] = &[
    "debootstrap",
    "lintian",
    "umoci",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
];

pub const X86_64: &str = "x86_64-unknown-linux-musl";
pub const AARCH64: &str = "aarch64-unknown-linux-musl";
/// The shipped binary must stay below this (issue 27).
const SIZE_BUDGET: u64 = 10 << 20;

pub fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// netmem's version, from its manifest.
pub fn version() -> Result<String> {
    let manifest = std::fs::read_to_string(workspace_root().join("netmem/Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
        .context("no version in netmem/Cargo.toml")
}

struct Stamp {
    commit: String,
    epoch: String,
}

fn stamp() -> Result<Stamp> {
    let git = |args: &[&str]| {
        output(Command::new("git").args(args).current_dir(workspace_root()))
            .map(|s| s.trim().to_string())
    };
    Ok(Stamp {
        commit: git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|_| "unknown".into()),
        epoch: git(&["log", "-1", "--format=%ct"]).unwrap_or_else(|_| "0".into()),
    })
}

/// The cargo profile of what ships (Cargo.toml: release with LTO).
pub const PROFILE: &str = "ship";

/// `cargo build --profile ship --target TARGET` with the stamp netmem's
/// build.rs puts in `--version`. vm-test builds its guest runner with this
/// too (in a cargo run of its own: built together, the test crate's
/// dependency features would change the shipped binary).
pub fn release_build(target: &str, args: &[&str]) -> Result<Command> {
    let s = stamp()?;
    let mut c = cargo(&["build", "--profile", PROFILE, "--target", target]);
    c.args(args)
        .env("NETMEM_GIT_COMMIT", &s.commit)
        .env("SOURCE_DATE_EPOCH", &s.epoch);
    Ok(c)
}

/// Builds, strips and checks one static binary; returns where it is.
fn static_binary(target: &str, name: &str, strip: &str) -> Result<PathBuf> {
    sh(Command::new("rustup").args(["target", "add", target]))?;
    let mut c = release_build(target, &["-p", "netmem", "--bin", "netmem"])?;
    cross(&mut c, target);
    sh(&mut c)?;
    let built = target_dir().join(target).join(PROFILE).join("netmem");
    let out = dist_dir().join(name);
    std::fs::copy(&built, &out).with_context(|| format!("copy {}", built.display()))?;
    sh(Command::new(strip).arg("--strip-all").arg(&out))?;
    let size = std::fs::metadata(&out)?.len();
    eprintln!(
        "xtask: {} is {:.2} MB (stripped)",
        out.display(),
        size as f64 / 1e6
    );
    if size >= SIZE_BUDGET {
        bail!(
            "{} is {size} bytes, over its 10 MiB budget (BENCHMARKS.md says what takes the room)",
            out.display()
        );
    }
    Ok(out)
}

/// The shipped x86_64 binary, built if needed (vm-test boots it).
pub fn x86_64_binary() -> Result<PathBuf> {
    std::fs::create_dir_all(dist_dir())?;
    static_binary(X86_64, "netmem-x86_64-linux-musl", "strip")
}

/// For a foreign `target`, the tools of Debian's cross toolchain: its gcc
/// links (Rust brings musl's own crt and libc) and compiles the C in zstd
/// and ring, against libc6-dev-arm64-cross's headers (that C uses only
/// the integer types and memory functions glibc and musl agree on, and a
/// symbol musl lacked would fail the static link). Nothing for the host's.
pub fn cross(c: &mut Command, target: &str) {
    if target == AARCH64 {
        c.env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc")
        .env("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar");
    }
}

/// The aarch64 binary (the arm64 guest boots it). The eBPF object is
/// rebuilt for it: netmem's build.rs passes the target's architecture to
/// the kernel programs as aya-ebpf's `bpf_target_arch` (pt_regs differ).
pub fn aarch64_binary() -> Result<PathBuf> {
    std::fs::create_dir_all(dist_dir())?;
    static_binary(
        AARCH64,
        "netmem-aarch64-linux-musl",
        "aarch64-linux-gnu-strip",
    )
}

pub struct Options {
    /// Also cross-build the aarch64 binary.
    pub aarch64: bool,
}

pub fn dist(opts: &Options) -> Result<()> {
    let dir = dist_dir();
    std::fs::create_dir_all(&dir)?;
    let v = version()?;
    let bin = x86_64_binary()?;
    if opts.aarch64 {
        aarch64_binary()?;
    }
    // Man pages and completions carry the shipped binary's own version line.
    let long = output(Command::new(&bin).arg("--version"))?;
    let long = long.trim().strip_prefix("netmem ").unwrap_or(long.trim());
    for d in ["man", "completions"] {
        let _ = std::fs::remove_dir_all(dir.join(d));
    }
    sh(cargo(&[
        "run",
        "-q",
        "-p",
        "netmem-tests",
        "--bin",
        "netmem-docs",
        "--",
    ])
    .arg(&dir)
    .arg(long))?;
    let deb = crate::deb::build(&bin, &v, &dist_dir())?;
    crate::deb::lintian(&deb)?;
    oci(&bin, &v)?;
    eprintln!("xtask: dist: everything is in {}", dir.display());
    Ok(())
}

/// An OCI image archive: one layer with the static binary at /netmem,
/// entrypoint netmem, labelled with version and commit. umoci writes the
/// layout (no daemon, no registry); the archive is that layout as a tar,
/// which `skopeo copy oci-archive:...` and `podman load` read.
fn oci(bin: &Path, v: &str) -> Result<PathBuf> {
    let s = stamp()?;
    let work = target_dir().join("dist-oci");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let layout = work.join("layout");
    let image = format!("{}:{v}", layout.display());
    let bundle = work.join("bundle");
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout))?;
    sh(Command::new("umoci").args(["new", "--image", &image]))?;
    sh(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle))?;
    let dest = bundle.join("rootfs/netmem");
    std::fs::copy(bin, &dest)?;
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))?;
    sh(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle))?;
    let created = format!("@{}", s.epoch);
    let date = output(Command::new("date").args(["-u", "-d", &created, "+%Y-%m-%dT%H:%M:%SZ"]))?;
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--created",
        date.trim(),
        "--config.entrypoint",
        "/netmem",
        "--config.cmd",
        "serve",
        "--config.cmd",
        "--listen",
        "--config.cmd",
        ":10077",
        "--config.label",
        &format!("org.opencontainers.image.version={v}"),
        "--config.label",
        &format!("org.opencontainers.image.revision={}", s.commit),
        "--config.label",
        "org.opencontainers.image.title=netmem",
        "--config.label",
        "org.opencontainers.image.licenses=MIT OR Apache-2.0",
    ]))?;
    sh(Command::new("umoci").args(["gc", "--layout"]).arg(&layout))?;
    let tar = dist_dir().join(format!("netmem-{v}-oci.tar"));
    sh(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    Ok(tar)
}
