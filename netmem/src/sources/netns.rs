//! The network namespace netmem reports on: its own, or one named with
//! `--netns` (a name under /run/netns, as `ip netns` makes, or a path such as
//! /proc/PID/ns/net). Running in the host namespace and looking into another
//! keeps the global limits (tcp_mem, tcp_max_orphans), which the kernel only
//! shows in the initial namespace, readable.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use anyhow::{anyhow, bail, Context, Result};

pub struct Netns {
    file: Option<File>,
    /// As given on the command line, for error messages.
    label: String,
}

impl Netns {
    pub fn open(arg: Option<&str>) -> Result<Netns> {
        let Some(arg) = arg else {
            return Ok(Netns {
                file: None,
                label: "own".into(),
            });
        };
        let path = if arg.contains('/') {
            arg.to_string()
        } else {
            format!("/run/netns/{arg}")
        };
        let file = File::open(&path).with_context(|| {
            format!("cannot open network namespace {path} (see `ip netns list`)")
        })?;
        Ok(Netns {
            file: Some(file),
            label: arg.to_string(),
        })
    }

    /// Another handle on the same namespace, for a worker thread.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            file: match &self.file {
                Some(f) => Some(f.try_clone().context("cannot duplicate the netns fd")?),
                None => None,
            },
            label: self.label.clone(),
        })
    }

    /// Inode number identifying the namespace, as the kernel programs see it.
    pub fn inum(&self) -> Result<u32> {
        let m = match &self.file {
            Some(f) => f.metadata(),
            None => std::fs::metadata("/proc/self/ns/net"),
        }
        .context("cannot stat the network namespace")?;
        Ok(m.ino() as u32)
    }

    /// Runs `f` on a thread inside the namespace (sockets it creates stay in
    /// that namespace); on the calling thread when it is our own.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let Some(file) = &self.file else { return f() };
        let fd = file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid fd; it only moves this scoped thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    bail!(
                        "cannot enter network namespace {}: {}",
                        self.label,
                        std::io::Error::last_os_error()
                    );
                }
                f()
            })
            .join()
            .map_err(|_| anyhow!("namespace worker panicked"))?
        })
    }
}
