//! netmem and the load running: a load held open, netmem streaming, a
//! trace taken while a load holds its sockets, programs left loaded.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::lines::{json_lines, last_groups, ok_json};
use crate::ss::SsSocket;
use crate::Netns;

pub struct Held {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Held {
    /// Starts `cmd` (netmem-load, however wrapped) and waits for its
    /// `ready`.
    pub fn start(cmd: &mut Command) -> Held {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn netmem-load");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{cmd:?} did not get ready");
        Held {
            stdin: child.stdin.take(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub struct Streaming {
    pub child: Child,
    pub(crate) rest: Option<std::thread::JoinHandle<String>>,
    pub first: String,
}

impl Streaming {
    /// Waits for exit; returns every JSON line including the first.
    pub fn finish(mut self) -> Vec<Value> {
        let rest = self.rest.take().unwrap().join().unwrap();
        let st = self.child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(st.success(), "netmem failed: {err}");
        json_lines(&(self.first.clone() + &rest))
    }
}

/// Reads lines up to and including the probes line (or the end); returns
/// them all. `trace --json` is live from the probes line on.
pub fn until_probes(out: &mut impl BufRead) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all += &line;
        if line.contains("\"type\":\"probes\"") || line.starts_with("probes:") {
            return all;
        }
    }
}

/// Runs `netmem-load SCENARIO` on PORT with N connections, then a short
/// `netmem trace --json`, then `ss`: the JSON lines, the ss sockets, and the
/// last interval's group lines, all taken while the load holds its sockets
/// (until the returned `Held` is dropped).
pub fn trace_while_loaded(
    ns: &Netns,
    scenario: &str,
    port: u16,
    conns: usize,
) -> (Held, Vec<Value>, Vec<SsSocket>, Vec<Value>) {
    let load = ns.load(&[
        scenario,
        "--port",
        &port.to_string(),
        "--conns",
        &conns.to_string(),
    ]);
    let lines = ok_json(&ns.netmem(&[
        "trace",
        "--json",
        "--interval",
        "700ms",
        "--duration",
        "1600ms",
    ]));
    let ss = ns.ss();
    let groups = last_groups(&lines);
    (load, lines, ss, groups)
}

/// Counts loaded BPF programs named like netmem's (via /proc fdinfo is not
/// global, so ask the kernel through bpftool-free means: the program id
/// space, read with BPF_PROG_GET_NEXT_ID).
/// [`loaded_netmem_programs`] once it is back to `before`, or after 5 s
/// if it never is: the kernel frees a program after its last reference
/// goes, in deferred work that a loaded machine runs late.
pub fn programs_after_exit(before: usize) -> usize {
    let t0 = std::time::Instant::now();
    loop {
        let n = loaded_netmem_programs();
        if n == before || t0.elapsed() > std::time::Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn loaded_netmem_programs() -> usize {
    let mut n = 0;
    let mut id: u32 = 0;
    loop {
        let mut attr = [0u32; 32];
        attr[0] = id;
        // BPF_PROG_GET_NEXT_ID = 11
        // SAFETY: attr is a zeroed buffer larger than union bpf_attr's
        // members this command reads and writes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                11,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if r != 0 {
            break;
        }
        id = attr[1];
        // BPF_PROG_GET_FD_BY_ID = 13
        let mut a2 = [0u32; 32];
        a2[0] = id;
        // SAFETY: as above; the returned fd is ours and closed below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                13,
                a2.as_mut_ptr(),
                std::mem::size_of_val(&a2),
            )
        };
        if fd < 0 {
            continue;
        }
        // BPF_OBJ_GET_INFO_BY_FD = 15: struct bpf_prog_info's name is at byte 64.
        let mut info = [0u8; 256];
        let mut a3 = [0u64; 4];
        a3[0] = fd as u64 | ((info.len() as u64) << 32);
        a3[1] = info.as_mut_ptr() as u64;
        // SAFETY: the kernel writes at most info.len() bytes into info,
        // which outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                15,
                a3.as_mut_ptr(),
                std::mem::size_of_val(&a3),
            )
        };
        // SAFETY: fd came from BPF_PROG_GET_FD_BY_ID and is closed once.
        unsafe { libc::close(fd as i32) };
        if r == 0 {
            let name = String::from_utf8_lossy(&info[64..80])
                .trim_end_matches('\0')
                .to_string();
            if [
                "inet_sock_set_s",
                "sock_exceed_buf",
                "sock_rcvqueue_f",
                "tcp_send_reset",
                "tcp_destroy_soc",
                "kfree_skb",
            ]
            .contains(&name.as_str())
            {
                n += 1;
            }
        }
    }
    n
}
