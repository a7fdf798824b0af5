//! Modmail: members write to the bot, staff answer in threads.

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

/// The modmail plugin.
pub struct ModmailPlugin;

/// The modmail plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for ModmailPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "modmail"
    }
    fn description(&self) -> &'static str {
        "Private conversations between members and staff, relayed through the bot"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn routes(&self) -> Routes {
        use Access::GuildStaff;
        Routes::new()
            .get(
                "/api/guilds/{guild}/modmail/conversations",
                GuildStaff,
                "The server's conversations, newest first (`?status=&before=&limit=`)",
                list_conversations,
            )
            .get(
                "/api/guilds/{guild}/modmail/conversations/{ticket}/messages",
                GuildStaff,
                "A conversation's messages, oldest first (`?after=&limit=`)",
                list_messages,
            )
            .post(
                "/api/guilds/{guild}/modmail/conversations/{ticket}/messages",
                GuildStaff,
                "Reply to the member (sent by DM first): `{content}`",
                send_reply,
            )
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<ModmailConfig>(
            "modmail_configs",
            vec![ConfigField::new("enabled", FieldKind::Bool)],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("modmail_configs", "ModmailConfig")
                .unique(&["guildId"])
                .encrypted(&["categories[].encryptedWebhookToken"]),
            CollectionSpec::new("modmail_snippets", "ModmailSnippet").unique(&["guildId", "name"]),
            CollectionSpec::new("modmail_conversations", "ModmailConversation")
                .unique(&["guildId", "ticketNumber"]),
            CollectionSpec::new("modmail_messages", "ModmailMessage")
                .references("conversationId", "modmail_conversations")
                // A conversation's page of messages, oldest first after a message (see
                // `ops::messages`): threads of 20,000 among millions.
                .index(&["conversationId", "_id"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new("Modmail config", &["modmail_configs", "modmail_snippets"]),
            CloneStepSpec::new("Modmail conversations", &["modmail_conversations"]),
            CloneStepSpec::new("Modmail messages", &["modmail_messages"]),
        ]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
}

/// A modmail category: where its threads go and the webhook that posts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModmailCategory {
    /// Category name.
    pub name: String,
    /// Channel snowflake.
    pub channel_id: String,
    /// Encrypted webhook token.
    #[serde(default)]
    pub encrypted_webhook_token: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `modmail_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModmailConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Whether modmail is on.
    #[serde(default)]
    pub enabled: bool,
    /// Categories.
    #[serde(default)]
    pub categories: Vec<ModmailCategory>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `modmail_snippets`: a saved staff answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModmailSnippet {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Snippet name.
    pub name: String,
    /// Text.
    pub content: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `modmail_conversations`: a numbered thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModmailConversation {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Number (unique per guild).
    pub ticket_number: i32,
    /// Member.
    pub user_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// Staff member who claimed it.
    #[serde(default)]
    pub claimed_by: Option<String>,
    /// Opened.
    pub created_at: DateTime,
    /// Closed.
    #[serde(default)]
    pub closed_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `modmail_messages`: one message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModmailMessage {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// The conversation.
    pub conversation_id: ObjectId,
    /// Author.
    pub author_id: String,
    /// Whether staff wrote it.
    #[serde(default)]
    pub is_staff: bool,
    /// Text.
    #[serde(default)]
    pub content: String,
    /// Attachment URLs.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Sent.
    pub created_at: DateTime,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `?status=&before=&after=&limit=` of the modmail lists.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    before: Option<i32>,
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_conversations(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ops::Page<ops::ConversationView, i32>>, AppError> {
    user.require_guild(&data, &guild).await?;
    let status = q.status.filter(|s| !s.is_empty());
    Ok(Json(
        ops::conversations(
            &data,
            &guild,
            status.as_deref(),
            q.before,
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

async fn list_messages(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, ticket)): Path<(String, i32)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ops::Page<ops::MessageView, String>>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        ops::messages(
            &data,
            &guild,
            ticket,
            q.after.as_deref(),
            q.limit.unwrap_or(100),
        )
        .await?,
    ))
}

/// `POST .../messages`: a staff reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    content: String,
}

async fn send_reply(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, ticket)): Path<(String, i32)>,
    JsonBody(r): JsonBody<Reply>,
) -> Result<(axum::http::StatusCode, Json<ops::MessageView>), AppError> {
    user.require_guild(&data, &guild).await?;
    let m = ops::reply(&data, &guild, ticket, user.id, &r.content).await?;
    Ok((axum::http::StatusCode::CREATED, Json(m)))
}
