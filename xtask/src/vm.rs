//! `cargo xtask vm-test`: boots Debian's own cloud kernels in QEMU (TCG:
//! nested KVM hangs on this machine kind) with an initramfs holding the
//! very binary `cargo xtask dist` ships (target/dist/), the scenario runner
//! as /init, `ip`, and veth.ko, and reports every scenario per kernel and
//! tier.
//!
//! `--arch arm64` boots Debian's cloud-arm64 kernels the same way in
//! qemu-system-aarch64 (`-M virt -cpu max`, TCG) with the aarch64 binary
//! `dist` ships, the runner cross-built beside it, and busybox-static's
//! `ip` from the same release (the host's `ip` is an amd64 binary).
//!
//! Kernel packages come through a private apt configuration under
//! ~/.cache/netmem/vm (the machine's own apt state is never touched) and stay
//! cached there. The archive address is the one the machine's apt sources
//! already use for Debian (a local mirror works the same), or
//! NETMEM_DEBIAN_MIRROR.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{cargo, dist, output, sh};

/// Debian release per kernel line: bullseye 5.10, bookworm 6.1, trixie 6.12.
pub const KERNELS: &[(&str, &str)] = &[
    ("5.10", "bullseye"),
    ("6.1", "bookworm"),
    ("6.12", "trixie"),
];

/// A guest architecture: Debian's name for it (the kernel flavour and the
/// packages' architecture), the static target its binaries are built for,
/// and the QEMU that boots it, under TCG either way (nested KVM hangs on
/// this machine kind; arm64 is emulated anyway).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub debian: &'static str,
    target: &'static str,
    qemu: &'static str,
    pub qemu_package: &'static str,
    machine: &'static [&'static str],
    console: &'static str,
    /// How many times slower than an amd64 guest it runs (the scenarios'
    /// waits for netmem to come up scale with it).
    slowdown: u32,
}

pub const AMD64: Arch = Arch {
    debian: "amd64",
    target: dist::X86_64,
    qemu: "qemu-system-x86_64",
    qemu_package: "qemu-system-x86",
    machine: &[],
    console: "ttyS0",
    slowdown: 1,
};

/// `-M virt -cpu max`: QEMU's generic board with the newest CPU TCG
/// emulates; its PL011 serial port is the console, ttyAMA0.
pub const ARM64: Arch = Arch {
    debian: "arm64",
    target: dist::AARCH64,
    qemu: "qemu-system-aarch64",
    qemu_package: "qemu-system-arm",
    machine: &["-M", "virt", "-cpu", "max"],
    console: "ttyAMA0",
    // Emulating another instruction set: a tier of scenarios took about
    // 8x amd64's (3.5 minutes), and serve's 30 s start wait ran out.
    slowdown: 4,
};

pub const ARCHES: &[Arch] = &[AMD64, ARM64];

/// The scenarios an arm64 guest runs: all but `routes`, whose router
/// topology needs iproute2's `ip netns` (busybox's `ip` has none, and
/// iproute2 for arm64 would need its dozen shared libraries).
const ARM64_SCENARIOS: &str = "snapshot,orphans,tcp_mem,owners,no_btf";
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let d = Path::new(&home).join(".cache/netmem/vm");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The private apt directory for `arch`'s packages (amd64's keeps its
/// first name, so existing caches stay valid).
fn apt_dir(cache: &Path, arch: Arch) -> PathBuf {
    if arch == AMD64 {
        cache.join("apt")
    } else {
        cache.join(format!("apt-{}", arch.debian))
    }
}

/// apt options that point every path at netmem's own directory, for
/// `arch`'s packages (another architecture's are only downloaded and
/// unpacked, never installed).
fn apt_opts(dir: &Path, arch: Arch) -> Vec<String> {
    let p = |s: &str| dir.join(s).display().to_string();
    vec![
        format!("-oAPT::Architecture={}", arch.debian),
        format!("-oAPT::Architectures={}", arch.debian),
        format!("-oDir::Etc::SourceList={}", p("sources.list")),
        "-oDir::Etc::SourceParts=/nonexistent".into(),
        format!("-oDir::State::Lists={}", p("lists")),
        format!("-oDir::Cache={}", p("cache")),
        "-oDir::State::status=/var/lib/dpkg/status".into(),
        // The private directories belong to root, not to _apt.
        "-oAPT::Sandbox::User=root".into(),
        "-qq".into(),
    ]
}

