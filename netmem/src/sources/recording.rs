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

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::contract::lax::Int;
use crate::contract::Line;
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

/// The most a socket or orphan count can be: the kernel keeps them (and
/// tcp_max_orphans) in an `int`.
const MAX_COUNT: u64 = i32::MAX as u64;
/// The most bytes a figure can be: more than any machine addresses
/// (52-bit physical addresses on x86-64 and arm64).
const MAX_BYTES: u64 = 1 << 52;
/// Pages, at the smallest page size.
const MAX_PAGES: u64 = MAX_BYTES / 4096;

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

/// How many times something happened, and where first.
#[derive(Clone, Debug, Default)]
struct Tally {
    n: u64,
    first: u64,
}

impl Tally {
    fn add(&mut self, at: u64) {
        if self.n == 0 {
            self.first = at;
        }
        self.n += 1;
    }
}

/// What was wrong with the file, counted as it streams and said once at
/// the end (a damaged file may have a million problems; the warnings
/// stay a few lines).
#[derive(Default)]
struct Problems {
    /// Runs of bytes that are not zstd data: places, bytes, first offset,
    /// and the run under way.
    junk_places: u64,
    junk_bytes: u64,
    junk_first: Option<(u64, u64)>,
    junk_run: Option<(u64, u64)>,
    /// Damaged frames: how many, the first's offset and what was wrong.
    damaged: u64,
    damaged_first: Option<(u64, String)>,
    recovered: u64,
    bad: Tally,
    long: Tally,
    io: Option<String>,
    sanity: Vec<String>,
}

impl Problems {
    fn junk(&mut self, at: u64, n: u64) {
        self.junk_bytes += n;
        match &mut self.junk_run {
            Some((start, len)) if *start + *len == at => *len += n,
            _ => {
                self.end_junk();
                self.junk_run = Some((at, n));
            }
        }
    }

    fn end_junk(&mut self) {
        if let Some(run) = self.junk_run.take() {
            self.junk_places += 1;
            self.junk_first.get_or_insert(run);
        }
    }

    fn damaged(&mut self, at: u64, what: &str, recovered: u64) {
        self.damaged += 1;
        self.damaged_first.get_or_insert((at, what.to_string()));
        self.recovered += recovered;
    }

    fn sentences(&self) -> Vec<String> {
        let mut w = Vec::new();
        match (self.junk_places, self.junk_first) {
            (1, Some((at, n))) => w.push(format!(
                "{n} bytes at offset {at} are not zstd data and were skipped"
            )),
            (p, Some((at, _))) if p > 1 => w.push(format!(
                "{} bytes in {p} places are not zstd data and were skipped (the first at offset {at})",
                self.junk_bytes
            )),
            _ => {}
        }
        match (self.damaged, &self.damaged_first) {
            (1, Some((at, what))) => w.push(format!("zstd frame at offset {at} {what}")),
            (n, Some((at, what))) if n > 1 => w.push(format!(
                "{n} zstd frames are damaged or truncated (the first, at offset {at}, {what})"
            )),
            _ => {}
        }
        if self.recovered > 0 {
            w.push(format!(
                "{} bytes were recovered from the damaged {}",
                self.recovered,
                if self.damaged == 1 { "frame" } else { "frames" }
            ));
        }
        if self.long.n > 0 {
            w.push(format!(
                "{} longer than {} {} skipped without being read (the first is line {}): netmem writes none that long",
                crate::format::count(self.long.n, "line", "lines"),
                crate::format::human_bytes(MAX_LINE as u64),
                if self.long.n == 1 { "was" } else { "were" },
                self.long.first
            ));
        }
        if self.bad.n > 0 {
            w.push(format!(
                "{} not netmem JSON {} skipped (the first is line {})",
                crate::format::count(self.bad.n, "line is", "lines are"),
                if self.bad.n == 1 {
                    "line and was"
                } else {
                    "lines and were"
                },
                self.bad.first
            ));
        }
        w.extend(self.sanity.iter().cloned());
        w.extend(self.io.clone());
        w
    }

    /// The problems, as the tail of an error that nothing was readable.
    fn short(&self) -> String {
        let w = self.sentences();
        if w.is_empty() {
            String::new()
        } else {
            format!(" ({})", w.join("; "))
        }
    }
}

