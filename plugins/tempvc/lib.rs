//! Temporary voice channels: join a hub channel, get your own room.

pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The temp voice channel plugin.
pub struct TempVcPlugin;

/// The temporary voice channels plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for TempVcPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "tempvc"
    }
    fn description(&self) -> &'static str {
        "Voice rooms created on demand and removed when empty"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<TempVcConfig>(
            "tempvc_configs",
            vec![ConfigField::new("hubChannelId", FieldKind::VoiceChannel)],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("tempvc_configs", "TempVcConfig").unique(&["guildId"]),
            CollectionSpec::new("tempvc_channels", "TempVcChannel").unique(&["channelId"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Temp voice channels",
            &["tempvc_configs", "tempvc_channels"],
        )]
    }
}

/// `tempvc_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TempVcConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Hub channel.
    #[serde(default)]
    pub hub_channel_id: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `tempvc_channels`: a live room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TempVcChannel {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Channel (unique).
    pub channel_id: String,
    /// Owner.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
