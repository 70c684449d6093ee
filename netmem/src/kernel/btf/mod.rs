//! Resolves the running kernel's struct layouts, tracepoint argument positions
//! and enum values from its BTF (`/sys/kernel/btf/vmlinux`) into the
//! [`KernelLayout`] the kernel programs read. Nothing here is specific to one
//! kernel version: a member that moved is found where it is, and one that is
//! missing is reported and left as [`NO_OFFSET`].

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use btf_rs::{Btf, BtfType, Type};
use netmem_common::{
    KernelLayout, NO_ARG, NO_OFFSET, ORPHANS_CACHE, ORPHANS_PERCPU_COUNTER, ORPHANS_UNKNOWN,
};

// Upward on purpose: a layout member that is missing is noted against the
// hook it limits (HookId is a plain enum of the catalog).
use crate::hooks::HookId;
use crate::kernel::kallsyms::Kallsyms;

mod file;

use file::{btf_bytes, check_header, read_capped};
pub use file::{missing_reason, source, use_file, BtfSource, BTF_ENV, VMLINUX_BTF};

/// `enum skb_drop_reason` members that mean "dropped for lack of memory or
/// buffer room". Names, not numbers: the values shift between kernels.
pub const MEMORY_DROP_REASONS: &[&str] = &[
    "SKB_DROP_REASON_SOCKET_RCVBUFF",
    "SKB_DROP_REASON_PROTO_MEM",
    "SKB_DROP_REASON_SOCKET_BACKLOG",
    "SKB_DROP_REASON_TCP_OFOMERGE",
    "SKB_DROP_REASON_TCP_OFO_QUEUE_PRUNE",
    "SKB_DROP_REASON_TCP_OFO_DROP",
    "SKB_DROP_REASON_TCP_ZEROWINDOW",
    "SKB_DROP_REASON_NOMEM",
    "SKB_DROP_REASON_SOCKET_RCV_SHUTDOWN",
];

/// A drop reason as netmem names it (events, metrics): the kernel's
/// `enum skb_drop_reason` member without `SKB_DROP_REASON_`.
pub fn drop_reason_name(member: &str) -> &str {
    member.trim_start_matches("SKB_DROP_REASON_")
}

pub const RST_REASON_ABORT_ON_MEMORY: &str = "SK_RST_REASON_TCP_ABORT_ON_MEMORY";

