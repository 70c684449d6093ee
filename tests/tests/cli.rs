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
    assert_eq!(
        programs_after_exit(before),
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
    assert_eq!(
        programs_after_exit(before),
        before,
        "programs left loaded after exit"
    );
}

/// A failed bind says why by its errno: an address this host does not
/// have is not "another exporter", and a low port names the capability.
/// Exit 1, one line, no URL, nothing attached.
#[test]
fn serve_says_why_it_cannot_listen() {
    require_root();
    let ns = Netns::new("serve-bind");
    let _serial = counting_programs();
    let before = loaded_netmem_programs();
    let nobind = [
        "--bounding-set=-net_bind_service",
        "--inh-caps=-net_bind_service",
    ];
    for (wrapper, listen, says) in [
        (
            &[][..],
            "10.99.99.99:10999",
            "10.99.99.99 is not an address of this host",
        ),
        (
            &nobind[..],
            "127.0.0.1:80",
            "ports below 1024 need root or CAP_NET_BIND_SERVICE",
        ),
    ] {
        let mut c = ns.cmd("setpriv");
        c.args(wrapper).arg(netmem_bin());
        let o = c.args(["serve", "--listen", listen]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{listen}: {err}");
        assert!(err.contains(says), "{listen}: {err}");
        assert!(
            !err.contains("another netmem serve or exporter"),
            "{listen}: blames another exporter: {err}"
        );
        assert!(!err.contains("http://"), "{listen}: printed a URL: {err}");
        assert_eq!(err.lines().count(), 1, "{listen}: {err}");
        assert_eq!(
            loaded_netmem_programs(),
            before,
            "{listen}: attached although it could not listen"
        );
    }
}

/// Without privileges serve fails before it says where it would serve.
#[test]
fn unprivileged_serve_prints_no_url() {
    require_root();
    let port = netmem_tests::serve::free_port();
    let o = netmem_as_nobody(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("needs root (or CAP_BPF and CAP_PERFMON)"),
        "{err}"
    );
    assert!(!err.contains("http://"), "a URL that never served: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The doctor reads one namespace: `--netns all` is refused in one line
/// that says so, not taken for a namespace named "all".
#[test]
fn doctor_refuses_every_namespace() {
    for json in [false, true] {
        let mut c = Command::new(netmem_bin());
        c.args(["doctor", "--netns", "all"]);
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("doctor reads one network namespace"), "{err}");
        assert!(!err.contains("/run/netns/all (see"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(o.stdout.is_empty(), "a report anyway");
    }
}

/// A one-shot snapshot (or doctor's reading) with a --haproxy path that
/// does not exist says so once to its reader, and promises no later look.
/// With --json the proxy line carries it for programs, stderr for people.
#[test]
fn one_shot_says_a_missing_haproxy_once() {
    let missing = "/nonexistent/netmem-test/haproxy.sock";
    let problem = format!("--haproxy {missing}: no such file or socket");
    for args in [
        &["snapshot"][..],
        &["doctor"][..],
        &["snapshot", "--json"][..],
    ] {
        let o = Command::new(netmem_bin())
            .args(args)
            .args(["--haproxy", missing])
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        let all = format!("{out}{err}");
        assert!(o.status.success(), "{args:?}: {all}");
        if args.contains(&"--json") {
            assert_eq!(err.matches(&problem).count(), 1, "{args:?}: {err}");
            let lines = json_lines(&out);
            let proxy = lines.iter().find(|l| l["type"] == "proxy").unwrap();
            assert!(proxy["problems"][0].as_str().unwrap().contains(&problem));
        } else {
            assert_eq!(all.matches(&problem).count(), 1, "{args:?}: {all}");
        }
        assert!(!all.contains("every interval"), "{args:?}: {all}");
        assert!(!all.contains("(yet)"), "{args:?}: {all}");
    }
}

/// `netmem SUB --help` for every subcommand: each flag has help, and the
/// same help (and value name) wherever it appears. Only the default may
/// differ (serve's --interval, report's -o) and clap's own --help.
#[test]
fn every_flag_reads_the_same_in_every_subcommand() {
    let top = Command::new(netmem_bin()).arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout).to_string();
    let subs: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .collect();
    assert!(subs.len() >= 8, "{subs:?}");
    // flag -> [(subcommand, value name, help)]
    let mut seen: std::collections::BTreeMap<String, Vec<(String, String, String)>> =
        Default::default();
    for sub in &subs {
        let o = Command::new(netmem_bin())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{sub} --help");
        for (flag, value, help) in flags(&String::from_utf8_lossy(&o.stdout)) {
            if flag == "--help" {
                continue;
            }
            assert!(!help.is_empty(), "{sub} {flag} has no help text");
            seen.entry(flag)
                .or_default()
                .push((sub.to_string(), value, help));
        }
    }
    assert!(seen.len() > 20, "{seen:#?}");
    for (flag, uses) in &seen {
        let (first_sub, value, help) = &uses[0];
        for (sub, v, h) in &uses[1..] {
            assert_eq!(
                (v, h),
                (value, help),
                "{flag}: `{sub}` and `{first_sub}` describe it differently"
            );
        }
    }
    // The flags issue 24 found described on some subcommands only.
    for f in [
        "--max-tier",
        "--interval",
        "--netns",
        "--json",
        "--event-limit",
    ] {
        assert!(seen[f].len() >= 2, "{f}: {:?}", seen[f]);
    }
}

/// `netmem::cli::command()`, which packaging turns into man pages and
/// shell completions, is the command line the binary parses: the same
/// subcommands, and for each the same help pages, flag for flag.
#[test]
fn the_library_command_is_the_binary_command_line() {
    let cmd = netmem::cli::command();
    let subs: Vec<&str> = cmd
        .get_subcommands()
        .map(|s| s.get_name())
        .filter(|s| *s != "help")
        .collect();
    assert_eq!(
        subs,
        ["snapshot", "trace", "doctor", "record", "report", "top", "serve", "probes", "check"]
    );
    let mut pages = vec![vec!["--help"], vec!["-h"], vec!["--version"]];
    for sub in &subs {
        pages.push(vec![sub, "--help"]);
        pages.push(vec![sub, "-h"]);
    }
    for args in pages {
        let o = Command::new(netmem_bin()).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        // What the library's parser prints for the same arguments.
        let lib = cmd
            .clone()
            .try_get_matches_from(std::iter::once("netmem").chain(args.iter().copied()))
            .err()
            .unwrap_or_else(|| panic!("{args:?} parsed as a command"))
            .to_string();
        assert_eq!(lib, String::from_utf8(o.stdout).unwrap(), "netmem {args:?}");
    }
}

/// The options of one `--help` page: (long flag, value name, help text
/// with its `[default: ...]` and possible values left out), in both of
/// clap's layouts (help beside the flag, or below it).
fn flags(page: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut in_options = false;
    let mut in_values = false;
    for line in page.lines() {
        if line.starts_with("Options:") {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if t.starts_with('-') && indent <= 6 {
            let (spec, rest) = t.split_once("  ").unwrap_or((t, ""));
            let flag = spec
                .split([',', ' '])
                .find(|w| w.starts_with("--"))
                .unwrap_or(spec)
                .to_string();
            let value = spec
                .find('<')
                .map(|i| spec[i..].to_string())
                .unwrap_or_default();
            out.push((flag, value, String::new()));
            in_values = false;
            if rest.trim().is_empty() {
                continue;
            }
        }
        let Some(last) = out.last_mut() else {
            continue;
        };
        if t.starts_with("Possible values:") {
            in_values = true;
            continue;
        }
        if in_values && (t.starts_with("- ") || t.is_empty()) {
            continue;
        }
        in_values = false;
        let text = if t.starts_with('-') && indent <= 6 {
            t.split_once("  ").map_or("", |(_, r)| r)
        } else {
            t
        };
        for w in text.split_whitespace() {
            last.2.push(' ');
            last.2.push_str(w);
        }
    }
    for (_, _, help) in &mut out {
        // `[default: X]` and `[possible values: a, b]`, as clap adds them.
        for tag in ["[default: ", "[possible values: "] {
            while let Some(i) = help.find(tag) {
                let end = help[i..].find(']').map_or(help.len(), |e| i + e + 1);
                help.replace_range(i..end, "");
            }
        }
        *help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out
}

/// One spelling of each hook: the catalog's, in `probes`, in the
/// trace's probes line and in the metrics' `hook` label.
#[test]
fn hook_names_agree_in_probes_trace_and_metrics() {
    require_root();
    let ns = Netns::new("hooknames");
    let catalog: Vec<&str> = netmem::hooks::catalog::HOOKS
        .iter()
        .map(|h| h.name)
        .collect();

    let o = Command::new(netmem_bin()).arg("probes").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    let probes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Every hook, then the census tier's row.
    let mut rows = catalog.clone();
    rows.push("census");
    assert_eq!(probes, rows, "probes:\n{table}");

    let o = ns.netmem(&["trace", "--duration", "200ms"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let line = out
        .lines()
        .find(|l| l.starts_with("probes: "))
        .expect("the trace's probes line");
    let served = line
        .split_once("hooks served: ")
        .map(|(_, r)| r.split(';').next().unwrap_or(""))
        .unwrap_or("");
    let trace: Vec<&str> = served
        .split_whitespace()
        .filter_map(|w| w.rsplit_once('=').map(|(h, _)| h))
        .collect();
    assert_eq!(trace, catalog, "{line}");

    let serve = netmem_tests::serve::Serve::start(&["--netns", &ns.name, "--interval", "300ms"]);
    let text = serve.metrics();
    let metrics: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("netmem_probe_info{"))
        .filter_map(|l| l.split("hook=\"").nth(1)?.split('"').next())
        .collect();
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
    let mut sorted = catalog.clone();
    sorted.sort_unstable();
    let mut metrics = metrics;
    metrics.sort_unstable();
    assert_eq!(metrics, sorted, "netmem_probe_info's hook labels");
}

/// `report -o` refuses an existing file as `record` does, and replaces
/// it with --force.
#[test]
fn report_replaces_a_file_only_with_force() {
    let dir = std::env::temp_dir().join(format!("netmem-cli-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("small.nmr");
    netmem_tests::synthetic::recording(&rec, 5, 3).unwrap();
    let html = dir.join("page.html");
    std::fs::write(&html, "someone's notes").unwrap();
    let report = |force: bool| {
        let mut c = Command::new(netmem_bin());
        c.arg("report").arg(&rec).arg("-o").arg(&html);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let o = report(false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exists: choose another -o, or pass --force to replace it"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), "someone's notes");
    let o = report(true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
    let _ = std::fs::remove_dir_all(&dir);
}