/// What no kernel can have written, dropped before anyone diagnoses it: a
/// figure past what the kernel's types hold, and an interval whose time
/// runs backwards (with its group lines).
#[derive(Default)]
struct Sanity {
    last: Option<SystemTime>,
    /// The interval under way was dropped: so are its group lines.
    dropping: bool,
    figures: Tally,
    figure_first: String,
    backwards: Tally,
    backwards_first: String,
    untimed: Tally,
}

/// Why a figure past its bound is not the kernel's.
const COUNT: (u64, &str) = (MAX_COUNT, "the kernel counts them in an int");
const PAGES: (u64, &str) = (MAX_PAGES, "more pages than any machine has");
const BYTES: (u64, &str) = (MAX_BYTES, "more bytes than any machine has");

impl Sanity {
    /// Whether `l` is kept; figures no kernel writes are removed from it.
    fn keep(&mut self, l: &mut Line, line: u64) -> bool {
        match l {
            Line::Context(c) => {
                let t =
                    c.ts.as_deref()
                        .and_then(|s| humantime::parse_rfc3339(s).ok());
                match (t, self.last) {
                    (None, _) => {
                        self.untimed.add(line);
                        self.dropping = true;
                        return false;
                    }
                    (Some(t), Some(last)) if t < last => {
                        if self.backwards.n == 0 {
                            self.backwards_first = format!(
                                "line {line}: {} after {}",
                                humantime::format_rfc3339_nanos(t),
                                humantime::format_rfc3339_nanos(last)
                            );
                        }
                        self.backwards.add(line);
                        self.dropping = true;
                        return false;
                    }
                    (Some(t), _) => {
                        self.last = Some(t);
                        self.dropping = false;
                    }
                }
                for (field, f, bound) in [
                    ("orphans", &mut c.orphans, COUNT),
                    ("orphans_census", &mut c.orphans_census, COUNT),
                    ("max_orphans", &mut c.max_orphans, COUNT),
                    ("sockets_inuse", &mut c.sockets_inuse, COUNT),
                    ("tcp6_inuse", &mut c.tcp6_inuse, COUNT),
                    ("tw", &mut c.tw, COUNT),
                    ("udp_inuse", &mut c.udp_inuse, COUNT),
                    (
                        "memory_allocated_pages",
                        &mut c.memory_allocated_pages,
                        PAGES,
                    ),
                    (
                        "udp_memory_allocated_pages",
                        &mut c.udp_memory_allocated_pages,
                        PAGES,
                    ),
                ] {
                    self.check(field, f, bound, line);
                }
                if let Some(p) = c.page_size {
                    if !p.is_power_of_two() || !(4096..=1 << 20).contains(&p) {
                        c.page_size = None;
                        self.figure("page_size", p, line, "not a page size");
                    }
                }
            }
            Line::Group(_) if self.dropping => return false,
            Line::Group(g) => {
                for (field, f, bound) in [
                    ("sockets", &mut g.sockets, COUNT),
                    ("listeners", &mut g.listeners, COUNT),
                    ("time_wait", &mut g.time_wait, COUNT),
                    ("orphans", &mut g.orphans, COUNT),
                    ("rmem_bytes", &mut g.rmem_bytes, BYTES),
                    ("wmem_queued_bytes", &mut g.wmem_queued_bytes, BYTES),
                    ("fwd_alloc_bytes", &mut g.fwd_alloc_bytes, BYTES),
                    ("orphan_bytes", &mut g.orphan_bytes, BYTES),
                ] {
                    self.check(field, f, bound, line);
                }
            }
            Line::Event(e) => {
                let b = &mut e.body;
                for (field, f, bound) in [
                    ("orphans", &mut b.orphans, COUNT),
                    ("max_orphans", &mut b.max_orphans, COUNT),
                ] {
                    if let Some(n) = f.flatten().filter(|n| n.u64().is_some_and(|n| n > bound.0)) {
                        *f = None;
                        self.figure(field, n, line, bound.1);
                    }
                }
                if let Some(n) = b
                    .allocated_pages
                    .filter(|n| n.u64().is_some_and(|n| n > PAGES.0))
                {
                    b.allocated_pages = None;
                    self.figure("allocated_pages", n, line, PAGES.1);
                }
            }
            _ => {}
        }
        true
    }

