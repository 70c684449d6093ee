//! Names as a reader of recordings holds them: cut in length, capped in
//! number, the rest summed into [`OTHER`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::{MAX_NAME, OTHER};

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
pub struct CappedNames<const CAP: usize> {
    held: BTreeSet<Arc<str>>,
    other: Option<Arc<str>>,
    /// Distinct names folded into `other`, by hash (counted up to a point).
    folded: HashSet<u64>,
    cut: u64,
}

/// Folded names counted exactly up to this many (a hash of 8 bytes each,
/// 18 MB at most): the file had a million.
const FOLDED_COUNTED: usize = 1 << 20;

impl<const CAP: usize> CappedNames<CAP> {
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

    /// Whether `name` (from [`CappedNames::get`]) is the fold of the rest.
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
