//! A fleet of three hosts (namespaces, each with its own `netmem serve`)
//! scraped by a real Prometheus: what `netmem doctor --prometheus` says
//! of them.

use netmem_tests::fleet::Fleet;
use netmem_tests::require_root;

#[test]
fn fleet_smoke() {
    require_root();
    let fleet = Fleet::start(&[], None);
    for q in [
        "netmem_group_orphans",
        "netmem_group_memory_bytes",
        "netmem_tcp_orphans",
    ] {
        for s in fleet.prometheus.query(q, None) {
            eprintln!("{q} {} {}", s["metric"], s["value"]);
        }
    }
}