    /// A figure past its bound is removed (read as absent).
    fn check(&mut self, field: &str, f: &mut Option<u64>, (max, why): (u64, &str), line: u64) {
        if let Some(n) = f.filter(|n| *n > max) {
            *f = None;
            self.figure(field, n, line, why);
        }
    }

    fn figure(&mut self, field: &str, x: impl Into<Int>, line: u64, why: &str) {
        if self.figures.n == 0 {
            self.figure_first = format!("\"{field}\": {} on line {line}: {why}", x.into());
        }
        self.figures.add(line);
    }
}

impl Sanity {
    fn sentences(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.figures.n > 0 {
            w.push(format!(
                "{} no kernel can produce {} dropped (the first, {})",
                crate::format::count(self.figures.n, "figure", "figures"),
                if self.figures.n == 1 { "was" } else { "were" },
                self.figure_first
            ));
        }
        // Said alike for both reasons an interval is dropped.
        let intervals = |t: &Tally, why: &str, first: String| {
            format!(
                "{} {why} {} dropped with {} group lines ({first})",
                crate::format::count(t.n, "interval", "intervals"),
                if t.n == 1 { "was" } else { "were" },
                if t.n == 1 { "its" } else { "their" },
            )
        };
        if self.backwards.n > 0 {
            w.push(intervals(
                &self.backwards,
                "whose time runs backwards",
                format!("the first, {}", self.backwards_first),
            ));
        }
        if self.untimed.n > 0 {
            w.push(intervals(
                &self.untimed,
                "without a readable time (\"ts\", RFC 3339)",
                format!("the first is line {}", self.untimed.first),
            ));
        }
        w
    }
}

/// `s`, at most `max` bytes: a longer one keeps its start and its end with
/// `…` between, so the cut is seen (names are data here, not yet escaped
/// for a terminal: see `format::Shown` for that).
pub fn cut_name(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let room = max.saturating_sub('…'.len_utf8());
    let mut head = room - room / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - room / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{}", &s[..head], &s[tail..]).into()
}

/// Names held by one reader, each at most [`MAX_NAME`] bytes, and at most
/// `CAP` of them: past it, a new name is summed into [`OTHER`] (and
/// counted, to say so).
#[derive(Clone, Debug, Default)]
pub struct Names<const CAP: usize> {
    held: BTreeSet<Arc<str>>,
    other: Option<Arc<str>>,
    /// Distinct names folded into `other`, by hash (counted up to a point).
    folded: HashSet<u64>,
    cut: u64,
}

/// Folded names counted exactly up to this many (a hash of 8 bytes each,
/// 18 MB at most): the issue's file had a million.
const FOLDED_COUNTED: usize = 1 << 20;

