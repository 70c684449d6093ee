//! The configuration parser, the runtime API's answers and its bounded
//! exchange, on fixed text.

use super::*;
use super::{answers::*, api::*, config::*};

const CFG: &str = r#"
global
    maxconn 100
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats socket ipv4@127.0.0.1:9999 level admin
    tune.bufsize 32768
    tune.sndbuf.client 64k
    tune.rcvbuf.server 262144

defaults
    mode http

frontend fe_https
    bind :8443,:8444 ssl crt /x.pem   # two ports
    bind 127.0.0.1:8080
    bind unix@/run/fe.sock
    bind "${PORT}"
    default_backend app
    use_backend static if { path_beg /s }

frontend fe_b
    bind [::1]:8080 v4v6
    bind :9000-9002
    use_backend %[req.hdr(host)]

backend app
    server app1 10.0.3.17:9001 check
    server app2 10.0.3.18:9001
    server app3 app3.internal:9001
    server-template tpl 3 _http._tcp.app.local resolvers dns

backend static
    server st1 10.0.3.18:9001
    server st2 10.0.3.19

listen stats 0.0.0.0:7000
    server s1 127.0.0.3:80
"#;

#[test]
fn configuration_binds_servers_routes_and_tunes() {
    let c = parse_config(CFG, None);
    let ports = |f: &str| -> Vec<u16> {
        c.map
            .listeners
            .iter()
            .filter(|l| l.frontend == f)
            .map(|l| l.port)
            .collect()
    };
    assert_eq!(ports("fe_https"), vec![8443, 8444, 8080]);
    assert_eq!(ports("fe_b"), vec![8080, 9000, 9001, 9002]);
    assert_eq!(ports("stats"), vec![7000]);
    let v6 = c
        .map
        .listeners
        .iter()
        .find(|l| l.frontend == "fe_b")
        .unwrap();
    assert_eq!(v6.addr, Some("::1".parse().unwrap()));
    let servers: Vec<String> = c
        .map
        .servers
        .iter()
        .map(|s| format!("{}/{} {}", s.backend, s.server, s.addr))
        .collect();
    assert_eq!(
        servers,
        vec![
            "app/app1 10.0.3.17:9001",
            "app/app2 10.0.3.18:9001",
            "static/st1 10.0.3.18:9001",
            "stats/s1 127.0.0.3:80"
        ]
    );
    assert_eq!(
        c.map.backends["app"].iter().collect::<Vec<_>>(),
        vec!["fe_https"]
    );
    assert_eq!(c.map.backends["static"].len(), 1);
    assert_eq!(c.map.tune, {
        use crate::model::proxy::{Meaning, Side, Tune};
        let mut t = Tune::new(KNOBS);
        t.set(Meaning::ProxyBuffer, Some(32768));
        t.set(Meaning::Sndbuf(Side::Client), Some(65536));
        t.set(Meaning::Rcvbuf(Side::Server), Some(262144));
        t.set_known(Side::Client, true);
        t.set_known(Side::Server, true);
        t
    });
    assert_eq!(
        c.map.tune.side(crate::model::proxy::Side::Client),
        crate::model::proxy::SideTune {
            rcvbuf: None,
            sndbuf: Some(65536),
            known: true,
        }
    );
    assert_eq!(
        c.stats_sockets,
        vec![
            Api::Unix(PathBuf::from("/run/haproxy/admin.sock")),
            Api::Tcp("127.0.0.1:9999".parse().unwrap()),
        ]
    );
    let notes = c.map.notes.join("\n");
    for want in [
        "${PORT}",
        "chosen per request",
        "app/app3",
        "server-template",
    ] {
        assert!(notes.contains(want), "{want} in {notes}");
    }
}

