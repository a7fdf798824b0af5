//! Legacy Import, step 2: `tags` → `tags`. Names are trimmed and lower-cased; when two
//! legacy tags become one name in a guild, the older one wins and the other is skipped.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::Collection;

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped, Prepared,
    Produced,
};

/// (guild, name) → the winning record: (creation time, `_id` text).
struct Winners(HashMap<(String, String), (i64, String)>);

fn age(d: &Document) -> i64 {
    match coerce::created_at(d, "createdAt", mongodb::bson::DateTime::MAX) {
        Ok(t) => t.timestamp_millis(),
        Err(_) => i64::MAX,
    }
}

/// Maps a legacy tag.
pub struct TagMapper;

#[async_trait::async_trait]
impl LegacyMapper for TagMapper {
    async fn prepare(
        &self,
        source: &Collection<Document>,
        filter: &Document,
    ) -> anyhow::Result<Prepared> {
        let mut winners: HashMap<(String, String), (i64, String)> = HashMap::new();
        let mut cursor = source
            .find(filter.clone())
            .projection(doc! { "guildID": 1, "name": 1, "createdAt": 1, "content": 1 })
            .await?;
        while let Some(d) = cursor.try_next().await? {
            let (Ok(Some(guild)), Some(name)) =
                (coerce::id(&d, "guildID"), coerce::text(&d, "name"))
            else {
                continue;
            };
            if coerce::text(&d, "content").is_none() {
                continue; // fails on its own; never takes a name
            }
            let cand = (age(&d), heimdall_host::migration::id_text(&d));
            let e = winners
                .entry((guild, crate::normalize_name(&name)))
                .or_insert_with(|| cand.clone());
            if cand < *e {
                *e = cand;
            }
        }
        Ok(Box::new(Winners(winners)))
    }

    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let raw = coerce::text(r, "name").ok_or("`name` is missing")?;
        let name = crate::normalize_name(&raw);
        let content = coerce::text(r, "content").ok_or("`content` is empty")?;
        let author = coerce::required_id(r, "owner")?;
        let winners = ctx
            .prepared
            .downcast_ref::<Winners>()
            .ok_or("internal: tag winners missing")?;
        if let Some((_, winner)) = winners.0.get(&(guild.clone(), name.clone())) {
            if *winner != heimdall_host::migration::id_text(r) {
                return Ok(Mapped::Skip(format!(
                    "conflict: the older tag {winner} has the same name {name:?}"
                )));
            }
        }
        Ok(Mapped::Docs(vec![Produced {
            collection: "tags",
            doc: doc! {
                "_id": primary_id(r), "guildId": guild, "name": name, "content": content, "authorId": author,
                "uses": coerce::int32(r, "uses")?.unwrap_or(0), "createdAt": coerce::created_at(r, "createdAt", ctx.now)?,
            },
        }]))
    }
}

/// The tags plugin's legacy step.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        2,
        "Tags",
        LegacySource::Collection("tags"),
        Arc::new(TagMapper),
    )
    .with_record_progress()]
}
