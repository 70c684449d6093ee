//! Types shared by the kernel programs and the userspace aggregator.
//!
//! Every type here crosses the kernel/user boundary (ring buffer records, map
//! keys and values, load-time globals), so each is `#[repr(C)]`, has no
//! implicit padding, and has exactly one definition: this one.
#![no_std]

/// `u32::MAX` in a [`KernelLayout`] offset means "this kernel has no such
/// field": the kernel side then reports 0 instead of reading garbage.
pub const NO_OFFSET: u32 = u32::MAX;
/// A raw tracepoint argument index meaning "this kernel does not pass it".
pub const NO_ARG: u32 = u32::MAX;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// TCP states are part of the kernel ABI (sock_diag, tracepoint formats), not
/// a per-version layout detail, so they are the one set of numbers netmem
/// does not look up in BTF.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_LISTEN: u8 = 10;
pub const TCP_CLOSING: u8 = 11;
pub const TCP_NEW_SYN_RECV: u8 = 12;

pub const TCP_STATE_NAMES: [&str; 13] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// Struct member offsets and tracepoint argument positions of the running
/// kernel, resolved from its BTF by userspace and written into the program's
/// read-only data before load. Offsets are in bytes from the start of the
/// named struct; [`NO_OFFSET`] where the member does not exist.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    // struct sock (sock_common members are relative to struct sock too)
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// sk->__sk_common.skc_net.net (a `struct net *`)
    pub sk_net: u32,
    pub sk_protocol: u32,
    pub sk_rmem_alloc: u32,
    pub sk_wmem_queued: u32,
    /// struct tcp_sock -> rcv_nxt, copied_seq, write_seq, snd_una: unread
    /// and unacknowledged bytes in sequence space, where a FIN counts one.
    pub tcp_rcv_nxt: u32,
    pub tcp_copied_seq: u32,
    pub tcp_write_seq: u32,
    pub tcp_snd_una: u32,
    pub sk_forward_alloc: u32,
    pub sk_rcvbuf: u32,
    pub sk_sndbuf: u32,
    pub sk_wmem_alloc: u32,
    pub sk_drops: u32,
    pub sk_prot: u32,
    // struct net -> ns.inum
    pub net_inum: u32,
    // struct proto
    pub proto_memory_allocated: u32,
    pub proto_sysctl_mem: u32,
    // struct sk_buff
    pub skb_sk: u32,
    pub skb_truesize: u32,
    pub skb_len: u32,
    /// raw tracepoint argument positions, from the `btf_trace_*` prototypes
    pub kfree_skb_reason_arg: u32,
    pub kfree_skb_rx_sk_arg: u32,
    pub send_reset_reason_arg: u32,
    /// enum sk_rst_reason's SK_RST_REASON_TCP_ABORT_ON_MEMORY on this kernel
    pub rst_reason_abort_on_memory: u32,
    /// Only sockets in this network namespace (inode number) are counted;
    /// 0 counts every namespace.
    pub netns_inum: u32,
    /// struct proto -> memory_pressure (an `unsigned long *`)
    pub proto_memory_pressure: u32,
    /// How tcp_check_oom counts orphans on this kernel: [`ORPHANS_UNKNOWN`],
    /// [`ORPHANS_CACHE`] or [`ORPHANS_PERCPU_COUNTER`].
    pub orphan_shape: u32,
    /// struct percpu_counter -> count, for [`ORPHANS_PERCPU_COUNTER`]
    pub percpu_counter_count: u32,
    /// struct fib_nh_common -> nhc_dev, struct net_device -> name
    pub nhc_dev: u32,
    pub netdev_name: u32,
    /// struct rt6_info -> rt6i_dst.addr, rt6i_gateway, dst.dev, dst._metrics
    pub rt6_dst: u32,
    pub rt6_gateway: u32,
    pub rt6_dev: u32,
    pub rt6_metrics: u32,
    /// RTAX_MTU - 1: the MTU's index in struct dst_metrics
    pub rtax_mtu_index: u32,
    /// struct inet_sock -> inet_sport (big-endian). skc_num is cleared when
    /// the port is released (inet_put_port, on the way to CLOSE), so a
    /// socket being destroyed is only recognisable by this copy.
    pub inet_sport: u32,
    /// struct sock -> sk_drop_counters (a `struct numa_drop_counters *`,
    /// 6.18+: UDP keeps its drop counts there, not in sk_drops) and that
    /// struct's drops0/drops1, whose sum is the socket's drops.
    pub sk_drop_counters: u32,
    pub ndc_drops0: u32,
    pub ndc_drops1: u32,
    /// For the in-kernel census (`census.rs`): struct sock -> sk_socket
    /// (NULL once the application closed it: sock_diag's inode 0),
    /// sk_ack_backlog and sk_max_ack_backlog (a listener's accept queue
    /// and its limit, u32), and struct inet_timewait_sock -> tw_substate
    /// (u8: the state sock_diag reports a TIME_WAIT mini-socket in).
    pub sk_socket: u32,
    pub sk_ack_backlog: u32,
    pub sk_max_ack_backlog: u32,
    pub tw_substate: u32,
    /// Explicit, so the u64 fields below need no implicit padding.
    pub _pad: u32,
    /// Bit N set: `enum skb_drop_reason` value N is memory-related.
    pub drop_reason_mask: [u64; 4],
    /// Kernel addresses (from /proc/kallsyms) of the orphan figure
    /// tcp_check_oom compares (tcp_orphan_cache, or the percpu_counter
    /// tcp_orphan_count) and of sysctl_tcp_max_orphans; 0 when unknown.
    pub orphans_addr: u64,
    pub max_orphans_addr: u64,
}

