//! `netmem record` and `netmem report` with real parts: recordings of real
//! sockets in a namespace of the test's own, reports rendered by a real
//! headless Chromium (Debian's `chromium`), damaged files, the size limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netmem_tests::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netmem-report-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn netmem(args: &[&str]) -> Output {
    Command::new(netmem_bin())
        .args(args)
        .output()
        .expect("run netmem")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "netmem failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `netmem record` on `ns` in the background.
fn record(ns: &Netns, out: &Path, args: &[&str]) -> std::process::Child {
    Command::new(netmem_bin())
        .args(["record", "-o", out.to_str().unwrap(), "--netns", &ns.name])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netmem record")
}

fn wait_ok(c: std::process::Child) -> String {
    let o = c.wait_with_output().unwrap();
    ok(&o)
}

/// Headless Chromium on a file: the page rendered to a PNG, and the DOM
/// it built.
fn chromium(html: &Path, png: &Path) -> String {
    netmem_tests::browser::chromium(&format!("file://{}", html.display()), png)
}

/// Share of pixels that are not (near) white, and how many distinct
/// colours there are.
fn ink(png: &Path) -> (f64, usize) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let mut inked = 0usize;
    let mut colours = std::collections::HashSet::new();
    let n = (info.width * info.height) as usize;
    for p in buf[..n * px].chunks(px) {
        if p[..3].iter().any(|&c| c < 235) {
            inked += 1;
        }
        colours.insert((p[0] >> 3, p[1] >> 3, p[2] >> 3));
    }
    (inked as f64 / n as f64, colours.len())
}

/// The row of `group` in the report's groups table, as its cells' text.
fn group_row(html: &str, group: &str) -> Vec<String> {
    let start = html
        .find(&format!("<tr><td>{group}</td>"))
        .unwrap_or_else(|| panic!("no row for {group} in the groups table"));
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..];
            c[..c.find("</td>").unwrap_or(c.len())].to_string()
        })
        .collect()
}

/// Each plot's `<svg>` in the report, with its kind (`memory`, ...) and
/// run (`A`, or `B` in a comparison).
fn plots(page: &str) -> Vec<(String, String, String)> {
    page.split("<figure class=\"plot\"")
        .skip(1)
        .map(|f| {
            let head = &f[..f.find('>').unwrap()];
            let svg = &f[f.find("<svg").unwrap()..];
            (
                attr(head, "data-plot").unwrap().to_string(),
                attr(head, "data-run").unwrap().to_string(),
                svg[..svg.find("</svg>").unwrap()].to_string(),
            )
        })
        .collect()
}

/// The value of attribute `name` in an SVG tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Every `<NAME .../>` tag of an SVG.
fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    // Each with the space before its first attribute, as `attr` wants.
    svg.split(&format!("<{name}"))
        .skip(1)
        .filter(|t| t.starts_with(' '))
        .map(|t| &t[..t.find('>').unwrap()])
        .collect()
}

/// (x0, y0, x1, y1) of each chart's plotting area, from its axes as drawn:
/// the long black vertical line (y axis) and the long black horizontal line
/// (x axis) that meet at its lower left corner.
fn plot_areas(svg: &str) -> Vec<[f64; 4]> {
    let mut vertical = Vec::new();
    let mut horizontal = Vec::new();
    for t in tags(svg, "polyline") {
        if attr(t, "stroke") != Some("#000000") || attr(t, "opacity") != Some("1") {
            continue;
        }
        let pts: Vec<(f64, f64)> = attr(t, "points")
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        if let [a, b] = pts[..] {
            if a.0 == b.0 && (a.1 - b.1).abs() > 50.0 {
                vertical.push((a.0, a.1.min(b.1), a.1.max(b.1)));
            } else if a.1 == b.1 && (a.0 - b.0).abs() > 50.0 {
                horizontal.push((a.1, a.0.min(b.0), a.0.max(b.0)));
            }
        }
    }
    vertical
        .iter()
        .filter_map(|&(x, top, bottom)| {
            let &(_, _, right) = horizontal
                .iter()
                .find(|h| (h.0 - bottom).abs() <= 2.0 && (h.1 - x).abs() <= 2.0)?;
            Some([x, top, right, bottom])
        })
        .collect()
}

/// (x0, y0, x1, y1) of each legend box (the plots' only unfilled rectangles).
fn legend_boxes(svg: &str) -> Vec<[f64; 4]> {
    tags(svg, "rect")
        .into_iter()
        .filter(|t| attr(t, "fill") == Some("none"))
        .map(|t| {
            let n = |k| attr(t, k).unwrap().parse::<f64>().unwrap();
            [n("x"), n("y"), n("x") + n("width"), n("y") + n("height")]
        })
        .collect()
}

