//! Names other users choose reach root's terminal escaped, in every output.
//!
//! Any user names its processes (the kernel takes a process's comm from the
//! name of the file it runs, or from `prctl(PR_SET_NAME)`), and whoever may
//! create cgroups names their directories. Here `netmem-load` runs as
//! `nobody` through a symlink named with a hostile string, in a cgroup
//! directory named with one, in a namespace of the test's own: an OSC that
//! sets the terminal's title, `ESC[2J` that clears the screen, a newline
//! and a carriage return that would start a forged row, C1's CSI and DEL,
//! invalid UTF-8 with a raw 0x9b (CSI on an 8-bit terminal), `<script>`,
//! and a cgroup path of nearly 4 KiB (components hold 255 bytes at most,
//! so it is nested). Every output is then read: the text of `snapshot`,
//! `trace` and `doctor` and their stderr carry no control character, rows
//! start where rows start and stay within the cap on names; `--json` keeps
//! the real names; `top` (tmux) neither sets the title nor loses its
//! screen; `serve`'s exposition passes `promtool check metrics`; `report`'s
//! HTML holds no `<script>` (headless Chromium's DOM).

use std::ffi::OsStr;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netmem::format::NAME_MAX;
use netmem_tests::serve::{promtool_check_metrics, Serve};
use netmem_tests::*;

/// One hostile tenant: the name its process runs under (15 bytes at most:
/// the kernel keeps no more), its cgroup directory's name, and both as a
/// terminal must show them (escaped; invalid UTF-8 as U+FFFD).
struct Hostile {
    comm: &'static [u8],
    cgroup: &'static [u8],
    comm_shown: &'static str,
    cgroup_shown: &'static str,
}

const HOSTILE: &[Hostile] = &[
    Hostile {
        comm: b"\x1b]0;PWNED\x07",
        cgroup: b"\x1b]0;PWNED\x07",
        comm_shown: r"\u{1b}]0;PWNED\u{7}",
        cgroup_shown: r"\u{1b}]0;PWNED\u{7}",
    },
    Hostile {
        comm: b"\x1b[2J\x1b[H",
        cgroup: b"\x1b[2J\x1b[Hclear",
        comm_shown: r"\u{1b}[2J\u{1b}[H",
        cgroup_shown: r"\u{1b}[2J\u{1b}[Hclear",
    },
    // cgroup2 refuses a newline in a name (EINVAL: /proc/PID/cgroup must
    // stay parseable); a vertical tab and a form feed move the cursor down
    // as well.
    Hostile {
        comm: b"x\nFORGED 9 9",
        cgroup: b"y\x0bFORGED\x0c9 9",
        comm_shown: r"x\nFORGED 9 9",
        cgroup_shown: r"y\u{b}FORGED\u{c}9 9",
    },
    Hostile {
        comm: b"x\rFORGED",
        cgroup: b"y\rFORGED",
        comm_shown: r"x\rFORGED",
        cgroup_shown: r"y\rFORGED",
    },
    Hostile {
        comm: b"<script>",
        cgroup: b"<script>alert(1)",
        comm_shown: "<script>",
        cgroup_shown: "<script>alert(1)",
    },
    Hostile {
        comm: b"\xc2\x9b2J\x7f",
        cgroup: b"\xc2\x9b2J\x7fC1-DEL",
        comm_shown: r"\u{9b}2J\u{7f}",
        cgroup_shown: r"\u{9b}2J\u{7f}C1-DEL",
    },
    Hostile {
        comm: b"\xff\x9b[2Jbad",
        cgroup: b"\xff\xfe\x9b[2Jbad",
        comm_shown: "\u{fffd}\u{fffd}[2Jbad",
        cgroup_shown: "\u{fffd}\u{fffd}\u{fffd}[2Jbad",
    },
];

/// The process in the long cgroup path.
const LONG_COMM: &str = "long-cgroup";
/// 15 nested components of 250 bytes: a path of nearly 4 KiB (the
/// absolute path, mount point included, must stay under PATH_MAX for
/// anyone to open it).
const LONG_DEPTH: u8 = 15;
const PORT0: u16 = 7411;

