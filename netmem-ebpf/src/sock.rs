//! What every hook family shares: the BTF-resolved layout, the maps that
//! are not one family's own, reading a socket, charging it to its group,
//! counting, and streaming an event. Hook-specific logic lives in each
//! family's file.
use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::RawTracePointContext,
    EbpfContext,
};
use netmem_common::{
    payload, Counter, Event, EventKind, GroupCounters, GroupKey, KernelLayout, Payload, RouteInfo,
    Setting, SockInfo, Stat, AF_INET, AF_INET6, EVENTS_BYTES, EVENT_HEAD, EVENT_WITH_SOCK,
    IPPROTO_TCP, NO_OFFSET, N_ARGS,
};

/// Filled in by userspace from the running kernel's BTF before load.
#[unsafe(no_mangle)]
pub static LAYOUT: KernelLayout = KernelLayout::unresolved();

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-group counters: the in-kernel aggregation of every hook.
#[map]
pub static GROUP_COUNTS: PerCpuHashMap<GroupKey, GroupCounters> =
    PerCpuHashMap::with_max_entries(16384, 0);

/// Local ports with a listening socket in the traced namespace, indexed by
/// port: every port has its slot, so there is no ceiling. Non-zero means
/// listening. Userspace seeds it from sock_diag (value 1) and clears ports
/// whose listener and sockets are gone; the kernel marks ports as sockets
/// enter LISTEN (value: bpf_ktime_get_ns, so userspace never clears a port
/// newer than its last dump).
#[map]
pub static LISTEN_PORTS: Array<u64> = Array::with_max_entries(65536, 0);

/// Per CPU, the `struct proto` last seen on an IPv4 (0) and an IPv6 (1)
/// TCP socket: see [`Sock::is_tcp`].
#[map]
static TCP_PROTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT as u32, 0);

#[map]
pub static SETTINGS: Array<u32> = Array::with_max_entries(Setting::COUNT as u32, 0);

/// kprobe -> kretprobe hand-over of a function's arguments, by thread
/// (fexit programs see their arguments directly and do not need it).
/// Keyed by (thread, function): kprobed functions nest (__tcp_close calls
/// tcp_check_oom), so one slot per thread would be overwritten.
#[map]
pub static ENTRY_ARGS: HashMap<[u64; 2], [u64; 2]> = HashMap::with_max_entries(4096, 0);

/// The functions whose kprobe hands arguments to a kretprobe.
#[repr(u64)]
pub enum Entry {
    TcpCheckOom = 1,
    TcpClose = 2,
}

/// Reads one field of [`LAYOUT`]. Volatile because the loader rewrites
/// .rodata, so the compiler must not fold the placeholder values; per field
/// because the whole struct would not fit the 512-byte BPF stack next to an
/// event.
macro_rules! lay {
    ($f:ident) => {
        // SAFETY: LAYOUT is a plain static the program only reads; the
        // pointer comes from a field place, so it is valid and aligned.
        unsafe { core::ptr::read_volatile(&raw const $crate::sock::LAYOUT.$f) }
    };
}
pub(crate) use lay;

/// Whether `skb_drop_reason` value `reason` is one of the memory-related
/// ones userspace selected.
#[inline(always)]
pub fn drop_reason_selected(reason: u32) -> bool {
    let Some((word, bit)) = netmem_common::drop_reason_bit(reason) else {
        return false;
    };
    // SAFETY: drop_reason_bit returns word < 4, inside the [u64; 4] mask.
    let mask = unsafe {
        core::ptr::read_volatile((&raw const LAYOUT.drop_reason_mask).cast::<u64>().add(word))
    };
    mask & bit != 0
}