/// The Debian archive (not its security archive) the machine's apt sources
/// name, in one-line (`deb URI SUITE COMPONENTS`) or deb822 (`URIs:`,
/// `Suites:`) form: the first entry whose suites include a bare release name.
pub fn debian_archive(sources: &[String]) -> Option<String> {
    // Debian's own suite names: other vendors' repositories (a nodistro,
    // a cloud-sdk-bookworm) are not Debian's archive.
    const DEBIAN_SUITES: &[&str] = &[
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    ];
    let release = |suite: &str| DEBIAN_SUITES.contains(&suite);
    for text in sources {
        for line in text.lines().map(str::trim) {
            let mut w = line.split_whitespace();
            if w.next() != Some("deb") {
                continue;
            }
            let mut rest: Vec<&str> = w.collect();
            if rest.first().is_some_and(|o| o.starts_with('[')) {
                let end = rest.iter().position(|o| o.ends_with(']')).unwrap_or(0);
                rest.drain(..=end);
            }
            if let [uri, suite, ..] = rest[..] {
                if release(suite) && !uri.contains("security") {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
                continue;
            };
            if field("Types:").is_some_and(|t| !t.split_whitespace().any(|x| x == "deb")) {
                continue;
            }
            if suites.split_whitespace().any(release) {
                if let Some(uri) = uris.split_whitespace().find(|u| !u.contains("security")) {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    None
}

fn machine_archive() -> Result<String> {
    if let Ok(m) = std::env::var("NETMEM_DEBIAN_MIRROR") {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let mut texts = Vec::new();
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let ext = p.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("list") | Some("sources")) {
                texts.extend(std::fs::read_to_string(&p).ok());
            }
        }
    }
    debian_archive(&texts).ok_or_else(|| {
        anyhow!(
            "no Debian archive found in /etc/apt/sources.list(.d): set NETMEM_DEBIAN_MIRROR to a Debian mirror's URL (the one that serves dists/bookworm)"
        )
    })
}

fn apt_update(dir: &Path, arch: Arch) -> Result<()> {
    std::fs::create_dir_all(dir.join("lists/partial"))?;
    std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let archive = machine_archive()?;
    let sources: String = KERNELS
        .iter()
        .map(|(_, rel)| format!("deb {archive} {rel} main\n"))
        .collect();
    std::fs::write(dir.join("sources.list"), sources)?;
    let fresh = std::fs::read_dir(dir.join("lists"))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("Packages"));
    if !fresh {
        sh(Command::new("apt-get")
            .args(apt_opts(dir, arch))
            .arg("update"))
        .context("private apt update of Debian's kernel lists failed")?;
    }
    Ok(())
}

/// What a booted kernel needs from its package.
struct KernelFiles {
    package: String,
    vmlinuz: PathBuf,
    /// Uncompressed modules, in load order.
    modules: Vec<PathBuf>,
    /// A static `ip` of the guest's architecture where the host's cannot
    /// run there (busybox, called as `ip`).
    ip: Option<PathBuf>,
}

/// Modules the guest loads itself (it has no modprobe to autoload them):
/// veth for the router topology, and sock_diag's TCP backend.
const MODULES: &[&str] = &["veth", "inet_diag", "tcp_diag"];

fn fetch_kernel(cache: &Path, release: &str, arch: Arch) -> Result<KernelFiles> {
    let apt = apt_dir(cache, arch);
    apt_update(&apt, arch)?;
    let meta = format!("linux-image-cloud-{}", arch.debian);
    let show = output(
        Command::new("apt-cache")
            .args(apt_opts(&apt, arch))
            .args(["show", &format!("{meta}/{release}")]),
    )?;
    let package = show
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .and_then(|d| d.split([' ', ',']).next())
        .ok_or_else(|| anyhow!("{meta}/{release} names no kernel package"))?
        .to_string();
    let x = unpacked(cache, release, arch, &package)?;
    let vmlinuz = std::fs::read_dir(x.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz")
        })
        .ok_or_else(|| anyhow!("{package} has no boot/vmlinuz"))?;
    let mut modules = Vec::new();
    for m in MODULES {
        let found = find_file(&x, &format!("{m}.ko"))
            .ok_or_else(|| anyhow!("{package} has no {m} module"))?;
        // Debian compresses modules on newer releases; the guest loads them raw.
        let plain = cache.join(format!("{package}-{m}.ko"));
        if !plain.exists() {
            let name = found.to_string_lossy().to_string();
            let tool = if name.ends_with(".xz") {
                Some("xz")
            } else if name.ends_with(".zst") {
                Some("zstd")
            } else {
                None
            };
            match tool {
                Some(t) => {
                    let o = Command::new(t).args(["-dc"]).arg(&found).output()?;
                    if !o.status.success() {
                        bail!("{t} could not decompress {}", found.display());
                    }
                    std::fs::write(&plain, o.stdout)?;
                }
                None => {
                    std::fs::copy(&found, &plain)?;
                }
            }
        }
        modules.push(plain);
    }
    // Static, so any release's serves every kernel: cached once per arch.
    let ip = if arch == AMD64 {
        None
    } else {
        let bb = unpacked(cache, release, arch, "busybox-static")?.join("bin/busybox");
        if !bb.exists() {
            bail!("busybox-static ({}) has no bin/busybox", arch.debian);
        }
        Some(bb)
    };
    Ok(KernelFiles {
        package,
        vmlinuz,
        modules,
        ip,
    })
}

/// `package` for `arch` (from `release` when not cached yet), downloaded
/// once through the private apt and unpacked once with `dpkg -x`; returns
/// where it is unpacked.
fn unpacked(cache: &Path, release: &str, arch: Arch, package: &str) -> Result<PathBuf> {
    let apt = apt_dir(cache, arch);
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs)?;
    let have = |debs: &Path| -> Option<PathBuf> {
        std::fs::read_dir(debs)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{package}_"))
                        && n.ends_with(&format!("_{}.deb", arch.debian))
                })
            })
    };
    let deb = match have(&debs) {
        Some(d) => d,
        None => {
            sh(Command::new("apt-get")
                .args(apt_opts(&apt, arch))
                .args(["download", &format!("{package}/{release}")])
                .current_dir(&debs))?;
            have(&debs).ok_or_else(|| anyhow!("apt-get download left no {package} .deb"))?
        }
    };
    // Kernel packages name their flavour; others take the architecture's.
    let dir = if package.ends_with(arch.debian) {
        package.to_string()
    } else {
        format!("{package}-{}", arch.debian)
    };
    let x = cache.join("x").join(dir);
    if !x.exists() {
        std::fs::create_dir_all(&x)?;
        sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&x))?;
    }
    Ok(x)
}

