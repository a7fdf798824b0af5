//! Logging: which channel receives which kind of event log.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The logging plugin.
pub struct LoggingPlugin;

#[async_trait::async_trait]
impl Plugin for LoggingPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "logging"
    }
    fn description(&self) -> &'static str {
        "Event logs (messages, members, moderation) to chosen channels"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![CollectionSpec::new("logging_configs", "LoggingConfig").unique(&["guildId"])]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Logging", &["logging_configs"])]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// `logging_configs`: event kind → channel id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Event kind → channel snowflake.
    #[serde(default)]
    pub channels: Document,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
