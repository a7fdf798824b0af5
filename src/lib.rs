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
pub mod crypto;
pub mod db;
pub mod discord;
pub mod embedded;
pub mod error;
/// The WebSocket gateway (its own crate: it knows no plugin, no migration, no `Data`).
pub use heimdall_gateway as gateway;
pub mod locales;
pub mod migration;
pub mod plugin;
pub mod seed;
pub mod startup;
pub mod telemetry;

#[path = "../plugins/mod.rs"]
pub mod plugins;