fn find_file(dir: &Path, prefix: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, prefix) {
                return Some(f);
            }
        } else if p
            .file_name()?
            .to_str()?
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        {
            return Some(p);
        }
    }
    None
}

/// Copies `bin` and every shared library `ldd` lists into `root`, at the
/// same paths, so a Debian binary runs in the initramfs unchanged.
fn copy_with_libs(bin: &Path, root: &Path, dest: &str) -> Result<()> {
    let put = |src: &Path, at: &Path| -> Result<()> {
        std::fs::create_dir_all(at.parent().unwrap())?;
        std::fs::copy(src, at).with_context(|| format!("copy {}", src.display()))?;
        Ok(())
    };
    put(bin, &root.join(dest.trim_start_matches('/')))?;
    let ldd = output(Command::new("ldd").arg(bin))?;
    for line in ldd.lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            put(Path::new(p), &root.join(p.trim_start_matches('/')))?;
        }
    }
    Ok(())
}

/// What the guests run: netmem as shipped, and the scenario runner.
struct Bins {
    /// target/dist/netmem-x86_64-linux-musl, built and stripped by `dist`.
    netmem: PathBuf,
    /// /init: a static build of its own, with the shipped binary's profile
    /// and stamp (and its dependencies' features, so netmem is compiled
    /// again for it).
    guest: PathBuf,
    /// The netmem the host runs (`report` of the guests' recordings).
    host_netmem: PathBuf,
}

