//! Route exceptions, what replaced the IPv4 route cache: next-hop exceptions
//! (PMTU or redirect) for IPv4, RTF_CACHE clones for IPv6. Not counted per
//! socket group: they belong to a destination.
use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use netmem_common::{payload, RouteInfo, AF_INET, AF_INET6, NO_OFFSET};

use crate::sock::{emit_route, lay, read};

#[inline(always)]
fn dev_name(dev: u64, out: &mut [u8; 16]) {
    if dev != 0 && lay!(netdev_name) != NO_OFFSET {
        *out = read(dev, lay!(netdev_name));
    }
}

// update_or_create_fnhe(struct fib_nh_common *nhc, __be32 daddr, __be32 gw,
//                       u32 pmtu, bool lock, unsigned long expires)
#[inline(always)]
fn fnhe(nhc: u64, daddr: u64, gw: u64, pmtu: u64) {
    let p = payload::RouteException {
        family: AF_INET as i64,
        pmtu: pmtu as u32 as i64,
    };
    emit_route(p, |r: &mut RouteInfo| {
        r.dst[..4].copy_from_slice(&(daddr as u32).to_ne_bytes());
        r.gateway[..4].copy_from_slice(&(gw as u32).to_ne_bytes());
        dev_name(read(nhc, lay!(nhc_dev)), &mut r.dev);
    });
}

#[fentry]
pub fn fnhe_fentry(ctx: FEntryContext) -> i32 {
    fnhe(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

#[kprobe]
pub fn fnhe_kprobe(ctx: ProbeContext) -> u32 {
    let a = |n| ctx.arg::<u64>(n).unwrap_or(0);
    fnhe(a(0), a(1), a(2), a(3));
    0
}

// rt6_insert_exception(struct rt6_info *nrt, const struct fib6_result *res).
// The PMTU is already in nrt's metrics; a redirect clone has none.
#[inline(always)]
fn rt6(nrt: u64) {
    let metrics: u64 = read(nrt, lay!(rt6_metrics));
    // dst->_metrics keeps flags in its low bits (DST_METRICS_FLAGS).
    let mtu: u32 = read(metrics & !3u64, lay!(rtax_mtu_index) * 4);
    let p = payload::RouteException {
        family: AF_INET6 as i64,
        pmtu: mtu as i64,
    };
    emit_route(p, |r: &mut RouteInfo| {
        r.dst = read(nrt, lay!(rt6_dst));
        r.gateway = read(nrt, lay!(rt6_gateway));
        dev_name(read(nrt, lay!(rt6_dev)), &mut r.dev);
    });
}

#[fentry]
pub fn rt6_exception_fentry(ctx: FEntryContext) -> i32 {
    rt6(ctx.arg(0));
    0
}

#[kprobe]
pub fn rt6_exception_kprobe(ctx: ProbeContext) -> u32 {
    rt6(ctx.arg(0).unwrap_or(0));
    0
}