/// The text of every `<text>` anchored `anchor` (`end`: y labels,
/// `middle`: titles and x labels).
fn texts(svg: &str, anchor: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter(|t| attr(t, "text-anchor") == Some(anchor))
        .map(|t| {
            t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]
                .trim()
                .to_string()
        })
        .collect()
}

/// `48.0M` as bytes.
fn label_bytes(l: &str) -> Option<f64> {
    let (num, unit) = l.split_at(l.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(l.len()));
    let k = match unit {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * 1024f64.powi(k))
}

/// Seconds of the day of `HH:MM:SS` (or `HH:MM`).
fn day_secs(l: &str) -> Option<u32> {
    let p: Vec<u32> = l
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match p[..] {
        [h, m, s] if l.len() == 8 => Some(h * 3600 + m * 60 + s),
        [h, m] if l.len() == 5 => Some(h * 3600 + m * 60),
        _ => None,
    }
}

/// The plots of a report read at a glance: every legend sits outside every
/// plotting area (and inside the picture), byte axes tick on binary steps,
/// and the x axes name wall-clock times within the recording (run `run`
/// of the page).
fn check_plots(page: &str, run: &str, recording: &Path) {
    let lines = String::from_utf8(
        zstd::stream::decode_all(&std::fs::read(recording).unwrap()[..]).unwrap(),
    )
    .unwrap();
    let stamps: Vec<u32> = lines
        .lines()
        .filter(|l| l.contains("\"type\":\"context\""))
        .map(|l| {
            let ts = &l[l.find("\"ts\":\"").unwrap() + 6..];
            day_secs(&ts[11..19]).unwrap()
        })
        .collect();
    let (first, last) = (stamps[0], *stamps.last().unwrap());
    let all: Vec<(String, String)> = plots(page)
        .into_iter()
        .filter(|p| p.1 == run)
        .map(|p| (p.0, p.2))
        .collect();
    assert_eq!(all.len(), 4, "plots of {run}");
    for (kind, svg) in &all {
        let width: f64 = attr(svg, "width").unwrap().parse().unwrap();
        let areas = plot_areas(svg);
        let boxes = legend_boxes(svg);
        assert!(!areas.is_empty(), "{kind}: no plotting area found");
        assert!(!boxes.is_empty(), "{kind}: no legend box found");
        for b in &boxes {
            assert!(
                b[0] >= 0.0 && b[2] <= width,
                "{kind}: legend {b:?} past the picture"
            );
            for a in &areas {
                let apart = b[2] <= a[0] || a[2] <= b[0] || b[3] <= a[1] || a[3] <= b[1];
                assert!(apart, "{kind}: legend {b:?} covers the plotting area {a:?}");
            }
        }
        let times: Vec<u32> = texts(svg, "middle")
            .iter()
            .filter_map(|l| day_secs(l))
            .collect();
        // (A recording of a second or two has one tick.)
        assert!(
            !times.is_empty(),
            "{kind}: x labels are not times of day: {:?}",
            texts(svg, "middle")
        );
        for t in &times {
            assert!(
                *t + 1 >= first && *t <= last + 1,
                "{kind}: x label {t} s outside the recording's {first}..{last}"
            );
        }
        assert!(
            svg.contains("time (UTC) on 20"),
            "{kind}: the x axis does not say UTC and the date"
        );
        if kind == "memory" {
            // A stacked band shows its legend swatch's colour: fills are
            // opaque (a translucent layer drawn from 0 over the larger ones
            // mixes with every layer beneath) and each is a swatch's.
            let swatches: Vec<&str> = tags(svg, "rect")
                .into_iter()
                .filter_map(|t| attr(t, "fill"))
                .collect();
            let bands: Vec<&str> = tags(svg, "polygon")
                .into_iter()
                .filter(|t| attr(t, "fill").is_some_and(|f| f != "none"))
                .collect();
            assert!(!bands.is_empty(), "{kind}: no stacked band drawn");
            for b in &bands {
                let fill = attr(b, "fill").unwrap();
                assert!(
                    attr(b, "opacity").is_none_or(|o| o == "1")
                        && attr(b, "fill-opacity").is_none_or(|o| o == "1"),
                    "{kind}: band {fill} is translucent: its colour mixes with the bands beneath"
                );
                assert!(
                    swatches.contains(&fill),
                    "{kind}: band colour {fill} is no legend swatch's ({swatches:?})"
                );
            }
            let mut ticks: Vec<f64> = texts(svg, "end")
                .iter()
                .map(|l| label_bytes(l).unwrap_or_else(|| panic!("y label {l:?} is not bytes")))
                .collect();
            ticks.sort_by(f64::total_cmp);
            ticks.dedup();
            assert!(ticks.len() >= 4, "{ticks:?}");
            // Binary steps: each tick a small multiple of a power of two
            // (16M, 48M, 1.5G), never 47.7M.
            for t in ticks.iter().filter(|t| **t > 0.0) {
                let mut odd = *t;
                while odd.fract() == 0.0 && odd % 2.0 == 0.0 {
                    odd /= 2.0;
                }
                assert!(
                    odd.fract() == 0.0 && odd <= 15.0,
                    "y tick {t} bytes is not on a binary step: {ticks:?}"
                );
            }
        }
    }
}

