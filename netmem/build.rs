//! Builds netmem-ebpf for the BPF target and leaves the object in OUT_DIR,
//! where `hooks/attach.rs` embeds it. As in aya-template, the eBPF crate is
//! found through cargo's metadata rather than a path written here.
use anyhow::{anyhow, Context as _};

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
    )
}
