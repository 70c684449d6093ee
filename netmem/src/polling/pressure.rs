//! The memory pressure hook's polling tier: /proc/net/protocols' TCP
//! `press` flag, compared with the last pass.

use anyhow::{anyhow, Context, Result};
use netmem_common::{payload, Event, GroupKey};

use super::raw_event;
use crate::sources::netns::Netns;

/// `/proc/net/protocols`' `press` column for TCP: "yes", "no", or "NI".
pub fn parse_tcp_pressure(text: &str) -> Option<(bool, i64)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let press = header.iter().position(|h| *h == "press")?;
    let memory = header.iter().position(|h| *h == "memory")?;
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.first() == Some(&"TCP") {
            let mem = cols.get(memory)?.parse().unwrap_or(-1);
            return Some((*cols.get(press)? == "yes", mem));
        }
    }
    None
}

#[derive(Default)]
pub struct PressurePoll {
    under: Option<bool>,
}

impl PressurePoll {
    pub fn poll(&mut self, netns: &Netns, now_ns: u64, tcp_mem: [i64; 3]) -> Result<Vec<Event>> {
        let text = netns.run(|| {
            std::fs::read_to_string("/proc/thread-self/net/protocols")
                .context("cannot read /proc/net/protocols")
        })?;
        let (under, mem) = parse_tcp_pressure(&text)
            .ok_or_else(|| anyhow!("no TCP row in /proc/net/protocols"))?;
        let was = self.under.replace(under);
        if was.is_none() || was == Some(under) {
            return Ok(vec![]);
        }
        let g = GroupKey::UNATTRIBUTED;
        let [mem0, mem1, mem2] = tcp_mem;
        Ok(vec![if under {
            raw_event(
                payload::PressureEnter {
                    allocated_pages: mem,
                    mem0,
                    mem1,
                    mem2,
                },
                now_ns,
                g,
            )
        } else {
            raw_event(
                payload::PressureLeave {
                    allocated_pages: mem,
                    mem0,
                    mem1,
                    mem2,
                },
                now_ns,
                g,
            )
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_flag() {
        let t = "protocol  size sockets  memory press maxhdr  slab module     cl co di ac io in de sh ss gs se re sp bi br ha uh gp em\n\
                 TCPv6     2464      3       4   no     320   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y\n\
                 UDP       1088      1      12   NI       0   yes  kernel      y  y  y  n  y  y  y  n  y  y  y  y  y  n  n  n  y  y  n\n\
                 TCP       2304      5       4   yes    320   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y\n";
        assert_eq!(parse_tcp_pressure(t), Some((true, 4)));
    }
}
