//! nginx's configuration files: the main file and what its `include`s
//! name (globs, relative to the main file's directory as nginx resolves
//! them), read within caps, each file once per chain (a file including
//! itself, directly or not, is noted, not followed), at most
//! [`INCLUDE_DEPTH_MAX`] includes deep.
//!
//! Reading is behind [`Files`], so the unit tests read fixtures from
//! memory and the reader (`mod.rs`) reads through the process's root with
//! its owner's rights.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::syntax::{parse, Directive};

/// All the files of one configuration together, at most.
pub const CONFIG_MAX_BYTES: u64 = 16 << 20;
/// Files at most (the main one and every one included).
pub const CONFIG_MAX_FILES: usize = 256;
/// Includes within includes at most.
pub const INCLUDE_DEPTH_MAX: usize = 16;
/// Directives one configuration may hold at most (16 MiB of short lines).
pub const CONFIG_MAX_DIRECTIVES: usize = 400_000;
/// Entries looked at in one directory while matching a glob.
pub const GLOB_DIR_MAX_ENTRIES: usize = 4096;

/// Where configuration files come from. Paths are as nginx names them.
pub trait Files {
    /// A file's bytes, at most `cap`.
    fn read(&mut self, path: &Path, cap: u64) -> Result<Vec<u8>>;
    /// The names in a directory (not `.`/`..`), at most `max` (an error
    /// beyond).
    fn list(&mut self, dir: &Path, max: usize) -> Result<Vec<String>>;
}

/// A configuration with its includes spliced in where they stood.
#[derive(Debug, Default)]
pub struct Loaded {
    pub directives: Vec<Directive>,
    /// Every file read, in order (a directive's `at.0` indexes it).
    pub files: Vec<PathBuf>,
    /// Directories whose entries a glob matched: a file added there
    /// changes what is included.
    pub dirs: Vec<PathBuf>,
    pub notes: Vec<String>,
}

struct Loader<'a, F: Files> {
    files: &'a mut F,
    /// The main file's directory: relative includes are resolved here.
    conf_dir: PathBuf,
    out: Loaded,
    bytes: u64,
    directives: usize,
}

/// Reads `main` and everything it includes. An error only when the main
/// file cannot be read; an include that cannot be is noted.
pub fn load<F: Files>(files: &mut F, main: &Path) -> Result<Loaded> {
    let conf_dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut l = Loader {
        files,
        conf_dir,
        out: Loaded::default(),
        bytes: 0,
        directives: 0,
    };
    let mut chain = Vec::new();
    let directives = l.file(main, 0, 0, &mut chain)?;
    l.out.directives = directives;
    Ok(l.out)
}

