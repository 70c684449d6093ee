//! HAProxy's runtime API: where it listens, how it is reached, and one
//! bounded exchange of commands and their answers.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::addr::{parse_addr, Addr};
use super::answers::is_listener_line;
use crate::sources::proxy::trust::{self, Owner};

/// The longest one runtime API exchange may take: the pass waits for it.
const API_TIMEOUT: Duration = Duration::from_millis(500);
/// After a runtime API failure, how long before it is tried again (a
/// stuck socket then costs the pass its timeout once in a while only).
pub(super) const API_RETRY: Duration = Duration::from_secs(10);

/// One runtime API command, and how much of its answer netmem keeps: a
/// stats socket may be anyone's (or a stuck proxy's), so every answer is
/// bounded in bytes as well as in time, at sizes a real HAProxy needs.
pub struct Cmd {
    pub text: &'static str,
    /// The most bytes of kept lines (each answer's first line is kept).
    pub cap: usize,
    /// Lines netmem uses; the others are dropped as they stream.
    pub keep: fn(&str) -> bool,
}

pub(super) fn every_line(_: &str) -> bool {
    true
}

/// About 3 KB on a real HAProxy.
pub const SHOW_INFO: Cmd = Cmd {
    text: "show info",
    cap: 64 << 10,
    keep: every_line,
};
/// About 150 bytes per server: 16 MiB is 100,000 servers.
pub const SHOW_SERVERS_STATE: Cmd = Cmd {
    text: "show servers state",
    cap: 16 << 20,
    keep: every_line,
};
/// One line per file descriptor, every connection included (250 MB at a
/// million connections): only listeners' lines are kept, about 200 bytes
/// each, so 1 MiB is 5,000 listening sockets.
pub const SHOW_FD: Cmd = Cmd {
    text: "show fd",
    cap: 1 << 20,
    keep: is_listener_line,
};
/// About 60 pools of one line each.
pub const SHOW_POOLS: Cmd = Cmd {
    text: "show pools",
    cap: 256 << 10,
    keep: every_line,
};

/// Where HAProxy's runtime API listens (a `stats socket` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    /// `stats socket /run/haproxy.sock` (or `unix@/...`).
    Unix(PathBuf),
    /// `stats socket ipv4@127.0.0.1:9999`: reached from inside HAProxy's
    /// network namespace; a wildcard address through loopback.
    Tcp(SocketAddr),
}