/// Queued data on one port, then an orphan burst on another, recorded and
/// drawn: the report names both groups with their figures, Chromium
/// renders all four plots, and the doctor reads the same file.
#[test]
fn a_recorded_run_is_reported_and_renders() {
    require_root();
    let ns = Netns::new("record");
    let file = tmp("loaded.nmr");
    let _ = std::fs::remove_file(&file);
    let rec = record(&ns, &file, &["--interval", "500ms", "--duration", "7s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let queued = ns.load(&["stuck-readers", "--port", "18500", "--conns", "8"]);
    std::thread::sleep(Duration::from_millis(2000));
    let orphans = ns.load(&["orphans", "--port", "18501", "--conns", "10"]);
    let err = wait_ok(rec);
    drop((queued, orphans));
    assert!(err.contains("netmem report"), "{err}");
    let raw = std::fs::read(&file).unwrap();
    assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");

    let html = tmp("loaded.html");
    ok(&netmem(&[
        "report",
        file.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    for t in ["<script", "<link", "src=", "url("] {
        assert!(!page.contains(t), "the report has {t}");
    }
    assert_eq!(page.matches("<figure class=\"plot\"").count(), 4);
    let q = group_row(&page, "listen:18500");
    assert!(q[1].ends_with('M'), "peak memory of the queued port: {q:?}");
    let o = group_row(&page, "listen:18501");
    assert_eq!(o[4], "10", "peak orphans of the burst: {o:?}");
    assert!(
        page.contains("orphans of listen:18501"),
        "the burst's port is not drawn"
    );
    assert!(page.contains("orphan_born"));

    check_plots(&page, "A", &file);
    // The host line says what was traced, and so do the header and the
    // doctor.
    let plain = String::from_utf8(zstd::stream::decode_all(&raw[..]).unwrap()).unwrap();
    let host: serde_json::Value = serde_json::from_str(plain.lines().next().unwrap()).unwrap();
    assert_eq!(host["type"], "host");
    let h = &host["host"];
    assert_eq!(h["netns"], ns.name.as_str(), "{h}");
    assert!(h["netns_inode"].as_u64().unwrap() > 0, "{h}");
    assert_eq!(h["group_by"], "port");
    assert_eq!(h["owners"], false);
    assert_eq!(h["interval_ms"], 500);
    assert!(!h["netmem_version"].as_str().unwrap().is_empty());
    let traced = format!(
        "--group-by port, interval 500ms, netmem {}",
        h["netmem_version"].as_str().unwrap()
    );
    assert!(
        page.contains(&format!(
            "<tr><th>namespace</th><td>{} (inode {})</td>",
            ns.name, h["netns_inode"]
        )),
        "the header does not name the namespace"
    );
    assert!(
        page.contains(&format!("<tr><th>traced with</th><td>{traced}</td>")),
        "the header does not say how it was traced"
    );

    let png = tmp("loaded.png");
    let dom = chromium(&html, &png);
    assert_eq!(
        dom.matches("<svg").count(),
        4,
        "Chromium's DOM has not 4 plots"
    );
    let (share, colours) = ink(&png);
    assert!(
        share > 0.05 && colours > 20,
        "blank render: {share:.3} inked, {colours} colours"
    );

    let o = netmem(&["doctor", "--from", file.to_str().unwrap(), "--json"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"type\":\"finding\""));
    let o = netmem(&["doctor", "--from", file.to_str().unwrap()]);
    ok(&o);
    let head = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        head.contains(&format!("; traced with {traced})"))
            && head.contains(&format!("namespace {})", ns.name)),
        "{head}"
    );
}

/// A tuning session: the same load with two tcp_wmem settings (a
/// per-namespace sysctl, set in namespaces the test owns), compared.
#[test]
fn two_recordings_compare_and_name_the_sysctl_change() {
    require_root();
    let mut files = Vec::new();
    let mut names = Vec::new();
    for (tag, wmem) in [
        ("before", "4096 16384 4194304"),
        ("after", "4096 16384 1048576"),
    ] {
        let ns = Netns::new(tag);
        run_ok(
            ns.cmd("sysctl")
                .args(["-qw", &format!("net.ipv4.tcp_wmem={wmem}")]),
        );
        let file = tmp(&format!("{tag}.nmr"));
        let _ = std::fs::remove_file(&file);
        let load = ns.load(&["stuck-readers", "--port", "18510", "--conns", "4"]);
        wait_ok(record(
            &ns,
            &file,
            &["--interval", "300ms", "--duration", "1500ms"],
        ));
        drop(load);
        files.push(file);
        names.push(ns.name.clone());
    }
    let html = tmp("compare.html");
    ok(&netmem(&[
        "report",
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<figure class=\"plot\"").count(), 8);
    assert_eq!(page.matches("data-run=\"B\"").count(), 4);
    let row = &page[page
        .find("<code>net.ipv4.tcp_wmem</code>")
        .expect("tcp_wmem not listed as changed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("4096 16384 4194304") && row.contains("4096 16384 1048576"),
        "{row}"
    );
    // The smaller send buffer limit shows in the group's peak.
    assert!(page.contains("listen:18510 memory"));
    // Each namespace's own total beside the host-wide one.
    assert!(page.contains("<td>TCP memory charged, host-wide</td>"));
    assert!(
        page.contains(&format!("all groups in {} (A), {} (B)", names[0], names[1])),
        "no namespace total"
    );
    // The two namespaces differ (a tuning session on the rig records the
    // same one twice): the page says so.
    let note = &page[page
        .find("A and B traced different things:")
        .expect("the namespaces' difference is not said")..];
    assert!(
        note[..note.find("</div>").unwrap()]
            .contains(&format!("namespace: {} vs {}", names[0], names[1])),
        "{}",
        &note[..200]
    );
    check_plots(&page, "A", &files[0]);
    check_plots(&page, "B", &files[1]);
    let png = tmp("compare.png");
    let dom = chromium(&html, &png);
    assert_eq!(dom.matches("<svg").count(), 8);
}

/// Recordings of one namespace by port and by process: the comparison
/// says they are grouped differently; a recording compared with itself
/// says nothing of the kind.
#[test]
fn a_comparison_says_when_the_groupings_differ() {
    require_root();
    let ns = Netns::new("grouping");
    let load = ns.load(&["stuck-readers", "--port", "18540", "--conns", "4"]);
    let mut files = Vec::new();
    for (tag, args) in [
        ("by-port", &[][..]),
        ("by-process", &["--group-by", "process"][..]),
    ] {
        let file = tmp(&format!("{tag}.nmr"));
        let _ = std::fs::remove_file(&file);
        let mut a = vec!["--interval", "300ms", "--duration", "1500ms"];
        a.extend(args);
        wait_ok(record(&ns, &file, &a));
        files.push(file);
    }
    drop(load);
    let html = tmp("groupings.html");
    let report = |a: &Path, b: &Path| {
        ok(&netmem(&[
            "report",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
            // Written twice: the second replaces the first.
            "--force",
        ]));
        std::fs::read_to_string(&html).unwrap()
    };
    let page = report(&files[0], &files[1]);
    assert!(
        page.contains("A and B traced different things:</b> --group-by: port vs process."),
        "the grouping's difference is not said"
    );
    assert!(page.contains(&format!("all groups in {}</td>", ns.name)));
    let page = report(&files[0], &files[0]);
    assert!(!page.contains("traced different things"));
}

/// Cut short, damaged, padded with garbage: a report of what was readable
/// and a warning, never a panic; nothing readable is an error.
#[test]
fn damaged_recordings_report_what_is_readable() {
    require_root();
    let ns = Netns::new("damaged");
    let file = tmp("whole.nmr");
    let _ = std::fs::remove_file(&file);
    let load = ns.load(&["stuck-readers", "--port", "18520", "--conns", "4"]);
    wait_ok(record(
        &ns,
        &file,
        &["--interval", "200ms", "--duration", "2s"],
    ));
    drop(load);
    let whole = std::fs::read(&file).unwrap();
    let plain = zstd::stream::decode_all(&whole[..]).unwrap();

    let cut = tmp("cut.nmr");
    std::fs::write(&cut, &whole[..whole.len() * 6 / 10]).unwrap();
    let mut flipped = whole.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 40] {
        *b ^= 0xa5;
    }
    let bad = tmp("flipped.nmr");
    std::fs::write(&bad, &flipped).unwrap();
    let mut text = plain.clone();
    text.splice(
        plain.len() / 2..plain.len() / 2,
        b"this line is garbage\n".iter().copied(),
    );
    let cut_line = text.len() - 7;
    text.truncate(cut_line);
    let garbage = tmp("garbage.jsonl");
    std::fs::write(&garbage, &text).unwrap();
    let plain_file = tmp("plain.jsonl");
    std::fs::write(&plain_file, &plain).unwrap();

    for f in [&cut, &bad, &garbage] {
        let html = tmp("damaged.html");
        let o = netmem(&[
            "report",
            f.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
            "--force",
        ]);
        let err = ok(&o);
        assert!(
            err.contains("warning"),
            "{}: no warning: {err}",
            f.display()
        );
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains("was not read whole"), "{}", f.display());
        assert!(
            page.contains("listen:18520"),
            "{}: the readable part is missing",
            f.display()
        );
    }
    // Uncompressed `trace --json` output is a recording too.
    let html = tmp("plain.html");
    let err = ok(&netmem(&[
        "report",
        plain_file.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    assert!(!err.contains("warning"), "{err}");

    let junk = tmp("junk.bin");
    std::fs::write(&junk, b"\x28\xb5\x2f\xfd not really zstd at all").unwrap();
    for f in [junk.to_str().unwrap(), "/nonexistent/recording"] {
        let o = netmem(&["report", f, "-o", tmp("x.html").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{f}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("not a netmem recording") || err.contains("cannot read recording"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// --max-size stops the recording before the file passes it; what was
/// written is a whole recording with its summary.
#[test]
fn max_size_is_honoured() {
    require_root();
    let ns = Netns::new("maxsize");
    let file = tmp("capped.nmr");
    let _ = std::fs::remove_file(&file);
    let _load = ns.load(&[
        "backends", "--port", "18530", "--count", "300", "--waves", "1", "--hold", "--gap-ms", "0",
    ]);
    let t0 = Instant::now();
    let err = wait_ok(record(
        &ns,
        &file,
        &[
            "--interval",
            "50ms",
            "--duration",
            "60s",
            "--max-size",
            "16K",
        ],
    ));
    assert!(
        t0.elapsed() < Duration::from_secs(50),
        "did not stop at the limit"
    );
    assert!(err.contains("reached --max-size"), "{err}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size <= 16 * 1024 && size > 8 * 1024, "{size} bytes");
    let plain =
        String::from_utf8(zstd::stream::decode_all(&std::fs::read(&file).unwrap()[..]).unwrap())
            .unwrap();
    assert!(plain
        .lines()
        .last()
        .unwrap()
        .contains("\"type\":\"summary\""));
    // An existing file is not replaced without --force.
    let o = netmem(&["record", "-o", file.to_str().unwrap(), "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = netmem(&["record", "-o", file.to_str().unwrap(), "--max-size", "1K"]);
    assert_eq!(o.status.code(), Some(2));
    // Without the privileges to trace: one line, exit 1, and no empty file
    // left behind.
    let _ = std::fs::remove_file("/tmp/netmem-denied.nmr");
    let o = netmem_as_nobody(&["record", "-o", "/tmp/netmem-denied.nmr", "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("netmem record loads eBPF programs"));
    assert!(
        !Path::new("/tmp/netmem-denied.nmr").exists(),
        "an empty recording was left"
    );
}

/// Ten minutes at 1 s with 60 groups and an abort a minute make a report
/// under 2 MB (its speed is `cargo xtask bench -- report`).
#[test]
fn a_ten_minute_recording_makes_a_small_report() {
    let file = tmp("ten-minutes.nmr");
    netmem_tests::synthetic::recording(&file, 600, 60).unwrap();
    let html = tmp("ten-minutes.html");
    ok(&netmem(&[
        "report",
        file.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 2 * 1024 * 1024, "{size} bytes");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<figure class=\"plot\"").count(), 4);
    // Ten aborts, each in the table with its cause.
    let aborts = &page[page.find("<table class=\"aborts\"").unwrap()..];
    assert_eq!(aborts.matches("<b>orphans</b>").count(), 10);
    assert!(page.contains("... and 10 smaller groups."));
}
