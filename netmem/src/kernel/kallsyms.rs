//! /proc/kallsyms: which kernel functions exist under their own name (a
//! static function the compiler inlined or renamed is absent, and cannot be
//! probed), and the addresses of the few globals tcp_check_oom compares.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};

use anyhow::{Context, Result};

#[derive(Default, Debug)]
pub struct Kallsyms {
    syms: HashMap<String, (u64, char)>,
}

impl Kallsyms {
    /// Reads the symbols named in `wanted` (all of them when empty).
    pub fn load(wanted: &[&str]) -> Result<Kallsyms> {
        let f = std::fs::File::open("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        Ok(Self::parse(BufReader::new(f), wanted))
    }

    pub fn parse(r: impl BufRead, wanted: &[&str]) -> Kallsyms {
        let mut syms = HashMap::new();
        for line in r.lines().map_while(Result::ok) {
            let mut it = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            // Module symbols carry a `[module]` column: netmem only probes vmlinux.
            if it.next().is_some() || (!wanted.is_empty() && !wanted.contains(&name)) {
                continue;
            }
            let addr = u64::from_str_radix(addr, 16).unwrap_or(0);
            let kind = kind.chars().next().unwrap_or('?');
            syms.entry(name.to_string()).or_insert((addr, kind));
        }
        Kallsyms { syms }
    }

    /// The symbol's address, if it is listed with a real (non-zero) one:
    /// without CAP_SYSLOG the kernel shows zeros.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.syms.get(name).map(|s| s.0).filter(|&a| a != 0)
    }

    /// Whether `name` is a function (text symbol) of the kernel image.
    pub fn has_function(&self, name: &str) -> bool {
        self.syms
            .get(name)
            .is_some_and(|s| matches!(s.1, 't' | 'T'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_data_symbols() {
        let text = "ffffffff82010e50 T tcp_check_oom\n\
                    ffffffff81feeaf0 t update_or_create_fnhe.constprop.0\n\
                    ffffffff83000000 d tcp_orphan_cache\n\
                    0000000000000000 T hidden\n\
                    ffffffffc0000000 t veth_xmit\t[veth]\n";
        let k = Kallsyms::parse(text.as_bytes(), &[]);
        assert!(k.has_function("tcp_check_oom"));
        assert!(!k.has_function("update_or_create_fnhe"));
        assert!(!k.has_function("tcp_orphan_cache"));
        assert_eq!(k.address("tcp_orphan_cache"), Some(0xffffffff83000000));
        assert_eq!(k.address("hidden"), None);
        assert!(!k.has_function("veth_xmit"));
        let only = Kallsyms::parse(text.as_bytes(), &["tcp_orphan_cache"]);
        assert!(!only.has_function("tcp_check_oom"));
    }
}
