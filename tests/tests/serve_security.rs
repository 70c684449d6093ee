//! `netmem serve` against clients that mean harm, and its web config:
//! idle connections that try to lock scrapes out, TLS and basic auth
//! checked by a real Prometheus and a real rustls client, client
//! certificates, and web configs that are wrong.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use netmem_tests::serve::*;
use netmem_tests::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A directory of the test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "netmem-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connection to `to` from the local address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(s.into())
}

/// Whether the server has closed `s` (it sends nothing before that).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The issue's attacker: `n` connections to `to` from the addresses
/// `from` (in turn) that never send a byte, each reopened as soon as the
/// server closes it, until `stop`. Returns how many it opened.
fn idle_attack(
    to: SocketAddr,
    from: Vec<Ipv4Addr>,
    n: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let open = |i: usize| {
            let s = connect_from(from[i % from.len()], to).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let mut conns: Vec<Option<TcpStream>> = (0..n).map(&open).collect();
        let mut opened = n;
        while !stop.load(Ordering::SeqCst) {
            for (i, c) in conns.iter_mut().enumerate() {
                if c.as_mut().is_none_or(closed) {
                    *c = open(i);
                    opened += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        opened
    })
}

/// One scrape a second for `n` seconds while an attack runs: how many
/// answered 200 with the exposition, and the slowest.
fn scrape_every_second(addr: SocketAddr, n: usize) -> (usize, Duration) {
    let mut ok = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t0 = Instant::now();
        if let Ok((200, body)) = http_get(addr, "/metrics", None) {
            if body.contains("netmem_last_interval_timestamp_seconds") {
                ok += 1;
            }
        }
        slowest = slowest.max(t0.elapsed());
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    }
    (ok, slowest)
}

/// The issue's attack: a client holds 260 connections that send nothing,
/// reopening each as it is cut. Before, 0 of 25 scrapes got through in
/// 25 s. Now the connection that waited longest without a head makes room,
/// so every scrape is served: with the attacker on the scraper's own
/// address (its per-address cap), then spread over five others (the
/// global cap). An address that only holds a few idle connections keeps
/// them while another address hits its cap.
#[test]
fn idle_connections_cannot_lock_scrapes_out() {
    require_root();
    let mut serve = Serve::start(&["--interval", "1s"]);
    let addr = serve.addr;

    // A bystander's idle connections, from an address of its own.
    let bystander = Ipv4Addr::new(127, 0, 0, 7);
    let mut quiet: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = connect_from(bystander, addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();

    // 1. From 127.0.0.1, the scraper's address.
    let stop = Arc::new(AtomicBool::new(false));
    let attack = idle_attack(addr, vec![Ipv4Addr::LOCALHOST], 260, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let cut = quiet.iter_mut().map(closed).filter(|&c| c).count();
    assert_eq!(
        cut, 0,
        "an attacker at its own address's cap dropped another address's connections"
    );
    let (ok1, slow1) = scrape_every_second(addr, 12);
    stop.store(true, Ordering::SeqCst);
    let opened1 = attack.join().unwrap();
    drop(quiet);

    // 2. From five other addresses: the server's total cap.
    let stop = Arc::new(AtomicBool::new(false));
    let from = (2..7).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let attack = idle_attack(addr, from, 260, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let (ok2, slow2) = scrape_every_second(addr, 13);
    stop.store(true, Ordering::SeqCst);
    let opened2 = attack.join().unwrap();

    eprintln!(
        "same address: {ok1}/12 scrapes, slowest {slow1:?}, {opened1} attack connections; \
         five addresses: {ok2}/13, slowest {slow2:?}, {opened2} attack connections"
    );
    assert!(
        opened1 > 260 && opened2 > 260,
        "the attack never hit a cap ({opened1}, {opened2} connections)"
    );
    assert_eq!((ok1, ok2), (12, 13), "scrapes lost to idle connections");
    assert!(
        slow1.max(slow2) < Duration::from_secs(2),
        "a scrape took {:?}",
        slow1.max(slow2)
    );
    serve.assert_running();
    let text = serve.metrics();
    // The interval loop kept its pace, and the dropped connections count.
    let last = sample(&text, "netmem_last_interval_timestamp_seconds").unwrap();
    assert!(
        now_s() - last < 3.0,
        "last interval {:.1}s ago",
        now_s() - last
    );
    assert!(sample(&text, "netmem_http_rejected_total").unwrap() > 100.0);
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
}

/// A CA, and a server certificate for 127.0.0.1 it signed, as PEM files.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = TempDir::new(tag);
        let ca = ca("netmem test CA");
        dir.write("ca.pem", &ca.pem());
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        dir.write("cert.pem", &cert.pem());
        dir.write("key.pem", &key.serialize_pem());
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// A rustls client trusting the CA, with a client certificate if
    /// given.
    fn client(&self, cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let b = rustls::ClientConfig::builder().with_root_certificates(roots);
        Arc::new(match cert {
            None => b.with_no_client_auth(),
            Some((cert, key)) => {
                use rustls::pki_types::pem::PemObject as _;
                let chain =
                    vec![
                        rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap(),
                    ];
                let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        })
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// One GET over TLS, with basic auth if given.
fn tls_get(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<Reply> {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn =
        rustls::ClientConnection::new(client.clone(), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let header = auth.map(|(u, p)| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Basic {b64}")
    });
    let headers: Vec<(&str, &str)> = header
        .iter()
        .map(|h| ("Authorization", h.as_str()))
        .collect();
    http_request(rustls::StreamOwned::new(conn, tcp), addr, path, &headers)
}

/// Starts serve with `web_config` and waits (over TLS, with `auth`) for
/// its first interval.
fn serve_tls(
    web_config: &Path,
    client: &Arc<rustls::ClientConfig>,
    auth: Option<(&str, &str)>,
) -> Serve {
    let mut serve = Serve::spawn_via(
        &[],
        &[
            "--interval",
            "1s",
            "--web.config.file",
            web_config.to_str().unwrap(),
        ],
    );
    let t0 = Instant::now();
    loop {
        serve.assert_running();
        if let Ok(r) = tls_get(serve.addr, client, "/metrics", auth) {
            if r.status == 200 && r.body.contains("netmem_last_interval_timestamp_seconds") {
                return serve;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "netmem serve never answered over TLS"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A real Prometheus scrapes over TLS with basic auth (the CA in its
/// tls_config, the password in its basic_auth); without a password, with a
/// wrong one or for an unknown user the answer is 401 with
/// WWW-Authenticate; plain HTTP to the TLS port gets a plain 400 saying
/// so; the server serves on after all of them.
#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    require_root();
    let pki = Pki::new("tls");
    let password = "correct horse battery staple";
    let hash = bcrypt::hash(password, 10).unwrap();
    // Relative file names are taken from the config's directory.
    let web = pki.dir.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let client = pki.client(None);
    let auth = Some(("prometheus", password));
    let mut serve = serve_tls(&web, &client, auth);
    let addr = serve.addr;

    for (creds, what) in [
        (None, "no password"),
        (Some(("prometheus", "wrong")), "a wrong password"),
        (Some(("root", password)), "an unknown user"),
    ] {
        let r = tls_get(addr, &client, "/metrics", creds).unwrap();
        assert_eq!(r.status, 401, "{what}: {}", r.head);
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("\r\nwww-authenticate: basic realm=\"netmem\""),
            "{what}: {}",
            r.head
        );
        assert!(!r.body.contains("netmem_"), "{what}: {}", r.body);
    }
    // Every path needs the password, not only /metrics.
    assert_eq!(tls_get(addr, &client, "/", None).unwrap().status, 401);
    assert_eq!(tls_get(addr, &client, "/", auth).unwrap().status, 200);

    let (status, body) = http_get(addr, "/metrics", None).expect("plain HTTP to the TLS port");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("speaks HTTPS"), "{body}");

    let prom = Prometheus::start_job(&format!(
        "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password: '{password}'\n    static_configs:\n      - targets: ['{addr}']\n",
        pki.path("ca.pem").display()
    ));
    prom.wait_for("netmem_build_info");
    assert_eq!(prom.value("up{job=\"netmem\"}", None), Some(1.0));
    // Prometheus keeps scraping: its scrapes are counted by netmem.
    let t0 = Instant::now();
    while prom.value("netmem_scrapes_total", None).unwrap_or(0.0) < 3.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "Prometheus stopped scraping: {}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let text = tls_get(addr, &client, "/metrics", auth).unwrap().body;
    assert!(sample(&text, "netmem_http_rejected_total").unwrap() >= 5.0);
    serve.assert_running();
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
    assert!(err.contains("netmem serve: https://"), "{err}");
}

/// `client_auth_type: RequireAndVerifyClientCert`: a client certificate
/// the configured CA signed is let in; none, or one another CA signed, is
/// refused in the handshake.
#[test]
fn client_certificates_are_verified() {
    require_root();
    let pki = Pki::new("mtls");
    let web = pki.dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let issue = |ca: &CertifiedIssuer<'static, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["prometheus".to_string()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = issue(&pki.ca);
    let good = pki.client(Some((&cert, &key)));
    let serve = serve_tls(&web, &good, None);

    let (cert, key) = issue(&ca("another CA"));
    for (client, what) in [
        (pki.client(None), "no client certificate"),
        (pki.client(Some((&cert, &key))), "another CA's certificate"),
    ] {
        let r = tls_get(serve.addr, &client, "/metrics", None);
        assert!(
            r.is_err(),
            "{what}: answered {}",
            r.map(|r| r.head).unwrap_or_default()
        );
    }
    assert_eq!(
        tls_get(serve.addr, &good, "/metrics", None).unwrap().status,
        200
    );
    let (st, err) = serve.stop();
    assert!(st.success(), "{err}");
}

/// A web config that is wrong is one line naming the file and what to do,
/// exit 1, before the port is bound or anything attached.
#[test]
fn bad_web_config_is_one_clear_error() {
    require_root();
    let pki = Pki::new("badweb");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let other_key = pki.dir.write(
        "other-key.pem",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let cases = [
        ("missing.yml", None, "cannot read --web.config.file"),
        (
            "syntax.yml",
            Some("basic_auth_users:\n  a: b\n c: d\n"),
            "not a valid web config",
        ),
        (
            "unknown.yml",
            Some(&*format!(
                "basic_auth_users:\n  a: '{hash}'\nbasic_auth:\n  a: b\n"
            )),
            "unknown field `basic_auth`",
        ),
        (
            "plain.yml",
            Some("basic_auth_users:\n  prometheus: hunter2\n"),
            "not a bcrypt hash",
        ),
        (
            "nocert.yml",
            Some("tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n"),
            "nope.pem",
        ),
        (
            "mismatch.yml",
            Some(&*format!(
                "tls_server_config:\n  cert_file: cert.pem\n  key_file: {}\n",
                other_key.display()
            )),
            "other-key.pem",
        ),
        ("empty.yml", Some(""), "sets neither"),
    ];
    for (i, (name, text, want)) in cases.iter().enumerate() {
        let path = match text {
            Some(t) => pki.dir.write(name, t),
            None => pki.path(name),
        };
        let port = free_port();
        // Both spellings of the flag.
        let flag = if i % 2 == 0 {
            "--web.config.file"
        } else {
            "--web-config"
        };
        let t0 = Instant::now();
        let o = std::process::Command::new(netmem_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), flag])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: not one line: {err}");
        assert!(
            err.starts_with("netmem: error: ") && err.contains(want) && err.contains(name),
            "{name}: {err}"
        );
        assert!(!err.contains("attaching"), "{name}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{name}: took {:?}",
            t0.elapsed()
        );
        eprintln!("{err}");
    }
}

/// `doctor --prometheus` reads a Prometheus behind TLS and basic auth:
/// the CA from SSL_CERT_FILE, the credentials from the URL; without them,
/// or with a CA the host does not trust, one line and exit 1.
#[test]
fn the_fleet_doctor_reads_prometheus_over_tls_with_basic_auth() {
    require_root();
    let pki = Pki::new("promtls");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = pki.dir.write(
        "prom-web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  ops: {hash}\n",
            pki.path("cert.pem").display(),
            pki.path("key.pem").display()
        ),
    );
    let serve = Serve::start(&["--interval", "1s"]);
    let prom = Prometheus::start_targets_web(&[(serve.addr, "lb1")], &web);
    let doctor = |url: &str, ca: Option<&Path>| {
        let mut c = std::process::Command::new(netmem_tests::netmem_bin());
        c.args(["doctor", "--prometheus", url, "--since", "5m", "--json"]);
        c.env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().unwrap()
    };
    let ca = pki.path("ca.pem");
    let good = format!("https://ops:s3cret@{}", prom.addr);
    let t0 = Instant::now();
    let lines = loop {
        let o = doctor(&good, Some(&ca));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            break netmem_tests::json_lines(&out);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(
        lines[0]["instances"],
        serde_json::json!(["lb1"]),
        "{lines:?}"
    );
    // A CA the host does not trust: the server's own certificate.
    let other = pki.path("cert.pem");
    let cases = [
        (
            format!("https://{}", prom.addr),
            Some(ca.as_path()),
            "wants credentials",
        ),
        (
            format!("https://ops:wrong@{}", prom.addr),
            Some(ca.as_path()),
            "refused the credentials",
        ),
        (good.clone(), Some(other.as_path()), "asking https://"),
        (
            format!("http://ops:s3cret@{}", prom.addr),
            Some(ca.as_path()),
            "is not a Prometheus server's API",
        ),
    ];
    for (url, ca, says) in cases {
        let o = doctor(&url, ca);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(1) && err.contains(says) && err.lines().count() == 1,
            "{url}: {err}"
        );
        assert!(
            !err.contains("s3cret") && !err.contains("wrong"),
            "a password in {err}"
        );
    }
}
