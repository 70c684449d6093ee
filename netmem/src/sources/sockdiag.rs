//! Socket dumps over NETLINK_SOCK_DIAG with SK_MEMINFO: the same source `ss
//! -tm` / `ss -um` reads, streamed record by record so memory use does not
//! grow with the number of sockets.

use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, IPPROTO_TCP, IPPROTO_UDP},
    inet::{
        nlas::MemInfoBuffer, ExtensionFlags, InetRequest, InetResponseBuffer, SocketId,
        SocketIdBuffer, StateFlags,
    },
    SockDiagMessage,
};
use netlink_packet_utils::DecodeError;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::netlink;

/// `enum inet_diag_attr`'s INET_DIAG_CGROUP_ID (uapi, Linux 5.8+); sent
/// with every full socket, unasked.
const INET_DIAG_CGROUP_ID: u16 = 21;
use super::netns::Netns;

pub use crate::model::types::SockRecord;

/// Which TCP states a dump asks the kernel for (filtered kernel-side).
#[derive(Clone, Copy, Debug)]
pub enum States {
    Listening,
    AllButListening,
    /// For trace's interval pass: TIME_WAIT sockets hold no buffer memory,
    /// and under connection churn there are tens of thousands of them, so
    /// the kernel skips them (the global count comes from sockstat).
    Buffered,
    /// Listeners, then every other state: one dump instead of two (the
    /// kernel walks its listening hash before the established one, so the
    /// listening ports are all known before any other socket arrives).
    Everything,
    /// Listeners, then [`States::Buffered`].
    ListeningAndBuffered,
    /// Only the states an orphan can be in (FIN_WAIT1/2, CLOSING,
    /// LAST_ACK): the orphan poller's own dump between census passes.
    Closing,
}

impl States {
    /// The same states, with the listeners.
    pub fn with_listeners(self) -> States {
        match self {
            States::Buffered | States::ListeningAndBuffered => States::ListeningAndBuffered,
            _ => States::Everything,
        }
    }
}

/// Which families a dump covers (`--netns all` skips the empty ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub const BOTH: Families = Families { v4: true, v6: true };

    pub fn any(self) -> bool {
        self.v4 || self.v6
    }
}

/// Which tables a pass dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    pub tcp: Families,
    pub udp: Families,
}

impl Presence {
    pub const ALL: Presence = Presence {
        tcp: Families::BOTH,
        udp: Families::BOTH,
    };
}

/// A sock_diag socket opened in one namespace, for the dumps of one pass.
pub struct SockDiag {
    sock: netlink_sys::Socket,
    inum: u32,
}

impl SockDiag {
    pub fn open(netns: &Netns) -> Result<SockDiag> {
        Ok(SockDiag {
            sock: netns.run(|| netlink::open(NETLINK_SOCK_DIAG, "NETLINK_SOCK_DIAG"))?,
            inum: netns.inum()?,
        })
    }

    pub fn tcp(
        &self,
        families: Families,
        states: States,
        each: impl FnMut(&SockRecord),
    ) -> Result<()> {
        self.dump(IPPROTO_TCP, families, states, each)
    }

    /// UDP has no listening state: every socket is dumped.
    pub fn udp(&self, families: Families, each: impl FnMut(&SockRecord)) -> Result<()> {
        self.dump(IPPROTO_UDP, families, States::AllButListening, each)
    }
}

/// Streams every TCP socket (IPv4 and IPv6) of `netns` in the
/// given states to `each`.
pub fn dump_tcp(netns: &Netns, states: States, each: impl FnMut(&SockRecord)) -> Result<()> {
    SockDiag::open(netns)?.tcp(Families::BOTH, states, each)
}

/// The kernel has no sock_diag handler for this protocol (module not
/// loaded or not built).
#[derive(Debug)]
pub struct NoHandler {
    pub protocol: &'static str,
    pub module: &'static str,
}

impl std::fmt::Display for NoHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the kernel has no sock_diag handler for {}: load it with `modprobe {}`",
            self.protocol, self.module
        )
    }
}

impl std::error::Error for NoHandler {}

