//! `netmem top` in a real terminal: Debian's tmux runs it against real
//! load in a namespace of the test's own; the test reads the screen with
//! capture-pane and types with send-keys.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use netmem_tests::*;

/// The tests that load programs run one at a time: one of them counts the
/// loaded programs before and after.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

struct Tmux {
    session: String,
    done: std::path::PathBuf,
}

impl Tmux {
    /// `netmem top ARGS` in a new 150x40 session; when it exits, the shell
    /// writes its status and the terminal's modes to a file.
    fn start(args: &str) -> Tmux {
        Tmux::start_sized(args, 150, 40)
    }

    fn start_sized(args: &str, x: u16, y: u16) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let session = format!(
            "netmem-top-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let done = std::env::temp_dir().join(format!("{session}.done"));
        let _ = std::fs::remove_file(&done);
        let script = format!(
            "{} top {args}; echo EXIT=$? > {d}.tmp; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo >> {d}.tmp; mv {d}.tmp {d}; sleep 600",
            netmem_bin().display(),
            d = done.display()
        );
        run_ok(Command::new("tmux").args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &x.to_string(),
            "-y",
            &y.to_string(),
            "bash",
            "-c",
            &script,
        ]));
        Tmux { session, done }
    }

    fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, k: &str) {
        run_ok(Command::new("tmux").args(["send-keys", "-t", &self.session, k]));
    }

    fn resize(&self, x: u16, y: u16) {
        run_ok(Command::new("tmux").args([
            "resize-window",
            "-t",
            &self.session,
            "-x",
            &x.to_string(),
            "-y",
            &y.to_string(),
        ]));
    }

    /// netmem top exited 0 after `how` (10 s at most), and the shell found
    /// the terminal back in canonical mode with echo.
    fn assert_clean_exit(&self, how: &str) {
        let t0 = Instant::now();
        while !self.done.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "netmem top did not exit on {how}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let done = std::fs::read_to_string(&self.done).unwrap();
        assert!(done.contains("EXIT=0"), "after {how}: {done}");
        assert!(
            done.lines().any(|l| l == "icanon") && done.lines().any(|l| l == "echo"),
            "terminal not restored after {how}: {done}"
        );
    }

    /// Waits until the screen satisfies `f` (15 s at most) and is drawn
    /// whole: the same on a second look 150 ms later, since a capture can
    /// fall in the middle of a redraw (a new title over the old rows).
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                std::thread::sleep(Duration::from_millis(150));
                if self.screen() == s {
                    return s;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "never saw {what} (drawn whole):\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
        let _ = std::fs::remove_file(&self.done);
    }
}

