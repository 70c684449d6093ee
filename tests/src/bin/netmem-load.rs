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
#[command(name = "netmem-load", about = "Sockets with known memory behaviour, held until stdin closes")]
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
    /// A tiny-SO_RCVBUF UDP socket flooded: SOCKET_RCVBUFF drops.
    UdpFlood {
        #[arg(long, default_value_t = 15353)]
        port: u16,
        #[arg(long, default_value_t = 2000)]
        count: u64,
    },
    /// N idle established connections (2N sockets).
    Idle {
        #[arg(long, default_value_t = 20000)]
        port: u16,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
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
fn stuck_readers(port: u16, conns: usize, close_servers: bool) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let clients: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let mut servers: Vec<TcpStream> = (0..conns)
        .map(|_| listener.accept().expect("accept").0)
        .collect();
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

fn main() {
    match Cli::parse().load {
        Load::StuckReaders { port, conns } => stuck_readers(port, conns, false),
        Load::Orphans { port, conns } => stuck_readers(port, conns, true),
        Load::UdpFlood { port, count } => udp_flood(port, count),
        Load::Idle { port, conns } => idle(port, conns),
    }
}
