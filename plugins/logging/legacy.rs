//! Legacy Import, step 1: `guildsettings.logChannel` → `logging_configs`.

use std::sync::Arc;

use mongodb::bson::{doc, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacyStepSpec, MapContext, Mapped, Produced,
};
use heimdall_plugin_core::legacy::{SETTINGS, SETTINGS_LABEL};

/// Maps the log channels of a settings record (only when a log channel is set).
pub struct LoggingMapper;

impl LegacyMapper for LoggingMapper {
    fn map(&self, r: &Document, _ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let Some(log) = coerce::id(r, "logChannel")? else {
            return Ok(Mapped::Nothing);
        };
        let moderation = coerce::id(r, "modLogChannel")?.unwrap_or_else(|| log.clone());
        Ok(Mapped::Docs(vec![Produced {
            collection: "logging_configs",
            doc: doc! { "_id": primary_id(r), "guildId": guild, "channels": { "messages": log, "moderation": moderation } },
        }]))
    }
}

/// Step 1 as the logging plugin contributes it.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        1,
        SETTINGS_LABEL,
        SETTINGS,
        Arc::new(LoggingMapper),
    )]
}
