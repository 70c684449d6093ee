//! netmem's output read back: a command's JSON lines, the last interval's
//! groups, one group by name.

use std::process::{Command, Output};

use serde_json::Value;

pub fn run_ok(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn ok_json(o: &Output) -> Vec<Value> {
    assert!(
        o.status.success(),
        "netmem failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json_lines(&String::from_utf8_lossy(&o.stdout))
}

/// The group lines of the last interval (or of a snapshot).
pub fn last_groups(lines: &[Value]) -> Vec<Value> {
    let last_ctx = lines
        .iter()
        .rposition(|v| v["type"] == "context")
        .expect("no context line");
    lines[last_ctx..]
        .iter()
        .filter(|v| v["type"] == "group")
        .cloned()
        .collect()
}

pub fn group<'a>(groups: &'a [Value], name: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {groups:#?}"))
}
