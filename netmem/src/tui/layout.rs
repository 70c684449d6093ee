//! Which columns a table shows in a given width, and how wide each is.
//! A number is shown whole with its unit or not at all: a column that does
//! not fit whole is dropped, least important first. Only text (a group's
//! name, an owner, a proxy's name) shrinks, with an ellipsis; a sparkline
//! shows fewer samples; a list of events shows fewer whole items. Plain
//! strings in, plain strings out: no terminal here, so every width is
//! unit-tested.

use std::collections::VecDeque;

use ratatui::text::Span;

/// A column that is never dropped (the name, the memory).
pub const KEEP: u8 = u8::MAX;
/// Blank columns between two columns (ratatui's Table default).
pub const SPACING: u16 = 1;
/// The narrowest a name gets before a kept column beside it is dropped.
pub const NARROWEST: u16 = 4;

/// What a column's cells are, which says how they may narrow.
pub enum Cells<'a> {
    /// Numbers: whole or not at all.
    Whole(Vec<String>),
    /// Text narrowed with an ellipsis, never below `min` unless the column
    /// is the table's last resort (see [`fit`]).
    Text { cells: Vec<String>, min: u16 },
    /// Whole items (`skb_drop=3`) as many as fit, then `…`; takes the room
    /// left over.
    Items(Vec<Vec<String>>),
    /// A sparkline per row, as many of the latest samples as fit (up to
    /// `most`).
    Spark {
        history: Vec<&'a VecDeque<u64>>,
        most: u16,
    },
}

pub struct Column<'a> {
    pub head: &'static str,
    pub cells: Cells<'a>,
    /// Drop order: the lowest goes first; [`KEEP`] stays.
    pub rank: u8,
}

/// A column's needs, as [`fit`] sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The width it wants: its widest cell or its header.
    pub want: u16,
    /// The narrowest it may be: `want` for numbers.
    pub min: u16,
    pub rank: u8,
    /// Takes what is left once every other column has its `want`.
    pub fill: bool,
}

/// Display width of `s` (as the terminal draws it).
pub fn width(s: &str) -> u16 {
    Span::raw(s).width().min(u16::MAX as usize) as u16
}

/// Names on their way to the screen: the one escaping rule every text
/// output uses (control characters, C1, DEL and bidi controls escaped).
pub fn printable(s: &str) -> String {
    crate::format::printable(s).into_owned()
}

/// `s` in at most `w` columns: whole when it fits; else cut at the last
/// word boundary that fits (a char cut when the first word does not),
/// ending in `…`.
pub fn clip(s: &str, w: u16) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let room = w - 1;
    let (mut cut, mut used, mut last_space) = (0, 0u16, None);
    for (i, c) in s.char_indices() {
        let cw = width(c.encode_utf8(&mut [0; 4]));
        if used + cw > room {
            break;
        }
        if c == ' ' {
            last_space = Some(i);
        }
        used += cw;
        cut = i + c.len_utf8();
    }
    let end = if s[cut..].starts_with(' ') {
        cut
    } else {
        last_space.unwrap_or(cut)
    };
    let head = match s[..end].trim_end() {
        "" => &s[..cut],
        h => h,
    };
    format!("{head}…")
}

