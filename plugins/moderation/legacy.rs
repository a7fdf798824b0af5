//! Legacy Import: step 1 (`guildsettings` → `moderation_configs`) and step 5
//! (`warnings` → `infractions`).

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use anyhow::Context as _;
use heimdall_host::migration::legacy::{
    coerce, primary_id, scan, IdKey, IdNumbers, LegacyMapper, LegacySource, LegacyStepSpec,
    MapContext, Mapped, Numbering, Prepared, Produced,
};
use heimdall_plugin_core::legacy::{SETTINGS, SETTINGS_LABEL};

/// Maps the moderation part of a settings record (when a mute role or mod log is set).
pub struct ModerationConfigMapper;

impl LegacyMapper for ModerationConfigMapper {
    fn map(&self, r: &Document, _ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let mute = coerce::id(r, "muteRole")?;
        let modlog = coerce::id(r, "modLogChannel")?;
        if mute.is_none() && modlog.is_none() {
            return Ok(Mapped::Nothing);
        }
        Ok(Mapped::Docs(vec![Produced {
            collection: "moderation_configs",
            doc: doc! { "_id": primary_id(r), "guildId": guild, "muteRoleId": mute, "modLogChannelId": modlog },
        }]))
    }
}

/// Case numbers of the warnings without `caseID`: after the guild's highest `caseID`, in
/// order of `date` (ties by `_id`).
struct CaseNumbers(IdNumbers);

/// Checks what a warning needs to be imported; returns its guild and type.
fn validate(r: &Document) -> Result<(String, String), String> {
    let guild = coerce::required_id(r, "guildID")?;
    coerce::required_id(r, "userID")?;
    coerce::required_id(r, "moderatorID")?;
    coerce::date(r, "date")?.ok_or("`date` is missing")?;
    let kind = match coerce::text(r, "type").map(|t| t.trim().to_lowercase()) {
        None => "warn".to_string(),
        Some(t) if ["warn", "mute", "kick", "ban"].contains(&t.as_str()) => t,
        Some(t) => return Err(format!("`type` is {t:?}; expected warn, mute, kick or ban")),
    };
    Ok((guild, kind))
}

/// Maps a legacy warning to an infraction.
pub struct InfractionMapper;

#[async_trait::async_trait]
impl LegacyMapper for InfractionMapper {
    async fn prepare(
        &self,
        source: &Collection<Document>,
        filter: &Document,
    ) -> anyhow::Result<Prepared> {
        let mut max: HashMap<String, i64> = HashMap::new();
        // Sorted and numbered in bounded memory (runs on a temporary file past a chunk).
        let mut pending = Numbering::new();
        let mut cursor = scan(
            source,
            filter,
            doc! { "guildID": 1, "caseID": 1, "date": 1, "userID": 1, "moderatorID": 1, "type": 1 },
        )
        .await?;
        while let Some(d) = cursor.try_next().await? {
            // A record that cannot be imported takes no case number.
            let Ok((guild, _)) = validate(&d) else {
                continue;
            };
            match coerce::int(&d, "caseID") {
                Ok(Some(c)) => {
                    let m = max.entry(guild).or_insert(0);
                    *m = (*m).max(c);
                }
                Ok(None) => {
                    let Ok(Some(date)) = coerce::date(&d, "date") else {
                        continue;
                    };
                    pending.push(&guild, date.timestamp_millis(), IdKey::of_record(&d));
                }
                Err(_) => {}
            }
        }
        let numbers = tokio::task::spawn_blocking(move || {
            pending.finish(|guild| max.get(guild).copied().unwrap_or(0) + 1)
        })
        .await?
        .context("numbering the cases on a temporary file")?;
        Ok(Box::new(CaseNumbers(numbers)))
    }

    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let (guild, kind) = validate(r)?;
        let user = coerce::required_id(r, "userID")?;
        let moderator = coerce::required_id(r, "moderatorID")?;
        let date = coerce::date(r, "date")?.ok_or("`date` is missing")?;
        let case = match coerce::int32(r, "caseID")? {
            Some(c) if c > 0 => c,
            Some(c) => return Err(format!("`caseID` is {c}; case numbers start at 1")),
            None => {
                let numbers = ctx
                    .prepared
                    .downcast_ref::<CaseNumbers>()
                    .ok_or("internal: case numbering missing")?;
                numbers
                    .0
                    .get(r.get("_id").unwrap_or(&Bson::Null))
                    .ok_or("could not number this case")?
            }
        };
        Ok(Mapped::Docs(vec![Produced {
            collection: "infractions",
            doc: doc! {
                "_id": primary_id(r), "guildId": guild, "caseNumber": case, "userId": user, "moderatorId": moderator,
                "type": kind, "reason": coerce::text(r, "reason").map(Bson::String).unwrap_or(Bson::Null),
                "points": 1, "ruleId": Bson::Null, "createdAt": date, "expiresAt": Bson::Null, "source": "legacy",
            },
        }]))
    }
}

/// The moderation plugin's legacy steps.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![
        LegacyStepSpec::new(
            1,
            SETTINGS_LABEL,
            SETTINGS,
            Arc::new(ModerationConfigMapper),
        ),
        LegacyStepSpec::new(
            5,
            "Moderation cases",
            LegacySource::Collection("warnings"),
            Arc::new(InfractionMapper),
        ),
    ]
}
