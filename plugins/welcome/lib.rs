//! Welcome and leave messages.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The welcome plugin.
pub struct WelcomePlugin;

/// The welcome plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for WelcomePlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "welcome"
    }
    fn description(&self) -> &'static str {
        "Greets members who join and says goodbye to those who leave"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<WelcomeConfig>(
            "welcome_configs",
            vec![
                ConfigField::new("enabled", FieldKind::Bool),
                ConfigField::new("channelId", FieldKind::Channel),
                ConfigField::new("message", FieldKind::Text { max: 2000 }),
                ConfigField::new("leaveMessage", FieldKind::Text { max: 2000 }),
            ],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![CollectionSpec::new("welcome_configs", "WelcomeConfig").unique(&["guildId"])]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Welcome", &["welcome_configs"])]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// `welcome_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WelcomeConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Whether greetings are on.
    #[serde(default)]
    pub enabled: bool,
    /// Greeting channel.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Greeting.
    #[serde(default)]
    pub message: Option<String>,
    /// Goodbye.
    #[serde(default)]
    pub leave_message: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
