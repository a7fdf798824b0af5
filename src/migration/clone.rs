//! Instance Clone: one Heimdall instance into another, step by step.
//!
//! The engine knows no collection by name: it works from the plugins' catalog (unique keys,
//! guild scope, references, encrypted fields, ephemeral collections) and calls each step's
//! [`CloneHandler`] for what is special to a plugin. Per collection it streams the selected
//! source documents in `_id` order, in batches (a reader task fetches the next batch while
//! the current one is written). For each batch it reads the target once over the batch's
//! `_id` range (what is already there, by `_id`, with its content for verification),
//! rewrites references through the `source _id → target _id` map, inserts the rest unordered
//! and looks up by unique key only the documents whose insert hit a unique index (they exist
//! under another `_id`). Written documents are read back over the same range and compared
//! with the source; a checkpoint is saved in the run record. Steps whose references are
//! satisfied run concurrently, the one heading the most work still ahead first, one large
//! step at a time (`schedule.rs`).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt};
use mongodb::bson::{
    self, doc, oid::ObjectId, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf,
};
use mongodb::options::InsertManyOptions;
use mongodb::{Collection, Database};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::runs::{
    CollectionResult, CollectionVerification, FailureKind, RunOptions, RunRecord, RunStore,
    SkippedCollection, StepResult, StepStatus, Verification, VerifyTally,
};
use super::source::{self, Source};
use super::{
    final_kind, run_under_lease, Begun, Cancelled, EventKind, MigrationMode, PendingRun,
    ProgressEvent, ProgressSink, RecordError, Throttle,
};
use heimdall_base::catalog::{
    Catalog as Registry, CollectionSpec, GuildScope, Lifetime, RegisteredStep,
};
use heimdall_base::crypto::{Crypto, DecryptError};
use heimdall_base::error::UserError;
use heimdall_base::secret::redact_uri;

pub use heimdall_base::catalog::{CloneHandler, GenericHandler};

#[path = "follow.rs"]
mod follow;
#[path = "gone.rs"]
mod gone;

/// What the migration works against: the target database and the catalog.
#[derive(Clone)]
pub struct MigrationEnv {
    /// The target (this bot's) database.
    pub target: Database,
    /// The target's connection string (to refuse cloning a database into itself).
    pub target_uri: String,
    /// The plugins' checked catalog.
    pub registry: Arc<Registry>,
    /// This instance's `ENCRYPTION_KEY`.
    pub crypto: Option<Crypto>,
    /// How long the run lease lives without renewal.
    pub lease_ttl: Duration,
    /// How long a run may make no progress before `migration:stalled` is sent.
    pub stall_after: Duration,
    /// How long the source may take to answer a read (or a ping) before the run stops
    /// ([`read_wait_from_env`](super::read_wait_from_env)).
    pub read_wait: Duration,
    /// A test's deterministic stop (never set outside tests).
    pub fail_point: Option<super::FailPoint>,
}

/// `HEIMDALL_MIGRATION_LEASE_SECS` (default 30).
pub fn lease_ttl_from_env() -> Duration {
    Duration::from_secs(super::positive_from_env("HEIMDALL_MIGRATION_LEASE_SECS", 30) as u64)
}

/// `HEIMDALL_MIGRATION_PARALLELISM`: how many steps a clone copies at once (default 2: at ten
/// million documents more steps at once slow the database server down; see docs/benchmarks.md).
pub fn parallelism_from_env() -> usize {
    super::positive_from_env("HEIMDALL_MIGRATION_PARALLELISM", 2)
}

/// The options of a clone.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneOptions {
    /// Source connection string.
    #[serde(skip)]
    pub source_uri: String,
    /// Source database (default: the URI's, else `heimdall`).
    pub source_db: Option<String>,
    /// Copy only this guild.
    pub guild: Option<String>,
    /// Stop after the plan.
    pub dry_run: bool,
    /// Replace existing documents instead of skipping them.
    pub overwrite: bool,
    /// Catch up: update documents whose content differs from the source's, and list those an
    /// earlier run copied that are gone from the source (never deleted).
    pub sync: bool,
    /// After the copy (a sync), keep applying the source's changes until stopped (cancel).
    pub follow: bool,
    /// Go on although this instance's key cannot decrypt the source's secrets.
    pub allow_key_mismatch: bool,
    /// Who starts it.
    pub started_by: String,
    /// Documents per batch.
    pub batch_size: usize,
    /// Steps copied at once.
    pub parallelism: usize,
}

impl CloneOptions {
    /// Defaults: everything, skip policy, batches of 1000, [`parallelism_from_env`] steps at once.
    pub fn new(source_uri: impl Into<String>, started_by: impl Into<String>) -> Self {
        Self {
            source_uri: source_uri.into(),
            source_db: None,
            guild: None,
            dry_run: false,
            overwrite: false,
            sync: false,
            follow: false,
            allow_key_mismatch: false,
            started_by: started_by.into(),
            batch_size: 1000,
            parallelism: parallelism_from_env(),
        }
    }

    fn redacted(&self) -> RunOptions {
        RunOptions {
            source: redact_uri(&self.source_uri),
            source_db: self.source_db.clone(),
            guild: self.guild.clone(),
            dry_run: self.dry_run,
            overwrite: self.overwrite,
            sync: self.sync,
            follow: self.follow,
            allow_key_mismatch: self.allow_key_mismatch,
            modmail_collection: None,
            started_by: self.started_by.clone(),
            batch_size: self.batch_size as u32,
            parallelism: Some(self.parallelism as u32),
            ..RunOptions::default()
        }
    }
}

/// The plan of one collection: what a run would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionPlan {
    /// Collection.
    pub name: String,
    /// Selected source documents.
    pub found: u64,
    /// Would be inserted.
    pub to_insert: u64,
    /// Would be skipped as existing.
    pub to_skip: u64,
    /// Of those, existing under another `_id` (references remapped).
    pub to_remap: u64,
    /// Would be replaced (overwrite policy).
    pub to_overwrite: u64,
    /// Sync: would be updated to the source's content.
    pub to_update: u64,
    /// Sync: copied by an earlier run, gone from the source since (would be listed, kept).
    pub gone: u64,
    /// Would fail (with the reasons in `errors`).
    pub invalid: u64,
    /// References pointing to nothing in the source.
    pub dangling: u64,
}

/// The plan of one step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    /// Step number.
    pub order: u16,
    /// Label.
    pub label: String,
    /// Plugin.
    pub plugin: String,
    /// Per collection.
    pub collections: Vec<CollectionPlan>,
    /// Not copied, with the reason.
    pub skipped_collections: Vec<SkippedCollection>,
}

/// The outcome of a dry run: nothing was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `clone`.
    pub mode: MigrationMode,
    /// Always true.
    pub dry_run: bool,
    /// Whether it is a sync's plan.
    pub sync: bool,
    /// The source, redacted.
    pub source: String,
    /// Per step.
    pub steps: Vec<StepPlan>,
    /// Records that would fail, with reasons (capped like a run's).
    pub errors: Vec<RecordError>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// What `start` returns: a plan (dry run) or the finished run record.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `--dry-run`: the plan; nothing was written.
    Plan(Plan),
    /// The run record as it ended.
    Run(Box<RunRecord>),
}

/// A new run id.
pub fn new_run_id() -> String {
    ObjectId::new().to_hex()
}

/// Everything a clone needs once pre-flight passed.
struct Prepared {
    source: Source,
    warnings: Vec<String>,
}

/// Pre-flight: guild id, source reachable and not the target, a Heimdall database, the key.
async fn preflight(env: &MigrationEnv, opts: &CloneOptions) -> anyhow::Result<Prepared> {
    if let Some(g) = &opts.guild {
        source::parse_guild(g)?;
    }
    let source = source::connect(
        &opts.source_uri,
        opts.source_db.as_deref(),
        Some("heimdall"),
        &env.target_uri,
        &env.target,
    )
    .await?;
    check_looks_like_heimdall(env, &source).await?;
    if let Some(g) = &opts.guild {
        check_guild_present(env, &source, g).await?;
    }
    let mut warnings = Vec::new();
    if let Some(problem) = key_check(env, &source.db, opts.guild.as_deref()).await? {
        if opts.allow_key_mismatch {
            warnings.push(format!("{problem} The owner chose to copy them anyway; they cannot be decrypted here until ENCRYPTION_KEY matches the source's."));
        } else {
            return Err(UserError::bad_request(
                "key_mismatch",
                format!("{problem} The two instances must share ENCRYPTION_KEY: set this instance's key to the source's, or pass --allow-key-mismatch to copy the secrets anyway (they will be unreadable here)."),
            )
            .into());
        }
    }
    Ok(Prepared { source, warnings })
}

/// Refuses a source whose documents do not have Heimdall's shape: of the catalog's
/// collections present there, a sampled document must carry its unique key.
async fn check_looks_like_heimdall(env: &MigrationEnv, source: &Source) -> anyhow::Result<()> {
    let names: HashSet<String> = source
        .db
        .list_collection_names()
        .await?
        .into_iter()
        .collect();
    let (mut shaped, mut foreign) = (0, 0);
    let mut old_bot = false;
    for c in env.registry.collections() {
        let spec = &c.spec;
        if spec.lifetime != Lifetime::Durable
            || spec.unique_key.is_empty()
            || !names.contains(spec.name)
        {
            continue;
        }
        let Some(sample) = source
            .db
            .collection::<Document>(spec.name)
            .find_one(doc! {})
            .await?
        else {
            continue;
        };
        if spec.unique_key.iter().all(|k| sample.contains_key(*k)) {
            shaped += 1;
        } else {
            foreign += 1;
            old_bot |= sample.contains_key("guildID");
        }
    }
    if shaped > 0 || (foreign == 0 && names.iter().any(|n| env.registry.collection(n).is_some())) {
        return Ok(());
    }
    let hint = if old_bot {
        " Its documents look like the old bot's (guildID fields): use `heimdall migrate legacy` for that."
    } else {
        ""
    };
    let mut found: Vec<_> = names.into_iter().collect();
    found.sort();
    Err(UserError::bad_request(
        "not_a_heimdall_database",
        format!(
            "database {} on {} does not look like a Heimdall database (it has: {}).{hint}",
            source.db.name(),
            source.display,
            if found.is_empty() {
                "nothing".into()
            } else {
                found.join(", ")
            }
        ),
    )
    .into())
}

/// Refuses a guild filter that matches nothing in the source (most likely a wrong id).
async fn check_guild_present(
    env: &MigrationEnv,
    source: &Source,
    guild: &str,
) -> anyhow::Result<()> {
    for c in env.registry.collections() {
        if let (Lifetime::Durable, GuildScope::Field { field, .. }) =
            (c.spec.lifetime, c.spec.scope)
        {
            let hit = source
                .db
                .collection::<Document>(c.spec.name)
                .find_one(doc! { field: guild })
                .projection(doc! { "_id": 1 })
                .await?;
            if hit.is_some() {
                return Ok(());
            }
        }
    }
    Err(UserError::bad_request(
        "guild_not_in_source",
        format!(
            "the source database {} holds no data of guild {guild}; check the id (Developer Mode → right-click the server → Copy Server ID)",
            source.db.name()
        ),
    )
    .into())
}

/// Decrypts a sample of the source's encrypted values with this instance's key; says what
/// is wrong when it cannot.
async fn key_check(
    env: &MigrationEnv,
    src: &Database,
    guild: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let mut sampled = 0;
    for c in env.registry.collections() {
        let spec = &c.spec;
        if spec.encrypted.is_empty() || spec.lifetime != Lifetime::Durable {
            continue;
        }
        let mut filter = doc! {};
        if let (Some(g), GuildScope::Field { field, .. }) = (guild, spec.scope) {
            filter.insert(field, g);
        }
        let docs: Vec<Document> = src
            .collection::<Document>(spec.name)
            .find(filter)
            .limit(5)
            .await?
            .try_collect()
            .await?;
        for d in &docs {
            for path in &spec.encrypted {
                for value in encrypted_values(d, path) {
                    sampled += 1;
                    let Some(crypto) = &env.crypto else {
                        return Ok(Some(format!(
                            "ENCRYPTION_KEY is not set here, but the source holds encrypted values ({}.{path}).",
                            spec.name
                        )));
                    };
                    match crypto.decrypt(&value) {
                        Ok(_) => {}
                        Err(DecryptError::WrongKeyOrTampered) | Err(DecryptError::NotText) => {
                            return Ok(Some(format!(
                                "this instance's ENCRYPTION_KEY cannot decrypt the source's secrets (tried {}.{path} of document {}).",
                                spec.name,
                                super::id_text(d)
                            )))
                        }
                        Err(e @ DecryptError::Malformed(_)) => {
                            tracing::warn!(collection = spec.name, path, error = %e, "malformed encrypted value in the source");
                        }
                    }
                }
            }
        }
    }
    tracing::debug!(sampled, "encryption key check passed");
    Ok(None)
}

/// The string values at `path` (`a[].b` walks array `a`).
pub fn encrypted_values(doc: &Document, path: &str) -> Vec<String> {
    match path.split_once("[].") {
        Some((arr, field)) => doc
            .get_array(arr)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_document()?.get_str(field).ok().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        None => doc
            .get_str(path)
            .ok()
            .map(String::from)
            .into_iter()
            .collect(),
    }
}