/// The orphan counter's shape is unknown: the kernel side does not read it.
pub const ORPHANS_UNKNOWN: u32 = 0;
/// 5.16+ (and 5.10.y/5.15.y backports): per-CPU `unsigned int
/// tcp_orphan_count`, summed every 100 ms into `int tcp_orphan_cache`, which
/// is what tcp_too_many_orphans() compares.
pub const ORPHANS_CACHE: u32 = 1;
/// Older kernels: `struct percpu_counter tcp_orphan_count`.
pub const ORPHANS_PERCPU_COUNTER: u32 = 2;

impl KernelLayout {
    pub const fn unresolved() -> Self {
        KernelLayout {
            sk_family: NO_OFFSET,
            sk_state: NO_OFFSET,
            sk_num: NO_OFFSET,
            sk_dport: NO_OFFSET,
            sk_daddr: NO_OFFSET,
            sk_rcv_saddr: NO_OFFSET,
            sk_v6_daddr: NO_OFFSET,
            sk_v6_rcv_saddr: NO_OFFSET,
            sk_net: NO_OFFSET,
            sk_protocol: NO_OFFSET,
            sk_rmem_alloc: NO_OFFSET,
            sk_wmem_queued: NO_OFFSET,
            tcp_rcv_nxt: NO_OFFSET,
            tcp_copied_seq: NO_OFFSET,
            tcp_write_seq: NO_OFFSET,
            tcp_snd_una: NO_OFFSET,
            sk_forward_alloc: NO_OFFSET,
            sk_rcvbuf: NO_OFFSET,
            sk_sndbuf: NO_OFFSET,
            sk_wmem_alloc: NO_OFFSET,
            sk_drops: NO_OFFSET,
            sk_prot: NO_OFFSET,
            net_inum: NO_OFFSET,
            proto_memory_allocated: NO_OFFSET,
            proto_sysctl_mem: NO_OFFSET,
            skb_sk: NO_OFFSET,
            skb_truesize: NO_OFFSET,
            skb_len: NO_OFFSET,
            kfree_skb_reason_arg: NO_ARG,
            kfree_skb_rx_sk_arg: NO_ARG,
            send_reset_reason_arg: NO_ARG,
            rst_reason_abort_on_memory: u32::MAX,
            netns_inum: 0,
            proto_memory_pressure: NO_OFFSET,
            orphan_shape: ORPHANS_UNKNOWN,
            percpu_counter_count: NO_OFFSET,
            nhc_dev: NO_OFFSET,
            netdev_name: NO_OFFSET,
            rt6_dst: NO_OFFSET,
            rt6_gateway: NO_OFFSET,
            rt6_dev: NO_OFFSET,
            rt6_metrics: NO_OFFSET,
            rtax_mtu_index: 1,
            inet_sport: NO_OFFSET,
            sk_drop_counters: NO_OFFSET,
            ndc_drops0: NO_OFFSET,
            ndc_drops1: NO_OFFSET,
            sk_socket: NO_OFFSET,
            sk_ack_backlog: NO_OFFSET,
            sk_max_ack_backlog: NO_OFFSET,
            tw_substate: NO_OFFSET,
            _pad: 0,
            drop_reason_mask: [0; 4],
            orphans_addr: 0,
            max_orphans_addr: 0,
        }
    }

