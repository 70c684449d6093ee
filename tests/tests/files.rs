//! Files netmem writes never follow a symbolic link: the kernel-facts
//! cache (and its temp file), `report -o`, `record -o`. Each test plants
//! links to a root-owned 0600 "victim" file, as another local user could in
//! a world-writable directory, runs the real netmem as root, and checks the
//! victim is untouched. Everything lives in directories the test creates
//! under the temp dir; nothing of the machine's is changed.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netmem_tests::*;

const PRECIOUS: &[u8] = b"root's own, mode 0600: netmem must never write here\n";

/// A fresh directory of the test's own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str, mode: u32) -> Dir {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("netmem-files-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        Dir(d)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A root-owned 0600 file, the kind a link would aim netmem at.
fn victim(dir: &Dir) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, PRECIOUS).unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(
        std::fs::read(v).unwrap(),
        PRECIOUS,
        "{} was written through a link",
        v.display()
    );
    let m = std::fs::metadata(v).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// A regular file (not a link) of root's, with these bytes' start.
fn assert_regular(p: &Path, starts: &[u8]) {
    let m = std::fs::symlink_metadata(p).unwrap();
    assert!(
        m.file_type().is_file(),
        "{} is not a regular file",
        p.display()
    );
    assert_eq!(m.uid(), 0);
    let bytes = std::fs::read(p).unwrap();
    assert!(
        bytes.starts_with(starts),
        "{} starts with {:?}",
        p.display(),
        String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `netmem -v probes` with its kernel-facts cache in `cache`, run in a PID
/// namespace of its own so that its pid (1) is known in advance, as an
/// attacker would guess it.
fn probes_with_cache(cache: &Path) -> Output {
    let o = Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(netmem_bin())
        .args(["-v", "probes", "--json"])
        .env("NETMEM_CACHE_DIR", cache)
        .env("RUST_LOG", "netmem=debug")
        .output()
        .expect("run unshare (util-linux)");
    assert!(o.status.success(), "netmem probes failed: {}", stderr(&o));
    o
}

/// The old temp file was `.kernel-facts.<pid>`, written through whatever
/// was there. Links planted for the pids netmem may get must not lead it
/// into the victim, whether the directory is refused (world-writable, no
/// sticky bit) or used (world-writable and sticky, like /tmp).
#[test]
fn planted_temp_file_links_never_reach_the_victim() {
    require_root();
    let safe = Dir::new("victim", 0o700);
    let v = victim(&safe);
    for mode in [0o777, 0o1777] {
        let cache = Dir::new("cache", mode);
        for pid in 1..=32 {
            symlink(&v, cache.join(&format!(".kernel-facts.{pid}"))).unwrap();
        }
        let o = probes_with_cache(&cache.0);
        let err = stderr(&o);
        assert_untouched(&v);
        let file = cache.join("kernel-facts.json");
        if mode == 0o777 {
            // Anyone could swap files in it: not used at all, and said.
            assert!(
                err.contains("not using the kernel-facts cache")
                    && err.contains("writable by others"),
                "{err}"
            );
            assert!(
                !file.exists(),
                "a cache was written in a {mode:o} directory"
            );
        } else {
            assert_regular(&file, b"{\"key\":");
            let m = std::fs::metadata(&file).unwrap();
            assert_eq!(m.mode() & 0o777, 0o600);
            // The next start trusts and uses what was written.
            let again = probes_with_cache(&cache.0);
            assert!(
                stderr(&again).contains("kernel facts from"),
                "{}",
                stderr(&again)
            );
            assert_untouched(&v);
        }
        for pid in 1..=32 {
            assert!(is_link(&cache.join(&format!(".kernel-facts.{pid}"))));
        }
    }
}

/// A kernel-facts.json that is a link to a root-owned 0600 file (here: a
/// valid cache, so only the link can make it untrusted) is not read; it is
/// replaced by a file of netmem's own, and the file it pointed at is left
/// alone.
#[test]
fn a_cache_file_that_is_a_link_is_not_trusted() {
    require_root();
    let made = Dir::new("made", 0o700);
    probes_with_cache(&made.0);
    let safe = Dir::new("victim", 0o700);
    let v = safe.join("facts");
    std::fs::copy(made.join("kernel-facts.json"), &v).unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::read(&v).unwrap();

    let cache = Dir::new("cache", 0o700);
    let file = cache.join("kernel-facts.json");
    symlink(&v, &file).unwrap();
    let err = stderr(&probes_with_cache(&cache.0));
    assert!(
        !err.contains("kernel facts from"),
        "a link was trusted: {err}"
    );
    assert!(err.contains("kernel facts not cached"), "{err}");
    assert_regular(&file, b"{\"key\":");
    assert_eq!(std::fs::read(&v).unwrap(), before);
}

/// A cache directory others could change under netmem is not used: one
/// writable by all without the sticky bit (above), one owned by another
/// user, and one that is itself a link. Each says why once and runs
/// without the cache.
#[test]
fn a_cache_directory_not_ours_alone_is_not_used() {
    require_root();
    let foreign = Dir::new("foreign", 0o700);
    std::os::unix::fs::chown(&foreign.0, Some(65534), Some(65534)).unwrap();
    let real = Dir::new("real", 0o700);
    let links = Dir::new("links", 0o700);
    let linked = links.join("cache");
    symlink(&real.0, &linked).unwrap();
    for (dir, why, written) in [
        (
            &foreign.0,
            "owned by uid 65534",
            foreign.join("kernel-facts.json"),
        ),
        (&linked, "a symbolic link", real.join("kernel-facts.json")),
    ] {
        let err = stderr(&probes_with_cache(dir));
        let said = err
            .lines()
            .filter(|l| l.contains("not using the kernel-facts cache"))
            .collect::<Vec<_>>();
        assert_eq!(said.len(), 1, "{err}");
        assert!(said[0].contains(why), "{err}");
        assert!(
            !written.exists(),
            "a cache was written in {}",
            dir.display()
        );
    }
}

/// `netmem report`, run as root in `cwd`.
fn report(cwd: &Path, args: &[&str]) -> Output {
    Command::new(netmem_bin())
        .current_dir(cwd)
        .arg("report")
        .args(args)
        .output()
        .expect("run netmem")
}

/// Whether this build's `report` takes `--force` (an existing output is
/// then refused without it, as `record` does).
fn report_has_force() -> bool {
    let o = Command::new(netmem_bin())
        .args(["report", "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).contains("--force")
}

/// `report -o` never writes through a link, nor creates a file through a
/// dangling one: the link is refused with a one-line error (when `report`
/// has `--force`, it refuses an existing output), or replaced by the report
/// itself, and with `--force` always replaced.
#[test]
fn report_never_writes_through_a_link() {
    require_root();
    let safe = Dir::new("victim", 0o700);
    let v = victim(&safe);
    let work = Dir::new("work", 0o1777);
    let rec = work.join("run.nmr");
    netmem_tests::synthetic::recording(&rec, 20, 3).unwrap();
    let rec = rec.to_str().unwrap();
    let force = report_has_force();

    // The default output, ./report.html, planted as a link to the victim;
    // then a link to where the victim's directory has no file yet.
    let absent = safe.join("created-through-a-link");
    let dangling = work.join("dangling.html");
    symlink(&v, work.join("report.html")).unwrap();
    symlink(&absent, &dangling).unwrap();
    for (args, out) in [
        (vec![rec], work.join("report.html")),
        (
            vec![rec, "-o", dangling.to_str().unwrap()],
            dangling.clone(),
        ),
    ] {
        let o = report(&work.0, &args);
        assert_untouched(&v);
        assert!(
            !absent.exists(),
            "a file was created through a dangling link"
        );
        if force {
            assert!(!o.status.success());
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("exists (a symbolic link)") && err.contains("--force"),
                "{err}"
            );
            assert!(
                is_link(&out),
                "{} was removed without --force",
                out.display()
            );
            let mut args = args.clone();
            args.push("--force");
            let o = report(&work.0, &args);
            assert!(o.status.success(), "{}", stderr(&o));
        } else {
            assert!(o.status.success(), "{}", stderr(&o));
        }
        assert_untouched(&v);
        assert!(
            !absent.exists(),
            "a file was created through a dangling link"
        );
        assert_regular(&out, b"<!DOCTYPE html>");
        // A report is for sharing: the umask decides, as for any new file.
        let m = std::fs::metadata(&out).unwrap().mode() & 0o777;
        assert_eq!(m, 0o666 & !umask_of_tests(), "mode {m:o}");
    }
}

/// The umask the tests run under (netmem inherits it).
fn umask_of_tests() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let m = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask in /proc/self/status");
    u32::from_str_radix(m.trim(), 8).unwrap()
}

/// `record -o LINK --force` replaces the link with the recording; without
/// `--force` a link, dangling or not, is refused like any existing file.
#[test]
fn record_force_replaces_a_link_and_never_follows_it() {
    require_root();
    let ns = Netns::new("files");
    let safe = Dir::new("victim", 0o700);
    let v = victim(&safe);
    let work = Dir::new("work", 0o1777);
    let absent = safe.join("created-through-a-link");
    let link = work.join("run.nmr");
    let dangling = work.join("dangling.nmr");
    symlink(&v, &link).unwrap();
    symlink(&absent, &dangling).unwrap();
    let record = |out: &Path, force: bool| {
        let mut c = Command::new(netmem_bin());
        c.args(["record", "-o", out.to_str().unwrap(), "--duration", "1s"])
            .args(["--netns", &ns.name]);
        if force {
            c.arg("--force");
        }
        c.output().expect("run netmem record")
    };
    for out in [&link, &dangling] {
        let o = record(out, false);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("exists (a symbolic link)") && err.contains("--force"),
            "{err}"
        );
        assert!(is_link(out));
    }
    assert_untouched(&v);
    assert!(!absent.exists());
    for out in [&link, &dangling] {
        let o = record(out, true);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_untouched(&v);
        assert!(
            !absent.exists(),
            "a file was created through a dangling link"
        );
        // A zstd frame: the recording itself, in place of the link.
        assert_regular(out, &[0x28, 0xb5, 0x2f, 0xfd]);
    }
}

/// A device named as the output (`-o /dev/null`) is written in place and
/// never replaced or removed, even when nothing could be recorded (which
/// removes an empty recording). The device here is a null device of the
/// test's own, in a directory where `nobody` may remove files.
#[test]
fn a_device_output_is_written_in_place_and_kept() {
    require_root();
    let work = Dir::new("work", 0o777);
    let node = work.join("null");
    let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; 1:3 is the null device.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    let is_device = || {
        std::fs::symlink_metadata(&node).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_char_device()
        })
    };
    let path = node.to_str().unwrap();
    // Unprivileged, record fails after creating its output.
    let o = netmem_as_nobody(&["record", "-o", path, "--force", "--duration", "1s"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loads eBPF programs"), "{}", stderr(&o));
    assert!(is_device(), "the failed recording removed {path}");
    let rec = work.join("run.nmr");
    netmem_tests::synthetic::recording(&rec, 5, 2).unwrap();
    let o = report(&work.0, &[rec.to_str().unwrap(), "-o", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_device(), "report replaced {path}");
}
