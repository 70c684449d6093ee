//! /init of the QEMU guests `cargo xtask vm-test` boots: mounts what netmem
//! needs, loads veth, runs the scenarios for each requested tier with the
//! guest's own kernel and sysctls (`netmem snapshot`'s once, before them),
//! prints one `NETMEM-RESULT` JSON line per scenario on the console, and
//! powers the guest off.

use std::ffi::CString;
use std::io::Write;
use std::process::Command;

use netmem_tests::scenarios;
use serde_json::json;

fn mount(src: &str, target: &str, fstype: &str) {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).unwrap();
    // SAFETY: valid C strings; failure is reported, not fatal.
    let r = unsafe {
        libc::mount(
            c(src).as_ptr(),
            c(target).as_ptr(),
            c(fstype).as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        eprintln!(
            "mount {fstype} on {target}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn insmod(path: &str) {
    let Ok(f) = std::fs::File::open(path) else {
        eprintln!("no module {path}");
        return;
    };
    use std::os::fd::AsRawFd;
    let params = CString::new("").unwrap();
    // SAFETY: finit_module with an open module file and empty parameters.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r != 0 {
        eprintln!("insmod {path}: {}", std::io::Error::last_os_error());
    }
}

fn setup() {
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    mount("devtmpfs", "/dev", "devtmpfs");
    mount("tmpfs", "/run", "tmpfs");
    mount("tmpfs", "/tmp", "tmpfs");
    mount("nodev", "/sys/kernel/tracing", "tracefs");
    mount("bpf", "/sys/fs/bpf", "bpf");
    // cgroup v2 with the memory controller for the children, as systemd
    // sets a Debian host up: the owners scenario checks memory.stat.
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2");
    let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
    std::env::set_var("PATH", "/bin");
    let _ = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    let order = std::fs::read_to_string("/lib/modules/order").unwrap_or_default();
    for m in order.lines() {
        insmod(m);
    }
}

fn poweroff() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot have no memory preconditions.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    std::process::exit(0)
}

/// Mounts an empty tmpfs over /sys/kernel/btf (`hide`), or takes it away.
fn hide_btf(hide: bool) -> bool {
    let dir = c"/sys/kernel/btf";
    // SAFETY: both strings are NUL-terminated literals; a failed call only
    // returns an error.
    unsafe {
        if hide {
            libc::mount(
                c"none".as_ptr(),
                dir.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) == 0
        } else {
            libc::umount(dir.as_ptr()) == 0
        }
    }
}

fn cmdline_value(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).map(String::from))
}

fn main() {
    let pid1 = std::process::id() == 1;
    if pid1 {
        setup();
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let tiers = cmdline_value(&cmdline, "netmem.tiers").unwrap_or_else(|| "fentry".into());
    let only = cmdline_value(&cmdline, "netmem.scenarios");
    if let Some(n) = cmdline_value(&cmdline, "netmem.slowdown") {
        std::env::set_var("NETMEM_GUEST_SLOWDOWN", n);
    }
    let netmem = "/bin/netmem";
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == name))
    };
    let result = |tier: &str, name: &str, r: anyhow::Result<String>, t0: std::time::Instant| {
        let line = json!({
            "kernel": kernel, "tier": tier, "scenario": name, "ok": r.is_ok(),
            "detail": match &r { Ok(d) => d.clone(), Err(e) => format!("{e:#}") },
            "seconds": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        });
        println!("NETMEM-RESULT {line}");
    };
    // A snapshot attaches nothing: once, whatever the tiers.
    if wanted("snapshot") {
        let t0 = std::time::Instant::now();
        result(
            "sock_diag",
            "snapshot",
            scenarios::snapshot(netmem, &[], "sock_diag"),
            t0,
        );
    }
    // Nor does the census tier: once, before the tiers hide anything.
    if wanted("census") {
        let t0 = std::time::Instant::now();
        result(
            "bpf_iter",
            "census",
            scenarios::census(netmem, &[], "bpf_iter"),
            t0,
        );
    }
    for tier in tiers.split(',') {
        // `nobtf`: the kernel's BTF hidden under an empty tmpfs, as on a
        // kernel built without it; the best tier there is then polling.
        let nobtf = tier == "nobtf";
        if nobtf && !hide_btf(true) {
            println!("NETMEM-PROBES {tier} error cannot hide /sys/kernel/btf");
            continue;
        }
        let tier_args: &[&str] = if nobtf { &[] } else { &["--max-tier", tier] };
        let out = Command::new(netmem)
            .args(["probes", "--json"])
            .args(tier_args)
            .output();
        match out {
            Ok(o) => {
                for l in String::from_utf8_lossy(&o.stdout).lines() {
                    println!("NETMEM-PROBES {tier} {l}");
                }
                if !o.status.success() {
                    println!(
                        "NETMEM-PROBES {tier} error {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                }
            }
            Err(e) => println!("NETMEM-PROBES {tier} error {e}"),
        }
        type Scenario = fn(&str, &[&str], &str) -> anyhow::Result<String>;
        let all: &[(&str, Scenario)] = if nobtf {
            &[
                ("no_btf", netmem_tests::no_btf::guest),
                ("netns_aborts", scenarios::netns_aborts),
            ]
        } else {
            &[
                ("orphans", scenarios::orphans),
                ("tcp_mem", scenarios::tcp_mem),
                ("routes", scenarios::routes),
                ("owners", scenarios::owners),
                ("netns_aborts", scenarios::netns_aborts),
                ("memcg", scenarios::memcg),
            ]
        };
        for &(name, f) in all {
            if !wanted(name) {
                continue;
            }
            let t0 = std::time::Instant::now();
            result(tier, name, f(netmem, tier_args, tier), t0);
        }
        // The seed incident needs a guest of its own (little memory: the
        // kernel's default limits are small there), so it runs only when
        // named.
        let named = only
            .as_deref()
            .is_some_and(|o| o.split(',').any(|x| x == "seed"));
        if !nobtf && named {
            let t0 = std::time::Instant::now();
            result(tier, "seed", scenarios::seed(netmem, tier_args, tier), t0);
        }
        if nobtf {
            hide_btf(false);
        }
    }
    println!("NETMEM-DONE");
    if pid1 {
        poweroff();
    }
}