/// Runs a clone: pre-flight, then (unless a dry run) the copy and verification, recorded in
/// `migration_runs`. Refusals come back as user errors before anything is written.
pub async fn start(
    env: &MigrationEnv,
    opts: CloneOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Outcome> {
    Ok(match begin(env, opts, sink, cancel).await? {
        Begun::Plan(p) => Outcome::Plan(p),
        Begun::Run(r) => Outcome::Run(Box::new(r.run().await?)),
    })
}

/// Pre-flight, then either the plan (dry run) or a run holding the lease with its record
/// written, ready to execute.
pub async fn begin(
    env: &MigrationEnv,
    opts: CloneOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Begun<Plan>> {
    let mut opts = opts;
    opts.sync |= opts.follow;
    let mut prepared = preflight(env, &opts).await?;
    let run_id = new_run_id();
    // Follow: the change stream opens before anything is read, so no change is missed.
    let stream = if opts.follow && !opts.dry_run {
        Some(follow::open(&prepared.source.db, None).await?)
    } else {
        None
    };
    let prior = if opts.sync {
        let prior = prior_runs(&env.target, &prepared.source.identity, &run_id).await?;
        if prior.is_empty() {
            prepared.warnings.push("no earlier run from this source keeps a journal, so documents gone from the source cannot be told apart from this instance's own; none are listed".into());
        }
        prior
    } else {
        Vec::new()
    };
    if opts.dry_run {
        let mut engine = Engine::new(env, &opts, prepared.source, sink, cancel, run_id, false);
        engine.prior_runs = prior;
        return Ok(Begun::Plan(engine.plan(prepared.warnings).await?));
    }
    let store = RunStore::new(&env.target);
    let lease = store.acquire(&run_id, env.lease_ttl).await?;
    let mut record = RunRecord::started(
        &run_id,
        MigrationMode::Clone,
        opts.redacted(),
        initial_steps(&env.registry, opts.guild.is_some()),
        lease.fence().token(),
    );
    record.encrypted_source = env.crypto.as_ref().map(|c| c.encrypt(&opts.source_uri));
    record.warnings = prepared.warnings;
    record.source_identity = bson::to_document(&prepared.source.identity).ok();
    record.follow_token = stream.as_ref().and_then(follow::token_bson);
    if let Err(e) = store.create(&record).await {
        let _ = lease.release().await;
        return Err(e);
    }
    let watch = super::StallWatch::new(sink, env.stall_after);
    let mut engine = Engine::new(
        env,
        &opts,
        prepared.source,
        watch.clone(),
        cancel,
        run_id.clone(),
        true,
    );
    engine.prior_runs = prior;
    let source = engine.source.client.clone();
    Ok(Begun::Run(
        PendingRun::new(run_id, Box::pin(engine.execute(record, lease, stream)))
            .closing(source)
            .watched(watch),
    ))
}

/// Takes the lease of a clone run that can continue (checked by
/// [`crate::begin_resume`]); the returned run continues it from its checkpoints.
pub async fn begin_resume(
    env: &MigrationEnv,
    mut record: RunRecord,
    uri: String,
    force_source: bool,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<PendingRun> {
    let run_id = record.id.clone();
    let run_id = run_id.as_str();
    let mut opts: CloneOptions = CloneOptions::new(uri, record.started_by.clone());
    let stored = &record.options;
    opts.source_db = stored.source_db.clone();
    opts.guild = stored.guild.clone();
    opts.overwrite = stored.overwrite;
    opts.sync = stored.sync || stored.follow;
    opts.follow = stored.follow;
    opts.allow_key_mismatch = stored.allow_key_mismatch;
    opts.batch_size = (stored.batch_size as usize).max(1);
    if let Some(n) = stored.parallelism {
        opts.parallelism = (n as usize).max(1);
    }
    let prepared = preflight(env, &opts).await?;
    let lease = super::take_over(
        env,
        &mut record,
        &prepared.source,
        &opts.source_uri,
        force_source,
    )
    .await?;
    let prior = if opts.sync {
        prior_runs(&env.target, &prepared.source.identity, run_id).await?
    } else {
        Vec::new()
    };
    // Follow: from the position the run had applied (or its start), so nothing is missed.
    let stream = if opts.follow {
        let token = record.follow_token.as_ref().and_then(follow::token_of);
        match follow::open(&prepared.source.db, token).await {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = lease.release().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let watch = super::StallWatch::new(sink, env.stall_after);
    let mut engine = Engine::new(
        env,
        &opts,
        prepared.source,
        watch.clone(),
        cancel,
        run_id.to_string(),
        true,
    );
    engine.prior_runs = prior;
    let source = engine.source.client.clone();
    Ok(PendingRun::new(
        run_id.to_string(),
        Box::pin(engine.execute(record, lease, stream)),
    )
    .closing(source)
    .watched(watch))
}

/// Continues a cancelled, failed or crashed clone run from its checkpoints.
pub async fn resume(
    env: &MigrationEnv,
    run_id: &str,
    source_uri: Option<String>,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<RunRecord> {
    crate::resume(env, run_id, source_uri, sink, cancel).await
}

/// The clone runs from the data set `source` whose journals still say what they copied
/// (neither pruned nor undone), but `except`.
async fn prior_runs(
    target: &Database,
    source: &source::DbIdentity,
    except: &str,
) -> anyhow::Result<Vec<String>> {
    let runs: Vec<Document> = target
        .collection::<Document>(super::runs::RUNS)
        .find(doc! {
            "_id": { "$ne": except },
            "mode": MigrationMode::Clone.as_str(),
            "journal": true,
            "journalPrunedAt": { "$exists": false },
            "undoneBy": { "$exists": false },
        })
        .projection(doc! { "sourceIdentity": 1 })
        .await
        .context("reading earlier runs")?
        .try_collect()
        .await
        .context("reading earlier runs")?;
    Ok(runs
        .into_iter()
        .filter(|r| {
            r.get_document("sourceIdentity")
                .ok()
                .and_then(|d| bson::from_document::<source::DbIdentity>(d.clone()).ok())
                .is_some_and(|id| id.same_data_set(source))
        })
        .filter_map(|r| r.get_str("_id").ok().map(String::from))
        .collect())
}

/// The empty per-step results of a new run.
fn initial_steps(registry: &Registry, guild_filter: bool) -> Vec<StepResult> {
    registry
        .clone_steps()
        .iter()
        .map(|s| {
            let mut skipped: Vec<SkippedCollection> = s
                .spec
                .skipped
                .iter()
                .map(|c| SkippedCollection {
                    name: c.to_string(),
                    reason: "ephemeral: never copied".into(),
                })
                .collect();
            let mut collections = Vec::new();
            for c in &s.spec.collections {
                let global = registry
                    .collection(c)
                    .is_some_and(|sp| sp.scope == GuildScope::Global);
                if guild_filter && global {
                    skipped.push(SkippedCollection {
                        name: c.to_string(),
                        reason: "global (not scoped to a guild): not copied with a guild filter"
                            .into(),
                    });
                } else {
                    collections.push(CollectionResult {
                        name: c.to_string(),
                        ..Default::default()
                    });
                }
            }
            StepResult {
                order: s.spec.order,
                label: s.spec.label.to_string(),
                plugin: s.plugin.to_string(),
                status: StepStatus::Pending,
                collections,
                skipped_collections: skipped,
            }
        })
        .collect()
}

/// Which documents the target already has a write updates (a sync's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    /// None: they are skipped (or, overwriting, replaced).
    Nothing,
    /// Those whose content (references as remapped) differs from the source's: a sync's
    /// plan, a followed change, what a sync's verification found differing.
    Content,
}

/// How often a copy writes its place in the run record (a checkpoint): each one is an
/// update of the record, and a resume handles again only what came after the last.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How many source `_id`s of a referenced collection a run keeps in memory as seen: a
/// reference to one of them needs no query. References to others are checked on the source
/// (counted later, see [`Deferred`], or looked up at once where a remap may be missing), so
/// memory stays the same however big the collection is.
const KNOWN_CAP: usize = 1 << 16;

/// How many remapped `_id`s (copied under another `_id`) of a referenced collection a run
/// keeps in memory; past that, dependants find the rest on the databases.
const MAP_CAP: usize = 1 << 16;

/// The source `_id`s seen most recently, at most [`KNOWN_CAP`]: two generations, the older
/// dropped when the newer is full.
#[derive(Debug, Default, Clone)]
struct RecentIds {
    now: HashSet<ObjectId>,
    before: HashSet<ObjectId>,
}

impl RecentIds {
    fn insert(&mut self, id: ObjectId) {
        if self.now.len() >= KNOWN_CAP / 2 {
            self.before = std::mem::take(&mut self.now);
        }
        self.now.insert(id);
    }

    fn contains(&self, id: &ObjectId) -> bool {
        self.now.contains(id) || self.before.contains(id)
    }

    fn remove(&mut self, id: &ObjectId) {
        self.now.remove(id);
        self.before.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.now.len() + self.before.len()
    }
}

/// At most this many references waiting to be counted (see [`Deferred`]) before they are.
const DEFER_CAP: usize = 1 << 15;

/// References a copy did not place in memory, to a parent whose remaps memory holds whole
/// (not `spilled`): each points to the same `_id` in the target or dangles, so no write
/// waits on them. They are counted together, sorted and deduplicated, at each checkpoint
/// and whenever [`DEFER_CAP`] wait: one lookup where every batch used to make one, and no
/// set of the parent's `_id`s growing with the collection.
#[derive(Debug, Default)]
struct Deferred {
    /// Per reference of the collection (by index), the referenced `_id`s.
    pending: Vec<Vec<ObjectId>>,
}

impl Deferred {
    fn push(&mut self, reference: usize, id: ObjectId) {
        if self.pending.len() <= reference {
            self.pending.resize_with(reference + 1, Vec::new);
        }
        self.pending[reference].push(id);
    }

    fn len(&self) -> usize {
        self.pending.iter().map(Vec::len).sum()
    }
}

/// What a batch belongs to: the step (by index), the collection and the step's handler.
#[derive(Clone, Copy)]
pub(crate) struct BatchOf<'a> {
    /// The step's index in the catalog's clone steps.
    pub step_index: usize,
    /// The collection.
    pub spec: &'a CollectionSpec,
    /// The step's handler.
    pub handler: &'a dyn CloneHandler,
}

/// A batch checked and rewritten, waiting for its inserts (see [`Engine::stage_batch`]).
struct Staged {
    /// The step's order (for record errors).
    step: u16,
    /// The batch's record errors so far.
    errors: Vec<RecordError>,
    /// Source documents the target holds (source, target's `_id` and key).
    matched: Vec<(Document, Document)>,
    /// Documents to look up by key (with the insert's error, if one was tried).
    lookup: Vec<(Document, Option<String>)>,
    /// Whether others reference the collection (its remaps are kept).
    tracked: bool,
}

/// What the inserts of a staged batch did.
#[derive(Default)]
struct Inserted {
    /// Documents written (or, in a dry run, to write).
    count: u64,
    /// Documents refused by the journal or the database.
    failed: Vec<RecordError>,
    /// Documents a unique index refused: to look up by key.
    duplicates: Vec<(Document, Option<String>)>,
}

/// A count of deferred references and what it decides: how many dangle, and the checkpoint
/// (the collection's counts and the errors since the last one) to save once it is in, if
/// the count began at one.
type Counted = (
    anyhow::Result<u64>,
    Option<(CollectionResult, Vec<RecordError>)>,
);

/// A count of deferred references under way beside the copy ([`Counted`]).
type Counting = std::pin::Pin<Box<dyn std::future::Future<Output = Counted> + Send>>;

/// What the engine learned about a collection that others reference, bounded whatever the
/// collection's size.
#[derive(Debug, Clone, Default)]
struct RefState {
    /// Source `_id`s seen lately and copied under the same `_id`.
    known: RecentIds,
    /// Source `_id` → target `_id`, where they differ (at most [`MAP_CAP`]).
    map: HashMap<ObjectId, ObjectId>,
    /// Some remapped `_id`s are not in `map` (it was full, or the run resumed): a reference
    /// to an `_id` not in `known` or `map` is looked up on the databases.
    spilled: bool,
    /// Source `_id`s selected by the guild filter (for "through its parent" children).
    selected: Vec<ObjectId>,
    /// Per referenced collection, where the references this collection's copy looked up on
    /// the databases point (bounded the same way): the next batches' children of the same
    /// parents need no query.
    looked_up: HashMap<&'static str, RefState>,
}

/// Where a reference to a source `_id` points in the target, as far as memory knows.
#[derive(Debug, PartialEq)]
enum RefTarget {
    /// Copied under the same `_id`.
    Same,
    /// Copied under this `_id`.
    Remapped(ObjectId),
    /// Not known: ask the databases.
    Ask,
}

impl RefState {
    /// A source document of the collection was read.
    fn saw(&mut self, id: ObjectId) {
        self.known.insert(id);
    }

    /// The source document `source` is in the target as `target`.
    fn remapped(&mut self, source: ObjectId, target: ObjectId) {
        if self.map.len() < MAP_CAP || self.map.contains_key(&source) {
            self.map.insert(source, target);
        } else {
            self.spilled = true;
        }
        self.known.remove(&source);
    }

    fn target_of(&self, id: &ObjectId) -> RefTarget {
        match self.map.get(id) {
            Some(t) => RefTarget::Remapped(*t),
            None if self.known.contains(id) => RefTarget::Same,
            None => RefTarget::Ask,
        }
    }

    /// What stays once every step referencing the collection has ended: the `_id`s copied
    /// under another `_id` (a followed change may still reference them) and the guild's
    /// selection, not the recent `_id`s.
    fn slimmed(&self) -> RefState {
        RefState {
            map: self.map.clone(),
            spilled: self.spilled,
            selected: self.selected.clone(),
            ..RefState::default()
        }
    }

    /// Adds what `other` learned (a followed batch).
    fn merge(&mut self, other: RefState) {
        for (s, t) in other.map {
            self.remapped(s, t);
        }
        self.spilled |= other.spilled;
    }
}

/// What a sync's verification found and did in one collection.
#[derive(Debug, Default)]
struct Synced {
    /// Documents found differing and updated.
    updated: u64,
    /// Documents that could not be updated.
    failed: u64,
    /// Documents gone from the source (a whole count), when looked for.
    gone: Option<u64>,
}

struct Engine {
    target: Database,
    registry: Arc<Registry>,
    source: Source,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
    run_id: String,
    guild: Option<String>,
    overwrite: bool,
    sync: bool,
    /// Sync: earlier runs from this source whose journals say what they copied.
    prior_runs: Vec<String>,
    /// The whole run's pace.
    clock: super::RunClock,
    /// Sync: what its verification found and did, per collection.
    synced: Mutex<HashMap<String, Synced>>,
    write: bool,
    batch_size: usize,
    parallelism: usize,
    /// How long the source may take to answer a read.
    read_wait: Duration,
    store: RunStore,
    states: Mutex<HashMap<&'static str, Arc<RefState>>>,
    referenced: HashSet<&'static str>,
    completed: AtomicU16,
    plan_errors: Mutex<Vec<RecordError>>,
    fail_point: Option<super::FailPoint>,
    /// What the run writes, recorded before each write (runs that write only).
    journal: Option<super::journal::Journal>,
    /// Collections found whole in the target before their copy (nothing copied): both
    /// sides' sums, which their verification reports.
    found_whole: Mutex<HashMap<&'static str, (Summed, Summed)>>,
    /// Each collection's source count as the run's start measured it, taken by its step
    /// (counting again costs the source a scan on some servers).
    counted: Mutex<HashMap<&'static str, u64>>,
    /// The `_id`s of referenced collections this run read whole, on local disk: what their
    /// children's references are counted against before the source is asked.
    parent_ids: super::parent_ids::ParentIds,
}

impl Engine {
    fn new(
        env: &MigrationEnv,
        opts: &CloneOptions,
        source: Source,
        sink: Arc<dyn ProgressSink>,
        cancel: CancellationToken,
        run_id: String,
        write: bool,
    ) -> Self {
        let referenced = env
            .registry
            .collections()
            .iter()
            .flat_map(|c| c.spec.references.iter().map(|r| r.collection))
            .collect();
        Self {
            target: env.target.clone(),
            registry: env.registry.clone(),
            source,
            sink,
            cancel,
            run_id,
            guild: opts.guild.clone(),
            overwrite: opts.overwrite,
            sync: opts.sync || opts.follow,
            prior_runs: Vec::new(),
            clock: super::RunClock::new(env.registry.clone_steps().len()),
            synced: Mutex::new(HashMap::new()),
            write,
            batch_size: opts.batch_size.max(1),
            parallelism: opts.parallelism.max(1),
            read_wait: env.read_wait,
            store: RunStore::new(&env.target),
            states: Mutex::new(HashMap::new()),
            referenced,
            completed: AtomicU16::new(0),
            plan_errors: Mutex::new(Vec::new()),
            fail_point: env.fail_point.clone(),
            journal: None,
            found_whole: Mutex::default(),
            counted: Mutex::default(),
            parent_ids: super::parent_ids::ParentIds::new(),
        }
    }

    fn total_steps(&self) -> u16 {
        self.registry.clone_steps().len() as u16
    }

    fn event(&self, kind: EventKind, step: &RegisteredStep) -> ProgressEvent {
        ProgressEvent {
            kind: Some(kind),
            run_id: self.run_id.clone(),
            mode: MigrationMode::Clone,
            step: step.spec.order,
            label: step.spec.label.to_string(),
            plugin: step.plugin.to_string(),
            completed: self.completed.load(Ordering::SeqCst),
            total: self.total_steps(),
            record_index: None,
            record_total: None,
            counts: None,
            stalled_since: None,
            lag_ms: None,
            collection: None,
            run_pace: None,
            pace: None,
            result: None,
        }
    }

    fn run_event(&self, kind: EventKind, result: serde_json::Value) -> ProgressEvent {
        ProgressEvent {
            kind: Some(kind),
            run_id: self.run_id.clone(),
            mode: MigrationMode::Clone,
            step: 0,
            label: "Instance Clone".into(),
            // A run belongs to no plugin (its steps do).
            plugin: String::new(),
            completed: self.completed.load(Ordering::SeqCst),
            total: self.total_steps(),
            record_index: None,
            record_total: None,
            counts: None,
            stalled_since: None,
            lag_ms: None,
            collection: None,
            run_pace: None,
            pace: None,
            result: Some(result),
        }
    }

    fn state(&self, collection: &str) -> Arc<RefState> {
        self.states
            .lock()
            .expect("state lock")
            .get(collection)
            .cloned()
            .unwrap_or_default()
    }

    /// The source filter selecting a collection's documents; `None`: not copied.
    ///
    /// With a guild filter, a "through its parent" collection selects the children of the
    /// selected parents: known once the parent is copied, else read from the source.
    fn selection<'a>(
        &'a self,
        spec: &'a CollectionSpec,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<Option<Document>>> {
        Box::pin(async move {
            let Some(guild) = &self.guild else {
                return Ok(Some(doc! {}));
            };
            Ok(match spec.scope {
                GuildScope::Field { field, .. } => Some(doc! { field: guild }),
                GuildScope::Global => None,
                GuildScope::Parent { via } => {
                    let parent = spec
                        .parent_reference()
                        .context("parent scope without reference")?
                        .collection;
                    let published = self.states.lock().expect("state lock").get(parent).cloned();
                    let ids: Vec<Bson> = match published {
                        Some(st) => st.selected.iter().map(|o| Bson::ObjectId(*o)).collect(),
                        None => {
                            let pspec =
                                self.registry.collection(parent).context("unknown parent")?;
                            match self.selection(pspec).await? {
                                None => Vec::new(),
                                Some(pf) => self
                                    .source
                                    .db
                                    .collection::<Document>(parent)
                                    .find(pf)
                                    .projection(doc! { "_id": 1 })
                                    .await?
                                    .try_collect::<Vec<_>>()
                                    .await?
                                    .into_iter()
                                    .filter_map(|d| d.get("_id").cloned())
                                    .collect(),
                            }
                        }
                    };
                    Some(doc! { via: { "$in": ids } })
                }
            })
        })
    }

    /// Runs every step, respecting references, `parallelism` at a time. With `verify`, each
    /// step's collections are verified as soon as the step is copied, beside the steps still
    /// copying (`parallelism` verifications at a time); returns when every copy and
    /// verification ended, with the instant the last copy did.
    async fn run_steps(
        self: &Arc<Self>,
        prior: &[StepResult],
        verify: bool,
    ) -> anyhow::Result<(
        Vec<StepResult>,
        Vec<CollectionVerification>,
        std::time::Instant,
    )> {
        let steps = self.registry.clone_steps();
        let deps = self.registry.clone_step_dependencies();
        let sizes = self.measure(prior).await?;
        let chain = crate::schedule::chain_sizes(&sizes, &deps);
        let large = crate::schedule::large_steps(&sizes);
        let plan = crate::schedule::Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        let mut results: Vec<Option<StepResult>> = vec![None; steps.len()];
        let mut checks: Vec<Vec<CollectionVerification>> = vec![Vec::new(); steps.len()];
        let mut started = vec![false; steps.len()];
        let mut done = vec![false; steps.len()];
        let mut set = tokio::task::JoinSet::new();
        let mut verifying = tokio::task::JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(self.parallelism));
        loop {
            while set.len() < self.parallelism {
                let Some(i) = plan.next_step(&started, &done) else {
                    break;
                };
                started[i] = true;
                let me = self.clone();
                let prior = prior[i].clone();
                let span = tracing::info_span!("clone_step", run = %self.run_id, step = steps[i].spec.order, label = steps[i].spec.label);
                set.spawn(async move { (i, me.run_step(i, prior).await) }.instrument(span));
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (i, res) = joined.context("a clone step task panicked")?;
            match res {
                Ok(r) => {
                    done[i] = true;
                    for d in plan.no_longer_needed(i, &done) {
                        self.slim(&steps[d]);
                    }
                    if verify {
                        let (me, permits) = (self.clone(), permits.clone());
                        let (order, collections) = (r.order, r.collections.clone());
                        let span =
                            tracing::info_span!("clone_verify", run = %self.run_id, step = order);
                        verifying.spawn(
                            async move {
                                let _permit = permits.acquire_owned().await;
                                let mut out = Vec::new();
                                for c in &collections {
                                    match me.verify_collection(order, c).await {
                                        Ok(v) => out.push(v),
                                        Err(e) => return (i, Err(e)),
                                    }
                                }
                                (i, Ok(out))
                            }
                            .instrument(span),
                        );
                    }
                    results[i] = Some(r);
                }
                Err(e) => {
                    set.abort_all();
                    verifying.abort_all();
                    return Err(e);
                }
            }
        }
        let copied = std::time::Instant::now();
        while let Some(joined) = verifying.join_next().await {
            let (i, res) = joined.context("a verification task panicked")?;
            match res {
                Ok(v) => checks[i] = v,
                Err(e) => {
                    verifying.abort_all();
                    return Err(e);
                }
            }
        }
        Ok((
            results
                .into_iter()
                .map(|r| r.expect("every step ran"))
                .collect(),
            checks.into_iter().flatten().collect(),
            copied,
        ))
    }

    /// The run's size, for its pace: the selected documents of every step (a collection's
    /// metadata count when nothing is filtered), and what earlier attempts did. Returns each
    /// step's documents, for the order steps start in (the whole step's, so a resumed run
    /// takes its steps in the order the first attempt did).
    async fn measure(&self, prior: &[StepResult]) -> anyhow::Result<Vec<u64>> {
        let (mut total, mut before) = (0u64, 0u64);
        let mut sizes = vec![0u64; prior.len()];
        for (i, step) in prior.iter().enumerate() {
            let mut done = 0;
            for c in &step.collections {
                done += c.processed;
                if c.done {
                    total += c.processed;
                    sizes[i] += c.processed;
                    continue;
                }
                let Some(spec) = self.registry.collection(&c.name) else {
                    continue;
                };
                let source = self.source.db.collection::<Document>(spec.name);
                let n = match self.selection(spec).await? {
                    None => 0,
                    Some(f) if f.is_empty() => source.estimated_document_count().await?,
                    Some(f) => source.count_documents(f).await?,
                };
                self.counted.lock().expect("counted").insert(spec.name, n);
                total += n.max(c.processed);
                sizes[i] += n.max(c.processed);
            }
            before += done;
            self.clock.step(i, done);
        }
        self.clock.set_total(total, before);
        Ok(sizes)
    }

    async fn run_step(
        self: Arc<Self>,
        index: usize,
        mut result: StepResult,
    ) -> anyhow::Result<StepResult> {
        let began = std::time::Instant::now();
        let step = &self.registry.clone_steps()[index];
        let mut ev = self.event(EventKind::StepStart, step);
        ev.collection = result.collections.first().map(|c| c.name.clone());
        self.sink.emit(&ev);
        if self.write && result.status != StepStatus::Completed {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Running)
                .await?;
        }
        let mut throttle = Throttle::new(10);
        let mut before = 0u64;
        let mut totals: Vec<u64> = Vec::new();
        for c in &result.collections {
            let spec = self
                .registry
                .collection(&c.name)
                .cloned()
                .context("a run names a collection the catalog no longer has")?;
            if let Some(n) = self.counted.lock().expect("counted").remove(spec.name) {
                totals.push(n);
                continue;
            }
            let filter = self.selection(&spec).await?.unwrap_or_default();
            let source = self.source.db.collection::<Document>(spec.name);
            // A total for progress only: the whole collection's from its metadata.
            let total = if filter.is_empty() {
                source.estimated_document_count().await
            } else {
                source.count_documents(filter).await
            }
            .context("counting the source's documents")?;
            totals.push(total);
        }
        let step_total: u64 = totals.iter().sum();
        // The pace counts this attempt's records only (a resumed step began with some).
        let step_started = std::time::Instant::now();
        let before_start: u64 = result
            .collections
            .iter()
            .zip(&totals)
            .map(|(c, t)| c.processed.min(*t))
            .sum();
        for (ci, total) in totals.iter().copied().enumerate() {
            let prior = result.collections[ci].clone();
            let spec = self
                .registry
                .collection(&prior.name)
                .cloned()
                .expect("checked above");
            let handler = step.spec.handler.clone();
            let done_before = result.collections[..ci].to_vec();
            let out = self
                .copy_collection(index, ci, &spec, prior, total, handler.as_ref(), |so_far| {
                    let idx = before + so_far.processed;
                    self.clock.step(index, idx);
                    if throttle.allow(idx, step_total) {
                        let mut p = self.event(EventKind::StepProgress, step);
                        p.collection = Some(so_far.name.clone());
                        p.run_pace = Some(self.clock.pace());
                        p.record_index = Some(idx);
                        p.record_total = Some(step_total);
                        let mut counts = crate::StepCounts::of(&done_before);
                        counts.add(so_far);
                        p.counts = Some(counts);
                        p.pace = Some(crate::Pace::of(
                            step_started,
                            idx.saturating_sub(before_start),
                            step_total.saturating_sub(before_start),
                        ));
                        self.sink.emit(&p);
                    }
                })
                .await?;
            before += out.processed.min(total);
            result.collections[ci] = out;
        }
        result.status = StepStatus::Completed;
        if self.write {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Completed)
                .await?;
        }
        self.completed.fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            ms = began.elapsed().as_millis() as u64,
            processed = result.sum(|c| c.processed),
            dangling = result.sum(|c| c.dangling),
            "clone step copied"
        );
        ev = self.event(EventKind::StepComplete, step);
        ev.record_index = Some(before);
        ev.record_total = Some(step_total);
        ev.result = Some(serde_json::to_value(&result)?);
        self.sink.emit(&ev);
        Ok(result)
    }

    /// Copies (or, in a dry run, plans) one collection from its checkpoint.
    #[allow(clippy::too_many_arguments)]
    async fn copy_collection(
        self: &Arc<Self>,
        step_index: usize,
        coll_index: usize,
        spec: &CollectionSpec,
        mut result: CollectionResult,
        total: u64,
        handler: &dyn CloneHandler,
        mut progress: impl FnMut(&CollectionResult),
    ) -> anyhow::Result<CollectionResult> {
        let mut state = RefState::default();
        let tracked = self.referenced.contains(spec.name);
        let base = self.selection(spec).await?.unwrap_or_default();
        if tracked && (result.done || result.last_id.is_some()) {
            // Resuming: rebuild what dependants need from the part already copied.
            let upto = match (result.done, &result.last_id) {
                (false, Some(last)) => {
                    super::id_order::and(base.clone(), super::id_order::up_to(last))
                }
                _ => base.clone(),
            };
            self.rebuild_state(spec, upto, &mut state).await?;
        }
        if self.write {
            self.repair(
                step_index,
                coll_index,
                spec,
                &base,
                handler,
                &mut state,
                &mut result,
            )
            .await?;
        }
        // A first attempt at the collection in a run that writes: how many documents the
        // target holds of it (its metadata count), for the two shortcuts below.
        let target_holds =
            if !result.done && self.write && result.processed == 0 && result.last_id.is_none() {
                Some(
                    self.target
                        .collection::<Document>(spec.name)
                        .estimated_document_count()
                        .await
                        .context("counting the target's documents")?,
                )
            } else {
                None
            };
        if !result.done {
            if let Some(n) = self.found_whole(spec, target_holds).await? {
                result.total = n;
                result.processed = n;
                result.skipped = n;
                result.done = true;
                self.store
                    .save_collection(&self.run_id, step_index, coll_index, &result, &[], &[])
                    .await?;
            }
        }
        if result.done {
            self.publish(spec, state);
            progress(&result);
            return Ok(result);
        }
        result.total = total.max(result.processed);
        let base_for_gone = base.clone();
        let query = match &result.last_id {
            Some(last) => super::id_order::and(base, super::id_order::after(last)),
            None => base,
        };
        // A first attempt into a collection the target holds none of: batches go straight
        // to the insert, without reading the target first. What arrives there meanwhile (a
        // live bot writing) comes back as a duplicate key and is looked up then.
        let empty_target = target_holds == Some(0);
        let (reader, mut rx) = super::read_raw_batches(
            self.source.db.collection::<RawDocumentBuf>(spec.name),
            query,
            self.batch_size,
            self.read_wait,
            "reading the source",
        );
        progress(&result);
        let mut batches = 0u64;
        // Checkpoints at most every CHECKPOINT_EVERY, and at once for a batch with errors
        // or a stop: a resume handles again what came after the last one (finding it in
        // the target, skipped), as it would the batch between an insert and its checkpoint.
        let mut saved_at = std::time::Instant::now();
        let mut deferred = Deferred::default();
        // A first copy into an empty collection keeps a few batches' inserts in flight: one
        // at a time, the server idles between a collection's round trips. A batch is staged
        // (checked, rewritten) in order, inserted, then settled in order; a checkpoint waits
        // for every batch staged before it, so what it saves covers them all.
        let depth = if self.write && empty_target {
            INSERTS_AT_ONCE
        } else {
            1
        };
        // A run that writes leaves the comparison to its verification.
        let compare = if self.sync && !self.write {
            Compare::Content
        } else {
            Compare::Nothing
        };
        // A referenced collection of the whole instance, read from its first document: its
        // `_id`s go to disk as they are read, for its children's counts.
        let mut ids_out =
            (tracked && self.guild.is_none() && result.processed == 0 && result.last_id.is_none())
                .then(|| self.parent_ids.writer(spec.name))
                .flatten();
        let mut inserting = futures::stream::FuturesOrdered::new();
        let mut inserted = std::collections::VecDeque::new();
        // The references waiting to be counted are counted while the copy goes on, one
        // count at a time; a checkpoint is saved once its count is in (see [`Counting`]).
        let mut counting: Option<Counting> = None;
        let (mut read_all, mut stopping) = (false, false);
        loop {
            let Some((staged, last_id, outcome)) = inserted.pop_front() else {
                let reading = !read_all && !stopping && inserting.len() < depth;
                if !reading && inserting.is_empty() {
                    break;
                }
                tokio::select! {
                    biased;
                    counted = async { counting.as_mut().expect("a count").await },
                        if counting.is_some() =>
                    {
                        counting = None;
                        self.record_count(step_index, coll_index, counted, &mut result)
                            .await?;
                    }
                    Some(done) = inserting.next(), if !inserting.is_empty() => {
                        inserted.push_back(done);
                    }
                    batch = rx.recv(), if reading => {
                        let Some(batch) = batch else {
                            read_all = true;
                            continue;
                        };
                        let batch = batch?;
                        batches += 1;
                        if let Some(Err(e)) = ids_out.as_mut().map(|w| w.add(&batch)) {
                            tracing::warn!(
                                collection = spec.name,
                                error = %e,
                                "the collection's ids are not kept on disk: references to it are counted on the source"
                            );
                            ids_out = None;
                        }
                        // A test's fail point: this batch stops between its journal entry
                        // and its inserts.
                        let stop_before_insert = self.write
                            && self.fail_point.is_some()
                            && self.at_fail_point(spec, batches, &batch).await?;
                        let last_id = batch
                            .last()
                            .and_then(|d| raw_id(d))
                            .map(raw_to_bson)
                            .transpose()?;
                        let (to_insert, staged) = self
                            .stage_batch(
                                BatchOf {
                                    step_index,
                                    spec,
                                    handler,
                                },
                                batch,
                                &mut state,
                                &mut result,
                                empty_target,
                                Some(&mut deferred),
                            )
                            .await?;
                        let step = staged.step;
                        // Its own task: an insert holds a pooled connection from its first
                        // poll to its end, and this loop awaits other calls meanwhile.
                        let insert = self.spawn_owned(spec, move |me, spec| async move {
                            me.insert_staged(&spec, step, stop_before_insert, to_insert)
                                .await
                        });
                        inserting.push_back(async move {
                            let outcome = insert.await.and_then(|r| r);
                            (staged, last_id, outcome)
                        });
                        // A process stopped inside a batch starts no batch after it: the
                        // next is not read while this one's stop is on its way.
                        stopping = self.cancel.is_cancelled()
                            || stop_before_insert
                            || (self.write
                                && super::FailPoint::hit(&self.fail_point, spec.name, batches));
                    }
                }
                continue;
            };
            let mut errors = self
                .settle_batch(spec, staged, outcome?, &mut state, &mut result, compare)
                .await?;
            result.last_id = last_id;
            stopping |= self.cancel.is_cancelled();
            let checkpoint = self.write
                && (stopping || !errors.is_empty() || saved_at.elapsed() >= CHECKPOINT_EVERY);
            if checkpoint {
                // Every batch staged so far is in `result`'s counts: settle them all first.
                loop {
                    let next = match inserted.pop_front() {
                        Some(done) => Some(done),
                        None => inserting.next().await,
                    };
                    let Some((staged, last_id, outcome)) = next else {
                        break;
                    };
                    errors.extend(
                        self.settle_batch(spec, staged, outcome?, &mut state, &mut result, compare)
                            .await?,
                    );
                    result.last_id = last_id;
                }
            }
            // A checkpoint counts what it covers (a resume does not read it again): it is
            // saved once the count is in, the copy going on meanwhile.
            if checkpoint || deferred.len() >= DEFER_CAP {
                self.finish_count(&mut counting, step_index, coll_index, &mut result)
                    .await?;
                let refs = std::mem::take(&mut deferred.pending);
                let save = checkpoint.then(|| (result.clone(), std::mem::take(&mut errors)));
                let count = self.spawn_owned(spec, move |me, spec| async move {
                    me.count_dangling(&spec, refs).await
                });
                counting = Some(Box::pin(async move { (count.await.and_then(|r| r), save) }));
                if checkpoint {
                    saved_at = std::time::Instant::now();
                }
            }
            if !self.write {
                let mut pe = self.plan_errors.lock().expect("plan errors");
                let room = super::MAX_RECORDED_ERRORS.saturating_sub(pe.len());
                pe.extend(errors.into_iter().take(room));
            }
            progress(&result);
            if stopping && inserting.is_empty() && inserted.is_empty() {
                self.finish_count(&mut counting, step_index, coll_index, &mut result)
                    .await?;
                return Err(Cancelled.into());
            }
        }
        drop(reader);
        self.finish_count(&mut counting, step_index, coll_index, &mut result)
            .await?;
        result.dangling += self
            .count_dangling(spec, std::mem::take(&mut deferred.pending))
            .await?;
        if self.sync && !self.write {
            // A plan counts here; a run finds what is gone in its verification.
            let order = self.registry.clone_steps()[step_index].spec.order;
            result.gone = self.find_gone(order, spec, &base_for_gone).await?;
        }
        result.done = true;
        if let Some(w) = ids_out.take() {
            self.parent_ids.finish(w);
        }
        if self.write {
            self.store
                .save_collection(&self.run_id, step_index, coll_index, &result, &[], &[])
                .await?;
        }
        self.publish(spec, state);
        Ok(result)
    }

    /// Runs `work` (database calls of `spec`'s copy) as a task of its own, in the caller's
    /// span; the returned future gives its result (an error if it panicked) and aborts it
    /// when dropped. Database calls the copy keeps in flight while it awaits others go
    /// here: a driver future holds its pooled connection from its first poll to its end,
    /// so one left unpolled beside a call waiting for a connection can starve the pool.
    fn spawn_owned<T, F>(
        self: &Arc<Self>,
        spec: &CollectionSpec,
        work: impl FnOnce(Arc<Self>, CollectionSpec) -> F,
    ) -> impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            work(self.clone(), spec.clone()).instrument(tracing::Span::current()),
        ));
        let collection = spec.name;
        async move {
            task.await
                .with_context(|| format!("a task copying {collection} failed"))
        }
    }

    /// Whether the target holds `spec`'s collection whole already (a run again over what an
    /// earlier one copied): the number of documents when both sides, read once in the
    /// server's own order, add up to the same sums; they are kept for the verification. Only
    /// for a run that writes (a sync too), of the whole instance, not overwriting, at the
    /// start of the collection (`target_holds`: what the target holds of it then, `None`
    /// otherwise), into a collection that is not empty: a first run pays nothing.
    async fn found_whole(
        &self,
        spec: &CollectionSpec,
        target_holds: Option<u64>,
    ) -> anyhow::Result<Option<u64>> {
        if self.guild.is_some() || self.overwrite || target_holds.unwrap_or(0) == 0 {
            return Ok(None);
        }
        // A sync compares references too: one changed in the source is an update to make
        // (equal sums then also mean nothing is gone from the source).
        let ignore: Vec<&str> = if self.sync {
            Vec::new()
        } else {
            spec.references.iter().map(|r| r.field).collect()
        };
        let (source, target) = self.sum_both(spec.name, &ignore).await?;
        if !source.agrees(&target) {
            return Ok(None);
        }
        tracing::info!(
            collection = spec.name,
            documents = source.count,
            "the target holds this collection whole: nothing to copy"
        );
        let n = source.count;
        self.found_whole
            .lock()
            .expect("found whole")
            .insert(spec.name, (source, target));
        Ok(Some(n))
    }

    /// [`Summed`] of `collection` on the source and on the target, read side by side.
    async fn sum_both(
        &self,
        collection: &str,
        ignore: &[&str],
    ) -> anyhow::Result<(Summed, Summed)> {
        let alive = || self.sink.alive();
        let read = |db: &Database| {
            let coll = db.collection(collection);
            Summed::of(coll, doc! {}, ignore, (self.batch_size, &alive))
        };
        tokio::try_join!(
            async {
                read(&self.source.db)
                    .await
                    .context("reading the source to verify the copy")
            },
            async {
                read(&self.target)
                    .await
                    .context("reading the target to verify the copy")
            },
        )
    }

    /// Copies again the documents an earlier verification of this run found missing from
    /// the target (removed behind the run's back, or never read), then forgets them.
    #[allow(clippy::too_many_arguments)]
    async fn repair(
        &self,
        step_index: usize,
        coll_index: usize,
        spec: &CollectionSpec,
        base: &Document,
        handler: &dyn CloneHandler,
        state: &mut RefState,
        result: &mut CollectionResult,
    ) -> anyhow::Result<()> {
        let missing = self.store.missing_ids(&self.run_id, spec.name).await?;
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(
            collection = spec.name,
            count = missing.len(),
            "copying again what verification found missing"
        );
        let (keys, ids): (Vec<String>, Vec<Bson>) = missing.into_iter().unzip();
        let source = self.source.db.collection::<RawDocumentBuf>(spec.name);
        for chunk in ids.chunks(IN_CHUNK) {
            let batch = super::find_ids(&source, base, chunk, "reading the source").await?;
            let errors = self
                .process_batch(
                    BatchOf {
                        step_index,
                        spec,
                        handler,
                    },
                    batch,
                    state,
                    result,
                    Compare::Nothing,
                )
                .await?;
            result.processed = result.processed.min(result.total);
            self.store
                .save_collection(&self.run_id, step_index, coll_index, result, &errors, &[])
                .await?;
        }
        self.store.forget_failures(keys).await
    }

    /// Reads every in-scope source document of one collection again and looks for its
    /// counterpart in the target: by `_id` (one range read per batch), else by unique key
    /// (remapped documents). Content is compared without `_id` and references.
    async fn verify_collection(
        &self,
        order: u16,
        result: &CollectionResult,
    ) -> anyhow::Result<CollectionVerification> {
        let spec = self
            .registry
            .collection(&result.name)
            .cloned()
            .context("a run names a collection the catalog no longer has")?;
        self.store.forget_missing(&self.run_id, spec.name).await?;
        let ignore: Vec<&str> = spec.references.iter().map(|r| r.field).collect();
        let allowed = if self.overwrite || self.sync {
            0
        } else {
            result.skipped
        };
        // A sync's run updates what this pass finds differing, then checks it again, and
        // finds what is gone from the source in the same reads of the target.
        let syncing = self.sync && self.write;
        // A collection found whole before its copy (which then wrote nothing) has its sums;
        // for a sync, nothing of it is gone either.
        let found = self
            .found_whole
            .lock()
            .expect("found whole")
            .remove(spec.name);
        if let Some((source, target)) = found {
            if syncing {
                self.synced
                    .lock()
                    .expect("synced")
                    .entry(spec.name.to_string())
                    .or_default()
                    .gone = Some(0);
            }
            return Ok(source.whole_report(&target, order, spec.name, allowed));
        }
        // Any other whole collection but a sync's (which compares and updates document by
        // document): both sides read once in the server's own order and summed; document
        // by document only if they differ.
        if self.guild.is_none() && !syncing {
            let (source, target) = self.sum_both(spec.name, &ignore).await?;
            if source.agrees(&target) {
                return Ok(source.whole_report(&target, order, spec.name, allowed));
            }
            tracing::info!(
                collection = spec.name,
                source = source.count,
                target = target.count,
                "the target does not add up to the source: checking document by document"
            );
        }
        let base = self.selection(&spec).await?.unwrap_or_default();
        let base_filter = base.clone();
        // Raw documents: hashed where they lie, never parsed (a re-run is mostly this pass).
        let target = self.target.collection::<RawDocumentBuf>(spec.name);
        let (_reader, mut rx) = super::read_raw_batches(
            self.source.db.collection::<RawDocumentBuf>(spec.name),
            base,
            self.batch_size,
            self.read_wait,
            "reading the source to verify the copy",
        );
        let mut tally = VerifyTally::default();
        let mut gone = syncing.then(|| gone::GoneScan::new(base_filter.is_empty()));
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            self.sink.alive();
            let ids: Vec<Bson> = batch.iter().filter_map(|d| raw_id_bson(d)).collect();
            let window = gone.as_mut().and_then(|g| g.window(&ids));
            let by_id = match (window, gone.as_mut()) {
                (Some(filter), Some(scan)) => {
                    self.read_window(order, &spec, &target, filter, &ids, scan)
                        .await?
                }
                _ => fetch_raw_by_ids(&target, &ids, Lookup::Stretch).await?,
            };
            let mut by_key: Vec<(&RawDocument, Document, u64)> = Vec::new();
            let mut stale: Vec<Bson> = Vec::new();
            for d in &batch {
                let h = raw_content_hash(d, &ignore)?;
                let found = raw_id(d).and_then(|id| by_id.get(&IdKey::of_raw(id)));
                match found {
                    Some(t) if raw_same_key(&spec, t, d) => {
                        let th = raw_content_hash(t, &ignore)?;
                        if syncing && (th != h || raw_refs_differ(&spec, d, t)) {
                            stale.extend(raw_id_bson(d));
                        } else {
                            tally.add_source(h);
                            tally.add_found(h, th);
                        }
                    }
                    _ => by_key.push((d, d.to_document()?, h)),
                }
            }
            drop(by_id);
            if !by_key.is_empty() {
                let existing = if spec.unique_key.is_empty() {
                    Existing::default()
                } else {
                    let keys: Vec<Document> =
                        by_key.iter().map(|(_, d, _)| identity(&spec, d)).collect();
                    existing_in(&self.target, &spec, &keys, true).await?
                };
                let mut absent = Vec::new();
                for (raw_d, d, h) in by_key {
                    match existing.docs.get(&key_of(&spec, &d)) {
                        Some(t) => {
                            let raw = RawDocumentBuf::from_document(t)?;
                            let th = raw_content_hash(&raw, &ignore)?;
                            if syncing && (th != h || raw_refs_differ(&spec, raw_d, &raw)) {
                                stale.extend(d.get("_id").cloned());
                            } else {
                                tally.add_source(h);
                                tally.add_found(h, th);
                            }
                        }
                        None => {
                            tally.add_source(h);
                            absent.push(RecordError::of(
                                order,
                                spec.name,
                                &d,
                                "verification: not in the target",
                            ))
                        }
                    }
                }
                self.store
                    .note_absent(
                        &self.run_id,
                        spec.name,
                        &[FailureKind::Error],
                        absent,
                        &mut tally,
                    )
                    .await?;
            }
            if !stale.is_empty() {
                self.update_stale(order, &spec, &base_filter, &ignore, stale, &mut tally)
                    .await?;
            }
        }
        if let Some(scan) = gone {
            let n = self.finish_gone(order, &spec, &base_filter, scan).await?;
            self.synced
                .lock()
                .expect("synced")
                .entry(spec.name.to_string())
                .or_default()
                .gone = Some(n);
        }
        Ok(tally.report(order, spec.name, allowed))
    }

    /// Sync: updates the target documents verification found with other content than the
    /// source's, or other references (journaled; those whose references differ only as
    /// remapped are left alone), then compares them again for the tally. Counts them in
    /// `synced`, to add to the run record's step once its verification is over.
    async fn update_stale(
        &self,
        order: u16,
        spec: &CollectionSpec,
        base: &Document,
        ignore: &[&str],
        stale: Vec<Bson>,
        tally: &mut VerifyTally,
    ) -> anyhow::Result<()> {
        let step_index = self
            .registry
            .clone_steps()
            .iter()
            .position(|s| s.spec.order == order)
            .context("a step the catalog no longer has")?;
        let handler = self.registry.clone_steps()[step_index].spec.handler.clone();
        let source = self.source.db.collection::<RawDocumentBuf>(spec.name);
        let docs = super::find_ids(&source, base, &stale, "reading the source").await?;
        let mut delta = CollectionResult {
            name: spec.name.to_string(),
            ..Default::default()
        };
        let mut state = RefState::default();
        let errors = self
            .process_batch(
                BatchOf {
                    step_index,
                    spec,
                    handler: handler.as_ref(),
                },
                docs,
                &mut state,
                &mut delta,
                Compare::Content,
            )
            .await?;
        self.store
            .keep_failures(&self.run_id, FailureKind::Error, &errors)
            .await?;
        {
            let mut synced = self.synced.lock().expect("synced");
            let e = synced.entry(spec.name.to_string()).or_default();
            e.updated += delta.updated;
            e.failed += delta.failed;
        }
        // Checked again: source and target as they are now.
        let raw_source = self.source.db.collection::<RawDocumentBuf>(spec.name);
        let raw_target = self.target.collection::<RawDocumentBuf>(spec.name);
        let now_source = fetch_raw_by_ids(&raw_source, &stale, Lookup::Points).await?;
        let by_key_docs: Vec<Document> = now_source
            .values()
            .map(|d| d.to_document())
            .collect::<Result<_, _>>()?;
        let existing = existing_in(&self.target, spec, &by_key_docs, false).await?;
        // Each source document's counterpart: by key (remapped), else under its own `_id`.
        let target_ids: Vec<Bson> = by_key_docs
            .iter()
            .map(|d| {
                existing
                    .by_key
                    .get(&key_of(spec, d))
                    .cloned()
                    .or_else(|| d.get("_id").cloned())
                    .unwrap_or(Bson::Null)
            })
            .collect();
        let now_target = fetch_raw_by_ids(&raw_target, &target_ids, Lookup::Points).await?;
        for (d, tid) in by_key_docs.iter().zip(&target_ids) {
            let raw = RawDocumentBuf::from_document(d)?;
            let h = raw_content_hash(&raw, ignore)?;
            tally.add_source(h);
            match now_target.get(&IdKey::of(tid)) {
                Some(t) => tally.add_found(h, raw_content_hash(t, ignore)?),
                None => tally.add_absent(false, &super::short_id_text(tid)),
            }
        }
        Ok(())
    }

    /// Slims the states of step `step`'s collections once no step still to end references
    /// them: a run holds the `_id`s read of its referenced collections only while they serve.
    fn slim(&self, step: &RegisteredStep) {
        let mut states = self.states.lock().expect("state lock");
        for c in &step.spec.collections {
            if let Some(st) = states.get_mut(c) {
                *st = Arc::new(st.slimmed());
            }
        }
    }

    fn publish(&self, spec: &CollectionSpec, state: RefState) {
        if self.referenced.contains(spec.name) {
            self.states
                .lock()
                .expect("state lock")
                .insert(spec.name, Arc::new(state));
        }
    }

    /// Resuming a referenced collection: what dependants need of the part already copied.
    /// The `_id` map is not read back (it could be as big as the collection): dependants
    /// find remapped `_id`s on the databases. With a guild filter, the selected `_id`s are
    /// read again.
    async fn rebuild_state(
        &self,
        spec: &CollectionSpec,
        filter: Document,
        state: &mut RefState,
    ) -> anyhow::Result<()> {
        state.spilled = true;
        if self.guild.is_none() {
            return Ok(());
        }
        let mut cursor = self
            .source
            .db
            .collection::<Document>(spec.name)
            .find(filter)
            .projection(doc! { "_id": 1 })
            .batch_size(self.batch_size as u32)
            .await?;
        while let Some(d) = cursor.try_next().await? {
            if let Some(Bson::ObjectId(id)) = d.get("_id") {
                state.selected.push(*id);
            }
        }
        Ok(())
    }

    /// How many of `refs` (per reference of `spec`, by index: referenced `_id`s) dangle:
    /// each list sorted, then merged with the parent's `_id`s this run read, when it read
    /// them whole (see [`super::parent_ids`]); what that does not place is read from the
    /// source by `_id` ([`IN_CHUNK`] distinct `_id`s a query, `_id`s only), so that what a
    /// count holds beside them is a few queries' worth.
    async fn count_dangling(
        &self,
        spec: &CollectionSpec,
        mut refs: Vec<Vec<ObjectId>>,
    ) -> anyhow::Result<u64> {
        let mut dangling = 0;
        for (i, ids) in refs.iter_mut().enumerate() {
            if ids.is_empty() {
                continue;
            }
            ids.sort_unstable();
            let parent = spec.references[i].collection;
            let sorted = std::mem::take(ids);
            // The parent's `_id`s as this run read them, if it read them whole: only what
            // they do not hold is asked of the source (a parent added since is there).
            let ask = match self.parent_ids.complete(parent) {
                None => sorted,
                Some(path) => {
                    let (absent, sorted) = tokio::task::spawn_blocking(move || {
                        (super::parent_ids::absent_from_file(&path, &sorted), sorted)
                    })
                    .await
                    .context("counting references against the parents read")?;
                    absent.unwrap_or_else(|e| {
                        tracing::warn!(
                            collection = spec.name,
                            parent,
                            error = %e,
                            "cannot read the parents' ids kept on disk: counting on the source"
                        );
                        sorted
                    })
                }
            };
            tracing::debug!(
                collection = spec.name,
                parent,
                references = ask.len(),
                "counting references on the source"
            );
            let parents = self.source.db.collection::<RawDocumentBuf>(parent);
            let mut counts = dangling_counts(&parents, &ask);
            while let Some(n) = counts.try_next().await? {
                dangling += n;
            }
        }
        Ok(dangling)
    }

    /// Waits for the count under way, if any, and records it ([`Self::record_count`]).
    async fn finish_count(
        &self,
        counting: &mut Option<Counting>,
        step_index: usize,
        coll_index: usize,
        result: &mut CollectionResult,
    ) -> anyhow::Result<()> {
        match counting.take() {
            Some(count) => {
                let counted = count.await;
                self.record_count(step_index, coll_index, counted, result)
                    .await
            }
            None => Ok(()),
        }
    }

    /// A count of [`Counting`] is in: added to `result`, and its checkpoint (if it had one)
    /// saved with it.
    async fn record_count(
        &self,
        step_index: usize,
        coll_index: usize,
        (count, save): Counted,
        result: &mut CollectionResult,
    ) -> anyhow::Result<()> {
        let n = count?;
        result.dangling += n;
        if let Some((mut at, errors)) = save {
            at.dangling += n;
            self.store
                .save_collection(&self.run_id, step_index, coll_index, &at, &errors, &[])
                .await?;
        }
        Ok(())
    }

    /// Which of `ids` (references into `parent`) the source has, and — with `remaps` —
    /// the target `_id`s of those copied under another `_id`: read from the source by `_id`,
    /// then from the target by unique key (a referenced collection's key holds no
    /// reference, so it is the same on both sides).
    async fn resolve_references(
        &self,
        parent: &str,
        ids: &[ObjectId],
        remaps: bool,
    ) -> anyhow::Result<(HashSet<ObjectId>, HashMap<ObjectId, ObjectId>)> {
        let mut wanted: Vec<ObjectId> = ids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let pspec = self.registry.collection(parent);
        // Without remaps to find, the `_id` alone answers (the `_id` index, no document).
        let projection = match pspec {
            Some(p) if remaps => key_projection(p),
            _ => doc! { "_id": 1 },
        };
        let ids: Vec<Bson> = wanted.iter().map(|o| Bson::ObjectId(*o)).collect();
        let parents = self.source.db.collection::<Document>(parent);
        let mut answers = find_each(&parents, id_filters(&ids, Lookup::Points), Some(projection));
        let mut found: Vec<Document> = Vec::with_capacity(wanted.len());
        while let Some(docs) = answers.try_next().await? {
            found.extend(docs);
        }
        let present: HashSet<ObjectId> = found
            .iter()
            .filter_map(|d| d.get_object_id("_id").ok())
            .collect();
        let mut map = HashMap::new();
        if let Some(pspec) = pspec.filter(|p| remaps && !p.unique_key.is_empty()) {
            if !found.is_empty() {
                let existing = existing_in(&self.target, pspec, &found, false).await?;
                for d in &found {
                    let (Ok(sid), Some(Bson::ObjectId(tid))) = (
                        d.get_object_id("_id"),
                        existing.by_key.get(&key_of(pspec, d)),
                    ) else {
                        continue;
                    };
                    if sid != *tid {
                        map.insert(sid, *tid);
                    }
                }
            }
        }
        Ok((present, map))
    }

    /// What a test's fail point does at batch `batch` of a collection, before the batch is
    /// handled (see [`super::FailKind`]); whether the batch stops before its inserts.
    async fn at_fail_point(
        &self,
        spec: &CollectionSpec,
        batch: u64,
        docs: &[RawDocumentBuf],
    ) -> anyhow::Result<bool> {
        use super::{FailKind, FailPoint};
        let stop_before_insert = FailPoint::at(
            &self.fail_point,
            spec.name,
            batch,
            FailKind::StopBeforeInsert,
        );
        if FailPoint::at(&self.fail_point, spec.name, batch, FailKind::Arrival) {
            if let Some(first) = docs.first() {
                let mut d = first.to_document()?;
                d.insert("arrivedMeanwhile", true);
                self.target
                    .collection::<Document>(spec.name)
                    .insert_one(d)
                    .await?;
            }
        }
        Ok(stop_before_insert)
    }

    /// Validates, rewrites, checks existence and writes one batch outside the copy's own
    /// loop (documents copied again, a sync's updates); returns its record errors.
    ///
    /// Documents stay the source's bytes: one is parsed only to rewrite a reference, for a
    /// handler that adjusts documents, or when the target holds something under its `_id`
    /// or key (skipped, overwritten or looked up).
    async fn process_batch(
        &self,
        of: BatchOf<'_>,
        batch: Vec<RawDocumentBuf>,
        state: &mut RefState,
        result: &mut CollectionResult,
        compare: Compare,
    ) -> anyhow::Result<Vec<RecordError>> {
        let spec = of.spec;
        let (to_insert, staged) = self
            .stage_batch(of, batch, state, result, false, None)
            .await?;
        let inserted = self
            .insert_staged(spec, staged.step, false, to_insert)
            .await?;
        self.settle_batch(spec, staged, inserted, state, result, compare)
            .await
    }

    /// The first part of [`Self::process_batch`]: validates and rewrites the batch and
    /// checks what the target holds of it; returns the documents to insert and the rest.
    async fn stage_batch(
        &self,
        of: BatchOf<'_>,
        batch: Vec<RawDocumentBuf>,
        state: &mut RefState,
        result: &mut CollectionResult,
        empty_target: bool,
        mut deferred: Option<&mut Deferred>,
    ) -> anyhow::Result<(Vec<RawDocumentBuf>, Staged)> {
        let BatchOf {
            step_index,
            spec,
            handler,
        } = of;
        let step = self.registry.clone_steps()[step_index].spec.order;
        let mut errors = Vec::new();
        let fail = |errors: &mut Vec<RecordError>, d: &Document, reason: String| {
            errors.push(RecordError::of(step, spec.name, d, reason));
        };
        let fail_raw = |errors: &mut Vec<RecordError>, d: &RawDocument, reason: String| {
            let id = raw_id_bson(d);
            errors.push(RecordError::of_id(step, spec.name, id, reason));
        };
        result.processed += batch.len() as u64;

        // Validate and rewrite references: from memory where it knows the target `_id`,
        // else from the databases (a few `_id`s per batch).
        let ref_states: Vec<(usize, Arc<RefState>)> = spec
            .references
            .iter()
            .enumerate()
            .map(|(i, r)| (i, self.state(r.collection)))
            .collect();
        let tracked = self.referenced.contains(spec.name);
        // Each document with the references it has to rewrite (applied once, below).
        let mut checked: Vec<(RawDocumentBuf, Vec<(&str, ObjectId)>)> =
            Vec::with_capacity(batch.len());
        let mut unknown: Vec<Vec<ObjectId>> = vec![Vec::new(); spec.references.len()];
        for d in batch {
            if let Some(RawBsonRef::ObjectId(id)) = raw_id(&d) {
                if tracked {
                    state.saw(id);
                    if self.guild.is_some() {
                        state.selected.push(id);
                    }
                }
            }
            if let Err(reason) = check_raw(spec, &d) {
                result.failed += 1;
                fail_raw(&mut errors, &d, reason);
                continue;
            }
            let mut rewrites: Vec<(&str, ObjectId)> = Vec::new();
            for (i, rs) in &ref_states {
                let r = &spec.references[*i];
                if let Ok(Some(RawBsonRef::ObjectId(id))) = d.get(r.field) {
                    let place = match rs.target_of(&id) {
                        RefTarget::Ask => state
                            .looked_up
                            .get(r.collection)
                            .map_or(RefTarget::Ask, |l| l.target_of(&id)),
                        known => known,
                    };
                    match (place, deferred.as_deref_mut()) {
                        (RefTarget::Remapped(t), _) => rewrites.push((r.field, t)),
                        (RefTarget::Same, _) => {}
                        // Not remapped (the parent's remaps are all in memory): only
                        // whether it dangles is left to find, later.
                        (RefTarget::Ask, Some(later)) if !rs.spilled => later.push(*i, id),
                        (RefTarget::Ask, _) => unknown[*i].push(id),
                    }
                }
            }
            checked.push((d, rewrites));
        }

        // References to `_id`s memory does not place: dangling unless the source has them;
        // remapped when the target has them under another `_id`.
        let mut looked_up: Vec<HashMap<ObjectId, ObjectId>> = Vec::new();
        for (i, ids) in unknown.iter().enumerate() {
            if ids.is_empty() {
                looked_up.push(HashMap::new());
                continue;
            }
            let parent = spec.references[i].collection;
            let (present, map) = self
                .resolve_references(parent, ids, ref_states[i].1.spilled)
                .await?;
            result.dangling += ids.iter().filter(|id| !present.contains(id)).count() as u64;
            let remembered = state.looked_up.entry(parent).or_default();
            for id in &present {
                match map.get(id) {
                    Some(t) => remembered.remapped(*id, *t),
                    None => remembered.saw(*id),
                }
            }
            looked_up.push(map);
        }
        let adjusts = handler.adjusts();
        let mut valid: Vec<RawDocumentBuf> = Vec::with_capacity(checked.len());
        for (raw, mut rewrites) in checked {
            for (i, map) in looked_up.iter().enumerate() {
                let field = spec.references[i].field;
                if map.is_empty() || rewrites.iter().any(|(f, _)| *f == field) {
                    continue;
                }
                if let Ok(Some(RawBsonRef::ObjectId(id))) = raw.get(field) {
                    if let Some(t) = map.get(&id) {
                        rewrites.push((field, *t));
                    }
                }
            }
            if !adjusts {
                valid.push(if rewrites.is_empty() {
                    raw
                } else {
                    RawDocumentBuf::from_document(&rewritten(&raw, &rewrites)?)?
                });
                continue;
            }
            let mut d = rewritten(&raw, &rewrites)?;
            if let Err(reason) = handler.prepare(spec, &mut d) {
                result.failed += 1;
                fail(&mut errors, &d, reason);
                continue;
            }
            match RawDocumentBuf::from_document(&d) {
                Ok(r) => valid.push(r),
                Err(e) => {
                    result.failed += 1;
                    fail(&mut errors, &d, format!("cannot be written: {e}"));
                }
            }
        }

        // Existence, first by `_id`: one range read of the target over the batch's `_id`s
        // (whole documents, so skipped ones are verified on the spot), none when the copy
        // began into an empty collection (`empty_target`). A document whose key
        // could be in the target under another `_id` is looked up by key only when it has to
        // be: when its `_id` matched a document with another key, when inserting it hit a
        // unique index, or in a dry run (which cannot try).
        let target = self.target.collection::<Document>(spec.name);
        let ids: Vec<Bson> = valid.iter().filter_map(|d| raw_id_bson(d)).collect();
        let by_id = if valid.is_empty() || empty_target {
            HashMap::new()
        } else {
            fetch_by_ids(&target, spec, &ids, false, Lookup::Stretch).await?
        };
        let mut matched: Vec<(Document, Document)> = Vec::new();
        let mut lookup: Vec<(Document, Option<String>)> = Vec::new();
        let mut to_insert: Vec<RawDocumentBuf> = Vec::with_capacity(valid.len());
        for raw in valid {
            let found = match raw_id(&raw) {
                Some(id) => by_id.get(&IdKey::of_raw(id)),
                None => by_id.get(&IdKey::Other("null".into())),
            };
            match found {
                Some(t) => {
                    let d = raw.to_document()?;
                    if same_key(spec, t, &d) {
                        matched.push((d, t.clone()));
                    } else {
                        lookup.push((d, None));
                    }
                }
                None if !self.write && !spec.unique_key.is_empty() => {
                    lookup.push((raw.to_document()?, None))
                }
                None => to_insert.push(raw),
            }
        }
        drop(by_id);
        Ok((
            to_insert,
            Staged {
                step,
                errors,
                matched,
                lookup,
                tracked,
            },
        ))
    }

    /// The inserts of a staged batch, unordered, its journal entry first. They need no
    /// memory of the run, so a collection can have a few batches' inserts in flight.
    async fn insert_staged(
        &self,
        spec: &CollectionSpec,
        step: u16,
        stop_before_insert: bool,
        mut to_insert: Vec<RawDocumentBuf>,
    ) -> anyhow::Result<Inserted> {
        let mut out = Inserted::default();
        let fail_raw = |errors: &mut Vec<RecordError>, d: &RawDocument, reason: String| {
            let id = raw_id_bson(d);
            errors.push(RecordError::of_id(step, spec.name, id, reason));
        };
        // A duplicate key means the document is there under another `_id` (or arrived
        // meanwhile): it joins the key lookup in [`Self::settle_batch`].
        if !self.write {
            out.count = to_insert.len() as u64;
        } else if !to_insert.is_empty() {
            // The journal first: a document whose entry cannot be written is not written.
            let mut written = super::journal::Written::default();
            if let Some(j) = &self.journal {
                let (refused, w) = j.will_insert_raw(spec.name, &to_insert, true).await?;
                written = w;
                if !refused.is_empty() {
                    let refused_at: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
                    for (i, why) in refused {
                        fail_raw(&mut out.failed, &to_insert[i], why);
                    }
                    to_insert = to_insert
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !refused_at.contains(i))
                        .map(|(_, d)| d)
                        .collect();
                }
            }
            if stop_before_insert {
                return Err(Cancelled.into());
            }
            self.store.check_fence()?;
            let mut failed_idx = HashSet::new();
            let raw_target = self.target.collection::<RawDocumentBuf>(spec.name);
            if let Err(failures) = insert_unordered(&raw_target, &to_insert).await {
                for f in failures? {
                    failed_idx.insert(f.index);
                    if f.code == 11000 {
                        out.duplicates
                            .push((to_insert[f.index].to_document()?, Some(f.reason)));
                    } else {
                        fail_raw(&mut out.failed, &to_insert[f.index], f.reason);
                    }
                }
            }
            if let Some(j) = &self.journal {
                let not_written: Vec<Bson> = failed_idx
                    .iter()
                    .filter_map(|i| raw_id_bson(&to_insert[*i]))
                    .collect();
                j.not_inserted(&written, &not_written).await?;
            }
            out.count = (to_insert.len() - failed_idx.len()) as u64;
        }
        Ok(out)
    }

    /// The last part of [`Self::process_batch`], once the batch's inserts are made: looks
    /// up the documents found under another `_id` or key, skips, overwrites or updates them;
    /// returns the batch's record errors.
    async fn settle_batch(
        &self,
        spec: &CollectionSpec,
        staged: Staged,
        inserted: Inserted,
        state: &mut RefState,
        result: &mut CollectionResult,
        compare: Compare,
    ) -> anyhow::Result<Vec<RecordError>> {
        let Staged {
            step,
            mut errors,
            mut matched,
            mut lookup,
            tracked,
        } = staged;
        let fail = |errors: &mut Vec<RecordError>, d: &Document, reason: String| {
            errors.push(RecordError::of(step, spec.name, d, reason));
        };
        result.inserted += inserted.count;
        result.failed += inserted.failed.len() as u64;
        errors.extend(inserted.failed);
        lookup.extend(inserted.duplicates);

        // The key lookup, for the few that need it.
        if !lookup.is_empty() {
            let docs: Vec<Document> = lookup.iter().map(|(d, _)| d.clone()).collect();
            let existing = existing_in(&self.target, spec, &docs, false).await?;
            for (d, insert_error) in lookup {
                let key = key_of(spec, &d);
                let sid = d.get("_id").cloned().unwrap_or(Bson::Null);
                if let Some(tid) = existing.by_key.get(&key) {
                    let t = existing
                        .docs
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| doc! { "_id": tid.clone() });
                    matched.push((d, t));
                } else if existing.by_id.contains(&IdKey::of(&sid)) {
                    result.failed += 1;
                    fail(
                        &mut errors,
                        &d,
                        format!(
                            "the target already holds _id {sid} under another key; left as it is"
                        ),
                    );
                } else if let Some(reason) = insert_error {
                    result.failed += 1;
                    fail(&mut errors, &d, reason);
                } else {
                    // Only in a dry run: nothing in the target has its key or `_id`.
                    result.inserted += 1;
                }
            }
        }

        // Documents the target already has: skipped (and verified) or overwritten.
        // A sync compares what the target holds with the source: read raw, hashed in place.
        let current = if compare == Compare::Content && !self.overwrite && !matched.is_empty() {
            let ids: Vec<Bson> = matched
                .iter()
                .filter_map(|(_, t)| t.get("_id").cloned())
                .collect();
            let raw_target = self.target.collection::<RawDocumentBuf>(spec.name);
            fetch_raw_by_ids(&raw_target, &ids, Lookup::Stretch).await?
        } else {
            HashMap::new()
        };
        // (document, target `_id`, remapped, whether it is a sync's update)
        let mut replacing: Vec<(Document, Bson, bool, bool)> = Vec::new();
        for (mut d, t) in matched {
            let sid = d.get("_id").cloned().unwrap_or(Bson::Null);
            let tid = t.get("_id").cloned().unwrap_or(Bson::Null);
            let remapped = tid != sid;
            if let (true, Bson::ObjectId(s), Bson::ObjectId(t)) = (remapped, &sid, &tid) {
                if tracked {
                    state.remapped(*s, *t);
                }
            }
            // A sync updates only what differs from the source (references as remapped).
            let update = !self.overwrite
                && match compare {
                    Compare::Nothing => false,
                    Compare::Content => match current.get(&IdKey::of(&tid)) {
                        Some(now) => {
                            raw_content_hash(&RawDocumentBuf::from_document(&d)?, &[])?
                                != raw_content_hash(now, &[])?
                        }
                        None => false,
                    },
                };
            if !self.overwrite && !update {
                result.skipped += 1;
                result.remapped += remapped as u64;
                continue;
            }
            if !self.write {
                if update {
                    result.updated += 1;
                } else {
                    result.overwritten += 1;
                }
                result.remapped += remapped as u64;
                continue;
            }
            d.insert("_id", tid.clone());
            replacing.push((d, tid, remapped, update));
        }
        if replacing.is_empty() {
            return Ok(errors);
        }

        // Overwrites: the documents as they are now go to the journal first (a backup
        // before overwrite), then each is replaced.
        if let Some(j) = &self.journal {
            let ids: Vec<Bson> = replacing.iter().map(|(_, t, _, _)| t.clone()).collect();
            let raw_target = self.target.collection::<RawDocumentBuf>(spec.name);
            let now = fetch_raw_by_ids(&raw_target, &ids, Lookup::Points).await?;
            let mut pairs = Vec::with_capacity(replacing.len());
            let mut kept = Vec::with_capacity(replacing.len());
            for (d, tid, remapped, update) in replacing {
                match now.get(&IdKey::of(&tid)) {
                    Some(before) => {
                        pairs.push((before.clone(), d));
                        kept.push((tid, remapped, update));
                    }
                    // Removed from the target since it was found: left to a re-run.
                    None => {
                        result.failed += 1;
                        fail(
                            &mut errors,
                            &d,
                            "removed from the target while the run was replacing it; run the clone again to copy it".into(),
                        );
                    }
                }
            }
            drop(now);
            let refused = j.will_replace(spec.name, &pairs).await?;
            let out: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
            for (i, why) in refused {
                result.failed += 1;
                fail(&mut errors, &pairs[i].1, why);
            }
            replacing = pairs
                .into_iter()
                .zip(kept)
                .enumerate()
                .filter(|(i, _)| !out.contains(i))
                .map(|(_, ((_, d), (tid, remapped, update)))| (d, tid, remapped, update))
                .collect();
        }
        let target = self.target.collection::<Document>(spec.name);
        for (d, tid, remapped, update) in replacing {
            self.store.check_fence()?;
            match target.replace_one(doc! { "_id": tid.clone() }, &d).await {
                Ok(_) => {
                    if update {
                        result.updated += 1;
                    } else {
                        result.overwritten += 1;
                    }
                    result.remapped += remapped as u64;
                }
                Err(e) => {
                    result.failed += 1;
                    fail(
                        &mut errors,
                        &d,
                        format!("replacing failed: {}", short(&e.to_string())),
                    );
                }
            }
        }

        Ok(errors)
    }

    /// A dry run: the whole plan, nothing written.
    async fn plan(self, warnings: Vec<String>) -> anyhow::Result<Plan> {
        let me = Arc::new(self);
        let initial = initial_steps(&me.registry, me.guild.is_some());
        let (steps, _, _) = me.run_steps(&initial, false).await?;
        let errors = std::mem::take(&mut *me.plan_errors.lock().expect("plan errors"));
        Ok(Plan {
            mode: MigrationMode::Clone,
            dry_run: true,
            sync: me.sync,
            source: me.source.display.clone(),
            steps: steps
                .into_iter()
                .map(|s| StepPlan {
                    order: s.order,
                    label: s.label,
                    plugin: s.plugin,
                    collections: s
                        .collections
                        .into_iter()
                        .map(|c| CollectionPlan {
                            name: c.name,
                            found: c.processed,
                            to_insert: c.inserted,
                            to_skip: c.skipped,
                            to_remap: c.remapped,
                            to_overwrite: c.overwritten,
                            to_update: c.updated,
                            gone: c.gone,
                            invalid: c.failed,
                            dangling: c.dangling,
                        })
                        .collect(),
                    skipped_collections: s.skipped_collections,
                })
                .collect(),
            errors,
            warnings,
        })
    }

    /// Adds what a sync's verification updated to the record's counts (once per update).
    async fn record_synced(&self, steps: &[StepResult]) -> anyhow::Result<()> {
        let synced = std::mem::take(&mut *self.synced.lock().expect("synced"));
        for (si, s) in steps.iter().enumerate() {
            for (ci, c) in s.collections.iter().enumerate() {
                if let Some(s) = synced.get(&c.name) {
                    if s.updated == 0 && s.failed == 0 && s.gone.is_none_or(|g| g == c.gone) {
                        continue; // nothing to change in the record
                    }
                    let base = format!("steps.{si}.collections.{ci}");
                    let mut update = doc! { "$inc": {
                        format!("{base}.updated"): s.updated as i64,
                        format!("{base}.failed"): s.failed as i64,
                    } };
                    if let Some(gone) = s.gone {
                        // A whole count, found again by each verification.
                        update.insert("$set", doc! { format!("{base}.gone"): gone as i64 });
                    }
                    self.store.update(&self.run_id, update).await?;
                }
            }
        }
        Ok(())
    }

    /// Copies every step, verifies, and closes the record.
    async fn execute(
        mut self,
        record: RunRecord,
        lease: super::runs::Lease,
        stream: Option<follow::Stream>,
    ) -> anyhow::Result<RunRecord> {
        self.store = self.store.fenced(lease.fence());
        self.journal = Some(super::journal::Journal::new(
            &self.target,
            &self.run_id,
            self.store.clone(),
        ));
        let me = Arc::new(self);
        let work = async {
            heimdall_base::db::ensure_indexes(&me.target, &me.registry)
                .await
                .context("creating the target's indexes")?;
            let t0 = std::time::Instant::now();
            let (mut steps, mut checks, mut copied) =
                me.run_steps(&record.steps, stream.is_none()).await?;
            me.record_synced(&steps).await?;
            if let Some(stream) = stream {
                // Until stopped; then everything is verified against the source as it is.
                me.follow(stream, &mut steps).await?;
                // What was found whole before the copy may have changed since: read again.
                me.found_whole.lock().expect("found whole").clear();
                copied = std::time::Instant::now();
                for s in &steps {
                    for c in &s.collections {
                        checks.push(me.verify_collection(s.order, c).await?);
                    }
                }
                me.record_synced(&steps).await?;
            }
            me.store
                .set(
                    &me.run_id,
                    doc! {
                        "copyMs": copied.duration_since(t0).as_millis() as i64,
                        "verifyMs": copied.elapsed().as_millis() as i64,
                    },
                )
                .await?;
            anyhow::Ok(Verification::of(checks))
        };
        // A source that stops answering (paused, cut off) stops the run: the calls in flight
        // to it would wait for ever.
        let work = super::while_source_answers(&me.source.db, me.read_wait, work)
            .instrument(tracing::info_span!("clone_run", run = %me.run_id));
        let record = run_under_lease(&me.store, lease, &me.run_id, me.cancel.clone(), work).await?;
        me.sink
            .emit(&me.run_event(final_kind(&record), record.to_json()));
        Ok(record)
    }
}

