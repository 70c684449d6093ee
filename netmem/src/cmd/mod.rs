//! One file per subcommand. Each builds the typed model through the engine
//! or a source and hands it to the sink it was given; none formats output.
pub mod doctor;
pub mod probes;
pub mod record;
pub mod report;
pub mod serve;
pub mod snapshot;
pub mod top;
pub mod trace;
