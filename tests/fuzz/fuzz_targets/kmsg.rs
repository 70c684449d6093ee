//! One /dev/kmsg record, as the polled abort reader classifies it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netmem::sources::kernel_log::classify_record(data);
});