/// One side of a collection summed by a verification: what tells whether the target
/// holds exactly the source's documents without looking each one up.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summed {
    /// Documents read.
    pub(crate) count: u64,
    /// Wrapping sum of their content hashes (references ignored, no `_id`): the report's
    /// digest, as the document-by-document check sums it.
    contents: u64,
    /// Wrapping sum of the same hashes with each `_id` mixed in: equal on both sides only
    /// if each document is under its own `_id` with its own content.
    pub(crate) identities: u64,
}

impl Summed {
    /// Reads the documents of `coll` that match `filter` once, raw, in the server's own
    /// order, `batch` a reply, calling `alive` after each reply's worth (a whole
    /// collection's read sends no progress event of its own); `ignore`: fields left out of
    /// the content hashes.
    pub(crate) async fn of(
        coll: Collection<RawDocumentBuf>,
        filter: Document,
        ignore: &[&str],
        (batch, alive): (usize, &(dyn Fn() + Sync)),
    ) -> anyhow::Result<Summed> {
        let batch = batch.max(1);
        let mut cursor = coll.find(filter).batch_size(batch as u32).await?;
        let mut out = Summed::default();
        while let Some(d) = cursor.try_next().await? {
            if out.count % batch as u64 == 0 {
                alive();
            }
            let h = raw_content_hash(&d, ignore)?;
            out.count += 1;
            out.contents = out.contents.wrapping_add(h);
            // A stored document always has an `_id`.
            let id = with_id_hash(h, &d)?.unwrap_or_default();
            out.identities = out.identities.wrapping_add(id);
        }
        Ok(out)
    }