fn build_static() -> Result<Bins> {
    let netmem = dist::x86_64_binary()?;
    sh(&mut dist::release_build(
        dist::X86_64,
        &["-p", "netmem-tests", "--bin", "netmem-guest"],
    )?)?;
    let guest = crate::target_dir()
        .join(dist::X86_64)
        .join(dist::PROFILE)
        .join("netmem-guest");
    Ok(Bins {
        host_netmem: netmem.clone(),
        netmem,
        guest,
    })
}

fn build(arch: Arch) -> Result<Bins> {
    if arch == AMD64 {
        return build_static();
    }
    // The binary `dist` ships, and the runner built with the same stamp
    // and cross toolchain, so the two share one build of the library.
    let netmem = dist::aarch64_binary()?;
    let mut c = dist::release_build(
        arch.target,
        &["-p", "netmem-tests", "--bin", "netmem-guest"],
    )?;
    dist::cross(&mut c, arch.target);
    sh(&mut c)?;
    sh(&mut cargo(&[
        "build",
        "--release",
        "-p",
        "netmem",
        "--bin",
        "netmem",
    ]))?;
    Ok(Bins {
        netmem,
        guest: crate::target_dir()
            .join(arch.target)
            .join(dist::PROFILE)
            .join("netmem-guest"),
        host_netmem: crate::target_dir().join("release/netmem"),
    })
}

fn initramfs(work: &Path, bins: &Bins, k: &KernelFiles) -> Result<PathBuf> {
    let root = work.join(format!("root-{}", k.package));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "lib/modules", "proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(&bins.guest, root.join("init"))?;
    std::fs::copy(&bins.netmem, root.join("bin/netmem"))?;
    match &k.ip {
        // busybox runs as the applet its name says.
        Some(ip) => {
            std::fs::copy(ip, root.join("bin/ip"))?;
        }
        None => {
            let ip =
                crate::which("ip").ok_or_else(|| anyhow!("`ip` not found: install iproute2"))?;
            copy_with_libs(&ip, &root, "/bin/ip")?;
            // The seed scenario's proxy: Debian's HAProxy as the host has
            // it (the same architecture), with its libraries.
            let haproxy = crate::which("haproxy")
                .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
                .ok_or_else(|| anyhow!("haproxy not found: `cargo xtask setup` installs it"))?;
            copy_with_libs(&haproxy, &root, "/usr/sbin/haproxy")?;
        }
    }
    let mut order = String::new();
    for (m, path) in MODULES.iter().zip(&k.modules) {
        std::fs::copy(path, root.join(format!("lib/modules/{m}.ko")))?;
        order += &format!("/lib/modules/{m}.ko\n");
    }
    std::fs::write(root.join("lib/modules/order"), order)?;
    let img = work.join(format!("initrd-{}.gz", k.package));
    let script = format!(
        "cd '{}' && find . | cpio --quiet -o -H newc | gzip -1 > '{}'",
        root.display(),
        img.display()
    );
    sh(Command::new("sh").args(["-c", &script]))?;
    Ok(img)
}

/// One guest's console, reduced to what netmem's runner printed.
struct GuestRun {
    probes: Vec<String>,
    /// (scenario-tier, zstd recording) of the scenarios that abort.
    recordings: Vec<(String, Vec<u8>)>,
    results: Vec<serde_json::Value>,
    done: bool,
    tail: Vec<String>,
    seconds: f64,
}

