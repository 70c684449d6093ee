//! Old and damaged lines read as they always did.

use crate::contract::Line;

/// Old or damaged lines read as the string-keyed readers read them: a
/// mistyped field is absent, the rest of the line still reads.
#[test]
fn lax_lines_keep_what_reads() {
    let l = Line::read(serde_json::json!({
        "type": "group", "group": "g", "sockets": "x", "orphans": -1,
        "rmem_bytes": 1.5, "wmem_queued_bytes": 7, "proxy_frontends": ["a", 3, "b"],
        "owners": {"processes": [1, {"comm": "c"}]}
    }))
    .unwrap();
    let Line::Group(g) = l else {
        panic!("a group line")
    };
    assert_eq!(g.group.as_deref(), Some("g"));
    assert_eq!((g.sockets, g.orphans, g.rmem_bytes), (None, None, None));
    assert_eq!(g.memory(), 7);
    assert_eq!(g.proxy.proxy_frontends, Some(vec!["a".into(), "b".into()]));
    let p = g.owners.unwrap().processes.unwrap();
    assert_eq!(
        (p[0].comm.as_deref(), p[1].comm.as_deref()),
        (None, Some("c"))
    );
    assert_eq!(
        Line::read(serde_json::json!({"type": "newer"})),
        Some(Line::Other)
    );
    assert_eq!(Line::read(serde_json::json!({"type": 1})), None);
    assert_eq!(Line::read(serde_json::json!([1])), None);
    let e = Line::read(
        serde_json::json!({"type": "event", "event": "abort_on_memory",
        "orphans": 18446744073709551615u64, "shift": -1, "tcp_mem_pages": [1, -2]}),
    )
    .unwrap();
    let Line::Event(e) = e else {
        panic!("an event line")
    };
    let b = e.body;
    assert_eq!(b.orphans.flatten().and_then(|n| n.u64()), Some(u64::MAX));
    assert_eq!(b.orphans.flatten().and_then(|n| n.i64()), None);
    assert_eq!(b.shift.flatten().and_then(|n| n.i64()), Some(-1));
    assert_eq!(b.tcp_mem_pages.as_ref().and_then(|p| p.triple()), None);
    assert_eq!(b.tcp_mem_pages.and_then(|p| p.max_i64()), None);
}
