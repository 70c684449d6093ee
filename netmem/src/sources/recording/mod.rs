//! Reading a recording back: `netmem record`'s zstd frames or `netmem trace
//! --json` output, compressed or not, one contract line per line. A
//! recording cut short by a crash, a damaged frame or stray bytes still
//! gives every line that can be read, and says what could not be.
//!
//! Recordings get mailed around, so a file is read as if anyone wrote it:
//! it streams (frame by frame into a fixed buffer, line by line, each line
//! handed to the caller and dropped), a line longer than [`MAX_LINE`] is
//! skipped without being held, and figures no kernel can produce are
//! dropped before anyone diagnoses them. The callers keep bounded state
//! with the caps below, so `report` and `doctor --from` stay within
//! [`MEMORY_BUDGET`] whatever the input.
//!
//! Here: the caps, the stream (frames, lines) and each line read through
//! the contract's types; `problems.rs` counts what was wrong with the
//! file, `sanity.rs` drops what no kernel writes, `names.rs` holds names
//! within their caps.

use std::io::Read;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::contract::Line;

mod names;
mod problems;
mod sanity;
#[cfg(test)]
mod tests;

pub use names::{cut_name, CappedNames};
use problems::Problems;
use sanity::Sanity;
use zstd::zstd_safe::{get_error_name, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

// What reading a recording may hold, in one place. Each size is far above
// what a real recording needs and small enough that all of them together
// stay inside the budget.

/// The most memory `netmem report` (one recording or two) and `netmem
/// doctor --from` take, whatever the file: the fuzz target `recording`
/// aborts above it and tests/tests/hostile_recordings.rs checks the
/// binaries' peak RSS against it.
pub const MEMORY_BUDGET: u64 = 512 << 20;
/// The longest line read. netmem's longest lines (the host line with every
/// sysctl, a group line with 8 owners and a proxy backend's servers) are
/// tens of KB; a longer line is skipped as it streams, never held.
pub const MAX_LINE: usize = 1 << 20;
/// zstd's window, log2: zstd's own default limit for decoders (128 MiB,
/// what `zstd --long` and `--ultra -22` write); `netmem record` uses 2 MiB
/// at most. A frame asking for more is refused as damaged.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Compressed bytes of the frame being decoded that are kept, so that a
/// damaged frame can be searched for the next frame's start: `netmem
/// record` writes one frame per interval, a few KB each.
const MAX_REWIND: usize = 1 << 20;
/// The longest name kept (a group, a namespace, an owner, a proxy's
/// names): a cgroup path may be PATH_MAX (4096) with its `cgroup:` prefix
/// and `@namespace`. A longer one is cut in the middle, `…` marking it.
pub const MAX_NAME: usize = 4096 + 256;
/// Groups held by name; the rest are summed into [`OTHER`], as `netmem
/// serve --max-groups` does. The report holds each group per interval
/// ([`MAX_POINTS`] of them), so this bounds the largest table it keeps.
pub const MAX_GROUPS: usize = 1000;
/// Namespaces held by name (`--netns all`), the rest summed into
/// [`OTHER`]: the report keeps one total per namespace per interval.
pub const MAX_NAMESPACES: usize = 256;
/// Distinct event kinds, abort causes, drop reasons and directions held by
/// name (the kernel has about a hundred drop reasons); the rest are
/// counted as [`OTHER`].
pub const MAX_KINDS: usize = 256;
/// Route exception destinations the doctor counts by name.
pub const MAX_DSTS: usize = 1000;
/// Intervals the report holds: ten times a plot's width in pixels. Past
/// it, neighbouring intervals are merged in pairs, keeping each figure's
/// peak (a 10-minute recording at 1 s is 600 intervals).
pub const MAX_POINTS: usize = 2048;
/// Aborts held with their figures for the report's marks and table, and
/// pressure periods drawn; the rest are counted.
pub const MAX_MARKS: usize = 10_000;
/// Aborts the doctor holds with their figures (it cites the first of each
/// cause); every abort is counted by cause and group.
pub const MAX_ABORTS: usize = 1000;
/// Events the report holds while waiting for the interval they fall in:
/// `--event-limit`'s maximum per interval.
pub const MAX_PENDING_EVENTS: usize = 1_000_000;
/// Bytes of proxy names (frontends, servers) the doctor holds over all
/// groups; a real HAProxy of 100,000 servers takes about 10 MB.
pub const MAX_PROXY_BYTES: usize = 32 << 20;

/// What groups, namespaces and kinds past their cap are summed into.
pub const OTHER: &str = "other";

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Reads `path`, handing each line of the contract to `visit` in order.
/// Returns what was wrong with the file, one sentence per problem. Fails
/// only when nothing of a recording is in it.
pub fn read(path: &str, visit: impl FnMut(&Line)) -> Result<Vec<String>> {
    read_from(open(path)?, path, visit)
}

/// The recording at `path`, opened for [`read_from`].
pub fn open(path: &str) -> Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("cannot read recording {path}"))
}

