//! Tickets: members open support tickets in categories; transcripts are kept.

pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The tickets plugin.
pub struct TicketsPlugin;

/// The tickets plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for TicketsPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "tickets"
    }
    fn description(&self) -> &'static str {
        "Support tickets in categories, with transcripts"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<TicketConfig>(
            "ticket_configs",
            vec![ConfigField::new("enabled", FieldKind::Bool)],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("ticket_configs", "TicketConfig").unique(&["guildId"]),
            CollectionSpec::new("ticket_categories", "TicketCategory").unique(&["guildId", "name"]),
            CollectionSpec::new("tickets", "Ticket")
                .unique(&["guildId", "number"])
                .references("categoryId", "ticket_categories"),
            CollectionSpec::new("ticket_transcripts", "TicketTranscript")
                .unique(&["ticketId"])
                .references("ticketId", "tickets")
                .through_parent("ticketId"),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new("Ticket config", &["ticket_configs", "ticket_categories"]),
            CloneStepSpec::new("Tickets", &["tickets", "ticket_transcripts"]),
        ]
    }
}

/// `ticket_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Whether tickets are on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `ticket_categories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCategory {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Name (unique per guild).
    pub name: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `tickets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Number (unique per guild).
    pub number: i32,
    /// Category.
    pub category_id: ObjectId,
    /// Opener.
    pub opener_id: String,
    /// Status.
    pub status: String,
    /// Opened.
    pub created_at: DateTime,
    /// Closed.
    #[serde(default)]
    pub closed_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `ticket_transcripts` (guild through its ticket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketTranscript {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// The ticket.
    pub ticket_id: ObjectId,
    /// Messages.
    #[serde(default)]
    pub messages: Vec<Document>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