    /// Whether both sides hold the same documents, each under its own `_id`.
    fn agrees(&self, other: &Summed) -> bool {
        self.count == other.count && self.identities == other.identities
    }

    /// The verification of a collection whose source (`self`) and `target` agree (see
    /// [`Self::agrees`]).
    fn whole_report(
        &self,
        target: &Summed,
        step: u16,
        name: &str,
        allowed: u64,
    ) -> CollectionVerification {
        VerifyTally {
            source: self.count,
            found: target.count,
            matching: target.count,
            source_digest: self.contents,
            target_digest: target.contents,
            ..VerifyTally::default()
        }
        .report(step, name, allowed)
    }
}

/// How many batches' inserts a first copy into an empty collection keeps in flight: with
/// one, the server idles between a collection's round trips. On a two-core server a plain
/// copy of 2.8M suggestion votes took 213 s one insert at a time, 157 s two at a time
/// (docs/benchmarks.md).
const INSERTS_AT_ONCE: usize = 2;

/// How many lookup queries [`find_each`] keeps in flight (existence checks, documents by
/// `_id`, raw or parsed).
const QUERIES_AT_ONCE: usize = 4;

/// How many values one `$in` carries. On secantusd-rs a long `$in` costs more than its
/// length (1,000 values: 50 ms; 8 × 128: 13 ms); on mongod short lists cost about the same.
pub(crate) const IN_CHUNK: usize = 128;

