//! What staff do with suggestions, as plain functions: the dashboard's routes call these,
//! and a status change is announced to the server's room (`suggestions:updated`).

use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime};
use serde::Serialize;
use serde_json::json;

use heimdall_host::context::Data;
use heimdall_host::error::{UserError, UserErrorKind};

use crate::Suggestion;

/// The collection.
pub const SUGGESTIONS: &str = "suggestions";
/// A suggestion's statuses.
pub const STATUSES: &[&str] = &["pending", "approved", "denied", "implemented"];

/// A suggestion as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionView {
    /// Its number in the server.
    pub number: i32,
    /// Who suggested it.
    pub author_id: String,
    /// What.
    pub content: String,
    /// `pending`, `approved`, `denied` or `implemented`.
    pub status: String,
    /// Votes for.
    pub upvotes: i32,
    /// Votes against.
    pub downvotes: i32,
    /// Staff's note on the decision.
    pub note: Option<String>,
    /// When, milliseconds since the epoch.
    pub created_at: Option<i64>,
}

impl From<Suggestion> for SuggestionView {
    fn from(s: Suggestion) -> Self {
        Self {
            note: s.extra.get_str("statusNote").ok().map(String::from),
            number: s.number,
            author_id: s.author_id,
            content: s.content,
            status: s.status,
            upvotes: s.upvotes,
            downvotes: s.downvotes,
            created_at: s.created_at.map(|d| d.timestamp_millis()),
        }
    }
}

/// One page of SuggestionViews.
pub type SuggestionPage = heimdall_host::extract::Page<SuggestionView, i32>;

fn check_status(status: &str) -> Result<(), UserError> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(UserError::bad_request(
            "invalid_status",
            format!("{status:?} is not a status; one of {}", STATUSES.join(", ")),
        ))
    }
}

/// A server's suggestions, newest first, optionally of one status.
pub async fn list(
    data: &Data,
    guild: &str,
    status: Option<&str>,
    before: Option<i32>,
    limit: i64,
) -> anyhow::Result<SuggestionPage> {
    let limit = SuggestionPage::limit(limit);
    let mut filter = doc! { "guildId": guild };
    if let Some(s) = status {
        check_status(s)?;
        filter.insert("status", s);
    }
    if let Some(b) = before {
        filter.insert("number", doc! { "$lt": b });
    }
    let items: Vec<SuggestionView> = data
        .db
        .collection::<Suggestion>(SUGGESTIONS)
        .find(filter)
        .sort(doc! { "number": -1 })
        .limit(limit + 1)
        .await?
        .map_ok(SuggestionView::from)
        .try_collect()
        .await?;
    Ok(SuggestionPage::of(items, limit, |s| s.number))
}

/// Decides suggestion `number`: a new status, with an optional note.
pub async fn set_status(
    data: &Data,
    guild: &str,
    number: i32,
    status: &str,
    note: Option<&str>,
    by: u64,
) -> anyhow::Result<SuggestionView> {
    check_status(status)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 1000) {
        return Err(
            UserError::bad_request("invalid_note", "a note is at most 1000 characters").into(),
        );
    }
    let updated = data
        .db
        .collection::<Suggestion>(SUGGESTIONS)
        .find_one_and_update(
            doc! { "guildId": guild, "number": number },
            doc! { "$set": { "status": status, "statusNote": note, "statusBy": by.to_string(), "statusAt": DateTime::now() } },
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .await?
        .ok_or_else(|| {
            UserError::new(
                UserErrorKind::NotFound,
                "no_such_suggestion",
                format!("there is no suggestion #{number} in this server"),
            )
        })?;
    let view = SuggestionView::from(updated);
    data.ws.broadcast_to_guild(
        guild,
        "suggestions:updated",
        json!({ "by": by.to_string(), "suggestion": view }),
    );
    Ok(view)
}
