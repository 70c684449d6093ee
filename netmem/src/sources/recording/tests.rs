//! Reading damaged, cut and hostile recordings.

use super::*;
use std::sync::Arc;

fn frame(s: &str) -> Vec<u8> {
    zstd::bulk::compress(s.as_bytes(), 3).unwrap()
}

const A: &str =
    "{\"type\":\"host\",\"ts\":\"t\"}\n{\"type\":\"context\",\"ts\":\"2026-11-29T10:00:01Z\"}\n";
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
    let mut n = CappedNames::<2>::default();
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