/// Where a table's data rows start: a group's kind (or the `...` line
/// counting the rows left out).
const ROW_STARTS: &[&str] = &[
    "listen:",
    "backend:",
    "process:",
    "cgroup:",
    "proxy-backend:",
    "unattributed",
    "... ",
];

/// The hostile tenants' namespace, cgroups and names; their processes
/// once [`Tenants::spawn`]ed. Everything is removed on drop.
struct Tenants {
    procs: Vec<Held>,
    /// The cgroup directories made, parents first.
    dirs: Vec<PathBuf>,
    /// Per tenant (the long path's last): its cgroup, and as netmem names
    /// it (the path under the cgroup2 mount, invalid UTF-8 as U+FFFD).
    cgroups: Vec<(PathBuf, String)>,
    /// The symlinks to netmem-load, named as the processes will be.
    links: PathBuf,
    base: TestCgroup,
    ns: Netns,
}

impl Tenants {
    fn new() -> Tenants {
        let ns = Netns::new("hostile");
        let base = TestCgroup::new("hostile");
        let root = netmem::sources::owners::cgroup2_mount().unwrap();
        let links =
            std::env::temp_dir().join(format!("netmem-hostile-{}-{}", std::process::id(), ns.name));
        std::fs::create_dir(&links).unwrap();
        // nobody runs the links.
        std::fs::set_permissions(&links, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut t = Tenants {
            procs: Vec::new(),
            dirs: Vec::new(),
            cgroups: Vec::new(),
            links,
            base,
            ns,
        };
        let rel = |p: &Path| {
            format!(
                "/{}",
                String::from_utf8_lossy(p.strip_prefix(&root).unwrap().as_os_str().as_bytes())
            )
        };
        for h in HOSTILE {
            let dir = t.base.path.join(OsStr::from_bytes(h.cgroup));
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("cgroup {:?}: {e}", dir.display()));
            t.dirs.push(dir.clone());
            t.cgroups.push((dir.clone(), rel(&dir)));
            std::os::unix::fs::symlink(load_bin(), t.links.join(OsStr::from_bytes(h.comm)))
                .unwrap();
        }
        let mut dir = t.base.path.clone();
        for i in 0..LONG_DEPTH {
            dir = dir.join(String::from_utf8(vec![b'A' + i; 250]).unwrap());
            std::fs::create_dir(&dir).unwrap();
            t.dirs.push(dir.clone());
        }
        let long = rel(&dir);
        assert!(long.len() > 3700, "{}", long.len());
        t.cgroups.push((dir, long));
        std::os::unix::fs::symlink(load_bin(), t.links.join(LONG_COMM)).unwrap();
        t
    }

    /// Every tenant's process (`scenario` of netmem-load, 2 connections on
    /// its own port), run as nobody with no capability, under its name, in
    /// its cgroup; returns once each is ready.
    fn spawn(&mut self, scenario: &str) {
        let names: Vec<&[u8]> = HOSTILE
            .iter()
            .map(|h| h.comm)
            .chain([LONG_COMM.as_bytes()])
            .collect();
        for (i, name) in names.into_iter().enumerate() {
            let mut cmd = self.ns.cmd("setpriv");
            cmd.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(self.links.join(OsStr::from_bytes(name)))
            .args([scenario, "--port", &port(i).to_string(), "--conns", "2"]);
            start_in_cgroup(&mut cmd, &self.cgroups[i].0);
            self.procs.push(Held::start(&mut cmd));
        }
    }

    fn pid(&self, i: usize) -> u32 {
        self.procs[i].pid()
    }

    /// `netmem record` of the tenants by process, 2 s, to `file`; its
    /// output checked as text.
    fn record(&self, file: &Path) -> Output {
        let o = Command::new(netmem_bin())
            .args(["record", "-o"])
            .arg(file)
            .args(["--owners", "--group-by", "process", "--interval", "500ms"])
            .args(["--duration", "2s", "--netns", &self.ns.name])
            .output()
            .unwrap();
        ok_text("record", &o);
        o
    }

