//! The output seam. Commands and the trace loop hand typed values (hook
//! status, events, intervals, summaries) to a [`Sink`]; each output format
//! is one implementation. A new output (the Prometheus exporter, a
//! recorder, a live view) is one new module here plus its command.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;

use crate::doctor::Report;
use crate::hooks::HookStatus;
use crate::model::proxy::ProxyView;
use crate::model::{Event, Interval, Summary};
use crate::sources::host::Host;

pub mod json;
pub mod prometheus;
pub mod record;
pub mod text;

/// A consumer of the model. Every method has a no-op default, so a sink
/// implements only what it shows.
pub trait Sink {
    /// The host facts a later diagnosis needs (`trace`'s first line).
    fn host(&mut self, _h: &Host) -> Result<()> {
        Ok(())
    }
    /// `netmem doctor`'s findings, ranked.
    fn report(&mut self, _r: &Report) -> Result<()> {
        Ok(())
    }
    /// `trace` is live: every hook is attached, on these tiers.
    fn coverage(&mut self, _hooks: &[HookStatus]) -> Result<()> {
        Ok(())
    }
    /// `netmem probes`: the full report of every hook's tier.
    fn probe_report(&mut self, _hooks: &[HookStatus]) -> Result<()> {
        Ok(())
    }
    /// The proxies naming the groups, at start and whenever one changes
    /// (its names, or what could not be read).
    fn proxies(&mut self, _p: &[Arc<ProxyView>]) -> Result<()> {
        Ok(())
    }
    fn event(&mut self, _e: &Event) -> Result<()> {
        Ok(())
    }
    /// One pass: a snapshot, or one interval of a trace.
    fn interval(&mut self, _i: &Interval) -> Result<()> {
        Ok(())
    }
    fn summary(&mut self, _s: &Summary) -> Result<()> {
        Ok(())
    }
    /// Whoever reads us (a pipe, a test) sees what was handed over so far.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Hands everything to each of several sinks, in order.
impl Sink for Vec<Box<dyn Sink>> {
    fn host(&mut self, h: &Host) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.host(h))
    }
    fn report(&mut self, r: &Report) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.report(r))
    }
    fn coverage(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.coverage(h))
    }
    fn probe_report(&mut self, h: &[HookStatus]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.probe_report(h))
    }
    fn proxies(&mut self, p: &[Arc<ProxyView>]) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.proxies(p))
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.event(e))
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.interval(i))
    }
    fn summary(&mut self, x: &Summary) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.summary(x))
    }
    fn flush(&mut self) -> Result<()> {
        self.iter_mut().try_for_each(|s| s.flush())
    }
}

/// The formats of standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// tables and one line per event, for people
    Text,
    /// JSON lines, the documented contract
    Json,
}

/// The sink for `format` over `out`; `rows` caps a text table (0: all).
pub fn sink<W: Write + 'static>(format: Format, out: W, rows: usize) -> Box<dyn Sink> {
    match format {
        Format::Text => Box::new(
            text::TextSink::new(out, rows)
                .with_color(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        ),
        Format::Json => Box::new(json::JsonSink::new(out)),
    }
}

/// The widest a name (a process's comm, a cgroup path, a proxy's or a
/// namespace's name) is shown in a table cell or a line of text, in
/// terminal columns: a cgroup path may run to kilobytes, and would pad every
/// row of a table to its width. Longer names are cut in the middle, where
/// '…' marks the cut (the kind prefix and the leaf stay readable; JSON, the
/// exposition and the report keep every name whole).
pub const NAME_MAX: usize = 64;

