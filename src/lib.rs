//! Heimdall: a Discord bot that hosts plugins, with Instance Clone and Legacy Import.
//!
//! The library holds the host (configuration, shared context, plugin catalog, API,
//! encryption, migration) and the plugins (`plugins/`, listed once in [`plugins::all`]);
//! `main.rs` only parses the command line.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
/// Secrets at rest (AES-256-GCM), from the base crate.
pub use heimdall_base::crypto;
/// MongoDB connection and the catalog's indexes, from the base crate.
pub use heimdall_base::db;
pub mod discord;
pub mod docs;
pub mod embedded;
pub mod error;
/// The WebSocket gateway (its own crate: it knows no plugin, no migration, no `Data`).
pub use heimdall_gateway as gateway;
pub mod locales;
/// The migration engine (its own crate: it knows no plugin by name and no `Data`).
pub use heimdall_migration as migration;
pub mod plugin;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod term;

#[path = "../plugins/mod.rs"]
pub mod plugins;