    /// Marks `enum skb_drop_reason` value `reason` as memory-related.
    pub fn select_drop_reason(&mut self, reason: u32) {
        if let Some((word, bit)) = drop_reason_bit(reason) {
            self.drop_reason_mask[word] |= bit;
        }
    }

    pub fn drop_reason_selected(&self, reason: u32) -> bool {
        drop_reason_bit(reason).is_some_and(|(word, bit)| self.drop_reason_mask[word] & bit != 0)
    }
}

/// Where drop reason `reason` lives in [`KernelLayout::drop_reason_mask`]:
/// (word, bit). Reasons past the mask (subsystem-encoded ones) are never
/// selected. Shared so the kernel's check and userspace's selection agree.
#[inline(always)]
pub fn drop_reason_bit(reason: u32) -> Option<(usize, u64)> {
    let word = (reason / 64) as usize;
    (word < 4).then_some((word, 1u64 << (reason % 64)))
}

pub const GROUP_UNATTRIBUTED: u8 = 0;
pub const GROUP_LISTEN: u8 = 1;
pub const GROUP_BACKEND: u8 = 2;
/// Userspace-only kinds, for `--group-by process|cgroup`: the owner's id
/// (pid, or cgroup id) is in the first 8 bytes of `addr`. The kernel only
/// ever counts by port groups; these are a regrouping of them.
pub const GROUP_PROCESS: u8 = 3;
pub const GROUP_CGROUP: u8 = 4;
/// Userspace-only, for `--group-by proxy-backend`: a proxy's backend (its
/// servers' `backend:` groups summed); the backend name's id is in the
/// first 8 bytes of `addr`.
pub const GROUP_PROXY_BACKEND: u8 = 5;

/// Where a socket's memory is charged: the listening port it was accepted on
/// (a proxy's frontend), or the remote endpoint it connected to (a backend).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Backend address: 4 bytes for AF_INET, 16 for AF_INET6; zero for listen.
    pub addr: [u8; 16],
    pub port: u16,
    pub kind: u8,
    /// AF_INET or AF_INET6 for backends; 0 for listen groups, which cover both.
    pub family: u8,
    /// The socket's network namespace (its inode number): the same port in
    /// two namespaces is two groups. 0 for what belongs to none.
    pub netns: u32,
}

impl GroupKey {
    pub const UNATTRIBUTED: GroupKey = GroupKey {
        addr: [0; 16],
        port: 0,
        kind: GROUP_UNATTRIBUTED,
        family: 0,
        netns: 0,
    };

    /// The same group, in namespace `netns`.
    #[inline(always)]
    pub fn in_netns(mut self, netns: u32) -> GroupKey {
        self.netns = netns;
        self
    }

