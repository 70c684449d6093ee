//! Recordings get mailed around, and `netmem report` and `netmem doctor
//! --from` read them as root: each file here is made (zstd by the zstd
//! crate) to exhaust them as the issue's were, and the real binaries must
//! read it within `MEMORY_BUDGET` of peak RSS (wait4's ru_maxrss) and in
//! bounded time, say what was dropped, and exit as the README says. The
//! children run with 2 GiB of address space, so code that would eat 24 GB
//! fails fast instead of taking the machine.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netmem::sources::recording::{MAX_GROUPS, MAX_LINE, MAX_NAME, MEMORY_BUDGET};
use netmem_tests::netmem_bin;
use serde_json::{json, Value};

/// Address space each child may map: far below what the old readers took,
/// far above what the budget needs.
const ADDRESS_SPACE: u64 = 2 << 30;
/// Wall time for one run of the debug binary on this shared machine.
const TIME_LIMIT: Duration = Duration::from_secs(150);

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("netmem-hostile-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One run of netmem: how it ended, what it said, its peak RSS and time.
struct Run {
    what: String,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kib: u64,
    took: Duration,
}

impl Run {
    /// Within the budget and the time limit, no panic, no abort.
    fn assert_bounded(&self) -> &Run {
        assert!(
            self.signal.is_none(),
            "{}: killed by signal {:?} after {:?} at {} MiB (stderr: {})",
            self.what,
            self.signal,
            self.took,
            self.max_rss_kib >> 10,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{}: {}",
            self.what,
            self.stderr
        );
        assert!(
            self.max_rss_kib << 10 < MEMORY_BUDGET,
            "{}: peak RSS {} MiB, over the budget of {} MiB",
            self.what,
            self.max_rss_kib >> 10,
            MEMORY_BUDGET >> 20
        );
        self
    }

    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "{}: exit {:?}, stderr: {}",
            self.what,
            self.code,
            self.stderr
        );
        self
    }

    fn said(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "{}: does not say {text:?}\nstdout: {}\nstderr: {}",
            self.what,
            &self.stdout[..self.stdout.len().min(4000)],
            self.stderr
        );
        self
    }
}

