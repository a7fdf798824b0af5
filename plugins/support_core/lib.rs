//! Support core: the staff roster and support hours used by modmail and tickets.

pub mod sample;

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The support core plugin.
pub struct SupportCorePlugin;

#[async_trait::async_trait]
impl Plugin for SupportCorePlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "support-core"
    }
    fn description(&self) -> &'static str {
        "Support staff roster and opening hours shared by modmail and tickets"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("support_staff", "SupportStaff").unique(&["guildId", "userId"]),
            CollectionSpec::new("support_schedules", "SupportSchedule").unique(&["guildId"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Support staff",
            &["support_staff", "support_schedules"],
        )]
    }
}

/// `support_staff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportStaff {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Staff member.
    pub user_id: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `support_schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportSchedule {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
