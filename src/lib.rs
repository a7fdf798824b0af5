//! The `heimdall` binary's library: the one list of plugins ([`plugins::all`]), the command
//! line ([`cli`]) and what needs both (the sample data of every plugin, [`seed`]).
//! Everything else lives in the crates below: the host (`heimdall-host`), the migration
//! engine, the gateway, the base types, and one crate per plugin (`plugins/`).

pub mod cli;
pub mod plugins;
pub mod seed;
pub mod term;
