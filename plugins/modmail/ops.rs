//! What staff do with modmail, as plain functions: the dashboard's routes call these. A
//! staff reply goes to the member as a direct message through Discord, is kept with the
//! conversation, and is announced to the server's room (`modmail:message_created`).

use futures::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use poise::serenity_prelude as serenity;
use serde::Serialize;
use serde_json::json;

use heimdall_host::context::Data;
use heimdall_host::error::{UserError, UserErrorKind};

use crate::{ModmailConversation, ModmailMessage};

/// Conversations.
pub const CONVERSATIONS: &str = "modmail_conversations";
/// Their messages.
pub const MESSAGES: &str = "modmail_messages";
/// Longest reply: one Discord message.
pub const MAX_REPLY: usize = 2000;

/// A conversation as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// Its number in the server.
    pub ticket_number: i32,
    /// The member.
    pub user_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// The staff member handling it.
    pub claimed_by: Option<String>,
    /// Opened, milliseconds since the epoch.
    pub created_at: i64,
}

impl From<ModmailConversation> for ConversationView {
    fn from(c: ModmailConversation) -> Self {
        Self {
            ticket_number: c.ticket_number,
            user_id: c.user_id,
            status: c.status,
            claimed_by: c.claimed_by,
            created_at: c.created_at.timestamp_millis(),
        }
    }
}

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Its id (the `after` of the next page).
    pub id: String,
    /// Who wrote it.
    pub author_id: String,
    /// Whether staff wrote it.
    pub is_staff: bool,
    /// Text.
    pub content: String,
    /// Attachment URLs.
    pub attachments: Vec<String>,
    /// When, milliseconds since the epoch.
    pub created_at: i64,
}

impl From<ModmailMessage> for MessageView {
    fn from(m: ModmailMessage) -> Self {
        Self {
            id: m.id.map(|i| i.to_hex()).unwrap_or_default(),
            author_id: m.author_id,
            is_staff: m.is_staff,
            content: m.content,
            attachments: m.attachments,
            created_at: m.created_at.timestamp_millis(),
        }
    }
}

/// A page and where the next starts.
pub type Page<T, C> = heimdall_host::extract::Page<T, C>;

/// A server's conversations, newest first, optionally `open` or `closed` only.
pub async fn conversations(
    data: &Data,
    guild: &str,
    status: Option<&str>,
    before: Option<i32>,
    limit: i64,
) -> anyhow::Result<Page<ConversationView, i32>> {
    let limit = Page::<(), ()>::limit(limit);
    let mut filter = doc! { "guildId": guild };
    if let Some(s) = status {
        if !["open", "closed"].contains(&s) {
            return Err(UserError::bad_request(
                "invalid_status",
                format!("{s:?} is not a status; open or closed"),
            )
            .into());
        }
        filter.insert("status", s);
    }
    if let Some(b) = before {
        filter.insert("ticketNumber", doc! { "$lt": b });
    }
    let items: Vec<_> = data
        .db
        .collection::<ModmailConversation>(CONVERSATIONS)
        .find(filter)
        .sort(doc! { "ticketNumber": -1 })
        .limit(limit + 1)
        .await?
        .map_ok(ConversationView::from)
        .try_collect()
        .await?;
    Ok(Page::of(items, limit, |c: &ConversationView| {
        c.ticket_number
    }))
}

async fn conversation(
    data: &Data,
    guild: &str,
    ticket: i32,
) -> anyhow::Result<ModmailConversation> {
    Ok(data
        .db
        .collection::<ModmailConversation>(CONVERSATIONS)
        .find_one(doc! { "guildId": guild, "ticketNumber": ticket })
        .await?
        .ok_or_else(|| {
            UserError::new(
                UserErrorKind::NotFound,
                "no_such_conversation",
                format!("there is no modmail conversation #{ticket} in this server"),
            )
        })?)
}

/// Conversation `ticket`'s messages, oldest first, after message `after`.
pub async fn messages(
    data: &Data,
    guild: &str,
    ticket: i32,
    after: Option<&str>,
    limit: i64,
) -> anyhow::Result<Page<MessageView, String>> {
    let limit = Page::<(), ()>::limit(limit);
    let conv = conversation(data, guild, ticket).await?;
    let mut filter = doc! { "conversationId": conv.id };
    if let Some(a) = after {
        let id = ObjectId::parse_str(a).map_err(|_| {
            UserError::bad_request(
                "invalid_cursor",
                "`after` is the id of a message of this conversation",
            )
        })?;
        filter.insert("_id", doc! { "$gt": id });
    }
    let items: Vec<_> = data
        .db
        .collection::<ModmailMessage>(MESSAGES)
        .find(filter)
        .sort(doc! { "_id": 1 })
        .limit(limit + 1)
        .await?
        .map_ok(MessageView::from)
        .try_collect()
        .await?;
    Ok(Page::of(items, limit, |m: &MessageView| m.id.clone()))
}

/// Staff answer in conversation `ticket`: the member gets it as a direct message, then it
/// is kept and announced. Nothing is kept when Discord refuses it.
pub async fn reply(
    data: &Data,
    guild: &str,
    ticket: i32,
    by: u64,
    content: &str,
) -> anyhow::Result<MessageView> {
    let n = content.trim().chars().count();
    if n == 0 || content.chars().count() > MAX_REPLY {
        return Err(UserError::bad_request(
            "invalid_reply",
            format!("a reply is 1 to {MAX_REPLY} characters (this one has {n})"),
        )
        .into());
    }
    let conv = conversation(data, guild, ticket).await?;
    if conv.status != "open" {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "conversation_closed",
            format!("conversation #{ticket} is closed; the member would not see a reply"),
        )
        .into());
    }
    let http = data.discord.as_ref().ok_or_else(|| {
        UserError::new(
            UserErrorKind::Unavailable,
            "discord_off",
            "the bot is not connected to Discord (no DISCORD_TOKEN), so the reply cannot reach the member",
        )
    })?;
    let member: u64 = conv.user_id.parse().map_err(|_| {
        UserError::bad_request(
            "invalid_member",
            "this conversation's member id is not a Discord id",
        )
    })?;
    let dm = serenity::UserId::new(member)
        .create_dm_channel(http.as_ref())
        .await
        .map_err(|e| discord_refused(e, "open a direct message with the member"))?;
    http.send_message(dm.id, Vec::new(), &json!({ "content": content }))
        .await
        .map_err(|e| discord_refused(e, "send the reply"))?;
    let msg = ModmailMessage {
        id: Some(ObjectId::new()),
        guild_id: guild.to_string(),
        conversation_id: conv.id.unwrap_or_default(),
        author_id: by.to_string(),
        is_staff: true,
        content: content.to_string(),
        attachments: Vec::new(),
        created_at: DateTime::now(),
        extra: Document::new(),
    };
    data.db
        .collection::<ModmailMessage>(MESSAGES)
        .insert_one(&msg)
        .await?;
    let view = MessageView::from(msg);
    data.ws.broadcast_to_guild(
        guild,
        "modmail:message_created",
        json!({ "by": by.to_string(), "ticketNumber": ticket, "message": view }),
    );
    Ok(view)
}

fn discord_refused(e: serenity::Error, what: &str) -> anyhow::Error {
    tracing::warn!(error = %e, "Discord refused a modmail reply");
    UserError::new(
        UserErrorKind::Unavailable,
        "discord_refused",
        format!("Discord did not let the bot {what} (the member may have left the server or closed their DMs); nothing was saved"),
    )
    .into()
}
