//! A fleet of three hosts (namespaces, each with its own `netmem serve`)
//! scraped by a real Prometheus: what `netmem doctor --prometheus` says
//! of them.

use std::process::Command;

use netmem_tests::fleet::Fleet;
use netmem_tests::{netmem_bin, require_root};

#[test]
fn fleet_smoke() {
    require_root();
    let fleet = Fleet::start(&[], None);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let o = Command::new(netmem_bin())
        .args(["doctor", "--prometheus", &fleet.url(), "--since", "5m"])
        .output()
        .unwrap();
    eprintln!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for h in &fleet.hosts {
        let o = h.ns.netmem(&["doctor"]);
        eprintln!("--- {} alone:\n{}", h.instance, String::from_utf8_lossy(&o.stdout));
    }
}
