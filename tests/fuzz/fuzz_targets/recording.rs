//! A recording from anyone, read as `netmem report` and `netmem doctor
//! --from` read it (the doctor's window and findings, the timeline, the
//! HTML), within `recording::MEMORY_BUDGET` of heap whatever the bytes: a
//! counting allocator aborts, which libFuzzer keeps as a crash, when the
//! live heap would pass it. (zstd's own buffers are C allocations, bounded
//! by `ZSTD_WINDOW_LOG_MAX`, and not counted here.)
#![no_main]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use netmem::sources::recording::MEMORY_BUDGET;

struct Budget;

static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Budget {
    /// Counts `n` more bytes; past the budget the process ends at once (a
    /// panic would allocate).
    fn take(n: usize) {
        if (LIVE.fetch_add(n, Ordering::Relaxed) + n) as u64 > MEMORY_BUDGET {
            std::process::abort();
        }
    }
}

// SAFETY: every call is forwarded to the system allocator with the layout
// it was given; only the count is added.
unsafe impl GlobalAlloc for Budget {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        Budget::take(l.size());
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        Budget::take(l.size());
        // SAFETY: as alloc.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            Budget::take(new - l.size());
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Budget = Budget;

fuzz_target!(|data: &[u8]| {
    // What `report` does with a file (the doctor's window and findings
    // included), then the page.
    if let Ok(run) = netmem::report::Run::read_from(data, "fuzz") {
        let _ = netmem::report::render(&[run]);
    }
});
