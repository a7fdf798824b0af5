//! Dashboard: who may see and change which guild on the web dashboard.

use mongodb::bson::{oid::ObjectId, Document};
use serde::{Deserialize, Serialize};

use crate::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The dashboard plugin.
pub struct DashboardPlugin;

#[async_trait::async_trait]
impl Plugin for DashboardPlugin {
    fn name(&self) -> &'static str {
        "dashboard"
    }
    fn description(&self) -> &'static str {
        "Dashboard access rights and per-guild dashboard settings"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("dashboard_permissions", "DashboardPermission").unique(&[
                "guildId",
                "targetType",
                "targetId",
            ]),
            CollectionSpec::new("dashboard_settings", "DashboardSettings").unique(&["guildId"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            2,
            "Dashboard access",
            &["dashboard_permissions", "dashboard_settings"],
        )]
    }
}

/// `dashboard_permissions`: a user's or role's rights on a guild's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardPermission {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// `"user"` or `"role"`.
    pub target_type: String,
    /// User or role snowflake.
    pub target_id: String,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `dashboard_settings`: a guild's dashboard preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSettings {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