    /// netmem ARGS --netns NS.
    fn netmem(&self, args: &[&str]) -> Output {
        self.ns.netmem(args)
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        self.procs.clear();
        for d in self.dirs.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_dir_all(&self.links);
    }
}

/// The end of the long path, as a cut keeps it.
fn last_letter() -> String {
    char::from(b'A' + LONG_DEPTH - 1).to_string().repeat(20)
}

fn port(i: usize) -> u16 {
    PORT0 + i as u16
}

/// Text a terminal may receive: no control character but the line breaks
/// (C0, DEL, C1 decoded, and the raw bytes ESC, BEL, CR and 0x9b).
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        assert!(
            !matches!(b, 0x1b | 0x07 | 0x9b | 0x7f | b'\r'),
            "{what}: raw byte {b:#04x} at {i}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = String::from_utf8_lossy(bytes);
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        panic!("{what}: control character {c:?} in:\n{text}");
    }
}

/// Every line of every table in `text` (a header line `GROUP ...`, then its
/// rows up to a line that is not one) starts where rows start, no line
/// anywhere starts with what a name tried to forge, and each row is within
/// the cap: the GROUP column at most NAME_MAX wide, the PROCESS and CGROUP
/// cells too. Returns the rows.
fn table_rows(what: &str, text: &str, is_other_line: impl Fn(&str) -> bool) -> Vec<String> {
    let mut rows = Vec::new();
    let mut header: Option<&str> = None;
    for line in text.lines() {
        assert!(
            !line.starts_with("FORGED"),
            "{what}: a forged line:\n{text}"
        );
        if line.starts_with("GROUP") {
            header = Some(line);
            // The GROUP column, then one space: the next header starts
            // (right-aligned SOCKS with a space of its own) after it.
            let next = line.find(" SOCKS").or_else(|| line.find(" PROXY")).unwrap();
            assert!(
                next <= NAME_MAX + 1,
                "{what}: GROUP column {next} wide:\n{text}"
            );
            continue;
        }
        let Some(h) = header else {
            continue;
        };
        if ROW_STARTS.iter().any(|p| line.starts_with(p)) {
            let cols = line.chars().count();
            match h.find(" CGROUP") {
                // The last cell: the path (cut), then at most a container
                // id and a count of more cgroups.
                Some(at) => assert!(
                    cols <= at + 1 + NAME_MAX + " (container 0123456789ab) +99".len(),
                    "{what}: a row {cols} columns wide:\n{line}"
                ),
                // No owner columns: every cell padded, the row as wide as
                // its header.
                None => assert_eq!(cols, h.chars().count(), "{what}: misaligned:\n{text}"),
            }
            if let Some(at) = h.find(" PROCESS") {
                let process = line.chars().skip(at + 1).take_while(|c| *c != ' ').count();
                assert!(process <= NAME_MAX + 12, "{what}: process cell:\n{line}");
            }
            rows.push(line.to_string());
        } else {
            assert!(
                line.is_empty() || is_other_line(line),
                "{what}: a line in or after a table that is no row:\n{line}\nin:\n{text}"
            );
            header = None;
        }
    }
    rows
}

fn ok_text(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_terminal_safe(&format!("{what} stdout"), &o.stdout);
    assert_terminal_safe(&format!("{what} stderr"), &o.stderr);
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The row of the group starting with `start`.
fn row<'a>(rows: &'a [String], start: &str, text: &str) -> &'a String {
    rows.iter()
        .find(|r| r.starts_with(start))
        .unwrap_or_else(|| panic!("no row {start:?} in:\n{text}"))
}