/// Reads a `T` at `base + off` in kernel memory; zero when the base is null,
/// the member does not exist on this kernel, or the read faults.
#[inline(always)]
pub fn read<T: Default>(base: u64, off: u32) -> T {
    if base == 0 || off == NO_OFFSET {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel copies through a checked helper that
    // returns an error on a bad address instead of dereferencing it.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.unwrap_or_default()
}

/// Reads raw tracepoint argument `idx`, a position userspace found in BTF.
/// The kernel rejects at attach time any program whose context loads reach
/// past the tracepoint's argument count (which differs between kernels:
/// kfree_skb has 2 on 5.10 and 4 on 6.18). `idx` comes from LAYOUT, frozen
/// read-only data the verifier knows as a constant, so it explores only the
/// matching arm below and counts only that arm's load: one direct load
/// (each volatile, so LLVM keeps a constant offset per load instead of
/// computing one, which the verifier refuses on the context). A position
/// past the arms is read through bpf_probe_read_kernel.
#[inline(always)]
pub fn arg_at(ctx: &RawTracePointContext, idx: u32) -> u64 {
    let base = ctx.as_ptr() as *const u64;
    // SAFETY: a raw tracepoint's context is its argument array, and the
    // verifier checks each constant offset below against the tracepoint's
    // argument count when the program attaches; past the arms, a checked
    // helper read of the array, which reads a stale word past the real
    // arguments and never faults.
    unsafe {
        match idx {
            0 => core::ptr::read_volatile(base),
            1 => core::ptr::read_volatile(base.wrapping_add(1)),
            2 => core::ptr::read_volatile(base.wrapping_add(2)),
            3 => core::ptr::read_volatile(base.wrapping_add(3)),
            4..12 => bpf_probe_read_kernel(base.wrapping_add(idx as usize)).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Now, CLOCK_MONOTONIC in ns.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// Cheap identity of a socket: enough to filter and to group. The address
/// comes first in a word-aligned struct, so LLVM can copy it (into the
/// group key, an event) by words rather than byte by byte.
#[repr(C, align(8))]
pub struct SockId {
    pub raddr: [u8; 16],
    pub family: u8,
    pub lport: u16,
    pub rport: u16,
    /// The socket's network namespace inode: part of its group, so one
    /// attachment counts every namespace apart (`--netns all`).
    pub netns: u32,
}

/// How much of `struct sock` one helper call copies: `sock_common`'s
/// addresses, ports, family, state, proto and namespace pointers and the
/// IPv6 peer (0..72 on the kernels netmem runs on). One such copy costs
/// about what one small `bpf_probe_read_kernel` does, and a counted state
/// change needs seven of these fields: per-field reads were most of the
/// hot path's time. Kept small: it shares the 512-byte stack with events.
/// Held as words: a byte buffer has alignment 1, and LLVM's BPF backend
/// zeroes, moves and reads such a buffer one byte at a time (a 72-round
/// `memset` loop, a 144-instruction copy, byte-assembled loads), which cost
/// more than the helper call itself.
const HEAD_WORDS: usize = 9;
const HEAD_LEN: usize = HEAD_WORDS * 8;

/// How a hook reads a socket's fields; the rules that combine them
/// (namespace filter, identity, TCP test) are written once, on top.
pub trait Fields {
    fn sk(&self) -> u64;
    /// The `T` at `off` in `struct sock`, zero where [`read`] gives zero.
    fn get<T: Default + Copy>(&self, off: u32) -> T;

    /// The network namespace (inode) the socket lives in.
    #[inline(always)]
    fn netns(&self) -> u32 {
        let net: u64 = self.get(lay!(sk_net));
        read::<u32>(net, lay!(net_inum))
    }

    /// The socket's namespace when netmem traces it (the traced one, or
    /// any with 0): the filter needs it and so does the group key.
    #[inline(always)]
    fn traced_netns(&self) -> Option<u32> {
        let n = self.netns();
        (lay!(netns_inum) == 0 || n == lay!(netns_inum)).then_some(n)
    }

    /// Whether this is a TCP socket. The state tracepoint also fires for
    /// MPTCP (and DCCP before 6.16) sockets. Each CPU remembers the
    /// `struct proto` pointers it last saw on TCP sockets (one per family):
    /// a proto belongs to one protocol, so a match settles it without
    /// reading `sk_protocol`, which is outside the copied head.
    #[inline(always)]
    fn is_tcp(&self) -> bool {
        let prot: u64 = self.get(lay!(sk_prot));
        let slot = (self.get::<u16>(lay!(sk_family)) == AF_INET6 as u16) as u32;
        let known = TCP_PROTS.get_ptr_mut(slot);
        if let Some(k) = known {
            // SAFETY: this CPU's own slot of a per-CPU array.
            if prot != 0 && unsafe { *k } == prot {
                return true;
            }
        }
        let tcp = read::<u16>(self.sk(), lay!(sk_protocol)) as u8 == IPPROTO_TCP;
        if let (true, Some(k)) = (tcp, known) {
            // SAFETY: as above; preemption is off while the program runs.
            unsafe { *k = prot };
        }
        tcp
    }

    /// The socket's identity; `netns` as [`Fields::traced_netns`] or
    /// [`Fields::netns`] gave it.
    #[inline(always)]
    fn id(&self, netns: u32) -> SockId {
        let family = self.get::<u16>(lay!(sk_family)) as u8;
        // Read as words: see [`HEAD_WORDS`].
        let mut raddr = [0u32; 4];
        if family == AF_INET6 {
            raddr = self.get(lay!(sk_v6_daddr));
        } else if family == AF_INET {
            raddr[0] = self.get(lay!(sk_daddr));
        }
        let mut lport = self.get::<u16>(lay!(sk_num));
        if lport == 0 {
            // Port already released (closing or destroyed socket).
            lport = u16::from_be(read::<u16>(self.sk(), lay!(inet_sport)));
        }
        SockId {
            // SAFETY: [u32; 4] and [u8; 16] have the same size and every
            // bit pattern is valid for both; the bytes keep memory order.
            raddr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(raddr) },
            family,
            lport,
            rport: u16::from_be(self.get::<u16>(lay!(sk_dport))),
            netns,
        }
    }
}

/// A socket with the head of its `struct sock` copied once, for the hot
/// paths; fields past the head (or on a kernel where they moved beyond it)
/// are read one by one.
pub struct Sock {
    sk: u64,
    head: [u64; HEAD_WORDS],
}

impl Sock {
    #[inline(always)]
    pub fn read(sk: u64) -> Sock {
        let mut head = core::mem::MaybeUninit::<[u64; HEAD_WORDS]>::uninit();
        // SAFETY: bpf_probe_read_kernel either copies all HEAD_LEN bytes or,
        // on a fault (a null `sk` included), zeroes them, so `head` is
        // initialised whichever way it returns; a zeroed head reads as an
        // unknown socket. Not zeroing it first saves a byte loop.
        let head = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                head.as_mut_ptr().cast(),
                HEAD_LEN as u32,
                sk as *const aya_ebpf::cty::c_void,
            );
            head.assume_init()
        };
        Sock { sk, head }
    }
}

impl Fields for Sock {
    #[inline(always)]
    fn sk(&self) -> u64 {
        self.sk
    }

    #[inline(always)]
    fn get<T: Default + Copy>(&self, off: u32) -> T {
        // `off` comes from LAYOUT, frozen read-only data the verifier knows
        // as a constant, so only one branch survives verification.
        if off != NO_OFFSET && (off as usize) + core::mem::size_of::<T>() <= HEAD_LEN {
            let p = self.head.as_ptr().cast::<u8>().wrapping_add(off as usize);
            if off as usize % core::mem::align_of::<T>() == 0 {
                // SAFETY: in bounds (checked above) and aligned: the head is
                // 8-aligned and `off` a multiple of T's alignment (at most 8).
                // One load instead of the byte loads read_unaligned becomes.
                unsafe { p.cast::<T>().read() }
            } else {
                // SAFETY: in bounds (checked above); no alignment assumed.
                unsafe { p.cast::<T>().read_unaligned() }
            }
        } else {
            read(self.sk, off)
        }
    }
}

/// A socket read field by field: for the rare paths that go on to fill an
/// event, where a copied head would share the 512-byte stack (one stack
/// for a whole call chain on 5.10) with the event's pieces.
pub struct Direct(pub u64);

impl Fields for Direct {
    #[inline(always)]
    fn sk(&self) -> u64 {
        self.0
    }

    #[inline(always)]
    fn get<T: Default + Copy>(&self, off: u32) -> T {
        read(self.0, off)
    }
}

/// The identity of `sk` when netmem traces its namespace, read field by
/// field (see [`Direct`]).
#[inline(always)]
pub fn traced_id(sk: u64) -> Option<SockId> {
    let d = Direct(sk);
    let netns = d.traced_netns()?;
    Some(d.id(netns))
}

#[inline(always)]
pub fn group_of(id: &SockId) -> GroupKey {
    let listening = LISTEN_PORTS.get(id.lport as u32).is_some_and(|v| *v != 0);
    GroupKey::classify(id.family, id.lport, listening, &id.raddr, id.rport).in_netns(id.netns)
}

/// Full socket record for a streamed event.
#[inline(always)]
pub fn fill_sock_info(s: &mut SockInfo, sk: u64, id: &SockId) {
    s.laddr = [0u8; 16];
    if id.family == AF_INET6 {
        s.laddr = read(sk, lay!(sk_v6_rcv_saddr));
    } else if id.family == AF_INET {
        let a: [u8; 4] = read(sk, lay!(sk_rcv_saddr));
        s.laddr[..4].copy_from_slice(&a);
    }
    s.raddr = id.raddr;
    s.lport = id.lport;
    s.rport = id.rport;
    s.family = id.family;
    s.state = read(sk, lay!(sk_state));
    s.protocol = read::<u16>(sk, lay!(sk_protocol)) as u8;
    s.present = 1;
    s.rmem_alloc = read(sk, lay!(sk_rmem_alloc));
    s.wmem_queued = read(sk, lay!(sk_wmem_queued));
    s.fwd_alloc = read(sk, lay!(sk_forward_alloc));
    s.rcvbuf = read(sk, lay!(sk_rcvbuf));
    s.sndbuf = read(sk, lay!(sk_sndbuf));
    s.wmem_alloc = read(sk, lay!(sk_wmem_alloc));
    s.drops = drops(sk);
}

/// The socket's drop count as sk_drops_read() computes it: from its
/// numa_drop_counters when it has them (UDP on 6.18+), else sk_drops.
#[inline(always)]
pub fn drops(sk: u64) -> i32 {
    let ndc: u64 = read(sk, lay!(sk_drop_counters));
    if ndc != 0 {
        return read::<i32>(ndc, lay!(ndc_drops0)).wrapping_add(read::<i32>(ndc, lay!(ndc_drops1)));
    }
    read(sk, lay!(sk_drops))
}

#[inline(always)]
pub fn stat(s: Stat) {
    stat_add(s, 1);
}

#[inline(always)]
pub fn stat_add(s: Stat, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(s as u32) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe { *p += n };
    }
}