/// As many whole `items` as fit in `w`, space-separated, then `…` when
/// some are left out.
pub fn whole_items(items: &[String], w: u16) -> String {
    let mut out = String::new();
    for (i, it) in items.iter().enumerate() {
        let sep = u16::from(!out.is_empty());
        // Room for this item, and for the ` …` after it unless it is last.
        let after = if i + 1 == items.len() { 0 } else { 2 };
        if width(&out) + sep + width(it) + after > w {
            let ell = if out.is_empty() { "…" } else { " …" };
            if width(&out) + width(ell) <= w {
                out += ell;
            }
            return out;
        }
        if sep == 1 {
            out.push(' ');
        }
        out += it;
    }
    out
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` samples as block characters, scaled to their peak.
pub fn sparkline(history: &VecDeque<u64>, width: usize) -> String {
    let take = history.len().min(width);
    let tail: Vec<u64> = history.iter().skip(history.len() - take).copied().collect();
    let peak = tail.iter().copied().max().unwrap_or(0);
    tail.iter()
        .map(|&v| {
            if peak == 0 {
                BARS[0]
            } else {
                BARS[((v as f64 / peak as f64) * 7.0).round() as usize]
            }
        })
        .collect()
}

impl Column<'_> {
    pub fn need(&self) -> Need {
        let head = width(self.head);
        let widest = |v: &mut dyn Iterator<Item = u16>| v.max().unwrap_or(0).max(head);
        match &self.cells {
            Cells::Whole(c) => {
                let w = widest(&mut c.iter().map(|s| width(s)));
                Need {
                    want: w,
                    min: w,
                    rank: self.rank,
                    fill: false,
                }
            }
            Cells::Text { cells, min } => {
                let w = widest(&mut cells.iter().map(|s| width(s)));
                Need {
                    want: w,
                    min: (*min).max(head).min(w),
                    rank: self.rank,
                    fill: false,
                }
            }
            Cells::Items(rows) => {
                let want = widest(&mut rows.iter().map(|r| width(&r.join(" "))));
                // At least one whole item, and room for the `…` after it.
                let min = rows
                    .iter()
                    .filter_map(|r| {
                        let first = width(r.first()?);
                        Some(if r.len() > 1 { first + 2 } else { first })
                    })
                    .max()
                    .unwrap_or(0)
                    .max(head);
                Need {
                    want,
                    min,
                    rank: self.rank,
                    fill: true,
                }
            }
            Cells::Spark { most, .. } => {
                // As wide as a full minute from the start: the table does
                // not shift as the history fills.
                let want = (*most).max(head);
                Need {
                    want,
                    min: head.min(want),
                    rank: self.rank,
                    fill: false,
                }
            }
        }
    }

    /// Row `i`'s cell in `w` columns.
    pub fn cell(&self, i: usize, w: u16) -> String {
        match &self.cells {
            Cells::Whole(c) => c[i].clone(),
            Cells::Text { cells, .. } => clip(&cells[i], w),
            Cells::Items(rows) => whole_items(&rows[i], w),
            Cells::Spark { history, .. } => sparkline(history[i], w as usize),
        }
    }

    pub fn rows(&self) -> usize {
        match &self.cells {
            Cells::Whole(c) => c.len(),
            Cells::Text { cells, .. } => cells.len(),
            Cells::Items(r) => r.len(),
            Cells::Spark { history, .. } => history.len(),
        }
    }
}

/// Each column's width in `width` columns, None where it is dropped.
///
/// The [`KEEP`] columns first, then the others from the highest rank down,
/// each at its `min`, as long as it fits whole; so a number column is
/// dropped rather than cut, and a lower-ranked narrow column may still
/// take the room a wider one could not. The room left goes to text and
/// sparklines up to their `want` (left to right), then to the `fill`
/// column. When the kept columns alone are too wide, the first of them
/// (the name) narrows below its `min`; when even that is not enough, the
/// other kept columns go from the right.
pub fn fit(needs: &[Need], width: u16) -> Vec<Option<u16>> {
    let mut w: Vec<Option<u16>> = vec![None; needs.len()];
    // Width of the shown columns with `extra` more.
    let used = |w: &[Option<u16>], extra: Option<u16>| -> u16 {
        let shown: Vec<u16> = w.iter().flatten().copied().chain(extra).collect();
        shown.iter().sum::<u16>() + SPACING * (shown.len() as u16).saturating_sub(1)
    };
    // Kept columns: all of them, even if too wide (fixed below).
    for (i, n) in needs.iter().enumerate() {
        if n.rank == KEEP {
            w[i] = Some(n.min);
        }
    }
    let mut order: Vec<usize> = (0..needs.len()).filter(|&i| w[i].is_none()).collect();
    // Highest rank first; among equals, the leftmost.
    order.sort_by_key(|&i| (std::cmp::Reverse(needs[i].rank), i));
    for i in order {
        if used(&w, Some(needs[i].min)) <= width {
            w[i] = Some(needs[i].min);
        }
    }
    if used(&w, None) > width {
        // Only kept columns are too wide: the first (the name) narrows, to
        // [`NARROWEST`] at least while others are left, and kept columns
        // go from the right until it has that.
        let Some(first) = w.iter().position(Option::is_some) else {
            return w;
        };
        let floor = NARROWEST.min(needs[first].min);
        loop {
            let mut others = w.clone();
            others[first] = None;
            let rest = used(&others, None);
            let room = width.saturating_sub(rest + if rest > 0 { SPACING } else { 0 });
            match others.iter().rposition(Option::is_some) {
                Some(last) if room < floor => w[last] = None,
                _ => {
                    w[first] = Some(needs[first].min.min(room));
                    return w;
                }
            }
        }
    }
    let mut spare = width - used(&w, None);
    for (i, n) in needs.iter().enumerate() {
        if let Some(cur) = w[i] {
            if !n.fill && n.want > cur {
                let grow = (n.want - cur).min(spare);
                w[i] = Some(cur + grow);
                spare -= grow;
            }
        }
    }
    if let Some(i) = (0..needs.len()).find(|&i| needs[i].fill && w[i].is_some()) {
        w[i] = w[i].map(|c| c + spare);
    }
    w
}

/// The columns laid out in `width`: for each shown column, its index and
/// width.
pub fn lay_out(cols: &[Column], width: u16) -> Vec<(usize, u16)> {
    let needs: Vec<Need> = cols.iter().map(Column::need).collect();
    fit(&needs, width)
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| w.map(|w| (i, w)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(head: &'static str, rank: u8, cells: &[&str]) -> Column<'static> {
        Column {
            head,
            cells: Cells::Whole(cells.iter().map(|s| s.to_string()).collect()),
            rank,
        }
    }

    fn total(w: &[Option<u16>]) -> u16 {
        let shown: Vec<u16> = w.iter().flatten().copied().collect();
        shown.iter().sum::<u16>() + SPACING * (shown.len() as u16).saturating_sub(1)
    }

    #[test]
    fn clip_keeps_whole_words_and_marks_the_cut() {
        assert_eq!(clip("listen:8080", 20), "listen:8080");
        assert_eq!(clip("listen:8080@tenant", 12), "listen:8080…");
        assert_eq!(
            clip("haproxy[812] /system.slice/x.service", 20),
            "haproxy[812]…"
        );
        assert_eq!(clip("abc", 1), "…");
        assert_eq!(clip("abc", 0), "");
        for w in 0..30 {
            assert!(width(&clip("doctor: [info] listen:21000 holds 4.0M", w)) <= w);
        }
    }

    #[test]
    fn items_are_whole_or_left_out() {
        let it: Vec<String> = ["exceed=3", "skb_drop=12", "new=1"]
            .map(String::from)
            .to_vec();
        assert_eq!(whole_items(&it, 40), "exceed=3 skb_drop=12 new=1");
        assert_eq!(whole_items(&it, 26), "exceed=3 skb_drop=12 new=1");
        assert_eq!(whole_items(&it, 25), "exceed=3 skb_drop=12 …");
        assert_eq!(whole_items(&it, 12), "exceed=3 …");
        assert_eq!(whole_items(&it, 9), "…");
        assert_eq!(whole_items(&[], 9), "");
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("ok"), "ok");
        assert_eq!(printable("a\x1b[2Jb\x07"), "a\\u{1b}[2Jb\\u{7}");
    }

    #[test]
    fn drops_the_lowest_rank_first_and_never_cuts_a_number() {
        let cols = [
            Column {
                head: "GROUP",
                cells: Cells::Text {
                    cells: vec!["backend:127.0.0.1:21000".into()],
                    min: 24,
                },
                rank: KEEP,
            },
            whole("MEMORY", KEEP, &["1023.5K"]),
            whole("RMEM", 9, &["1.0M"]),
            whole("SOCKS", 8, &["123456"]),
            whole("ABORTS", 5, &["0"]),
        ];
        // Everything at 80; at 44 the aborts go; at 38 the sockets too
        // (the memory split outranks counts).
        let shown = |w| -> Vec<&str> {
            lay_out(&cols, w)
                .into_iter()
                .map(|(i, _)| cols[i].head)
                .collect()
        };
        assert_eq!(shown(80), ["GROUP", "MEMORY", "RMEM", "SOCKS", "ABORTS"]);
        assert_eq!(shown(44), ["GROUP", "MEMORY", "RMEM", "SOCKS"]);
        assert_eq!(shown(38), ["GROUP", "MEMORY", "RMEM"]);
        assert_eq!(shown(31), ["GROUP", "MEMORY"]);
        // Narrower than the name and the memory: the name narrows.
        assert_eq!(lay_out(&cols, 20), [(0, 12), (1, 7)]);
        // Narrower than the memory alone: the name only, clipped.
        assert_eq!(lay_out(&cols, 6), [(0, 6)]);
    }

    /// Every width from 0 to 200, over a table like top's: never wider
    /// than the screen, every shown number at its full width, the kept
    /// columns there whenever they fit, and a column shown only if every
    /// higher-ranked one that is narrower is shown too.
    #[test]
    fn fits_at_every_width() {
        let needs = [
            Need {
                want: 23,
                min: 23,
                rank: KEEP,
                fill: false,
            },
            Need {
                want: 7,
                min: 7,
                rank: KEEP,
                fill: false,
            },
            Need {
                want: 12,
                min: 5,
                rank: 1,
                fill: false,
            },
            Need {
                want: 7,
                min: 7,
                rank: 9,
                fill: false,
            },
            Need {
                want: 5,
                min: 5,
                rank: 10,
                fill: false,
            },
            Need {
                want: 6,
                min: 6,
                rank: 8,
                fill: false,
            },
            Need {
                want: 20,
                min: 11,
                rank: 2,
                fill: false,
            },
            Need {
                want: 30,
                min: 10,
                rank: 3,
                fill: true,
            },
        ];
        for width in 0..=200u16 {
            let w = fit(&needs, width);
            assert!(total(&w) <= width, "{width}: {w:?}");
            for (n, got) in needs.iter().zip(&w) {
                if let Some(got) = got {
                    if n.min == n.want && n.rank != KEEP {
                        assert_eq!(*got, n.want, "{width}: a number cut: {w:?}");
                    }
                    assert!(*got >= n.min || n.rank == KEEP, "{width}: {w:?}");
                }
            }
            if width >= 23 + 1 + 7 {
                assert_eq!((w[0], w[1]), (Some(23), Some(7)), "{width}");
            }
            for (i, a) in needs.iter().enumerate() {
                for (j, b) in needs.iter().enumerate() {
                    if w[i].is_some() && a.rank < b.rank && b.min <= a.min {
                        assert!(w[j].is_some(), "{width}: {i} shown, {j} not: {w:?}");
                    }
                }
            }
        }
        // Wide: every column at its want, the fill column with the rest.
        let w = fit(&needs, 200);
        assert!(w.iter().all(Option::is_some));
        assert_eq!(total(&w), 200);
    }

    #[test]
    fn sparkline_scales_to_its_peak() {
        let h: VecDeque<u64> = [0, 5, 10].into_iter().collect();
        assert_eq!(sparkline(&h, 10), "▁▅█");
        assert_eq!(sparkline(&h, 2), "▅█");
        assert_eq!(sparkline(&Default::default(), 5), "");
    }
}