#[test]
fn snapshot_tables_escape_and_cap_every_name() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("stuck-readers");
    let lines = |l: &str| l.starts_with("tcp_mem ");

    // By port, with owners: each listener's row names its process and
    // cgroup, escaped, on one line.
    let text = ok_text("snapshot --owners", &t.netmem(&["snapshot", "--owners"]));
    let rows = table_rows("snapshot --owners", &text, lines);
    for (i, h) in HOSTILE.iter().enumerate() {
        let r = row(&rows, &format!("listen:{} ", port(i)), &text);
        assert!(
            r.contains(&format!("{}[{}]", h.comm_shown, t.pid(i))),
            "{r}"
        );
        assert!(r.ends_with(h.cgroup_shown), "{r}");
    }
    let long = row(&rows, &format!("listen:{} ", port(HOSTILE.len())), &text);
    assert!(
        long.contains('…') && long.ends_with(&last_letter()),
        "{long}"
    );

    // By process.
    let text = ok_text(
        "snapshot --group-by process",
        &t.netmem(&["snapshot", "--owners", "--group-by", "process"]),
    );
    let rows = table_rows("snapshot --group-by process", &text, lines);
    for (i, h) in HOSTILE.iter().enumerate() {
        row(
            &rows,
            &format!("process:{}[{}]", h.comm_shown, t.pid(i)),
            &text,
        );
    }

    // By cgroup: the 4 KiB path is cut in the middle, to the cap.
    let text = ok_text(
        "snapshot --group-by cgroup",
        &t.netmem(&["snapshot", "--owners", "--group-by", "cgroup"]),
    );
    let rows = table_rows("snapshot --group-by cgroup", &text, lines);
    for h in HOSTILE {
        assert!(
            rows.iter()
                .any(|r| r.starts_with("cgroup:") && r.contains(&format!("/{} ", h.cgroup_shown))),
            "no row for {} in:\n{text}",
            h.cgroup_shown
        );
    }
    let long: Vec<&String> = rows.iter().filter(|r| r.contains(&last_letter())).collect();
    assert_eq!(long.len(), 1, "{text}");
    let name = long[0].split(' ').next().unwrap();
    assert_eq!(name.chars().count(), NAME_MAX, "{name}");
    assert!(
        name.contains('…') && name.ends_with(&last_letter()),
        "{name}"
    );
}

#[test]
fn json_keeps_the_real_names() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("stuck-readers");
    let comm = |i: usize| match HOSTILE.get(i) {
        Some(h) => String::from_utf8_lossy(h.comm).into_owned(),
        None => LONG_COMM.to_string(),
    };
    let groups = last_groups(&ok_json(&t.netmem(&[
        "snapshot",
        "--json",
        "--owners",
        "--group-by",
        "process",
    ])));
    for i in 0..t.procs.len() {
        let g = groups
            .iter()
            .find(|g| g["pid"] == t.pid(i))
            .unwrap_or_else(|| panic!("no group of pid {} in {groups:#?}", t.pid(i)));
        assert_eq!(g["comm"], comm(i).as_str(), "{g}");
        assert_eq!(g["group"], format!("process:{}[{}]", comm(i), t.pid(i)));
    }
    let groups = last_groups(&ok_json(&t.netmem(&[
        "snapshot",
        "--json",
        "--owners",
        "--group-by",
        "cgroup",
    ])));
    for (_, rel) in &t.cgroups {
        let g = group(&groups, &format!("cgroup:{rel}"));
        assert_eq!(g["cgroup"], rel.as_str());
    }
    // The owners of a port group, whole.
    let groups = last_groups(&ok_json(&t.netmem(&["snapshot", "--json", "--owners"])));
    for i in 0..t.procs.len() {
        let g = group(&groups, &format!("listen:{}", port(i)));
        assert_eq!(g["owners"]["processes"][0]["comm"], comm(i).as_str(), "{g}");
        assert_eq!(g["owners"]["cgroups"][0]["cgroup"], t.cgroups[i].1.as_str());
    }
}

