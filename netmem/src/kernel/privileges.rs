//! Checks, before anything is loaded, that this process may load tracing
//! programs, so a missing privilege is one clear line instead of a verifier
//! or EPERM error halfway through attaching.

use anyhow::{bail, Result};

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from /proc/self/status's `CapEff:` line.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

pub fn can_trace(cap_eff: u64) -> bool {
    missing(cap_eff).is_empty()
}

/// The capabilities loading tracing programs still needs: none with
/// CAP_SYS_ADMIN, else whichever of CAP_BPF and CAP_PERFMON is missing.
pub fn missing(cap_eff: u64) -> Vec<&'static str> {
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return vec![];
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect()
}

/// This process's effective capabilities (none if unreadable).
fn effective() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_cap_eff(&status).unwrap_or(0)
}

/// Whether another process's descriptors are ours to read whatever its
/// owner (root has CAP_SYS_PTRACE).
pub fn has_ptrace() -> bool {
    effective() & (1u64 << CAP_SYS_PTRACE) != 0
}

/// `command` (e.g. "netmem trace") is what the message names.
pub fn check(command: &str) -> Result<()> {
    let caps = effective();
    let lacking = missing(caps);
    if lacking.is_empty() {
        return Ok(());
    }
    bail!(
        "{command} loads eBPF programs and needs root (or CAP_BPF and CAP_PERFMON); this process lacks {}. Run it with sudo. `netmem snapshot` works without",
        lacking.join(" and ")
    )
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
        assert_eq!(missing(1 << CAP_BPF), vec!["CAP_PERFMON"]);
        assert_eq!(missing(0), vec!["CAP_BPF", "CAP_PERFMON"]);
    }

    #[test]
    fn cap_eff_line() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(s), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }
}
