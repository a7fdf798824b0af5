//! Dev: owner-only tools, above all migration (Legacy Import and Instance Clone).

use std::sync::Arc;

use crate::context::Data;
use crate::plugin::{CollectionSpec, Plugin};

pub mod api;
pub mod discord;

/// The dev plugin.
#[derive(Default)]
pub struct DevPlugin {
    state: Arc<api::DevState>,
}

/// The collection holding migration run records.
pub const MIGRATION_RUNS: &str = crate::migration::runs::RUNS;

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
            CollectionSpec::new(crate::migration::runs::LOCKS, "MigrationLock").internal(),
            CollectionSpec::new(crate::migration::runs::FAILURES, "MigrationFailure").internal(),
        ]
    }
    fn commands(&self) -> Vec<poise::Command<Data, crate::context::Error>> {
        vec![discord::migrate()]
    }
    fn routes(&self) -> axum::Router<Data> {
        api::routes(self.state.clone())
    }
}
