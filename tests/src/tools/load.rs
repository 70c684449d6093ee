//! Load generator for netmem's integration tests: creates real sockets with
//! known memory behaviour on loopback, prints `ready` when the state is set
//! up, and holds it until its stdin closes. Run inside the test's namespace.

use std::io::{BufRead, ErrorKind, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use clap::{Parser, Subcommand};

fn set_int(fd: i32, level: i32, opt: i32, v: i32) {
    // SAFETY: plain setsockopt on an fd we own.
    let r = unsafe { libc::setsockopt(fd, level, opt, &v as *const i32 as *const libc::c_void, 4) };
    assert_eq!(
        r,
        0,
        "setsockopt {opt} failed: {}",
        std::io::Error::last_os_error()
    );
}

#[derive(Parser)]
#[command(
    name = "netmem-load",
    about = "Sockets with known memory behaviour, held until stdin closes"
)]
struct Cli {
    #[command(subcommand)]
    load: Load,
}

#[derive(Subcommand)]
enum Load {
    /// Servers write to clients that never read: full send and receive queues.
    StuckReaders {
        #[arg(long, default_value_t = 18080)]
        port: u16,
        #[arg(long, default_value_t = 10)]
        conns: usize,
    },
    /// As stuck-readers, then the servers close: orphans holding their queues.
    Orphans {
        #[arg(long, default_value_t = 18080)]
        port: u16,
        #[arg(long, default_value_t = 10)]
        conns: usize,
    },
    /// Orphans born and gone all the time, until stdin closes: each wave
    /// connects N clients that never read, fills the servers' send queues
    /// and closes the servers (orphans in FIN_WAIT1 holding their
    /// queues); half a --period-ms later the next wave starts, and the
    /// one before closes its clients, whose resets end its orphans.
    OrphanChurn {
        #[arg(long, default_value_t = 18080)]
        port: u16,
        #[arg(long, default_value_t = 8)]
        conns: usize,
        #[arg(long, default_value_t = 150)]
        period_ms: u64,
    },
    /// A tiny-SO_RCVBUF UDP socket flooded: SOCKET_RCVBUFF drops.
    UdpFlood {
        #[arg(long, default_value_t = 15353)]
        port: u16,
        #[arg(long, default_value_t = 2000)]
        count: u64,
    },
    /// A listener that never accepts: N clients connect and send data,
    /// waiting in its accept queue (no inode, yet no orphans).
    Backlog {
        #[arg(long, default_value_t = 18090)]
        port: u16,
        #[arg(long, default_value_t = 20)]
        conns: usize,
    },
    /// A listener with a backlog of --backlog that never accepts, and
    /// --conns clients connecting without waiting (non-blocking): the
    /// first backlog + 1 wait in its accept queue, the others' SYNs are
    /// dropped on the full queue (ListenOverflows) and retried by their
    /// kernel until stdin closes.
    Overflow {
        #[arg(long, default_value_t = 18300)]
        port: u16,
        #[arg(long, default_value_t = 4)]
        backlog: i32,
        #[arg(long, default_value_t = 12)]
        conns: usize,
    },
    /// N accepted connections with queued data; the listener closes after
    /// --close-after-ms while the connections live on (a draining frontend).
    Drain {
        #[arg(long, default_value_t = 18100)]
        port: u16,
        #[arg(long, default_value_t = 30)]
        conns: usize,
        #[arg(long, default_value_t = 1000)]
        close_after_ms: u64,
    },
    /// N listening sockets on consecutive ports from --port, and one
    /// connection to the last of them.
    Listeners {
        #[arg(long, default_value_t = 20000)]
        port: u16,
        #[arg(long, default_value_t = 9000)]
        count: u16,
    },
    /// Connections to --count distinct backends (127.x.y.z:--port), opened
    /// and closed in --waves waves --gap-ms apart; then one to --port + 1.
    Backends {
        #[arg(long, default_value_t = 18200)]
        port: u16,
        #[arg(long, default_value_t = 17000)]
        count: u32,
        #[arg(long, default_value_t = 6)]
        waves: u32,
        #[arg(long, default_value_t = 400)]
        gap_ms: u64,
        /// Keep the last wave's connections open until the end.
        #[arg(long)]
        hold: bool,
    },
    /// N idle established connections (2N sockets).
    Idle {
        #[arg(long, default_value_t = 20000)]
        port: u16,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
    },
    /// Connection churn in which the server closes first: COUNT TIME_WAIT
    /// sockets on the server's side (they last the kernel's 60 s), spread
    /// over 8 server ports from PORT: a client port is reused as soon as
    /// its connection closes, and a SYN on a four-tuple in TIME_WAIT
    /// recycles it, so one port would hold at most what the ephemeral
    /// range allows.
    ChurnTw {
        #[arg(long, default_value_t = 21000)]
        port: u16,
        #[arg(long, default_value_t = 60000)]
        count: usize,
    },
}