/// `trace --owners` in text: the tenants' servers close with data queued,
/// so the kernel reports orphans born in each tenant's process (its comm
/// as the kernel has it) and cgroup; every event line and table stays
/// escaped.
#[test]
fn trace_text_escapes_event_owners_and_tables() {
    require_root();
    let mut t = Tenants::new();
    let mut trace = Command::new(netmem_bin())
        .args([
            "trace",
            "--owners",
            "--interval",
            "700ms",
            "--duration",
            "5s",
            "--netns",
            &t.ns.name,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(trace.stdout.take().unwrap());
    let first = until_probes(&mut out);
    assert!(first.contains("probes:"), "{first}");
    t.spawn("orphans");
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let mut err = Vec::new();
    trace.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let o = Output {
        status: trace.wait().unwrap(),
        stdout: [first.into_bytes(), rest].concat(),
        stderr: err,
    };
    let text = ok_text("trace --owners", &o);
    // Between tables: event lines (a timestamp first), the interval's own
    // lines, the summary.
    let other = |l: &str| {
        l.starts_with("20")
            || l.starts_with("probes:")
            || l.starts_with("summary:")
            || l.starts_with("memory pressure:")
            || l.starts_with('(')
    };
    let rows = table_rows("trace --owners", &text, other);
    assert!(!rows.is_empty(), "{text}");
    for (i, h) in HOSTILE.iter().enumerate() {
        let born: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" orphan_born ") && l.contains(&format!(" listen:{} ", port(i))))
            .collect();
        assert!(!born.is_empty(), "no orphan_born for tenant {i}:\n{text}");
        for l in born {
            assert!(l.starts_with("20"), "{l}");
            // The socket's cgroup always; the closing process where the
            // tier sees tcp_close (the polling tier has no process).
            assert!(l.contains(h.cgroup_shown), "{l}");
            assert!(
                l.contains("tier=polling") || l.contains(h.comm_shown),
                "{l}"
            );
        }
    }
    let long: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" orphan_born ") && l.contains(&last_letter()))
        .collect();
    assert!(!long.is_empty(), "{text}");
    for l in long {
        assert!(l.contains('…') && l.chars().count() < 1000, "{l}");
    }
}

