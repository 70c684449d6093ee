//! The /proc texts netmem reads: sockstat(6), netstat (TcpExt), protocols,
//! rt6_stats, and the tcp_mem/udp_mem triples.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = netmem::sources::procfs::parse_sockstat(text);
    let _ = netmem::sources::procfs::sockstat_fields(text);
    let _ = netmem::sources::procfs::parse_triple(text);
    let _ = netmem::polling::aborts::parse_abort_on_memory(text);
    let _ = netmem::polling::pressure::parse_tcp_pressure(text);
    let _ = netmem::sources::routes::parse_rt6_cached(text);
});
