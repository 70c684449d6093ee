//! Builds netmem-ebpf for the BPF target and leaves the object in OUT_DIR,
//! where `hooks/attach.rs` embeds it. As in aya-template, the eBPF crate is
//! found through cargo's metadata rather than a path written here.
//!
//! The nested cargo runs here rather than through aya-build because of its
//! output: aya-build forwards every line of it as a `cargo:warning`, and
//! cargo replays a build script's warnings on every later build, so each
//! no-op `cargo build` printed the eBPF crate's stale "Compiling" lines.
//! Here the nested cargo's chatter is shown only when it fails; the eBPF
//! code's own compiler warnings are still forwarded.
//!
//! It also sets NETMEM_LONG_VERSION for `netmem --version`: the git commit
//! (NETMEM_GIT_COMMIT, else `git rev-parse`), the build date
//! (SOURCE_DATE_EPOCH, else now) and the SHA-256 of the embedded object, so
//! a binary found on a host says which source and which kernel programs it
//! carries.
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context as _};
use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Artifact, Message};
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
    // The kernel programs are netmem-ebpf's binaries, which cargo does not
    // track for us: rebuild when its sources change.
    println!("cargo:rerun-if-changed={root_dir}");
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
    build_ebpf(ebpf.name.as_str())?;
    version_info()
}

/// `cargo +nightly build` of `package`'s binaries for the BPF target of
/// the host's byte order (`-Z build-std=core`: the BPF targets ship no
/// core), each binary copied to OUT_DIR under its own name.
fn build_ebpf(package: &str) -> anyhow::Result<()> {
    let env = |key: &str| std::env::var(key).with_context(|| format!("{key} is not set"));
    let out_dir = env("OUT_DIR")?;
    let out_dir = Path::new(&out_dir);
    let target = match env("CARGO_CFG_TARGET_ENDIAN")?.as_str() {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        other => bail!("no BPF target for endianness {other}"),
    };
    // aya-ebpf reads the architecture it is built for (pt_regs layouts)
    // from this cfg; riscv64's variants share one.
    let mut arch = env("CARGO_CFG_TARGET_ARCH")?;
    if arch.starts_with("riscv64") {
        arch = "riscv64".into();
    }
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".into(),
        // BTF in the object: the kernel's verifier and aya's relocations use it.
        "-Clink-arg=--btf".into(),
    ]
    .join("\x1f");

    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--package", package])
        .args(["--bins", "--release", "--message-format=json"])
        .args(["--target", target, "-Z", "build-std=core"])
        // Apart from OUT_DIR's files: cargo would wait on its own lock.
        .arg("--target-dir")
        .arg(out_dir.join("aya-build/target").join(package))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The outer build's compiler is not the nightly.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?} (is rustup installed?)"))?;

    // Cargo's progress goes to stderr: read it aside so neither pipe fills.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let progress = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut binaries = Vec::new();
    let mut diagnostics = Vec::new();
    let mut lines = Vec::new();
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    for message in Message::parse_stream(stdout) {
        match message.context("the nested cargo wrote invalid JSON")? {
            Message::CompilerArtifact(Artifact {
                executable: Some(exe),
                target,
                ..
            }) => binaries.push((target.name, exe)),
            Message::CompilerMessage(m) => diagnostics.push(m.message),
            Message::TextLine(line) => lines.push(line),
            _ => {}
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    let progress = progress.join().unwrap_or_default();

    if !status.success() {
        // Cargo shows a failed build script's stderr: the compiler's
        // messages first, then cargo's own lines ("could not compile").
        for d in &diagnostics {
            eprint!("{}", d.rendered.as_deref().unwrap_or(&d.message));
        }
        for line in &lines {
            eprintln!("{line}");
        }
        eprint!("{progress}");
        bail!("building {package} for {target} failed: {cmd:?}: {status}");
    }
    // Only the eBPF code's own warnings deserve a line on every build.
    for d in diagnostics
        .iter()
        .filter(|d| d.level == DiagnosticLevel::Warning)
    {
        for line in d
            .rendered
            .as_deref()
            .unwrap_or(&d.message)
            .trim_end()
            .lines()
        {
            println!("cargo:warning={line}");
        }
    }
    for (name, exe) in binaries {
        let to = out_dir.join(&name);
        let object = std::fs::read(&exe).with_context(|| format!("cannot read {exe}"))?;
        let stripped =
            strip_dwarf(&object).with_context(|| format!("stripping DWARF from {exe}"))?;
        std::fs::write(&to, stripped).with_context(|| format!("cannot write {}", to.display()))?;
    }
    Ok(())
}

/// The object without its DWARF (`.debug_*` and their relocations): the
/// compiler needs debug info to emit BTF, but once linked nothing reads the
/// DWARF (aya and the verifier use `.BTF` and `.BTF.ext`, which stay), and
/// it was 0.8 of the object's 1.1 MB embedded in every netmem binary.
fn strip_dwarf(object: &[u8]) -> anyhow::Result<Vec<u8>> {
    use object::build::elf::{Builder, SectionData};
    let mut b = Builder::read(object).map_err(|e| anyhow!("{e}"))?;
    let dwarf: Vec<_> = b
        .sections
        .iter()
        .filter(|s| s.name.starts_with(b".debug_"))
        .map(|s| s.id())
        .collect();
    for s in b.sections.iter_mut() {
        if dwarf.contains(&s.id()) || s.sh_info_section.is_some_and(|t| dwarf.contains(&t)) {
            s.delete = true;
        }
    }
    b.delete_orphans();
    // LLVM names sections from the symbol string table (.strtab); the
    // writer keeps section names in a table of their own.
    if !b
        .sections
        .iter()
        .any(|s| matches!(s.data, SectionData::SectionString))
    {
        let s = b.sections.add();
        s.name = b".shstrtab"[..].into();
        s.sh_type = object::elf::SHT_STRTAB;
        s.sh_addralign = 1;
        s.data = SectionData::SectionString;
    }
    let mut out = Vec::new();
    b.write(&mut out).map_err(|e| anyhow!("{e}"))?;
    Ok(out)
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
