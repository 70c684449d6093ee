//! The netlink dump loop shared by sock_diag (sockets) and rtnetlink
//! (cached routes): open, send one NLM_F_DUMP request, stream every message
//! of the reply to a callback until NLMSG_DONE.

use std::fmt::Debug;

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_utils::traits::Parseable;
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
    dump_raw(sock, request, |b| {
        let header =
            NetlinkHeader::parse(b).map_err(|e| anyhow!("cannot parse a netlink header: {e}"))?;
        let m = T::deserialize(&header, b.payload())
            .map_err(|e| anyhow!("cannot parse a netlink message: {e}"))?;
        each(m)
    })
}

/// Like [`dump`], but hands `each` every data message as the netlink
/// crate's zero-copy buffer, for hot paths that read a few fields of each
/// (sock_diag dumps of 100k+ sockets) without building the owned message.
pub fn dump_raw<T>(
    sock: &Socket,
    request: T,
    mut each: impl FnMut(&NetlinkBuffer<&[u8]>) -> Result<()>,
) -> Result<()>
where
    T: NetlinkSerializable + Debug,
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
    // One allocation for the whole dump, large enough for the kernel's
    // biggest batch (it fills up to 32 KiB); netlink-sys receives into any
    // BufMut, and clearing a BytesMut keeps its capacity for the next batch.
    let mut buf = BytesMut::with_capacity(1 << 16);
    loop {
        buf.clear();
        let n = sock.recv(&mut buf, 0).context("netlink recv")?;
        if n == 0 {
            bail!("netlink socket closed mid-dump");
        }
        if walk_batch(&buf[..n], &mut each)? == Batch::Done {
            return Ok(());
        }
    }
}

/// Whether a dump's batch ended it.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    More,
    Done,
}

/// Hands every data message of one received batch to `each`; stops at
/// NLMSG_DONE, and turns NLMSG_ERROR into [`DumpRefused`]. Malformed input
/// (a length past the batch, a truncated header) is an error, never a panic
/// or an endless loop.
pub fn walk_batch(
    batch: &[u8],
    each: &mut impl FnMut(&NetlinkBuffer<&[u8]>) -> Result<()>,
) -> Result<Batch> {
    let mut off = 0;
    while off < batch.len() {
        let b = NetlinkBuffer::new_checked(&batch[off..])
            .map_err(|e| anyhow!("cannot parse a netlink message: {e}"))?;
        let len = b.length() as usize;
        match b.message_type() {
            NLMSG_DONE => return Ok(Batch::Done),
            NLMSG_ERROR => {
                let e = ErrorBuffer::new_checked(b.payload())
                    .map_err(|e| anyhow!("cannot parse a netlink error: {e}"))?;
                // The kernel sends -errno; a corrupt i32::MIN must not overflow.
                let errno = e.code().map_or(0, |c| c.get().checked_neg().unwrap_or(0));
                return Err(DumpRefused { errno }.into());
            }
            NLMSG_NOOP | NLMSG_OVERRUN => {}
            _ => each(&b)?,
        }
        if len == 0 {
            break;
        }
        // Messages are 4-byte aligned in the batch.
        off += (len + 3) & !3;
    }
    Ok(Batch::More)
}