#[inline(always)]
pub fn count(group: &GroupKey, c: Counter) {
    let i = c as usize;
    if i >= Counter::COUNT {
        return;
    }
    if let Some(v) = GROUP_COUNTS.get_ptr_mut(group) {
        // SAFETY: this CPU's own slot of a per-CPU map value.
        unsafe { (*v).counts[i] += 1 };
        return;
    }
    let mut fresh = GroupCounters::default();
    fresh.counts[i] = 1;
    // BPF_NOEXIST: a racing insert on another CPU only creates the entry;
    // per-CPU values mean this CPU's slot then still needs the bump.
    if GROUP_COUNTS.insert(group, &fresh, 1).is_err() {
        match GROUP_COUNTS.get_ptr_mut(group) {
            // SAFETY: as above, this CPU's own slot.
            Some(v) => unsafe { (*v).counts[i] += 1 },
            None => stat(Stat::GroupMapFull),
        }
    }
}

pub fn setting(s: Setting) -> u32 {
    SETTINGS.get(s as u32).copied().unwrap_or(0)
}

/// Waiting bytes from which a record always wakes the reader (1/16 of the
/// ring): under a flood, one wake-up per batch instead of one per record.
const WAKE_AT: u64 = EVENTS_BYTES as u64 / 16;
/// Between two wake-ups for a lone record, at least this long (per CPU):
/// a reader keeping up with a fast producer finds the ring empty at every
/// record, and a wake-up (an IPI and a scheduler call) costs more than the
/// record. The reader also drains on a short tick, so a record that woke
/// nobody waits at most that long.
const WAKE_GAP_NS: u64 = 1_000_000;

