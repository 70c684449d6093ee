//! A tracer attached for one repetition: netmem, or the bpftrace peer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::common::netmem;

/// The bpftrace peer: the tracepoints netmem attaches on a kernel without
/// kprobes/fentry, each aggregated per port (or per what the tracepoint has)
/// in bpftrace maps. `ready` marks every probe attached.
pub(crate) const BPFTRACE_SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sock:inet_sock_set_state { @state[args->sport, args->newstate] = count(); }
tracepoint:tcp:tcp_destroy_sock { @destroy[args->sport] = count(); }
tracepoint:tcp:tcp_send_reset { @reset[(args->saddr[2] << 8) | args->saddr[3], args->reason] = count(); }
tracepoint:sock:sock_exceed_buf_limit { @exceed[args->kind] = count(); }
tracepoint:sock:sock_rcvqueue_full { @rqfull[comm] = count(); }
tracepoint:skb:kfree_skb /args->reason != 2/ { @drops[args->reason] = count(); }
"#;

/// The startup part's variant: the local port read through the socket, as
/// netmem does, makes bpftrace load and parse vmlinux BTF first.
pub(crate) const BTF_CAST: &str =
    "((struct sock *)args->skaddr)->__sk_common.skc_num, args->reason";

/// A tracer attached for one repetition; stdout is drained so it never blocks.
pub(crate) struct Attached {
    pub(crate) child: Child,
    pub(crate) startup: Duration,
}

impl Attached {
    pub(crate) fn start(arm: &str, ns: &str) -> Result<Option<Attached>> {
        Self::start_env(arm, ns, &[])
    }

    /// `start`, with `env` set for the tracer. The start-up time is from
    /// just before the fork to the moment this process has read the ready
    /// line from the tracer's stdout (a pipe): what an operator waits for.
    pub(crate) fn start_env(
        arm: &str,
        ns: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Option<Attached>> {
        let mut cmd = match arm {
            "none" => return Ok(None),
            "netmem" => {
                let mut c = Command::new(netmem());
                c.args(["trace", "--json"]);
                if !ns.is_empty() {
                    c.args(["--netns", ns]);
                }
                c
            }
            "bpftrace" => {
                let mut c = Command::new("bpftrace");
                c.args(["-e", BPFTRACE_SCRIPT]);
                c
            }
            "bpftrace-btf" => {
                let mut c = Command::new("bpftrace");
                c.args([
                    "-e",
                    &BPFTRACE_SCRIPT.replace(
                        "(args->saddr[2] << 8) | args->saddr[3], args->reason",
                        BTF_CAST,
                    ),
                ]);
                c
            }
            _ => bail!("unknown arm {arm}"),
        };
        // If the bench dies, the tracer must not stay attached and skew
        // whatever runs next.
        // SAFETY: prctl in the forked child before exec, async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        cmd.envs(env.iter().copied());
        let t0 = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {arm}"))?;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            ensure!(
                out.read_line(&mut line)? > 0,
                "{arm} exited before it was ready"
            );
            // netmem's first JSON line comes once every hook is attached.
            if (arm == "netmem" && line.contains("\"probes\"")) || line.trim() == "ready" {
                break;
            }
        }
        let startup = t0.elapsed();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        Ok(Some(Attached { child, startup }))
    }

    /// CPU seconds (user + system) the tracer process has used so far.
    pub(crate) fn cpu_s(&self) -> f64 {
        netmem_tests::cpu_seconds(self.child.id())
    }

    /// Kernel time and runs of every BPF program the tracer holds open,
    /// by program name (from /proc/PID/fdinfo; counted while
    /// kernel.bpf_stats_enabled is 1).
    pub(crate) fn prog_stats_by_name(&self) -> BTreeMap<String, (u64, u64)> {
        let pid = self.child.id();
        let mut by_id: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return BTreeMap::new();
        };
        for fd in fds.flatten() {
            let is_prog = std::fs::read_link(fd.path())
                .map(|l| l.to_string_lossy() == "anon_inode:bpf-prog")
                .unwrap_or(false);
            if !is_prog {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let (mut id, mut ns, mut runs) = (0, 0, 0);
            for l in info.lines() {
                let mut kv = l.split(':').map(str::trim);
                match (kv.next(), kv.next().and_then(|v| v.parse::<u64>().ok())) {
                    (Some("prog_id"), Some(v)) => id = v as u32,
                    (Some("run_time_ns"), Some(v)) => ns = v,
                    (Some("run_cnt"), Some(v)) => runs = v,
                    _ => {}
                }
            }
            by_id.insert(id, (ns, runs));
        }
        let names: BTreeMap<u32, String> = aya::programs::loaded_programs()
            .flatten()
            .map(|p| (p.id(), p.name_as_str().unwrap_or("?").to_string()))
            .collect();
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (id, (ns, runs)) in by_id {
            let name = names.get(&id).cloned().unwrap_or_else(|| format!("id{id}"));
            let e = out.entry(name).or_default();
            e.0 += ns;
            e.1 += runs;
        }
        out
    }

    pub(crate) fn stop(mut self) -> Result<()> {
        // bpftrace has been seen to miss a SIGINT on a loaded machine and
        // sit in epoll_wait for good (a second one ended it): ask again
        // every few seconds, and kill it after half a minute rather than
        // hang the bench.
        let pid = self.child.id() as i32;
        let t0 = Instant::now();
        let mut next_int = Duration::ZERO;
        let st = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if t0.elapsed() >= Duration::from_secs(30) {
                // SAFETY: signal to our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break self.child.wait()?;
            }
            if t0.elapsed() >= next_int {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGINT) };
                next_int += Duration::from_secs(5);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        ensure!(
            st.success() || st.code() == Some(0) || st.code().is_none(),
            "tracer exited with {st}"
        );
        Ok(())
    }
}
