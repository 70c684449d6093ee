//! The command line: `netmem [-v] SUBCOMMAND ...`. Each subcommand's flags
//! and what it runs are in its `cmd/<name>.rs`; this lists them. Packaging
//! builds man pages and shell completions from [`command`].

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd;

/// Live socket memory attribution: which listening port or backend holds the
/// kernel's socket memory, and which limit fired.
#[derive(Parser)]
#[command(name = "netmem", version = env!("NETMEM_LONG_VERSION"))]
pub struct Cli {
    /// Log loader diagnostics to stderr (RUST_LOG syntax also works).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// One variant per `cmd/<name>.rs`; its help is that file's `Args`.
#[derive(Subcommand)]
enum Cmd {
    Snapshot(cmd::snapshot::Args),
    Trace(cmd::trace::Args),
    Doctor(cmd::doctor::Args),
    Record(cmd::record::Args),
    Report(cmd::report::Args),
    Top(cmd::top::Args),
    Serve(cmd::serve::Args),
    Probes(cmd::probes::Args),
    Check(cmd::check::Args),
}

/// Every subcommand, flag and help text netmem parses, as clap sees them
/// (for `clap_mangen` and `clap_complete`).
pub fn command() -> clap::Command {
    Cli::command()
}

impl Cli {
    /// Runs the subcommand given; its exit status when it has one of its
    /// own (`check`'s 0/1/2), else success.
    pub fn run(self) -> Result<ExitCode> {
        let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
        match self.cmd {
            Cmd::Snapshot(a) => done(a.run()),
            Cmd::Trace(a) => done(a.run()),
            Cmd::Doctor(a) => done(a.run()),
            Cmd::Record(a) => done(a.run()),
            Cmd::Report(a) => done(a.run()),
            Cmd::Top(a) => done(a.run()),
            Cmd::Serve(a) => done(a.run()),
            Cmd::Probes(a) => done(a.run()),
            Cmd::Check(a) => a.run(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the definition (conflicting names, defaults
    /// that do not parse, `mut_arg` on a flag that is not there), which
    /// otherwise fire only when that subcommand is parsed.
    #[test]
    fn the_command_line_is_well_formed() {
        super::command().debug_assert();
    }
}
