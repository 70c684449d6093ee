//! Socket dumps over NETLINK_SOCK_DIAG with SK_MEMINFO: the same source `ss
//! -tm` reads, streamed record by record so memory use does not grow with the
//! number of sockets.

use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{nlas::Nla, ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use crate::netlink;
use crate::netns::Netns;

/// One socket as sock_diag reports it. Memory figures are those of `ss -m`
/// (r, t, f, w, d) and are zero where the kernel sent none (TIME_WAIT,
/// NEW_SYN_RECV).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockRecord {
    pub family: u8,
    pub state: u8,
    pub local: IpAddr,
    pub lport: u16,
    pub remote: IpAddr,
    pub rport: u16,
    pub inode: u32,
    /// The kernel's socket cookie: stable identity across dumps.
    pub cookie: u64,
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    pub wmem_queued: u32,
    pub drops: u32,
}

/// Which TCP states a dump asks the kernel for (filtered kernel-side).
#[derive(Clone, Copy, Debug)]
pub enum States {
    Listening,
    AllButListening,
}

/// Streams every TCP socket (IPv4 and IPv6) of `netns` in the
/// given states to `each`.
pub fn dump_tcp(netns: &Netns, states: States, mut each: impl FnMut(&SockRecord)) -> Result<()> {
    let sock = netns.run(|| netlink::open(NETLINK_SOCK_DIAG, "NETLINK_SOCK_DIAG"))?;
    let states = match states {
        States::Listening => StateFlags::LISTEN,
        States::AllButListening => StateFlags::all() - StateFlags::LISTEN,
    };
    for family in [AF_INET, AF_INET6] {
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::SKMEMINFO,
            states,
            socket_id,
        });
        netlink::dump(&sock, request, |m| {
            if let SockDiagMessage::InetResponse(r) = m {
                each(&record(&r));
            }
            Ok(())
        })
        .map_err(|e| match e.downcast_ref::<netlink::DumpRefused>() {
            Some(r) if r.errno == libc::ENOENT => anyhow!(
                "the kernel has no sock_diag handler for TCP: load it with `modprobe tcp_diag` (CONFIG_INET_TCP_DIAG)"
            ),
            _ => e,
        })
        .with_context(|| format!("sock_diag dump (family {family}) failed"))?;
    }
    Ok(())
}

fn record(r: &InetResponse) -> SockRecord {
    let h = &r.header;
    let mut rec = SockRecord {
        family: h.family,
        state: h.state,
        local: h.socket_id.source_address,
        lport: h.socket_id.source_port,
        remote: h.socket_id.destination_address,
        rport: h.socket_id.destination_port,
        inode: h.inode,
        cookie: u64::from_ne_bytes(h.socket_id.cookie),
        rmem_alloc: 0,
        rcvbuf: 0,
        wmem_alloc: 0,
        sndbuf: 0,
        fwd_alloc: 0,
        wmem_queued: 0,
        drops: 0,
    };
    for nla in r.nlas.iter() {
        if let Nla::MemInfo(m) = nla {
            rec.rmem_alloc = m.receive_queue;
            rec.rcvbuf = m.receive_queue_max;
            rec.wmem_alloc = m.bottom_send_queues;
            rec.sndbuf = m.send_queue_max;
            rec.fwd_alloc = m.cache;
            rec.wmem_queued = m.send_queue;
            rec.drops = m.drops;
        }
    }
    rec
}
