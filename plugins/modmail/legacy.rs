//! Legacy Import, step 4: the modmail collection → `modmail_conversations` and
//! `modmail_messages`. Conversations are numbered per guild by `createdAt` (ties by `_id`)
//! from 1, so every re-run gives each the same `ticketNumber`.

use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use anyhow::Context as _;
use heimdall_host::migration::legacy::{
    coerce, primary_id, scan, DerivedIds, IdKey, IdNumbers, LegacyMapper, LegacySource,
    LegacyStepSpec, MapContext, Mapped, Numbering, Prepared, Produced,
};

/// Legacy `_id` → ticket number.
struct Numbers(IdNumbers);

/// Maps a legacy modmail thread and every message in it.
pub struct ModmailMapper;

#[async_trait::async_trait]
impl LegacyMapper for ModmailMapper {
    async fn prepare(
        &self,
        source: &Collection<Document>,
        filter: &Document,
    ) -> anyhow::Result<Prepared> {
        // Sorted and numbered in bounded memory (runs on a temporary file past a chunk).
        let mut numbering = Numbering::new();
        let mut cursor = scan(source, filter, doc! { "guildID": 1, "createdAt": 1 }).await?;
        while let Some(d) = cursor.try_next().await? {
            let (Ok(Some(guild)), Ok(Some(created))) =
                (coerce::id(&d, "guildID"), coerce::date(&d, "createdAt"))
            else {
                continue;
            };
            numbering.push(&guild, created.timestamp_millis(), IdKey::of_record(&d));
        }
        let numbers = tokio::task::spawn_blocking(move || numbering.finish(|_| 1))
            .await?
            .context("numbering the conversations on a temporary file")?;
        Ok(Box::new(Numbers(numbers)))
    }

    fn list_field(&self) -> Option<&'static str> {
        Some("messages")
    }

    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let user = coerce::required_id(r, "userID")?;
        let created = coerce::date(r, "createdAt")?.ok_or("`createdAt` is missing")?;
        let status = match coerce::text(r, "status").map(|s| s.trim().to_lowercase()) {
            Some(s) if s == "open" || s == "closed" => s,
            None => "closed".to_string(),
            Some(s) => return Err(format!("`status` is {s:?}; expected open or closed")),
        };
        let numbers = ctx
            .prepared
            .downcast_ref::<Numbers>()
            .ok_or("internal: modmail numbering missing")?;
        let number = numbers
            .0
            .get(r.get("_id").unwrap_or(&Bson::Null))
            .ok_or("could not number this conversation")?;
        let id = primary_id(r);
        let mut out = vec![Produced {
            collection: "modmail_conversations",
            doc: doc! {
                "_id": id.clone(), "guildId": &guild, "ticketNumber": number, "userId": user, "status": status,
                "claimedBy": Bson::Null, "createdAt": created, "closedAt": coerce::date(r, "closedAt")?,
                "channelId": coerce::id(r, "channelID")?,
            },
        }];
        let messages: &[Bson] = match r.get("messages") {
            None | Some(Bson::Null) => &[],
            Some(Bson::Array(a)) => a,
            Some(other) => {
                return Err(format!(
                    "`messages` is {:?}, expected a list",
                    other.element_type()
                ))
            }
        };
        let message_ids = DerivedIds::of(&id);
        // In parts, `messages` holds a slice starting at `ctx.offset` (see `list_field`).
        for (i, m) in (ctx.offset..).zip(messages) {
            let m = m
                .as_document()
                .ok_or_else(|| format!("messages[{i}] is not a document"))?;
            let author = coerce::id(m, "authorID")
                .map_err(|e| format!("messages[{i}]: {e}"))?
                .ok_or_else(|| format!("messages[{i}]: `authorID` is missing"))?;
            let at = coerce::date(m, "createdAt")
                .map_err(|e| format!("messages[{i}]: {e}"))?
                .unwrap_or(created);
            let attachments: Vec<Bson> = match m.get("attachments") {
                Some(Bson::Array(a)) => a
                    .iter()
                    .filter(|v| matches!(v, Bson::String(s) if !s.is_empty()))
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            out.push(Produced {
                collection: "modmail_messages",
                doc: doc! {
                    "_id": message_ids.nth(i as u64 + 1, (at.timestamp_millis() / 1000).max(0) as u32),
                    "guildId": &guild, "conversationId": id.clone(), "authorId": author,
                    "isStaff": m.get_bool("isStaff").unwrap_or(false),
                    "content": m.get_str("content").unwrap_or_default(), "attachments": attachments, "createdAt": at,
                },
            });
        }
        Ok(Mapped::Docs(out))
    }
}

/// The old bot's modmail collection unless the owner names another.
pub const DEFAULT_COLLECTION: &str = "modmail";

/// The modmail plugin's legacy step.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        4,
        "Modmail",
        LegacySource::Modmail {
            default: DEFAULT_COLLECTION,
        },
        Arc::new(ModmailMapper),
    )
    .with_record_progress()]
}
