//! Load generator for netmem's integration tests: creates real sockets with
//! known memory behaviour on loopback, prints `ready` when the state is set
//! up, and holds it until its stdin closes. Run inside the test's namespace.

use std::io::{BufRead, ErrorKind, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

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

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].parse().expect(name))
        .unwrap_or(default)
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
fn stuck_readers(args: &[String], close_servers: bool) {
    let port = arg(args, "--port", 18080) as u16;
    let conns = arg(args, "--conns", 10) as usize;
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
fn udp_flood(args: &[String]) {
    let port = arg(args, "--port", 15353) as u16;
    let count = arg(args, "--count", 2000);
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
fn idle(args: &[String]) {
    let port = arg(args, "--port", 20000) as u16;
    let conns = arg(args, "--conns", 1000) as usize;
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
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("stuck-readers") => stuck_readers(&args, false),
        Some("orphans") => stuck_readers(&args, true),
        Some("udp-flood") => udp_flood(&args),
        Some("idle") => idle(&args),
        _ => {
            eprintln!("usage: netmem-load stuck-readers|orphans|udp-flood|idle [--port P] [--conns N] [--count N]");
            std::process::exit(2);
        }
    }
}