#[test]
fn stats_socket_addresses() {
    let tcp = |a: &str| match Api::tcp(a) {
        Some(Api::Tcp(a)) => Some(a.to_string()),
        _ => None,
    };
    assert_eq!(
        tcp("ipv4@127.0.0.1:9999").as_deref(),
        Some("127.0.0.1:9999")
    );
    assert_eq!(tcp("10.0.0.1:9999").as_deref(), Some("10.0.0.1:9999"));
    // A wildcard is reached through loopback, of its family.
    assert_eq!(tcp("ipv4@:9999").as_deref(), Some("127.0.0.1:9999"));
    assert_eq!(tcp("*:9999").as_deref(), Some("127.0.0.1:9999"));
    assert_eq!(tcp("ipv6@:::9999").as_deref(), Some("[::1]:9999"));
    assert_eq!(tcp("[::1]:9999").as_deref(), Some("[::1]:9999"));
    for not in [
        "/run/haproxy.sock",
        "haproxy.cfg",
        "conf.d",
        "localhost:9999",
        "127.0.0.1:1-3",
        "abns@x",
        "127.0.0.1",
    ] {
        assert_eq!(tcp(not), None, "{not}");
    }
    let c = parse_config("global\n  stats socket abns@admin level admin\n", None);
    assert!(c.stats_sockets.is_empty());
    assert!(c.map.notes[0].contains("abns@admin"), "{:?}", c.map.notes);
}

#[test]
fn runtime_answers() {
    let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n\
4 app 1 app1 127.0.0.1 2 0 1 1 2 1 0 2 0 0 0 0 - 9001 -\n\
4 app 3 tpl1 0.0.0.0 0 0 1 1 2 1 0 2 0 0 0 0 app.local 0 -\n\
4 app 4 v6 fd00::7 2 0 1 1 2 1 0 2 0 0 0 0 - 443 -\n";
    let s = parse_servers_state(state).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].addr, "[fd00::7]:443".parse().unwrap());
    assert!(parse_servers_state("2\n# x\n").is_err());
    let fd = "      4 : st=0x120023(Cl heopi W:sRa R:sRA) ref=0 gid=1 iocb=0x1(sock_accept_iocb) l.st=RDY fe=fe_https fam=ipv4 lport=8443\n\
      9 : st=0x120121(Cl heopI W:sRa R:srA) iocb=0x1(sock_accept_iocb) l.st=RDY fe=GLOBAL fam=unix\n\
     17 : st=0x000121(cl heopI W:sRa R:srA) iocb=0x1(sock_conn_iocb) back=0 cflg=0x00000300 fe=fe_https mux=PASS\n";
    let l = parse_show_fd(fd);
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].frontend.as_str(), l[0].port), ("fe_https", 8443));
    assert_eq!(
        parse_buffer_pool(
            "  - Pool trash (32800 bytes)\n  - Pool buffer (32768 bytes) : 4 allocated"
        ),
        Some(32768)
    );
}

#[test]
fn answers_stream_within_each_commands_cap() {
    let info = Cmd {
        text: "show info",
        cap: 32,
        keep: every_line,
    };
    let fd = Cmd {
        text: "show fd",
        cap: 64,
        keep: is_listener_line,
    };
    let cmds = [&info, &fd];
    // Split anywhere; empty lines before an answer are skipped; only
    // listeners' lines of `show fd` are kept (and its first line).
    let text = "\nPid: 1\nUptime: 2\n\n\nfirst\n 1 : conn\n 4 : l.st=RDY fe=f lport=80\n 2 : conn\n\nafter";
    let mut a = Answers::new(&cmds);
    for b in text.as_bytes().chunks(3) {
        a.take(b).unwrap();
    }
    assert!(a.done());
    assert_eq!(
        a.finish().unwrap(),
        vec![
            "Pid: 1\nUptime: 2\n",
            "first\n 4 : l.st=RDY fe=f lport=80\n"
        ]
    );
    // Connections' lines stream by without counting against the cap.
    let mut a = Answers::new(&cmds);
    a.take(b"Pid: 1\n\nfirst\n").unwrap();
    for _ in 0..1000 {
        a.take(b" 9 : a connection, dropped as it comes\n").unwrap();
    }
    a.take(b"\n").unwrap();
    assert!(a.done());
    // Over a cap, in one line or in many: refused, naming the cap.
    let e = Answers::new(&cmds).take(&[b'y'; 40]).unwrap_err();
    assert!(
        e.to_string().contains("`show info` is larger than 32"),
        "{e}"
    );
    let e = Answers::new(&cmds)
        .take(b"0123456789\n0123456789\n0123456789\n")
        .unwrap_err();
    assert!(e.to_string().contains("larger than 32"), "{e}");
    // The stream ends without the last empty line: still an answer.
    let mut a = Answers::new(&cmds);
    a.take(b"Pid: 1\n\nfirst").unwrap();
    assert_eq!(a.finish().unwrap().len(), 2);
}

