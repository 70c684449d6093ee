//! The `netmem` binary: parses the command line (`netmem::cli`), sets up
//! logging, runs the subcommand, and turns its error into one line and an
//! exit status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use netmem::cli::Cli;

fn main() -> ExitCode {
    netmem::kernel::startup::begin();
    // Before anything else: a signal that arrives while the probes load
    // must still stop netmem cleanly.
    netmem::shutdown::install();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            // Arguments echoed in a message may hold control characters.
            eprintln!(
                "netmem: error: {}",
                netmem::format::printable(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// Log records (netmem's own, aya's, and the eBPF programs' through
/// aya-log) read like netmem's other messages: `netmem: warning: ...`.
fn init_logging(verbose: bool) {
    let level = if verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|buf, r| {
            let msg = r.args().to_string();
            let msg = netmem::format::printable(&msg);
            match r.level() {
                log::Level::Error => writeln!(buf, "netmem: error: {msg}"),
                log::Level::Warn => writeln!(buf, "netmem: warning: {msg}"),
                log::Level::Info => writeln!(buf, "netmem: note: {msg}"),
                // Several crates log at these levels: say which one.
                l => writeln!(
                    buf,
                    "netmem: {}: {}: {msg}",
                    l.as_str().to_lowercase(),
                    r.target()
                ),
            }
        })
        // Standard error, held while `top` owns the terminal.
        .target(env_logger::Target::Pipe(Box::new(
            netmem::tui::held_log::Target,
        )))
        .init();
}
