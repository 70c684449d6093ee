//! How netmem fails: clear messages, non-zero exits, nothing attached.

use std::process::Command;

use netmem_tests::*;

/// Tests that count loaded programs before and after must not overlap
/// (cargo runs a file's tests on parallel threads).
static PROGRAM_COUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn counting_programs() -> std::sync::MutexGuard<'static, ()> {
    PROGRAM_COUNT.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn bad_flags_are_clap_errors() {
    let o = Command::new(netmem_bin())
        .args(["trace", "--interval", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("examples: 1s"));
    let o = Command::new(netmem_bin())
        .args(["snapshot", "--backend", "10.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ADDR:PORT"));
    let o = Command::new(netmem_bin())
        .args(["trace", "--duration", "0s"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unprivileged_trace_explains_itself_and_attaches_nothing() {
    require_root();
    let o = netmem_as_nobody(&["trace", "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("needs root (or CAP_BPF and CAP_PERFMON)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, not a backtrace: {err}");
    assert!(o.stdout.is_empty(), "nothing printed as if attached");
}

#[test]
fn trace_leaves_no_program_behind() {
    require_root();
    let _serial = counting_programs();
    let ns = Netns::new("cleanup");
    let before = loaded_netmem_programs();
    let child = ns
        .cmd(netmem_bin())
        .args(["trace", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(loaded_netmem_programs() > before, "trace attached nothing");
    // SIGINT, as Ctrl-C would send.
    // SAFETY: kill has no memory preconditions; the pid is our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.last().unwrap()["type"], "summary");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        loaded_netmem_programs(),
        before,
        "programs left loaded after exit"
    );
}

#[test]
fn serve_refuses_bad_flags_and_a_taken_port_before_attaching() {
    require_root();
    for (args, says) in [
        (&["serve", "--listen", "nonsense"][..], "ADDR:PORT"),
        (&["serve", "--listen", "127.0.0.1:99999"][..], "ADDR:PORT"),
        (&["serve", "--max-groups", "0"][..], "max-groups"),
        (&["serve", "--interval", "soon"][..], "examples: 1s"),
    ] {
        let o = Command::new(netmem_bin()).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _serial = counting_programs();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let before = loaded_netmem_programs();
    let o = Command::new(netmem_bin())
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
    assert_eq!(
        loaded_netmem_programs(),
        before,
        "attached although it could not listen"
    );
}

/// SIGHUP (a service manager's "reload") changes nothing; SIGTERM stops
/// it with status 0 and every program detached.
#[test]
fn serve_ignores_sighup_and_leaves_nothing_on_sigterm() {
    require_root();
    let ns = Netns::new("serve-sig");
    let _serial = counting_programs();
    let before = loaded_netmem_programs();
    let serve = netmem_tests::serve::Serve::start(&["--netns", &ns.name, "--interval", "200ms"]);
    assert!(loaded_netmem_programs() > before);
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(
        serve.metrics().contains("netmem_probe_info"),
        "not serving after SIGHUP"
    );
    let (st, err) = serve.stop();
    assert!(st.success(), "exit {st}: {err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        loaded_netmem_programs(),
        before,
        "programs left loaded after exit"
    );
}
