//! The model does no I/O and imports no layer above or beside it: this
//! reads the model's own source text and fails on a file that opens files,
//! sockets or processes, starts threads, calls libc, or imports
//! `sources/`, `output/`, `engine/` or `tui/`. Reading the system belongs
//! in `sources/gather`. Nor does it keep process-wide state: no `static`
//! behind a lock (names are a value, `names::Names`, passed in).

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "std::net::UdpSocket",
    "std::os::unix::net",
    "std::thread",
    "std::process",
    "libc::",
    "crate::sources",
    "crate::output",
    "crate::engine",
    "crate::tui",
    "super::super::",
];

/// What a `static` would be shared through.
const SHARED: &[&str] = &[
    "RwLock",
    "Mutex",
    "OnceLock",
    "LazyLock",
    "Atomic",
    "thread_local",
];

#[test]
fn the_model_does_no_io_and_imports_no_layer_above() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model");
    let mut checked = 0;
    // The model's folders too (`proxy/`).
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("purity.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                assert!(
                    !code.contains(f),
                    "{}:{}: the model uses {f}: {line}",
                    path.display(),
                    n + 1
                );
            }
            let global = code.contains("static ") && SHARED.iter().any(|l| code.contains(l));
            assert!(
                !global,
                "{}:{}: the model keeps process-wide state: {line}",
                path.display(),
                n + 1
            );
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} model files read");
}
