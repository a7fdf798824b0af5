//! Tags: saved answers members call up by name.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The tags plugin.
pub struct TagsPlugin;

#[async_trait::async_trait]
impl Plugin for TagsPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "tags"
    }
    fn description(&self) -> &'static str {
        "Saved answers called up by name"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![CollectionSpec::new("tags", "Tag").unique(&["guildId", "name"])]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Tags", &["tags"])]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// A tag name as stored: trimmed and lower-cased.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Name (lower-case, trimmed; unique per guild).
    pub name: String,
    /// Text.
    pub content: String,
    /// Author.
    pub author_id: String,
    /// Times used.
    #[serde(default)]
    pub uses: i32,
    /// Created.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
