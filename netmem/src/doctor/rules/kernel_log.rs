//! What the kernel log says that the figures cannot.

use crate::doctor::{Finding, Severity, State};
use crate::sources::kernel_log::LogMessage;

pub fn kernel_log(s: &State) -> Vec<Finding> {
    let (major, minor) = s.host.version().unwrap_or((0, 0));
    let mut out = Vec::new();
    for (m, seen) in &s.kernel_log {
        let (sev, fired, meaning, can_print) = match m {
            LogMessage::OutOfSocketMemory => (Severity::Warn, true,
                "Before 3.x, tcp_check_oom's one message for both causes: too many orphans or tcp_mem exhausted. See the orphans and tcp_mem findings for which one the figures point to.",
                major < 3),
            LogMessage::TooManyOrphans => (Severity::Critical, true,
                "The orphan test of tcp_check_oom fired (orphans << shift > tcp_max_orphans): see the orphans finding.", major >= 3),
            LogMessage::OutOfTcpMem => (Severity::Critical, true,
                "The memory test of tcp_check_oom fired (allocated > tcp_mem[2] with data queued): see the tcp_mem finding.", major >= 3),
            LogMessage::RouteHashChainTooLong => (Severity::Info, false,
                "The IPv4 route cache's hash chain warning (with \"Adjust your secret_interval\"). The cache was removed in 3.6: it has nothing to do with socket memory.",
                major < 3 || (major == 3 && minor < 6)),
        };
        let mut f = Finding::new(
            "kernel_log",
            sev,
            format!("Kernel log: \"{}\", {}", m.pattern(), seen.describe()),
        );
        f.fired = fired;
        f.ev("lines", seen.lines);
        if let Some(t) = &seen.first {
            f.ev("first written", t);
        }
        if let Some(t) = seen.last.as_ref().filter(|_| seen.lines > 1) {
            f.ev("last written", t);
        }
        f.ev(
            "source",
            s.kernel_log_source.as_deref().unwrap_or("?").escape_debug(),
        )
        .ev(
            "this kernel can print it",
            if can_print {
                "yes"
            } else {
                "no: kernels since 3.x print the cause instead (these lines were written by an older kernel, or copied from one)"
            },
        );
        f.explanation = meaning.to_string();
        out.push(f);
    }
    out
}