fn hold() {
    println!("ready");
    std::io::stdout().flush().unwrap();
    // Hold every socket until the test closes our stdin.
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
}

/// Servers that keep writing to clients that never read, until nothing more
/// fits: the server side's send queues (wmem_queued) and the client side's
/// receive queues (rmem_alloc) fill up and stay put.
/// A listener on `port` and `conns` connections to it: (listener, client
/// sides, accepted server sides).
fn connected(port: u16, conns: usize) -> (TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let clients: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let servers: Vec<TcpStream> = (0..conns)
        .map(|_| listener.accept().expect("accept").0)
        .collect();
    (listener, clients, servers)
}

fn stuck_readers(port: u16, conns: usize, close_servers: bool) {
    let (listener, clients, mut servers) = connected(port, conns);
    let chunk = vec![0x5au8; 64 * 1024];
    for s in &servers {
        s.set_nonblocking(true).unwrap();
    }
    // Keep writing until a whole round makes no progress: the windows are
    // closed and the send buffers full.
    for _ in 0..200 {
        let mut progress = false;
        for s in servers.iter_mut() {
            loop {
                match s.write(&chunk) {
                    Ok(n) if n > 0 => progress = true,
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
        }
        if !progress {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if close_servers {
        // Closing with unsent data queued turns each server socket into an
        // orphan in FIN_WAIT1 that still holds its send queue.
        servers.clear();
    }
    std::thread::sleep(Duration::from_millis(200));
    hold();
    drop((listener, clients, servers));
}

/// See `Load::OrphanChurn`.
fn orphan_churn(port: u16, conns: usize, period: Duration) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let chunk = vec![0x5au8; 64 * 1024];
    // One wave: its clients, whose servers are orphans now.
    let wave = || -> Vec<TcpStream> {
        let clients: Vec<TcpStream> = (0..conns)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
            .collect();
        for _ in 0..conns {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nonblocking(true).unwrap();
            // Until the send buffer is full: data left unsent at close.
            while let Ok(n) = s.write(&chunk) {
                if n == 0 {
                    break;
                }
            }
        }
        clients
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut older = wave();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(period / 2);
                let newer = wave();
                std::thread::sleep(period / 2);
                drop(std::mem::replace(&mut older, newer));
            }
        });
        hold();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// An unconnected UDP socket with a tiny receive buffer, flooded from a
/// second socket: the kernel drops what does not fit (SOCKET_RCVBUFF).
fn udp_flood(port: u16, count: u64) {
    let rx = UdpSocket::bind(("127.0.0.1", port)).expect("bind udp");
    set_int(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1);
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let payload = [0u8; 1000];
    for _ in 0..count {
        tx.send_to(&payload, ("127.0.0.1", port)).expect("send");
    }
    hold();
    drop((rx, tx));
}

/// N idle established connections to one listener on --port (2N sockets),
/// for the snapshot benchmark. RLIMIT_NOFILE caps one process near 9k.
fn idle(port: u16, conns: usize) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    // Port 0: whichever the kernel picked.
    let port = listener.local_addr().expect("local address").port();
    let mut held = Vec::with_capacity(conns * 2);
    for _ in 0..conns {
        let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (s, _) = listener.accept().expect("accept");
        held.push(c);
        held.push(s);
    }
    hold();
    drop(held);
}

fn churn_tw(port: u16, count: usize) {
    use std::io::Read;
    let listeners: Vec<TcpListener> = (0..8)
        .map(|i| TcpListener::bind(("127.0.0.1", port + i)).expect("bind"))
        .collect();
    for n in 0..count {
        let l = &listeners[n % listeners.len()];
        let mut c = TcpStream::connect(l.local_addr().expect("address")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        // The server's close goes first, so TIME_WAIT is on its side
        // (keyed by the four-tuple: the client's port is free again).
        drop(s);
        let mut b = [0u8; 1];
        let _ = c.read(&mut b);
        drop(c);
    }
    hold();
}

fn backlog(port: u16, conns: usize) {
    // A backlog large enough for every client: they complete the handshake
    // and wait in the accept queue, which is never drained.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let clients: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            c.write_all(&[0x42; 4000]).expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    hold();
    drop((listener, clients));
}

fn overflow(port: u16, backlog: i32, conns: usize) {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener.set_reuse_address(true).expect("SO_REUSEADDR");
    listener.bind(&addr.into()).expect("bind");
    listener.listen(backlog).expect("listen");
    let clients: Vec<Socket> = (0..conns)
        .map(|_| {
            let c = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            c.set_nonblocking(true).expect("non-blocking");
            match c.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => panic!("connect: {e}"),
            }
            // One at a time: the handshake completes (or its SYN is
            // dropped) before the next.
            std::thread::sleep(Duration::from_millis(20));
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    hold();
    drop((listener, clients));
}

fn drain(port: u16, conns: usize, close_after: Duration) {
    let (listener, clients, mut servers) = connected(port, conns);
    for s in servers.iter_mut() {
        s.write_all(&[0x5a; 8000]).expect("write");
    }
    let l = std::sync::Mutex::new(Some(listener));
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(close_after);
            drop(l.lock().unwrap().take());
        });
        hold();
    });
    drop((clients, servers));
}