/// [`read`] of any byte stream; `name` names it in messages.
pub fn read_from(
    mut src: impl Read,
    name: &str,
    mut visit: impl FnMut(&Line),
) -> Result<Vec<String>> {
    let mut input = Input::new(&mut src);
    let mut r = Reading::new(&mut visit);
    if let Err(e) = input.fill(ZSTD_MAGIC.len()) {
        return Err(e).with_context(|| format!("cannot read recording {name}"));
    }
    let zstd = input.avail().starts_with(&ZSTD_MAGIC);
    let done = if zstd {
        decompress(&mut input, &mut r)
    } else {
        plain(&mut input, &mut r)
    };
    if let Err(e) = done {
        r.problems.io = Some(format!(
            "reading stopped at offset {} ({e}); what came before is used",
            input.offset
        ));
    }
    r.finish();
    if r.kept == 0 {
        bail!(
            "{name} is not a netmem recording: no line of `netmem record` or `netmem trace --json` output in it{}",
            r.problems.short()
        );
    }
    if r.contexts == 0 {
        bail!(
            "{name} has no interval (no \"context\" line): record for at least one --interval{}",
            r.problems.short()
        );
    }
    Ok(r.problems.sentences())
}

/// The file, read in chunks into one buffer that decoding consumes.
struct Input<'a> {
    src: &'a mut dyn Read,
    buf: Vec<u8>,
    /// `buf[pos..end]` is read and not yet consumed.
    pos: usize,
    end: usize,
    /// The file offset of `buf[pos]`.
    offset: u64,
    eof: bool,
}

/// Bytes read from the file, and decompressed, at a time.
const CHUNK: usize = 128 << 10;

