//! Kernel BTF as netmem reads it: parse, then resolve every layout,
//! tracepoint prototype and enum netmem asks for.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(btf) = netmem::kernel::btf::KernelBtf::from_bytes(data) {
        let syms = netmem::kernel::kallsyms::Kallsyms::default();
        let _ = btf.resolve(0, &syms);
        let _ = btf.func_params("tcp_check_oom");
        let _ = btf.tracepoint_args("kfree_skb");
    }
});