    /// The one port-grouping rule, used by the kernel programs and by the
    /// sock_diag aggregator alike. A socket whose local port is a listening
    /// port, or that has no peer (an unconnected UDP server), is the passive
    /// side; anything else is charged to the endpoint it talks to.
    /// IPv4-mapped IPv6 peers are folded into AF_INET so a dual-stack proxy's
    /// backend is one group.
    #[inline(always)]
    pub fn classify(
        family: u8,
        lport: u16,
        is_listen_port: bool,
        raddr: &[u8; 16],
        rport: u16,
    ) -> GroupKey {
        // Built in place from a zeroed key (GroupKey is 4-aligned) and
        // copied by 4-byte words: LLVM's BPF backend turns a fresh `[0u8;
        // 16]` and byte-wise copies into a memset loop and byte stores.
        let mut key = GroupKey {
            addr: [0; 16],
            port: lport,
            kind: GROUP_LISTEN,
            family: 0,
            netns: 0,
        };
        if is_listen_port || rport == 0 {
            return key;
        }
        key.port = rport;
        key.kind = GROUP_BACKEND;
        key.family = family;
        if family == AF_INET6 && is_v4_mapped(raddr) {
            key.family = AF_INET;
            key.addr[..4].copy_from_slice(&raddr[12..]);
        } else if family == AF_INET {
            key.addr[..4].copy_from_slice(&raddr[..4]);
        } else {
            key.addr = *raddr;
        }
        key
    }
}

#[inline(always)]
fn is_v4_mapped(a: &[u8; 16]) -> bool {
    let word = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    word(0) == 0 && word(4) == 0 && word(8) == u32::from_ne_bytes([0, 0, 0xff, 0xff])
}

/// Declares a `#[repr(u32)]` enum once, with each variant's wire value and
/// its name, and derives everything that used to be a parallel table:
/// `ALL` (in declaration order), `COUNT`, `name()` and `from_u32()`.
/// Kernel and userspace both use it, so a value and its name cannot drift.
#[macro_export]
macro_rules! named_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident {
        $($(#[$vm:meta])* $var:ident = $val:literal => $str:literal,)+
    }) => {
        $(#[$m])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vm])* $var = $val,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)+];
            pub const COUNT: usize = [$($val,)+].len();

            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $str,)+ }
            }

            pub const fn from_u32(v: u32) -> Option<Self> {
                match v { $($val => Some($name::$var),)+ _ => None }
            }

            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

named_enum! {
    /// Per-group event counters kept in a per-CPU kernel map; the value is
    /// the index into [`GroupCounters::counts`], the name its JSON field.
    pub enum Counter {
        Established = 0 => "established",
        Closed = 1 => "closed",
        ExceedBufLimit = 2 => "exceed_buf_limit",
        RcvqueueFull = 3 => "rcvqueue_full",
        MemAborts = 4 => "mem_aborts",
        SkbDrops = 5 => "skb_drops",
        Resets = 6 => "resets",
        DestroyedWithData = 7 => "destroyed_with_data",
        OrphansBorn = 8 => "orphans_born",
        OrphansGone = 9 => "orphans_gone",
        PressureEntered = 10 => "pressure_entered",
    }
}

/// One group's census as the socket iterator sums it in the kernel
/// (`netmem-ebpf/src/census.rs`): the figures sock_diag gives per socket,
/// added up per group, so user space reads one record per group instead
/// of one per socket. Field for field what `GroupMem` sums from sock_diag.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CensusRow {
    pub sockets: u64,
    pub listeners: u64,
    pub time_wait: u64,
    pub orphans: u64,
    pub rmem: u64,
    pub wmem_queued: u64,
    pub fwd_alloc: u64,
    pub orphan_bytes: u64,
    pub drops: u64,
    pub accept_queue: u64,
    pub accept_backlog: u64,
    pub accept_full: u64,
    pub listen_drops: u64,
}

/// Groups one census can sum (the iterator's map): past it, a socket is
/// counted in [`CENSUS_OVERFLOW`]'s row and user space falls back to
/// sock_diag for that pass.
pub const CENSUS_GROUPS_MAX: u32 = 65536;

/// Indexes of the census' `CENSUS_SETTINGS` array.
/// The pass' generation: a port is listening in this pass when its
/// `CENSUS_LISTEN` slot holds it (so the array is never cleared).
pub const CENSUS_GEN: u32 = 0;
/// Non-zero: count TIME_WAIT sockets (`--time-wait`); else skip them as
/// sock_diag's state filter does.
pub const CENSUS_TIME_WAIT: u32 = 1;
/// Set by the kernel when a group did not fit the map: the pass is
/// incomplete and user space says so and uses sock_diag.
pub const CENSUS_OVERFLOW: u32 = 2;
pub const CENSUS_SETTINGS_LEN: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounters {
    pub counts: [u64; Counter::COUNT],
}