/// How [`fetch_by_ids`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The `_id`s are one stretch of the source read in `_id` order (successive calls never
    /// overlap): one index range read between the smallest and the largest, other
    /// documents in the range dropped. Falls back to `Points` for mixed `_id` types.
    Stretch,
    /// Scattered `_id`s: short `$in` lists.
    Points,
}

/// The documents of `coll` with one of `ids`, by `_id`: whole, or (without `full`)
/// `_id` and the unique key.
pub(crate) async fn fetch_by_ids(
    coll: &Collection<Document>,
    spec: &CollectionSpec,
    ids: &[Bson],
    full: bool,
    lookup: Lookup,
) -> anyhow::Result<HashMap<IdKey, Document>> {
    let projection = (!full).then(|| key_projection(spec));
    let wanted: HashSet<IdKey> = ids.iter().map(IdKey::of).collect();
    let mut out = HashMap::with_capacity(ids.len());
    let mut answers = find_each(coll, id_filters(ids, lookup), projection);
    while let Some(docs) = answers.try_next().await? {
        for d in docs {
            let id = IdKey::of_doc(&d);
            if wanted.contains(&id) {
                out.insert(id, d);
            }
        }
    }
    Ok(out)
}

/// The answers to `queries` (each whole, with `projection`), a few in flight at a time so
/// that their round trips overlap; in no particular order.
fn find_each<'a, T>(
    coll: &'a Collection<T>,
    queries: Vec<Document>,
    projection: Option<Document>,
) -> impl futures::Stream<Item = mongodb::error::Result<Vec<T>>> + Send + 'a
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin + 'a,
{
    futures::stream::iter(queries.into_iter().map(move |query| {
        let projection = projection.clone();
        async move {
            coll.find(query)
                .with_options(
                    mongodb::options::FindOptions::builder()
                        .projection(projection)
                        .build(),
                )
                .await?
                .try_collect::<Vec<T>>()
                .await
        }
    }))
    .buffer_unordered(QUERIES_AT_ONCE)
}

