//! README's JSON section and the types name the same fields.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::README;
use crate::contract::Line;

/// Every key of `v`, nested objects' (and lists' objects') included, but
/// not the keys of a map of figures by name (`cached`), which takes any.
fn all_keys(v: &Value, into: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                into.insert(k.clone());
                if k != "cached" {
                    all_keys(v, into);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| all_keys(v, into)),
        _ => {}
    }
}

/// Words README's JSON section writes in backticks that are values (or
/// kinds, tiers, sysctls), not fields; and a few fields README names
/// under another line type (`tw` of the context line, by a group's
/// `time_wait`).
const README_VALUES: &[&str] = &[
    "bpf_iter",
    "abort_on_memory",
    "aborted_on_memory",
    "all",
    "backend",
    "cgroup",
    "cgroup_socket_pressure",
    "client",
    "closer",
    "destroy_with_data",
    "exceed_buf_limit",
    "fentry",
    "global",
    "graceful",
    "haproxy",
    "host",
    "inet_child_forget",
    "ipv4",
    "ipv6",
    "kernel",
    "kprobe",
    "listen",
    "memory_pressure_enter",
    "memory_pressure_leave",
    "null",
    "orphan_born",
    "orphan_gone",
    "pmtu",
    "polling",
    "port",
    "procfs",
    "process",
    "proxy-backend",
    "recv",
    "redirect",
    "reset_or_timeout",
    "route_exception",
    "rcvqueue_full",
    "send",
    "server",
    "skb_drop",
    "sock",
    "sock_diag",
    "socket",
    "sockstat",
    "tcp_close",
    "tcp_disconnect",
    "tcp_mem",
    "tcp_send_reset",
    "tracepoint",
    "tw",
    "unattributed",
    "unknown",
    "false",
];

/// README's JSON section, line type by line type: each field it names
/// (a backticked name, or the names in a backticked `{...}` or `[{...}]`)
/// is a field of that type (what the types write when every field is
/// there), so README and the types cannot drift apart. The doctor's
/// bullet also describes its finding lines.
#[test]
fn every_field_readme_names_is_in_the_types() {
    let json = &README[README.find("## JSON lines").unwrap()..];
    let json = &json[..json[3..].find("\n## ").map_or(json.len(), |e| e + 3)];
    let mut host = BTreeSet::new();
    all_keys(
        &serde_json::to_value(crate::sources::host::Host::default()).unwrap(),
        &mut host,
    );
    let ident = |w: &str| {
        w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut missing = Vec::new();
    for chunk in json.split("\n- `\"").skip(1) {
        let tag = &chunk[..chunk.find('"').unwrap()];
        let mut words = BTreeSet::new();
        // The chunk starts inside the tag's backticks.
        for span in chunk.split('`').step_by(2).skip(1) {
            if ident(span) {
                words.insert(span);
            } else if span.starts_with('{') || span.starts_with("[{") {
                // Without the prose in parentheses.
                let mut bare = String::new();
                let mut depth = 0;
                for c in span.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        c if depth == 0 => bare.push(c),
                        _ => {}
                    }
                }
                words.extend(
                    bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| ident(w))
                        .map(|w| &span[span.find(w).unwrap()..][..w.len()]),
                );
            }
        }
        // Each field in turn of every JSON type, nested objects' too:
        // what reads is written.
        let mut fields = BTreeSet::new();
        let plain = [
            serde_json::json!("s"),
            serde_json::json!(1),
            serde_json::json!(true),
            serde_json::json!([1, 2, 3]),
            serde_json::json!(["s"]),
        ];
        let every = |t: &Value| -> Map<String, Value> {
            words.iter().map(|w| (w.to_string(), t.clone())).collect()
        };
        let mut tries: Vec<Value> = plain.to_vec();
        for t in &plain {
            let one = Value::Object(every(t));
            let list = Value::Array(vec![one.clone()]);
            // Two levels down (`route_exceptions.by_dst[].dst`).
            tries.push(Value::Object(every(&list)));
            tries.extend([one, list]);
        }
        let tags: &[&str] = if tag == "doctor" {
            &["doctor", "finding"]
        } else {
            &[tag]
        };
        for tag in tags {
            for t in &tries {
                let mut o = every(t);
                o.insert("type".into(), (*tag).into());
                let l = Line::read(Value::Object(o)).unwrap();
                assert_ne!(l, Line::Other, "README's {tag:?} is no line type");
                all_keys(&l.to_value(), &mut fields);
            }
        }
        for w in words {
            let known = fields.contains(w)
                || README_VALUES.contains(&w)
                // `{name: value}`: how README says a map of sysctls.
                || (tag == "host" && (host.contains(w) || ["name", "counter", "value"].contains(&w)));
            if !known {
                missing.push(format!("{tag}: {w}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README names fields the types lack: {missing:?}"
    );
}
