//! Suggestions: members suggest, others vote, staff decide.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The suggestions plugin.
pub struct SuggestionsPlugin;

#[async_trait::async_trait]
impl Plugin for SuggestionsPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "suggestions"
    }
    fn description(&self) -> &'static str {
        "Numbered suggestions with up and down votes"
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<SuggestionConfig>(
            "suggestion_configs",
            vec![
                ConfigField::new("enabled", FieldKind::Bool),
                ConfigField::new("channelId", FieldKind::Channel),
            ],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("suggestion_configs", "SuggestionConfig").unique(&["guildId"]),
            CollectionSpec::new("suggestions", "Suggestion").unique(&["guildId", "number"]),
            CollectionSpec::new("suggestion_votes", "SuggestionVote")
                .unique(&["suggestionId", "userId"])
                .references("suggestionId", "suggestions")
                .through_parent("suggestionId"),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new("Suggestion config", &["suggestion_configs"]),
            CloneStepSpec::new("Suggestions", &["suggestions", "suggestion_votes"]),
        ]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// `suggestion_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Suggestion channel.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Whether suggestions are on.
    #[serde(default)]
    pub enabled: bool,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `suggestions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Number (unique per guild).
    pub number: i32,
    /// Author.
    pub author_id: String,
    /// Text.
    pub content: String,
    /// `pending`, `approved`, `denied` or `implemented`.
    pub status: String,
    /// The suggestion's message.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Up votes.
    #[serde(default)]
    pub upvotes: i32,
    /// Down votes.
    #[serde(default)]
    pub downvotes: i32,
    /// Created.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `suggestion_votes`: one member's vote (guild through its suggestion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionVote {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// The suggestion.
    pub suggestion_id: ObjectId,
    /// Voter.
    pub user_id: String,
    /// `up` or `down`.
    pub vote: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
