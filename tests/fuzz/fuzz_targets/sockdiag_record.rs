//! One sock_diag response (inet_diag_msg and its attributes), TCP or UDP.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&proto, payload)) = data.split_first() else {
        return;
    };
    let proto = if proto & 1 == 0 { 6 } else { 17 };
    if let Ok(r) = netmem::sources::sockdiag::record(proto, payload) {
        // The grouping rule and the orphan rule take whatever parsed.
        let _ = netmem::model::group::is_orphan(&r);
        let _ = netmem::model::group::group_of(&r, &Default::default());
    }
});
