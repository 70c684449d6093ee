//! Every input that once crashed a fuzz target (`cargo xtask fuzz`), replayed
//! through the same entry point in an ordinary test build: each must now be
//! refused cleanly. The inputs live in tests/fuzz/regressions/<target>/.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .map(|p| {
                    let b = std::fs::read(&p).unwrap();
                    (p, b)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn btf_crashes_are_errors() {
    let cases = inputs("btf");
    assert!(!cases.is_empty(), "no btf regressions found");
    for (p, data) in cases {
        // Corrupt BTF: an error, not a panic (a malformed header once made
        // the parser's offset arithmetic overflow).
        let r = netmem::kernel::btf::KernelBtf::from_bytes(&data);
        assert!(r.is_err(), "{} parsed as BTF", p.display());
    }
}

#[test]
fn route_message_crashes_are_skipped() {
    let cases = inputs("route_message");
    assert!(!cases.is_empty(), "no route_message regressions found");
    for (_, data) in cases {
        let Some((&fam, payload)) = data.split_first() else {
            continue;
        };
        let family = if fam & 1 == 0 { 2 } else { 10 };
        // A short RTA_FLOW once panicked inside netlink-packet-route.
        let _ = netmem::sources::routes::parse_route(family, payload);
    }
}

#[test]
fn netlink_batch_crashes_are_errors() {
    let cases = inputs("netlink_batch");
    assert!(!cases.is_empty(), "no netlink_batch regressions found");
    for (_, data) in cases {
        // An NLMSG_ERROR carrying i32::MIN once overflowed its negation.
        let _ = netmem::sources::netlink::walk_batch(&data, &mut |b| {
            let _ = netmem::sources::sockdiag::record(6, b.payload());
            Ok(())
        });
    }
}

#[test]
fn recording_crashes_are_read() {
    let cases = inputs("recording");
    assert!(!cases.is_empty(), "no recording regressions found");
    for (p, data) in cases {
        // A pressure period ending a year after the last interval once
        // overflowed plotters' pixel arithmetic; intervals four thousand
        // years apart once ticked the time axis daily (1.5 million labels).
        if let Ok(run) = netmem::report::Run::read_from(&data[..], "fuzz") {
            let page =
                netmem::report::render(&[run]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            assert!(
                page.len() < 1 << 20,
                "{}: a page of {} bytes",
                p.display(),
                page.len()
            );
        }
    }
}