/// Which of `ids` `coll` holds, reading `_id`s only (raw, never parsed).
async fn fetch_raw_ids(
    coll: &Collection<RawDocumentBuf>,
    ids: &[Bson],
    lookup: Lookup,
) -> anyhow::Result<HashSet<IdKey>> {
    let wanted: HashSet<IdKey> = ids.iter().map(IdKey::of).collect();
    let mut out = HashSet::with_capacity(ids.len());
    let mut answers = find_each(coll, id_filters(ids, lookup), Some(doc! { "_id": 1 }));
    while let Some(docs) = answers.try_next().await? {
        for d in docs {
            if let Some(id) = raw_id(&d) {
                let k = IdKey::of_raw(id);
                if wanted.contains(&k) {
                    out.insert(k);
                }
            }
        }
    }
    Ok(out)
}

/// A document's `_id` and unique key fields: all an existence check needs.
pub(crate) fn identity(spec: &CollectionSpec, d: &Document) -> Document {
    let mut out = Document::new();
    for k in std::iter::once("_id").chain(spec.unique_key.iter().copied()) {
        if let Some(v) = d.get(k) {
            out.insert(k, v.clone());
        }
    }
    out
}

/// How many of `sorted` (`_id`s, copies included) `parents` does not hold, a run of
/// [`IN_CHUNK`] distinct ones at a time, a few runs in flight.
fn dangling_counts<'a>(
    parents: &'a Collection<RawDocumentBuf>,
    sorted: &'a [ObjectId],
) -> impl futures::Stream<Item = anyhow::Result<u64>> + Send + 'a {
    futures::stream::iter(
        distinct_runs(sorted, IN_CHUNK)
            .into_iter()
            .map(move |run| dangling_in(parents, run)),
    )
    .buffer_unordered(QUERIES_AT_ONCE)
}

