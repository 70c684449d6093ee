//! What `cargo xtask dist` ships (target/dist/), installed where there is no
//! Rust: the .deb in a Debian rootfs made by debootstrap from this
//! machine's own apt sources (cached under target/install-root/), and the
//! OCI image unpacked with umoci. `cargo xtask test` runs dist first.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netmem_tests::serve::{free_port, http_get};
use netmem_tests::*;
use serde_json::Value;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// One artifact of target/dist/ whose name starts and ends so.
fn artifact(prefix: &str, suffix: &str) -> PathBuf {
    let dist = target_dir().join("dist");
    std::fs::read_dir(&dist)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {prefix}*{suffix} in {}: run `cargo xtask dist` first (`cargo xtask test` does)",
                dist.display()
            )
        })
}

/// The Debian release and archive this machine's apt uses (its one-line or
/// deb822 sources), so debootstrap fetches from where apt already does.
fn release_and_mirror() -> (String, String) {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let release = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap_or("bookworm")
        .trim_matches('"')
        .to_string();
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(d) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in d.flatten() {
            texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for text in &texts {
        // One-line form: deb [opts] URI SUITE COMPONENTS.
        for l in text.lines().map(str::trim) {
            let words: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with('[') && !w.ends_with(']'))
                .collect();
            if words.len() >= 3 && words[0] == "deb" && words[2] == release {
                return (release, words[1].to_string());
            }
        }
        // deb822: a stanza whose Suites include the release itself.
        for stanza in text.split("\n\n") {
            let field = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::trim)
            };
            if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                if suites.split_whitespace().any(|s| s == release) {
                    let uri = uris.split_whitespace().next().unwrap();
                    return (release, uri.to_string());
                }
            }
        }
    }
    (release, "http://deb.debian.org/debian".into())
}

fn run(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A pristine Debian rootfs (minbase, with man-db and bash-completion so
/// `man` and completions can be tried), made once and kept: the first
/// debootstrap took 136 s here (a fresh CI machine pays it once per run).
/// Remove target/install-root/ to make it again.
fn cached_rootfs() -> PathBuf {
    let (release, mirror) = release_and_mirror();
    let dir = target_dir().join("install-root");
    let root = dir.join(&release);
    let done = dir.join(format!("{release}.complete"));
    if done.exists() {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap();
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=man-db,bash-completion",
            &release,
        ])
        .arg(&root)
        .arg(&mirror));
    std::fs::write(&done, "").unwrap();
    root
}

/// A copy of the cached rootfs this test may change; removed on drop.
struct Rootfs(PathBuf);

impl Rootfs {
    fn fresh() -> Rootfs {
        let pristine = cached_rootfs();
        let root = target_dir()
            .join("install-root")
            .join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        run(Command::new("cp").arg("-a").arg(&pristine).arg(&root));
        Rootfs(root)
    }

