//! Cgroups the tests create, and starting a process inside one.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

use crate::netns::SEQ;

/// `cmd` starts inside the cgroup v2 directory `cgroup` (moved there
/// before it execs, so every socket it creates belongs to it).
pub fn start_in_cgroup(cmd: &mut Command, cgroup: &std::path::Path) {
    let procs =
        std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: open,
    // write and close on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A cgroup's `memory.stat` `sock`, read by the test itself (not through
/// netmem, whose figure it checks), when it has a v2 memory controller.
pub fn memory_stat_sock(cgroup: &std::path::Path) -> Option<u64> {
    let s = std::fs::read_to_string(cgroup.join("memory.stat")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("sock "))
        .and_then(|v| v.trim().parse().ok())
}

/// A cgroup v2 the test owns, under `netmem-test-PID/` at the cgroup2
/// root; removed (with the subtree, once empty) on drop. Nothing else on
/// the machine is moved or limited.
pub struct TestCgroup {
    pub path: PathBuf,
    /// As netmem names it: the path under the cgroup2 mount.
    pub rel: String,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let root = netmem::sources::owners::cgroup2_mount()
            .expect("a cgroup2 mount (cgroup v2 or hybrid)");
        let parent = root.join(format!("netmem-test-{}", std::process::id()));
        let _ = std::fs::create_dir(&parent);
        let path = parent.join(format!("{name}-{}", SEQ.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", path.display()));
        let rel = format!("/{}", path.strip_prefix(&root).unwrap().display());
        TestCgroup { path, rel }
    }

    /// The cgroup's id, as sock_diag and bpf_get_current_cgroup_id give it.
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).unwrap().ino()
    }

    /// `memory.stat`'s `sock`, when this cgroup has a v2 memory controller.
    pub fn memcg_sock(&self) -> Option<u64> {
        memory_stat_sock(&self.path)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The processes have exited by now (their Held dropped first); a
        // cgroup is removed with rmdir once empty.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
