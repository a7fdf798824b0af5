//! Dev: owner-only tools, above all migration (Legacy Import and Instance Clone).

use std::sync::Arc;

use heimdall_host::context::Data;
use heimdall_host::plugin::{CollectionSpec, Plugin};

pub mod api;
pub mod discord;

/// The dev plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

/// The dev plugin.
#[derive(Default)]
pub struct DevPlugin {
    state: Arc<api::DevState>,
}

/// The migration engine's environment in a running bot: its database, the catalog, its
/// `ENCRYPTION_KEY` and the lease lifetime.
pub fn migration_env(data: &Data) -> heimdall_host::migration::clone::MigrationEnv {
    heimdall_host::migration::clone::MigrationEnv {
        target: data.db.clone(),
        target_uri: data.db_uri.clone(),
        registry: data.registry.catalog(),
        crypto: data.crypto.clone(),
        lease_ttl: heimdall_host::migration::clone::lease_ttl_from_env(),
        stall_after: heimdall_host::migration::stall_after_from_env(),
        read_wait: heimdall_host::migration::read_wait_from_env(),
        fail_point: None,
    }
}

/// Forwards migration progress to owners over the gateway, as `migration:*` events.
pub struct OwnerSink(pub heimdall_host::gateway::WebSocketManager);

impl heimdall_host::migration::ProgressSink for OwnerSink {
    fn emit(&self, e: &heimdall_host::migration::ProgressEvent) {
        self.0
            .broadcast_to_owners(e.kind().name(), serde_json::to_value(e).unwrap_or_default());
    }
}

/// The collection holding migration run records.
pub const MIGRATION_RUNS: &str = heimdall_host::migration::runs::RUNS;

#[async_trait::async_trait]
impl Plugin for DevPlugin {
    fn name(&self) -> &'static str {
        "dev"
    }
    fn description(&self) -> &'static str {
        "Owner-only tools: Legacy Import and Instance Clone"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new(MIGRATION_RUNS, "MigrationRun").internal(),
            CollectionSpec::new(heimdall_host::migration::runs::LOCKS, "MigrationLock").internal(),
            CollectionSpec::new(heimdall_host::migration::runs::FAILURES, "MigrationFailure")
                .internal(),
        ]
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn commands(&self) -> Vec<poise::Command<Data, heimdall_host::context::Error>> {
        vec![discord::migrate()]
    }
    fn routes(&self) -> heimdall_host::routes::Routes {
        api::routes(self.state.clone())
    }
}
