//! One file per subcommand. Each owns its clap `Args` (its own flags, and
//! the shared groups of `args/` flattened in) and their `run`, which builds
//! the typed model through the engine or a source and hands it to the sink
//! it picked; none formats output. `crate::cli` lists the subcommands.
pub mod args;
pub mod check;
pub mod doctor;
pub mod probes;
pub mod record;
pub mod report;
pub mod serve;
pub mod snapshot;
pub mod top;
pub mod trace;

/// The live commands' runtime: one thread, the engine's loop (`serve`'s
/// HTTP side and `top`'s view have threads of their own).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
