//! Global figures the kernel exposes in procfs: the limits (tcp_mem,
//! tcp_max_orphans) and the current usage (/proc/net/sockstat).

use anyhow::{anyhow, Context as _, Result};
use serde::Serialize;

/// Global TCP memory context, once per interval and per snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// net.ipv4.tcp_mem: min, pressure, max (pages)
    pub tcp_mem_pages: [u64; 3],
    /// TCP memory the kernel has charged (pages), sockstat's `mem`
    pub memory_allocated_pages: u64,
    pub orphans: u64,
    pub max_orphans: u64,
    pub sockets_inuse: u64,
    pub tw: u64,
    pub page_size: u64,
}

impl Context {
    pub fn read() -> Result<Context> {
        let tcp_mem = read_file("/proc/sys/net/ipv4/tcp_mem")?;
        let sockstat = read_file("/proc/net/sockstat")?;
        let max_orphans = read_file("/proc/sys/net/ipv4/tcp_max_orphans")?;
        let mut ctx = parse_sockstat(&sockstat)?;
        ctx.tcp_mem_pages = parse_triple(&tcp_mem)?;
        ctx.max_orphans = max_orphans
            .trim()
            .parse()
            .context("tcp_max_orphans is not a number")?;
        ctx.page_size = page_size();
        Ok(ctx)
    }
}

fn read_file(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

pub fn parse_triple(s: &str) -> Result<[u64; 3]> {
    let v: Vec<u64> = s
        .split_whitespace()
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .context("tcp_mem is not three numbers")?;
    v.try_into()
        .map_err(|_| anyhow!("tcp_mem is not three numbers"))
}

/// Parses the `TCP:` line of /proc/net/sockstat:
/// `TCP: inuse 5 orphan 0 tw 2 alloc 9 mem 3`.
pub fn parse_sockstat(s: &str) -> Result<Context> {
    let line = s
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .ok_or_else(|| anyhow!("/proc/net/sockstat has no TCP line"))?;
    let mut ctx = Context::default();
    let mut it = line.split_whitespace().skip(1);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let v: u64 = v
            .parse()
            .with_context(|| format!("sockstat: {k} is not a number"))?;
        match k {
            "inuse" => ctx.sockets_inuse = v,
            "orphan" => ctx.orphans = v,
            "tw" => ctx.tw = v,
            "mem" => ctx.memory_allocated_pages = v,
            _ => {}
        }
    }
    Ok(ctx)
}

/// The network namespace this process lives in, as the inode number the
/// kernel programs compare against.
pub fn netns_inum() -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/ns/net").context("cannot stat /proc/self/ns/net")?;
    Ok(m.ino() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_tcp_line() {
        let s = "sockets: used 120\nTCP: inuse 5 orphan 7 tw 2 alloc 9 mem 3\nUDP: inuse 1 mem 0\n";
        let c = parse_sockstat(s).unwrap();
        assert_eq!(
            (c.sockets_inuse, c.orphans, c.tw, c.memory_allocated_pages),
            (5, 7, 2, 3)
        );
    }

    #[test]
    fn sockstat_without_tcp_is_an_error() {
        assert!(parse_sockstat("sockets: used 1\n").is_err());
    }

    #[test]
    fn tcp_mem_triple() {
        assert_eq!(
            parse_triple("188760\t251683\t377520\n").unwrap(),
            [188760, 251683, 377520]
        );
        assert!(parse_triple("1 2").is_err());
        assert!(parse_triple("a b c").is_err());
    }
}