/// The table's data rows, as (group, cells).
fn rows(screen: &str) -> Vec<Vec<String>> {
    screen
        .lines()
        .skip_while(|l| !l.starts_with("GROUP"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The table under the header line that starts with `first` (`GROUP`,
/// or the drill-down's `LOCAL`/`REMOTE`), as one map of column → cell per
/// row. A cell is what stands from its header's first column to the next
/// blank: the columns are cut by the header's positions, not by
/// whitespace, so a cut number cannot pass for a whole one.
fn table(screen: &str, first: &[&str]) -> Vec<BTreeMap<String, String>> {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(h) = lines
        .iter()
        .position(|l| first.iter().any(|f| l.starts_with(f)))
    else {
        return Vec::new();
    };
    // The sparkline's header is the one with a blank inside.
    let head: Vec<char> = lines[h]
        .replace("LAST MINUTE", "LAST_MINUTE")
        .chars()
        .collect();
    let starts: Vec<usize> = (0..head.len())
        .filter(|&i| head[i] != ' ' && (i == 0 || head[i - 1] == ' '))
        .collect();
    let name = |i: usize| -> String { head[i..].iter().take_while(|c| **c != ' ').collect() };
    lines[h + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            starts
                .iter()
                .map(|&i| {
                    let cell: String = chars.iter().skip(i).take_while(|c| **c != ' ').collect();
                    (name(i), cell)
                })
                .collect()
        })
        .collect()
}

/// Every column of the group table whole and known, every figure whole
/// with its unit: bytes as `human_bytes` writes them (`512`, `93.8K`,
/// `4.0M`), counts as digits.
fn assert_whole_figures(screen: &str, cols: u16) {
    const BYTES: [&str; 3] = ["MEMORY", "RMEM", "WMEMQ"];
    const COUNTS: [&str; 4] = ["SOCKS", "ORPH", "DROPS", "ABORTS"];
    const TEXT: [&str; 5] = ["GROUP", "PROXY", "LAST_MINUTE", "OWNER", "EVENTS"];
    assert!(
        screen.lines().all(|l| l.chars().count() <= cols as usize),
        "{screen}"
    );
    let t = table(screen, &["GROUP"]);
    assert!(!t.is_empty(), "no table:\n{screen}");
    for row in &t {
        assert!(row.contains_key("MEMORY"), "no MEMORY column:\n{screen}");
        for (col, cell) in row {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if BYTES.contains(&col.as_str()) {
                // Digits alone (bytes, below 1024), or digits, one decimal
                // and a unit.
                let whole = digits(cell)
                    || cell.len() >= 4
                        && cell[cell.len() - 1..].chars().all(|u| "KMGT".contains(u))
                        && cell[cell.len() - 3..cell.len() - 2] == *"."
                        && digits(&cell[..cell.len() - 3])
                        && digits(&cell[cell.len() - 2..cell.len() - 1]);
                assert!(whole, "{col} shows {cell:?} at {cols} columns:\n{screen}");
                if digits(cell) {
                    assert!(cell.parse::<u64>().unwrap() < 1024, "{cell}:\n{screen}");
                }
            } else if COUNTS.contains(&col.as_str()) {
                assert!(digits(cell), "{col} shows {cell:?}:\n{screen}");
            } else if col == "ACCEPTQ" {
                // `-`, or queued/backlog with `!` when full.
                let whole = cell == "-"
                    || cell
                        .trim_end_matches('!')
                        .split_once('/')
                        .is_some_and(|(q, b)| digits(q) && digits(b));
                assert!(whole, "{col} shows {cell:?} at {cols} columns:\n{screen}");
            } else {
                assert!(TEXT.contains(&col.as_str()), "a column {col:?}:\n{screen}");
            }
        }
    }
}

/// What ss says the sockets on local `port` hold (r + w + f), listeners
/// aside: the figure top's MEMORY shows for `listen:PORT`.
fn held_by(ns: &Netns, port: u16) -> u64 {
    ns.ss()
        .iter()
        .filter(|x| x.local_port == port && x.state != "LISTEN")
        .map(|x| x.w + x.r + x.f)
        .sum()
}

/// "29.4M" → bytes.
fn bytes(s: &str) -> u64 {
    let (n, mult) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1024.0),
        Some('M') => (&s[..s.len() - 1], 1024.0 * 1024.0),
        Some('G') => (&s[..s.len() - 1], 1024.0 * 1024.0 * 1024.0),
        _ => (s, 1.0),
    };
    (n.parse::<f64>().unwrap() * mult) as u64
}

#[test]
fn top_in_tmux_shows_sorts_opens_resizes_and_quits_cleanly() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top");
    let (big, orph) = (18700u16, 18701u16);
    let _queued = ns.load(&["stuck-readers", "--port", &big.to_string(), "--conns", "8"]);
    let _orphans = ns.load(&["orphans", "--port", &orph.to_string(), "--conns", "3"]);
    let before = loaded_netmem_programs();
    let t = Tmux::start(&format!("--netns {} --interval 500ms", ns.name));

    // The loaded group first, its memory within 10% of ss.
    let s = t.wait("the table", |s| {
        rows(s).len() >= 2 && s.contains("sorted by memory")
    });
    let r = rows(&s);
    assert_eq!(r[0][0], format!("listen:{big}"), "{s}");
    let want = held_by(&ns, big);
    let got = bytes(&r[0][1]);
    assert!(within_10pct(got, want), "top says {got}, ss says {want}");
    assert!(
        s.contains("TCP memory") && s.contains("tcp_max_orphans"),
        "{s}"
    );
    assert!(s.contains("doctor:"), "{s}");

    // `o` sorts by orphans: the orphaned port comes first.
    t.keys("o");
    let s = t.wait("the orphan sort", |s| s.contains("sorted by orphans"));
    assert_eq!(rows(&s)[0][0], format!("listen:{orph}"), "{s}");
    assert_eq!(rows(&s)[0][5], "3", "orphans column: {s}");

    // Enter: the selected group's sockets, from sock_diag.
    t.keys("Enter");
    let s = t.wait("the sockets", |s| {
        s.contains(&format!("sockets of listen:{orph}"))
    });
    assert_eq!(s.matches("FIN_WAIT1").count(), 3, "{s}");
    t.keys("Escape");
    t.wait("the table again", |s| s.contains("sorted by orphans"));

    // Tiny, then back.
    t.resize(40, 12);
    t.wait("the small screen", |s| {
        s.lines().all(|l| l.chars().count() <= 40) && s.contains("GROUP")
    });
    t.resize(150, 40);
    t.wait("the full screen", |s| s.contains("latest events"));

    // A filter keeps only matching groups.
    t.keys("/");
    t.keys(&big.to_string());
    t.keys("Enter");
    let s = t.wait("the filter", |s| {
        s.contains(&format!("filter: {big}")) && rows(s).len() == 2
    });
    assert!(
        rows(&s).iter().all(|r| r[0].contains(&big.to_string())),
        "{s}"
    );

    // q: exit 0, the terminal back in canonical mode with echo, nothing
    // left attached.
    t.keys("q");
    t.assert_clean_exit("q");
    assert_eq!(programs_after_exit(before), before, "programs left loaded");
}