/// `record` of the tenants' orphans to a file whose own name is hostile,
/// then `doctor --from` it and a live `doctor`: the findings, the
/// recording's name and every message stay escaped.
#[test]
fn doctor_escapes_names_paths_and_messages() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("orphans");
    let file = t
        .links
        .join(OsStr::from_bytes(b"rec\x1b]0;PWNED\x07\nFORGED.zst"));
    let o = t.record(&file);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(r"rec\u{1b}]0;PWNED\u{7}\nFORGED.zst"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = Command::new(netmem_bin())
        .args(["doctor", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    let text = ok_text("doctor --from", &o);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(r"rec\u{1b}]0;PWNED\u{7}\nFORGED.zst"),
        "{text}"
    );
    // The orphans finding names the groups holding them: the tenants'
    // processes.
    assert!(
        HOSTILE
            .iter()
            .any(|h| text.contains(&format!("process:{}[", h.comm_shown))),
        "{text}"
    );
    for l in text.lines() {
        assert!(!l.starts_with("FORGED"), "{text}");
    }

    let text = ok_text("doctor", &t.netmem(&["doctor"]));
    assert!(text.starts_with("netmem doctor: "), "{text}");

    // A message naming a file: one line.
    let missing = t
        .links
        .join(OsStr::from_bytes(b"no\x1b[2J\nnetmem: error: FORGED"));
    let o = Command::new(netmem_bin())
        .args(["doctor", "--from"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_terminal_safe("doctor --from missing: stderr", &o.stderr);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(r"no\u{1b}[2J\nnetmem: error: FORGED"), "{err}");
}

/// netmem run by another unprivileged user cannot read the tenants'
/// descriptors and says whose: the warning names them escaped, on one
/// line. (In a PID namespace of its own, so that the processes it names
/// first are the tenants, not the machine's.)
#[test]
fn warnings_name_other_users_processes_escaped() {
    require_root();
    let t = Tenants::new();
    let h = &HOSTILE[2]; // the newline
    let script = r#"
        coproc L { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "$1" stuck-readers --port 7490 --conns 1; }
        read -r ready <&"${L[0]}"
        [ "$ready" = ready ] || exit 99
        setpriv --reuid=65533 --regid=65533 --clear-groups --inh-caps=-all --bounding-set=-all "$2" snapshot --owners
        rc=$?
        eval "exec ${L[1]}>&-"
        wait
        exit $rc
    "#;
    let o =
        t.ns.cmd("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "bash",
                "-c",
                script,
                "bash",
            ])
            .arg(t.links.join(OsStr::from_bytes(h.comm)))
            .arg(netmem_bin())
            .output()
            .unwrap();
    let text = ok_text("snapshot as another user", &o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}[", h.comm_shown)) && err.contains("not readable by netmem"),
        "stderr:\n{err}\nstdout:\n{text}"
    );
    for l in err.lines() {
        assert!(
            l.starts_with("netmem: "),
            "a stderr line of its own: {l}\n{err}"
        );
    }
}

struct Tmux {
    session: String,
}

impl Tmux {
    fn screen(&self) -> String {
        let o = run_ok(Command::new("tmux").args(["capture-pane", "-p", "-t", &self.session]));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn title(&self) -> String {
        let o = run_ok(Command::new("tmux").args([
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{pane_title}",
        ]));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

#[test]
fn top_shows_names_without_acting_on_them() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("stuck-readers");
    let tmux = Tmux {
        session: format!("netmem-hostile-{}", std::process::id()),
    };
    run_ok(Command::new("tmux").args([
        "new-session",
        "-d",
        "-s",
        &tmux.session,
        "-x",
        "200",
        "-y",
        "50",
        &format!(
            "{} top --netns {} --owners --group-by process --interval 500ms; sleep 600",
            netmem_bin().display(),
            t.ns.name
        ),
    ]));
    let t0 = Instant::now();
    let screen = loop {
        let s = tmux.screen();
        if s.contains("PWNED") && s.contains(LONG_COMM) {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the tenants never showed:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Wait one more refresh: what a name did would show by now.
    std::thread::sleep(Duration::from_millis(1200));
    let screen = [screen, tmux.screen()];
    for s in &screen {
        assert!(s.contains("GROUP"), "the table's header is gone:\n{s}");
        assert!(s.contains("<script>"), "{s}");
        for l in s.lines() {
            assert!(!l.starts_with("FORGED"), "a forged line:\n{s}");
        }
    }
    let title = tmux.title();
    assert!(!title.contains("PWNED"), "a name set the title: {title}");
    run_ok(Command::new("tmux").args(["send-keys", "-t", &tmux.session, "q"]));
}

#[test]
fn serve_exposition_passes_promtool() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("stuck-readers");
    let mut serve = Serve::start(&[
        "--netns",
        &t.ns.name,
        "--owners",
        "--group-by",
        "process",
        "--interval",
        "1s",
    ]);
    let exposition = serve.wait_for("PWNED");
    promtool_check_metrics(&exposition);
    // A newline in a label value is escaped: no sample line is forged.
    for l in exposition.lines() {
        assert!(l.starts_with('#') || l.starts_with("netmem_"), "{l}");
    }
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
    assert_terminal_safe("serve stderr", err.as_bytes());
}

#[test]
fn report_html_holds_no_script() {
    require_root();
    let mut t = Tenants::new();
    t.spawn("stuck-readers");
    let rec = t.links.join("rec.zst");
    t.record(&rec);
    let html = t.links.join("report.html");
    let o = Command::new(netmem_bin())
        .arg("report")
        .arg(&rec)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    ok_text("report", &o);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.to_lowercase().contains("<script"),
        "raw <script> in the report"
    );
    assert!(
        page.contains("&lt;script&gt;"),
        "the tenant is not in the report"
    );
    // What a browser makes of it: the name is text, not an element.
    let bin = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium is not installed: run `cargo xtask setup`");
    let profile = t.links.join("chromium-profile");
    let o = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("&lt;script&gt;"), "chromium's DOM: {dom}");
    assert!(
        !dom.to_lowercase().contains("<script"),
        "a script element: {dom}"
    );
}