/// The scenarios a guest is asked to run: NETMEM_VM_SCENARIOS (for
/// iterating on one: NETMEM_VM_SCENARIOS=orphans,routes), else arm64's
/// list, else every one (but the seed: a guest of its own).
fn scenarios_asked(arch: Arch) -> Option<String> {
    std::env::var("NETMEM_VM_SCENARIOS")
        .ok()
        .or_else(|| (arch == ARM64).then(|| ARM64_SCENARIOS.to_string()))
}

/// How a guest is booted: its memory (MiB) and the scenarios it runs.
struct Guest {
    mem: &'static str,
    only: Option<String>,
}

/// The guest every scenario but the seed runs in.
const MEM: &str = "1536";
/// The seed's guest: little memory, so the kernel's own tcp_mem and
/// tcp_max_orphans are small (a 384 MB VM, as proxies run on).
const SEED_MEM: &str = "384";

fn boot(
    k: &KernelFiles,
    initrd: &Path,
    tiers: &str,
    arch: Arch,
    guest: &Guest,
) -> Result<GuestRun> {
    let mut append = format!(
        "console={} panic=-1 quiet loglevel=4 netmem.tiers={tiers}",
        arch.console
    );
    if let Some(only) = &guest.only {
        append += &format!(" netmem.scenarios={only}");
    }
    if arch.slowdown > 1 {
        append += &format!(" netmem.slowdown={}", arch.slowdown);
    }
    let mut child = Command::new(arch.qemu)
        .args(arch.machine)
        .args([
            "-accel", "tcg", "-m", guest.mem, "-smp", "2", "-display", "none",
        ])
        .args(["-serial", "stdio", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (apt-get install {})",
                arch.qemu, arch.qemu_package
            )
        })?;
    let t0 = Instant::now();
    let out = child.stdout.take().expect("piped");
    let pid = child.id();
    // A hung guest is killed, and reported as such, after BOOT_TIMEOUT.
    let watchdog = std::thread::spawn(move || {
        while t0.elapsed() < BOOT_TIMEOUT {
            std::thread::sleep(Duration::from_millis(500));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
        }
        // SAFETY: kill of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let mut run = GuestRun {
        probes: vec![],
        recordings: vec![],
        results: vec![],
        done: false,
        tail: vec![],
        seconds: 0.0,
    };
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        let line = line.trim_end_matches('\r').to_string();
        if let Some(p) = line.strip_prefix("NETMEM-PROBES ") {
            run.probes.push(p.to_string());
        } else if let Some(r) = line.strip_prefix("NETMEM-RECORDING ") {
            if let Some((name, hex)) = r.split_once(' ') {
                let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect();
                match bytes {
                    Some(b) => run.recordings.push((name.to_string(), b)),
                    None => run.tail.push(format!("bad recording line for {name}")),
                }
            }
        } else if let Some(r) = line.strip_prefix("NETMEM-RESULT ") {
            let v: serde_json::Value =
                serde_json::from_str(r).map_err(|e| anyhow!("bad result line ({e}): {r}"))?;
            eprintln!(
                "xtask: [{}] {} {}: {} ({}s)",
                v["kernel"].as_str().unwrap_or("?"),
                v["tier"].as_str().unwrap_or("?"),
                v["scenario"].as_str().unwrap_or("?"),
                if v["ok"] == true { "ok" } else { "FAILED" },
                v["seconds"]
            );
            run.results.push(v);
        } else if line == "NETMEM-DONE" {
            run.done = true;
        } else {
            run.tail.push(line);
            if run.tail.len() > 40 {
                run.tail.remove(0);
            }
        }
    }
    let _ = child.wait();
    let _ = watchdog.join();
    run.seconds = t0.elapsed().as_secs_f64();
    Ok(run)
}

