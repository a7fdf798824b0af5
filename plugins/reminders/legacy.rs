//! Legacy Import, step 6: `reminders` → `reminders`. Reminders already due are skipped as
//! expired; one without a guild is a DM reminder.

use std::sync::Arc;

use mongodb::bson::{doc, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped, Produced,
};

/// Maps a pending legacy reminder.
pub struct ReminderMapper;

impl LegacyMapper for ReminderMapper {
    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let user = coerce::required_id(r, "userID")?;
        let guild = coerce::id(r, "guildID")?;
        let due = coerce::date(r, "remindAt")?.ok_or("`remindAt` is missing")?;
        let content = coerce::text(r, "message").ok_or("`message` is empty")?;
        if due.timestamp_millis() <= ctx.now.timestamp_millis() {
            return Ok(Mapped::Skip(format!(
                "expired: it was due at {}",
                due.try_to_rfc3339_string().unwrap_or_default()
            )));
        }
        Ok(Mapped::Docs(vec![Produced {
            collection: "reminders",
            doc: doc! {
                "_id": primary_id(r), "userId": user, "guildId": guild, "channelId": coerce::id(r, "channelID")?,
                "content": content, "remindAt": due, "createdAt": coerce::created_at(r, "createdAt", ctx.now)?,
            },
        }]))
    }
}

/// The reminders plugin's legacy step.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        6,
        "Reminders",
        LegacySource::Collection("reminders"),
        Arc::new(ReminderMapper),
    )]
}
