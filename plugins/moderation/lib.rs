//! Moderation: settings, automod presets and rules, infractions (cases) and notes.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The moderation plugin.
pub struct ModerationPlugin;

#[async_trait::async_trait]
impl Plugin for ModerationPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "moderation"
    }
    fn description(&self) -> &'static str {
        "Warnings, mutes, kicks and bans as numbered cases, automod rules and mod notes"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("moderation_configs", "ModerationConfig").unique(&["guildId"]),
            CollectionSpec::new("automod_presets", "AutomodPreset").unique(&["guildId", "name"]),
            CollectionSpec::new("automod_rules", "AutomodRule")
                .unique(&["guildId", "name"])
                .optional_reference("presetId", "automod_presets"),
            CollectionSpec::new("infractions", "Infraction")
                .unique(&["guildId", "caseNumber"])
                .optional_reference("ruleId", "automod_rules"),
            CollectionSpec::new("mod_notes", "ModNote"),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new(
                "Moderation config",
                &["moderation_configs", "automod_presets"],
            ),
            CloneStepSpec::new("Automod rules", &["automod_rules"]),
            CloneStepSpec::new("Infractions", &["infractions", "mod_notes"]),
        ]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// `moderation_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModerationConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Mute role.
    #[serde(default)]
    pub mute_role_id: Option<String>,
    /// Mod log channel.
    #[serde(default)]
    pub mod_log_channel_id: Option<String>,
    /// Whether automod is on.
    #[serde(default)]
    pub automod_enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `automod_presets`: a named set of actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomodPreset {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Preset name (unique per guild).
    pub name: String,
    /// Actions taken.
    #[serde(default)]
    pub actions: Vec<Document>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `automod_rules`: a trigger and optionally a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomodRule {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Rule name (unique per guild).
    pub name: String,
    /// Whether the rule is on.
    #[serde(default)]
    pub enabled: bool,
    /// Trigger definition.
    #[serde(default)]
    pub trigger: Document,
    /// Preset applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<ObjectId>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `infractions`: a numbered moderation case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Infraction {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Case number (unique per guild).
    pub case_number: i32,
    /// Sanctioned member.
    pub user_id: String,
    /// Moderator.
    pub moderator_id: String,
    /// `warn`, `mute`, `kick`, `ban` or `timeout`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Points.
    #[serde(default)]
    pub points: i32,
    /// The automod rule, null for manual actions.
    #[serde(default)]
    pub rule_id: Option<ObjectId>,
    /// When.
    pub created_at: DateTime,
    /// Expiry.
    #[serde(default)]
    pub expires_at: Option<DateTime>,
    /// `manual`, `automod` or `legacy`.
    pub source: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `mod_notes`: a moderator's note on a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModNote {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Member.
    pub user_id: String,
    /// Author.
    pub moderator_id: String,
    /// Text.
    pub content: String,
    /// When.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