impl SockDiag {
    fn dump(
        &self,
        protocol: u8,
        families: Families,
        states: States,
        mut each: impl FnMut(&SockRecord),
    ) -> Result<()> {
        let sock = &self.sock;
        let inum = self.inum;
        let states = match (protocol, states) {
            (IPPROTO_UDP, _) => StateFlags::all(),
            (_, States::Listening) => StateFlags::LISTEN,
            (_, States::AllButListening) => StateFlags::all() - StateFlags::LISTEN,
            (_, States::Buffered) => StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT,
            (_, States::Everything) => StateFlags::all(),
            (_, States::ListeningAndBuffered) => StateFlags::all() - StateFlags::TIME_WAIT,
            (_, States::Closing) => {
                StateFlags::FIN_WAIT1
                    | StateFlags::FIN_WAIT2
                    | StateFlags::CLOSING
                    | StateFlags::LAST_ACK
            }
        };
        let no_handler = if protocol == IPPROTO_UDP {
            NoHandler {
                protocol: "UDP",
                module: "udp_diag",
            }
        } else {
            NoHandler {
                protocol: "TCP",
                module: "tcp_diag",
            }
        };
        for family in [AF_INET, AF_INET6] {
            if (family == AF_INET && !families.v4) || (family == AF_INET6 && !families.v6) {
                continue;
            }
            let socket_id = if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            };
            let request = SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol,
                extensions: ExtensionFlags::SKMEMINFO,
                states,
                socket_id,
            });
            let r = netlink::dump_raw(sock, request, |b| {
                let mut rec = record(protocol, b.payload())?;
                rec.netns = inum;
                each(&rec);
                Ok(())
            });
            if let Err(e) = &r {
                if e.downcast_ref::<netlink::DumpRefused>()
                    .is_some_and(|r| r.errno == libc::ENOENT)
                {
                    return Err(anyhow::Error::new(no_handler));
                }
            }
            r.with_context(|| format!("sock_diag dump (family {family}) failed"))?;
        }
        Ok(())
    }
}

/// One `inet_diag_msg` and its SK_MEMINFO, read in place.
pub fn record(protocol: u8, payload: &[u8]) -> Result<SockRecord> {
    let bad = |e: DecodeError| anyhow!("malformed sock_diag message: {e}");
    let r = InetResponseBuffer::new_checked(payload).map_err(bad)?;
    let id = SocketIdBuffer::new_checked(r.socket_id()).map_err(bad)?;
    let family = r.family();
    let addr = |b: &[u8]| -> IpAddr {
        if family == AF_INET6 {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            IpAddr::from(a)
        } else {
            IpAddr::from([b[0], b[1], b[2], b[3]])
        }
    };
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let mut cookie = [0u8; 8];
    cookie.copy_from_slice(id.cookie());
    let mut rec = SockRecord {
        family,
        protocol,
        full: false,
        state: r.state(),
        local: addr(id.source_address()),
        lport: port(id.source_port()),
        remote: addr(id.destination_address()),
        rport: port(id.destination_port()),
        inode: r.inode(),
        cookie: u64::from_ne_bytes(cookie),
        rmem_alloc: 0,
        rcvbuf: 0,
        wmem_alloc: 0,
        sndbuf: 0,
        fwd_alloc: 0,
        wmem_queued: 0,
        drops: 0,
        cgroup_id: 0,
        netns: 0,
        rqueue: r.recv_queue(),
        wqueue: r.send_queue(),
        uid: r.uid(),
    };
    for nla in r.nlas() {
        let nla = nla.map_err(bad)?;
        if nla.kind() == INET_DIAG_CGROUP_ID {
            if let Ok(b) = <[u8; 8]>::try_from(nla.value()) {
                rec.cgroup_id = u64::from_ne_bytes(b);
            }
        } else if nla.kind() == INET_DIAG_SKMEMINFO {
            let m = MemInfoBuffer::new_checked(nla.value()).map_err(bad)?;
            rec.full = true;
            rec.rmem_alloc = m.receive_queue();
            rec.rcvbuf = m.receive_queue_max();
            rec.wmem_alloc = m.bottom_send_queues();
            rec.sndbuf = m.send_queue_max();
            rec.fwd_alloc = m.cache();
            rec.wmem_queued = m.send_queue();
            rec.drops = m.drops();
        }
    }
    Ok(rec)
}