impl<const CAP: usize> Names<CAP> {
    /// The name `name` is held under: itself (cut to [`MAX_NAME`]), or
    /// [`OTHER`] once `CAP` others are held.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        let name = cut_name(name, MAX_NAME);
        if let Some(n) = self.held.get(&*name) {
            return n.clone();
        }
        if self.held.len() < CAP {
            if matches!(name, std::borrow::Cow::Owned(_)) {
                self.cut += 1;
            }
            let n: Arc<str> = Arc::from(&*name);
            self.held.insert(n.clone());
            return n;
        }
        if self.folded.len() < FOLDED_COUNTED {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            self.folded
                .insert(BuildHasherDefault::<DefaultHasher>::default().hash_one(&*name));
        }
        self.other.get_or_insert_with(|| Arc::from(OTHER)).clone()
    }

    /// Whether `name` (from [`Names::get`]) is the fold of the rest.
    pub fn is_other(&self, name: &Arc<str>) -> bool {
        self.other.as_ref().is_some_and(|o| Arc::ptr_eq(o, name))
    }

    /// What was not kept whole, as sentences naming what the names are
    /// (`group`, `groups`).
    pub fn dropped(&self, one: &str, many: &str) -> Vec<String> {
        let mut w = Vec::new();
        let n = self.folded.len() as u64;
        if n > 0 {
            w.push(format!(
                "{}{} past the first {CAP} {} summed into \"{OTHER}\"",
                if n >= FOLDED_COUNTED as u64 {
                    "at least "
                } else {
                    ""
                },
                crate::format::count(n, one, many),
                if n == 1 { "was" } else { "were" },
            ));
        }
        if self.cut > 0 {
            w.push(format!(
                "{} longer than {MAX_NAME} bytes {} cut in the middle (\"…\")",
                crate::format::count(self.cut, one, many),
                if self.cut == 1 { "was" } else { "were" }
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Vec<u8> {
        zstd::bulk::compress(s.as_bytes(), 3).unwrap()
    }

    const A: &str = "{\"type\":\"host\",\"ts\":\"t\"}\n{\"type\":\"context\",\"ts\":\"2026-11-29T10:00:01Z\"}\n";
    const B: &str = "{\"type\":\"context\",\"ts\":\"2026-11-29T10:00:02Z\"}\n";
    const C: &str = "{\"type\":\"context\",\"ts\":\"2026-11-29T10:00:03Z\"}\n";

    /// Each line's ts (its last two digits), and the warnings.
    fn read_bytes(b: &[u8]) -> (Vec<String>, Vec<String>) {
        let mut ts = Vec::new();
        let w = read_from(b, "test", |l| {
            let v = l.to_value();
            let t = v["ts"].as_str().unwrap();
            ts.push(
                t[t.len().saturating_sub(3)..]
                    .trim_end_matches('Z')
                    .to_string(),
            );
        })
        .unwrap();
        (ts, w)
    }

    #[test]
    fn frames_concatenate() {
        let mut b = frame(A);
        b.extend(frame(B));
        let (t, w) = read_bytes(&b);
        assert_eq!(t, ["t", "01", "02"]);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn a_damaged_frame_costs_that_frame_only() {
        let mut b = frame(A);
        let mut bad = frame(B);
        let mid = bad.len() / 2 + 2;
        for x in &mut bad[6..mid] {
            *x ^= 0x5a;
        }
        b.extend(bad);
        b.extend(frame(C));
        let (t, w) = read_bytes(&b);
        assert!(t.starts_with(&["t".to_string(), "01".to_string()]), "{t:?}");
        assert_eq!(t.last().unwrap(), "03");
        assert!(!w.is_empty());
    }

    /// A damaged block header makes the decoder take the next frames as
    /// the block's content: they are searched for again from the damaged
    /// frame's second byte.
    #[test]
    fn a_frame_swallowed_by_a_damaged_one_is_found_again() {
        let mut b = frame(A);
        let mut bad = frame(B);
        // The block header after the 6-byte frame header (magic, FHD,
        // content size): a raw block of 100 KB, past the next frames.
        let at = bad.len();
        bad.splice(
            6..9,
            [
                0x01 | (100_000u32 << 3) as u8,
                (100_000u32 >> 5) as u8,
                (100_000u32 >> 13) as u8,
            ],
        );
        assert_eq!(bad.len(), at);
        b.extend(bad);
        b.extend(frame(C));
        let (t, w) = read_bytes(&b);
        assert_eq!(t.last().unwrap(), "03", "{t:?} {w:?}");
    }

    #[test]
    fn a_cut_frame_yields_what_it_can() {
        let mut b = frame(A);
        let c = frame(&(B.to_string() + C));
        b.extend(&c[..c.len() - 3]);
        let (t, w) = read_bytes(&b);
        assert!(t.starts_with(&["t".to_string(), "01".to_string()]));
        assert!(w.iter().any(|w| w.contains("truncated")), "{w:?}");
    }

    #[test]
    fn garbage_and_cut_lines_are_counted() {
        let text = format!("{A}this is not json\n{B}{{\"type\":\"cont");
        let (t, w) = read_bytes(text.as_bytes());
        assert_eq!(t, ["t", "01", "02"]);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("2 lines"), "{w:?}");
    }

    #[test]
    fn stray_bytes_between_frames_are_skipped() {
        let mut b = frame(A);
        b.extend(b"\x00\x01garbage");
        b.extend(frame(B));
        let (t, w) = read_bytes(&b);
        assert_eq!(t, ["t", "01", "02"]);
        assert_eq!(
            w,
            [format!(
                "9 bytes at offset {} are not zstd data and were skipped",
                frame(A).len()
            )]
        );
    }

    /// A line past the cap is skipped as it streams, whole or across
    /// frames; one just under it is read.
    #[test]
    fn a_line_past_the_cap_is_skipped_and_counted() {
        let pad = |n: usize| {
            let head = "{\"type\":\"group\",\"group\":\"";
            let tail = "\"}\n";
            format!(
                "{head}{}{tail}",
                "x".repeat(n - head.len() - tail.len() + 1)
            )
        };
        let fits = pad(MAX_LINE);
        assert_eq!(fits.len(), MAX_LINE + 1);
        let text = format!("{A}{}{fits}{B}", pad(MAX_LINE + 1));
        let mut groups = 0;
        let w = read_from(text.as_bytes(), "t", |l| {
            groups += u64::from(l.to_value()["type"] == "group")
        })
        .unwrap();
        assert_eq!(groups, 1);
        assert_eq!(
            w,
            ["1 line longer than 1.0M was skipped without being read (the first is line 3): netmem writes none that long"]
        );
        // Zeros with no newline at all: nothing else.
        let zeros = zstd::bulk::compress(&vec![0u8; 3 * MAX_LINE], 1).unwrap();
        let e = read_from(&zeros[..], "zeros.nmr", |_| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "zeros.nmr is not a netmem recording: no line of `netmem record` or `netmem trace --json` output in it (1 line longer than 1.0M was skipped without being read (the first is line 1): netmem writes none that long)"
        );
    }

    #[test]
    fn figures_no_kernel_writes_are_dropped() {
        let text = format!(
            "{A}{}\n{}\n",
            r#"{"type":"context","ts":"2026-11-29T10:00:02Z","orphans":18446744073709551615,"max_orphans":0,"page_size":3}"#,
            r#"{"type":"group","ts":"2026-11-29T10:00:02Z","group":"g","rmem_bytes":9007199254740993,"orphans":4}"#
        );
        let mut lines = Vec::new();
        let w = read_from(text.as_bytes(), "t", |l| lines.push(l.to_value())).unwrap();
        assert_eq!(lines[2]["orphans"], Value::Null);
        assert_eq!(lines[2]["max_orphans"], 0);
        assert_eq!(lines[2]["page_size"], Value::Null);
        assert_eq!(lines[3]["rmem_bytes"], Value::Null);
        assert_eq!(lines[3]["orphans"], 4);
        assert_eq!(
            w,
            ["3 figures no kernel can produce were dropped (the first, \"orphans\": 18446744073709551615 on line 3: the kernel counts them in an int)"]
        );
    }

    #[test]
    fn intervals_whose_time_runs_backwards_are_dropped() {
        let text = format!(
            "{A}{C}{}\n{}\n{B}{}\n",
            r#"{"type":"group","ts":"2026-11-29T10:00:03Z","group":"kept"}"#,
            r#"{"type":"event","ts":"2026-11-29T10:00:00Z","event":"skb_drop"}"#,
            r#"{"type":"group","ts":"2026-11-29T10:00:02Z","group":"dropped"}"#,
        );
        let mut lines = Vec::new();
        let w = read_from(text.as_bytes(), "t", |l| {
            lines.push(l.to_value()["group"].clone())
        })
        .unwrap();
        // host, context 01, context 03, its group, the event (events are
        // not judged by time).
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[3], "kept");
        assert_eq!(
            w,
            ["1 interval whose time runs backwards was dropped with its group lines (the first, line 6: 2026-11-29T10:00:02.000000000Z after 2026-11-29T10:00:03.000000000Z)"]
        );
    }

    #[test]
    fn names_are_cut_and_folded() {
        let mut n = Names::<2>::default();
        let long = "a".repeat(MAX_NAME + 10);
        let a = n.get(&long);
        assert_eq!(a.len(), MAX_NAME);
        assert!(a.contains('…'));
        assert!(Arc::ptr_eq(&a, &n.get(&long)));
        n.get("b");
        let o = n.get("c");
        assert!(n.is_other(&o));
        assert_eq!(&*o, OTHER);
        n.get("d");
        n.get("c");
        assert_eq!(
            n.dropped("group", "groups"),
            [
                "2 groups past the first 2 were summed into \"other\"".to_string(),
                format!("1 group longer than {MAX_NAME} bytes was cut in the middle (\"…\")")
            ]
        );
        assert_eq!(cut_name("ééééé", 7), "é…é");
        assert_eq!(cut_name("ééééé", 6), "é…");
    }
}
