//! /proc/kallsyms as netmem reads it (only the symbols it wants).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let wanted = netmem::hooks::catalog::wanted_symbols();
    let k = netmem::kernel::kallsyms::Kallsyms::parse(data, &wanted);
    for w in &wanted {
        let _ = k.address(w);
        let _ = k.has_function(w);
    }
});
