//! Socket dumps over NETLINK_SOCK_DIAG with SK_MEMINFO: the same source `ss
//! -tm` reads, streamed record by record so memory use does not grow with the
//! number of sockets.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{nlas::Nla, ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

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
    let sock = netns.run(open)?;
    let flags = match states {
        States::Listening => StateFlags::LISTEN,
        States::AllButListening => StateFlags::all() - StateFlags::LISTEN,
    };
    for family in [AF_INET, AF_INET6] {
        request(&sock, family, flags)?;
        receive(&sock, &mut each)
            .with_context(|| format!("sock_diag dump (family {family}) failed"))?;
    }
    Ok(())
}

fn open() -> Result<Socket> {
    let mut sock =
        Socket::new(NETLINK_SOCK_DIAG).context("cannot open a NETLINK_SOCK_DIAG socket")?;
    sock.bind_auto()
        .context("cannot bind the sock_diag socket")?;
    sock.connect(&SocketAddr::new(0, 0))
        .context("cannot connect the sock_diag socket")?;
    Ok(sock)
}

fn request(sock: &Socket, family: u8, states: StateFlags) -> Result<()> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let mut msg = NetlinkMessage::new(
        hdr,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::SKMEMINFO,
            states,
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    sock.send(&buf, 0)
        .context("cannot send the sock_diag request")?;
    Ok(())
}

fn receive(sock: &Socket, each: &mut impl FnMut(&SockRecord)) -> Result<()> {
    // Large enough for the kernel's biggest dump batch (it fills up to 32 KiB).
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut buf[..], 0).context("sock_diag recv")?;
        if n == 0 {
            bail!("sock_diag socket closed mid-dump");
        }
        let mut off = 0;
        while off < n {
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&buf[off..n])
                .map_err(|e| anyhow!("cannot parse a sock_diag message: {e}"))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) if e.code.map(|c| c.get()) == Some(-libc::ENOENT) => {
                    bail!("the kernel has no sock_diag handler for TCP: load it with `modprobe tcp_diag` (CONFIG_INET_TCP_DIAG)")
                }
                NetlinkPayload::Error(e) => bail!("kernel refused the sock_diag dump: {e:?}"),
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
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
                    each(&rec);
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}
