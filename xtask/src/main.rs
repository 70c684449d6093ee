//! Project tasks: `setup` bootstraps the eBPF toolchain on a fresh machine,
//! `run` sets up and runs netmem, `test` sets up the test stack too and runs
//! every test. Running netmem never installs what only the tests use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

mod deb;
mod dist;
mod vm;

/// bpf-linker release whose LLVM matches the nightly's (see shared toolchain notes).
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and running netmem needs (idempotent): a C
    /// toolchain, the nightly's rust-src, bpf-linker.
    Setup {
        /// Also install what the tests and developer tasks run (HAProxy,
        /// QEMU, Prometheus, Chromium, bpftrace, tmux...), as `test` does.
        #[arg(long)]
        test: bool,
    },
    /// Setup, build, then run netmem with these arguments (default: trace).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup with the test stack, build what `dist` ships (x86_64), then
    /// run the unit and integration tests (as root, the install tests on
    /// those artifacts), a 2-minute soak, then the scenarios on every
    /// Debian kernel in QEMU (`vm-test --kernel all`).
    Test {
        /// Skip the QEMU guests (host tests only).
        #[arg(long)]
        no_vm: bool,
    },
    /// Build, then start the HAProxy rig (HAProxy, two backends, normal,
    /// slow and vanishing clients, each side in its own namespace) until
    /// Ctrl-C. Arguments go to netmem-rig (`--help`); `--trace` runs
    /// `netmem trace` against it.
    Rig {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, then measure netmem against bpftrace and ss (needs root,
    /// haproxy and bpftrace; see BENCHMARKS.md). Arguments go to
    /// netmem-bench: `--reps N --secs S --levels 10000,50000,100000 --quick`,
    /// `--check` (fail when a figure is 20% worse than BENCHMARKS.md's
    /// baseline), or only some of `overhead snapshot pipeline scrape report
    /// top time-wait namespaces`.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, then run `netmem trace` under connection churn across
    /// thousands of ports and backends for N minutes, reporting RSS (at
    /// rest and at its peak within an interval) and CPU every 10 s; fails
    /// on resting RSS growth over 10% after warm-up or a new group not
    /// counted. `cargo xtask test` runs 2 minutes of it.
    Soak {
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Run every fuzz target (tests/fuzz, cargo-fuzz on nightly) for SECS
    /// seconds each, from and into the corpora kept in the repository.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
    /// Build what an operator installs into target/dist/: static musl
    /// binaries (x86_64, aarch64), man pages, completions, the .deb
    /// (checked by lintian) and an OCI image archive.
    Dist {
        /// Skip the aarch64 cross build.
        #[arg(long)]
        no_aarch64: bool,
    },
    /// Boot Debian's 5.10, 6.1 and 6.12 cloud kernels in QEMU and run the
    /// hook scenarios in each, with the guest's own sysctls.
    VmTest {
        #[arg(long, default_value = "all", value_name = "5.10|6.1|6.12|all")]
        kernel: String,
        /// The guests' architecture. arm64 boots Debian's cloud-arm64
        /// kernel in qemu-system-aarch64 (TCG) with the aarch64 binary
        /// `dist` ships, and skips the routes scenario.
        #[arg(long, default_value = "amd64", value_name = "amd64|arm64")]
        arch: String,
        /// Comma-separated tiers to run the scenarios on (each caps --max-tier).
        #[arg(long, default_value = "fentry,kprobe,nobtf")]
        tiers: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Setup { test: false } => setup(),
        Cmd::Setup { test: true } => setup_test(),
        Cmd::Run { args } => setup().and_then(|_| run(args)),
        // dist first: the install tests install what it ships.
        Cmd::Test { no_vm } => setup_test()
            .and_then(|_| dist::dist(&dist::Options { aarch64: false }))
            .and_then(|_| test())
            .and_then(|_| tool("netmem-soak", vec!["--minutes".into(), "2".into()]))
            .and_then(|_| {
                if no_vm {
                    Ok(())
                } else {
                    vm::vm_test("all", "fentry,kprobe,nobtf")
                }
            }),
        Cmd::Soak { minutes } => setup_test()
            .and_then(|_| tool("netmem-soak", vec!["--minutes".into(), minutes.to_string()])),
        // cargo-fuzz needs only the nightly and a C++ compiler.
        Cmd::Fuzz { secs, targets } => setup().and_then(|_| fuzz(secs, targets)),
        Cmd::Rig { args } => setup_test().and_then(|_| tool("netmem-rig", args)),
        Cmd::Bench { args } => setup_test().and_then(|_| tool("netmem-bench", args)),
        Cmd::Dist { no_aarch64 } => setup_test().and_then(|_| {
            dist::dist(&dist::Options {
                aarch64: !no_aarch64,
            })
        }),
        Cmd::VmTest {
            kernel,
            arch,
            tiers,
        } => setup_test().and_then(|_| {
            let arch = vm::ARCHES
                .iter()
                .find(|a| a.debian == arch)
                .ok_or_else(|| anyhow!("unknown arch {arch}: choose amd64 or arm64"))?;
            // The test stack has amd64's QEMU; another's only when asked.
            setup_system_packages("guest", &[arch.qemu_package])?;
            vm::vm_test_arch(*arch, &kernel, &tiers)
        }),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where cargo puts what it builds: CARGO_TARGET_DIR when set, as cargo
/// itself does.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub(crate) fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !o.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Debian packages building and running netmem need: a C toolchain
/// (bpf-linker's build links with it, zstd-sys compiles zstd's C library,
/// libfuzzer-sys its C++). Nothing else: netmem itself runs no program.
const BUILD_PACKAGES: &[&str] = &["build-essential"];

/// Debian packages only the tests and developer tasks run, installed by
/// `test`, `setup --test` and the tasks, never by `run`: iproute2 (ip
/// netns, ss), util-linux (setpriv, mount), haproxy (the rig and its test),
/// qemu-system-x86,
/// cpio, xz-utils and zstd (the QEMU guests of vm-test: initramfs and
/// compressed modules), bpftrace (the bench's peer arm).
const SYSTEM_PACKAGES: &[&str] = &[
    "iproute2",
    "util-linux",
    "haproxy",
    // nginx: its test runs Debian's binary in a namespace with its own
    // prefix; the package's own service is not needed (or touched).
    "nginx",
    "qemu-system-x86",
    "cpio",
    "xz-utils",
    "zstd",
    "bpftrace",
    // prometheus and promtool: netmem serve's tests scrape it with a real
    // server and check its exposition and alert rules.
    "prometheus",
    // netmem report's test renders reports in headless Chromium.
    "chromium",
    // The guests' static (musl) binaries compile zstd's C library.
    "musl-tools",
    // netmem top's test drives it in a real terminal.
    "tmux",
];

/// Installs the missing ones of `packages` with apt (update first). Says
/// what to do by hand where that cannot work (not root, not Debian).
fn setup_system_packages(what: &str, packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .chain(dist::PACKAGES)
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_ok_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {what} packages present");
        return Ok(());
    }
    if which("apt-get").is_none() {
        bail!(
            "not a Debian-like system (no apt-get): install the equivalents of {} by hand, then rerun",
            missing.join(" ")
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing packages {}: rerun as root, or `sudo apt-get install {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    sh(Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("apt-get update failed")?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("apt-get install {} failed", missing.join(" ")))
}

/// What `test` and the developer tasks need: [`setup`], then the test
/// stack's packages.
fn setup_test() -> Result<()> {
    setup()?;
    setup_system_packages("test", SYSTEM_PACKAGES)
}

/// What building and running netmem need, and nothing the tests use.
fn setup() -> Result<()> {
    setup_system_packages("build", BUILD_PACKAGES)?;
    // Nightly with rust-src: the eBPF crate is built with -Z build-std=core.
    // An installed nightly is kept as it is (no silent update): bpf-linker
    // is built against whichever LLVM it ships.
    if output(Command::new("rustc").args(["+nightly", "-V"])).is_err() {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))
        .context("rustup could not install a nightly toolchain")?;
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
        .context("rustup could not add rust-src to the nightly toolchain")?;
    setup_bpf_linker()?;
    mount_tracefs();
    Ok(())
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// bpf-linker links LLVM dynamically and must use the LLVM of the rustc that
/// emits the bitcode: build it against the nightly's own libLLVM, which
/// needs no LLVM download. The symlinks live in a directory netmem owns
/// because the linker's rpath points there.
fn setup_bpf_linker() -> Result<()> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .ok_or_else(|| anyhow!("`rustc +nightly -vV` reports no LLVM version"))?;
    let major = llvm.split('.').next().unwrap_or_default().to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    // The real library, not the small `INPUT(...)` linker script beside it.
    let so = std::fs::read_dir(&lib)?
        .filter_map(|e| e.ok())
        .filter(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM"))
        .ok_or_else(|| {
            anyhow!(
                "no libLLVM shared library in {}: the nightly toolchain is incomplete",
                lib.display()
            )
        })?;
    let home = std::env::var("HOME").context("HOME is not set")?;
    let prefix = Path::new(&home).join(".cache/netmem/llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    for name in ["libLLVM.so", so.as_str()] {
        let link = prefix.join("lib").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&so), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    let marker = prefix.join(format!("bpf-linker-{BPF_LINKER_VERSION}-llvm-{llvm}"));
    let working = output(Command::new("bpf-linker").arg("--version"))
        .map(|v| v.contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if working && marker.exists() {
        eprintln!("xtask: bpf-linker {BPF_LINKER_VERSION} (LLVM {llvm}) already set up");
        return Ok(());
    }
    sh(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))
    .context("could not build bpf-linker against the nightly's LLVM")?;
    std::fs::write(&marker, b"")?;
    Ok(())
}

/// Classic tracepoints need tracefs; netmem's raw tracepoints do not, so a
/// failure here is only reported.
fn mount_tracefs() {
    if Path::new("/sys/kernel/tracing/events").exists() {
        return;
    }
    match Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
    {
        Ok(s) if s.success() => eprintln!("xtask: mounted tracefs on /sys/kernel/tracing"),
        _ => eprintln!("xtask: note: could not mount tracefs (not needed for raw tracepoints)"),
    }
}

pub(crate) fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args).current_dir(workspace_root());
    c
}

fn run(args: Vec<String>) -> Result<()> {
    sh(&mut cargo(&["build", "--release", "-p", "netmem"]))?;
    let bin = target_dir().join("release/netmem");
    let args = if args.is_empty() {
        vec!["trace".to_string()]
    } else {
        args
    };
    sh(Command::new(bin).args(args))
}

/// Builds netmem and the test tools in release mode and runs one of them.
fn tool(name: &str, args: Vec<String>) -> Result<()> {
    mount_tracefs();
    sh(&mut cargo(&[
        "build",
        "--release",
        "-p",
        "netmem",
        "-p",
        "netmem-tests",
        "--bins",
    ]))?;
    sh(Command::new(target_dir().join("release").join(name)).args(args))
}

/// cargo-fuzz on the nightly toolchain, each target for `secs` seconds
/// from its corpus (which it grows); a crash stops with the input's path.
fn fuzz(secs: u64, only: Vec<String>) -> Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_err() {
        sh(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
            .context("cannot install cargo-fuzz")?;
    }
    let dir = workspace_root().join("tests/fuzz");
    let list = output(
        Command::new("cargo")
            .args(["+nightly", "fuzz", "list", "--fuzz-dir"])
            .arg(&dir)
            .current_dir(&dir),
    )?;
    let targets: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && (only.is_empty() || only.iter().any(|o| o == t)))
        .collect();
    if targets.is_empty() {
        bail!("no such fuzz target; `cargo +nightly fuzz list --fuzz-dir tests/fuzz` lists them");
    }
    for t in targets {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        sh(Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
            .arg(&dir)
            .arg(t)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-max_len=4096")
            .current_dir(&dir))
        .with_context(|| {
            format!(
                "fuzz target {t} crashed: the input is under tests/fuzz/artifacts/{t}/; move it to tests/fuzz/regressions/{t}/ once fixed"
            )
        })?;
    }
    Ok(())
}

fn test() -> Result<()> {
    // Build every binary the integration tests start, then test the default
    // members (everything but the BPF-only crate, which build.rs compiles).
    sh(&mut cargo(&["build", "--bins"]))?;
    let mut c = cargo(&["test", "--", "--test-threads=2"]);
    eprintln!("xtask: {c:?}");
    let out = c
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start cargo test")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    // One closing line over every test binary, so the total is not hidden
    // behind the last binary's (often empty) doc-test run.
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in text.lines().filter(|l| l.starts_with("test result:")) {
        let num = |word: &str| {
            line.split(';')
                .find(|p| p.trim_end().ends_with(word))
                .and_then(|p| p.split_whitespace().rev().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        passed += num("passed");
        failed += num("failed");
    }
    println!("\ntests: {passed} passed, {failed} failed");
    if !out.status.success() || failed > 0 || passed == 0 {
        bail!("tests failed");
    }
    Ok(())
}
