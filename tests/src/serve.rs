//! The parts `netmem serve`'s tests run for real: netmem serve itself, a
//! plain HTTP/1.1 client, and a Prometheus server (Debian's `prometheus`)
//! with its own config and data in a temp dir, listening on loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Debian's `promtool check metrics` passes `exposition` without a word.
pub fn promtool_check_metrics(exposition: &str) {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; run `cargo xtask setup`)");
    c.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET; (status, body). `accept` is sent as the Accept header.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept.map(|a| ("Accept", a));
    let r = http_request(s, addr, path, accept.as_slice())?;
    Ok((r.status, r.body))
}

/// An HTTP answer: status, head (status line and headers), body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One GET with `headers` over `s` (a plain or TLS stream), read to its
/// end.
pub fn http_request(
    mut s: impl Read + Write,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Reply {
        status,
        head: head.to_string(),
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out += &rest[..n];
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the sample `series` (name with labels, exactly as
/// exposed) in a text exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().ok())?
    })
}

pub use netmem::output::prometheus::metrics::host_wide_series;

/// Calls `ok` every half second until it says yes; fails the test saying
/// `what` (what it waits for, and what it saw) after `limit`.
pub fn poll(limit: Duration, mut ok: impl FnMut() -> Result<(), String>) {
    let t0 = Instant::now();
    while let Err(what) = ok() {
        assert!(t0.elapsed() < limit, "after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `netmem serve`, stopped with SIGTERM on drop.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Serve {
    /// Starts it with `args` (plus --listen on a free loopback port) and
    /// waits until its first interval is published.
    pub fn start(args: &[&str]) -> Serve {
        Serve::start_via(&[], args)
    }

    /// As [`Serve::start`], run through `wrapper` (e.g. `setpriv` with a
    /// capability set).
    pub fn start_via(wrapper: &[&str], args: &[&str]) -> Serve {
        let mut s = Serve::spawn_via(wrapper, args);
        s.wait_for("netmem_last_interval_timestamp_seconds");
        s
    }

    /// Starts it without waiting: [`Serve::wait_for`] then sees its very
    /// first exposition.
    pub fn spawn_via(wrapper: &[&str], args: &[&str]) -> Serve {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(crate::netmem_bin());
                c
            }
            None => Command::new(crate::netmem_bin()),
        };
        let child = cmd
            .arg("serve")
            .args(["--listen", &addr.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netmem serve");
        Serve { child, addr }
    }

    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.addr, "/metrics", None).expect("scrape");
        assert_eq!(status, 200, "scrape failed: {body}");
        body
    }

    /// Scrapes until the exposition contains `needle` (30 s at most).
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(needle, Duration::from_secs(30))
    }

    /// Scrapes until the exposition contains `needle`, `limit` at most.
    pub fn wait_for_within(&mut self, needle: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            self.assert_running();
            if let Ok((200, body)) = http_get(self.addr, "/metrics", None) {
                if body.contains(needle) {
                    return body;
                }
            }
            assert!(t0.elapsed() < limit, "netmem serve never showed {needle}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics with its stderr if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("netmem serve exited ({st}): {err}");
        }
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.terminate()
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (st, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// A Prometheus server scraping `target` every second; killed and its data
/// removed on drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
}

pub fn prometheus_bin() -> &'static str {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "Debian's prometheus package is not installed: run `cargo xtask setup`"
    );
    "/usr/bin/prometheus"
}

