//! The ring's limits and an incident's life, without a kernel: intervals
//! of the model handed to the sink, files in a temp dir.

use std::time::{Duration, SystemTime};

use super::*;
use crate::output::incidents::Request;

fn sink(dir: &std::path::Path, keep: u64, ring_max: u64, after: u64) -> RecorderSink {
    RecorderSink::new(
        Config {
            dir: dir.to_path_buf(),
            keep: Duration::from_secs(keep),
            ring_max,
            after: Duration::from_secs(after),
            incidents_max: 10,
            incidents_max_bytes: 1 << 30,
        },
        Arc::new(Incidents::new(dir.to_path_buf())),
        Arc::new(|_: &str, _: &crate::model::names::Names| Vec::new()),
    )
    .unwrap()
}

fn interval(t: SystemTime) -> Interval {
    let mut i = Interval::live_for_tests(Vec::new());
    i.ts = t;
    i
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = zstd::stream::decode_all(&std::fs::read(path).unwrap()[..]).unwrap();
    String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_ring_keeps_its_time_and_its_bytes() {
    let d = tempfile::tempdir().unwrap();
    // Far in the future: each interval's own time rules the ring.
    let t0 = SystemTime::now() + Duration::from_secs(3600);
    let mut s = sink(d.path(), 10, u64::MAX, 0);
    for n in 0..30 {
        s.interval(&interval(t0 + Duration::from_secs(n))).unwrap();
    }
    // 10 s kept: the frames of the last 11 seconds (both ends).
    assert_eq!(s.ring_size().0, 11);
    let mut s = sink(d.path(), 3600, 1, 0);
    for n in 0..5 {
        s.interval(&interval(t0 + Duration::from_secs(n))).unwrap();
    }
    // One byte: not even one frame fits.
    assert_eq!(s.ring_size(), (0, 0));
}

#[test]
fn a_trigger_during_an_incident_extends_it() {
    let d = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now() + Duration::from_secs(3600);
    let mut s = sink(d.path(), 60, u64::MAX, 5);
    s.host(&Host::default()).unwrap();
    s.coverage(&[]).unwrap();
    let at = |n: u64| t0 + Duration::from_secs(n);
    for n in 0..3 {
        s.interval(&interval(at(n))).unwrap();
    }
    s.incidents.request(Request::Manual("test"));
    s.interval(&interval(at(3))).unwrap();
    // 4 s later, a second request: the same incident, until 9 + 5.
    s.interval(&interval(at(7))).unwrap();
    s.incidents.request(Request::Manual("again"));
    s.interval(&interval(at(9))).unwrap();
    s.interval(&interval(at(13))).unwrap();
    assert!(s.open.is_some(), "closed before its extended end");
    s.interval(&interval(at(14))).unwrap();
    assert!(s.open.is_none());
    let list = s.incidents.list();
    assert_eq!(list.len(), 1);
    assert!(!list[0].ongoing);
    let path = d.path().join(format!("{}.jsonl.zst", list[0].id));
    let l = lines(&path);
    assert_eq!(l[0]["type"], "host");
    assert_eq!(l[1]["type"], "probes");
    let inc: Vec<&serde_json::Value> = l.iter().filter(|x| x["type"] == "incident").collect();
    assert_eq!(inc.len(), 2);
    assert_eq!(inc[0]["started"], true);
    assert_eq!(inc[0]["detail"], "asked for by test");
    assert_eq!(inc[1]["started"], false);
    assert_eq!(l.iter().filter(|x| x["type"] == "context").count(), 8);
    assert!(l.iter().any(|x| x["type"] == "doctor"));
    // Only the file: no temporary name left.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn a_forged_kernel_line_is_no_trigger() {
    let d = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now();
    let mut s = sink(d.path(), 60, u64::MAX, 0);
    s.incidents.request(Request::KernelLog {
        facility: 1,
        message: Some("too many orphaned sockets"),
    });
    s.interval(&interval(t0)).unwrap();
    assert!(s.incidents.list().is_empty());
    assert!(s.kernel_log.is_empty(), "believed");
    s.incidents.request(Request::KernelLog {
        facility: 0,
        message: Some("too many orphaned sockets"),
    });
    s.interval(&interval(t0)).unwrap();
    s.interval(&interval(t0 + Duration::from_secs(1))).unwrap();
    let list = s.incidents.list();
    assert_eq!(list.len(), 1);
    assert!(list[0].id.ends_with("-kernel-log"));
}

#[test]
fn a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = crate::fsutil::private_dir(&open).unwrap_err().to_string();
    assert!(e.contains("not a directory of netmem's own"), "{e}");
    let link = d.path().join("link");
    std::os::unix::fs::symlink(d.path(), &link).unwrap();
    let e = crate::fsutil::private_dir(&link).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    let new = d.path().join("new");
    crate::fsutil::private_dir(&new).unwrap();
    let mode = std::fs::metadata(&new).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