/// Saves a guest scenario's recording and reports it with `netmem
/// report`: the aborts it saw must be in the report's abort table with
/// their cause.
fn report_recording(netmem: &Path, work: &Path, version: &str, name: &str, z: &[u8]) -> Result<()> {
    let rec = work.join(format!("recording-{version}-{name}.nmr"));
    let html = work.join(format!("report-{version}-{name}.html"));
    std::fs::write(&rec, z)?;
    let o = Command::new(netmem)
        .arg("report")
        .arg(&rec)
        .arg("-o")
        .arg(&html)
        // The work directory is kept between runs.
        .arg("--force")
        .output()
        .context("cannot run netmem report")?;
    if !o.status.success() {
        bail!("{}", String::from_utf8_lossy(&o.stderr).trim());
    }
    let page = std::fs::read_to_string(&html)?;
    // orphans-TIER, tcp_mem-TIER, seed-orphans-TIER, seed-tcp_mem-TIER.
    let cause = if name.contains("orphans") {
        "orphans"
    } else {
        "tcp_mem"
    };
    if !page.contains(&format!("<b>{cause}</b>")) || !page.contains("abort on memory") {
        bail!("{} has no abort with cause {cause}", html.display());
    }
    eprintln!(
        "xtask: {version} {name}: {} reports its aborts ({})",
        rec.display(),
        html.display()
    );
    Ok(())
}

/// amd64's guests, as `cargo xtask test` runs them.
pub fn vm_test(which: &str, tiers: &str) -> Result<()> {
    vm_test_arch(AMD64, which, tiers)
}

