//! One line per event, the probes report and trace's coverage line.

use serde_json::Value;

use crate::format::{printable, rfc3339, Shown};
use crate::hooks::{HookStatus, Tier};
use crate::model::names::Names;
use crate::model::Event;
use crate::output::json::event_object;

/// One line per event: time, kind and group first, then every field the
/// JSON line has, as `key=value` words: an object's fields as
/// `key.field=value`, a list as `key=a,b`, unknown (null) fields left out.
/// Its group is named by `names`.
pub fn event_line(e: &Event, names: &Names) -> String {
    let o = event_object(e, names);
    let group = e
        .group
        .as_ref()
        .map(|g| names.group_name(g))
        .unwrap_or_default();
    let mut s = format!(
        "{} {:<17} {:<24}",
        rfc3339(e.ts),
        e.body.kind().name(),
        Shown(&group)
    );
    // What the line is about first (which sockets, why), then the rest
    // in the JSON line's (alphabetical) order.
    const FIRST: [&str; 6] = ["local", "remote", "reason", "cause", "direction", "bytes"];
    for k in FIRST {
        if let Some(val) = o.get(k) {
            push_words(&mut s, k, val);
        }
    }
    for (k, val) in &o {
        if matches!(k.as_str(), "type" | "ts" | "event" | "group") || FIRST.contains(&k.as_str()) {
            continue;
        }
        push_words(&mut s, k, val);
    }
    s
}

/// ` key=value` for one JSON field (see [`event_line`]).
fn push_words(s: &mut String, key: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, x) in m {
                push_words(s, &format!("{key}.{k}"), x);
            }
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| Shown(&scalar(x)).to_string()).collect();
            *s += &format!(" {key}={}", word(&items.join(",")));
        }
        x => *s += &format!(" {key}={}", word(&Shown(&scalar(x)).to_string())),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A value already [`Shown`] (escaped and cut) as one word: quoted when
/// it is empty or holds a space, a quote or an escape (a name from a
/// process or a proxy's configuration), a quote in it escaped.
fn word(x: &str) -> String {
    if x.is_empty()
        || x.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", x.replace('"', "\\\""))
    } else {
        x.to_string()
    }
}

pub fn report_table(status: &[HookStatus]) -> String {
    let mut s = format!("{:<28} {:<11} {}\n", "HOOK", "TIER", "VIA");
    for st in status {
        // The kernel's and loader's words, escaped like every message.
        s += &format!(
            "{:<28} {:<11} {}\n",
            st.hook,
            st.tier.map_or("NONE", Tier::name),
            printable(&st.via)
        );
        for u in &st.unavailable {
            s += &format!(
                "{:<28}   not {}: {}\n",
                "",
                u.tier.name(),
                printable(&u.reason)
            );
        }
        if let Some(n) = &st.note {
            s += &format!("{:<28}   note: {}\n", "", printable(n));
        }
    }
    s
}

/// `probes`' census row, in the hook table's columns.
pub fn census_row(c: &crate::hooks::status::CensusStatus) -> String {
    let mut s = format!(
        "{:<28} {:<11} {}\n",
        "census",
        c.tier.name(),
        printable(&c.via())
    );
    if let Some(why) = &c.why_not {
        s += &format!("{:<28}   not bpf_iter: {}\n", "", printable(why));
    }
    s
}

/// One line for the start of `trace`: what is covered, and how.
pub fn coverage_line(status: &[HookStatus]) -> String {
    let ok = status.iter().filter(|s| s.tier.is_some()).count();
    let tiers: Vec<String> = status
        .iter()
        .map(|s| {
            // The catalog's name, as `probes` and the metrics spell it.
            format!("{}={}", s.hook, s.tier.map_or("NONE", Tier::name))
        })
        .collect();
    let mut parts = vec![format!(
        "probes: {ok}/{} hooks served: {}",
        status.len(),
        tiers.join(" ")
    )];
    // Hooks not served for the same reason (no BTF: most of them) are
    // named together, so the reason is said once.
    let mut unserved: Vec<(String, Vec<&str>)> = Vec::new();
    for s in status.iter().filter(|s| s.tier.is_none()) {
        let why = s
            .unavailable
            .iter()
            .map(|u| u.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        match unserved.iter_mut().find(|(w, _)| *w == why) {
            Some((_, hooks)) => hooks.push(s.hook),
            None => unserved.push((why, vec![s.hook])),
        }
    }
    for (why, hooks) in &unserved {
        parts.push(format!(
            "{} NOT served: {}",
            hooks.join(", "),
            printable(why)
        ));
    }
    for s in status {
        if let (Some(_), Some(n)) = (&s.tier, &s.note) {
            parts.push(format!("{} degraded: {}", s.hook, printable(n)));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{HookId, Unavailable};

    #[test]
    fn coverage_names_tiers_and_gaps() {
        let st = vec![
            HookStatus {
                id: HookId::TcpCheckOom,
                hook: "tcp_check_oom",
                tier: Some(Tier::Tracepoint),
                via: String::new(),
                unavailable: vec![],
                note: Some("shift unknown".into()),
            },
            HookStatus {
                id: HookId::KfreeSkb,
                hook: "skb:kfree_skb",
                tier: None,
                via: String::new(),
                unavailable: vec![Unavailable {
                    tier: Tier::Tracepoint,
                    reason: "gone".into(),
                }],
                note: None,
            },
        ];
        let line = coverage_line(&st);
        assert!(line.contains("1/2 hooks served"));
        assert!(line.contains("tcp_check_oom=tracepoint"));
        assert!(line.contains("skb:kfree_skb=NONE"));
        assert!(line.contains("skb:kfree_skb NOT served: gone"));
        assert!(line.contains("tcp_check_oom degraded: shift unknown"));
    }

    #[test]
    fn fields_are_words_not_json() {
        let mut s = String::new();
        let v =
            serde_json::json!({"pid": null, "comm": "a b\u{1b}", "via": "closer", "ids": [1, 2]});
        for (k, x) in v.as_object().unwrap() {
            push_words(&mut s, k, x);
        }
        push_words(&mut s, "owner", &v);
        assert_eq!(
            s,
            r#" comm="a b\u{1b}" ids=1,2 via=closer owner.comm="a b\u{1b}" owner.ids=1,2 owner.via=closer"#
        );
    }
}