impl Api {
    /// A TCP address as HAProxy writes one (`ipv4@ADDR:PORT`, `[::1]:PORT`,
    /// `:PORT`, `*:PORT`); None for anything else (paths, names).
    pub fn tcp(raw: &str) -> Option<Api> {
        match parse_addr(raw) {
            Addr::Inet(ip, ports) if ports.len() == 1 => {
                let v6 = ["ipv6@", "tcp6@"].iter().any(|p| raw.starts_with(p));
                let ip = ip.unwrap_or(if v6 {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                } else {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                });
                Some(Api::Tcp(SocketAddr::new(ip, ports[0])))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Api::Unix(p) => write!(f, "{}", p.display()),
            Api::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// A connection to the runtime API.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_timeouts(&self, read: Duration, write: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stats socket as netmem connects to it.
pub enum Reach {
    /// The path as netmem sees it (through /proc/PID/root).
    Unix(PathBuf),
    /// The address, and the namespace file to connect from (None: here).
    Tcp(SocketAddr, Option<PathBuf>),
}

impl Reach {
    /// A UNIX socket is connected to with `owner`'s rights (a detected
    /// HAProxy's): the kernel checks the socket file's mode for its user.
    /// A TCP port has no owner to check: netmem connects from inside the
    /// proxy's network namespace, where its owner could connect as well.
    fn connect(&self, owner: Option<&Owner>) -> Result<Stream> {
        match self {
            Reach::Unix(p) => match trust::as_owner(owner, || UnixStream::connect(p))? {
                Ok(s) => Ok(Stream::Unix(s)),
                Err(e) => Err(match owner {
                    Some(o) => o.refused(e, "connect to", p),
                    None => anyhow::Error::new(e).context(format!("connect {}", p.display())),
                }),
            },
            Reach::Tcp(a, ns) => {
                let connect = || {
                    TcpStream::connect_timeout(a, API_TIMEOUT).with_context(|| match ns {
                        Some(ns) => format!(
                            "connect tcp {a} inside HAProxy's network namespace ({})",
                            ns.display()
                        ),
                        None => format!("connect tcp {a}"),
                    })
                };
                let s = match ns {
                    None => connect()?,
                    // The socket stays in the namespace it was made in;
                    // only the connect needs the thread inside it.
                    Some(ns) => crate::sources::netns::Netns::open(ns.to_str())?.run(connect)?,
                };
                Ok(Stream::Tcp(s))
            }
        }
    }
}

/// Sends `cmds` in one exchange (non-interactive mode: HAProxy runs them in
/// order, ends each answer with an empty line, and closes) and returns one
/// answer per command, of the lines each keeps. Bounded by [`API_TIMEOUT`]
/// overall and by each command's [`Cmd::cap`]: the answer is read as it
/// streams, so what netmem holds is the kept lines, never the whole answer.
/// `owner`: a detected HAProxy's, whose rights a UNIX connect uses.
pub fn ask(to: &Reach, owner: Option<&Owner>, cmds: &[&Cmd]) -> Result<Vec<String>> {
    let joined = || cmds.iter().map(|c| c.text).collect::<Vec<_>>().join(";");
    let started = Instant::now();
    let mut s = to.connect(owner)?;
    s.set_timeouts(API_TIMEOUT, API_TIMEOUT)?;
    s.write_all(format!("{}\n", joined()).as_bytes())
        .context("send")?;
    let mut answers = Answers::new(cmds);
    let mut chunk = [0u8; 64 * 1024];
    let late = || {
        anyhow!(
            "no complete answer to `{}` within {} ms",
            joined(),
            API_TIMEOUT.as_millis()
        )
    };
    while !answers.done() {
        let left = API_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(late());
        }
        s.set_timeouts(left, API_TIMEOUT)?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answers.take(&chunk[..n])?,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read"),
        }
    }
    let answers = answers.finish()?;
    for (c, a) in cmds.iter().zip(&answers) {
        let first = a.lines().next().unwrap_or("");
        if first.starts_with("Permission denied") || first.starts_with("Unknown command") {
            bail!(
                "`{}`: {first} (the stats socket needs `level admin`, or `level operator` for servers only)",
                c.text
            );
        }
    }
    if answers.len() < cmds.len() {
        bail!(
            "`{}` answered {} of {} commands (is this HAProxy's stats socket?)",
            joined(),
            answers.len(),
            cmds.len()
        );
    }
    Ok(answers)
}

/// Where the first `\n` of `bytes` is. libc's memchr: the answer may be
/// the cap's 16 MiB and must be scanned within [`API_TIMEOUT`] even on a
/// busy machine, where a byte-by-byte loop (in a debug build) is not.
fn newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most `bytes.len()` bytes from a valid slice,
    // and returns null or a pointer into it.
    let at = unsafe { libc::memchr(bytes.as_ptr().cast(), b'\n' as i32, bytes.len()) };
    (!at.is_null()).then(|| at as usize - bytes.as_ptr() as usize)
}

/// The answers of one exchange, split into lines as they arrive: an empty
/// line ends an answer (empty lines before one starts are skipped), and
/// each command keeps its lines up to its cap.
pub(super) struct Answers<'a> {
    cmds: &'a [&'a Cmd],
    done: Vec<String>,
    /// The answer being read, and whether it has a line yet.
    cur: String,
    started: bool,
    /// The bytes of a line not ended yet.
    line: Vec<u8>,
}

impl<'a> Answers<'a> {
    pub(super) fn new(cmds: &'a [&'a Cmd]) -> Answers<'a> {
        Answers {
            cmds,
            done: Vec::new(),
            cur: String::new(),
            started: false,
            line: Vec::new(),
        }
    }

    /// Every command answered: what comes after is not read.
    pub(super) fn done(&self) -> bool {
        self.done.len() >= self.cmds.len()
    }

    fn too_big(&self) -> anyhow::Error {
        let c = self.cmds[self.done.len()];
        anyhow!(
            "the answer to `{}` is larger than {}, netmem's cap for it (more than a real HAProxy's)",
            c.text,
            crate::format::human_bytes(c.cap as u64)
        )
    }

    pub(super) fn take(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() && !self.done() {
            let cap = self.cmds[self.done.len()].cap;
            let (part, ended) = match newline(bytes) {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len() + usize::from(ended)..];
            // No line longer than the whole answer may be.
            if self.line.len() + part.len() > cap {
                return Err(self.too_big());
            }
            self.line.extend_from_slice(part);
            if ended {
                self.end_line()?;
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<()> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.started {
                self.done.push(std::mem::take(&mut self.cur));
                self.started = false;
            }
            return Ok(());
        }
        let c = self.cmds[self.done.len()];
        let text = String::from_utf8_lossy(&line);
        if !self.started || (c.keep)(&text) {
            if self.cur.len() + text.len() + 1 > c.cap {
                return Err(self.too_big());
            }
            self.cur.push_str(&text);
            self.cur.push('\n');
        }
        self.started = true;
        Ok(())
    }

    /// At the end of the stream: an answer not ended by an empty line
    /// still counts.
    pub(super) fn finish(mut self) -> Result<Vec<String>> {
        if !self.done() && !self.line.is_empty() {
            self.end_line()?;
        }
        if !self.done() && self.started {
            self.done.push(std::mem::take(&mut self.cur));
        }
        Ok(self.done)
    }
}
