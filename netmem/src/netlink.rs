//! The netlink dump loop shared by sock_diag (sockets) and rtnetlink
//! (cached routes): open, send one NLM_F_DUMP request, stream every message
//! of the reply to a callback until NLMSG_DONE.

use std::fmt::Debug;

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// The kernel answered a dump request with an error: `errno` is positive.
#[derive(Debug)]
pub struct DumpRefused {
    pub errno: i32,
}

impl std::fmt::Display for DumpRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernel refused the dump: {}",
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for DumpRefused {}

pub fn open(protocol: isize, what: &str) -> Result<Socket> {
    let mut sock = Socket::new(protocol).with_context(|| format!("cannot open a {what} socket"))?;
    sock.bind_auto()
        .with_context(|| format!("cannot bind the {what} socket"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .with_context(|| format!("cannot connect the {what} socket"))?;
    Ok(sock)
}

/// Sends `request` as a dump and streams the reply's messages to `each`.
pub fn dump<T>(sock: &Socket, request: T, mut each: impl FnMut(T) -> Result<()>) -> Result<()>
where
    T: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(request),
    );
    msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    sock.send(&buf, 0).context("cannot send the dump request")?;
    // Large enough for the kernel's biggest dump batch (it fills up to 32 KiB).
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut buf[..], 0).context("netlink recv")?;
        if n == 0 {
            bail!("netlink socket closed mid-dump");
        }
        let mut off = 0;
        while off < n {
            let msg = <NetlinkMessage<T>>::deserialize(&buf[off..n])
                .map_err(|e| anyhow!("cannot parse a netlink message: {e}"))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    let errno = e.code.map_or(0, |c| -c.get());
                    return Err(DumpRefused { errno }.into());
                }
                NetlinkPayload::InnerMessage(m) => each(m)?,
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}
