//! nginx's syntax, its includes and what netmem reads from it, on
//! fixtures held in memory, hostile ones among them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use super::config::{read_config, size};
use super::detect::{args_of, config_path};
use super::files::{load, matches, Files, CONFIG_MAX_FILES};
use super::syntax::{parse, DEPTH_MAX, WORD_MAX_BYTES};
use super::*;
use crate::model::proxy::Meaning;

/// Files in memory.
#[derive(Default)]
struct Mem(BTreeMap<PathBuf, String>);

impl Mem {
    fn with(mut self, p: &str, text: &str) -> Self {
        self.0.insert(PathBuf::from(p), text.to_string());
        self
    }
}

impl Files for Mem {
    fn read(&mut self, path: &Path, cap: u64) -> Result<Vec<u8>> {
        let t = self
            .0
            .get(path)
            .ok_or_else(|| anyhow!("{}: no such file", path.display()))?;
        if t.len() as u64 > cap {
            anyhow::bail!("{}: more than the cap", path.display());
        }
        Ok(t.as_bytes().to_vec())
    }

    fn list(&mut self, dir: &Path, max: usize) -> Result<Vec<String>> {
        let names: Vec<String> = self
            .0
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        if names.is_empty() {
            anyhow::bail!("{}: no such directory", dir.display());
        }
        if names.len() > max {
            anyhow::bail!("too many");
        }
        Ok(names)
    }
}

const MAIN: &str = r#"
user www-data;
worker_processes auto;
events { worker_connections 768; }