impl<F: Files> Loader<'_, F> {
    /// One file, parsed `depth` blocks deep, `chain` the includes that led
    /// to it.
    fn file(
        &mut self,
        path: &Path,
        depth: usize,
        includes: usize,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Vec<Directive>> {
        if self.out.files.len() >= CONFIG_MAX_FILES {
            anyhow::bail!("more than {CONFIG_MAX_FILES} configuration files (netmem's cap)");
        }
        let left = CONFIG_MAX_BYTES.saturating_sub(self.bytes);
        let raw = self.files.read(path, left)?;
        self.bytes += raw.len() as u64;
        let index = self.out.files.len();
        self.out.files.push(path.to_path_buf());
        // Comments in Latin-1 happen; only the directives matter.
        let text = String::from_utf8_lossy(&raw);
        let budget = CONFIG_MAX_DIRECTIVES.saturating_sub(self.directives);
        let parsed = parse(&text, index, depth, budget);
        self.directives += parsed.count;
        for n in parsed.notes {
            self.out.notes.push(format!("{}: {n}", path.display()));
        }
        chain.push(path.to_path_buf());
        let mut d = parsed.directives;
        self.expand(&mut d, depth, includes, chain);
        chain.pop();
        Ok(d)
    }

    /// Replaces each `include` in `dirs` (and in their blocks) by what it
    /// names.
    fn expand(
        &mut self,
        dirs: &mut Vec<Directive>,
        depth: usize,
        includes: usize,
        chain: &mut Vec<PathBuf>,
    ) {
        let mut out = Vec::with_capacity(dirs.len());
        for mut d in std::mem::take(dirs) {
            if let Some(block) = d.block.as_mut() {
                // Parsing capped the nesting, so this recursion is bounded.
                self.expand(block, depth + 1, includes, chain);
                out.push(d);
                continue;
            }
            if d.name != "include" || d.args.len() != 1 {
                out.push(d);
                continue;
            }
            let pattern = self.conf_dir.join(&d.args[0]);
            if includes >= INCLUDE_DEPTH_MAX {
                self.out.notes.push(format!(
                    "include {}: more than {INCLUDE_DEPTH_MAX} includes deep, not followed (netmem's cap)",
                    d.args[0]
                ));
                continue;
            }
            let matched = match self.glob(&pattern) {
                Ok(m) => m,
                Err(e) => {
                    self.out
                        .notes
                        .push(format!("include {}: {e:#}", pattern.display()));
                    continue;
                }
            };
            for p in matched {
                if chain.contains(&p) {
                    self.out.notes.push(format!(
                        "include {}: includes itself (through {}), not followed again",
                        p.display(),
                        chain
                            .last()
                            .map(|c| c.display().to_string())
                            .unwrap_or_default()
                    ));
                    continue;
                }
                match self.file(&p, depth, includes + 1, chain) {
                    Ok(inner) => out.extend(inner),
                    Err(e) => self
                        .out
                        .notes
                        .push(format!("include {}: {e:#}", p.display())),
                }
            }
        }
        *dirs = out;
    }

    /// The files a pattern names, sorted per directory as glob(3) does; a
    /// pattern without wildcards names itself.
    fn glob(&mut self, pattern: &Path) -> Result<Vec<PathBuf>> {
        let wild = |s: &str| s.contains(['*', '?', '[']);
        if !wild(&pattern.to_string_lossy()) {
            return Ok(vec![pattern.to_path_buf()]);
        }
        let mut found = vec![PathBuf::new()];
        let parts: Vec<_> = pattern.components().collect();
        for (i, c) in parts.iter().enumerate() {
            let name = c.as_os_str().to_string_lossy();
            if !wild(&name) {
                for f in found.iter_mut() {
                    f.push(c);
                }
                continue;
            }
            let last = i + 1 == parts.len();
            let mut next = Vec::new();
            for dir in found {
                let mut names = match self.files.list(&dir, GLOB_DIR_MAX_ENTRIES) {
                    Ok(n) => n,
                    // A directory that is not there matches nothing.
                    Err(_) if !last => continue,
                    Err(e) => return Err(e),
                };
                self.out.dirs.push(dir.clone());
                names.sort();
                for n in names {
                    // `*` does not match a leading dot (glob(3)).
                    if n.starts_with('.') && !name.starts_with('.') {
                        continue;
                    }
                    if matches(name.as_bytes(), n.as_bytes()) {
                        next.push(dir.join(&n));
                    }
                }
                if next.len() > CONFIG_MAX_FILES {
                    anyhow::bail!("matches more than {CONFIG_MAX_FILES} files (netmem's cap)");
                }
            }
            found = next;
        }
        Ok(found)
    }
}

/// Whether `name` matches the glob `pat` (`*`, `?`, `[abc]`, `[a-z]`,
/// `[!x]`). Iterative, with one backtrack point: linear in practice and
/// never recursive, whatever the pattern.
pub fn matches(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pat, p, name[n]),
            Some(c) if *c == name[n] => Some(p + 1),
            _ => None,
        };
        match step {
            Some(np) => {
                p = np;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|c| *c == b'*')
}

/// A `[...]` class at `pat[p]` against `c`: the index after it when `c`
/// is in it. An unclosed `[` is a plain character.
fn class(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    let Some(end) = pat
        .get(p + 2..)
        .and_then(|r| r.iter().position(|x| *x == b']'))
        .map(|e| p + 2 + e)
    else {
        return (c == b'[').then_some(p + 1);
    };
    let mut set = &pat[p + 1..end];
    let negate = matches!(set.first(), Some(b'!' | b'^'));
    if negate {
        set = &set[1..];
    }
    let mut hit = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            hit |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    (hit != negate).then_some(end + 1)
}
