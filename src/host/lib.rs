//! Heimdall's host: configuration, the shared context ([`context::Data`]), the [`Plugin`]
//! trait and the [`Registry`] of plugins, the HTTP API, sign-in, the Discord framework,
//! start-up, the embedded database and the sample-data driver.
//!
//! The host names no plugin: it is handed the list of plugins by the binary and learns
//! everything else (collections, steps, commands, routes, sample data) from them.
//!
//! [`Plugin`]: plugin::Plugin
//! [`Registry`]: plugin::Registry

pub mod api;
pub mod auth;
/// Look-ups asked at the same moment answered by one query, from the base crate.
pub use heimdall_base::batch;
pub mod config;
pub mod context;
/// Secrets at rest (AES-256-GCM), from the base crate.
pub use heimdall_base::crypto;
/// MongoDB connection and the catalog's indexes, from the base crate.
pub use heimdall_base::db;
/// Discord ids (snowflakes) as Heimdall accepts them, from the base crate.
pub use heimdall_base::ids;
pub mod discord;
pub mod docs;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod guild_config;
pub mod http;
/// The WebSocket gateway (its own crate: it knows no plugin, no migration, no `Data`).
pub use heimdall_gateway as gateway;
pub mod locales;
pub mod lookups;
pub mod oauth;
pub mod owners;
/// The migration engine (its own crate: it knows no plugin by name and no `Data`).
pub use heimdall_migration as migration;
pub mod plugin;
pub mod routes;
pub mod seed;
pub mod settings_routes;
pub mod startup;
pub mod telemetry;