    /// `ARGS` chrooted into the rootfs with /proc, /sys and /dev bound (and
    /// /run/netns once the test made one, so `--netns NAME` finds it), in a
    /// mount namespace of its own (the binds go with it). `prefix` runs
    /// first on the host side (e.g. `ip netns exec NS`).
    fn cmd(&self, prefix: &[&str], args: &[&str]) -> Command {
        let r = self.0.display().to_string();
        let script = format!(
            "for d in proc sys dev; do mount --rbind /$d '{r}'/$d || exit 1; done; \
             if [ -d /run/netns ]; then mkdir -p '{r}'/run/netns && mount --rbind /run/netns '{r}'/run/netns || exit 1; fi; \
             exec chroot '{r}' \"$@\""
        );
        let mut c = Command::new(prefix.first().copied().unwrap_or("unshare"));
        if !prefix.is_empty() {
            c.args(&prefix[1..]).arg("unshare");
        }
        c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        c
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The unit file's `Key=` value.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in the unit"))
}

#[test]
fn deb_installs_and_runs_on_a_host_without_rust() {
    require_root();
    let deb = artifact("netmem_", "_amd64.deb");
    let root = Rootfs::fresh();
    let in_root = format!("/tmp/{}", deb.file_name().unwrap().to_string_lossy());
    std::fs::copy(&deb, root.0.join(in_root.trim_start_matches('/'))).unwrap();
    // README's "On a server" commands, as written there (-y: no terminal).
    run(root
        .cmd(
            &[],
            &["sh", "-c", "cd /tmp && apt install -y ./netmem_*_amd64.deb"],
        )
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(
        !root
            .0
            .join("etc/systemd/system/multi-user.target.wants/netmem.service")
            .exists(),
        "the package enables no service: README says the operator does"
    );
    run(&mut root.cmd(
        &[],
        &[
            "sh",
            "-c",
            "mkdir -p /etc/systemd/system/netmem.service.d && \
             cp /usr/share/netmem/systemd/every-namespace.conf /etc/systemd/system/netmem.service.d/",
        ],
    ));

    let v = text(&run(&mut root.cmd(&[], &["netmem", "--version"])));
    assert!(v.starts_with("netmem 0.1.0 (commit "), "{v}");
    assert!(v.contains(", built ") && v.contains("eBPF sha256:"), "{v}");
    let ours = text(&run(
        Command::new(artifact("netmem-x86_64", "linux-musl")).arg("-V")
    ));
    assert_eq!(v, ours, "the .deb holds the shipped binary");

    let page = text(&run(
        &mut root.cmd(&[], &["man", "-P", "cat", "netmem-trace"])
    ));
    assert!(
        page.contains("netmem-trace") && page.contains("--interval"),
        "{page}"
    );
    run(&mut root.cmd(&[], &["man", "-w", "netmem"]));

    // bash-completion's own loader finds the completion, which offers
    // the subcommands.
    let complete = text(&run(&mut root.cmd(
        &[],
        &[
            "bash",
            "-c",
            ". /usr/share/bash-completion/bash_completion; _completion_loader netmem; \
             complete -p netmem; COMP_WORDS=(netmem tr); COMP_CWORD=1; COMP_LINE='netmem tr'; \
             COMP_POINT=9; _netmem netmem tr netmem; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ],
    )));
    assert!(complete.contains("-F _netmem"), "{complete}");
    assert!(complete.lines().any(|l| l == "trace"), "{complete}");
    for f in [
        "usr/share/zsh/vendor-completions/_netmem",
        "usr/share/fish/vendor_completions.d/netmem.fish",
        "usr/share/netmem/prometheus/netmem.rules.yml",
        "usr/share/netmem/grafana/netmem.json",
        "usr/share/netmem/node-problem-detector/netmem-monitor.json",
        "usr/share/netmem/systemd/every-namespace.conf",
        "usr/share/doc/netmem/copyright",
    ] {
        assert!(root.0.join(f).exists(), "{f} not installed");
    }

    // snapshot and doctor in the rootfs see the sockets this test holds.
    let ns = Netns::new("install");
    let port = 18460u16;
    let _load = ns.load(&[
        "stuck-readers",
        "--port",
        &port.to_string(),
        "--conns",
        "12",
    ]);
    let ip = ["ip", "netns", "exec", ns.name.as_str()];
    let snap = ok_json(
        &root
            .cmd(&ip, &["netmem", "snapshot", "--json"])
            .output()
            .unwrap(),
    );
    let groups = last_groups(&snap);
    let g = group(&groups, &format!("listen:{port}"));
    let ss: u64 = ns
        .ss()
        .iter()
        .filter(|s| s.local_port == port && s.state != "LISTEN")
        .map(|s| s.r + s.w + s.f)
        .sum();
    assert_eq!(g["sockets"], 12, "{g}");
    let held: u64 = ["rmem_bytes", "wmem_queued_bytes", "fwd_alloc_bytes"]
        .iter()
        .map(|f| g[f].as_u64().unwrap())
        .sum();
    assert!(within_10pct(held, ss), "snapshot {held} vs ss {ss}: {g}");
    // tcp_mem is global and the kernel shows it in the initial network
    // namespace only: the doctor runs there and looks into the test's
    // namespace with --netns, as README says to.
    let doctor = ok_json(
        &root
            .cmd(&[], &["netmem", "doctor", "--json", "--netns", &ns.name])
            .output()
            .unwrap(),
    );
    let tm = doctor
        .iter()
        .find(|f| f["type"] == "finding" && f["id"] == "tcp_mem")
        .unwrap_or_else(|| panic!("no tcp_mem finding: {doctor:?}"));
    let name = format!("listen:{port}");
    assert_eq!(tm["group"], name.as_str(), "{tm}");
    let held_by = format!("held by {name}");
    let held: u64 = tm["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == held_by.as_str())
        .and_then(|e| e["value"].as_str()?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {held_by} in {tm}"));
    assert!(within_10pct(held, ss), "doctor {held} vs ss {ss}: {tm}");

    // The installed unit's ExecStart under exactly its capability set
    // serves /metrics (on a free port, not the unit's fixed one).
    let unit = std::fs::read_to_string(root.0.join("lib/systemd/system/netmem.service")).unwrap();
    let exec = unit_value(&unit, "ExecStart=");
    let caps = unit_value(&unit, "CapabilityBoundingSet=");
    assert_eq!(unit_value(&unit, "AmbientCapabilities="), caps);
    // What systemd makes for the unit before ExecStart: its state and
    // cache directories (the flight recorder writes under the first).
    let state = unit_value(&unit, "StateDirectory=");
    let state_dir = root.0.join("var/lib").join(state);
    std::fs::create_dir_all(&state_dir).unwrap();
    let mode = u32::from_str_radix(unit_value(&unit, "StateDirectoryMode="), 8).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::create_dir_all(
        root.0
            .join("var/cache")
            .join(unit_value(&unit, "CacheDirectory=")),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut argv: Vec<String> = exec.split_whitespace().map(String::from).collect();
    assert_eq!(argv[0], "/usr/bin/netmem", "{exec}");
    let at = argv.iter().position(|a| a == "--listen").unwrap();
    argv[at + 1] = listen.clone();
    let set: Vec<String> = caps
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding = format!("--bounding-set=-all,{}", set.join(","));
    let mut args = vec!["setpriv", bounding.as_str(), "--inh-caps=-all"];
    args.extend(argv.iter().map(String::as_str));
    let mut serve = root
        .cmd(&[], &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    let start = Instant::now();
    let body = loop {
        if let Ok((200, body)) = http_get(addr, "/metrics", None) {
            if body.contains("netmem_probe_info{") {
                break body;
            }
        }
        if start.elapsed() > Duration::from_secs(60) || serve.try_wait().unwrap().is_some() {
            let _ = serve.kill();
            let o = serve.wait_with_output().unwrap();
            panic!(
                "the unit's ExecStart served no metrics: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(!body.contains("tier=\"none\""), "{body}");
    // Its flight recorder runs into the state directory, private.
    let at = argv.iter().position(|a| a == "--flight-recorder").unwrap();
    let rec = root.0.join(argv[at + 1].trim_start_matches('/'));
    assert!(rec.starts_with(&state_dir), "{exec}");
    let mode = std::fs::metadata(&rec).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", rec.display());
    let (code, list) = http_get(addr, "/incidents", None).unwrap();
    assert_eq!(code, 200, "{list}");
    // SAFETY: kill on our own child's pid; it is not reaped yet.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let o = serve.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A blob of an OCI layout, by digest.
fn blob(layout: &Path, digest: &str) -> Value {
    let (alg, hex) = digest.split_once(':').unwrap();
    let b = std::fs::read(layout.join("blobs").join(alg).join(hex)).unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// The image, unpacked as a runtime would (umoci), holds the shipped
/// binary alone, labelled with version and commit; run against this
/// kernel, its snapshot equals the host build's.
#[test]
fn oci_image_holds_the_static_binary_labelled() {
    require_root();
    let tar = artifact("netmem-", "-oci.tar");
    let work = target_dir().join(format!("install-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout));

    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    let tag = m["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = blob(&layout, m["digest"].as_str().unwrap());
    let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], tag.as_str());
    let v = text(&run(
        Command::new(artifact("netmem-x86_64", "linux-musl")).arg("-V")
    ));
    let commit = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(v.contains(&format!("(commit {commit},")), "{v} vs {labels}");
    assert_eq!(config["config"]["Entrypoint"][0], "/netmem");

    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle));
    let files: Vec<String> = std::fs::read_dir(bundle.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["netmem"], "the image holds the binary alone");
    let bin = bundle.join("rootfs/netmem");
    assert_eq!(text(&run(Command::new(&bin).arg("-V"))), v);

    let ns = Netns::new("oci");
    let port = 18470u16;
    let _load = ns.load(&["stuck-readers", "--port", &port.to_string(), "--conns", "8"]);
    let name = format!("listen:{port}");
    // The same figures; only the time of reading differs.
    let figures = |groups: &[Value]| {
        let mut g = group(groups, &name).clone();
        g.as_object_mut().unwrap().remove("ts");
        g
    };
    // The load's senders may still be filling its buffers: compare once
    // the host build reads the same figures before and after the image's
    // reading, so both saw the same sockets.
    let start = Instant::now();
    let (image, host) = loop {
        let before = last_groups(&ok_json(&ns.netmem(&["snapshot", "--json"])));
        let image = last_groups(&ok_json(&run(ns.cmd(&bin).args(["snapshot", "--json"]))));
        let host = last_groups(&ok_json(&ns.netmem(&["snapshot", "--json"])));
        if figures(&before) == figures(&host) || start.elapsed() > Duration::from_secs(30) {
            break (image, host);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(figures(&image), figures(&host));
    assert_eq!(image.len(), host.len(), "{image:?} vs {host:?}");
    let _ = std::fs::remove_dir_all(&work);
}
