//! Sample data: a realistic Heimdall instance, or an old-bot (legacy) database.
//!
//! The host only drives: it makes the guilds and their members, and each plugin writes its own
//! documents through its [`Samples`] (`Plugin::samples`), in the plugins' order.
//! Everything derives from one seeded RNG, so the same options write the same documents
//! (ids included). The exceptions are the few times that must lie relative to "now" to stay
//! meaningful: ephemeral game boards, link-request expiries and pending reminders.

use std::collections::BTreeMap;

use anyhow::Context as _;
use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use mongodb::options::InsertManyOptions;
use mongodb::Database;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::crypto::{Crypto, EncryptionKey};
use crate::error::{UserError, UserErrorKind};
use heimdall_base::catalog::Catalog;

/// The guild that holds the known legacy records (the plugins' `fixtures`), as the old bot
/// stored it: a string.
pub const LEGACY_FIXTURE_GUILD: &str = "300000000000000001";

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
    /// Legacy only: the name of the old bot's modmail collection (`None`: the name the
    /// importing plugin declares as the old bot's default).
    pub modmail_collection: Option<String>,
    /// Drop the database first when it holds data.
    pub drop: bool,
    /// ObjectIds at random times instead of minted in order as a bot writes them: no
    /// collection is then stored in `_id` order (a harder layout for a copy reading by `_id`).
    pub scattered_ids: bool,
}