/// What was resolved, plus a note for everything that was not.
pub struct Resolved {
    pub layout: KernelLayout,
    /// SOCK_MIN_SNDBUF on this kernel: tcp_check_oom's tcp_mem test only
    /// applies to sockets queuing more than this.
    pub sock_min_sndbuf: i64,
    /// Each lookup that failed, with the hook it limits (None: all of them).
    pub missing: Vec<(Option<HookId>, String)>,
    /// `enum skb_drop_reason` value → name, for printing drop events.
    pub drop_reason_names: Vec<(u32, String)>,
}

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// The BTF netmem resolves offsets from: the file `--btf` or
    /// `NETMEM_BTF` names, else the kernel's own. Err when there is none
    /// (see [`missing_reason`]).
    pub fn load() -> Result<Self> {
        match source() {
            Some(BtfSource::Kernel) => Self::from_file(VMLINUX_BTF),
            Some(BtfSource::File(p)) => Self::from_named_file(&p),
            None => bail!("{}", missing_reason()),
        }
    }

    /// An external vmlinux BTF for the running kernel (BTFHub-style): raw
    /// BTF, or an ELF file (a vmlinux, or a `.btf` made by `pahole` or
    /// `bpftool gen min_core_btf`) with a `.BTF` section.
    pub fn from_named_file(path: &Path) -> Result<Self> {
        let bytes = read_capped(path)?;
        let raw = btf_bytes(&bytes)
            .map_err(|e| anyhow!("{} is not a vmlinux BTF: {e:#}", path.display()))?;
        Self::from_bytes(raw).map_err(|e| anyhow!("{} is not a vmlinux BTF: {e:#}", path.display()))
    }

    /// BTF from memory. The header is checked first (magic, version, and
    /// every section inside the data), so a truncated or corrupt file is an
    /// error rather than a parser's arithmetic overflow.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        check_header(bytes)?;
        let btf = Btf::from_bytes(bytes).map_err(|e| anyhow!("cannot parse BTF: {e}"))?;
        Ok(KernelBtf { btf })
    }

    pub fn from_file(path: &str) -> Result<Self> {
        let hint = "--btf FILE or NETMEM_BTF=FILE names another";
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow!("cannot read kernel BTF at {path}: {e}; {hint}"))?;
        Self::from_bytes(&bytes).map_err(|e| anyhow!("kernel BTF at {path}: {e:#}; {hint}"))
    }

    fn strip(&self, mut t: Type) -> Result<Type> {
        loop {
            t = match t {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let bt = t.as_btf_type().expect("chained type");
                    self.btf.resolve_chained_type(bt)?
                }
                other => return Ok(other),
            }
        }
    }

    fn named_struct(&self, name: &str) -> Result<btf_rs::Struct> {
        for t in self.btf.resolve_types_by_name(name).unwrap_or_default() {
            if let Type::Struct(s) = t {
                if !s.members.is_empty() {
                    return Ok(s);
                }
            }
        }
        bail!("struct {name} not in kernel BTF")
    }

    /// Bit offset of `member` inside `s`, looking through anonymous structs
    /// and unions, together with the member's type.
    fn find_member(&self, s: &btf_rs::Struct, member: &str) -> Result<Option<(u32, Type)>> {
        for m in &s.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            let ty = self.btf.resolve_chained_type(m)?;
            if name == member {
                return Ok(Some((m.bit_offset(), ty)));
            }
            if name.is_empty() {
                if let Type::Struct(inner) | Type::Union(inner) = self.strip(ty)? {
                    if let Some((off, t)) = self.find_member(&inner, member)? {
                        return Ok(Some((m.bit_offset() + off, t)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Byte offset of a dotted member path (e.g. `__sk_common.skc_family`)
    /// from the start of `struct root`.
    pub fn offset_of(&self, root: &str, path: &str) -> Result<u32> {
        let mut s = self.named_struct(root)?;
        let mut bits = 0u32;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (off, ty) = self
                .find_member(&s, part)?
                .ok_or_else(|| anyhow!("struct {root} has no member {path} on this kernel"))?;
            bits += off;
            if i + 1 < parts.len() {
                s = match self.strip(ty)? {
                    Type::Struct(inner) | Type::Union(inner) => inner,
                    _ => bail!("{root}.{path}: {part} is not a struct"),
                };
            }
        }
        if !bits.is_multiple_of(8) {
            bail!("{root}.{path} is a bitfield not on a byte boundary");
        }
        Ok(bits / 8)
    }

    /// Value of enumerator `name` in `enum enum_name`.
    pub fn enum_value(&self, enum_name: &str, name: &str) -> Result<Option<u32>> {
        Ok(self
            .enum_members(enum_name)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v))
    }

    pub fn enum_members(&self, enum_name: &str) -> Result<Vec<(String, u32)>> {
        for t in self
            .btf
            .resolve_types_by_name(enum_name)
            .unwrap_or_default()
        {
            if let Type::Enum(e) = t {
                return Ok(e
                    .members
                    .iter()
                    .map(|m| (self.btf.resolve_name(m).unwrap_or_default(), m.val()))
                    .collect());
            }
        }
        bail!("enum {enum_name} not in kernel BTF")
    }

    /// The raw tracepoint's argument types, from its `btf_trace_<name>`
    /// typedef (a pointer to `void (*)(void *__data, TP_PROTO args...)`),
    /// rendered as short names such as `struct sock *` or `enum sk_rst_reason`.
    pub fn tracepoint_args(&self, tp: &str) -> Result<Vec<String>> {
        let name = format!("btf_trace_{tp}");
        let t = self
            .btf
            .resolve_types_by_name(&name)
            .ok()
            .and_then(|v| v.into_iter().next())
            .ok_or_else(|| anyhow!("tracepoint {tp} not in kernel BTF"))?;
        let Type::Ptr(p) = self.strip(t)? else {
            bail!("{name} is not a function pointer")
        };
        let Type::FuncProto(proto) = self.strip(self.btf.resolve_chained_type(&p)?)? else {
            bail!("{name} is not a function pointer")
        };
        // Parameter 0 is the tracepoint's private data pointer, not a TP_PROTO argument.
        proto
            .parameters
            .iter()
            .skip(1)
            .map(|param| self.describe(param))
            .collect()
    }

    /// Parameter names and types of kernel function `name`, or None when it
    /// has no BTF (inlined, renamed by the compiler, or absent).
    pub fn func_params(&self, name: &str) -> Option<Vec<(String, String)>> {
        let funcs = self.btf.resolve_types_by_name(name).ok()?;
        let func = funcs.into_iter().find_map(|t| match t {
            Type::Func(f) => Some(f),
            _ => None,
        })?;
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&func).ok()? else {
            return None;
        };
        proto
            .parameters
            .iter()
            .map(|p| {
                Some((
                    self.btf.resolve_name(p).unwrap_or_default(),
                    self.describe(p).ok()?,
                ))
            })
            .collect()
    }

    /// The type of global (or per-CPU) variable `name`, e.g. `unsigned int`.
    pub fn var_type(&self, name: &str) -> Option<String> {
        let vars = self.btf.resolve_types_by_name(name).ok()?;
        vars.into_iter().find_map(|t| match t {
            Type::Var(v) => self.describe(&v).ok(),
            _ => None,
        })
    }

    pub fn struct_size(&self, name: &str) -> Result<usize> {
        Ok(self.named_struct(name)?.size())
    }

    fn describe(&self, bt: &dyn BtfType) -> Result<String> {
        let t = self.strip(self.btf.resolve_chained_type(bt)?)?;
        Ok(match &t {
            Type::Ptr(p) => format!("{} *", self.describe(p)?),
            Type::Struct(s) => format!("struct {}", self.btf.resolve_name(s).unwrap_or_default()),
            Type::Union(s) => format!("union {}", self.btf.resolve_name(s).unwrap_or_default()),
            Type::Enum(e) => format!("enum {}", self.btf.resolve_name(e).unwrap_or_default()),
            Type::Enum64(e) => format!("enum {}", self.btf.resolve_name(e).unwrap_or_default()),
            Type::Int(i) => self.btf.resolve_name(i).unwrap_or_default(),
            Type::Void => "void".to_string(),
            other => other.name().to_string(),
        })
    }

    pub fn resolve(&self, netns_inum: u32, syms: &Kallsyms) -> Resolved {
        let mut l = KernelLayout::unresolved();
        let mut missing = Vec::new();
        self.resolve_offsets(&mut l, &mut missing);
        self.resolve_orphans(&mut l, syms, &mut missing);
        // SOCK_MIN_SNDBUF = 2 * TCP_SKB_MIN_TRUESIZE = 2 * (2048 +
        // SKB_DATA_ALIGN(sizeof(struct sk_buff))), cache lines being 64 bytes.
        let sock_min_sndbuf = match self.struct_size("sk_buff") {
            Ok(n) => 2 * (2048 + n.div_ceil(64) * 64) as i64,
            Err(_) => 4608,
        };

        let drop_reason_names = self.resolve_tracepoints(&mut l, &mut missing);
        l.netns_inum = netns_inum;
        Resolved {
            layout: l,
            sock_min_sndbuf,
            missing,
            drop_reason_names,
        }
    }
}

type Notes = Vec<(Option<HookId>, String)>;

impl KernelBtf {
    /// Struct member offsets; each missing one is noted with the hook it
    /// limits (None: every socket read).
    fn resolve_offsets(&self, l: &mut KernelLayout, missing: &mut Notes) {
        let off_for = |hook: Option<HookId>, root: &str, path: &str, missing: &mut Notes| -> u32 {
            match self.offset_of(root, path) {
                Ok(o) => o,
                Err(e) => {
                    missing.push((hook, format!("{e:#}")));
                    NO_OFFSET
                }
            }
        };
        let off = |root: &str, path: &str, missing: &mut Notes| off_for(None, root, path, missing);
        let m = &mut *missing;
        l.sk_family = off("sock", "__sk_common.skc_family", m);
        l.sk_state = off("sock", "__sk_common.skc_state", m);
        l.sk_num = off("sock", "__sk_common.skc_num", m);
        l.inet_sport = off("inet_sock", "inet_sport", m);
        l.sk_dport = off("sock", "__sk_common.skc_dport", m);
        l.sk_daddr = off("sock", "__sk_common.skc_daddr", m);
        l.sk_rcv_saddr = off("sock", "__sk_common.skc_rcv_saddr", m);
        l.sk_v6_daddr = off("sock", "__sk_common.skc_v6_daddr", m);
        l.sk_v6_rcv_saddr = off("sock", "__sk_common.skc_v6_rcv_saddr", m);
        l.sk_net = off("sock", "__sk_common.skc_net.net", m);
        l.sk_prot = off("sock", "__sk_common.skc_prot", m);
        l.sk_protocol = off("sock", "sk_protocol", m);
        l.sk_rmem_alloc = off("sock", "sk_backlog.rmem_alloc", m);
        l.sk_wmem_queued = off("sock", "sk_wmem_queued", m);
        l.tcp_rcv_nxt = off_for(Some(HookId::TcpDestroySock), "tcp_sock", "rcv_nxt", m);
        l.tcp_copied_seq = off_for(Some(HookId::TcpDestroySock), "tcp_sock", "copied_seq", m);
        l.tcp_write_seq = off_for(Some(HookId::TcpDestroySock), "tcp_sock", "write_seq", m);
        l.tcp_snd_una = off_for(Some(HookId::TcpDestroySock), "tcp_sock", "snd_una", m);
        l.sk_forward_alloc = off("sock", "sk_forward_alloc", m);
        l.sk_rcvbuf = off("sock", "sk_rcvbuf", m);
        l.sk_sndbuf = off("sock", "sk_sndbuf", m);
        l.sk_wmem_alloc = off("sock", "sk_wmem_alloc", m);
        l.sk_drops = off("sock", "sk_drops", m);
        // 6.18+ only; absent before, which is no loss (sk_drops is the figure).
        if let Ok(o) = self.offset_of("sock", "sk_drop_counters") {
            l.sk_drop_counters = o;
            l.ndc_drops0 = off("numa_drop_counters", "drops0", m);
            l.ndc_drops1 = off("numa_drop_counters", "drops1", m);
        }
        // The in-kernel census' (each has been there since well before
        // iterators, 5.9; a miss only leaves the census to sock_diag).
        l.sk_socket = off_for(None, "sock", "sk_socket", m);
        l.sk_ack_backlog = off("sock", "sk_ack_backlog", m);
        l.sk_max_ack_backlog = off("sock", "sk_max_ack_backlog", m);
        l.tw_substate = off("inet_timewait_sock", "tw_substate", m);
        l.net_inum = match (
            self.offset_of("net", "ns"),
            self.offset_of("ns_common", "inum"),
        ) {
            (Ok(a), Ok(b)) => a + b,
            (Err(e), _) | (_, Err(e)) => {
                missing.push((None, format!("{e:#}")));
                NO_OFFSET
            }
        };
        let m = &mut *missing;
        l.proto_memory_allocated = off("proto", "memory_allocated", m);
        l.proto_sysctl_mem = off("proto", "sysctl_mem", m);
        l.skb_sk = off_for(Some(HookId::KfreeSkb), "sk_buff", "sk", m);
        l.skb_truesize = off_for(Some(HookId::KfreeSkb), "sk_buff", "truesize", m);
        l.skb_len = off_for(Some(HookId::KfreeSkb), "sk_buff", "len", m);
        l.proto_memory_pressure =
            off_for(Some(HookId::MemoryPressure), "proto", "memory_pressure", m);
        l.nhc_dev = off_for(
            Some(HookId::RouteExceptionV4),
            "fib_nh_common",
            "nhc_dev",
            m,
        );
        l.netdev_name = off("net_device", "name", m);
        l.rt6_dst = off_for(
            Some(HookId::RouteExceptionV6),
            "rt6_info",
            "rt6i_dst.addr",
            m,
        );
        l.rt6_gateway = off_for(
            Some(HookId::RouteExceptionV6),
            "rt6_info",
            "rt6i_gateway",
            m,
        );
        l.rt6_dev = off_for(Some(HookId::RouteExceptionV6), "rt6_info", "dst.dev", m);
        l.rt6_metrics = off_for(
            Some(HookId::RouteExceptionV6),
            "rt6_info",
            "dst._metrics",
            m,
        );
        // RTAX_MTU is uapi (rtnetlink), so it is ABI like the TCP states;
        // struct dst_metrics stores RTAX_n at index n-1.
        l.rtax_mtu_index = 1;
    }

    /// Raw tracepoint argument positions and enum values; returns
    /// `enum skb_drop_reason` value → name.
    fn resolve_tracepoints(&self, l: &mut KernelLayout, missing: &mut Notes) -> Vec<(u32, String)> {
        let position = |tp: &str, wanted: &str, missing: &mut Notes| -> u32 {
            let hook = HookId::of_tracepoint(tp);
            match self.tracepoint_args(tp) {
                Ok(args) => match args.iter().position(|a| a == wanted) {
                    Some(i) => i as u32,
                    None => {
                        missing.push((
                            hook,
                            format!("tracepoint {tp} has no `{wanted}` argument on this kernel"),
                        ));
                        NO_ARG
                    }
                },
                Err(e) => {
                    missing.push((hook, format!("{e:#}")));
                    NO_ARG
                }
            }
        };
        l.kfree_skb_reason_arg = position("kfree_skb", "enum skb_drop_reason", missing);
        // rx_sk is the only `struct sock *` kfree_skb passes (6.12+); older
        // kernels leave skb->sk as the only way to the socket.
        l.kfree_skb_rx_sk_arg = match self.tracepoint_args("kfree_skb") {
            Ok(args) => args
                .iter()
                .position(|a| a == "struct sock *")
                .map_or(NO_ARG, |i| i as u32),
            Err(_) => NO_ARG,
        };
        l.send_reset_reason_arg = position("tcp_send_reset", "enum sk_rst_reason", missing);
        match self.enum_value("sk_rst_reason", RST_REASON_ABORT_ON_MEMORY) {
            Ok(Some(v)) => l.rst_reason_abort_on_memory = v,
            Ok(None) => missing.push((
                Some(HookId::TcpCheckOom),
                format!("enum sk_rst_reason has no {RST_REASON_ABORT_ON_MEMORY}"),
            )),
            Err(e) => missing.push((Some(HookId::TcpCheckOom), format!("{e:#}"))),
        }

        let mut drop_reason_names = Vec::new();
        match self.enum_members("skb_drop_reason") {
            Ok(members) => {
                for (name, v) in members {
                    if MEMORY_DROP_REASONS.contains(&name.as_str()) {
                        l.select_drop_reason(v);
                    }
                    drop_reason_names.push((v, drop_reason_name(&name).to_string()));
                }
            }
            Err(e) => missing.push((Some(HookId::KfreeSkb), format!("{e:#}"))),
        }
        drop_reason_names
    }
}

impl KernelBtf {
    /// Where tcp_too_many_orphans() gets its figure on this kernel, by the
    /// type BTF gives `tcp_orphan_count`, and the addresses kallsyms gives.
    fn resolve_orphans(
        &self,
        l: &mut KernelLayout,
        syms: &Kallsyms,
        m: &mut Vec<(Option<HookId>, String)>,
    ) {
        let oom = Some(HookId::TcpCheckOom);
        // pahole only puts per-CPU variables in BTF; a plain global (the old
        // percpu_counter) is absent. Then the symbols decide: only the
        // per-CPU shape has tcp_orphan_cache.
        let shape = self.var_type("tcp_orphan_count").or_else(|| {
            if syms.address("tcp_orphan_cache").is_some() {
                Some("int".into())
            } else if syms.address("tcp_orphan_count").is_some() {
                Some("struct percpu_counter".into())
            } else {
                None
            }
        });
        let (sym, shape) = match shape.as_deref() {
            Some("unsigned int") | Some("int") => ("tcp_orphan_cache", ORPHANS_CACHE),
            Some("struct percpu_counter") => {
                match self.offset_of("percpu_counter", "count") {
                    Ok(o) => l.percpu_counter_count = o,
                    Err(e) => m.push((oom, format!("{e:#}"))),
                }
                ("tcp_orphan_count", ORPHANS_PERCPU_COUNTER)
            }
            other => {
                m.push((oom, format!(
                    "tcp_check_oom: orphan counter shape unknown (tcp_orphan_count is {other:?} in BTF); orphans read from /proc/net/sockstat instead"
                )));
                ("", ORPHANS_UNKNOWN)
            }
        };
        if shape != ORPHANS_UNKNOWN {
            match syms.address(sym) {
                Some(a) => {
                    l.orphan_shape = shape;
                    l.orphans_addr = a;
                }
                None => m.push((oom, format!(
                    "tcp_check_oom: {sym} not in /proc/kallsyms (needs CONFIG_KALLSYMS_ALL); orphans read from /proc/net/sockstat instead"
                ))),
            }
        }
        match syms.address("sysctl_tcp_max_orphans") {
            Some(a) => l.max_orphans_addr = a,
            None => m.push((
                oom,
                "tcp_check_oom: sysctl_tcp_max_orphans not in /proc/kallsyms; tcp_max_orphans read from /proc/sys instead".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against this machine's own BTF: the offsets must be the ones
    /// the kernel uses, which `struct sock`'s fixed prefix lets us check.
    #[test]
    fn resolves_running_kernel() {
        let Ok(btf) = KernelBtf::load() else {
            eprintln!("no kernel BTF here; skipped");
            return;
        };
        let r = btf.resolve(0, &Kallsyms::load(&[]).unwrap_or_default());
        assert!(r.sock_min_sndbuf > 4096 && r.sock_min_sndbuf < 8192);
        assert!(btf.func_params("tcp_check_oom").is_some());
        assert_eq!(btf.func_params("tcp_check_oom").unwrap()[1].0, "shift");
        assert!(btf.var_type("tcp_orphan_count").is_some());
        let l = r.layout;
        // sock_common starts struct sock; skc_daddr is its first member.
        assert_eq!(l.sk_daddr, 0);
        assert_eq!(l.sk_rcv_saddr, 4);
        assert_ne!(l.sk_wmem_queued, NO_OFFSET);
        assert_ne!(l.sk_rmem_alloc, NO_OFFSET);
        assert!(l.sk_family < l.sk_wmem_queued);
        assert_ne!(l.skb_sk, NO_OFFSET);
        assert_ne!(l.kfree_skb_reason_arg, NO_ARG);
        assert!(r
            .drop_reason_names
            .iter()
            .any(|(_, n)| n == "SOCKET_RCVBUFF"));
        let args = btf.tracepoint_args("inet_sock_set_state").unwrap();
        assert_eq!(args[0], "struct sock *");
        assert_eq!(args.len(), 3);
    }
}