impl Prometheus {
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::start_with(target, &[], None)
    }

    /// Scrapes `target` once per name in `hosts`, each with that name as
    /// its `instance` label (several hosts, as a dashboard's "All" sees
    /// them; none: the target's own address), evaluating `rules` (a rule
    /// file) every second if given.
    pub fn start_with(
        target: SocketAddr,
        hosts: &[&str],
        rules: Option<&std::path::Path>,
    ) -> Prometheus {
        let mut job = "    static_configs:\n".to_string();
        if hosts.is_empty() {
            job += &format!("      - targets: ['{target}']\n");
        }
        for h in hosts {
            job += &format!("      - targets: ['{target}']\n        labels: {{instance: '{h}'}}\n");
        }
        Prometheus::start_config(&job, rules)
    }

    /// Scrapes each target under its own `instance` name (a fleet of
    /// hosts: one `netmem serve` each), evaluating `rules` every second if
    /// given.
    pub fn start_targets(
        targets: &[(SocketAddr, &str)],
        rules: Option<&std::path::Path>,
    ) -> Prometheus {
        let mut job = "    static_configs:\n".to_string();
        for (t, h) in targets {
            job += &format!("      - targets: ['{t}']\n        labels: {{instance: '{h}'}}\n");
        }
        Prometheus::start_config(&job, rules)
    }

    /// As [`Prometheus::start_targets`], its own API and UI behind `web`
    /// (Prometheus's `--web.config.file`: TLS, basic auth).
    pub fn start_targets_web(targets: &[(SocketAddr, &str)], web: &std::path::Path) -> Prometheus {
        let mut job = "    static_configs:\n".to_string();
        for (t, h) in targets {
            job += &format!("      - targets: ['{t}']\n        labels: {{instance: '{h}'}}\n");
        }
        Prometheus::start_full(&job, None, Some(web))
    }

    /// Scraping with `job`: the lines of the scrape config after its
    /// `job_name` (targets, and scheme, tls_config, basic_auth...).
    pub fn start_job(job: &str) -> Prometheus {
        Prometheus::start_config(job, None)
    }

    /// Prometheus with one scrape job (`job`: the lines after its
    /// `job_name`) and, if given, a rule file evaluated every second.
    fn start_config(job: &str, rules: Option<&std::path::Path>) -> Prometheus {
        Prometheus::start_full(job, rules, None)
    }

    fn start_full(
        job: &str,
        rules: Option<&std::path::Path>,
        web: Option<&std::path::Path>,
    ) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "netmem-prom-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut config =
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                .to_string();
        if let Some(r) = rules {
            config += &format!("rule_files: ['{}']\n", r.display());
        }
        config += &format!("scrape_configs:\n  - job_name: netmem\n{job}");
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new(prometheus_bin())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(web.map(|w| format!("--web.config.file={}", w.display())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { child, dir, addr };
        let t0 = Instant::now();
        // Behind TLS, a plain request gets a 400 once it listens.
        let ready = |r: std::io::Result<(u16, String)>| {
            matches!((web, r), (None, Ok((200, _))) | (Some(_), Ok((400, _))))
        };
        while !ready(http_get(p.addr, "/-/ready", None)) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus not ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query (at `time`, Unix seconds, if given): the result
    /// vector.
    pub fn query(&self, q: &str, time: Option<f64>) -> Vec<Value> {
        let mut path = format!("/api/v1/query?query={}", urlencode(q));
        if let Some(t) = time {
            path += &format!("&time={t:.3}");
        }
        let (status, body) = http_get(self.addr, &path, None).expect("query prometheus");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus answered {status} {body:?}: {e}"));
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// An API answer's `data` (e.g. `/api/v1/rules`).
    pub fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(self.addr, path, None).expect("ask prometheus");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus answered {status} {body:?}: {e}"));
        assert_eq!(v["status"], "success", "{path}: {body}");
        v["data"].clone()
    }

    /// The single value of an instant query, if it has one.
    pub fn value(&self, q: &str, time: Option<f64>) -> Option<f64> {
        let r = self.query(q, time);
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `q` has a result (60 s at most).
    pub fn wait_for(&self, q: &str) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let r = self.query(q, None);
            if !r.is_empty() {
                return r;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus never had {q}; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unix time now, in seconds.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One query of a Grafana dashboard: the row it sits under (none above
/// the first row), its panel's title, and the target (`expr`,
/// `legendFormat`, `format`...).
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub row: Option<String>,
    pub panel: String,
    pub target: Value,
}

impl DashboardQuery {
    pub fn expr(&self) -> &str {
        self.target["expr"].as_str().unwrap_or_else(|| {
            panic!(
                "panel {:?}: a target without an expr: {}",
                self.panel, self.target
            )
        })
    }

    /// Its legend, if it has one.
    pub fn legend(&self) -> Option<&str> {
        self.target["legendFormat"].as_str()
    }
}

/// Every query of every panel of `dashboard`, in order: the panels of an
/// expanded row follow it at the top level (up to the next row), those of
/// a collapsed row are in its own `panels`; both belong to the row.
pub fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    let mut row = None;
    let mut add = |row: &Option<String>, panel: &Value| {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(DashboardQuery {
                row: row.clone(),
                panel: panel["title"].as_str().unwrap_or_default().to_string(),
                target: t.clone(),
            });
        }
    };
    for panel in dashboard["panels"]
        .as_array()
        .expect("a dashboard's panels")
    {
        if panel["type"] == "row" {
            row = panel["title"].as_str().map(str::to_string);
            for p in panel["panels"].as_array().into_iter().flatten() {
                add(&row, p);
            }
        } else {
            add(&row, panel);
        }
    }
    out
}
