//! How numbers, times and names are written for people: byte units,
//! counts in words, RFC 3339 stamps, and names from other users made safe
//! for a terminal. Plain functions with no I/O, used by the model's rules,
//! the doctor and every output alike (so they live below all of them).

use std::time::SystemTime;

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

/// A wall-clock time as RFC 3339 with milliseconds, UTC.
/// A duration as people write it: `1d`, `7d`, `1h 30m`, `45s` (whole
/// days as days; humantime writes `1day`).
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let parts: Vec<String> = [
        ("d", s / 86_400),
        ("h", s / 3600 % 24),
        ("m", s / 60 % 60),
        ("s", s % 60),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(u, n)| format!("{n}{u}"))
    .collect();
    match parts.is_empty() {
        true => format!("{}ms", d.as_millis()),
        false => parts.join(" "),
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

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

/// Text for HTML: the five characters that matter escaped (every page
/// netmem writes: the report, serve's live page).
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters (a hostile process name's ESC, BEL, CR)
            // as text says them, as every other output does; newlines of
            // multi-line text stay.
            c if c != '\n' && escaped(c) => push_printable(&mut o, c),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_says_control_characters() {
        assert_eq!(
            html_escape("a\u{1b}[2J<b>\u{7}\n"),
            "a\\u{1b}[2J&lt;b&gt;\\u{7}\n"
        );
    }

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