named_enum! {
    /// Indexes of the per-CPU `STATS` array: what the kernel side could not
    /// do, so that no loss is silent.
    pub enum Stat {
        /// bpf_ringbuf_reserve failed: an event was dropped.
        RingbufLost = 0 => "lost_events",
        /// The per-group counter map was full: a count was dropped.
        GroupMapFull = 1 => "group_map_full",
        /// The orphan tracking map was full: an orphan's birth was not
        /// recorded (its death then reports no lifetime).
        OrphanMapFull = 2 => "orphan_map_full",
        /// Synthetic events the pipeline benchmark's program tried to stream
        /// (each either reached the ring buffer or was counted in RingbufLost).
        SyntheticGenerated = 3 => "synthetic_generated",
    }
}

named_enum! {
    /// Indexes of the `SETTINGS` array, written by userspace after it has
    /// chosen each hook's tier (the programs are loaded by then, so this
    /// cannot live in read-only data).
    pub enum Setting {
        /// 1: tcp_check_oom is served by the tcp_send_reset tracepoint, which
        /// then streams `abort_on_memory` itself.
        AbortsFromResets = 0 => "aborts_from_resets",
        /// The pipeline benchmark's producer: its thread group id (0: the
        /// synthetic program does nothing), the syscall number that triggers
        /// it, and how many events each such syscall streams.
        SyntheticTgid = 1 => "synthetic_tgid",
        SyntheticSyscall = 2 => "synthetic_syscall",
        SyntheticBatch = 3 => "synthetic_batch",
        /// 1: the orphans hook runs in the kernel (fentry or kprobe), so
        /// the state tracepoint records how a tracked orphan reached CLOSE;
        /// 0: ORPHANS is empty and looking a closing socket up is wasted.
        OrphansTracked = 4 => "orphans_tracked",
    }
}

named_enum! {
    /// Rare events streamed through the ring buffer. The name is the JSON
    /// `event` field; the payload of each kind is the struct of the same
    /// name in [`payload`].
    pub enum EventKind {
        /// `sock:sock_exceed_buf_limit`
        ExceedBufLimit = 1 => "exceed_buf_limit",
        /// `sock:sock_rcvqueue_full`
        RcvqueueFull = 2 => "rcvqueue_full",
        /// tcp_check_oom() returned true (fexit/kretprobe), or
        /// `tcp:tcp_send_reset` with reason TCP_ABORT_ON_MEMORY, or nstat.
        AbortOnMemory = 3 => "abort_on_memory",
        /// `skb:kfree_skb` with a memory-related reason
        SkbDrop = 4 => "skb_drop",
        /// `tcp:tcp_destroy_sock` of a socket still holding data
        DestroyWithData = 5 => "destroy_with_data",
        /// A socket became an orphan (closed by its owner, not yet CLOSE).
        OrphanBorn = 6 => "orphan_born",
        /// An orphan was destroyed.
        OrphanGone = 7 => "orphan_gone",
        /// tcp_enter_memory_pressure() while not under pressure
        PressureEnter = 8 => "memory_pressure_enter",
        /// tcp_leave_memory_pressure() while under pressure
        PressureLeave = 9 => "memory_pressure_leave",
        /// A route exception (next-hop exception for IPv4, RTF_CACHE route
        /// for IPv6) was created or updated; `route` carries its addresses.
        RouteException = 10 => "route_exception",
        /// Streamed only by the pipeline benchmark, never by a real hook.
        Synthetic = 11 => "synthetic",
        /// A cgroup's sockets came under memory pressure of their own
        /// (its memory controller at its limit while the host's TCP
        /// memory is below tcp_mem[1]): judged in userspace at each
        /// interval, never streamed by a hook.
        CgroupSocketPressure = 12 => "cgroup_socket_pressure",
    }
}