/// Raises the open-file soft limit to the hard limit (the hard one cannot
/// be raised here).
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

fn listeners(port: u16, count: u16) {
    raise_nofile();
    let ls: Vec<TcpListener> = (0..count)
        .map(|i| TcpListener::bind(("127.0.0.1", port + i)).expect("bind"))
        .collect();
    let last = port + count - 1;
    let c = TcpStream::connect(("127.0.0.1", last)).expect("connect");
    let (s, _) = ls.last().unwrap().accept().expect("accept");
    hold();
    drop((ls, c, s));
}

fn backends(port: u16, count: u32, waves: u32, gap: Duration, keep_last: bool) {
    // One listener on every loopback address; each backend is its own
    // destination address, so each is its own group.
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    let extra = TcpListener::bind(("0.0.0.0", port + 1)).expect("bind");
    let per_wave = count.div_ceil(waves);
    let mut n = 0u32;
    let mut kept = Vec::new();
    for wave in 0..waves {
        let mut held = Vec::new();
        for _ in 0..per_wave.min(count - n) {
            // 127.0.1.0 onwards: every address of 127/8 is this host's.
            let ip = std::net::Ipv4Addr::from(0x7f00_0100 + n);
            let c = TcpStream::connect((ip, port)).expect("connect");
            let (s, _) = listener.accept().expect("accept");
            // Tuples drop in field order: the server closes first, so
            // TIME_WAIT lands on its side and the client ports stay free.
            held.push((s, c));
            n += 1;
        }
        if keep_last && wave + 1 == waves {
            kept = held;
        } else {
            drop(held);
        }
        std::thread::sleep(gap);
    }
    let c = TcpStream::connect(("127.255.255.254", port + 1)).expect("connect last");
    let (s, _) = extra.accept().expect("accept last");
    std::thread::sleep(Duration::from_millis(50));
    hold();
    drop((listener, extra, c, s, kept));
}

fn main() {
    match Cli::parse().load {
        Load::Backlog { port, conns } => backlog(port, conns),
        Load::Overflow {
            port,
            backlog,
            conns,
        } => overflow(port, backlog, conns),
        Load::Drain {
            port,
            conns,
            close_after_ms,
        } => drain(port, conns, Duration::from_millis(close_after_ms)),
        Load::Listeners { port, count } => listeners(port, count),
        Load::Backends {
            port,
            count,
            waves,
            gap_ms,
            hold,
        } => backends(port, count, waves, Duration::from_millis(gap_ms), hold),
        Load::StuckReaders { port, conns } => stuck_readers(port, conns, false),
        Load::Orphans { port, conns } => stuck_readers(port, conns, true),
        Load::OrphanChurn {
            port,
            conns,
            period_ms,
        } => orphan_churn(port, conns, Duration::from_millis(period_ms)),
        Load::UdpFlood { port, count } => udp_flood(port, count),
        Load::Idle { port, conns } => idle(port, conns),
        Load::ChurnTw { port, count } => churn_tw(port, count),
    }
}
