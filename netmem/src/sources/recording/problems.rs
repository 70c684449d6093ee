//! What was wrong with a recording, counted as it streams and said once
//! at the end.

use super::MAX_LINE;

/// How many times something happened, and where first.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    pub(super) n: u64,
    pub(super) first: u64,
}

impl Tally {
    pub(super) fn add(&mut self, at: u64) {
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
pub(super) struct Problems {
    /// Runs of bytes that are not zstd data: places, bytes, first offset,
    /// and the run under way.
    pub(super) junk_places: u64,
    pub(super) junk_bytes: u64,
    pub(super) junk_first: Option<(u64, u64)>,
    pub(super) junk_run: Option<(u64, u64)>,
    /// Damaged frames: how many, the first's offset and what was wrong.
    pub(super) damaged: u64,
    pub(super) damaged_first: Option<(u64, String)>,
    pub(super) recovered: u64,
    pub(super) bad: Tally,
    pub(super) long: Tally,
    pub(super) io: Option<String>,
    pub(super) sanity: Vec<String>,
}

impl Problems {
    pub(super) fn junk(&mut self, at: u64, n: u64) {
        self.junk_bytes += n;
        match &mut self.junk_run {
            Some((start, len)) if *start + *len == at => *len += n,
            _ => {
                self.end_junk();
                self.junk_run = Some((at, n));
            }
        }
    }

    pub(super) fn end_junk(&mut self) {
        if let Some(run) = self.junk_run.take() {
            self.junk_places += 1;
            self.junk_first.get_or_insert(run);
        }
    }

    pub(super) fn damaged(&mut self, at: u64, what: &str, recovered: u64) {
        self.damaged += 1;
        self.damaged_first.get_or_insert((at, what.to_string()));
        self.recovered += recovered;
    }

    pub(super) fn sentences(&self) -> Vec<String> {
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
    pub(super) fn short(&self) -> String {
        let w = self.sentences();
        if w.is_empty() {
            String::new()
        } else {
            format!(" ({})", w.join("; "))
        }
    }
}
