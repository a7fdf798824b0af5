//! Voice channel transcription settings.

pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The VC transcription plugin.
pub struct VcTranscriptionPlugin;

/// The voice transcription plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for VcTranscriptionPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "vc-transcription"
    }
    fn description(&self) -> &'static str {
        "Transcribes voice messages and voice channels into text"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<VcTranscriptionConfig>(
            "vc_transcription_configs",
            vec![ConfigField::new("enabled", FieldKind::Bool)],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("vc_transcription_configs", "VcTranscriptionConfig")
                .unique(&["guildId"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "VC transcription",
            &["vc_transcription_configs"],
        )]
    }
}

/// `vc_transcription_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VcTranscriptionConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Whether transcription is on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