#[test]
fn top_refuses_without_a_terminal() {
    let o = Command::new(netmem_bin()).args(["top"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("netmem trace") && err.contains("not one"),
        "{err}"
    );
}

/// SIGTERM (a service manager, `kill`) ends it like `q`: exit 0, the
/// terminal restored.
#[test]
fn top_restores_the_terminal_on_sigterm() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top-term");
    let t = Tmux::start(&format!("--netns {} --interval 300ms", ns.name));
    t.wait("the view", |s| s.contains("sorted by memory"));
    let o = Command::new("pgrep")
        .args(["-f", &format!("top --netns {} ", ns.name)])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .find(|p: &i32| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "netmem")
        })
        .expect("netmem top's pid");
    // SAFETY: kill on a process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    t.assert_clean_exit("SIGTERM");
}

/// `top --owners` over every namespace: the tenant's group carries its
/// namespace in its name and its process in the OWNER column.
#[test]
fn top_shows_owners_and_namespaces() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top-own");
    let _load = ns.load(&["stuck-readers", "--port", "7500", "--conns", "4"]);
    let t = Tmux::start("--netns all --owners --interval 500ms");
    let group = format!("listen:7500@{}", ns.name);
    let screen = t.wait("the tenant's group with its owner", |s| {
        s.contains("OWNER")
            && s.lines()
                .any(|l| l.contains(&group) && l.contains("netmem-load["))
    });
    assert!(screen.contains("OWNER"), "{screen}");
    // Its sockets, found in its own namespace.
    t.keys(&format!("/{}", "7500"));
    t.keys("Enter");
    t.wait("a filtered table", |s| s.contains("filter"));
    t.keys("Enter");
    t.wait("the tenant's sockets", |s| {
        s.contains("LOCAL") && s.matches(":7500").count() >= 4
    });
    t.keys("Escape");
    t.keys("q");
    t.assert_clean_exit("q");
}

#[test]
fn top_shows_haproxys_names() {
    require_root();
    let _serial = serial();
    let mut rig = netmem_tests::rig::Rig::start(netmem_tests::rig::RigConfig {
        name: format!("nmtop{}", std::process::id() % 100000),
        slow: 2,
        normal: 0,
        vanishing: 0,
        client_timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .expect("start the rig");
    rig.start_clients().expect("clients");
    // Found running, no flag.
    let t = Tmux::start(&format!("--netns {} --interval 500ms", rig.ns));
    let screen = t.wait("HAProxy's names beside the groups", |s| {
        s.contains("PROXY")
            && s.lines()
                .any(|l| l.contains("listen:8080") && l.contains("rig"))
            && s.lines()
                .any(|l| l.contains("backend:127.0.0.1:9001") && l.contains("servers/b1"))
    });
    assert!(screen.contains("servers/b2"), "{screen}");
    t.keys("q");
    t.assert_clean_exit("q");
}

/// At 60x14 and 40x12 every figure in the table is whole with its unit:
/// columns go (PROXY, LAST MINUTE, EVENTS, then counts) before a number is
/// cut. The loaded group's memory still matches ss at each size.
#[test]
fn top_keeps_every_figure_whole_on_small_terminals() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top-small");
    let (big, orph) = (18710u16, 18711u16);
    let _queued = ns.load(&["stuck-readers", "--port", &big.to_string(), "--conns", "8"]);
    let _orphans = ns.load(&["orphans", "--port", &orph.to_string(), "--conns", "3"]);
    let want = held_by(&ns, big);
    let t = Tmux::start_sized(&format!("--netns {} --interval 500ms", ns.name), 60, 14);
    for (x, y) in [(60, 14), (40, 12), (60, 14)] {
        t.resize(x, y);
        let s = t.wait(&format!("the table at {x}x{y} with its groups"), |s| {
            s.lines().all(|l| l.chars().count() <= x as usize) && table(s, &["GROUP"]).len() >= 4
        });
        assert_whole_figures(&s, x);
        let rows = table(&s, &["GROUP"]);
        let top = &rows[0];
        assert_eq!(top["GROUP"], format!("listen:{big}"), "{s}");
        let got = bytes(&top["MEMORY"]);
        assert!(
            within_10pct(got, want),
            "at {x}x{y} top says {got}, ss says {want}:\n{s}"
        );
    }
    t.keys("q");
    t.assert_clean_exit("q");
}

/// A listener filled past its backlog: its row's ACCEPTQ says how many
/// wait against the backlog, as `ss -ltn`, and marks it full, at full
/// size and on a small terminal alike.
#[test]
fn top_shows_a_full_accept_queue() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top-acceptq");
    let port = 18720u16;
    let _full = ns.load(&[
        "overflow",
        "--port",
        &port.to_string(),
        "--backlog",
        "6",
        "--conns",
        "12",
    ]);
    let t = Tmux::start(&format!("--netns {} --interval 500ms", ns.name));
    for (x, y) in [(150, 40), (72, 14)] {
        t.resize(x, y);
        let s = t.wait(&format!("the accept queue at {x}x{y}"), |s| {
            s.lines().all(|l| l.chars().count() <= x as usize)
                && table(s, &["GROUP"]).iter().any(|r| {
                    r.get("GROUP") == Some(&format!("listen:{port}")) && r.contains_key("ACCEPTQ")
                })
        });
        assert_whole_figures(&s, x);
        let rows = table(&s, &["GROUP"]);
        let row = rows
            .iter()
            .find(|r| r["GROUP"] == format!("listen:{port}"))
            .unwrap();
        assert_eq!(row["ACCEPTQ"], "7/6!", "{s}");
    }
    t.keys("q");
    t.assert_clean_exit("q");
}

