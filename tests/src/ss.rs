//! `ss` as the reference: its sockets parsed, and the 10% agreement rule.

#[derive(Debug, Default, Clone)]
pub struct SsSocket {
    pub state: String,
    pub local_port: u16,
    pub peer: String,
    pub peer_port: u16,
    /// With `ss -e`: the inode; 0 for an orphan.
    pub ino: Option<u64>,
    pub r: u64,
    pub w: u64,
    pub f: u64,
}

fn port_of(ep: &str) -> u16 {
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Parses `ss -tamnH` output: a socket line, then (with -m) its
/// `skmem:(r..,rb..,t..,tb..,f..,w..,o..,bl..,d..)` on the same or next line.
pub fn parse_ss(s: &str) -> Vec<SsSocket> {
    let mut out: Vec<SsSocket> = Vec::new();
    for line in s.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.is_empty() {
            continue;
        }
        if !toks[0].starts_with("skmem") && toks.len() >= 5 {
            out.push(SsSocket {
                state: toks[0].into(),
                local_port: port_of(toks[3]),
                peer: toks[4].into(),
                peer_port: port_of(toks[4]),
                ..Default::default()
            });
        }
        if let (Some(cur), Some(ino)) = (
            out.last_mut(),
            toks.iter().find_map(|t| t.strip_prefix("ino:")),
        ) {
            cur.ino = ino.parse().ok();
        }
        if let (Some(cur), Some(sk)) = (
            out.last_mut(),
            toks.iter().find(|t| t.starts_with("skmem:(")),
        ) {
            for f in sk
                .trim_start_matches("skmem:(")
                .trim_end_matches(')')
                .split(',')
            {
                let (k, v) = f.split_at(f.find(|c: char| c.is_ascii_digit()).unwrap_or(f.len()));
                let v: u64 = v.parse().unwrap_or(0);
                match k {
                    "r" => cur.r = v,
                    "w" => cur.w = v,
                    "f" => cur.f = v,
                    _ => {}
                }
            }
        }
    }
    out
}

/// |a - b| <= 10% of b (and both non-zero).
pub fn within_10pct(a: u64, b: u64) -> bool {
    a > 0 && b > 0 && (a as f64 - b as f64).abs() <= 0.10 * b as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ss_with_skmem_on_next_line() {
        let s = "ESTAB 0 2626560 127.0.0.1:18080 127.0.0.1:45678\n\t skmem:(r0,rb131072,t0,tb2626560,f4096,w2637824,o0,bl0,d3)\nLISTEN 0 128 127.0.0.1:18080 0.0.0.0:*\n\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)\n";
        let v = parse_ss(s);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].local_port, v[0].peer_port, v[0].w, v[0].f),
            (18080, 45678, 2637824, 4096)
        );
        assert_eq!(v[1].state, "LISTEN");
    }
}
