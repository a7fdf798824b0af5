//! Legacy Import: step 1 (`guildsettings` → `suggestion_configs`) and step 3
//! (`suggestions` → `suggestions` and `suggestion_votes`).

use std::collections::HashSet;
use std::sync::Arc;

use mongodb::bson::{doc, Bson, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, DerivedIds, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped,
    Produced,
};
use heimdall_plugin_core::legacy::{SETTINGS, SETTINGS_LABEL};

/// Maps the suggestion channel of a settings record.
pub struct SuggestionConfigMapper;

impl LegacyMapper for SuggestionConfigMapper {
    fn map(&self, r: &Document, _ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let Some(channel) = coerce::id(r, "suggestionChannel")? else {
            return Ok(Mapped::Nothing);
        };
        Ok(Mapped::Docs(vec![Produced {
            collection: "suggestion_configs",
            doc: doc! { "_id": primary_id(r), "guildId": guild, "channelId": channel, "enabled": true },
        }]))
    }
}

/// A legacy status (string in any case, or 0..=3) as Heimdall's.
pub fn status(value: Option<&Bson>) -> Result<&'static str, String> {
    const NAMES: [&str; 4] = ["pending", "approved", "denied", "implemented"];
    match value {
        None | Some(Bson::Null) => Ok("pending"),
        Some(Bson::String(s)) if s.trim().is_empty() => Ok("pending"),
        Some(Bson::String(s)) => NAMES
            .iter()
            .find(|n| n.eq_ignore_ascii_case(s.trim()))
            .copied()
            .ok_or_else(|| {
                format!("`status` is {s:?}; expected pending, approved, denied or implemented")
            }),
        Some(Bson::Int32(n)) if (0..4).contains(n) => Ok(NAMES[*n as usize]),
        Some(Bson::Int64(n)) if (0..4).contains(n) => Ok(NAMES[*n as usize]),
        Some(Bson::Double(n)) if n.fract() == 0.0 && (0.0..4.0).contains(n) => {
            Ok(NAMES[*n as usize])
        }
        Some(other) => Err(format!("`status` is {other}; expected a name or 0 to 3")),
    }
}

/// Maps a legacy suggestion and its voters.
pub struct SuggestionMapper;

impl LegacyMapper for SuggestionMapper {
    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let number = coerce::int32(r, "sID")?.ok_or("`sID` is missing")?;
        let author = coerce::required_id(r, "userID")?;
        let content = coerce::text(r, "suggestion").ok_or("the suggestion text is empty")?;
        let status = status(r.get("status"))?;
        let id = primary_id(r);
        let created = coerce::created_at(r, "createdAt", ctx.now)?;
        let vote_ids = DerivedIds::of(&id);
        let mut seen = HashSet::new();
        let mut votes = Vec::new();
        let (mut up, mut down) = (0, 0);
        for (field, vote) in [("upvotes", "up"), ("downvotes", "down")] {
            let list = match r.get(field) {
                None | Some(Bson::Null) => continue,
                Some(Bson::Array(a)) => a,
                Some(other) => {
                    return Err(format!(
                        "`{field}` is {:?}, expected a list of user ids",
                        other.element_type()
                    ))
                }
            };
            for (i, v) in list.iter().enumerate() {
                let Some(user) = coerce::id_value(Some(v), &format!("{field}[{i}]"))? else {
                    continue;
                };
                if !seen.insert(user.clone()) {
                    continue;
                }
                if vote == "up" {
                    up += 1;
                } else {
                    down += 1;
                }
                let n = votes.len() as u64 + 1;
                votes.push(Produced {
                    collection: "suggestion_votes",
                    doc: doc! {
                        "_id": vote_ids.nth(n, (created.timestamp_millis() / 1000) as u32),
                        "suggestionId": id.clone(), "userId": user, "vote": vote,
                    },
                });
            }
        }
        let mut out = vec![Produced {
            collection: "suggestions",
            doc: doc! {
                "_id": id.clone(), "guildId": guild, "number": number, "authorId": author, "content": content,
                "status": status, "messageId": coerce::id(r, "messageID")?, "upvotes": up, "downvotes": down,
                "createdAt": created,
            },
        }];
        out.extend(votes);
        Ok(Mapped::Docs(out))
    }
}

/// The suggestions plugin's legacy steps.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![
        LegacyStepSpec::new(
            1,
            SETTINGS_LABEL,
            SETTINGS,
            Arc::new(SuggestionConfigMapper),
        ),
        LegacyStepSpec::new(
            3,
            "Suggestions",
            LegacySource::Collection("suggestions"),
            Arc::new(SuggestionMapper),
        )
        .with_record_progress(),
    ]
}
