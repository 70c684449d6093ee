//! Where the BTF netmem resolves from comes from: the running kernel's own,
//! or a file `--btf` / `NETMEM_BTF` names (raw, or an ELF's `.BTF`
//! section), read with a size cap and its header checked before use.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};

use super::KernelBtf;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The environment variable that names an external BTF, like `--btf`.
pub const BTF_ENV: &str = "NETMEM_BTF";

/// Where the BTF netmem resolves offsets from comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BtfSource {
    /// The running kernel's own, `/sys/kernel/btf/vmlinux`.
    Kernel,
    /// A file `--btf` or `NETMEM_BTF` names. It gives offsets and enum
    /// values only: BPF trampolines (fentry/fexit) need the kernel's own.
    File(PathBuf),
}

/// Set once by `--btf` before anything resolves.
static EXTERNAL: OnceLock<PathBuf> = OnceLock::new();

/// Takes an external BTF for the rest of the process (`--btf FILE`). It is
/// read and checked here, so a wrong file is one clear error before anything
/// is attached.
pub fn use_file(path: &Path) -> Result<()> {
    KernelBtf::from_named_file(path)?;
    let _ = EXTERNAL.set(path.to_path_buf());
    Ok(())
}

/// `--btf`, else `NETMEM_BTF` (when set and not empty), else the kernel's
/// own when it has one.
pub fn source() -> Option<BtfSource> {
    if let Some(p) = EXTERNAL.get() {
        return Some(BtfSource::File(p.clone()));
    }
    match std::env::var_os(BTF_ENV) {
        Some(p) if !p.is_empty() => return Some(BtfSource::File(p.into())),
        _ => {}
    }
    Path::new(VMLINUX_BTF).exists().then_some(BtfSource::Kernel)
}

/// Why there is no BTF, and what to do about it: one line, said in the
/// probes report and in the start-up warning.
pub fn missing_reason() -> String {
    format!(
        "no kernel BTF ({VMLINUX_BTF} absent: kernel built without CONFIG_DEBUG_INFO_BTF; --btf FILE or {BTF_ENV}=FILE names one, e.g. from BTFHub)"
    )
}

/// A real vmlinux BTF is 2 to 10 MB and a whole vmlinux with debug
/// information a few hundred: past this, the file is not one.
const MAX_BTF_FILE: u64 = 1 << 30;

pub(super) fn read_capped(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow!("cannot read BTF file {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_BTF_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read BTF file {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_BTF_FILE {
        bail!(
            "{} is over {} MiB: not a vmlinux BTF",
            path.display(),
            MAX_BTF_FILE >> 20
        );
    }
    Ok(bytes)
}

/// Raw BTF as it is, or the `.BTF` section of an ELF file.
pub(super) fn btf_bytes(bytes: &[u8]) -> Result<&[u8]> {
    use object::{Object, ObjectSection};
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(bytes);
    }
    let elf = object::File::parse(bytes).map_err(|e| anyhow!("unreadable ELF: {e}"))?;
    let section = elf
        .section_by_name(".BTF")
        .ok_or_else(|| anyhow!("an ELF file without a .BTF section"))?;
    section
        .data()
        .map_err(|e| anyhow!("unreadable .BTF section: {e}"))
}

/// `struct btf_header` (include/uapi/linux/btf.h): magic 0xeb9f, version 1,
/// flags, hdr_len, then type_off/type_len and str_off/str_len, relative to
/// the end of the header.
pub(super) fn check_header(b: &[u8]) -> Result<()> {
    if b.len() < 24 {
        bail!("BTF shorter than its header ({} bytes)", b.len());
    }
    // The magic 0xeb9f, in the data's own byte order.
    let le = match [b[0], b[1]] {
        [0x9f, 0xeb] => true,
        [0xeb, 0x9f] => false,
        _ => bail!("not BTF (bad magic)"),
    };
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    if b[2] != 1 {
        bail!("unsupported BTF version {}", b[2]);
    }
    let hdr_len = u32_at(4) as u64;
    let (type_off, type_len) = (u32_at(8) as u64, u32_at(12) as u64);
    let (str_off, str_len) = (u32_at(16) as u64, u32_at(20) as u64);
    let len = b.len() as u64;
    if hdr_len < 24 || hdr_len > len {
        bail!("BTF header length {hdr_len} does not fit");
    }
    for (what, off, n) in [("type", type_off, type_len), ("string", str_off, str_len)] {
        if hdr_len + off + n > len {
            bail!("BTF {what} section ({off}+{n}) runs past the data ({len} bytes)");
        }
    }
    Ok(())
}
