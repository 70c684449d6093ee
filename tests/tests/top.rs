//! `netmem top` in a real terminal: Debian's tmux runs it against real
//! load in a namespace of the test's own; the test reads the screen with
//! capture-pane and types with send-keys.

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
            "150",
            "-y",
            "40",
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

    /// Waits until the screen satisfies `f` (15 s at most).
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "never saw {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
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
    let want: u64 = ns
        .ss()
        .iter()
        .filter(|x| x.local_port == big && x.state != "LISTEN")
        .map(|x| x.w + x.r + x.f)
        .sum();
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
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(loaded_netmem_programs(), before, "programs left loaded");
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
