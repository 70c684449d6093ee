//! What the attach engine found: per hook, the tier serving it and why each
//! better tier was not used. Part of the model every sink receives.

use serde::Serialize;

use super::catalog::{HookId, Tier};

/// Why a better tier was not used.
#[derive(Clone, Debug, Serialize)]
pub struct Unavailable {
    pub tier: Tier,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    #[serde(skip)]
    pub id: HookId,
    /// The hook's display name from the catalog.
    pub hook: &'static str,
    /// The tier serving the hook; null when nothing can.
    pub tier: Option<Tier>,
    /// What exactly is attached or read, e.g. `fexit:tcp_check_oom`.
    pub via: String,
    /// Every better tier, and why it was not used.
    pub unavailable: Vec<Unavailable>,
    /// What this hook is missing on this kernel even on its tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How many hooks are served, and how: the coverage every interval carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub served: usize,
    pub total: usize,
    /// Hooks on the polling tier (coarser: +/- one interval).
    pub polled: usize,
}

impl Coverage {
    pub fn of(status: &[HookStatus]) -> Coverage {
        Coverage {
            served: status.iter().filter(|s| s.tier.is_some()).count(),
            total: status.len(),
            polled: status
                .iter()
                .filter(|s| s.tier == Some(Tier::Polling))
                .count(),
        }
    }
}

/// The census tier this kernel gives (`netmem probes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CensusStatus {
    pub tier: super::catalog::CensusTier,
    /// The UDP iterator loaded too (else UDP by sock_diag).
    pub udp: bool,
    /// Why not in the kernel, on the sock_diag tier.
    pub why_not: Option<String>,
}

impl CensusStatus {
    /// What serves the census, as `probes` says it.
    pub fn via(&self) -> String {
        use super::catalog::{CensusTier, CENSUS_PROGRAMS};
        match self.tier {
            CensusTier::BpfIter => {
                let progs: Vec<String> = CENSUS_PROGRAMS
                    .iter()
                    .filter(|(_, target)| self.udp || *target != "udp")
                    .map(|(p, target)| format!("{p} (bpf_iter_{target})"))
                    .collect();
                let udp = if self.udp { "" } else { "; UDP by sock_diag" };
                format!("{}: one record per group{udp}", progs.join(", "))
            }
            CensusTier::SockDiag => "sock_diag dumps: one record per socket".to_string(),
        }
    }
}