#[test]
fn what_a_configuration_may_name_is_capped() {
    // Short lines name many things: the names stop at the cap.
    let many =
        "backend b\n".to_string() + &"    server s 10.0.0.1:80\n".repeat(CONFIG_MAX_NAMES + 10);
    let c = parse_config(&many, None);
    assert!(c.map.servers.len() <= CONFIG_MAX_NAMES + 1);
    assert!(
        c.map.notes.last().unwrap().contains("netmem's cap"),
        "{:?}",
        c.map.notes.last()
    );
    // A variable repeated on a line adds at most LINE_EXPANSION_MAX.
    let env: Env = [("BIG".to_string(), "x".repeat(100_000))].into();
    let w = words(&format!("bind \"{}\"", "${BIG}".repeat(50)), Some(&env));
    assert!(w[1].len() <= LINE_EXPANSION_MAX, "{}", w[1].len());
    let state = "1\n# be_name srv_name srv_addr srv_port\n".to_string()
        + &"b s 10.0.0.1 80\n".repeat(MAX_SERVERS + 1);
    let e = parse_servers_state(&state).unwrap_err().to_string();
    assert!(e.contains("netmem's cap"), "{e}");
}

#[test]
fn words_quotes_and_comments() {
    assert_eq!(
        words(r#"  bind "a b":80 'c' d\ e # no"#, None),
        vec!["bind", "a b:80", "c", "d e"]
    );
    assert_eq!(words("# only", None), Vec::<String>::new());
}

#[test]
fn environment_variables_in_double_quotes() {
    let env: Env = [("PORT", "8443"), ("APP", "10.0.3.17:9001"), ("E", "")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let w = |l: &str| words(l, Some(&env));
    assert_eq!(w(r#"bind "${PORT}""#), vec!["bind", "8443"]);
    assert_eq!(
        w(r#"bind ":$PORT,:${PORT}1""#),
        vec!["bind", ":8443,:84431"]
    );
    assert_eq!(
        w(r#"x "${NOPE-7}" "${NOPE}" "a${E}b""#),
        vec!["x", "7", "", "ab"]
    );
    // Not in double quotes, or escaped: as written (HAProxy's rule).
    assert_eq!(
        w(r#"x '${PORT}' ${PORT} "\$PORT""#),
        vec!["x", "${PORT}", "${PORT}", "$PORT"]
    );
    let cfg = "frontend fe\n  bind \"127.0.0.1:${PORT}\"\nbackend app\n  server a1 \"${APP}\"\n";
    let c = parse_config(cfg, Some(&env));
    assert_eq!(c.map.listeners[0].port, 8443);
    assert_eq!(c.map.servers[0].addr, "10.0.3.17:9001".parse().unwrap());
    assert!(c.map.notes.is_empty(), "{:?}", c.map.notes);
    // Without HAProxy's environment (a configuration given by path),
    // the variable is said to be unknown.
    let c = parse_config(cfg, None);
    assert!(c.map.listeners.is_empty());
    assert!(
        c.map.notes.join(" ").contains("environment variable"),
        "{:?}",
        c.map.notes
    );
}