/// Whether `c` is written escaped when it reaches a terminal: every
/// control character (C0, DEL and C1: `char::is_control` is Unicode's Cc,
/// U+0000..U+001F, U+007F..U+009F), which can move the cursor, set the
/// title, clear the screen or start a line; and the bidirectional
/// controls, which reorder what a terminal shows (a name could then seem
/// to be another row's).
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` safe for a terminal: every control character (from a process,
/// cgroup or file name, an argument) is shown escaped (`\u{1b}`, `\n`),
/// the newline too, so text from others can neither act on the terminal
/// nor start a line of its own. Every message and every text cell goes
/// through here (or through [`Shown`], which also cuts).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(escaped) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_printable(&mut out, c);
    }
    out.into()
}

/// `1 line`, `2 lines`: every count a message gives in words.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn push_printable(out: &mut String, c: char) {
    if escaped(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// Terminal columns `s` takes (wide characters take two).
pub fn columns(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// A name on its way to a terminal: [`printable`], then cut to
/// [`NAME_MAX`] columns. Its `Display` pads to a width (`{:<w$}`,
/// `{:>w$}`) in terminal columns, so a formatter cannot forget either step.
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a>(pub &'a str);

impl Shown<'_> {
    /// What is shown, cut to `max` columns.
    pub fn cut(self, max: usize) -> String {
        // Each character's escaped text, whole: a cut never splits `\u{1b}`.
        let mut text = String::with_capacity(self.0.len());
        let mut pieces: Vec<(usize, usize)> = Vec::new(); // (end in text, columns)
        for c in self.0.chars() {
            let start = text.len();
            push_printable(&mut text, c);
            pieces.push((text.len(), columns(&text[start..])));
        }
        let total: usize = pieces.iter().map(|p| p.1).sum();
        if total <= max {
            return text;
        }
        // Room for '…', half of the rest to each end.
        let room = max.saturating_sub(1);
        let (head_room, tail_room) = (room - room / 2, room / 2);
        let (mut head_end, mut used) = (0, 0);
        for &(end, w) in &pieces {
            if used + w > head_room {
                break;
            }
            used += w;
            head_end = end;
        }
        let (mut tail_start, mut used) = (text.len(), 0);
        for (i, &(_, w)) in pieces.iter().enumerate().rev() {
            if used + w > tail_room {
                break;
            }
            used += w;
            tail_start = if i == 0 { 0 } else { pieces[i - 1].0 };
        }
        format!(
            "{}…{}",
            &text[..head_end],
            &text[tail_start.max(head_end)..]
        )
    }

    /// Columns it takes when shown.
    pub fn width(self) -> usize {
        columns(&self.cut(NAME_MAX))
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        let s = self.cut(NAME_MAX);
        let pad = f.width().unwrap_or(0).saturating_sub(columns(&s));
        let (before, after) = match f.align() {
            Some(std::fmt::Alignment::Right) => (pad, 0),
            Some(std::fmt::Alignment::Center) => (pad / 2, pad - pad / 2),
            _ => (0, pad),
        };
        let fill = f.fill();
        for _ in 0..before {
            f.write_char(fill)?;
        }
        f.write_str(&s)?;
        for _ in 0..after {
            f.write_char(fill)?;
        }
        Ok(())
    }
}

/// A file the user named with `-o` must not exist unless `force`:
/// `record` and `report` refuse the same way (checked before any work).
pub fn refuse_existing(path: &std::path::Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(exists(path));
    }
    Ok(())
}

/// Creates `path` for writing; an existing file is replaced only with
/// `force`.
pub fn create_file(path: &std::path::Path, force: bool) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

fn exists(path: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} exists: choose another -o, or pass --force to replace it",
        path.display()
    )
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The send queue's column (the sum of sk_wmem_queued, `ss -m`'s `w`):
/// one name in every table, text and `top`.
pub const SEND_QUEUE_COLUMN: &str = "WMEMQ";

/// Human-readable byte count (`12.3M`), binary units.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\x1b[2Jb\t"), "a\\u{1b}[2Jb\\t");
        // A newline inside a name would start a line of its own.
        assert_eq!(printable("x\nFORGED\r"), "x\\nFORGED\\r");
        // DEL, C1 (CSI, NEL) and a bidi override.
        assert_eq!(
            printable("\x7f\u{9b}2J\u{85}\u{202e}é"),
            "\\u{7f}\\u{9b}2J\\u{85}\\u{202e}é"
        );
    }

    #[test]
    fn names_are_cut_in_the_middle_to_the_cap() {
        assert_eq!(Shown("short").to_string(), "short");
        let long = format!("cgroup:/{}/leaf.scope", "a".repeat(4096));
        let s = Shown(&long).to_string();
        assert_eq!(columns(&s), NAME_MAX, "{s}");
        assert!(
            s.starts_with("cgroup:/aaa") && s.ends_with("a/leaf.scope"),
            "{s}"
        );
        assert_eq!(s.matches('…').count(), 1);
        // An escape is kept whole or cut whole, never split.
        let esc = "\x1b".repeat(40);
        let s = Shown(&esc).to_string();
        assert!(columns(&s) <= NAME_MAX);
        assert_eq!(s.replace("\\u{1b}", "").replace('…', ""), "", "{s}");
        // Wide characters count two columns.
        let wide = "界".repeat(50);
        assert!(columns(&Shown(&wide).to_string()) <= NAME_MAX);
    }

    #[test]
    fn shown_pads_in_columns() {
        assert_eq!(format!("[{:<6}]", Shown("界a")), "[界a   ]");
        assert_eq!(format!("[{:>6}]", Shown("a\x07")), "[a\\u{7}]");
        assert_eq!(format!("[{:>8}]", Shown("a\x07")), "[  a\\u{7}]");
        assert_eq!(Shown("a\x07").width(), 6);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(2048), "2.0K");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5M");
    }
}
