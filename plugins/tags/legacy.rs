//! Legacy Import, step 2: `tags` → `tags`. Names are trimmed and lower-cased; when two
//! legacy tags become one name in a guild, the older one wins and the other is skipped.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::Collection;

use anyhow::Context as _;
use heimdall_host::migration::legacy::{
    coerce, primary_id, scan, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped,
    Prepared, Produced, Repeated,
};

/// (guild, name) → the winning record: (creation time, `_id` text), for the names more
/// than one legacy tag takes; a name not here has one tag, which wins.
struct Winners(HashMap<(String, String), (i64, String)>);

fn age(d: &Document) -> i64 {
    match coerce::created_at(d, "createdAt", mongodb::bson::DateTime::MAX) {
        Ok(t) => t.timestamp_millis(),
        Err(_) => i64::MAX,
    }
}

/// A tag's guild and normalized name, if it can take a name (one without content fails on
/// its own and never does).
fn claim(d: &Document) -> Option<(String, String)> {
    let (Ok(Some(guild)), Some(name)) = (coerce::id(d, "guildID"), coerce::text(d, "name")) else {
        return None;
    };
    coerce::text(d, "content")?;
    Some((guild, crate::normalize_name(&name)))
}

/// A short stand-in for a claim: equal claims hash alike; two claims with one hash are
/// only looked at more closely.
fn claim_hash(claim: &(String, String)) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    claim.hash(&mut h);
    h.finish()
}

/// Maps a legacy tag.
pub struct TagMapper;

impl TagMapper {
    /// The guilds' tags, `_id`, name, creation time and content, a bounded reply at a time.
    async fn claims(
        source: &Collection<Document>,
        filter: &Document,
    ) -> anyhow::Result<mongodb::Cursor<Document>> {
        Ok(scan(
            source,
            filter,
            doc! { "guildID": 1, "name": 1, "createdAt": 1, "content": 1 },
        )
        .await?)
    }
}

#[async_trait::async_trait]
impl LegacyMapper for TagMapper {
    /// Which tag wins each name taken more than once. Memory follows the tags that share a
    /// name, not all tags: a first read finds the claims' 64-bit hashes given twice or more
    /// ([`Repeated`]: sorted, past a chunk on a temporary file), a second keeps whole
    /// claims only for those hashes.
    async fn prepare(
        &self,
        source: &Collection<Document>,
        filter: &Document,
    ) -> anyhow::Result<Prepared> {
        // The hashes given twice or more, found in bounded memory (sorted in runs on a
        // temporary file past a chunk), not counted in a map of every tag's.
        let mut claims = Repeated::new();
        let mut cursor = Self::claims(source, filter).await?;
        while let Some(d) = cursor.try_next().await? {
            if let Some(c) = claim(&d) {
                claims.push(claim_hash(&c));
            }
        }
        let counts = tokio::task::spawn_blocking(move || claims.finish())
            .await?
            .context("finding the tag names taken twice on a temporary file")?;
        let mut winners: HashMap<(String, String), (i64, String)> = HashMap::new();
        if !counts.is_empty() {
            let mut cursor = Self::claims(source, filter).await?;
            while let Some(d) = cursor.try_next().await? {
                let Some(c) = claim(&d).filter(|c| counts.contains(&claim_hash(c))) else {
                    continue;
                };
                let cand = (age(&d), heimdall_host::migration::id_text(&d));
                let e = winners.entry(c).or_insert_with(|| cand.clone());
                if cand < *e {
                    *e = cand;
                }
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
