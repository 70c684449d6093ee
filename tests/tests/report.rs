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

/// Headless Chromium: the page rendered to a PNG, and the DOM it built.
fn chromium(html: &Path, png: &Path) -> String {
    let bin = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium is not installed: run `cargo xtask setup`");
    // A profile per call: tests run in parallel in one process, and two
    // Chromiums on one profile refuse each other (SingletonLock; seen once
    // in CI).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = tmp(&format!("chromium-profile-{n}"));
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let url = format!("file://{}", html.display());
    let o = Command::new(bin)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--window-size=1200,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(bin)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
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
}

/// A tuning session: the same load with two tcp_wmem settings (a
/// per-namespace sysctl, set in namespaces the test owns), compared.
#[test]
fn two_recordings_compare_and_name_the_sysctl_change() {
    require_root();
    let mut files = Vec::new();
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
    let png = tmp("compare.png");
    let dom = chromium(&html, &png);
    assert_eq!(dom.matches("<svg").count(), 8);
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