named_enum! {
    /// Who saw an abort on memory: the `via` of `abort_on_memory`.
    pub enum AbortSource {
        CheckOom = 0 => "tcp_check_oom",
        Reset = 1 => "tcp_send_reset reason TCP_ABORT_ON_MEMORY",
        Nstat = 2 => "nstat TCPAbortOnMemory",
    }
}

named_enum! {
    /// Where an orphan was born: the `via` of `orphan_born`.
    pub enum OrphanSource {
        TcpClose = 0 => "tcp_close",
        ChildForget = 1 => "inet_child_forget",
        SockDiag = 2 => "sock_diag",
    }
}

/// A payload of one [`EventKind`]: named fields, carried as the event's
/// `args` words. `KIND` ties the type to its kind, so a program cannot
/// stream one kind with another's payload.
pub trait Payload: Sized {
    const KIND: EventKind;
    fn into_args(self) -> [i64; N_ARGS];
    fn from_args(a: &[i64; N_ARGS]) -> Self;
}

macro_rules! payload {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: i64,)* }

        const _: () = assert!(core::mem::size_of::<$name>() <= 8 * $crate::N_ARGS);

        impl $crate::Payload for $name {
            const KIND: $crate::EventKind = $crate::EventKind::$name;

            #[inline(always)]
            #[allow(unused_assignments)]
            fn into_args(self) -> [i64; $crate::N_ARGS] {
                let mut a = [0i64; $crate::N_ARGS];
                let mut i = 0;
                $(a[i] = self.$f; i += 1;)*
                a
            }

            #[inline(always)]
            #[allow(unused_assignments)]
            fn from_args(a: &[i64; $crate::N_ARGS]) -> Self {
                let mut i = 0;
                $(let $f = a[i]; i += 1;)*
                $name { $($f,)* }
            }
        }
    };
}

/// The payload of each event kind, one struct per [`EventKind`] variant and
/// of the same name. -1 in a figure means "not read by the kernel".
pub mod payload {
    payload!(ExceedBufLimit {
        /// protocol memory_allocated, pages
        allocated_pages,
        /// 0 send, 1 recv (the tracepoint's `kind`)
        direction,
        /// sysctl_mem[0..3] (tcp_mem or udp_mem), pages
        mem0,
        mem1,
        mem2,
    });
    payload!(RcvqueueFull { truesize });
    payload!(AbortOnMemory {
        /// tcp_check_oom's shift (0 from close, >0 from the retransmit timer)
        shift,
        /// the orphan figure tcp_check_oom compares
        orphans,
        max_orphans,
        /// protocol memory_allocated, pages
        allocated_pages,
        mem0,
        mem1,
        mem2,
        /// an [`AbortSource`](crate::AbortSource) value
        source,
    });
    payload!(SkbDrop {
        /// `enum skb_drop_reason` value on this kernel
        reason,
        truesize,
        len,
    });
    payload!(DestroyWithData {
        /// unread and unacknowledged bytes in sequence space, a FIN not counted
        unread_bytes,
        unacked_bytes,
    });
    payload!(OrphanBorn {
        /// wmem_queued at birth
        bytes,
        /// an [`OrphanSource`](crate::OrphanSource) value
        source,
        /// the closing process (tgid; 0: not closed by a process, e.g. a
        /// child nobody accepted)
        owner_pid,
        /// its cgroup v2 id (0: unknown)
        owner_cgroup,
        /// its comm, 16 bytes NUL-padded, in two words
        owner_comm0,
        owner_comm1,
    });
    payload!(OrphanGone {
        /// -1 when the birth was not seen
        lifetime_ns,
        bytes_at_birth,
        /// TCP state before CLOSE (0: unknown)
        last_state,
        /// 1 when tcp_check_oom aborted it
        aborted_on_memory,
        /// who closed it, as recorded at its birth (0: birth not seen)
        owner_pid,
        owner_cgroup,
    });
    payload!(PressureEnter {
        allocated_pages,
        mem0,
        mem1,
        mem2
    });
    payload!(PressureLeave {
        allocated_pages,
        mem0,
        mem1,
        mem2
    });
    payload!(RouteException {
        /// AF_INET or AF_INET6
        family,
        /// 0 for a redirect
        pmtu,
    });
    payload!(Synthetic {
        /// sequence number within its batch
        seq,
    });
}

