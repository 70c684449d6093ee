//! What several parts share: medians and percentiles, the netmem binary,
//! timing a command, idle connections held open, one scrape.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netmem_tests::Netns;

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

pub(crate) fn netmem() -> String {
    netmem_tests::netmem_bin().to_string_lossy().into_owned()
}

/// Runs `cmd`, returns (wall time, peak RSS in KiB of it and its children).
pub(crate) fn timed(cmd: &mut Command) -> Result<(Duration, u64)> {
    timed_cpu(cmd).map(|(w, kb, _)| (w, kb))
}

/// `timed`, with the child's CPU time (user + system).
pub(crate) fn timed_cpu(cmd: &mut Command) -> Result<(Duration, u64, Duration)> {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `child` is not waited on again.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    ensure!(r > 0, "wait4: {}", std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status})"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, ru.ru_maxrss as u64, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

pub(crate) struct Holders {
    pub(crate) ns: Netns,
    pub(crate) kids: Vec<Child>,
    pub(crate) conns: usize,
}

impl Holders {
    /// Adds idle connections until `target`, 8000 per process (two fds each
    /// under RLIMIT_NOFILE), each process on its own listening port.
    pub(crate) fn grow(&mut self, target: usize) -> Result<()> {
        let load = netmem_tests::load_bin();
        while self.conns < target {
            let n = (target - self.conns).min(8000);
            let port = 20000 + self.kids.len();
            let mut c = self
                .ns
                .cmd(&load)
                .args([
                    "idle",
                    "--port",
                    &port.to_string(),
                    "--conns",
                    &n.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap()).read_line(&mut line)?;
            ensure!(line.trim() == "ready", "holder on :{port} failed");
            self.kids.push(c);
            self.conns += n;
        }
        Ok(())
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for k in &mut self.kids {
            drop(k.stdin.take());
        }
        for k in &mut self.kids {
            let _ = k.wait();
        }
    }
}

/// One GET on a new connection, as a scraper does it: milliseconds from
/// connect to the last byte, and the raw response.
pub(crate) fn fetch(addr: SocketAddr, path: &str) -> Result<(f64, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4 << 20);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    s.read_to_end(&mut buf)?;
    Ok((t0.elapsed().as_secs_f64() * 1e3, buf))
}

pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// The `p` quantile of `v`, interpolated between neighbours.
pub(crate) fn quantile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    let x = (s.len() - 1) as f64 * p;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (x - lo as f64)
}

/// The spread of a set of figures: their interquartile range over their
/// median. `--check` judges a ratio only when the spread of its
/// per-repetition ratios is small (check.rs).
pub(crate) fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    (quantile(v, 0.75) - quantile(v, 0.25)) / median(v).abs().max(1e-12)
}

/// Per-repetition ratios a[i] / b[i] of two arms measured alternately.
pub(crate) fn pair_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}
