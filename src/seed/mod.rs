//! Sample data: a realistic Heimdall instance, or an old-bot (legacy) database.
//!
//! Everything derives from one seeded RNG, so the same options write the same documents
//! (ids included). The exceptions are the few times that must lie relative to "now" to stay
//! meaningful: ephemeral game boards, link-request expiries and pending reminders.

use std::collections::BTreeMap;

use anyhow::Context as _;
use mongodb::bson::{oid::ObjectId, DateTime, Document};
use mongodb::options::InsertManyOptions;
use mongodb::Database;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::crypto::EncryptionKey;
use crate::error::{UserError, UserErrorKind};

mod instance;
mod legacy;

pub use instance::seed_instance;
pub use legacy::{fixtures as legacy_fixtures, seed_legacy};

/// What to write.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Number of guilds.
    pub guilds: u32,
    /// Size multiplier (1.0: a few thousand documents).
    pub scale: f64,
    /// RNG seed.
    pub seed: u64,
    /// Key for encrypted fields.
    pub key: EncryptionKey,
    /// Legacy only: the modmail collection's name.
    pub modmail_collection: String,
    /// Drop the database first when it holds data.
    pub drop: bool,
}

impl SeedOptions {
    /// Options with defaults (5 guilds, scale 1, seed 42).
    pub fn new(key: EncryptionKey) -> Self {
        Self {
            guilds: 5,
            scale: 1.0,
            seed: 42,
            key,
            modmail_collection: "modmail".into(),
            drop: false,
        }
    }
}

/// Documents written, per collection.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    /// Collection → documents written.
    pub counts: BTreeMap<String, u64>,
}

impl SeedReport {
    /// Total documents.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// A human summary, one line per collection.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (c, n) in &self.counts {
            out.push_str(&format!("{c:<32} {n:>9}\n"));
        }
        out.push_str(&format!("{:<32} {:>9}", "total", self.total()));
        out
    }
}

/// Refuses a database that holds data, or drops it when `drop` is set.
async fn prepare_target(db: &Database, drop: bool) -> anyhow::Result<()> {
    let names = db.list_collection_names().await?;
    let mut non_empty = Vec::new();
    for n in &names {
        if db
            .collection::<Document>(n)
            .estimated_document_count()
            .await?
            > 0
        {
            non_empty.push(n.clone());
        }
    }
    if non_empty.is_empty() {
        return Ok(());
    }
    if !drop {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "database_not_empty",
            format!(
                "database {} already holds data (in {}); seed into an empty database or pass --drop to replace it",
                db.name(),
                non_empty.join(", ")
            ),
        )
        .into());
    }
    db.drop().await.context("dropping the database")?;
    Ok(())
}

/// Buffers documents per collection and writes them in unordered batches.
struct Writer<'a> {
    db: &'a Database,
    buffers: BTreeMap<String, Vec<Document>>,
    report: SeedReport,
}

const BATCH: usize = 1000;

impl<'a> Writer<'a> {
    fn new(db: &'a Database) -> Self {
        Self {
            db,
            buffers: BTreeMap::new(),
            report: SeedReport::default(),
        }
    }

    async fn put(&mut self, collection: &str, doc: Document) -> anyhow::Result<()> {
        let buf = self.buffers.entry(collection.to_string()).or_default();
        buf.push(doc);
        if buf.len() >= BATCH {
            self.flush_one(collection).await?;
        }
        Ok(())
    }

    async fn flush_one(&mut self, collection: &str) -> anyhow::Result<()> {
        let Some(buf) = self.buffers.get_mut(collection) else {
            return Ok(());
        };
        if buf.is_empty() {
            return Ok(());
        }
        let docs = std::mem::take(buf);
        let n = docs.len() as u64;
        self.db
            .collection::<Document>(collection)
            .insert_many(docs)
            .with_options(InsertManyOptions::builder().ordered(false).build())
            .await
            .with_context(|| format!("writing sample documents to {collection}"))?;
        *self
            .report
            .counts
            .entry(collection.to_string())
            .or_default() += n;
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<SeedReport> {
        let names: Vec<String> = self.buffers.keys().cloned().collect();
        for n in names {
            self.flush_one(&n).await?;
        }
        Ok(self.report)
    }
}

/// The deterministic random source of a seeding run.
struct Gen {
    rng: ChaCha8Rng,
    /// 2024-01-01T00:00:00Z in ms: the fixed anchor of generated history.
    epoch_ms: i64,
}

const WORDS: &[&str] = &[
    "server",
    "rules",
    "welcome",
    "help",
    "bot",
    "music",
    "event",
    "raid",
    "stream",
    "giveaway",
    "minecraft",
    "build",
    "art",
    "meme",
    "role",
    "voice",
    "ticket",
    "ban",
    "appeal",
    "update",
    "café",
    "naïve",
    "Straße",
    "日本語",
    "привет",
    "مرحبا",
    "🎉",
    "🔥",
    "✨",
    "💜",
    "👨‍👩‍👧‍👦",
];

impl Gen {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            epoch_ms: 1_704_067_200_000,
        }
    }

    /// An ObjectId whose timestamp lies in the generated history.
    fn oid(&mut self) -> ObjectId {
        let secs = (self.epoch_ms / 1000) as u32 + self.rng.gen_range(0..60 * 86_400 * 6);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        self.rng.fill(&mut bytes[4..]);
        ObjectId::from_bytes(bytes)
    }

    /// A Discord snowflake as a string.
    fn snowflake(&mut self) -> String {
        self.snowflake_u64().to_string()
    }

    fn snowflake_u64(&mut self) -> u64 {
        self.rng
            .gen_range(150_000_000_000_000_000u64..1_300_000_000_000_000_000)
    }

    /// A date within the generated history (≈ the year 2024).
    fn past_date(&mut self) -> DateTime {
        DateTime::from_millis(self.epoch_ms + self.rng.gen_range(0..365 * 86_400_000i64))
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p.clamp(0.0, 1.0))
    }

    /// Text of `min..=max` words, with unicode and emoji mixed in.
    fn text(&mut self, min: usize, max: usize) -> String {
        let n = self.rng.gen_range(min..=max);
        (0..n)
            .map(|_| *self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.rng.fill(&mut n);
        n
    }

    /// `base × factor × scale`, rounded, at least `min`.
    fn count(&mut self, base: f64, factor: f64, scale: f64, min: u64) -> u64 {
        let v = base * factor * scale;
        let jitter = self.rng.gen_range(0.85..1.15);
        ((v * jitter).round() as u64).max(min)
    }
}

/// Size factor of guild `i`: the first guild is large, the next ones fall off steeply.
fn guild_factor(i: u32) -> f64 {
    0.3f64.powi(i as i32).max(0.002)
}
