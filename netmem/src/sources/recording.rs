//! Reading a recording back: `netmem record`'s zstd frames or `netmem trace
//! --json` output, compressed or not, one contract line per line. A
//! recording cut short by a crash, a damaged frame or stray bytes still
//! gives every line that can be read, and says what could not be.

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A recording's lines, and what was wrong with the file.
#[derive(Debug, Default)]
pub struct Recording {
    pub lines: Vec<Value>,
    /// One sentence per problem, for the user.
    pub warnings: Vec<String>,
}

/// Reads `path`. Fails only when nothing of a recording is in it.
pub fn read(path: &str) -> Result<Recording> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read recording {path}"))?;
    let mut rec = Recording::default();
    let text = if raw.starts_with(&ZSTD_MAGIC) {
        decompress(&raw, &mut rec.warnings)
    } else {
        raw
    };
    parse_lines(&text, &mut rec);
    if rec.lines.is_empty() {
        bail!("{path} is not a netmem recording: no line of `netmem record` or `netmem trace --json` output in it");
    }
    if !rec.lines.iter().any(|l| l["type"] == "context") {
        bail!("{path} has no interval (no \"context\" line): record for at least one --interval");
    }
    Ok(rec)
}

/// Every frame in turn. A damaged frame is decoded as far as it goes, then
/// reading resumes at the next frame's magic number, so one bad interval
/// does not lose the rest.
fn decompress(raw: &[u8], warnings: &mut Vec<String>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < raw.len() {
        let rest = &raw[off..];
        if !rest.starts_with(&ZSTD_MAGIC) {
            match find_magic(rest) {
                Some(skip) => {
                    warnings.push(format!(
                        "{skip} bytes at offset {off} are not zstd data and were skipped"
                    ));
                    off += skip;
                    continue;
                }
                None => {
                    warnings.push(format!(
                        "{} bytes at the end (offset {off}) are not zstd data and were skipped",
                        rest.len()
                    ));
                    break;
                }
            }
        }
        match zstd::zstd_safe::find_frame_compressed_size(rest) {
            Ok(n) if n <= rest.len() => match zstd::stream::decode_all(&rest[..n]) {
                Ok(d) => {
                    out.extend_from_slice(&d);
                    off += n;
                    continue;
                }
                Err(e) => warnings.push(format!("zstd frame at offset {off} is damaged ({e})")),
            },
            _ => warnings.push(format!(
                "zstd frame at offset {off} is truncated or damaged (a recording cut short?)"
            )),
        }
        // Salvage what the damaged frame still yields, then resync.
        let salvaged = salvage(rest);
        if !salvaged.is_empty() {
            warnings.push(format!(
                "{} bytes were recovered from the damaged frame",
                salvaged.len()
            ));
            // A frame cut mid-line ends with a partial line; keep lines whole.
            out.extend_from_slice(&salvaged);
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        match find_magic(&rest[1..]) {
            Some(skip) => off += 1 + skip,
            None => break,
        }
    }
    out
}

/// What a streaming decoder produces before it meets the damage.
fn salvage(frame: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let Ok(mut d) = zstd::stream::read::Decoder::new(frame) else {
        return out;
    };
    let mut buf = [0u8; 16 * 1024];
    loop {
        match d.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn find_magic(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == ZSTD_MAGIC)
}

fn parse_lines(text: &[u8], rec: &mut Recording) {
    let mut bad = 0u64;
    let mut first_bad = None;
    let text = String::from_utf8_lossy(text);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() && v["type"].is_string() => rec.lines.push(v),
            _ => {
                bad += 1;
                first_bad.get_or_insert(n + 1);
            }
        }
    }
    if bad > 0 {
        rec.warnings.push(format!(
            "{bad} lines are not netmem JSON lines and were skipped (the first is line {})",
            first_bad.unwrap_or(0)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Vec<u8> {
        zstd::bulk::compress(s.as_bytes(), 3).unwrap()
    }

    const A: &str = "{\"type\":\"host\",\"ts\":\"t\"}\n{\"type\":\"context\",\"ts\":\"t1\"}\n";
    const B: &str = "{\"type\":\"context\",\"ts\":\"t2\"}\n";
    const C: &str = "{\"type\":\"context\",\"ts\":\"t3\"}\n";

    fn types(r: &Recording) -> Vec<String> {
        r.lines
            .iter()
            .map(|l| l["ts"].as_str().unwrap().to_string())
            .collect()
    }

    fn read_bytes(b: &[u8]) -> Recording {
        let mut r = Recording::default();
        let text = if b.starts_with(&ZSTD_MAGIC) {
            decompress(b, &mut r.warnings)
        } else {
            b.to_vec()
        };
        parse_lines(&text, &mut r);
        r
    }

    #[test]
    fn frames_concatenate() {
        let mut b = frame(A);
        b.extend(frame(B));
        let r = read_bytes(&b);
        assert_eq!(types(&r), ["t", "t1", "t2"]);
        assert!(r.warnings.is_empty());
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
        let r = read_bytes(&b);
        let t = types(&r);
        assert!(t.starts_with(&["t".to_string(), "t1".to_string()]), "{t:?}");
        assert_eq!(t.last().unwrap(), "t3");
        assert!(!r.warnings.is_empty());
    }

    #[test]
    fn a_cut_frame_yields_what_it_can() {
        let mut b = frame(A);
        let c = frame(&(B.to_string() + C));
        b.extend(&c[..c.len() - 3]);
        let r = read_bytes(&b);
        assert!(types(&r).starts_with(&["t".to_string(), "t1".to_string()]));
        assert!(
            r.warnings.iter().any(|w| w.contains("truncated")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn garbage_and_cut_lines_are_counted() {
        let text = format!("{A}this is not json\n{B}{{\"type\":\"cont");
        let r = read_bytes(text.as_bytes());
        assert_eq!(types(&r), ["t", "t1", "t2"]);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].starts_with("2 lines"), "{:?}", r.warnings);
    }

    #[test]
    fn stray_bytes_between_frames_are_skipped() {
        let mut b = frame(A);
        b.extend(b"\x00\x01garbage");
        b.extend(frame(B));
        let r = read_bytes(&b);
        assert_eq!(types(&r), ["t", "t1", "t2"]);
        assert_eq!(r.warnings.len(), 1);
    }
}
