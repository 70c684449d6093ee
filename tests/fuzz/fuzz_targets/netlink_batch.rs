//! One received netlink batch, walked message by message; each data
//! message's payload also goes through the sock_diag record reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netmem::sources::netlink::walk_batch(data, &mut |b| {
        let _ = netmem::sources::sockdiag::record(6, b.payload());
        Ok(())
    });
});
