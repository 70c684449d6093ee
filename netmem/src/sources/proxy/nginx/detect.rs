//! Running nginx masters: found by name, believed only as `trust.rs`
//! allows.

use std::path::{Path, PathBuf};

use super::{Nginx, DEFAULT_CONFIG};
use crate::sources::proxy::{trust, Detection};

/// Running nginx masters in the traced namespaces (`netns`, or every one
/// with `all`): a process named `nginx` whose parent is not (its workers,
/// cache manager and loader are the master's children). A process names
/// itself, so one is believed only when its executable is nginx as root
/// installed it ([`trust::check_executable`]), and refused otherwise.
pub fn detect(netns: u32, all: bool) -> Detection {
    let mut found = Detection::default();
    let hint = "netmem reads an nginx it finds only when its executable is a root-owned file named nginx that no one else can write; to read another, name its configuration with --nginx";
    for m in trust::masters("nginx", "nginx", hint, netns, all, &mut found.refused) {
        let config = config_path(&args_of(&m.cmdline));
        found
            .proxies
            .push(Box::new(Nginx::running(m.pid, m.started, config, m.netns)));
    }
    found
}

/// A master's arguments. nginx writes its title over its arguments
/// (`nginx: master process /usr/sbin/nginx -c FILE`, one string), so the
/// title's words are its arguments as they were, split at spaces.
pub(super) fn args_of(cmdline: &[u8]) -> Vec<String> {
    let parts: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match parts.first() {
        Some(t) if t.starts_with("nginx: ") => {
            let words: Vec<String> = parts
                .iter()
                .flat_map(|p| p.split_whitespace())
                .map(String::from)
                .collect();
            // After `nginx: master process`: the program, then its options.
            words.into_iter().skip(3).collect()
        }
        _ => parts,
    }
}

/// The main configuration file from a master's arguments (program first):
/// `-c FILE` (relative to the prefix), with `-p PREFIX`; else Debian's.
/// nginx takes an option's value joined (`-cFILE`) or as the next word.
pub(super) fn config_path(args: &[String]) -> PathBuf {
    let mut conf = None;
    let mut prefix = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = |rest: &str| -> Option<String> {
            if rest.is_empty() {
                it.next().cloned()
            } else {
                Some(rest.to_string())
            }
        };
        if let Some(rest) = a.strip_prefix("-c") {
            conf = value(rest);
        } else if let Some(rest) = a.strip_prefix("-p") {
            prefix = value(rest);
        } else if a == "-g" {
            // Its directives are one word in the real command line, but
            // several in a title: skipped up to the one ending with `;`.
            for w in it.by_ref() {
                if w.ends_with(';') && !w.ends_with("\\;") {
                    break;
                }
            }
        }
    }
    match conf {
        Some(c) if c.starts_with('/') => PathBuf::from(c),
        Some(c) => {
            // Relative to the prefix (nginx's own, Debian's /usr/share/nginx).
            let p = prefix.unwrap_or_else(|| "/usr/share/nginx/".into());
            Path::new(&p).join(c)
        }
        None => PathBuf::from(DEFAULT_CONFIG),
    }
}