/// Per CPU, when a lone record last woke the reader.
#[map]
static LAST_WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// How a record of `size` bytes, submitted at `now`, is announced.
#[inline(always)]
pub fn wake_flags(size: usize, now: u64) -> u64 {
    const NO_WAKEUP: u64 = 1; // BPF_RB_NO_WAKEUP
    const FORCE_WAKEUP: u64 = 2; // BPF_RB_FORCE_WAKEUP
    const AVAIL_DATA: u64 = 0; // BPF_RB_AVAIL_DATA
    let waiting = EVENTS.query(AVAIL_DATA);
    if waiting >= WAKE_AT {
        return FORCE_WAKEUP;
    }
    // Only this record (and its 8-byte header) waits: the reader had
    // caught up and may be asleep.
    if waiting <= size as u64 + 8 {
        if let Some(last) = LAST_WAKE.get_ptr_mut(0) {
            // SAFETY: this CPU's own slot; preemption is off.
            unsafe {
                if now.wrapping_sub(*last) >= WAKE_GAP_NS {
                    *last = now;
                    return FORCE_WAKEUP;
                }
            }
        }
    }
    NO_WAKEUP
}

/// Reserves one record of `size` bytes (a constant at every call site:
/// [`EVENT_HEAD`], [`EVENT_WITH_SOCK`] or the whole [`Event`]), writes its
/// head, lets `fill` write what lies past the head, and submits it.
/// Written in place: an Event built on the stack and copied would not fit
/// the 512-byte BPF stack.
#[inline(always)]
pub fn emit_with(
    kind: EventKind,
    group: &GroupKey,
    args: [i64; N_ARGS],
    size: usize,
    fill: impl FnOnce(*mut Event),
) {
    emit_at(now_ns(), kind, group, args, size, fill);
}

