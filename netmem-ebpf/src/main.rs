//! netmem's kernel programs. Each hook family lives in its own module, with
//! its own logic and maps; the shared pieces (the BTF-resolved layout,
//! socket reading, counting, streaming) are in `sock.rs`. Which program
//! serves which hook on which tier is decided by userspace's hook catalog
//! (`netmem/src/hooks/catalog.rs`). Frequent hooks only bump per-CPU counters; rare ones also
//! stream an [`Event`](netmem_common::Event) through `EVENTS`.
#![no_std]
#![no_main]

mod buffers;
mod census;
mod drops;
mod oom;
mod orphans;
mod pressure;
mod resets;
mod routes;
mod sock;
mod sock_state;
mod synthetic;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