/// A socket as the kernel programs saw it: addresses, ports and the memory
/// figures `ss -m` shows, read at BTF-resolved offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub lport: u16,
    pub rport: u16,
    pub family: u8,
    pub state: u8,
    pub protocol: u8,
    /// 1 when the event carried a socket at all.
    pub present: u8,
    pub rmem_alloc: i32,
    pub wmem_queued: i32,
    pub fwd_alloc: i32,
    pub rcvbuf: i32,
    pub sndbuf: i32,
    pub wmem_alloc: i32,
    pub drops: i32,
}

/// One ring buffer record. `args` holds the kind's [`payload`] struct.
///
/// Records are as long as their kind needs: the head up to `args`
/// ([`EVENT_HEAD`] bytes), then `sock` when the event is about a socket
/// ([`EVENT_WITH_SOCK`]), then `route` for route exceptions (the whole
/// struct). [`Event::from_record`] reads any of them; what a record leaves
/// out reads as zero (`sock.present == 0`: no socket).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC)
    pub ts_ns: u64,
    pub kind: u32,
    /// Explicit, so no implicit padding crosses the boundary.
    pub _pad: u32,
    pub group: GroupKey,
    pub args: [i64; N_ARGS],
    pub sock: SockInfo,
    /// Explicit, so `route` and the whole record end 8-aligned.
    pub _pad2: u32,
    pub route: RouteInfo,
}

/// The event ring's size. Its pages are mapped into netmem's address
/// space twice (the kernel maps the data area twice so records never wrap),
/// so it counts double in RSS: 2 MiB holds 20k head records, about 2 ms of
/// a 10M events/s flood, with the reader woken every 128 KiB.
pub const EVENTS_BYTES: u32 = 2 << 20;

/// Bytes of a record with no socket and no route.
pub const EVENT_HEAD: usize = core::mem::offset_of!(Event, sock);
/// Bytes of a record about a socket.
pub const EVENT_WITH_SOCK: usize = core::mem::offset_of!(Event, route);

impl Event {
    /// The event a ring buffer record holds; None when it is shorter than a
    /// head (not one of netmem's records).
    pub fn from_record(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < EVENT_HEAD {
            return None;
        }
        let n = bytes.len().min(core::mem::size_of::<Event>());
        // SAFETY: Event is plain integers, so all-zero bytes are a valid
        // value, and `n` bytes fit both the source and the destination.
        unsafe {
            let mut e: Event = core::mem::zeroed();
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut e).cast::<u8>(), n);
            Some(e)
        }
    }
}

pub const N_ARGS: usize = 8;

impl Event {
    /// The typed payload, when this record is of `P`'s kind.
    pub fn payload<P: Payload>(&self) -> Option<P> {
        (self.kind == P::KIND as u32).then(|| P::from_args(&self.args))
    }
}

/// The route part of a [`EventKind::RouteException`]; zero otherwise.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteInfo {
    pub dst: [u8; 16],
    pub gateway: [u8; 16],
    /// NUL-padded interface name
    pub dev: [u8; 16],
}