/// [`emit_with`] at a time the caller read.
#[inline(always)]
pub fn emit_at(
    now: u64,
    kind: EventKind,
    group: &GroupKey,
    args: [i64; N_ARGS],
    size: usize,
    fill: impl FnOnce(*mut Event),
) {
    let Some(mut entry) = EVENTS.reserve_bytes(size, 0) else {
        stat(Stat::RingbufLost);
        return;
    };
    let e = entry.as_mut_ptr().cast::<Event>();
    // SAFETY: the reservation is 8-aligned and owned by this program until
    // submit; the head lies within every record size, and `fill` writes
    // only the parts `size` covers (see the callers).
    unsafe {
        (*e).ts_ns = now;
        (*e).kind = kind as u32;
        (*e)._pad = 0;
        (*e).group = *group;
        (*e).args = args;
    }
    fill(e);
    entry.submit(wake_flags(size, now));
}

/// Streams one rare event about `sk` (0 when the hook had no socket); the
/// payload's type decides the event's kind. Without a socket the record is
/// only a head.
#[inline(always)]
pub fn emit<P: Payload>(sk: u64, id: &SockId, group: &GroupKey, payload: P) {
    if sk == 0 {
        emit_with(P::KIND, group, payload.into_args(), EVENT_HEAD, |_| {});
        return;
    }
    emit_with(P::KIND, group, payload.into_args(), EVENT_WITH_SOCK, |e| {
        // SAFETY: an EVENT_WITH_SOCK record holds `sock` and `_pad2`.
        unsafe {
            fill_sock_info(&mut (*e).sock, sk, id);
            (*e)._pad2 = 0;
        }
    });
}

/// Streams a route exception; `fill` writes the route part in place.
#[inline(always)]
pub fn emit_route(p: payload::RouteException, fill: impl FnOnce(&mut RouteInfo)) {
    emit_with(
        EventKind::RouteException,
        &GroupKey::UNATTRIBUTED,
        p.into_args(),
        core::mem::size_of::<Event>(),
        |e| {
            // SAFETY: a whole Event was reserved.
            unsafe {
                (*e).sock = SockInfo::default();
                (*e)._pad2 = 0;
                (*e).route = RouteInfo::default();
                fill(&mut (*e).route);
            }
        },
    );
}

/// Saves a kprobe's arguments for its kretprobe.
#[inline(always)]
pub fn save_entry_args(f: Entry, a: [u64; 2]) {
    let key = [aya_ebpf::helpers::bpf_get_current_pid_tgid(), f as u64];
    let _ = ENTRY_ARGS.insert(&key, &a, 0);
}

#[inline(always)]
pub fn take_entry_args(f: Entry) -> Option<[u64; 2]> {
    let key = [aya_ebpf::helpers::bpf_get_current_pid_tgid(), f as u64];
    // SAFETY: the entry is keyed by this thread and only this thread writes
    // it, so it cannot change while it is copied out.
    let a = unsafe { ENTRY_ARGS.get(&key) }.copied();
    let _ = ENTRY_ARGS.remove(&key);
    a
}

/// struct proto's global figures for `sk`'s protocol: memory_allocated (pages)
/// and sysctl_mem[3] (the tcp_mem / udp_mem triple).
#[inline(always)]
pub fn proto_mem(sk: u64) -> (i64, [i64; 3]) {
    let prot: u64 = read(sk, lay!(sk_prot));
    let alloc_ptr: u64 = read(prot, lay!(proto_memory_allocated));
    let mem_ptr: u64 = read(prot, lay!(proto_sysctl_mem));
    (read(alloc_ptr, 0), read(mem_ptr, 0))
}
