//! An RTM_NEWROUTE payload from a cached-route dump.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&fam, payload)) = data.split_first() else {
        return;
    };
    let family = if fam & 1 == 0 { 2 } else { 10 };
    let _ = netmem::sources::routes::parse_route(family, payload);
});