/// How many of `run` (sorted `_id`s, copies included) `parents` does not hold, read in one
/// query of `_id`s only.
async fn dangling_in(
    parents: &Collection<RawDocumentBuf>,
    run: &[ObjectId],
) -> anyhow::Result<u64> {
    let mut wanted: Vec<Bson> = run.iter().map(|o| Bson::ObjectId(*o)).collect();
    wanted.dedup();
    let found = fetch_raw_ids(parents, &wanted, Lookup::Points).await?;
    Ok(run
        .iter()
        .filter(|o| !found.contains(&IdKey::Oid(o.bytes())))
        .count() as u64)
}

/// `sorted` cut into runs of at most `distinct` distinct values each (a value's copies all
/// in one run).
fn distinct_runs<T: PartialEq>(sorted: &[T], distinct: usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut seen) = (0, 0);
    for i in 0..sorted.len() {
        if i == 0 || sorted[i] != sorted[i - 1] {
            if seen == distinct {
                runs.push(&sorted[start..i]);
                (start, seen) = (i, 0);
            }
            seen += 1;
        }
    }
    if start < sorted.len() {
        runs.push(&sorted[start..]);
    }
    runs
}

/// The queries reading the documents with one of `ids`: one `_id` range for a stretch of
/// one type, else short `$in` lists.
fn id_filters(ids: &[Bson], lookup: Lookup) -> Vec<Document> {
    let range = if lookup == Lookup::Points {
        None
    } else if ids.iter().all(|b| matches!(b, Bson::ObjectId(_))) {
        let oids = ids.iter().filter_map(|b| b.as_object_id());
        oids.clone()
            .min()
            .zip(oids.max())
            .map(|(lo, hi)| (Bson::ObjectId(lo), Bson::ObjectId(hi)))
    } else if ids.iter().all(|b| matches!(b, Bson::String(_))) {
        let strs = ids.iter().filter_map(|b| b.as_str());
        strs.clone()
            .min()
            .zip(strs.max())
            .map(|(lo, hi)| (Bson::from(lo), Bson::from(hi)))
    } else {
        None
    };
    match range {
        Some((lo, hi)) => vec![doc! { "_id": { "$gte": lo, "$lte": hi } }],
        None => ids
            .chunks(IN_CHUNK)
            .map(|c| doc! { "_id": { "$in": c.to_vec() } })
            .collect(),
    }
}

/// [`fetch_by_ids`] for raw documents, whole.
pub(crate) async fn fetch_raw_by_ids(
    coll: &Collection<RawDocumentBuf>,
    ids: &[Bson],
    lookup: Lookup,
) -> anyhow::Result<HashMap<IdKey, RawDocumentBuf>> {
    let wanted: HashSet<IdKey> = ids.iter().map(IdKey::of).collect();
    let mut out = HashMap::with_capacity(ids.len());
    let mut answers = find_each(coll, id_filters(ids, lookup), None);
    while let Some(docs) = answers.try_next().await? {
        for d in docs {
            let Some(id) = raw_id(&d).map(IdKey::of_raw) else {
                continue;
            };
            if wanted.contains(&id) {
                out.insert(id, d);
            }
        }
    }
    Ok(out)
}

/// A raw document's `_id`.
fn raw_id(d: &RawDocument) -> Option<RawBsonRef<'_>> {
    d.get("_id").ok().flatten()
}

/// A raw document's `_id` as a [`Bson`] (`None` without one, or one that cannot be read).
fn raw_id_bson(d: &RawDocument) -> Option<Bson> {
    raw_id(d).and_then(|v| raw_to_bson(v).ok())
}

/// A raw value as a [`Bson`].
pub(crate) fn raw_to_bson(v: RawBsonRef<'_>) -> anyhow::Result<Bson> {
    Ok(crate::raw::value(v)?)
}

/// Whether two raw documents hold other values in `spec`'s reference fields (as they are:
/// a remapped reference differs too).
fn raw_refs_differ(spec: &CollectionSpec, a: &RawDocument, b: &RawDocument) -> bool {
    spec.references
        .iter()
        .any(|r| a.get(r.field).ok().flatten() != b.get(r.field).ok().flatten())
}

/// [`same_key`] for raw documents.
fn raw_same_key(spec: &CollectionSpec, a: &RawDocument, b: &RawDocument) -> bool {
    let int = |v: &RawBsonRef<'_>| match v {
        RawBsonRef::Int32(i) => Some(i64::from(*i)),
        RawBsonRef::Int64(i) => Some(*i),
        _ => None,
    };
    spec.unique_key.iter().all(
        |k| match (a.get(*k).ok().flatten(), b.get(*k).ok().flatten()) {
            (Some(x), Some(y)) => match (int(&x), int(&y)) {
                (Some(i), Some(j)) => i == j,
                _ => x == y,
            },
            (None, None) => true,
            (Some(RawBsonRef::Null), None) | (None, Some(RawBsonRef::Null)) => true,
            _ => false,
        },
    )
}

/// [`content_hash`] of a raw document, without parsing it: each field's name, type and
/// value (nested documents and arrays by their bytes).
pub fn raw_content_hash(doc: &RawDocument, ignore: &[&str]) -> anyhow::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for el in doc.iter() {
        let (k, v) = el?;
        if k == "_id" || ignore.contains(&k) {
            continue;
        }
        k.hash(&mut h);
        hash_raw_value(v, &mut h);
    }
    Ok(h.finish())
}

/// A raw document's [`raw_content_hash`] with its `_id` (type and value) mixed in: what
/// tells two documents apart by identity as well as content. `None` without an `_id`.
pub fn raw_identity_hash(doc: &RawDocument) -> anyhow::Result<Option<u64>> {
    with_id_hash(raw_content_hash(doc, &[])?, doc)
}

/// [`raw_identity_hash`] of `doc` from its `content` hash ([`raw_content_hash`] with
/// nothing ignored), for a caller that has it already.
pub fn with_id_hash(content: u64, doc: &RawDocument) -> anyhow::Result<Option<u64>> {
    let Some(id) = doc.get("_id")? else {
        return Ok(None);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(content);
    hash_raw_value(id, &mut h);
    Ok(Some(h.finish()))
}

/// Feeds one value's type and bytes to `h` (nested documents and arrays by their bytes).
fn hash_raw_value(v: RawBsonRef<'_>, h: &mut impl Hasher) {
    h.write_u8(v.element_type() as u8);
    match v {
        RawBsonRef::Double(f) => h.write_u64(f.to_bits()),
        RawBsonRef::String(s) | RawBsonRef::JavaScriptCode(s) | RawBsonRef::Symbol(s) => s.hash(h),
        RawBsonRef::Array(a) => h.write(a.as_bytes()),
        RawBsonRef::Document(d) => h.write(d.as_bytes()),
        RawBsonRef::Boolean(x) => h.write_u8(x as u8),
        RawBsonRef::Int32(i) => h.write_i32(i),
        RawBsonRef::Int64(i) => h.write_i64(i),
        RawBsonRef::DateTime(t) => h.write_i64(t.timestamp_millis()),
        RawBsonRef::ObjectId(o) => h.write(&o.bytes()),
        RawBsonRef::Binary(b) => {
            h.write_u8(u8::from(b.subtype));
            h.write(b.bytes);
        }
        RawBsonRef::Decimal128(d) => h.write(&d.bytes()),
        RawBsonRef::Timestamp(t) => {
            h.write_u32(t.time);
            h.write_u32(t.increment);
        }
        RawBsonRef::RegularExpression(r) => {
            r.pattern.hash(h);
            r.options.hash(h);
        }
        RawBsonRef::Null | RawBsonRef::Undefined | RawBsonRef::MaxKey | RawBsonRef::MinKey => {}
        other => format!("{other:?}").hash(h),
    }
}

/// `_id` and the unique key's fields.
pub(crate) fn key_projection(spec: &CollectionSpec) -> Document {
    let mut p = doc! { "_id": 1 };
    for k in &spec.unique_key {
        p.insert(*k, 1);
    }
    p
}

/// Queries for the target documents whose unique key equals one of `docs`' keys: the key's
/// leading fields by equality (one query per distinct combination) and its last field by
/// `$in`, at most [`IN_CHUNK`] values a query. Every form is an index point read; `$in` on
/// several fields at once, or one `$or` clause per document, made this server scan.
fn key_queries(spec: &CollectionSpec, docs: &[Document]) -> Vec<Document> {
    let Some((last, leading)) = spec.unique_key.split_last() else {
        return Vec::new();
    };
    let mut groups: Vec<(Document, Vec<Bson>, HashSet<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for d in docs {
        let mut prefix = Document::new();
        for k in leading {
            prefix.insert(*k, d.get(*k).cloned().unwrap_or(Bson::Null));
        }
        let name = prefix.to_string();
        let gi = *index.entry(name).or_insert_with(|| {
            groups.push((prefix, Vec::new(), HashSet::new()));
            groups.len() - 1
        });
        let v = d.get(*last).cloned().unwrap_or(Bson::Null);
        let g = &mut groups[gi];
        if g.2.insert(v.to_string()) {
            g.1.push(v);
        }
    }
    let mut out = Vec::new();
    for (prefix, values, _) in groups {
        for chunk in values.chunks(IN_CHUNK) {
            let mut q = prefix.clone();
            q.insert(*last, doc! { "$in": chunk.to_vec() });
            out.push(q);
        }
    }
    out
}

/// Which of `docs` already exist in `target`: by unique key, and by `_id`.
pub(crate) async fn existing_in(
    target: &Database,
    spec: &CollectionSpec,
    docs: &[Document],
    full: bool,
) -> anyhow::Result<Existing> {
    let coll = target.collection::<Document>(spec.name);
    // With `full`, whole documents come back (the copy verifies skipped ones on the spot).
    let projection = (!full).then(|| key_projection(spec));
    // Each document with its key, built once.
    let mut found: Vec<(String, Document)> = Vec::new();
    let mut unmatched: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
    if !spec.unique_key.is_empty() {
        let keys: Vec<String> = docs.iter().map(|d| key_of(spec, d)).collect();
        let wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let mut answers = find_each(&coll, key_queries(spec, docs), projection.clone());
        while let Some(docs) = answers.try_next().await? {
            found.extend(docs.into_iter().filter_map(|d| {
                let key = key_of(spec, &d);
                wanted.contains(key.as_str()).then_some((key, d))
            }));
        }
        // Only documents whose key is not in the target can collide by `_id` alone.
        let matched: HashSet<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        unmatched = docs
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !matched.contains(k.as_str()))
            .filter_map(|(d, _)| d.get("_id").cloned())
            .collect();
    }
    if !unmatched.is_empty() {
        found.extend(
            fetch_by_ids(&coll, spec, &unmatched, full, Lookup::Points)
                .await?
                .into_values()
                .map(|d| (key_of(spec, &d), d)),
        );
    }
    let mut out = Existing::default();
    out.by_id.reserve(found.len());
    out.by_key.reserve(found.len());
    if full {
        out.docs.reserve(found.len());
    }
    for (key, f) in found {
        let id = f.get("_id").cloned().unwrap_or(Bson::Null);
        out.by_id.insert(IdKey::of(&id));
        if spec.unique_key.is_empty() || !out.by_key.contains_key(&key) {
            if full {
                out.by_key.insert(key.clone(), id);
                out.docs.insert(key, f);
            } else {
                out.by_key.insert(key, id);
            }
        }
    }
    Ok(out)
}

/// What the target holds of `docs` as a verification needs it: per key (see [`key_of`]),
/// the target document's `_id` and [`raw_content_hash`]. Read raw: only the `_id` and the
/// unique key's fields of each answer are parsed. Documents are found by their unique key,
/// or by `_id` in a collection without one.
pub(crate) async fn existing_hashes(
    target: &Database,
    spec: &CollectionSpec,
    docs: &[Document],
) -> anyhow::Result<HashMap<String, (Bson, u64)>> {
    let coll = target.collection::<RawDocumentBuf>(spec.name);
    let queries = if spec.unique_key.is_empty() {
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        id_filters(&ids, Lookup::Points)
    } else {
        key_queries(spec, docs)
    };
    let wanted: HashSet<String> = docs.iter().map(|d| key_of(spec, d)).collect();
    let mut out = HashMap::with_capacity(docs.len());
    let mut answers = find_each(&coll, queries, None);
    while let Some(found) = answers.try_next().await? {
        for raw in found {
            let mut keyed = Document::new();
            for k in std::iter::once("_id").chain(spec.unique_key.iter().copied()) {
                if let Some(v) = raw.get(k)? {
                    keyed.insert(k, raw_to_bson(v)?);
                }
            }
            let key = key_of(spec, &keyed);
            if wanted.contains(&key) && !out.contains_key(&key) {
                let id = keyed.remove("_id").unwrap_or(Bson::Null);
                out.insert(key, (id, raw_content_hash(&raw, &[])?));
            }
        }
    }
    Ok(out)
}

/// A hash of a document's content without `_id` and the given fields: every field's name,
/// type and value in order, walked in place (no copy of the document).
pub fn content_hash(doc: &Document, ignore: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in doc {
        if k == "_id" || ignore.contains(&k.as_str()) {
            continue;
        }
        k.hash(&mut h);
        hash_bson(v, &mut h);
    }
    h.finish()
}

fn hash_bson(b: &Bson, h: &mut impl Hasher) {
    h.write_u8(b.element_type() as u8);
    match b {
        Bson::Double(f) => h.write_u64(f.to_bits()),
        Bson::String(s) | Bson::JavaScriptCode(s) | Bson::Symbol(s) => s.hash(h),
        Bson::Array(a) => {
            h.write_usize(a.len());
            for v in a {
                hash_bson(v, h);
            }
        }
        Bson::Document(d) => {
            h.write_usize(d.len());
            for (k, v) in d {
                k.hash(h);
                hash_bson(v, h);
            }
        }
        Bson::Boolean(x) => h.write_u8(*x as u8),
        Bson::Int32(i) => h.write_i32(*i),
        Bson::Int64(i) => h.write_i64(*i),
        Bson::DateTime(t) => h.write_i64(t.timestamp_millis()),
        Bson::ObjectId(o) => h.write(&o.bytes()),
        Bson::Binary(bin) => {
            h.write_u8(u8::from(bin.subtype));
            bin.bytes.hash(h);
        }
        Bson::Decimal128(d) => h.write(&d.bytes()),
        Bson::Timestamp(t) => {
            h.write_u32(t.time);
            h.write_u32(t.increment);
        }
        Bson::RegularExpression(r) => {
            r.pattern.hash(h);
            r.options.hash(h);
        }
        Bson::Null | Bson::Undefined | Bson::MaxKey | Bson::MinKey => {}
        other => format!("{other:?}").hash(h),
    }
}

/// A document's `_id` as a hashable key (ObjectIds without text formatting).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum IdKey {
    /// An ObjectId's bytes.
    Oid([u8; 12]),
    /// Any other `_id`, as extended JSON text.
    Other(String),
}

