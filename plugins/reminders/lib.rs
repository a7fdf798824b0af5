//! Reminders: "remind me in 2 hours", in a guild channel or by DM.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The reminders plugin.
pub struct RemindersPlugin;

#[async_trait::async_trait]
impl Plugin for RemindersPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "reminders"
    }
    fn description(&self) -> &'static str {
        "Personal reminders in channels or by DM"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("reminders", "Reminder").nullable_guild(),
            CollectionSpec::new("reminder_settings", "ReminderSettings")
                .unique(&["userId"])
                .global(),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Reminders",
            &["reminders", "reminder_settings"],
        )]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// `reminders`: a pending reminder; `guild_id` is `None` for a DM reminder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reminder {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Member.
    pub user_id: String,
    /// Guild, or null for a DM reminder.
    pub guild_id: Option<String>,
    /// Channel.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Text.
    pub content: String,
    /// Due.
    pub remind_at: DateTime,
    /// Created.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `reminder_settings`: a user's preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReminderSettings {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// User snowflake.
    pub user_id: String,
    /// IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