http {
    proxy_buffer_size 8k;
    proxy_buffers 16 8k;
    proxy_busy_buffers_size 16k;
    include /etc/nginx/conf.d/*.conf;   # the sites
    include sites/main.conf;

    upstream app {
        server 10.0.3.17:9001 weight=3;
        server 10.0.3.18:9001 backup;
        server app3.internal:9001;
        server unix:/run/app.sock;
        keepalive 16;
    }
}

stream {
    upstream db { server 10.0.4.1:5432; }
    server { listen 15432; proxy_pass db; }
}
"#;

const SITE: &str = r#"
server {
    listen 80 default_server;
    listen [::]:80 default_server ipv6only=on;
    listen 127.0.0.1:8443 ssl sndbuf=256k rcvbuf=64k;
    server_name "" example.com www.example.com;
    location / { proxy_pass http://app; }
    location /api/ {
        proxy_buffering off;
        proxy_pass http://127.0.0.1:8080/api/;
        location /api/v2 { grpc_pass grpc://[::1]:50051; }
    }
    location /dyn { proxy_pass http://$backend_host; }
    location /named { proxy_pass https://backend.internal; }
    if ($request_method = POST) { proxy_pass http://10.9.9.9; }
}
"#;

const OTHER: &str = r#"
server {
    listen 8080;
    server_name _;
    location / { proxy_pass http://app/; }
}
server { server_name 'quoted name'; }
"#;

fn fixture() -> Mem {
    Mem::default()
        .with("/etc/nginx/nginx.conf", MAIN)
        .with("/etc/nginx/conf.d/a-site.conf", SITE)
        .with("/etc/nginx/conf.d/b-other.conf", OTHER)
        .with("/etc/nginx/conf.d/.hidden.conf", "server { listen 1; }")
        .with("/etc/nginx/conf.d/ignored.txt", "server { listen 2; }")
        .with(
            "/etc/nginx/sites/main.conf",
            "server { listen 81; server_name main; }",
        )
}

fn servers(m: &ProxyMap) -> Vec<String> {
    m.servers
        .iter()
        .map(|s| format!("{}/{} {}", s.backend, s.server, s.addr))
        .collect()
}

fn ports(m: &ProxyMap, frontend: &str) -> Vec<u16> {
    m.listeners
        .iter()
        .filter(|l| l.frontend == frontend)
        .map(|l| l.port)
        .collect()
}

#[test]
fn a_configuration_with_includes_names_servers_and_upstreams() {
    let mut files = fixture();
    let loaded = load(&mut files, Path::new("/etc/nginx/nginx.conf")).unwrap();
    assert_eq!(
        loaded.files,
        [
            "/etc/nginx/nginx.conf",
            "/etc/nginx/conf.d/a-site.conf",
            "/etc/nginx/conf.d/b-other.conf",
            "/etc/nginx/sites/main.conf"
        ]
        .map(PathBuf::from)
    );
    assert_eq!(loaded.dirs, vec![PathBuf::from("/etc/nginx/conf.d")]);
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    let m = read_config(&loaded.directives, 4096);
    // The first non-empty server_name; `listen 80` and `[::]:80` are one
    // port; an address alone is kept.
    assert_eq!(ports(&m, "server example.com"), vec![80, 8443]);
    let local = m
        .listeners
        .iter()
        .find(|l| l.port == 8443)
        .and_then(|l| l.addr);
    assert_eq!(local, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(ports(&m, "server _"), vec![8080]);
    // No listen: *:80, beside example.com's default_server.
    assert_eq!(ports(&m, "server quoted name"), vec![80]);
    assert_eq!(ports(&m, "server main"), vec![81]);
    assert_eq!(ports(&m, "server stream:15432"), vec![15432]);
    assert!(m.listeners.iter().all(|l| l.port != 1 && l.port != 2));
    assert_eq!(
        servers(&m),
        vec![
            "upstream 10.9.9.9:80/10.9.9.9:80 10.9.9.9:80",
            "upstream 127.0.0.1:8080/127.0.0.1:8080 127.0.0.1:8080",
            "upstream [::1]:50051/[::1]:50051 [::1]:50051",
            "upstream app/10.0.3.17:9001 10.0.3.17:9001",
            "upstream app/10.0.3.18:9001 10.0.3.18:9001",
            "upstream db/10.0.4.1:5432 10.0.4.1:5432",
        ]
    );
    let routed: Vec<&String> = m.backends["upstream app"].iter().collect();
    assert_eq!(routed, vec!["server _", "server example.com"]);
    assert_eq!(
        m.backends["upstream db"].iter().collect::<Vec<_>>(),
        vec!["server stream:15432"]
    );
    // Buffers: the largest set, sndbuf/rcvbuf from `listen`.
    assert_eq!(m.tune.get(Meaning::ProxyBuffer), Some(8192));
    assert_eq!(m.tune.get(Meaning::Sndbuf(Side::Client)), Some(256 << 10));
    assert_eq!(m.tune.get(Meaning::Rcvbuf(Side::Client)), Some(64 << 10));
    assert!(m.tune.side(Side::Server).known);
    let notes = m.notes.join("\n");
    for said in [
        "proxy_buffers 16 8.0K (up to 128.0K per connection",
        "proxy_busy_buffers_size 16.0K",
        "proxy_buffering off in 1 block",
        "upstream app/app3.internal:9001",
        "https://backend.internal in server example.com",
        "http://$backend_host in server example.com",
    ] {
        assert!(notes.contains(said), "{said}: {notes}");
    }
}

#[test]
fn defaults_hold_where_nothing_is_set() {
    let p = parse(
        "http { server { listen 8000; location / { proxy_pass http://10.0.0.1:81; } } }",
        0,
        0,
        1000,
    );
    let m = read_config(&p.directives, 4096);
    assert_eq!(m.tune.get(Meaning::ProxyBuffer), Some(4096));
    assert_eq!(m.tune.side(Side::Client).show(None), "auto");
    assert!(
        m.notes[0].starts_with("proxy_buffers 8 4.0K (up to 32.0K"),
        "{:?}",
        m.notes
    );
    assert_eq!(
        servers(&m),
        vec!["upstream 10.0.0.1:81/10.0.0.1:81 10.0.0.1:81"]
    );
}

#[test]
fn words_quotes_escapes_comments_and_variables() {
    let p = parse(
        "a \"x y\" 'q\\'s' b\\;c \"t\\tn\" # comment ; {\n d ${var}x ${a b} $h; e \"#no\";",
        0,
        0,
        100,
    );
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    assert_eq!(p.directives.len(), 2);
    let a = &p.directives[0];
    assert_eq!(
        a.args,
        vec!["x y", "q's", "b\\;c", "t\tn", "d", "${var}x", "${a b}", "$h"]
    );
    let p = parse("e \"#no\"; f 'a\nb';", 0, 0, 100);
    assert_eq!(p.directives[0].args, vec!["#no"]);
    assert_eq!(p.directives[1].args, vec!["a\nb"]);
    assert_eq!(p.directives[1].at, (0, 1));
}

#[test]
fn sizes_as_nginx_writes_them() {
    assert_eq!(size("4k"), Some(4096));
    assert_eq!(size("8K"), Some(8192));
    assert_eq!(size("1m"), Some(1 << 20));
    assert_eq!(size("123"), Some(123));
    assert_eq!(size("99999999999999999g"), None);
    assert_eq!(size("k"), None);
    assert_eq!(size(""), None);
    assert_eq!(size("é"), None);
}

#[test]
fn globs_match_as_glob3_does() {
    assert!(matches(b"*.conf", b"a.conf"));
    assert!(!matches(b"*.conf", b"a.conf.bak"));
    assert!(matches(b"a?c", b"abc"));
    assert!(matches(b"[a-c]x", b"bx"));
    assert!(!matches(b"[!a-c]x", b"bx"));
    assert!(matches(b"[", b"["));
    assert!(matches(b"*", b""));
    assert!(matches(b"*a*b*c*", b"xxaxxbxxcxx"));
    // Many stars against a long name that does not match: still quick.
    let pat = "*a".repeat(50);
    let name = "a".repeat(49) + "b";
    assert!(!matches(pat.as_bytes(), name.as_bytes()));
}

#[test]
fn hostile_text_never_panics_and_is_capped() {
    // Unbalanced braces, unterminated strings, missing semicolons.
    for text in [
        "}}}} http { server { listen 80",
        "http { server { listen \"80",
        "\"",
        "\\",
        "'\\",
        "{{{{{{",
        ";;;;",
        "a b c",
        "listen 80 }",
        "$",
        "${",
        "a ${b",
        "http { upstream { server ; } server { listen :::::; listen [::; listen [::]:99999; listen 1.2.3.4:; proxy_pass http://; proxy_pass ; proxy_pass http://[; } }",
        "\u{0}\u{ff}\u{feff} ; { } ",
    ] {
        let p = parse(text, 0, 0, 1000);
        let _ = read_config(&p.directives, 4096);
    }
    let p = parse("}}}} a; http { server { listen 80", 0, 0, 1000);
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("closes no block") && notes.contains("not closed"),
        "{notes}"
    );
    // Deep nesting: capped, on the heap, no stack overflow.
    let deep = "a {".repeat(100_000) + &"}".repeat(100_000);
    let p = parse(&deep, 0, 0, 1_000_000);
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains(&format!("more than {DEPTH_MAX} deep"))));
    let mut depth = 0;
    let mut d = &p.directives;
    while let Some(b) = d.first().and_then(|x| x.block.as_ref()) {
        depth += 1;
        d = b;
    }
    assert_eq!(depth, DEPTH_MAX);
    // A long word is cut; many directives stop at the budget.
    let long = "a ".to_string() + &"x".repeat(WORD_MAX_BYTES * 2) + ";";
    let p = parse(&long, 0, 0, 10);
    assert_eq!(p.directives[0].args[0].len(), WORD_MAX_BYTES);
    let many = "a;".repeat(1000);
    let p = parse(&many, 0, 0, 10);
    assert_eq!(p.directives.len(), 10);
    assert!(p.notes[0].contains("more than 10 directives"));
}

#[test]
fn includes_that_loop_or_go_deep_are_not_followed_forever() {
    let mut files = Mem::default()
        .with("/c/nginx.conf", "include a.conf; http { include b.conf; }")
        .with("/c/a.conf", "include nginx.conf; x;")
        .with("/c/b.conf", "include b.conf; server { listen 9; }");
    let l = load(&mut files, Path::new("/c/nginx.conf")).unwrap();
    let notes = l.notes.join("\n");
    assert!(notes.contains("includes itself"), "{notes}");
    let m = read_config(&l.directives, 4096);
    assert_eq!(ports(&m, "server _"), vec![9]);
    // A chain deeper than the cap.
    let mut files = Mem::default();
    for i in 0..40 {
        files = files.with(&format!("/d/{i}.conf"), &format!("include {}.conf;", i + 1));
    }
    let l = load(&mut files, Path::new("/d/0.conf")).unwrap();
    assert!(
        l.notes.iter().any(|n| n.contains("includes deep")),
        "{:?}",
        l.notes
    );
    // A glob over more files than the cap.
    let mut files = Mem::default().with("/e/nginx.conf", "include /e/x/*;");
    for i in 0..(CONFIG_MAX_FILES + 5) {
        files = files.with(&format!("/e/x/{i}"), "a;");
    }
    let l = load(&mut files, Path::new("/e/nginx.conf")).unwrap();
    assert!(
        l.notes.iter().any(|n| n.contains("netmem's cap")),
        "{:?}",
        l.notes
    );
    // A missing include is noted; a missing main file is an error.
    let mut files = Mem::default().with("/f/nginx.conf", "include missing.conf;");
    let l = load(&mut files, Path::new("/f/nginx.conf")).unwrap();
    assert!(l.notes[0].contains("/f/missing.conf"), "{:?}", l.notes);
    assert!(load(&mut Mem::default(), Path::new("/none")).is_err());
}

#[test]
fn the_master_names_its_configuration() {
    let title = b"nginx: master process /usr/sbin/nginx -p /tmp/x -c /tmp/x/nginx.conf -g daemon off; pid /tmp/x/n.pid;\0\0\0";
    let args = args_of(title);
    assert_eq!(args[0], "/usr/sbin/nginx");
    assert_eq!(config_path(&args), PathBuf::from("/tmp/x/nginx.conf"));
    let argv = b"/usr/sbin/nginx\0-g\0daemon on; master_process on;\0";
    assert_eq!(config_path(&args_of(argv)), PathBuf::from(DEFAULT_CONFIG));
    let rel: Vec<String> = ["nginx", "-p", "/srv/n/", "-cconf/n.conf"]
        .map(String::from)
        .to_vec();
    assert_eq!(config_path(&rel), PathBuf::from("/srv/n/conf/n.conf"));
    let rel: Vec<String> = ["nginx", "-c", "n.conf"].map(String::from).to_vec();
    assert_eq!(config_path(&rel), PathBuf::from("/usr/share/nginx/n.conf"));
    // Hostile titles: nothing panics.
    for t in [
        &b""[..],
        b"nginx: ",
        b"nginx: master process",
        b"\0\0",
        b"x\0-c",
    ] {
        let _ = config_path(&args_of(t));
    }
}

#[test]
fn a_configuration_given_by_path_is_read_and_followed() {
    let dir = std::env::temp_dir().join(format!("netmem-nginx-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let main = dir.join("nginx.conf");
    std::fs::write(&main, "http { include conf.d/*.conf; }").unwrap();
    std::fs::write(
        dir.join("conf.d/a.conf"),
        "server { listen 8081; server_name a; }",
    )
    .unwrap();
    let mut n = Nginx::explicit(&dir, 0, false);
    let r = n.read();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let m = r.map.unwrap();
    assert_eq!(ports(&m, "server a"), vec![8081]);
    assert!(m.origin[0].contains("(2 files)"), "{:?}", m.origin);
    // A file added where a glob looks: the directory changed.
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "server { listen 8082; server_name b; }",
    )
    .unwrap();
    let m = n.read().map.unwrap();
    assert_eq!(ports(&m, "server b"), vec![8082]);
    // A FIFO where a file is included: said, never opened to block on.
    let fifo = dir.join("conf.d/c.conf");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let t0 = std::time::Instant::now();
    let m = n.read().map.unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("c.conf: not a regular file")),
        "{:?}",
        m.notes
    );
    assert_eq!(ports(&m, "server b"), vec![8082]);
    std::fs::remove_dir_all(&dir).unwrap();
    let mut gone = Nginx::explicit(Path::new("/nonexistent/nginx.conf"), 0, true);
    let r = gone.read();
    assert!(r.map.is_none());
    assert!(
        r.problems[0].starts_with("--nginx /nonexistent/nginx.conf"),
        "{:?}",
        r.problems
    );
}