impl IdKey {
    /// The key of an `_id` value.
    pub fn of(b: &Bson) -> Self {
        match b {
            Bson::ObjectId(o) => IdKey::Oid(o.bytes()),
            other => IdKey::Other(other.to_string()),
        }
    }

    /// The key of a raw `_id` value.
    pub fn of_raw(v: RawBsonRef<'_>) -> Self {
        match v {
            RawBsonRef::ObjectId(o) => IdKey::Oid(o.bytes()),
            other => IdKey::Other(
                Bson::try_from(other.to_raw_bson())
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    /// The key of a document's `_id` (a document without one gets the key of `null`).
    pub fn of_doc(d: &Document) -> Self {
        d.get("_id")
            .map(Self::of)
            .unwrap_or(IdKey::Other("null".into()))
    }
}

/// Target documents found for a batch.
#[derive(Debug, Default)]
pub(crate) struct Existing {
    /// Key → target `_id`.
    pub by_key: HashMap<String, Bson>,
    /// Target `_id`s (as text).
    pub by_id: HashSet<IdKey>,
    /// Key → the whole target document (when asked for).
    pub docs: HashMap<String, Document>,
}

/// Whether two documents have the same unique key (as [`key_of`] compares them, without
/// building the text).
fn same_key(spec: &CollectionSpec, a: &Document, b: &Document) -> bool {
    spec.unique_key
        .iter()
        .all(|k| match (a.get(*k), b.get(*k)) {
            (Some(x), Some(y)) => match (
                x.as_i64().or(x.as_i32().map(i64::from)),
                y.as_i64().or(y.as_i32().map(i64::from)),
            ) {
                (Some(i), Some(j)) => i == j,
                _ => x == y,
            },
            (None, None) => true,
            (x, y) => x.cloned().unwrap_or(Bson::Null) == y.cloned().unwrap_or(Bson::Null),
        })
}

/// The identity of a document: its unique key's values, or its `_id`.
pub(crate) fn key_of(spec: &CollectionSpec, d: &Document) -> String {
    let mut s = String::new();
    if spec.unique_key.is_empty() {
        if let Some(b) = d.get("_id") {
            push_value(&mut s, b);
        }
        return s;
    }
    for k in &spec.unique_key {
        match d.get(*k) {
            Some(Bson::Int32(i)) => push_fmt(&mut s, i),
            Some(Bson::Int64(i)) => push_fmt(&mut s, i),
            Some(b) => push_value(&mut s, b),
            None => s.push_str("null"),
        }
        s.push('\u{1f}');
    }
    s
}

/// Appends `b` as its `Display` text, without the formatting machinery for the values
/// keys are made of (a key is built for every document a run looks up or verifies).
fn push_value(s: &mut String, b: &Bson) {
    match b {
        Bson::String(v) => {
            s.reserve(v.len() + 2);
            s.push('"');
            s.push_str(v);
            s.push('"');
        }
        Bson::ObjectId(o) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            s.reserve(36);
            s.push_str("ObjectId(\"");
            for byte in o.bytes() {
                s.push(HEX[(byte >> 4) as usize] as char);
                s.push(HEX[(byte & 15) as usize] as char);
            }
            s.push_str("\")");
        }
        other => push_fmt(s, other),
    }
}

fn push_fmt(s: &mut String, v: &impl std::fmt::Display) {
    use std::fmt::Write;
    let _ = write!(s, "{v}");
}

/// Checks the fields the copy relies on; the reason says what is wrong.
fn check_raw(spec: &CollectionSpec, d: &RawDocument) -> Result<(), String> {
    let get = |k: &str| {
        d.get(k)
            .map_err(|e| format!("the document cannot be read at `{k}`: {e}"))
    };
    if get("_id")?.is_none() {
        return Err("the document has no _id".into());
    }
    for k in &spec.unique_key {
        match get(k)? {
            None | Some(RawBsonRef::Null) => return Err(format!("missing unique key field `{k}`")),
            Some(RawBsonRef::String("")) => return Err(format!("empty unique key field `{k}`")),
            _ => {}
        }
    }
    if let GuildScope::Field { field, nullable } = spec.scope {
        match get(field)? {
            Some(RawBsonRef::String(_)) => {}
            None | Some(RawBsonRef::Null) if nullable => {}
            None | Some(RawBsonRef::Null) => return Err(format!("missing `{field}`")),
            Some(other) => {
                return Err(format!(
                    "`{field}` is {:?}, expected a string (a Discord id)",
                    other.element_type()
                ))
            }
        }
    }
    for r in &spec.references {
        match get(r.field)? {
            Some(RawBsonRef::ObjectId(_)) => {}
            None | Some(RawBsonRef::Null) if r.optional => {}
            None | Some(RawBsonRef::Null) => {
                return Err(format!(
                    "missing reference `{}` to {}",
                    r.field, r.collection
                ))
            }
            Some(other) => {
                return Err(format!(
                    "reference `{}` is {:?}, expected an ObjectId of {}",
                    r.field,
                    other.element_type(),
                    r.collection
                ))
            }
        }
    }
    Ok(())
}

/// `d` parsed, with each of `fields` set to an ObjectId (a reference rewritten; each
/// field keeps its place).
fn rewritten(d: &RawDocument, fields: &[(&str, ObjectId)]) -> anyhow::Result<Document> {
    let mut doc = Document::try_from(d)?;
    for (field, id) in fields {
        doc.insert(*field, *id);
    }
    Ok(doc)
}

/// A BSON type's name, e.g. `Int64`.
pub fn type_name(b: &Bson) -> String {
    format!("{:?}", b.element_type())
}

pub(crate) fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.chars().take(300).collect()
}

/// A document an unordered insert refused.
#[derive(Debug)]
pub(crate) struct InsertFailure {
    /// Its index in the inserted slice.
    pub index: usize,
    /// The server's error code (11000: a duplicate key).
    pub code: i32,
    /// What to record.
    pub reason: String,
}

/// Inserts unordered. `Err(Ok(failures))`: some documents failed.
pub(crate) async fn insert_unordered<T: Serialize + Send + Sync>(
    target: &Collection<T>,
    docs: &[T],
) -> Result<(), anyhow::Result<Vec<InsertFailure>>> {
    // Nothing left to insert (the journal refused every entry): the driver would refuse
    // an empty list, failing the run.
    if docs.is_empty() {
        return Ok(());
    }
    match target
        .insert_many(docs)
        .with_options(InsertManyOptions::builder().ordered(false).build())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match e.kind.as_ref() {
            mongodb::error::ErrorKind::InsertMany(im)
                if im.write_errors.is_some() && im.write_concern_error.is_none() =>
            {
                let failures = im
                    .write_errors
                    .as_ref()
                    .expect("checked")
                    .iter()
                    .map(|w| InsertFailure {
                        index: w.index,
                        code: w.code,
                        reason: if w.code == 11000 {
                            format!("duplicate key in the target: {}", short(&w.message))
                        } else {
                            format!("the target refused the document: {}", short(&w.message))
                        },
                    })
                    .collect();
                Err(Ok(failures))
            }
            _ => Err(Err(anyhow::Error::from(e).context("writing to the target"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_tells_values_apart_by_type_and_numbers_by_value() {
        let by_id = CollectionSpec::new("things", "test");
        let by_name = CollectionSpec::new("things", "test").unique(&["guildId", "n"]);
        let oid = ObjectId::new();
        // `_id`s: the text the documents' values display as, one per type.
        for v in [
            Bson::String("1".into()),
            Bson::ObjectId(oid),
            Bson::Int32(1),
            Bson::Int64(1),
            Bson::Double(1.5),
            Bson::Null,
        ] {
            assert_eq!(key_of(&by_id, &doc! { "_id": v.clone() }), v.to_string());
        }
        assert_ne!(
            key_of(&by_id, &doc! { "_id": "1" }),
            key_of(&by_id, &doc! { "_id": 1 })
        );
        // Unique keys: a number is the same whatever its width, a string is not a number.
        let k = |g: Bson, n: Bson| key_of(&by_name, &doc! { "guildId": g, "n": n });
        assert_eq!(k("g".into(), Bson::Int32(7)), k("g".into(), Bson::Int64(7)));
        assert_ne!(k("g".into(), Bson::Int32(7)), k("g".into(), "7".into()));
        assert_ne!(k("g".into(), "7".into()), k("h".into(), "7".into()));
        assert_eq!(k(oid.into(), "7".into()), k(oid.into(), "7".into()));
        assert_ne!(
            k(oid.into(), "7".into()),
            k(oid.to_hex().into(), "7".into())
        );
    }

    #[test]
    fn runs_of_distinct_values_keep_each_values_copies_together() {
        let sorted = [1, 1, 2, 3, 3, 3, 4, 5, 5];
        let runs = distinct_runs(&sorted, 2);
        assert_eq!(runs, vec![&[1, 1, 2][..], &[3, 3, 3, 4], &[5, 5]]);
        assert_eq!(distinct_runs(&sorted, 9), vec![&sorted[..]]);
        assert!(distinct_runs::<u8>(&[], 3).is_empty());
    }

    #[test]
    fn a_collection_no_step_still_needs_keeps_only_its_remaps() {
        let mut state = RefState::default();
        let (same, moved, there) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
        state.saw(same);
        state.saw(moved);
        state.remapped(moved, there);
        assert_eq!(state.target_of(&same), RefTarget::Same);
        let slim = state.slimmed();
        assert_eq!(slim.known.len(), 0);
        // A change followed later still finds the remap; the rest is asked for.
        assert_eq!(slim.target_of(&moved), RefTarget::Remapped(there));
        assert_eq!(slim.target_of(&same), RefTarget::Ask);
    }

    #[test]
    fn what_a_run_remembers_of_a_referenced_collection_is_bounded() {
        let mut state = RefState::default();
        let ids: Vec<ObjectId> = (0..3 * KNOWN_CAP).map(|_| ObjectId::new()).collect();
        for id in &ids {
            state.saw(*id);
        }
        assert!(state.known.len() <= KNOWN_CAP, "{}", state.known.len());
        // The latest are known; the earliest, like one never read, are asked for.
        assert_eq!(state.target_of(ids.last().unwrap()), RefTarget::Same);
        assert_eq!(state.target_of(&ids[0]), RefTarget::Ask);
        assert_eq!(state.target_of(&ObjectId::new()), RefTarget::Ask);

        // Remapped `_id`s beyond the map's bound are forgotten, never taken as the same.
        // Ten never seen first, then every known one: the last ten known ones overflow.
        let fresh: Vec<ObjectId> = (0..10).map(|_| ObjectId::new()).collect();
        let remaps: Vec<(ObjectId, ObjectId)> = fresh
            .iter()
            .chain(&ids[ids.len() - MAP_CAP..])
            .map(|s| (*s, ObjectId::new()))
            .collect();
        assert_eq!(state.target_of(&remaps.last().unwrap().0), RefTarget::Same);
        for (s, t) in &remaps {
            state.remapped(*s, *t);
        }
        assert!(state.spilled);
        assert_eq!(state.map.len(), MAP_CAP);
        assert_eq!(
            state.target_of(&remaps[0].0),
            RefTarget::Remapped(remaps[0].1)
        );
        for (s, _) in &remaps[MAP_CAP..] {
            assert_eq!(state.target_of(s), RefTarget::Ask);
        }
    }
}
