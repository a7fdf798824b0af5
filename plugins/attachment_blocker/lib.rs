//! Attachment blocker: channels where attachments of some kinds are removed.

pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The attachment blocker plugin.
pub struct AttachmentBlockerPlugin;

/// The attachment blocker plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for AttachmentBlockerPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "attachment-blocker"
    }
    fn description(&self) -> &'static str {
        "Removes attachments of blocked kinds from chosen channels"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<AttachmentBlockerConfig>(
            "attachment_blocker_configs",
            vec![ConfigField::new("enabled", FieldKind::Bool)],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("attachment_blocker_configs", "AttachmentBlockerConfig")
                .unique(&["guildId"]),
            CollectionSpec::new("attachment_blocker_channels", "AttachmentBlockerChannel")
                .unique(&["guildId", "channelId"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Attachment blocker",
            &["attachment_blocker_configs", "attachment_blocker_channels"],
        )]
    }
}

/// `attachment_blocker_configs`: a guild's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentBlockerConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Whether the blocker is on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `attachment_blocker_channels`: one channel's rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentBlockerChannel {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Channel snowflake.
    pub channel_id: String,
    /// Blocked kinds (e.g. `image`, `video`).
    #[serde(default)]
    pub blocked_types: Vec<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