impl SeedOptions {
    /// Options with defaults (5 guilds, scale 1, seed 42).
    pub fn new(key: EncryptionKey) -> Self {
        Self {
            guilds: 5,
            scale: 1.0,
            seed: 42,
            key,
            modmail_collection: None,
            drop: false,
            scattered_ids: false,
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
pub struct Writer<'a> {
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

    /// Queues `doc` for `collection`, writing a full batch.
    pub async fn put(&mut self, collection: &str, doc: Document) -> anyhow::Result<()> {
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
pub struct Gen {
    /// The generator itself, for draws the helpers do not cover.
    pub rng: ChaCha8Rng,
    /// 2024-01-01T00:00:00Z in ms: the fixed anchor of generated history.
    pub epoch_ms: i64,
    /// How [`Gen::oid`] makes ids: minted in order (the default) or scattered in time.
    ids: IdClock,
}

/// How a seeding run's ObjectIds carry time.
enum IdClock {
    /// As a bot's driver mints them while it writes: a clock that only moves forward, one
    /// process part, a counter. Each collection is then stored in `_id` order.
    Minted {
        /// Seconds since the Unix epoch of the last id.
        secs: u32,
        /// The 5 bytes a driver draws once per process.
        process: [u8; 5],
        /// The 3-byte counter.
        counter: u32,
    },
    /// Each id at a random time of the generated history: no collection is stored in `_id`
    /// order (a layout no bot writes; see `SeedOptions::scattered_ids`).
    Scattered,
}

const WORDS: &[&str] = &[
    "server",
    "rules",
    "greetings",
    "help",
    "bot",
    "music",
    "event",
    "raid",
    "stream",
    "giveaway",
    "pixel",
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
    /// A generator seeded with `seed`, minting its ids in order.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let epoch_ms = 1_704_067_200_000;
        let mut process = [0u8; 5];
        rng.fill(&mut process);
        Self {
            rng,
            epoch_ms,
            ids: IdClock::Minted {
                secs: (epoch_ms / 1000) as u32,
                process,
                counter: 0,
            },
        }
    }

    /// A generator seeded with `seed` whose ids are scattered in time.
    pub fn scattered(seed: u64) -> Self {
        Self {
            ids: IdClock::Scattered,
            ..Self::new(seed)
        }
    }

    /// An ObjectId whose timestamp lies in the generated history: each one after the last
    /// (a second or two later, or in the same second with the next count), unless the
    /// generator scatters them.
    pub fn oid(&mut self) -> ObjectId {
        let mut bytes = [0u8; 12];
        match &mut self.ids {
            IdClock::Minted {
                secs,
                process,
                counter,
            } => {
                *secs += self.rng.gen_range(0..3u32);
                *counter = (*counter + 1) & 0x00ff_ffff;
                // A counter that wraps moves on to the next second, so ids keep rising.
                *secs += u32::from(*counter == 0);
                bytes[..4].copy_from_slice(&secs.to_be_bytes());
                bytes[4..9].copy_from_slice(process);
                bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
            }
            IdClock::Scattered => {
                let secs = (self.epoch_ms / 1000) as u32 + self.rng.gen_range(0..60 * 86_400 * 6);
                bytes[..4].copy_from_slice(&secs.to_be_bytes());
                self.rng.fill(&mut bytes[4..]);
            }
        }
        ObjectId::from_bytes(bytes)
    }

    /// A Discord snowflake as a string.
    pub fn snowflake(&mut self) -> String {
        self.snowflake_u64().to_string()
    }

    /// A Discord snowflake as a number.
    pub fn snowflake_u64(&mut self) -> u64 {
        self.rng
            .gen_range(150_000_000_000_000_000u64..1_300_000_000_000_000_000)
    }

    /// A date within the generated history (≈ the year 2024).
    pub fn past_date(&mut self) -> DateTime {
        DateTime::from_millis(self.epoch_ms + self.rng.gen_range(0..365 * 86_400_000i64))
    }

    /// One of `items`.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.rng.gen_range(0..items.len())]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p.clamp(0.0, 1.0))
    }

    /// Text of `min..=max` words, with unicode and emoji mixed in.
    pub fn text(&mut self, min: usize, max: usize) -> String {
        let n = self.rng.gen_range(min..=max);
        (0..n)
            .map(|_| *self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A random AES-GCM nonce (deterministic under the seed).
    pub fn nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.rng.fill(&mut n);
        n
    }

    /// `base × factor × scale`, rounded, at least `min`.
    pub fn count(&mut self, base: f64, factor: f64, scale: f64, min: u64) -> u64 {
        let v = base * factor * scale;
        let jitter = self.rng.gen_range(0.85..1.15);
        ((v * jitter).round() as u64).max(min)
    }
}

/// Size factor of guild `i`: the first guild is large, the next ones fall off steeply.
fn guild_factor(i: u32) -> f64 {
    0.3f64.powi(i as i32).max(0.002)
}

impl Gen {
    /// A timestamp in one of the old bot's encodings: Int64 ms, Double ms, an RFC 3339
    /// string or a BSON date.
    pub fn legacy_date(&mut self, ms: i64) -> Bson {
        match self.rng.gen_range(0..4) {
            0 => Bson::Int64(ms),
            1 => Bson::Double(ms as f64),
            2 => Bson::String(
                DateTime::from_millis(ms)
                    .try_to_rfc3339_string()
                    .expect("dates in range"),
            ),
            _ => Bson::DateTime(DateTime::from_millis(ms)),
        }
    }

    /// A snowflake as the old bot stored it: a string (mostly) or Int64 (older documents).
    pub fn legacy_id(&mut self, id: u64) -> Bson {
        if self.chance(0.15) {
            Bson::Int64(id as i64)
        } else {
            Bson::String(id.to_string())
        }
    }

    /// A random UUID in its hyphenated text form.
    pub fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.gen();
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// A fixed ObjectId of a known record, from its 24 hex digits.
pub fn fixed_oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("fixture ids are valid hex")
}

/// What a plugin's sample writer works with: the run's random source, the writer, the
/// instance's key and the options.
pub struct Sample<'a> {
    /// The deterministic random source.
    pub g: Gen,
    /// Where documents go.
    pub w: Writer<'a>,
    /// Encrypts secret fields with the run's key.
    pub crypto: Crypto,
    /// Size multiplier (1.0: a few thousand documents).
    pub scale: f64,
    /// "Now" in ms, for the few times that must lie relative to it.
    pub now: i64,
    /// Legacy only: the name of the old bot's modmail collection, when not its default.
    pub modmail_collection: Option<&'a str>,
}

impl<'a> Sample<'a> {
    /// A run's start: the RNG seeded with `opts.seed`, an empty writer into `db`.
    fn new(db: &'a Database, opts: &'a SeedOptions) -> Self {
        Self {
            g: if opts.scattered_ids {
                Gen::scattered(opts.seed)
            } else {
                Gen::new(opts.seed)
            },
            w: Writer::new(db),
            crypto: Crypto::new(&opts.key),
            scale: opts.scale,
            now: DateTime::now().timestamp_millis(),
            modmail_collection: opts.modmail_collection.as_deref(),
        }
    }
}

/// One sample guild of a Heimdall instance: its id and people, made by the host before the
/// plugins write their documents.
#[derive(Debug, Clone)]
pub struct SampleGuild {
    /// Guild snowflake.
    pub id: String,
    /// Members (snowflakes); at least 12.
    pub members: Vec<String>,
    /// Staff: the first members, 3 to 25 of them.
    pub staff: Vec<String>,
    /// Size factor: 1 for the first guild, falling off steeply for the next ones.
    pub factor: f64,
    /// Position of the guild in the run (0, 1, …).
    pub index: u32,
}

/// One sample guild of an old-bot database.
#[derive(Debug, Clone)]
pub struct LegacyGuild {
    /// Guild snowflake.
    pub id: u64,
    /// Users (snowflakes); at least 10.
    pub users: Vec<u64>,
    /// Size factor, as for [`SampleGuild::factor`].
    pub factor: f64,
}

impl LegacyGuild {
    /// One of the guild's users.
    pub fn user(&self, g: &mut Gen) -> u64 {
        self.users[g.rng.gen_range(0..self.users.len())]
    }

    /// A date (ms) within the three years before the generated history's anchor.
    pub fn date(&self, g: &mut Gen) -> i64 {
        let t0 = g.epoch_ms - 3 * 365 * 86_400_000;
        t0 + g.rng.gen_range(0..3 * 365 * 86_400_000i64)
    }
}

/// A plugin's sample data: what `heimdall seed` writes of its collections (and, for a
/// plugin whose data the old bot had, of the old bot's). Every method defaults to writing
/// nothing.
#[async_trait::async_trait]
pub trait Samples: Send + Sync {
    /// Instance-wide documents, written before any guild's.
    async fn instance(&self, _s: &mut Sample<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// The documents of one guild.
    async fn guild(&self, _s: &mut Sample<'_>, _guild: &SampleGuild) -> anyhow::Result<()> {
        Ok(())
    }

    /// Per-user documents for the members of every guild (sorted, unique), written last.
    async fn users(&self, _s: &mut Sample<'_>, _users: &[String]) -> anyhow::Result<()> {
        Ok(())
    }

    /// The old bot's known records (one per quirk), in [`LEGACY_FIXTURE_GUILD`].
    async fn legacy_fixtures(&self, _s: &mut Sample<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// The old bot's records of one bulk guild.
    async fn legacy_guild(&self, _s: &mut Sample<'_>, _guild: &LegacyGuild) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Writes a Heimdall instance into `db` (which must be empty unless `opts.drop`), with
/// every unique and TTL index of `catalog` in place: the plugins' sample data (`plugins`, in
/// the plugins' order), guild by guild.
pub async fn seed_instance(
    db: &Database,
    catalog: &Catalog,
    plugins: &[&dyn Samples],
    opts: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    prepare_target(db, opts.drop).await?;
    crate::db::ensure_indexes(db, catalog).await?;
    let mut s = Sample::new(db, opts);
    for p in plugins {
        p.instance(&mut s).await?;
    }
    let mut all_users: Vec<String> = Vec::new();
    for index in 0..opts.guilds {
        let factor = guild_factor(index);
        let g = &mut s.g;
        let id = g.snowflake();
        let members: Vec<String> = (0..g.count(200.0, factor, opts.scale, 12))
            .map(|_| g.snowflake())
            .collect();
        let staff = members
            .iter()
            .take((members.len() / 20).clamp(3, 25))
            .cloned()
            .collect();
        all_users.extend(members.iter().cloned());
        let guild = SampleGuild {
            id,
            members,
            staff,
            factor,
            index,
        };
        for p in plugins {
            p.guild(&mut s, &guild).await?;
        }
    }
    all_users.sort();
    all_users.dedup();
    for p in plugins {
        p.users(&mut s, &all_users).await?;
    }
    s.w.finish().await
}

/// Writes an old-bot database into `db`: the known records, then the bulk guilds (modmail
/// heavy, scaled by `opts.scale`) with the quirks mixed in at random, from the plugins that
/// import the old bot's data.
pub async fn seed_legacy(
    db: &Database,
    plugins: &[&dyn Samples],
    opts: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    prepare_target(db, opts.drop).await?;
    let mut s = Sample::new(db, opts);
    for p in plugins {
        p.legacy_fixtures(&mut s).await?;
    }
    for index in 0..opts.guilds {
        let factor = guild_factor(index);
        let g = &mut s.g;
        let id = g.snowflake_u64();
        let users = (0..g.count(150.0, factor, opts.scale, 10))
            .map(|_| g.snowflake_u64())
            .collect();
        let guild = LegacyGuild { id, users, factor };
        for p in plugins {
            p.legacy_guild(&mut s, &guild).await?;
        }
    }
    s.w.finish().await
}
