//! Network namespaces the tests own: created empty, removed on drop.

use std::io::BufReader;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cgroup::{start_in_cgroup, TestCgroup};
use crate::lines::run_ok;
use crate::running::{until_probes, Held, Streaming};
use crate::ss::{parse_ss, SsSocket};
use crate::{load_bin, netmem_bin};

/// A network namespace with only `lo`, removed on drop. Sysctls and sockets
/// inside it never touch the machine's own network.
pub struct Netns {
    pub name: String,
}

pub(crate) static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "netmem-t{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            tag
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    /// A namespace created from inside `parent`: it takes `parent`'s
    /// `net.ipv4.tcp_child_ehash_entries` (a hash table of its own when
    /// set there, Linux 5.19+), without touching the machine's setting.
    pub fn new_child_of(parent: &Netns, tag: &str) -> Netns {
        let name = format!(
            "netmem-t{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            tag
        );
        // nsenter, not `ip netns exec`: the new name must be mounted in
        // this mount namespace, where the exec's private one would hide it.
        run_ok(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", parent.name))
                .args(["ip", "netns", "add", &name]),
        );
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts `netmem-load` and waits for its `ready`.
    pub fn load(&self, args: &[&str]) -> Held {
        self.load_with(args, None)
    }

    /// `load`, with netmem-load started inside `cgroup` (moved there
    /// before it execs, so every socket it creates belongs to it).
    pub fn load_in(&self, cgroup: &TestCgroup, args: &[&str]) -> Held {
        self.load_with(args, Some(cgroup))
    }

    fn load_with(&self, args: &[&str], cgroup: Option<&TestCgroup>) -> Held {
        let mut cmd = self.cmd(load_bin());
        if let Some(cg) = cgroup {
            start_in_cgroup(&mut cmd, &cg.path);
        }
        cmd.args(args);
        Held::start(&mut cmd)
    }

    /// netmem runs in the host namespace and looks into this one with
    /// --netns, as an operator would from the host.
    pub fn netmem(&self, args: &[&str]) -> Output {
        Command::new(netmem_bin())
            .args(args)
            .args(["--netns", &self.name])
            .output()
            .expect("run netmem")
    }

    /// Starts netmem and returns once it printed its probes line (`trace
    /// --json` prints the host line, then probes): from then on every hook
    /// is live.
    pub fn netmem_streaming(&self, args: &[&str]) -> Streaming {
        let mut child = Command::new(netmem_bin())
            .args(args)
            .args(["--netns", &self.name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netmem");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let first = until_probes(&mut out);
        // The rest is read as it comes: a reader that stops reading would
        // block netmem's output (and so its loop) on a full pipe.
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
            rest
        });
        Streaming {
            child,
            rest: Some(rest),
            first,
        }
    }

    /// `ss -tmnH` in the namespace, parsed.
    pub fn ss(&self) -> Vec<SsSocket> {
        let o = self.cmd("ss").args(["-tamnH"]).output().expect("ss");
        assert!(o.status.success());
        parse_ss(&String::from_utf8_lossy(&o.stdout))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