pub fn vm_test_arch(arch: Arch, which: &str, tiers: &str) -> Result<()> {
    let selected: Vec<(&str, &str)> = match which {
        "all" => KERNELS.to_vec(),
        k => KERNELS.iter().copied().filter(|(v, _)| *v == k).collect(),
    };
    if selected.is_empty() {
        bail!(
            "unknown kernel {which}: choose one of {} or all",
            KERNELS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
        );
    }
    let cache = cache_dir()?;
    let bins = build(arch)?;
    let work = crate::target_dir().join("vm-test");
    std::fs::create_dir_all(&work)?;
    let mut failed = Vec::new();
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut served: Vec<String> = Vec::new();
    for (kernel, release) in selected {
        // amd64's keep their bare kernel version in names and the table.
        let version = if arch == AMD64 {
            kernel.to_string()
        } else {
            format!("{kernel}-{}", arch.debian)
        };
        let version = version.as_str();
        let k = fetch_kernel(&cache, release, arch)?;
        let initrd = initramfs(&work, &bins, &k)?;
        let asked = scenarios_asked(arch);
        // The seed runs in a guest of its own: the others' guest is asked
        // for the rest (none, when only the seed was asked for).
        let rest = asked.as_deref().map(|o| {
            o.split(',')
                .filter(|x| *x != "seed")
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut guests = Vec::new();
        if rest.as_deref() != Some("") {
            guests.push(Guest {
                mem: MEM,
                only: rest,
            });
        }
        // The seed incident: amd64 only (its HAProxy is the host's), in the
        // best BTF tier asked.
        let seed_tier = tiers.split(',').find(|t| *t != "nobtf");
        let seed_asked = asked
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == "seed"));
        if let (true, true, Some(_)) = (arch == AMD64, seed_asked, seed_tier) {
            guests.push(Guest {
                mem: SEED_MEM,
                only: Some("seed".into()),
            });
        }
        for guest in &guests {
            let seed = guest.mem == SEED_MEM;
            let guest_tiers = if seed {
                seed_tier.unwrap_or("fentry")
            } else {
                tiers
            };
            eprintln!(
                "xtask: booting {} ({release}) under TCG, {} MB{}",
                k.package,
                guest.mem,
                if seed { ", the seed incident" } else { "" }
            );
            let run = boot(&k, &initrd, guest_tiers, arch, guest)?;
            if !seed {
                std::fs::write(
                    work.join(format!("probes-{version}.jsonl")),
                    run.probes.join("\n") + "\n",
                )?;
                served.extend(
                    served_tiers(&run.probes)
                        .into_iter()
                        .map(|l| format!("{version:<7} {l}")),
                );
            }
            for (name, z) in &run.recordings {
                if let Err(e) = report_recording(&bins.host_netmem, &work, version, name, z) {
                    failed.push(format!("{version} {name}: report: {e:#}"));
                }
            }
            if run.results.iter().any(|r| r["ok"] != true) {
                eprintln!(
                    "xtask: {version} console (last lines):\n    {}",
                    run.tail.join("\n    ")
                );
            }
            if !run.done {
                failed.push(format!(
                    "{version}: guest did not finish in {:.0}s; last console lines:\n    {}",
                    run.seconds,
                    run.tail.join("\n    ")
                ));
            }
            for r in &run.results {
                let line = format!(
                    "{:<7} {:<11} {:<8} {:<6} {}",
                    version,
                    r["tier"].as_str().unwrap_or("?"),
                    r["scenario"].as_str().unwrap_or("?"),
                    if r["ok"] == true { "ok" } else { "FAILED" },
                    r["detail"].as_str().unwrap_or("")
                );
                if r["ok"] != true {
                    failed.push(line.clone());
                }
                table.entry(version.to_string()).or_default().push(line);
            }
            eprintln!("xtask: {} finished in {:.1}s", k.package, run.seconds);
        }
    }
    println!("\nvm-test: kernel  asked: which tier serves which hook (why not the one asked)");
    for l in &served {
        println!("vm-test: {l}");
    }
    println!("\nvm-test: kernel  tier        scenario result detail");
    for lines in table.values() {
        for l in lines {
            println!("vm-test: {l}");
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failures:\n  {}", failed.join("\n  "));
    }
    println!("vm-test: all scenarios passed");
    Ok(())
}

/// One line per tier a guest was asked for: the tier that served each
/// hook in its `netmem probes --json` (a line per hook), and, for a hook
/// below the tier asked, the reason netmem gives (on arm64, fentry may be
/// missing where amd64 has it).
fn served_tiers(probes: &[String]) -> Vec<String> {
    let mut asked_order: Vec<&str> = Vec::new();
    let mut by: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for p in probes {
        let (asked, json) = p.split_once(' ').unwrap_or((p.as_str(), ""));
        if !asked_order.contains(&asked) {
            asked_order.push(asked);
        }
        let Ok(h) = serde_json::from_str::<serde_json::Value>(json) else {
            errors.push(format!("{asked:<7} {json}"));
            continue;
        };
        let tier = h["tier"].as_str().unwrap_or("none").to_string();
        let mut name = h["hook"].as_str().unwrap_or("?").to_string();
        let why = h["unavailable"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["tier"] == asked))
            .and_then(|u| u["reason"].as_str());
        if let (true, Some(why)) = (tier != asked, why) {
            name += &format!(" ({asked}: {why})");
        }
        by.entry((asked, tier)).or_default().push(name);
    }
    let mut out = Vec::new();
    for asked in asked_order {
        let parts: Vec<String> = by
            .iter()
            .filter(|((a, _), _)| *a == asked)
            .map(|((_, t), hs)| format!("{t}: {}", hs.join(", ")))
            .collect();
        out.push(format!("{asked:<7} {}", parts.join("; ")));
    }
    out.extend(errors);
    out
}

#[cfg(test)]
mod tests {
    use super::debian_archive;

    #[test]
    fn archive_from_one_line_and_deb822_sources() {
        let one = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.local/debian/ bookworm main\ndeb http://mirror.local/debian-security bookworm-security main\n";
        assert_eq!(
            debian_archive(&[one.into()]).as_deref(),
            Some("http://mirror.local/debian")
        );
        let deb822 = "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            debian_archive(&[deb822.into()]).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            debian_archive(&["deb https://packages.example/apt cloud-sdk-bookworm main".into()]),
            None
        );
        assert_eq!(
            debian_archive(&["deb https://node.example/node_20.x nodistro main".into()]),
            None
        );
    }
}