impl<'a> Input<'a> {
    fn new(src: &'a mut dyn Read) -> Input<'a> {
        Input {
            src,
            buf: vec![0; 2 * CHUNK],
            pos: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads until `want` (at most [`CHUNK`]) bytes are unread or the file
    /// ends.
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        while self.end - self.pos < want && !self.eof {
            if self.buf.len() - self.end < CHUNK {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            let n = loop {
                match self.src.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            self.end += n;
            self.eof = n == 0;
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Puts `bytes`, which came from just before `offset`'s bytes, back
    /// (at most [`MAX_REWIND`] of them).
    fn unread(&mut self, bytes: &[u8]) {
        let mut buf = Vec::with_capacity(bytes.len() + self.end - self.pos + CHUNK);
        buf.extend_from_slice(bytes);
        buf.extend_from_slice(self.avail());
        self.end = buf.len();
        buf.resize(self.end + CHUNK, 0);
        self.buf = buf;
        self.pos = 0;
        self.offset -= bytes.len() as u64;
    }
}

/// Text not compressed: lines as they come.
fn plain(input: &mut Input, r: &mut Reading) -> std::io::Result<()> {
    loop {
        input.fill(1)?;
        if input.avail().is_empty() {
            return Ok(());
        }
        r.push(input.avail());
        let n = input.avail().len();
        input.consume(n);
    }
}

/// Every frame in turn, each streamed through a fixed buffer. A damaged
/// frame gives what it yields up to the damage, then reading resumes at
/// the next frame's magic number, so one bad interval does not lose the
/// rest.
fn decompress(input: &mut Input, r: &mut Reading) -> std::io::Result<()> {
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
        .map_err(|c| std::io::Error::other(get_error_name(c)))?;
    let mut out = vec![0u8; CHUNK];
    let mut frame: Vec<u8> = Vec::new();
    // A damaged frame is searched again for a frame's start from its
    // second byte (its blocks may have swallowed the next frame), but never
    // twice: bytes before this offset are not searched again, so reading
    // stays linear in the file's size.
    let mut searched_to = 0u64;
    // After damage, bytes up to the next frame are the damaged frame's
    // rest, not stray data.
    let mut after_damage = false;
    loop {
        input.fill(ZSTD_MAGIC.len())?;
        let avail = input.avail();
        if avail.is_empty() {
            return Ok(());
        }
        if !avail.starts_with(&ZSTD_MAGIC) {
            let skip = match find_magic(avail) {
                Some(k) => k,
                // Keep a possible magic number's start for the next read.
                None if !input.eof => avail.len().saturating_sub(ZSTD_MAGIC.len() - 1).max(1),
                None => avail.len(),
            };
            if !after_damage {
                r.problems.junk(input.offset, skip as u64);
            }
            input.consume(skip);
            continue;
        }
        r.problems.end_junk();
        after_damage = false;
        let start = input.offset;
        frame.clear();
        let mut frame_whole = true;
        let mut decoded = 0u64;
        dctx.reset(ResetDirective::SessionOnly)
            .map_err(|c| std::io::Error::other(get_error_name(c)))?;
        let failure = loop {
            input.fill(1)?;
            if input.avail().is_empty() {
                break "is truncated or damaged (a recording cut short?)".to_string();
            }
            let mut inb = InBuffer::around(input.avail());
            let mut outb = OutBuffer::around(&mut out[..]);
            let res = dctx.decompress_stream(&mut outb, &mut inb);
            let (used, made) = (inb.pos(), outb.pos());
            if frame_whole && frame.len() + used <= MAX_REWIND {
                frame.extend_from_slice(&input.avail()[..used]);
            } else {
                frame_whole = false;
                frame = Vec::new();
            }
            input.consume(used);
            r.push(&out[..made]);
            decoded += made as u64;
            match res {
                Ok(0) => break String::new(),
                Ok(_) if used == 0 && made == 0 => {
                    break "is damaged (the decoder made no progress)".to_string()
                }
                Ok(_) => {}
                Err(c) => break format!("is damaged ({})", get_error_name(c)),
            }
        };
        if failure.is_empty() {
            continue;
        }
        // A frame cut mid-line ends with a partial line: it is not joined
        // to the next frame's first.
        r.break_line();
        r.problems.damaged(start, &failure, decoded);
        after_damage = true;
        if frame_whole && start + 1 >= searched_to && frame.len() > 1 {
            searched_to = input.offset;
            input.unread(&frame[1..]);
        } else if input.offset == start {
            // Refused before taking a byte: past its magic number.
            input.consume(1);
        }
    }
}

fn find_magic(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == ZSTD_MAGIC)
}

/// Lines as they stream, each parsed, checked and handed on.
struct Reading<'v> {
    visit: &'v mut dyn FnMut(&Line),
    line: Vec<u8>,
    /// The line under way passed [`MAX_LINE`]: what is left of it is
    /// dropped up to its newline.
    skipping: bool,
    line_no: u64,
    kept: u64,
    contexts: u64,
    sanity: Sanity,
    problems: Problems,
}

impl<'v> Reading<'v> {
    fn new(visit: &'v mut dyn FnMut(&Line)) -> Reading<'v> {
        Reading {
            visit,
            line: Vec::new(),
            skipping: false,
            line_no: 0,
            kept: 0,
            contexts: 0,
            sanity: Sanity::default(),
            problems: Problems::default(),
        }
    }

    /// Decompressed bytes, split into lines as they come. (`BufRead` on a
    /// slice finds newlines with libc's memchr.)
    fn push(&mut self, mut data: &[u8]) {
        use std::io::BufRead;
        while !data.is_empty() {
            let ended = if self.skipping {
                let before = data;
                let n = data.skip_until(b'\n').unwrap_or(before.len());
                before[..n].last() == Some(&b'\n')
            } else {
                let before = self.line.len();
                let _ = data.read_until(b'\n', &mut self.line);
                let ended = self.line.len() > before && self.line.last() == Some(&b'\n');
                if ended {
                    self.line.pop();
                }
                if self.line.len() > MAX_LINE {
                    self.skipping = true;
                    // Its memory goes back now, not at the newline.
                    self.line = Vec::new();
                }
                ended
            };
            if ended {
                self.end_line();
            }
        }
    }

    /// What has come of a line is a line of its own.
    fn break_line(&mut self) {
        if self.skipping || !self.line.is_empty() {
            self.end_line();
        }
    }

    fn finish(&mut self) {
        self.break_line();
        self.problems.end_junk();
        self.problems.sanity = self.sanity.sentences();
    }

    fn end_line(&mut self) {
        self.line_no += 1;
        if std::mem::take(&mut self.skipping) {
            self.problems.long.add(self.line_no);
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.parse(&line);
        // Keep the buffer (bounded by MAX_LINE) for the next line.
        self.line = line;
        self.line.clear();
    }

    fn parse(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let parsed = match std::str::from_utf8(line) {
            Ok(s) => serde_json::from_str::<Value>(s),
            // Names that are not UTF-8 read as U+FFFD, as netmem writes them.
            Err(_) => serde_json::from_str::<Value>(&String::from_utf8_lossy(line)),
        };
        match parsed.ok().and_then(Line::read) {
            Some(mut l) => {
                if self.sanity.keep(&mut l, self.line_no) {
                    self.kept += 1;
                    if matches!(l, Line::Context(_)) {
                        self.contexts += 1;
                    }
                    (self.visit)(&l);
                }
            }
            None => self.problems.bad.add(self.line_no),
        }
    }
}