/// Enter on a group lists the sockets its row counts: the title's count is
/// the row's SOCKS, and no TIME_WAIT socket is listed, though the port has
/// a hundred of them; `t` lists them too (counted apart), `t` again hides
/// them.
#[test]
fn top_drill_down_lists_what_the_row_counts() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("top-tw");
    let port = 18720u16;
    // Server-side TIME_WAIT on the port (100 on each of 8 ports), left
    // behind when the churn's listeners close; then 8 live connections
    // with full queues on the same port.
    drop(ns.load(&["churn-tw", "--port", &port.to_string(), "--count", "800"]));
    let _queued = ns.load(&["stuck-readers", "--port", &port.to_string(), "--conns", "8"]);
    let tw = ns
        .ss()
        .iter()
        .filter(|x| x.local_port == port && x.state == "TIME-WAIT")
        .count();
    assert!(tw > 50, "only {tw} TIME_WAIT sockets on {port}");
    let t = Tmux::start(&format!("--netns {} --interval 500ms", ns.name));
    let group = format!("listen:{port}");
    // Keys typed before the view is up would meet a cooked terminal.
    t.wait("the group", |s| s.contains(&group));
    t.keys("/");
    t.keys(&port.to_string());
    t.keys("Enter");
    let s = t.wait("the group's row, filtered", |s| {
        s.contains(&format!("filter: {port}"))
            && !s.contains("Enter applies")
            && table(s, &["GROUP"]).len() == 2
    });
    let rows = table(&s, &["GROUP"]);
    let row = rows.iter().find(|r| r["GROUP"] == group).unwrap();
    assert_eq!(row["SOCKS"], "8", "{s}");
    assert_eq!(rows[0]["GROUP"], group, "{s}");

    t.keys("Enter");
    let title = format!("sockets of {group} (");
    let s = t.wait("the group's sockets", |s| s.contains(&title));
    let count = |s: &str| -> String {
        let i = s.find(&title).unwrap() + title.len();
        s[i..].chars().take_while(|c| *c != ')').collect()
    };
    assert_eq!(count(&s), row["SOCKS"], "{s}");
    assert!(s.contains("t shows TIME_WAIT"), "{s}");
    let listed = table(&s, &["LOCAL", "REMOTE"]);
    assert_eq!(listed.len(), 8, "{s}");
    assert!(listed.iter().all(|r| r["STATE"] == "ESTABLISHED"), "{s}");

    t.keys("t");
    let s = t.wait("the TIME_WAIT sockets", |s| s.contains("TIME_WAIT)"));
    assert_eq!(count(&s), format!("8 + {tw} TIME_WAIT"), "{s}");
    let listed = table(&s, &["LOCAL", "REMOTE"]);
    assert!(
        listed.iter().filter(|r| r["STATE"] == "TIME_WAIT").count() > 10,
        "{s}"
    );
    t.keys("t");
    let s = t.wait("TIME_WAIT hidden again", |s| {
        s.contains(&format!("{title}8)"))
    });
    let listed = table(&s, &["LOCAL", "REMOTE"]);
    assert_eq!(listed.len(), 8, "{s}");
    assert!(listed.iter().all(|r| r["STATE"] == "ESTABLISHED"), "{s}");
    t.keys("Escape");
    t.keys("q");
    t.assert_clean_exit("q");
}