/// The orphan tracking map's value, keyed by socket address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrphanInfo {
    pub born_ns: u64,
    pub bytes: i64,
    pub group: GroupKey,
    /// TCP state the orphan was in when it went to CLOSE
    pub last_state: u8,
    pub aborted_on_memory: u8,
    pub _pad: [u8; 2],
    /// Who closed it (process context of `__tcp_close`): thread group id
    /// and cgroup v2 id; 0 when the birth was seen outside one.
    pub owner_pid: u32,
    pub owner_cgroup: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C) plain data with no padding and no pointers.
    unsafe impl aya::Pod for super::KernelLayout {}
    unsafe impl aya::Pod for super::GroupKey {}
    unsafe impl aya::Pod for super::GroupCounters {}
    unsafe impl aya::Pod for super::CensusRow {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::OrphanInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<GroupKey>(), 24);
        assert_eq!(core::mem::size_of::<SockInfo>(), 16 + 16 + 4 + 4 + 7 * 4);
        assert_eq!(
            core::mem::size_of::<Event>(),
            8 + 4 + 4 + 24 + 64 + 68 + 4 + 48
        );
        assert_eq!(EVENT_HEAD, 104);
        assert_eq!(EVENT_WITH_SOCK, 176);
        assert_eq!(EVENT_WITH_SOCK % 8, 0);
    }

    #[test]
    fn short_records_read_as_zero_past_their_end() {
        let mut full: Event = Event::from_record(&[7u8; 300]).unwrap();
        assert_eq!(full.sock.present, 7);
        full = Event::from_record(&[7u8; EVENT_HEAD]).unwrap();
        assert_eq!(full.kind, u32::from_ne_bytes([7; 4]));
        assert_eq!(full.sock.present, 0);
        assert_eq!(full.route.dst, [0; 16]);
        assert!(Event::from_record(&[0u8; EVENT_HEAD - 1]).is_none());
    }

    #[test]
    fn payloads_round_trip_in_declaration_order() {
        let p = payload::AbortOnMemory {
            shift: 1,
            orphans: 2,
            max_orphans: 3,
            allocated_pages: 4,
            mem0: 5,
            mem1: 6,
            mem2: 7,
            source: AbortSource::Reset as i64,
        };
        let a = p.into_args();
        assert_eq!(a, [1, 2, 3, 4, 5, 6, 7, 1]);
        assert_eq!(payload::AbortOnMemory::from_args(&a), p);
        assert_eq!(
            <payload::OrphanGone as Payload>::KIND,
            EventKind::OrphanGone
        );
    }

    #[test]
    fn enum_tables_come_from_one_declaration() {
        assert_eq!(Counter::COUNT, Counter::ALL.len());
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "counters index GroupCounters::counts");
        }
        assert_eq!(EventKind::from_u32(3), Some(EventKind::AbortOnMemory));
        assert_eq!(
            EventKind::from_name("orphan_gone"),
            Some(EventKind::OrphanGone)
        );
        assert_eq!(EventKind::from_u32(0), None);
        assert_eq!(core::mem::size_of::<KernelLayout>(), 52 * 4 + 32 + 16);
        assert_eq!(core::mem::size_of::<OrphanInfo>(), 8 + 8 + 24 + 4 + 4 + 8);
    }

    #[test]
    fn listen_port_wins_over_peer() {
        let peer = [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let g = GroupKey::classify(AF_INET, 8080, true, &peer, 40000);
        assert_eq!(
            (g.kind, g.port, g.family, g.addr),
            (GROUP_LISTEN, 8080, 0, [0; 16])
        );
    }

    #[test]
    fn unconnected_socket_is_passive() {
        let g = GroupKey::classify(AF_INET, 5353, false, &[0; 16], 0);
        assert_eq!((g.kind, g.port), (GROUP_LISTEN, 5353));
    }

    #[test]
    fn v4_mapped_backend_folds_into_ipv4() {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[10, 0, 0, 2]);
        let a = GroupKey::classify(AF_INET6, 40000, false, &mapped, 9001);
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[10, 0, 0, 2]);
        let b = GroupKey::classify(AF_INET, 41000, false, &v4, 9001);
        assert_eq!(a, b);
        assert_eq!(a.family, AF_INET);
    }

    #[test]
    fn ipv6_backend_keeps_address() {
        let mut a6 = [0u8; 16];
        a6[15] = 1;
        let g = GroupKey::classify(AF_INET6, 40000, false, &a6, 9001);
        assert_eq!(
            (g.kind, g.family, g.addr, g.port),
            (GROUP_BACKEND, AF_INET6, a6, 9001)
        );
    }

    #[test]
    fn drop_reason_mask_bits() {
        let mut l = KernelLayout::unresolved();
        l.drop_reason_mask[1] = 1 << 3;
        assert!(l.drop_reason_selected(67));
        assert!(!l.drop_reason_selected(66));
        assert!(!l.drop_reason_selected(10_000));
    }
}
