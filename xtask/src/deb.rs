//! The Debian package, laid out by hand and built with dpkg-deb (no
//! cargo-deb to install): the static binary, the systemd unit with its
//! every-namespace drop-in beside it, man pages, completions, README,
//! copyright and changelog, and the Prometheus rules, Grafana dashboard,
//! DaemonSet and node-problem-detector monitor under /usr/share/netmem/.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{output, sh, target_dir, workspace_root};

const MAINTAINER: &str = "netmem developers <netmem@users.noreply.github.com>";
const HOMEPAGE: &str = "https://github.com/netmem/netmem";

/// Copies `src` to `root/dest` with `mode`, creating directories.
fn put(root: &Path, src: &Path, dest: &str, mode: u32) -> Result<PathBuf> {
    let at = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(at.parent().unwrap())?;
    std::fs::copy(src, &at).with_context(|| format!("copy {}", src.display()))?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))?;
    Ok(at)
}

fn write(root: &Path, dest: &str, text: &str) -> Result<PathBuf> {
    let at = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(at.parent().unwrap())?;
    std::fs::write(&at, text)?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644))?;
    Ok(at)
}

/// gzip -9n in place (Debian policy for man pages and large docs).
fn gzip(file: &Path) -> Result<()> {
    sh(Command::new("gzip").args(["-9nf"]).arg(file))
}

/// The packaged unit runs /usr/bin/netmem (the repository's copy names
/// /usr/local/bin, where its comment says to copy a binary by hand).
fn packaged_unit(text: &str) -> String {
    text.replace(
        "# Install: cp netmem /usr/local/bin/ && cp netmem.service /etc/systemd/system/\n#          systemctl daemon-reload && systemctl enable --now netmem\n",
        "# Installed by the netmem package: systemctl enable --now netmem\n",
    )
    .replace("/usr/local/bin/netmem", "/usr/bin/netmem")
}

