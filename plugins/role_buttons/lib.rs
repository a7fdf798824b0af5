//! Role buttons: panels of buttons that give and take roles.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The role buttons plugin.
pub struct RoleButtonsPlugin;

#[async_trait::async_trait]
impl Plugin for RoleButtonsPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "role-buttons"
    }
    fn description(&self) -> &'static str {
        "Self-assignable roles through button panels"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![CollectionSpec::new("role_button_panels", "RoleButtonPanel")
            .unique(&["guildId", "messageId"])]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Role buttons", &["role_button_panels"])]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// One button of a panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleButton {
    /// Role given.
    pub role_id: String,
    /// Emoji shown.
    #[serde(default)]
    pub emoji: Option<String>,
    /// Label shown.
    #[serde(default)]
    pub label: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `role_button_panels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleButtonPanel {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Channel.
    pub channel_id: String,
    /// The panel's message.
    pub message_id: String,
    /// Buttons.
    #[serde(default)]
    pub buttons: Vec<RoleButton>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
