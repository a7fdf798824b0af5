//! Suggestions: members suggest, others vote, staff decide.

pub mod legacy;
pub mod ops;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use axum::extract::{Path, Query, State};
use axum::Json;
use heimdall_host::auth::AuthUser;
use heimdall_host::context::Data;
use heimdall_host::error::AppError;
use heimdall_host::extract::JsonBody;
use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};
use heimdall_host::routes::{Access, Routes};

/// The suggestions plugin.
pub struct SuggestionsPlugin;

/// The suggestions plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

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
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn routes(&self) -> Routes {
        use Access::GuildStaff;
        Routes::new()
            .get("/api/guilds/{guild}/suggestions/items", GuildStaff, "The server's suggestions with their votes, newest first (`?status=&before=&limit=`)", list_suggestions)
            .put("/api/guilds/{guild}/suggestions/items/{number}/status", GuildStaff, "Decide a suggestion: `{status, note?}`", decide)
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

/// `?status=&before=&limit=` of the suggestions list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    before: Option<i32>,
    limit: Option<i64>,
}

async fn list_suggestions(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ops::SuggestionPage>, AppError> {
    user.require_guild(&data, &guild).await?;
    let status = q.status.filter(|s| !s.is_empty());
    Ok(Json(
        ops::list(
            &data,
            &guild,
            status.as_deref(),
            q.before,
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

/// `PUT .../suggestions/items/{number}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    status: String,
    #[serde(default)]
    note: Option<String>,
}

async fn decide(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, number)): Path<(String, i32)>,
    JsonBody(d): JsonBody<Decision>,
) -> Result<Json<ops::SuggestionView>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        ops::set_status(&data, &guild, number, &d.status, d.note.as_deref(), user.id).await?,
    ))
}