/// The package of `bin`, version `v`, from the man pages and completions
/// under `dist` (where it is written too).
pub fn build(bin: &Path, v: &str, dist: &Path) -> Result<PathBuf> {
    let ws = workspace_root();
    let root = target_dir().join(format!("dist-deb/netmem_{v}_amd64"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("DEBIAN"))?;
    put(&root, bin, "/usr/bin/netmem", 0o755)?;

    let unit = std::fs::read_to_string(ws.join("packaging/systemd/netmem.service"))?;
    write(
        &root,
        "/lib/systemd/system/netmem.service",
        &packaged_unit(&unit),
    )?;
    let dropin = std::fs::read_to_string(ws.join("packaging/systemd/every-namespace.conf"))?;
    // Opt-in: copied to /etc/systemd/system/netmem.service.d/ by whoever
    // wants every namespace, as its own comment says.
    write(
        &root,
        "/usr/share/netmem/systemd/every-namespace.conf",
        &packaged_unit(&dropin),
    )?;
    for (src, dest) in [
        ("prometheus/netmem.rules.yml", "prometheus/netmem.rules.yml"),
        ("prometheus/scrape.yml", "prometheus/scrape.yml"),
        ("grafana/netmem.json", "grafana/netmem.json"),
        ("kubernetes/daemonset.yaml", "kubernetes/daemonset.yaml"),
        (
            "node-problem-detector/netmem-monitor.json",
            "node-problem-detector/netmem-monitor.json",
        ),
    ] {
        put(
            &root,
            &ws.join("packaging").join(src),
            &format!("/usr/share/netmem/{dest}"),
            0o644,
        )?;
    }

    for page in std::fs::read_dir(dist.join("man"))? {
        let page = page?.path();
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        gzip(&put(
            &root,
            &page,
            &format!("/usr/share/man/man1/{name}"),
            0o644,
        )?)?;
    }
    let comp = dist.join("completions");
    put(
        &root,
        &comp.join("netmem.bash"),
        "/usr/share/bash-completion/completions/netmem",
        0o644,
    )?;
    put(
        &root,
        &comp.join("_netmem"),
        "/usr/share/zsh/vendor-completions/_netmem",
        0o644,
    )?;
    put(
        &root,
        &comp.join("netmem.fish"),
        "/usr/share/fish/vendor_completions.d/netmem.fish",
        0o644,
    )?;

    let doc = "/usr/share/doc/netmem";
    gzip(&put(
        &root,
        &ws.join("README.md"),
        &format!("{doc}/README.md"),
        0o644,
    )?)?;
    write(&root, &format!("{doc}/copyright"), &copyright())?;
    let date = output(Command::new("date").args(["-R", "-u", "-d", &format!("@{}", epoch()?)]))?;
    gzip(&write(
        &root,
        &format!("{doc}/changelog"),
        &format!(
            "netmem ({v}) unstable; urgency=medium\n\n  * Release {v}: see {HOMEPAGE}.\n\n -- {MAINTAINER}  {}\n",
            date.trim()
        ),
    )?)?;

    // lintian finds libyaml's strings in the binary: it is serde_norway's
    // pure-Rust translation (unsafe-libyaml), statically linked like every
    // dependency of a static binary, not a copy of the C library.
    write(
        &root,
        "/usr/share/lintian/overrides/netmem",
        "netmem: embedded-library libyaml [usr/bin/netmem]\n",
    )?;
    let kb = output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN"])
            .arg(&root),
    )?;
    let kb = kb.split_whitespace().next().unwrap_or("0");
    write(&root, "/DEBIAN/control", &control(v, kb))?;
    md5sums(&root)?;
    for dir in walk_dirs(&root)? {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let deb = dist.join(format!("netmem_{v}_amd64.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb))?;
    Ok(deb)
}

fn epoch() -> Result<String> {
    Ok(output(
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(workspace_root()),
    )
    .map(|s| s.trim().to_string())
    .unwrap_or_else(|_| "0".into()))
}

fn control(v: &str, kb: &str) -> String {
    format!(
        "Package: netmem\n\
         Version: {v}\n\
         Architecture: amd64\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {kb}\n\
         Section: net\n\
         Priority: optional\n\
         Homepage: {HOMEPAGE}\n\
         Description: socket memory per listening port and backend, from eBPF\n \
         netmem tells which listening port, backend or process holds the\n \
         kernel's TCP and UDP socket memory, and which limit fired when the\n \
         kernel says \"Out of socket memory\". It reads sock_diag and traces\n \
         the kernel with eBPF (snapshot, trace, top, record, report, doctor),\n \
         and serves Prometheus metrics as a systemd service.\n \
         .\n \
         The binary is static (musl) with its eBPF programs embedded.\n"
    )
}

fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: netmem\n\
         Source: {HOMEPAGE}\n\
         \n\
         Files: *\n\
         Copyright: netmem developers\n\
         License: MIT or Apache-2.0\n \
         netmem is dual-licensed under the MIT license or the Apache License,\n \
         Version 2.0, at your option.\n \
         .\n \
         On Debian systems, the full text of the Apache License, Version 2.0\n \
         can be found in /usr/share/common-licenses/Apache-2.0.\n \
         .\n \
         Permission is hereby granted, free of charge, to any person obtaining\n \
         a copy of this software and associated documentation files (the\n \
         \"Software\"), to deal in the Software without restriction, including\n \
         without limitation the rights to use, copy, modify, merge, publish,\n \
         distribute, sublicense, and/or sell copies of the Software, and to\n \
         permit persons to whom the Software is furnished to do so, subject to\n \
         the following conditions:\n \
         .\n \
         The above copyright notice and this permission notice shall be\n \
         included in all copies or substantial portions of the Software.\n \
         .\n \
         THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND,\n \
         EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF\n \
         MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND\n \
         NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE\n \
         LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION\n \
         OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION\n \
         WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.\n"
    )
}

/// DEBIAN/md5sums: every file's md5, relative to the root.
fn md5sums(root: &Path) -> Result<()> {
    let list = output(
        Command::new("sh")
            .arg("-c")
            .arg("find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\\./||' | LC_ALL=C sort | xargs md5sum")
            .current_dir(root),
    )?;
    write(root, "/DEBIAN/md5sums", &list)?;
    Ok(())
}

fn walk_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in std::fs::read_dir(&out[i])? {
            let e = e?;
            if e.file_type()?.is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// lintian on the package: errors fail the build; warnings are shown.
pub fn lintian(deb: &Path) -> Result<()> {
    let o = Command::new("lintian")
        .args(["--no-tag-display-limit", "--fail-on", "error"])
        .arg(deb)
        .output()
        .context("cannot run lintian (cargo xtask setup installs it)")?;
    let text = String::from_utf8_lossy(&o.stdout);
    eprint!("{text}{}", String::from_utf8_lossy(&o.stderr));
    if !o.status.success() || text.lines().any(|l| l.starts_with("E: ")) {
        bail!("lintian reports errors on {}", deb.display());
    }
    Ok(())
}
