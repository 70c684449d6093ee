//! Builds netmem-ebpf for the BPF target and leaves the object in OUT_DIR,
//! where probes.rs embeds it.
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().expect("workspace root");
    let ebpf_dir = root.join("netmem-ebpf");
    // The kernel programs compile netmem-common too: rebuild when it changes.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("netmem-common").display()
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netmem-ebpf",
            root_dir: ebpf_dir.to_str().expect("utf-8 path"),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
