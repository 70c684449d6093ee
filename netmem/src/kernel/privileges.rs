//! Checks, before anything is loaded, that this process may load tracing
//! programs, so a missing privilege is one clear line instead of a verifier
//! or EPERM error halfway through attaching.

use anyhow::{bail, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from /proc/self/status's `CapEff:` line.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

pub fn can_trace(cap_eff: u64) -> bool {
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub fn check() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match parse_cap_eff(&status) {
        Some(caps) if can_trace(caps) => Ok(()),
        _ => bail!(
            "netmem trace loads eBPF programs and needs root (or CAP_BPF and CAP_PERFMON); run it with sudo. `netmem snapshot` works without"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_split_capabilities() {
        assert!(can_trace(0x000001ffffffffff));
        assert!(can_trace((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!can_trace(1 << CAP_BPF));
        assert!(!can_trace(0));
    }

    #[test]
    fn cap_eff_line() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(s), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }
}