/// netmem `args`, its output to files, its peak RSS from wait4, killed
/// past [`TIME_LIMIT`].
fn netmem(dir: &Dir, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    let out = dir.path("stdout");
    let err = dir.path("stderr");
    let mut cmd = Command::new(netmem_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    // SAFETY: setrlimit is async-signal-safe and changes only the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    let child = cmd.spawn().expect("run netmem");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child, with valid pointers; WNOHANG
        // keeps the pid ours (not reaped) until it has ended.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "wait4: {}", std::io::Error::last_os_error());
        if t0.elapsed() > TIME_LIMIT {
            // SAFETY: not yet reaped, so the pid is still this child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    // std never saw it end: forget it rather than wait for it again.
    std::mem::forget(child);
    let run = Run {
        what: format!("netmem {}", args.join(" ")),
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
        max_rss_kib: usage.ru_maxrss as u64,
        took,
    };
    assert!(
        took < TIME_LIMIT,
        "{}: still running after {TIME_LIMIT:?} (killed)",
        run.what
    );
    eprintln!(
        "{}: exit {:?}, {} MiB peak RSS, {:.1} s",
        run.what,
        run.code,
        run.max_rss_kib >> 10,
        took.as_secs_f64()
    );
    run
}

/// `netmem report FILE` and `netmem doctor --from FILE`, each bounded.
fn report_and_doctor(dir: &Dir, file: &Path) -> (Run, Run) {
    let html = dir.path("report.html");
    let f = file.to_str().unwrap();
    let report = netmem(dir, &["report", f, "-o", html.to_str().unwrap(), "--force"]);
    report.assert_bounded();
    if report.code == Some(0) {
        let size = std::fs::metadata(&html).unwrap().len();
        assert!(size < 2 << 20, "a report of {size} bytes");
    }
    let doctor = netmem(dir, &["doctor", "--from", f]);
    doctor.assert_bounded();
    (report, doctor)
}

fn line(v: Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(&v).unwrap();
    b.push(b'\n');
    b
}

fn host() -> Vec<u8> {
    line(json!({"type":"host","ts":"2026-12-06T04:00:00Z","host":{
        "kernel_release":"6.18","page_size":4096,"mem_total_bytes":25769803776u64,
        "sysctls":{"net.ipv4.tcp_mem":"188000 250000 376000","net.ipv4.tcp_max_orphans":"131072"},
        "nstat":{},"rhash_entries":null,"netns":"hostile"}}))
}

fn context(ts: &str) -> Value {
    json!({"type":"context","ts":ts,"tcp_mem_pages":[188000,250000,376000],
        "memory_allocated_pages":500,"orphans":3,"orphans_census":3,"max_orphans":131072,
        "page_size":4096,"memory_pressure":false})
}

fn group(ts: &str, name: &str) -> Value {
    json!({"type":"group","ts":ts,"group":name,"kind":"listen","sockets":4,"orphans":1,
        "rmem_bytes":1000,"wmem_queued_bytes":250000,"fwd_alloc_bytes":4096,"orphan_bytes":100})
}

/// A zstd file written as it is made: `fill` writes the plain lines.
fn zstd_file(path: &Path, fill: impl FnOnce(&mut dyn Write)) -> u64 {
    let mut z = zstd::stream::Encoder::new(File::create(path).unwrap(), 3).unwrap();
    fill(&mut z);
    z.finish().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// The issue's 369 KB file held 4 GB of one valid line pair and took 24 GB
/// before the OOM killer; here 160 MiB of it (the debug binary parses
/// about 15 MB/s): the intervals held are merged past the cap, and the
/// report says so.
#[test]
fn one_line_pair_repeated_for_a_long_time() {
    let dir = Dir::new("pair");
    let file = dir.path("pair.nmr");
    let mut pair = line(context("2026-12-06T04:00:01Z"));
    pair.extend(line(group("2026-12-06T04:00:01Z", "listen:8080")));
    let copies = (160 << 20) / pair.len();
    let size = zstd_file(&file, |w| {
        w.write_all(&host()).unwrap();
        for _ in 0..copies {
            w.write_all(&pair).unwrap();
        }
    });
    eprintln!("{copies} line pairs in {size} bytes");
    let (report, doctor) = report_and_doctor(&dir, &file);
    report
        .assert_code(0)
        .said(&format!("{copies} intervals are drawn as "))
        .said("each figure at its peak");
    doctor
        .assert_code(0)
        .said(&format!("({copies} intervals, "));
}

/// The issue's 4.8 MB file of 1,000,000 distinct groups went past 8 GB;
/// here 300,000 in two intervals: the first MAX_GROUPS keep their names,
/// the rest are summed into `other`, and both commands say how many.
#[test]
fn hundreds_of_thousands_of_distinct_groups() {
    let dir = Dir::new("groups");
    let file = dir.path("groups.nmr");
    const N: usize = 300_000;
    zstd_file(&file, |w| {
        w.write_all(&host()).unwrap();
        for ts in ["2026-12-06T04:00:01Z", "2026-12-06T04:00:02Z"] {
            w.write_all(&line(context(ts))).unwrap();
            for i in 0..N / 2 {
                let name = format!("backend:10.{}.{}.{}:9001", i >> 16, (i >> 8) & 255, i & 255);
                let name = if ts.ends_with("1Z") {
                    name
                } else {
                    format!("{name}-b")
                };
                w.write_all(&line(group(ts, &name))).unwrap();
            }
        }
    });
    let folded = format!(
        "{} groups past the first {MAX_GROUPS} were summed into \"other\"",
        N - MAX_GROUPS
    );
    let (report, doctor) = report_and_doctor(&dir, &file);
    report.assert_code(0).said(&folded);
    doctor.assert_code(0).said(&folded);
    // The sum is whole: every group's memory is in the namespace's total.
    let html = std::fs::read_to_string(dir.path("report.html")).unwrap();
    assert!(html.contains(">other<"), "no other row");
}

/// The issue's 135 KB of zstd'd zeros (4 GiB, no newline) took 8.4 GB
/// before "not a netmem recording": now the line is skipped as it
/// streams, and the error says why in one line, with exit 1.
#[test]
fn gigabytes_of_zeros_without_a_newline() {
    let dir = Dir::new("zeros");
    let file = dir.path("zeros.nmr");
    let size = zstd_file(&file, |w| {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..4096 {
            w.write_all(&zeros).unwrap();
        }
    });
    eprintln!("4 GiB of zeros in {size} bytes");
    let (report, doctor) = report_and_doctor(&dir, &file);
    for r in [&report, &doctor] {
        r.assert_code(1)
            .said("is not a netmem recording")
            .said("1 line longer than 1.0M was skipped without being read");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}

/// The issue's 35 KB file held one group name of 1 GiB: 4.2 GB and a
/// 1.0 GB report. That line is now skipped (past MAX_LINE); a name under
/// the line cap but past MAX_NAME is cut in the middle, visibly.
#[test]
fn a_group_name_of_a_gibibyte() {
    let dir = Dir::new("name");
    let file = dir.path("name.nmr");
    let ts = "2026-12-06T04:00:01Z";
    zstd_file(&file, |w| {
        w.write_all(&host()).unwrap();
        w.write_all(&line(context(ts))).unwrap();
        w.write_all(br#"{"type":"group","ts":"2026-12-06T04:00:01Z","group":"listen:"#)
            .unwrap();
        let a = vec![b'A'; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&a).unwrap();
        }
        w.write_all(b"\",\"rmem_bytes\":1}\n").unwrap();
        let long = format!("cgroup:/{}{}", "B".repeat(MAX_LINE / 2), "/leaf");
        w.write_all(&line(group(ts, &long))).unwrap();
        w.write_all(&line(context("2026-12-06T04:00:02Z"))).unwrap();
    });
    let (report, doctor) = report_and_doctor(&dir, &file);
    for r in [&report, &doctor] {
        r.assert_code(0)
            .said("1 line longer than 1.0M was skipped without being read (the first is line 3)")
            .said(&format!("1 group longer than {MAX_NAME} bytes was cut"));
    }
    let html = std::fs::read_to_string(dir.path("report.html")).unwrap();
    assert!(html.contains("BBB…BBB"), "the cut is not shown");
    assert!(html.contains("/leaf"), "the name's end is not kept");
}

/// Orphans of 18446744073709551615 against tcp_max_orphans 0, and an
/// interval whose time runs backwards: the figure is dropped (no CRITICAL
/// orphans finding), the interval too, and each is said.
#[test]
fn impossible_figures_and_time_running_backwards() {
    let dir = Dir::new("insane");
    let file = dir.path("insane.nmr");
    zstd_file(&file, |w| {
        w.write_all(&host()).unwrap();
        // tcp_max_orphans 0 throughout, and no real orphan: only the
        // impossible figure could make the orphan limit fire.
        let quiet = |ts: &str| {
            let mut c = context(ts);
            c["orphans"] = json!(0);
            c["orphans_census"] = json!(0);
            c["max_orphans"] = json!(0);
            c
        };
        let mut c = quiet("2026-12-06T04:00:01Z");
        c["orphans"] = json!(u64::MAX);
        w.write_all(&line(c)).unwrap();
        let mut g = group("2026-12-06T04:00:01Z", "listen:80");
        g["orphans"] = json!(0);
        w.write_all(&line(g)).unwrap();
        w.write_all(&line(quiet("2026-12-06T04:00:03Z"))).unwrap();
        w.write_all(&line(quiet("2026-12-06T03:00:00Z"))).unwrap();
        w.write_all(&line(group("2026-12-06T03:00:00Z", "listen:81")))
            .unwrap();
    });
    let (report, doctor) = report_and_doctor(&dir, &file);
    let dropped = "1 figure no kernel can produce was dropped (the first, \"orphans\": 18446744073709551615 on line 2: the kernel counts them in an int)";
    let backwards = "1 interval whose time runs backwards was dropped with its group lines (the first, line 5: 2026-12-06T03:00:00.000000000Z after 2026-12-06T04:00:03.000000000Z)";
    for r in [&report, &doctor] {
        r.assert_code(0).said(dropped).said(backwards);
    }
    assert!(
        report.stderr.contains("(2 intervals)") || report.stderr.contains(", 2 intervals"),
        "{}",
        report.stderr
    );
    let json = netmem(
        &dir,
        &["doctor", "--from", file.to_str().unwrap(), "--json"],
    );
    json.assert_bounded().assert_code(0);
    let orphans: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["id"] == "orphans")
        .collect();
    assert_eq!(orphans.len(), 1, "{}", json.stdout);
    assert_ne!(orphans[0]["severity"], "critical", "{}", orphans[0]);
    assert!(!doctor.stdout.contains("listen:81"), "{}", doctor.stdout);
}
