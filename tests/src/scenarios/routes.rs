//! Route exceptions for real: IPv4 and IPv6 behind a router with a
//! too-small MTU, in namespaces the scenario creates (runs on the host too).

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use netmem::hooks::HookId;

use super::{check_tiers, events, summary, with_fallbacks, Trace};

/// Runs `f` on a thread inside network namespace `/run/netns/NAME`;
/// sockets it creates stay in that namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::rig::enter_netns(name)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("namespace thread panicked"))?
    })
}

/// Three namespaces owned by the scenario: client -- router -- server, the
/// router's link to the server with MTU 1280.
pub struct RouterTopology {
    pub client: String,
    names: Vec<String>,
}

/// Runs `ip ARGS`; its stderr becomes the error.
pub fn ip(args: &[&str]) -> Result<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip (install iproute2)")?;
    ensure!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr).trim()
    );
    Ok(())
}

impl RouterTopology {
    pub fn new(tag: &str) -> Result<RouterTopology> {
        let p = format!("nm{}{tag}", std::process::id() % 10000);
        let (c, r, s) = (format!("{p}c"), format!("{p}r"), format!("{p}s"));
        let t = RouterTopology {
            client: c.clone(),
            names: vec![c.clone(), r.clone(), s.clone()],
        };
        for n in &t.names {
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n", &c, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", &r,
        ])?;
        ip(&[
            "-n", &r, "link", "add", "r1", "type", "veth", "peer", "name", "s0", "netns", &s,
        ])?;
        for (ns, dev, v4, v6, mtu) in [
            (&c, "c0", "10.1.0.1/24", "fd01::1/64", "1500"),
            (&r, "r0", "10.1.0.2/24", "fd01::2/64", "1500"),
            (&r, "r1", "10.2.0.1/24", "fd02::1/64", "1280"),
            (&s, "s0", "10.2.0.2/24", "fd02::2/64", "1280"),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev])?;
            ip(&["-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad"])?;
            ip(&["-n", ns, "link", "set", dev, "mtu", mtu, "up"])?;
        }
        ip(&["-n", &c, "route", "add", "10.2.0.0/24", "via", "10.1.0.2"])?;
        ip(&[
            "-n",
            &c,
            "-6",
            "route",
            "add",
            "fd02::/64",
            "via",
            "fd01::2",
        ])?;
        ip(&["-n", &s, "route", "add", "default", "via", "10.2.0.1"])?;
        ip(&["-n", &s, "-6", "route", "add", "default", "via", "fd02::1"])?;
        in_netns(&r, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
            Ok(())
        })?;
        // The links' own (link-local) addresses still run duplicate address
        // detection; until it ends, IPv6 neighbours and the router's
        // "packet too big" may not answer. A fast tracer start would then
        // send before the path exists.
        let deadline = Instant::now() + Duration::from_secs(5);
        for n in &t.names {
            while Instant::now() < deadline {
                let o = Command::new("ip")
                    .args(["-n", n, "-6", "addr", "show", "tentative"])
                    .output()?;
                if o.stdout.is_empty() {
                    break;
                }
                sleep(Duration::from_millis(50));
            }
        }
        Ok(t)
    }
}

impl Drop for RouterTopology {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn set_int(fd: i32, level: i32, opt: i32, v: i32) -> Result<()> {
    // SAFETY: setsockopt with a valid int option.
    let r = unsafe { libc::setsockopt(fd, level, opt, &v as *const i32 as *const libc::c_void, 4) };
    ensure!(r == 0, "setsockopt: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Datagrams too big for the router's next link, with "don't fragment":
/// the router answers with ICMP "fragmentation needed" / "packet too big",
/// and the client's kernel records a route exception with PMTU 1280.
pub fn routes(netmem: &str, tier_args: &[&str], expect_tier: &str) -> Result<String> {
    let topo = RouterTopology::new("rt")?;
    let mut args = vec!["--netns", topo.client.as_str()];
    args.extend_from_slice(tier_args);
    let trace = Trace::start(netmem, &args)?;
    in_netns(&topo.client, || {
        let v4 = UdpSocket::bind("0.0.0.0:0")?;
        set_int(
            v4.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        let v6 = UdpSocket::bind("[::]:0")?;
        set_int(
            v6.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        let big = [0u8; 1400];
        for _ in 0..5 {
            // EMSGSIZE once the exception exists: that is the point.
            let _ = v4.send_to(&big, "10.2.0.2:9");
            let _ = v6.send_to(&big, "[fd02::2]:9");
            sleep(Duration::from_millis(200));
        }
        Ok(())
    })?;
    sleep(Duration::from_millis(800));
    let lines = trace.stop()?;
    let fb = check_tiers(
        &lines,
        &[HookId::RouteExceptionV4, HookId::RouteExceptionV6],
        expect_tier,
    )?;
    let all = events(&lines, "route_exception");
    for (dst, fam) in [("10.2.0.2", "ipv4"), ("fd02::2", "ipv6")] {
        let hit = all
            .iter()
            .find(|e| e["dst"] == dst && e["pmtu"] == 1280 && e["family"] == fam);
        ensure!(
            hit.is_some(),
            "no {fam} route exception for {dst} with pmtu 1280: {}",
            summary(&all)
        );
    }
    let per_s = lines
        .iter()
        .filter(|v| v["type"] == "context")
        .filter_map(|v| v["route_exceptions"]["inserted"].as_u64())
        .sum::<u64>();
    ensure!(per_s > 0, "interval lines show no route exception growth");
    Ok(with_fallbacks(
        format!(
            "{} route exceptions (10.2.0.2 and fd02::2, pmtu 1280), {per_s} counted in intervals",
            all.len()
        ),
        fb,
    ))
}
