//! `heimdall seed` over every plugin of the binary: the host's driver
//! ([`heimdall_host::seed`]) with [`crate::plugins::all`].

use mongodb::Database;

pub use heimdall_host::seed::{SeedOptions, SeedReport};

use heimdall_host::plugin::Registry;

/// The old bot's known records, one per quirk, from every plugin that imports them.
pub mod legacy_fixtures {
    pub use heimdall_host::seed::LEGACY_FIXTURE_GUILD as GUILD;
    pub use heimdall_plugin_core::sample::fixtures::*;
    pub use heimdall_plugin_moderation::sample::fixtures::*;
    pub use heimdall_plugin_modmail::sample::fixtures::*;
    pub use heimdall_plugin_reminders::sample::fixtures::*;
    pub use heimdall_plugin_role_buttons::sample::fixtures::*;
    pub use heimdall_plugin_suggestions::sample::fixtures::*;
    pub use heimdall_plugin_tags::sample::fixtures::*;
}

/// Writes a whole Heimdall instance (every plugin's sample data) into the empty `db`.
pub async fn seed_instance(db: &Database, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    let registry = Registry::new(crate::plugins::all())?;
    heimdall_host::seed::seed_instance(db, &registry, &registry.samples(), opts).await
}

/// Writes an old-bot database (every importing plugin's sample records) into the empty `db`.
pub async fn seed_legacy(db: &Database, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    let registry = Registry::new(crate::plugins::all())?;
    heimdall_host::seed::seed_legacy(db, &registry.samples(), opts).await
}
