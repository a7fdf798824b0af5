//! The Legacy Import engine: pre-flight, steps, checkpoints, verification.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use mongodb::bson::{self, doc, Bson, DateTime, Document, RawDocumentBuf};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::map_thread::{MapThread, Mapping};
use super::{coerce, LegacySource, LegacyStepSpec, MapContext, Mapped, Prepared};
use crate::clone::{
    existing_in, identity, insert_unordered, key_of, new_run_id, IdKey, MigrationEnv,
};
use crate::clone::{raw_content_hash, raw_to_bson, with_id_hash, Summed};
use crate::runs::{
    CollectionResult, CollectionVerification, FailureKind, Lease, RunOptions, RunRecord, RunStore,
    StepResult, StepStatus, Verification, VerifyTally,
};
use crate::source::{self, Source};
use crate::{
    final_kind, run_under_lease, Begun, Cancelled, EventKind, MigrationMode, PendingRun,
    ProgressEvent, ProgressSink, RecordError, Throttle,
};
use heimdall_base::catalog::{Catalog as Registry, CollectionSpec, GuildScope};
use heimdall_base::error::UserError;
use heimdall_base::secret::redact_uri;

/// Raw bytes of legacy records per batch: an old record becomes many documents (a modmail
/// thread one per message, each parsed, mapped, looked up and serialized again), so its
/// batches are an eighth of the clone's.
const LEGACY_BATCH_BYTES: usize = crate::MAX_BATCH_BYTES / 8;

/// Legacy records per reply of the server: a reply is held whole until its last record is
/// taken, and a modmail thread carries all its messages (about a megabyte per 100 threads
/// of the usual size).
const LEGACY_PER_REPLY: usize = 100;

/// Produced documents a verification looks up in the target at once.
const VERIFY_SLICE: usize = 2000;

/// Batches of one step verified at once: one's mapping (CPU) overlaps another's reads.
const VERIFY_BATCHES_AT_ONCE: usize = 3;

/// Steps imported at once. Their legacy collections and what they become are apart, and
/// one step (modmail) is most of a run: the others go beside it, and the database has
/// more than one stream of writes to answer (the clone writes several collections at
/// once too).
const STEPS_AT_ONCE: usize = 2;

/// Raw bytes of legacy records a step's import maps at once: the batch being written and
/// the next one, mapped aside meanwhile. What they map to is held serialized (see [`Out`]),
/// about as big as the records; held as parsed documents it was several times more (at a
/// million records, 178 MB peak RSS with this room against 130 MB without it; held
/// serialized, 118.5 MB against 137.9 on another machine; docs/benchmarks.md). A batch
/// is closed by the record that takes it past [`LEGACY_BATCH_BYTES`], whole (at most
/// [`PART_BYTES`]) or big, so it is up to that much over: with room for two bare batches
/// only, every modmail batch (a hundred threads of 10 KB, a little over a megabyte) was
/// found with no room, mapped on the run's task and not aside, and held the writes up
/// (24 of the modmail step's 100 s at 500k records).
const IMPORT_MAPPING_BYTES: usize = 2 * (LEGACY_BATCH_BYTES + PART_BYTES);

/// Raw bytes of legacy records the verification maps at once. Apart from the import's
/// room: the verification's first pass runs ahead of the import (it reads no target), and
/// sharing one room it took it all and kept the import waiting (17 of the modmail step's
/// 120 s at 500k records).
const VERIFY_MAPPING_BYTES: usize = LEGACY_BATCH_BYTES;

/// The options of a legacy import.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyOptions {
    /// Source connection string.
    #[serde(skip)]
    pub source_uri: String,
    /// The old bot's database (default: the one in the URI).
    pub source_db: Option<String>,
    /// Import only this guild.
    pub guild: Option<String>,
    /// The name of the old bot's modmail collection (empty: the name its step declares).
    pub modmail_collection: String,
    /// Stop after the plan.
    pub dry_run: bool,
    /// Who starts it.
    pub started_by: String,
    /// Legacy records per batch.
    pub batch_size: usize,
}

impl LegacyOptions {
    /// Defaults: everything, the modmail collection the catalog names, batches of 500 records.
    pub fn new(source_uri: impl Into<String>, started_by: impl Into<String>) -> Self {
        Self {
            source_uri: source_uri.into(),
            source_db: None,
            guild: None,
            modmail_collection: String::new(),
            dry_run: false,
            started_by: started_by.into(),
            batch_size: 500,
        }
    }
}

/// The plan of one legacy step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyStepPlan {
    /// Step number.
    pub order: u16,
    /// Label.
    pub label: String,
    /// Legacy collection read.
    pub collection: String,
    /// Legacy records found.
    pub found: u64,
    /// Would be imported.
    pub to_import: u64,
    /// Would be skipped.
    pub to_skip: u64,
    /// Would fail.
    pub errors: u64,
}

/// A dry run's result: nothing was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyPlan {
    /// `legacy`.
    pub mode: MigrationMode,
    /// Always true.
    pub dry_run: bool,
    /// The source, redacted.
    pub source: String,
    /// Per step.
    pub steps: Vec<LegacyStepPlan>,
    /// The records that would fail, with reasons (capped).
    pub errors: Vec<RecordError>,
}

/// What `start` returns.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `--dry-run`.
    Plan(LegacyPlan),
    /// The finished run.
    Run(Box<RunRecord>),
}

/// A legacy step: its number, label, source and every plugin's mapper.
#[derive(Clone)]
struct Step {
    order: u16,
    label: &'static str,
    source: LegacySource,
    record_progress: bool,
    parts: Vec<(&'static str, LegacyStepSpec)>,
}

fn steps(registry: &Registry) -> Vec<Step> {
    let mut by_order: BTreeMap<u16, Step> = BTreeMap::new();
    for (plugin, spec) in registry.legacy_steps() {
        let s = by_order.entry(spec.order).or_insert_with(|| Step {
            order: spec.order,
            label: spec.label,
            source: spec.source,
            record_progress: false,
            parts: Vec::new(),
        });
        s.record_progress |= spec.record_progress;
        s.parts.push((plugin, spec.clone()));
    }
    by_order.into_values().collect()
}

fn source_name(source: LegacySource, modmail: &str) -> String {
    match source {
        LegacySource::Collection(c) => c.to_string(),
        LegacySource::Modmail { default } if modmail.is_empty() => default.to_string(),
        LegacySource::Modmail { .. } => modmail.to_string(),
    }
}

/// Puts the name the catalog declares for the owner-named collection into `opts` when the
/// owner named none.
fn resolve_named(catalog: &Registry, opts: &mut LegacyOptions) {
    if opts.modmail_collection.is_empty() {
        if let Some(default) = catalog.legacy_steps().find_map(|(_, s)| match s.source {
            LegacySource::Modmail { default } => Some(default),
            _ => None,
        }) {
            opts.modmail_collection = default.to_string();
        }
    }
}

async fn preflight(env: &MigrationEnv, opts: &LegacyOptions) -> anyhow::Result<Source> {
    if let Some(g) = &opts.guild {
        source::parse_guild(g)?;
    }
    if !opts.modmail_collection.is_empty() && opts.modmail_collection.trim().is_empty() {
        return Err(UserError::bad_request(
            "invalid_modmail_collection",
            "--modmail-collection must name a collection",
        )
        .into());
    }
    let src = source::connect(
        &opts.source_uri,
        opts.source_db.as_deref(),
        None,
        &env.target_uri,
        &env.target,
    )
    .await?;
    let mut names: Vec<String> = src.db.list_collection_names().await?;
    names.sort();
    let wanted: Vec<String> = steps(&env.registry)
        .iter()
        .map(|s| source_name(s.source, &opts.modmail_collection))
        .collect();
    // Of the old bot's collections present, a sampled record must look like the old bot's
    // (its `guildID`/`userID` fields), not like Heimdall's (`guildId`).
    let mut legacy_shaped = 0;
    let mut heimdall_shaped = 0;
    for w in wanted.iter().filter(|w| names.contains(w)) {
        if let Some(d) = src.db.collection::<Document>(w).find_one(doc! {}).await? {
            if d.contains_key("guildID") || d.contains_key("userID") {
                legacy_shaped += 1;
            } else if d.contains_key("guildId") {
                heimdall_shaped += 1;
            }
        }
    }
    if legacy_shaped == 0 && (heimdall_shaped > 0 || !wanted.iter().any(|w| names.contains(w))) {
        let heimdall = heimdall_shaped > 0
            || names.iter().any(|n| {
                // A collection only Heimdall has (not also a name of the old bot's).
                !wanted.contains(n)
                    && env
                        .registry
                        .collection(n)
                        .is_some_and(|c| c.lifetime == heimdall_base::catalog::Lifetime::Durable)
            });
        return Err(UserError::bad_request(
            "not_a_legacy_database",
            format!(
                "database {} on {} does not look like the old bot's database (expected {}); it has: {}.{}",
                src.db.name(),
                src.display,
                wanted.join(", "),
                if names.is_empty() { "nothing".into() } else { names.join(", ") },
                if heimdall { " It looks like a Heimdall database: use `heimdall migrate clone` for that." } else { "" }
            ),
        )
        .into());
    }
    if !names.contains(&opts.modmail_collection) {
        return Err(UserError::bad_request(
            "modmail_collection_not_found",
            format!(
                "the modmail collection {:?} does not exist in {}; its collections are: {}. Name the right one with --modmail-collection.",
                opts.modmail_collection,
                src.db.name(),
                names.join(", ")
            ),
        )
        .into());
    }
    Ok(src)
}

/// Runs a legacy import (or its dry run).
pub async fn start(
    env: &MigrationEnv,
    opts: LegacyOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Outcome> {
    Ok(match begin(env, opts, sink, cancel).await? {
        Begun::Plan(p) => Outcome::Plan(p),
        Begun::Run(r) => Outcome::Run(Box::new(r.run().await?)),
    })
}

/// Pre-flight, then the plan (dry run) or a run ready to execute.
pub async fn begin(
    env: &MigrationEnv,
    opts: LegacyOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Begun<LegacyPlan>> {
    let mut opts = opts;
    resolve_named(&env.registry, &mut opts);
    let src = preflight(env, &opts).await?;
    let run_id = new_run_id();
    let watch = crate::StallWatch::new(sink, env.stall_after);
    let engine = Engine::new(env, &opts, src, watch.clone(), cancel, run_id.clone())?;
    if opts.dry_run {
        return Ok(Begun::Plan(engine.plan().await?));
    }
    let store = RunStore::new(&env.target);
    let lease = store.acquire(&run_id, env.lease_ttl).await?;
    let options = RunOptions {
        source: redact_uri(&opts.source_uri),
        source_db: opts.source_db.clone(),
        guild: opts.guild.clone(),
        dry_run: opts.dry_run,
        modmail_collection: Some(opts.modmail_collection.clone()),
        started_by: opts.started_by.clone(),
        batch_size: opts.batch_size as u32,
        ..RunOptions::default()
    };
    let mut record = RunRecord::started(
        &run_id,
        MigrationMode::Legacy,
        options,
        engine.initial_steps(),
        lease.fence().token(),
    );
    record.encrypted_source = env.crypto.as_ref().map(|c| c.encrypt(&opts.source_uri));
    record.source_identity = bson::to_document(&engine.source.identity).ok();
    if let Err(e) = store.create(&record).await {
        let _ = lease.release().await;
        return Err(e);
    }
    let id = record.id.clone();
    let source = engine.source.client.clone();
    Ok(Begun::Run(
        PendingRun::new(id, Box::pin(engine.execute(record, lease)))
            .closing(source)
            .watched(watch),
    ))
}

/// Checks a legacy run can continue and takes its lease; the returned run continues it.
pub async fn begin_resume(
    env: &MigrationEnv,
    mut record: RunRecord,
    source_uri: String,
    force_source: bool,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<PendingRun> {
    let mut opts = LegacyOptions::new(source_uri, record.started_by.clone());
    let stored = &record.options;
    opts.source_db = stored.source_db.clone();
    opts.guild = stored.guild.clone();
    if let Some(m) = &stored.modmail_collection {
        opts.modmail_collection = m.clone();
    }
    opts.batch_size = (stored.batch_size as usize).max(1);
    resolve_named(&env.registry, &mut opts);
    let src = preflight(env, &opts).await?;
    let lease = crate::take_over(env, &mut record, &src, &opts.source_uri, force_source).await?;
    let watch = crate::StallWatch::new(sink, env.stall_after);
    let engine = Engine::new(env, &opts, src, watch.clone(), cancel, record.id.clone())?;
    let source = engine.source.client.clone();
    Ok(
        PendingRun::new(record.id.clone(), Box::pin(engine.execute(record, lease)))
            .closing(source)
            .watched(watch),
    )
}

struct Engine {
    target: mongodb::Database,
    registry: Arc<Registry>,
    source: Source,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
    /// Stops every step at its next batch: the run was cancelled, or a step failed or
    /// stopped (a child of `cancel`).
    halt: CancellationToken,
    /// Steps completed (in this attempt or an earlier one), for the events.
    completed: std::sync::atomic::AtomicU16,
    run_id: String,
    guild: Option<String>,
    modmail: String,
    batch_size: usize,
    /// How long the source may take to answer a read.
    read_wait: std::time::Duration,
    steps: Vec<Step>,
    store: RunStore,
    write: bool,
    /// "Now" for the mappers (defaults, expiry): the run's start, the same on every batch
    /// and every attempt, so a resume maps a record exactly as the first attempt would.
    now: DateTime,
    fail_point: Option<crate::FailPoint>,
    /// What the run writes, recorded before each write (runs that write only).
    journal: Option<crate::journal::Journal>,
    /// The whole run's pace.
    clock: crate::RunClock,
    /// Legacy records the verification maps now (see [`VERIFY_MAPPING_BYTES`]).
    verify_room: Room,
    /// Maps aside the batch after the one being written and a long thread's next part
    /// (see [`MapThread`]); ends with the run.
    mapper: MapThread,
}

/// A legacy record run through every mapper of its step.
#[derive(Default)]
struct MappedRecord {
    /// One group of produced documents per mapper that produced some; a group's first is its
    /// primary document.
    groups: Vec<Vec<Out>>,
    /// The first reason a mapper gave for skipping it.
    skip: Option<String>,
    /// Why a mapper could not map it (then it is not imported).
    failed: Option<String>,
}

/// What happened to one record.
enum RecordOutcome {
    Imported,
    Skipped,
    Failed(String),
}

impl Engine {
    fn new(
        env: &MigrationEnv,
        opts: &LegacyOptions,
        source: Source,
        sink: Arc<dyn ProgressSink>,
        cancel: CancellationToken,
        run_id: String,
    ) -> anyhow::Result<Self> {
        let mapper = MapThread::start("heimdall-map").context("starting the mapping thread")?;
        Ok(Self {
            target: env.target.clone(),
            registry: env.registry.clone(),
            source,
            sink,
            halt: cancel.child_token(),
            cancel,
            completed: 0.into(),
            run_id,
            guild: opts.guild.clone(),
            modmail: opts.modmail_collection.clone(),
            batch_size: opts.batch_size.max(1),
            read_wait: env.read_wait,
            steps: steps(&env.registry),
            store: RunStore::new(&env.target),
            write: !opts.dry_run,
            now: DateTime::now(),
            fail_point: env.fail_point.clone(),
            journal: None,
            clock: crate::RunClock::new(steps(&env.registry).len()),
            verify_room: Room::new(VERIFY_MAPPING_BYTES),
            mapper,
        })
    }

    fn initial_steps(&self) -> Vec<StepResult> {
        self.steps
            .iter()
            .map(|s| StepResult {
                order: s.order,
                label: s.label.to_string(),
                plugin: s
                    .parts
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", "),
                status: StepStatus::Pending,
                collections: vec![CollectionResult {
                    name: source_name(s.source, &self.modmail),
                    ..Default::default()
                }],
                skipped_collections: Vec::new(),
            })
            .collect()
    }

    fn filter(&self) -> Document {
        match &self.guild {
            Some(g) => doc! { "guildID": { "$in": coerce::guild_filter_values(g) } },
            None => doc! {},
        }
    }

    fn event(&self, kind: EventKind, step: &Step) -> ProgressEvent {
        let completed = self.completed.load(std::sync::atomic::Ordering::SeqCst);
        ProgressEvent {
            kind: Some(kind),
            run_id: self.run_id.clone(),
            mode: MigrationMode::Legacy,
            step: step.order,
            label: step.label.to_string(),
            plugin: step
                .parts
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(", "),
            completed,
            total: self.steps.len() as u16,
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

    /// Imports step `i` into `result`, told to the verification by `started` as it starts;
    /// not when the run is halting. A step that fails or stops halts the others.
    async fn import_step(
        &self,
        i: usize,
        step: &Step,
        result: &mut StepResult,
        started: &futures::channel::mpsc::UnboundedSender<Started>,
    ) -> anyhow::Result<()> {
        if self.halt.is_cancelled() {
            return Err(Cancelled.into());
        }
        let (tx, rx) = watch::channel(Imported::default());
        let queue = Arc::new(MappedQueue::default());
        // Closed when the import ends, however it ends.
        let checks_tx = QueueCloser(queue.clone());
        // The receiving end only goes away with the run.
        let _ = started.unbounded_send((i, rx, queue));
        let res = &mut result.collections[0];
        let ran = self
            .run_step(i, step, res, &mut Vec::new(), Some((&tx, &checks_tx.0)))
            .await;
        drop(checks_tx);
        if ran.is_err() {
            self.halt.cancel();
        }
        ran?;
        tx.send_modify(|i| {
            i.started = true;
            i.up_to = res.last_id.clone();
            i.done = true;
            i.skipped = res.skipped;
        });
        result.status = StepStatus::Completed;
        Ok(())
    }

    /// The event of `step` completed, counted.
    fn step_completed(&self, step: &Step) -> ProgressEvent {
        self.completed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.event(EventKind::StepComplete, step)
    }

    async fn plan(self) -> anyhow::Result<LegacyPlan> {
        let mut results = self.initial_steps();
        let mut errors = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let res = &mut results[i].collections[0];
            self.run_step(i, step, res, &mut errors, None).await?;
        }
        Ok(LegacyPlan {
            mode: MigrationMode::Legacy,
            dry_run: true,
            source: self.source.display.clone(),
            steps: results
                .into_iter()
                .map(|s| {
                    let c = &s.collections[0];
                    LegacyStepPlan {
                        order: s.order,
                        label: s.label.clone(),
                        collection: c.name.clone(),
                        found: c.total,
                        to_import: c.inserted,
                        to_skip: c.skipped,
                        errors: c.failed,
                    }
                })
                .collect(),
            errors,
        })
    }

    async fn execute(mut self, record: RunRecord, lease: Lease) -> anyhow::Result<RunRecord> {
        self.now = record.started_at;
        self.store = self.store.fenced(lease.fence());
        self.journal = Some(crate::journal::Journal::new(
            &self.target,
            &self.run_id,
            self.store.clone(),
        ));
        let mut results = record.steps.clone();
        let work = async {
            // Unique keys are what keep a re-run from importing a record twice.
            heimdall_base::db::ensure_indexes(&self.target, &self.registry)
                .await
                .context("creating the target's indexes")?;
            let t0 = std::time::Instant::now();
            self.measure(&results).await?;
            // Each step is verified as its import goes, a batch of records once the import
            // has passed it (the copy waits on the database, the verification on mapping);
            // what is left of the verification runs after the last step.
            let (started_tx, started_rx) = futures::channel::mpsc::unbounded::<Started>();
            let (this, results) = (&self, &mut results);
            let copy = async move {
                use futures::StreamExt;
                // `STEPS_AT_ONCE` steps at a time, in order. One that fails or stops
                // halts the others at their next batch (each saved where it got to).
                let mut waiting = this.steps.iter().enumerate().zip(results.iter_mut());
                let mut running = futures::stream::FuturesUnordered::new();
                let mut outcomes = Vec::new();
                loop {
                    while running.len() < STEPS_AT_ONCE {
                        let Some(((i, step), result)) = waiting.next() else {
                            break;
                        };
                        running.push(this.import_step(i, step, result, &started_tx));
                    }
                    match running.next().await {
                        Some(outcome) => outcomes.push(outcome),
                        None => break,
                    }
                }
                drop(running);
                drop(started_tx);
                // The run's error: a step's own rather than the halt it caused elsewhere.
                let (stopped, failed): (Vec<anyhow::Error>, Vec<_>) = outcomes
                    .into_iter()
                    .filter_map(Result::err)
                    .partition(|e| e.is::<Cancelled>());
                if let Some(e) = failed.into_iter().chain(stopped).next() {
                    return Err(e);
                }
                this.store
                    .set(
                        &this.run_id,
                        doc! { "copyMs": t0.elapsed().as_millis() as i64 },
                    )
                    .await?;
                anyhow::Ok(std::time::Instant::now())
            };
            // A step's import that stopped ends its verification too: the import's own
            // error (or stop) is the run's, once every step has halted.
            let verify = async {
                match self.verify(started_rx).await {
                    Err(e) if e.is::<ImportStopped>() => std::future::pending().await,
                    other => other,
                }
            };
            // A source that stops answering (paused, cut off) stops the run.
            let (copied, checks) =
                crate::while_source_answers(&self.source.db, self.read_wait, async {
                    futures::try_join!(copy, verify)
                })
                .await?;
            // The part of the verification that ran after the copy.
            self.store
                .set(
                    &self.run_id,
                    doc! { "verifyMs": copied.elapsed().as_millis() as i64 },
                )
                .await?;
            anyhow::Ok(checks)
        }
        .instrument(tracing::info_span!("legacy_run", run = %self.run_id));
        let rec =
            run_under_lease(&self.store, lease, &self.run_id, self.cancel.clone(), work).await?;
        let mut ev = self.event(final_kind(&rec), &self.steps[0]);
        ev.completed = results
            .iter()
            .filter(|s| s.status == StepStatus::Completed)
            .count() as u16;
        ev.step = 0;
        ev.label = "Legacy Import".into();
        ev.plugin = String::new();
        ev.result = Some(rec.to_json());
        self.sink.emit(&ev);
        Ok(rec)
    }

    /// The run's size, for its pace: the selected records of every step's collection, and
    /// what earlier attempts did.
    async fn measure(&self, results: &[StepResult]) -> anyhow::Result<()> {
        let filter = self.filter();
        let (mut total, mut before) = (0, 0);
        for (i, (step, r)) in self.steps.iter().zip(results).enumerate() {
            let c = &r.collections[0];
            total += if c.done {
                c.processed
            } else {
                let name = source_name(step.source, &self.modmail);
                let coll = self.source.db.collection::<Document>(&name);
                if filter.is_empty() {
                    coll.estimated_document_count().await?
                } else {
                    coll.count_documents(filter.clone()).await?
                }
                .max(c.processed)
            };
            before += c.processed;
            self.clock.step(i, c.processed);
        }
        self.clock.set_total(total, before);
        Ok(())
    }

    /// Imports (or plans) one step from its checkpoint.
    async fn run_step(
        &self,
        index: usize,
        step: &Step,
        res: &mut CollectionResult,
        plan_errors: &mut Vec<RecordError>,
        imported: Option<(&watch::Sender<Imported>, &MappedQueue)>,
    ) -> anyhow::Result<()> {
        // Whether the verification takes the mapping of the step's whole records from this
        // import (see `MappedChecks`): when it maps every record of the step, from the first.
        let mut checks_to = None;
        // How far the import is, for the step's verification.
        let tell = |res: &CollectionResult, prepared: &Arc<Vec<Prepared>>, mapped: bool| {
            if let Some((tx, _)) = imported {
                tx.send_replace(Imported {
                    started: true,
                    up_to: res.last_id.clone(),
                    done: false,
                    skipped: res.skipped,
                    prepared: Some(prepared.clone()),
                    mapped,
                });
            }
        };
        self.sink.emit(&self.event(EventKind::StepStart, step));
        let coll_name = source_name(step.source, &self.modmail);
        let coll = self.source.db.collection::<Document>(&coll_name);
        let filter = self.filter();
        let missing = if self.write {
            self.store.missing_ids(&self.run_id, &coll_name).await?
        } else {
            Vec::new()
        };
        if res.done && missing.is_empty() {
            let mut ev = self.step_completed(step);
            ev.result = Some(serde_json::to_value(&*res)?);
            self.sink.emit(&ev);
            return Ok(());
        }
        if self.write {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Running)
                .await?;
        }
        let mut prepared: Vec<Prepared> = Vec::new();
        for (_, part) in &step.parts {
            prepared.push(
                part.mapper
                    .prepare(&coll, &filter)
                    .await
                    .with_context(|| format!("preparing step {}", step.label))?,
            );
        }
        // Shared with the step's verification (a modmail numbering is one entry per thread).
        let prepared = Arc::new(prepared);
        let mut planned: HashMap<&'static str, HashSet<String>> = HashMap::new();
        // A run that writes starts by inserting without lookups (see `import_batch`).
        let mut insert_first = self.write;
        if !missing.is_empty() {
            // Records an earlier verification of this run found missing from the target.
            tracing::info!(collection = %coll_name, count = missing.len(), "importing again what verification found missing");
            let (keys, ids): (Vec<String>, Vec<Bson>) = missing.into_iter().unzip();
            for chunk in ids.chunks(crate::clone::IN_CHUNK) {
                let records =
                    crate::find_ids(&coll, &filter, chunk, "reading the legacy database").await?;
                let (errors, skips) = self
                    .import_batch(
                        step,
                        &prepared,
                        (records, 0),
                        res,
                        &mut planned,
                        &mut insert_first,
                    )
                    .await?;
                res.processed = res.processed.min(res.total);
                self.store
                    .save_collection(&self.run_id, index, 0, res, &errors, &skips)
                    .await?;
            }
            self.store.forget_failures(keys).await?;
        }
        if res.done {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Completed)
                .await?;
            let mut ev = self.step_completed(step);
            ev.result = Some(serde_json::to_value(&*res)?);
            self.sink.emit(&ev);
            return Ok(());
        }
        // Records up to the checkpoint were imported by an earlier attempt, and what its
        // verification found missing just now.
        if self.write && res.last_id.is_none() && res.processed == 0 {
            checks_to = imported.map(|(_, checks)| checks);
        }
        let checking = checks_to.is_some();
        tell(res, &prepared, checking);
        res.total = coll.count_documents(filter.clone()).await?;
        let query = match &res.last_id {
            Some(last) => crate::id_order::and(filter, crate::id_order::after(last)),
            None => filter,
        };
        let (_reader, mut rx) = crate::read_raw_batches_within(
            self.source
                .db
                .collection::<mongodb::bson::RawDocumentBuf>(&coll_name),
            query,
            (self.batch_size, LEGACY_PER_REPLY),
            LEGACY_BATCH_BYTES,
            self.read_wait,
            "reading the legacy database",
        );
        let mut throttle = Throttle::new(10);
        // The pace counts this attempt's records only (a resumed step began with some).
        let (step_started, resumed_from) = (std::time::Instant::now(), res.processed);
        let progress = |res: &CollectionResult, throttle: &mut Throttle| {
            self.clock.step(index, res.processed);
            if step.record_progress && throttle.allow(res.processed, res.total) {
                let mut ev = self.record_event(step, res);
                ev.run_pace = Some(self.clock.pace());
                ev.pace = Some(crate::Pace::of(
                    step_started,
                    res.processed.saturating_sub(resumed_from),
                    res.total.saturating_sub(resumed_from),
                ));
                self.sink.emit(&ev);
            }
        };
        progress(res, &mut throttle);
        // While a batch is written, the next one, if read already and there is room for it,
        // is split and mapped on the run's mapping thread (CPU only; a run stopped meanwhile
        // lets that one batch finish and drops what it made).
        let map_aside = |records: Vec<mongodb::bson::RawDocumentBuf>| {
            self.map_on_thread(step, &prepared, move |step, prepared, ctx| {
                map_batch(step, prepared, ctx, records, checking)
            })
        };
        // A batch once written (and its big records): its checkpoint saved, the records
        // it passed told to the verification, its errors kept by a dry run.
        let mut saved = async |res: &mut CollectionResult, finished: Finished| {
            let Finished {
                last,
                errors,
                skips,
            } = finished;
            res.last_id = last;
            if self.write {
                self.store
                    .save_collection(&self.run_id, index, 0, res, &errors, &skips)
                    .await?;
                tell(res, &prepared, checking);
            } else {
                let room = crate::MAX_RECORDED_ERRORS.saturating_sub(plan_errors.len());
                plan_errors.extend(errors.into_iter().take(room));
            }
            progress(res, &mut throttle);
            anyhow::Ok(())
        };
        // Whether the run stops after the step's batch `n`: stopped, or a fail point there.
        let stops_after = |n: u64| {
            self.halt.is_cancelled()
                || (self.write && crate::FailPoint::hit(&self.fail_point, &coll_name, n))
        };
        let room = Room::new(IMPORT_MAPPING_BYTES);
        let mut next: Option<Next<'_>> = None;
        let mut batches = 0u64;
        // The batch whose primary documents are written and whose others are not yet: they
        // are written while the next batch's primaries are (see `Pending`).
        let mut pending: Option<Pending> = None;
        loop {
            // A run stopping after the pending batch finishes it, and writes nothing of
            // the next one.
            let stopping = pending.as_ref().is_some_and(|p| stops_after(p.number));
            let arrived = if stopping {
                Ok(None)
            } else {
                self.next_batch(
                    (&mut next, &room),
                    &mut rx,
                    &map_aside,
                    (step, &prepared, checking),
                )
                .await
            };
            let (batch, _room) = match arrived {
                Ok(Some(arrived)) => arrived,
                // The end, or a read or mapping error: the run's, once the batch before it
                // is saved.
                ended => {
                    if let Some(p) = pending.take() {
                        let number = p.number;
                        let finished = self
                            .finish(step, &prepared, p, res, &mut planned, &mut insert_first)
                            .await?;
                        saved(res, finished).await?;
                        if stopping || stops_after(number) {
                            return Err(Cancelled.into());
                        }
                    }
                    ended?;
                    break;
                }
            };
            batches += 1;
            let MappedBatch {
                last,
                whole,
                big,
                checks,
            } = batch;
            if let (Some(to), Some(checks)) = (checks_to, checks) {
                // Ends with the verification.
                to.send(checks);
            }
            if !(self.write && insert_first) {
                // Looked up first (a re-run, or a dry run): one batch at a time.
                if let Some(p) = pending.take() {
                    let finished = self
                        .finish(step, &prepared, p, res, &mut planned, &mut insert_first)
                        .await?;
                    saved(res, finished).await?;
                }
                let p = Pending {
                    number: batches,
                    last,
                    batch: Batch::of(whole, 0),
                    big,
                    primed: false,
                };
                let finished = self
                    .finish(step, &prepared, p, res, &mut planned, &mut insert_first)
                    .await?;
                saved(res, finished).await?;
                if stops_after(batches) {
                    return Err(Cancelled.into());
                }
                continue;
            }
            // A batch with big records is finished before the next one's primaries are
            // written: its records' primaries come first, as they are older.
            if let Some(p) = pending.take_if(|p| !p.big.is_empty()) {
                let finished = self
                    .finish(step, &prepared, p, res, &mut planned, &mut insert_first)
                    .await?;
                saved(res, finished).await?;
            }
            // The batch before it is finished and its checkpoint saved while this one's
            // primaries are written.
            let mut batch = Batch::of(whole, 0);
            let (finished, primed) = futures::join!(
                async {
                    let Some(p) = pending.take() else {
                        return Ok(());
                    };
                    let finished = self
                        .finish(step, &prepared, p, res, &mut planned, &mut insert_first)
                        .await?;
                    saved(res, finished).await
                },
                self.insert_primaries(&mut batch),
            );
            finished?;
            primed?;
            pending = Some(Pending {
                number: batches,
                last,
                batch,
                big,
                primed: true,
            });
        }
        res.done = true;
        if self.write {
            self.store
                .save_collection(&self.run_id, index, 0, res, &[], &[])
                .await?;
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Completed)
                .await?;
        }
        let mut ev = self.step_completed(step);
        ev.record_index = Some(res.processed);
        ev.record_total = Some(res.total);
        ev.result = Some(serde_json::to_value(&*res)?);
        self.sink.emit(&ev);
        Ok(())
    }

    /// The step's next batch, mapped, with its mapping room, or `None` at the end: the
    /// one mapped aside, else the next read, mapped here. The one after it, if read already
    /// and there is room, starts being mapped aside (CPU only, on the run's mapping thread;
    /// a run stopped meanwhile lets it finish and drops what it made).
    async fn next_batch<'a>(
        &self,
        (next, room): (&mut Option<Next<'a>>, &'a Room),
        rx: &mut tokio::sync::mpsc::Receiver<anyhow::Result<Vec<mongodb::bson::RawDocumentBuf>>>,
        map_aside: &impl Fn(Vec<mongodb::bson::RawDocumentBuf>) -> Mapping<MappedBatch>,
        (step, prepared, checking): (&Step, &[Prepared], bool),
    ) -> anyhow::Result<Option<(MappedBatch, tokio::sync::SemaphorePermit<'a>)>> {
        let arrived = match next.take() {
            Some(Next::Mapping(mapping, room)) => (mapping.await?, room),
            waiting => {
                let records = match waiting {
                    Some(Next::Read(read)) => read?,
                    _ => match rx.recv().await {
                        Some(read) => read?,
                        None => return Ok(None),
                    },
                };
                let room = room.acquire(&records).await?;
                let batch = map_batch(
                    step,
                    prepared,
                    (&self.registry, self.now),
                    records,
                    checking,
                )?;
                (batch, room)
            }
        };
        if let Ok(read) = rx.try_recv() {
            *next = Some(match read {
                Ok(records) => match room.try_acquire(&records) {
                    Some(room) => Next::Mapping(map_aside(records), room),
                    None => Next::Read(Ok(records)),
                },
                Err(e) => Next::Read(Err(e)),
            });
        }
        Ok(Some(arrived))
    }

    /// Writes what of `p` is not written yet (its primaries too, unless `p.primed`), then
    /// its big records part by part, and counts its records into `res`.
    async fn finish(
        &self,
        step: &Step,
        prepared: &Arc<Vec<Prepared>>,
        p: Pending,
        res: &mut CollectionResult,
        planned: &mut HashMap<&'static str, HashSet<String>>,
        insert_first: &mut bool,
    ) -> anyhow::Result<Finished> {
        let Pending {
            last,
            batch,
            big,
            primed,
            ..
        } = p;
        let (mut errors, mut skips) = self
            .import_mapped(step, batch, primed, res, planned, insert_first)
            .await?;
        for record in big {
            let (e, s) = self
                .import_in_parts(step, prepared, record, res, planned, insert_first)
                .await?;
            errors.extend(e);
            skips.extend(s);
        }
        Ok(Finished {
            last,
            errors,
            skips,
        })
    }

    /// Runs `map` (CPU only) on the run's mapping thread, with what mapping needs: `step`,
    /// what it prepared, the registry and the run's `now`.
    fn map_on_thread<T: Send + 'static>(
        &self,
        step: &Step,
        prepared: &Arc<Vec<Prepared>>,
        map: impl FnOnce(&Step, &[Prepared], (&Registry, DateTime)) -> anyhow::Result<T>
            + Send
            + 'static,
    ) -> Mapping<T> {
        let (step, prepared, registry, now) = (
            step.clone(),
            prepared.clone(),
            self.registry.clone(),
            self.now,
        );
        self.mapper
            .run(move || map(&step, &prepared, (&registry, now)))
    }

    /// Verifies each step as `started` announces it (step index, how far its import is,
    /// what its mapping made of the records), two steps at a time, in two passes. The
    /// first reads every in-scope legacy record again, beside the import, and per target
    /// collection sums what the records should have become (count and hashes of `_id` and
    /// content): mapped here, or, for a step whose import maps every record, taken from
    /// that mapping once the records read here add up to the ones it mapped (see
    /// [`Self::verify_step`]).
    /// Once every import has ended, each such collection of the target is read through
    /// once and summed the same way. A step whose collections all agree is verified; a
    /// step with one that does not (the target held other documents, or something is
    /// missing or different) is checked record by record ([`Self::verify_step`] without
    /// sums), which says which records. Ends when `started` does.
    async fn verify(
        &self,
        started: futures::channel::mpsc::UnboundedReceiver<Started>,
    ) -> anyhow::Result<Verification> {
        use futures::{StreamExt, TryStreamExt};
        let span = |step: &Step| tracing::info_span!("legacy_verify", run = %self.run_id, step = step.order);
        // Per step: its index, how many records its import skipped, its report, its sums,
        // and its collections' sums in the target read once its import had ended (beside
        // the next step's writes). Not what its import prepared (a step's numbering or
        // names): held only while the step is imported and summed, prepared again by a
        // check record by record.
        type First = (
            usize,
            u64,
            CollectionVerification,
            Sums,
            HashMap<&'static str, (u64, u64)>,
        );
        // Steps as they start, two at once, whichever ends first making room for the next
        // (the import runs several at once, one of them maybe most of the run).
        let mut firsts: Vec<First> = started
            .map(|(i, imported, mapped)| {
                let step = &self.steps[i];
                async move {
                    let sums = std::sync::Mutex::new(Sums::default());
                    let report = self
                        .verify_step(step, imported.clone(), Some((&sums, mapped)))
                        .await?;
                    let sums = sums.into_inner().unwrap_or_else(|e| e.into_inner());
                    let skipped = imported.borrow().skipped;
                    // The first pass waited for the step's import to end.
                    let mut found = HashMap::new();
                    for &c in sums.by_collection.keys() {
                        found.insert(c, self.target_sums(c).await?);
                    }
                    anyhow::Ok((i, skipped, report, sums, found))
                }
                .instrument(span(step))
            })
            .buffer_unordered(2)
            .try_collect()
            .await?;
        firsts.sort_by_key(|f| f.0);
        // Every step's import has ended: each first pass waited for its own.
        let mut wanted = Sums::default();
        // How many steps write each collection: one step's collection was summed once its
        // import ended; one that several steps write is summed now, once all have.
        let mut writers: HashMap<&'static str, (usize, (u64, u64))> = HashMap::new();
        for (_, _, _, sums, found) in &firsts {
            wanted.absorb(sums);
            for (&c, &have) in found {
                writers.entry(c).or_insert((0, have)).0 += 1;
            }
        }
        let mut differ: HashSet<&'static str> = HashSet::new();
        for (&c, &want) in &wanted.by_collection {
            let have = match writers.get(c) {
                Some(&(1, have)) => have,
                _ => self.target_sums(c).await?,
            };
            if have != want {
                tracing::info!(
                    collection = c,
                    expected = want.0,
                    found = have.0,
                    "the target's documents do not add up to the source's: checking record by record"
                );
                differ.insert(c);
            }
        }
        let mut summed = Vec::with_capacity(firsts.len());
        for (i, skipped, report, sums, _) in firsts {
            summed.push((i, skipped, report, sums));
        }
        let out: Vec<CollectionVerification> = futures::stream::iter(summed)
            .map(|(i, skipped, report, sums)| {
                let step = &self.steps[i];
                let agreed = !sums.unsure && sums.by_collection.keys().all(|c| !differ.contains(c));
                async move {
                    if agreed {
                        return Ok(report);
                    }
                    // The step's import has ended.
                    let (_ended, imported) = watch::channel(Imported {
                        started: true,
                        done: true,
                        skipped,
                        ..Imported::default()
                    });
                    self.verify_step(step, imported, None).await
                }
                .instrument(span(step))
            })
            .buffered(2)
            .try_collect()
            .await?;
        Ok(Verification::of(out))
    }

    /// The count and wrapping sum of [`raw_identity_hash`]es of `collection`'s documents
    /// in the target (of the imported guild's, with a guild filter), read once in the
    /// server's own order ([`Summed`], nothing ignored).
    ///
    /// [`raw_identity_hash`]: crate::clone::raw_identity_hash
    async fn target_sums(&self, collection: &'static str) -> anyhow::Result<(u64, u64)> {
        let spec = self.spec(collection)?;
        let mut filter = doc! {};
        if let (Some(g), GuildScope::Field { field, .. }) = (&self.guild, spec.scope) {
            filter.insert(field, g.as_str());
        }
        let sums = Summed::of(
            self.target.collection(collection),
            filter,
            &[],
            (VERIFY_SLICE, &|| self.sink.alive()),
        )
        .await
        .with_context(|| format!("reading {collection} in the target to verify the import"))?;
        Ok((sums.count, sums.identities))
    }

    /// Reads every in-scope legacy record of a step again, maps it as the import does, and
    /// looks for what it becomes in the target: each produced document by its unique key,
    /// the primary one under the `_id` the import gives it. A record is accounted for when
    /// its documents are there, or the run recorded it as failed or skipped; else it is
    /// missing. With `sums` (the first pass, see [`Self::verify`]) nothing is looked up:
    /// the documents are added to `sums` and counted as found, to stand only if the target
    /// adds up to them; the records are read without waiting for the import.
    ///
    /// In the first pass of a step whose import maps every record of it (from the first,
    /// [`Imported::mapped`]), the whole records (not the big ones) are not mapped twice:
    /// what the import's mapping made of them comes from `mapped` ([`MappedChecks`]), and
    /// this side only sums the records as it reads them ([`RecordSums`]). The import maps
    /// with the same mappers, as prepared, from the same bytes; the records' sums say that
    /// it mapped the very records this side read, each once. When they differ (the
    /// source changed, or a record was mapped twice or never), the step's sums cannot
    /// vouch for it and it is checked record by record.
    async fn verify_step(
        &self,
        step: &Step,
        mut imported: watch::Receiver<Imported>,
        first: Option<(&std::sync::Mutex<Sums>, Arc<MappedQueue>)>,
    ) -> anyhow::Result<CollectionVerification> {
        let name = source_name(step.source, &self.modmail);
        // Not before the step has imported again what an earlier verification found missing.
        wait_for(&mut imported, |i| i.started).await?;
        let sums = first.as_ref().map(|&(sums, _)| sums);
        // The import's mapping of the whole records, with the sums it adds to.
        let mapped = first.filter(|_| imported.borrow().mapped);
        if let Some(field) = crate::FailPoint::source_change_of(&self.fail_point, &name) {
            self.change_first_record(&name, field, &mut imported)
                .await?;
        }
        // The whole records read here, left to the import's mapping.
        let read = std::sync::Mutex::new(RecordSums::default());
        let by_import = mapped.is_some().then_some(&read);
        let trailing = imported.clone();
        self.store.forget_missing(&self.run_id, &name).await?;
        let coll = self.source.db.collection::<Document>(&name);
        let filter = self.filter();
        // What the import prepared, or (a step an earlier attempt finished) prepared here.
        let shared = imported.borrow().prepared.clone();
        let prepared = match shared {
            Some(p) => p,
            None => {
                let mut own: Vec<Prepared> = Vec::new();
                for (_, part) in &step.parts {
                    own.push(part.mapper.prepare(&coll, &filter).await?);
                }
                Arc::new(own)
            }
        };
        let (_reader, mut rx) = crate::read_raw_batches_within(
            self.source
                .db
                .collection::<mongodb::bson::RawDocumentBuf>(&name),
            filter,
            (self.batch_size, LEGACY_PER_REPLY),
            LEGACY_BATCH_BYTES,
            self.read_wait,
            "reading the legacy database to verify the import",
        );
        use futures::{StreamExt as _, TryStreamExt as _};
        // A few batches at a time: one's mapping overlaps another's reads of the target.
        let batches = futures::stream::poll_fn(|cx| rx.poll_recv(cx));
        let mut checked = std::pin::pin!(batches
            .map(|records| {
                let imported = trailing.clone();
                self.check_batch(step, &prepared, &name, records, (imported, sums, by_import))
            })
            .buffered(VERIFY_BATCHES_AT_ONCE));
        // The batches' own tallies are added up here without awaiting anything: the
        // batches in flight hold database connections only polling them gives back.
        let read_here = async {
            let mut tally = VerifyTally::default();
            while let Some(part) = checked.try_next().await? {
                tally.absorb(part);
                // After the last step's import, the verification's checks are the run's
                // only moves.
                self.sink.alive();
            }
            anyhow::Ok(tally)
        };
        let from_import = async {
            match mapped {
                Some((sums, mapped)) => self
                    .take_mapped(step, &name, mapped, (trailing.clone(), sums))
                    .await
                    .map(|(tally, records)| Some((tally, records, sums))),
                None => Ok(None),
            }
        };
        let (mut tally, from_import) = futures::try_join!(read_here, from_import)?;
        if let Some((theirs, records, sums)) = from_import {
            tally.absorb(theirs);
            let read = *lock(&read);
            if records != read {
                tracing::warn!(
                    collection = %name,
                    read = read.count,
                    mapped = records.count,
                    "the records the import mapped are not the source's as read again: checking record by record"
                );
                lock(sums).unsure = true;
            }
        }
        let skipped = wait_for(&mut imported, |i| i.done).await?.skipped;
        // A record skipped without a reason (all of it there already, from an earlier run)
        // may find the target's documents changed since; one skipped with a reason is
        // counted among the absent ones, and excuses no difference.
        let allowed = skipped.saturating_sub(tally.skips_absent);
        Ok(tally.report(step.order, &name, allowed))
    }

    /// The [`crate::FailKind::SourceChange`] point (tests only): once the step's import has
    /// ended, the first record of `name` gets `field` changed in the source.
    async fn change_first_record(
        &self,
        name: &str,
        field: &str,
        imported: &mut watch::Receiver<Imported>,
    ) -> anyhow::Result<()> {
        wait_for(imported, |i| i.done).await?;
        let coll = self.source.db.collection::<Document>(name);
        let first = coll
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .await?
            .context("a record to change")?;
        let id = first.get("_id").cloned().unwrap_or(Bson::Null);
        coll.update_one(
            doc! { "_id": id },
            doc! { "$set": { field: "changed in the old bot's database meanwhile" } },
        )
        .await?;
        Ok(())
    }

    /// Verifies one batch of legacy records: per record its source digest and, when all it
    /// becomes is in the target, the target's digest; the records found absent are checked
    /// against what the run recorded. Big records are mapped in parts (see [`parts_of`]).
    /// With `sums`, the documents are summed instead of looked up (see [`Self::verify`]).
    /// With `by_import`, the whole records are only summed into it: the import's mapping
    /// of them is checked instead (see [`Self::verify_step`]).
    async fn check_batch(
        &self,
        step: &Step,
        prepared: &[Prepared],
        name: &str,
        records: anyhow::Result<Vec<mongodb::bson::RawDocumentBuf>>,
        (mut imported, sums, by_import): (
            watch::Receiver<Imported>,
            Option<&std::sync::Mutex<Sums>>,
            Option<&std::sync::Mutex<RecordSums>>,
        ),
    ) -> anyhow::Result<VerifyTally> {
        let records = records?;
        // Not before the import has passed the batch's records: the target is read, or
        // (with sums) what the run recorded of the records found absent.
        let last = last_id(&records)?;
        if sums.is_none() {
            wait_for(&mut imported, |i| i.passed(last.as_ref())).await?;
        }
        let room = self.verify_room.acquire(&records).await?;
        let mut rows: Vec<Checked> = Vec::with_capacity(records.len());
        let mut whole = Vec::with_capacity(records.len());
        for r in records {
            match parts_of(step, &r)? {
                Some(parts) => rows.push(
                    self.check_in_parts(step, prepared, (&r, parts), sums)
                        .await?,
                ),
                None => whole.push(r),
            }
        }
        // Each record parsed, mapped and its documents hashed at once: what is held until
        // the target is read is their identities and digests, not the documents. On the
        // run's task: a thread of its own for it made the run slower and bigger (the
        // machine's two cores are busy either way, see docs/benchmarks.md).
        let first = rows.len();
        if let Some(read) = by_import {
            let mut here = RecordSums::default();
            for r in whole.drain(..) {
                here.add(&r);
            }
            lock(read).absorb(here);
        }
        let records = whole
            .into_iter()
            .map(|r| anyhow::Ok(crate::raw::document(&r)?));
        let checks = check_records(
            step,
            prepared,
            (&self.registry, self.now),
            records,
            (0, 0),
            sums.is_some(),
        )?;
        if let Some(sums) = sums {
            lock(sums).absorb(&checks.sums);
        }
        rows.extend(checks.rows);
        self.digest(&checks.pending, &mut rows[first..]).await?;
        // Mapped: the room for the verification's next batch, while this one waits for
        // the import.
        drop(room);
        self.account(step, name, rows, (last, imported)).await
    }

    /// The first pass over what the step's import made of its whole records (see
    /// [`Self::verify_step`]), batch by batch as it maps them: their sums added to `sums`,
    /// their rows accounted for as [`Self::check_batch`] does. Returns the tally and the
    /// sums of the records the import mapped, once it has ended.
    async fn take_mapped(
        &self,
        step: &Step,
        name: &str,
        mapped: Arc<MappedQueue>,
        (imported, sums): (watch::Receiver<Imported>, &std::sync::Mutex<Sums>),
    ) -> anyhow::Result<(VerifyTally, RecordSums)> {
        let mut tally = VerifyTally::default();
        let mut records = RecordSums::default();
        while let Some(MappedChecks {
            last,
            found,
            checks,
            records: theirs,
        }) = mapped.next().await
        {
            records.absorb(theirs);
            tally.absorb(found);
            lock(sums).absorb(&checks.sums);
            let part = self
                .account(step, name, checks.rows, (last, imported.clone()))
                .await?;
            tally.absorb(part);
        }
        Ok((tally, records))
    }

    /// Counts a batch's checked records (`rows`, the batch ending at `last`) into a tally:
    /// each found, or absent and then checked against what the run recorded (once the
    /// import has passed the batch).
    async fn account(
        &self,
        step: &Step,
        name: &str,
        rows: Vec<Checked>,
        (last, mut imported): (Option<Bson>, watch::Receiver<Imported>),
    ) -> anyhow::Result<VerifyTally> {
        let mut tally = VerifyTally::default();
        let mut absent = Vec::new();
        for row in rows {
            if row.count_found(&mut tally) {
                continue;
            }
            let why = if row.failed {
                tally.add_source(0);
                "verification: failed to map"
            } else {
                tally.add_source(row.source);
                if row.skipped {
                    "verification: skipped"
                } else {
                    "verification: not in the target"
                }
            };
            absent.push(RecordError::of(step.order, name, &row.id, why));
        }
        if !absent.is_empty() {
            wait_for(&mut imported, |i| i.passed(last.as_ref())).await?;
        }
        self.store
            .note_absent(
                &self.run_id,
                name,
                &[FailureKind::Error, FailureKind::Skip],
                absent,
                &mut tally,
            )
            .await?;
        Ok(tally)
    }

    /// [`Self::check_batch`] for one big record, part by part: only one part's documents
    /// are held at a time.
    async fn check_in_parts(
        &self,
        step: &Step,
        prepared: &[Prepared],
        (raw, Parts { field, slices }): (&mongodb::bson::RawDocument, Parts),
        sums: Option<&std::sync::Mutex<Sums>>,
    ) -> anyhow::Result<Checked> {
        let mut row = Checked {
            id: match raw.get("_id")? {
                Some(id) => doc! { "_id": raw_to_bson(id)? },
                None => Document::new(),
            },
            failed: false,
            skipped: false,
            source: 0,
            target: 0,
            whole: true,
        };
        let summing = sums.is_some();
        for (k, &(offset, count)) in slices.iter().enumerate() {
            // The primary document once, from the first part.
            let skip = usize::from(k > 0);
            let mut checks = check_records(
                step,
                prepared,
                (&self.registry, self.now),
                [part_of(raw, field, offset, count)],
                (offset, skip),
                summing,
            )?;
            let part = checks.rows.pop().context("a part checked")?;
            if part.failed {
                row.failed = true;
                break;
            }
            if k == 0 {
                row.skipped = part.skipped;
            }
            row.source = row.source.wrapping_add(part.source);
            row.target = row.target.wrapping_add(part.target);
            if let Some(sums) = sums {
                lock(sums).absorb(&checks.sums);
            }
            self.digest(&checks.pending, std::slice::from_mut(&mut row))
                .await?;
        }
        Ok(row)
    }

    /// Adds to each of `rows` the hashes, as the target stores them, of its `pending`
    /// documents (a document's `ri` is its row), and clears `whole` for a record with one
    /// not in the target; looked up a slice at a time.
    async fn digest(&self, pending: &[Digested], rows: &mut [Checked]) -> anyhow::Result<()> {
        for slice in pending.chunks(VERIFY_SLICE) {
            // Read raw and hashed as stored; only `_id` and the unique key are parsed.
            let mut by_coll: BTreeMap<&'static str, Vec<Document>> = BTreeMap::new();
            for d in slice {
                by_coll
                    .entry(d.collection)
                    .or_default()
                    .push(d.identity.clone());
            }
            let mut found = HashMap::new();
            for (c, docs) in &by_coll {
                found.insert(
                    *c,
                    crate::clone::existing_hashes(&self.target, self.spec(c)?, docs).await?,
                );
            }
            for d in slice {
                let spec = self.spec(d.collection)?;
                match found[d.collection].get(&key_of(spec, &d.identity)) {
                    Some((id, h)) if d.i > 0 || Some(id) == d.identity.get("_id") => {
                        rows[d.ri].target = rows[d.ri].target.wrapping_add(*h);
                    }
                    _ => rows[d.ri].whole = false,
                }
            }
        }
        Ok(())
    }

    /// Which of `produced` already exist in the target, per collection: by `_id` and key.
    async fn existing<'a>(
        &self,
        produced: impl Iterator<Item = &'a Out>,
    ) -> anyhow::Result<HashMap<&'static str, crate::clone::Existing>> {
        let by_coll = self.identities(produced)?;
        let mut out = HashMap::new();
        for (c, docs) in &by_coll {
            out.insert(
                *c,
                existing_in(&self.target, self.spec(c)?, docs, false).await?,
            );
        }
        Ok(out)
    }

    /// What identifies each of `produced` (`_id` and unique key), per target collection.
    fn identities<'a>(
        &self,
        produced: impl Iterator<Item = &'a Out>,
    ) -> anyhow::Result<BTreeMap<&'static str, Vec<Document>>> {
        let mut by_coll: BTreeMap<&'static str, Vec<Document>> = BTreeMap::new();
        for p in produced {
            by_coll
                .entry(p.collection)
                .or_default()
                .push(identity(self.spec(p.collection)?, &p.doc()?));
        }
        Ok(by_coll)
    }

    fn spec(&self, collection: &str) -> anyhow::Result<&CollectionSpec> {
        spec_in(&self.registry, collection)
    }

    /// Maps, checks and writes one batch of legacy records. With `insert_first` (a run
    /// that writes, into a target that has had few of the batch's documents so far), the
    /// documents are inserted without looking them up: the unique indexes refuse what is
    /// already there, and only those are looked up. Set for the next batch from this one.
    async fn import_batch(
        &self,
        step: &Step,
        prepared: &[Prepared],
        (records, offset): (Vec<Document>, usize),
        res: &mut CollectionResult,
        planned: &mut HashMap<&'static str, HashSet<String>>,
        insert_first: &mut bool,
    ) -> anyhow::Result<(Vec<RecordError>, Vec<RecordError>)> {
        let whole = map_records(
            step,
            prepared,
            (&self.registry, self.now),
            records.into_iter().map(Ok),
            offset,
        )?;
        let batch = Batch::of(whole, offset);
        self.import_mapped(step, batch, false, res, planned, insert_first)
            .await
    }

    /// [`Self::import_batch`] of records already mapped: what of `batch` is not written
    /// yet (its primaries too, unless `primed`: written by [`Self::insert_primaries`]).
    async fn import_mapped(
        &self,
        step: &Step,
        mut batch: Batch,
        primed: bool,
        res: &mut CollectionResult,
        planned: &mut HashMap<&'static str, HashSet<String>>,
        insert_first: &mut bool,
    ) -> anyhow::Result<(Vec<RecordError>, Vec<RecordError>)> {
        if primed {
            self.insert_rest(&mut batch).await?;
        } else if self.write && *insert_first {
            self.insert_primaries(&mut batch).await?;
            self.insert_rest(&mut batch).await?;
        } else {
            self.look_up_first(&mut batch.groups, planned, &mut batch.out)
                .await?;
        }
        Ok(self.tally(step, batch, res, insert_first))
    }

    /// Counts a written batch's records into `res`, each by what became of it, and says
    /// whether the next batch is inserted first (see [`Self::import_batch`]). Returns the
    /// records that failed and those skipped with a reason.
    fn tally(
        &self,
        step: &Step,
        batch: Batch,
        res: &mut CollectionResult,
        insert_first: &mut bool,
    ) -> (Vec<RecordError>, Vec<RecordError>) {
        let coll_name = source_name(step.source, &self.modmail);
        let Batch {
            records,
            out:
                BatchOutcome {
                    wrote,
                    mut fate,
                    mut skip_reason,
                    existed,
                    ..
                },
            produced,
            ..
        } = batch;
        // Mostly there already (a re-run): look up first, rather than journal and refuse.
        *insert_first = self.write && existed * 20 <= produced;
        let mut errors = Vec::new();
        let mut skips = Vec::new();
        for (ri, r) in records.iter().enumerate() {
            res.processed += 1;
            let outcome = match fate[ri].take() {
                Some(f) => f,
                None if wrote[ri] > 0 => RecordOutcome::Imported,
                None => RecordOutcome::Skipped,
            };
            match outcome {
                RecordOutcome::Imported => res.inserted += 1,
                RecordOutcome::Skipped => {
                    res.skipped += 1;
                    if let Some(why) = skip_reason[ri].take() {
                        skips.push(RecordError::of(step.order, &coll_name, r, why));
                    }
                }
                RecordOutcome::Failed(why) => {
                    res.failed += 1;
                    errors.push(RecordError::of(step.order, &coll_name, r, why));
                }
            }
        }
        (errors, skips)
    }

    /// Imports one big record part by part (see [`parts_of`]), its later parts checked
    /// already ([`map_batch`]): a refused one fails the record before anything of it is
    /// written. The first part is imported as the record (counted, its primary document
    /// deciding a conflict); each later part adds its other documents to it (without the
    /// primary, see `BatchOutcome::primary`), counted into the record's outcome, taken in
    /// part order. The later parts depend on the first only: once it is written, two of
    /// them are written at once (one at a time in a dry run, whose plan they share). Each
    /// part is mapped on the run's mapping thread while the ones before it are written.
    async fn import_in_parts(
        &self,
        step: &Step,
        prepared: &Arc<Vec<Prepared>>,
        BigRecord {
            raw,
            parts: Parts { field, slices },
            refused,
        }: BigRecord,
        res: &mut CollectionResult,
        planned: &mut HashMap<&'static str, HashSet<String>>,
        insert_first: &mut bool,
    ) -> anyhow::Result<(Vec<RecordError>, Vec<RecordError>)> {
        use futures::StreamExt;
        if let Some(k) = refused {
            // Counted as failed with its reason; nothing written.
            let (offset, count) = slices[k];
            let part = part_of(&raw, field, offset, count)?;
            return self
                .import_batch(
                    step,
                    prepared,
                    (vec![part], offset),
                    res,
                    planned,
                    insert_first,
                )
                .await;
        }
        let map_part = |(offset, count): (usize, usize)| {
            let raw = raw.clone();
            let mapping = self.map_on_thread(step, prepared, move |step, prepared, ctx| {
                let part = part_of(&raw, field, offset, count)?;
                map_records(step, prepared, ctx, [Ok(part)], offset)
            });
            (offset, mapping)
        };
        let mut parts = slices.iter().map(|&s| map_part(s));
        let Some((offset, first)) = parts.next() else {
            return Ok(Default::default());
        };
        // The second part is mapped while the first is written.
        let mut later = parts.next().into_iter().chain(parts);
        let saved = (res.inserted, res.skipped);
        let mut out = self
            .import_mapped(
                step,
                Batch::of(first.await?, offset),
                false,
                res,
                planned,
                insert_first,
            )
            .await?;
        // What the first part counted the record as. Imported, or skipped with no reason
        // (all of it there already: a run stopped inside the record), the later parts
        // follow; failed, or skipped with a reason (a conflict, the mapper's skip), it is
        // done.
        let mut imported = res.inserted > saved.0;
        let all_there = res.skipped > saved.1 && out.1.is_empty();
        if !imported && !all_there {
            return Ok(out);
        }
        // A later part, counted on its own: what it wrote, whether it failed, its errors,
        // and the plan and `insert_first` it leaves.
        let import_part = |(offset, mapping): (usize, Mapping<_>),
                           mut planned: HashMap<&'static str, HashSet<String>>,
                           mut first: bool| async move {
            let mut counted = CollectionResult::default();
            let (errors, _) = self
                .import_mapped(
                    step,
                    Batch::of(mapping.await?, offset),
                    false,
                    &mut counted,
                    &mut planned,
                    &mut first,
                )
                .await?;
            anyhow::Ok((counted, errors, planned, first))
        };
        let window = if self.write { 2 } else { 1 };
        let mut writing = futures::stream::FuturesOrdered::new();
        loop {
            while writing.len() < window {
                let Some(part) = later.next() else { break };
                // A dry run's plan goes with its one part and comes back with it.
                let plan = if self.write {
                    HashMap::new()
                } else {
                    std::mem::take(planned)
                };
                writing.push_back(import_part(part, plan, *insert_first));
            }
            let Some(done) = writing.next().await else {
                break;
            };
            let (counted, errors, plan, first) = done?;
            if !self.write {
                *planned = plan;
            }
            *insert_first = first;
            if counted.failed > 0 {
                // A later part could not be written: the record failed. The part written
                // beside it ends first (its outcome no longer counts).
                while let Some(beside) = writing.next().await {
                    beside?;
                }
                if imported {
                    res.inserted -= 1;
                } else {
                    res.skipped -= 1;
                }
                res.failed += 1;
                out.0.extend(errors);
                out.1.clear();
                return Ok(out);
            }
            if counted.inserted > 0 && !imported {
                // Its first part was there already (a run stopped inside the record), a
                // later one was not: the record is imported.
                res.skipped -= 1;
                res.inserted += 1;
                imported = true;
                out.1.clear();
            }
            self.still_writing(step, res);
        }
        Ok(out)
    }

    /// Tells the owners `step` is moving while one big record is written part by part (a
    /// thread of 20,000 messages on a loaded machine can take longer than a run may stay
    /// silent before it is called stalled): a progress event at `res`, the record counted
    /// as its first part left it.
    fn still_writing(&self, step: &Step, res: &CollectionResult) {
        if step.record_progress {
            self.sink.emit(&self.record_event(step, res));
        }
    }

    /// A progress event of `step` at `res`: the collection read, how many of its records
    /// are done, and the step's counts so far.
    fn record_event(&self, step: &Step, res: &CollectionResult) -> ProgressEvent {
        let mut ev = self.event(EventKind::StepProgress, step);
        ev.collection = Some(source_name(step.source, &self.modmail));
        ev.record_index = Some(res.processed);
        ev.record_total = Some(res.total);
        ev.counts = Some(crate::StepCounts::of([res]));
        ev
    }

    /// Looks every produced document up (by `_id` and key), then inserts those not there:
    /// a record whose primary document the target has under another `_id` is a conflict.
    async fn look_up_first(
        &self,
        groups: &mut [Vec<Vec<Out>>],
        planned: &mut HashMap<&'static str, HashSet<String>>,
        out: &mut BatchOutcome,
    ) -> anyhow::Result<()> {
        let existing = self.existing(groups.iter().flatten().flatten()).await?;
        let mut inserts: Inserts = BTreeMap::new();
        for (ri, gs) in groups.iter_mut().enumerate() {
            if out.fate[ri].is_some() {
                continue;
            }
            for (gi, g) in gs.iter_mut().enumerate() {
                let Some(primary) = g.first() else { continue };
                if out.primary {
                    let spec = self.spec(primary.collection)?;
                    let doc = primary.doc()?;
                    let key = key_of(spec, &doc);
                    let pid = doc.get("_id").cloned().unwrap_or(Bson::Null);
                    let ex = &existing[primary.collection];
                    let seen_in_plan = !self.write
                        && planned
                            .get(primary.collection)
                            .is_some_and(|s| s.contains(&key));
                    match ex.by_key.get(&key) {
                        Some(tid) if *tid != pid => {
                            out.existed += g.len();
                            out.skip_reason[ri].get_or_insert(conflict(spec));
                            continue;
                        }
                        None if seen_in_plan => {
                            out.skip_reason[ri].get_or_insert(format!(
                                "conflict: another legacy record maps to the same {}",
                                spec.model
                            ));
                            continue;
                        }
                        _ => {}
                    }
                }
                for p in g.iter_mut() {
                    let spec = self.spec(p.collection)?;
                    let doc = p.doc()?;
                    if already_there(spec, &existing[p.collection], &doc) {
                        out.existed += 1;
                        continue;
                    }
                    let key = key_of(spec, &doc);
                    if !self.write && !planned.entry(p.collection).or_default().insert(key) {
                        continue;
                    }
                    inserts
                        .entry(p.collection)
                        .or_default()
                        .push((ri, gi, p.take()));
                    out.wrote[ri] += 1;
                }
            }
        }
        if self.write {
            for (ri, _, p) in self.write_inserts(inserts, out, false).await? {
                out.existed += 1;
                out.skip_reason[ri].get_or_insert(same_document(p.collection));
            }
        }
        Ok(())
    }

    /// Inserts `batch`'s primary documents, one chunk at a time (of two records with the
    /// same key the older wins); looks up only what a unique index refused. A group whose
    /// primary the target has under another `_id` is a conflict: its other documents are
    /// dropped. The others follow with [`Self::insert_rest`]; a batch's primaries are
    /// written after those of every batch before it.
    async fn insert_primaries(&self, batch: &mut Batch) -> anyhow::Result<()> {
        let Batch {
            groups,
            out,
            dropped,
            ..
        } = batch;
        let mut primaries: Inserts = BTreeMap::new();
        for (ri, gs) in groups.iter_mut().enumerate() {
            if out.fate[ri].is_some() {
                continue;
            }
            for (gi, g) in gs.iter_mut().enumerate() {
                if let Some(p) = g.first_mut().filter(|_| out.primary) {
                    primaries
                        .entry(p.collection)
                        .or_default()
                        .push((ri, gi, p.take()));
                    out.wrote[ri] += 1;
                }
            }
        }
        let refused = self.write_inserts(primaries, out, false).await?;
        if !refused.is_empty() {
            let existing = self.existing(refused.iter().map(|(_, _, p)| p)).await?;
            for (ri, gi, p) in refused {
                let (c, d) = (p.collection, p.doc()?);
                out.existed += 1;
                let spec = self.spec(c)?;
                let pid = d.get("_id").cloned().unwrap_or(Bson::Null);
                match existing[c].by_key.get(&key_of(spec, &d)) {
                    // Imported before, under the same `_id`: the rest of the record follows.
                    Some(tid) if *tid == pid => {}
                    Some(_) => {
                        out.skip_reason[ri].get_or_insert(conflict(spec));
                        dropped.insert((ri, gi));
                    }
                    None => {
                        out.skip_reason[ri].get_or_insert(same_document(c));
                    }
                }
            }
        }
        Ok(())
    }

    /// Inserts the documents of `batch` other than its primaries (written by
    /// [`Self::insert_primaries`]), keyed under their own record's primary, two chunks at
    /// a time; looks up only what a unique index refused.
    async fn insert_rest(&self, batch: &mut Batch) -> anyhow::Result<()> {
        let Batch {
            groups,
            out,
            dropped,
            ..
        } = batch;
        let mut rest: Inserts = BTreeMap::new();
        for (ri, gs) in groups.iter_mut().enumerate() {
            if out.fate[ri].is_some() {
                continue;
            }
            for (gi, g) in gs.iter_mut().enumerate() {
                if dropped.contains(&(ri, gi)) {
                    out.existed += g.len().saturating_sub(1);
                    continue;
                }
                for p in g.iter_mut().skip(usize::from(out.primary)) {
                    rest.entry(p.collection)
                        .or_default()
                        .push((ri, gi, p.take()));
                    out.wrote[ri] += 1;
                }
            }
        }
        let refused = self.write_inserts(rest, out, true).await?;
        if !refused.is_empty() {
            let existing = self.existing(refused.iter().map(|(_, _, p)| p)).await?;
            for (ri, _, p) in refused {
                let (c, d) = (p.collection, p.doc()?);
                out.existed += 1;
                if !already_there(self.spec(c)?, &existing[c], &d) {
                    out.skip_reason[ri].get_or_insert(same_document(c));
                }
            }
        }
        Ok(())
    }

    /// Writes `inserts`, each chunk journaled first. With `overlap`, two chunks are in
    /// flight at once (their journal entries and inserts); without, one at a time, so that
    /// of two documents with the same key the earlier one is the one written. Outcomes are
    /// taken in chunk order either way. Returns the documents a unique index refused
    /// (already in the target, or another record's), with their record and group; other
    /// failures become their record's fate.
    async fn write_inserts(
        &self,
        inserts: Inserts,
        out: &mut BatchOutcome,
        overlap: bool,
    ) -> anyhow::Result<Vec<(usize, usize, Out)>> {
        use futures::{StreamExt, TryStreamExt};
        let mut refused_by_index = Vec::new();
        // Per collection: the owner (record, group) and document of each item.
        type Owned = (&'static str, Vec<(usize, usize)>, Vec<RawDocumentBuf>);
        let mut colls: Vec<Owned> = Vec::new();
        for (c, items) in inserts {
            let (owners, docs) = items.into_iter().map(|(ri, gi, d)| ((ri, gi), d)).unzip();
            colls.push((c, owners, docs));
        }
        let chunks: Vec<(usize, usize)> = colls
            .iter()
            .enumerate()
            .flat_map(|(k, (_, _, docs))| (0..docs.len()).step_by(1000).map(move |s| (k, s)))
            .collect();
        let colls = &colls;
        let results = futures::stream::iter(chunks)
            .map(|(k, start)| {
                let (c, _, docs) = &colls[k];
                let end = (start + 1000).min(docs.len());
                async move {
                    let r = self.write_chunk(c, &docs[start..end], start).await?;
                    anyhow::Ok((k, r))
                }
            })
            .buffered(if overlap { 2 } else { 1 });
        futures::pin_mut!(results);
        while let Some((k, chunk)) = results.try_next().await? {
            let (c, owners, docs) = &colls[k];
            for (di, why) in chunk.failed {
                let ri = owners[di].0;
                out.wrote[ri] -= 1;
                if out.fate[ri].is_none() {
                    out.fate[ri] = Some(RecordOutcome::Failed(why));
                }
            }
            for di in chunk.duplicates {
                let (ri, gi) = owners[di];
                out.wrote[ri] -= 1;
                refused_by_index.push((
                    ri,
                    gi,
                    Out {
                        collection: c,
                        raw: docs[di].clone(),
                    },
                ));
            }
        }
        Ok(refused_by_index)
    }

    /// Journals and inserts one chunk of `c`'s documents (`docs`, the first at index
    /// `start` of its collection's list). Says which were not written, by that index.
    async fn write_chunk(
        &self,
        c: &'static str,
        docs: &[RawDocumentBuf],
        start: usize,
    ) -> anyhow::Result<ChunkWritten> {
        let mut written_out = ChunkWritten::default();
        // Serialized as mapped (see `Out`), for the journal entry and the insert alike.
        let mut at: Vec<usize> = (start..start + docs.len()).collect();
        let mut raw = std::borrow::Cow::Borrowed(docs);
        // The journal first: a document whose entry cannot be written is not.
        let mut written = crate::journal::Written::default();
        if let Some(j) = &self.journal {
            let (mut refused, w) = j.will_insert_raw(c, &raw, false).await?;
            written = w;
            refused.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            for (i, why) in refused {
                raw.to_mut().remove(i);
                written_out.failed.push((at.remove(i), why));
            }
        }
        self.store.check_fence()?;
        if let Err(failures) = insert_unordered(
            &self.target.collection::<mongodb::bson::RawDocumentBuf>(c),
            &raw,
        )
        .await
        {
            let failures = failures?;
            if let Some(j) = &self.journal {
                let ids: Vec<Bson> = failures
                    .iter()
                    .filter_map(|f| raw[f.index].get("_id").ok().flatten())
                    .filter_map(|id| id.to_raw_bson().try_into().ok())
                    .collect();
                j.not_inserted(&written, &ids).await?;
            }
            for f in failures {
                if f.code == 11000 {
                    written_out.duplicates.push(at[f.index]);
                } else {
                    written_out.failed.push((at[f.index], f.reason));
                }
            }
        }
        Ok(written_out)
    }
}

/// What [`Engine::write_chunk`] did not write, by index in its collection's list.
#[derive(Default)]
struct ChunkWritten {
    /// Refused with this reason (not serializable, refused by the journal or the target).
    failed: Vec<(usize, String)>,
    /// Refused by a unique index: already in the target, or another record's.
    duplicates: Vec<usize>,
}

/// How far a step's import has come, for its verification to trail it.
#[derive(Clone, Default)]
struct Imported {
    /// Past what an earlier verification found missing: from here records are imported
    /// in `_id` order.
    started: bool,
    /// Every record up to this `_id` (in `_id` order) is imported or recorded as failed
    /// or skipped.
    up_to: Option<Bson>,
    /// The whole step is.
    done: bool,
    /// Records the step skipped (final once `done`).
    skipped: u64,
    /// What the step's mappers prepared (none when an earlier attempt finished the step).
    prepared: Option<Arc<Vec<Prepared>>>,
    /// The import sends what its mapping of the step's whole records makes of them
    /// ([`MappedChecks`]): it maps every one, from the first.
    mapped: bool,
}

/// A step whose import started: its index, how far its import is, and what its mapping
/// makes of its records for the verification (see [`Imported::mapped`]).
type Started = (usize, watch::Receiver<Imported>, Arc<MappedQueue>);

impl Imported {
    /// Whether a batch of records ending at `last` (`None`: an empty one) can be verified.
    fn passed(&self, last: Option<&Bson>) -> bool {
        use std::cmp::Ordering::{Equal, Less};
        self.done
            || self.started
                && match (last, &self.up_to) {
                    (None, _) => true,
                    (Some(last), Some(up_to)) => {
                        matches!(crate::id_order::compare(last, up_to), Some(Less | Equal))
                    }
                    (Some(_), None) => false,
                }
    }
}

/// A step's import ended before its verification did (it failed or stopped: it says why).
/// Its progress channel closes without `done` only when the step returns an error, so the
/// run ends with that error, never this one.
#[derive(Debug)]
struct ImportStopped;

impl std::fmt::Display for ImportStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the step's import stopped before its verification ended")
    }
}

impl std::error::Error for ImportStopped {}

/// Waits until `ready` holds for what the import says.
async fn wait_for(
    imported: &mut watch::Receiver<Imported>,
    ready: impl FnMut(&Imported) -> bool,
) -> anyhow::Result<Imported> {
    match imported.wait_for(ready).await {
        Ok(now) => Ok(now.clone()),
        Err(_) => Err(ImportStopped.into()),
    }
}

/// Raw bytes above which a record whose mapper names a list field (see
/// `LegacyMapper::list_field`) is mapped in parts of about this many bytes of its list: a
/// modmail thread of 20,000 messages is never held parsed and mapped whole.
const PART_BYTES: usize = 256 * 1024;

/// How a big record is mapped in parts: its list field and, per part, the offset and
/// number of the list's elements it holds.
struct Parts {
    field: &'static str,
    slices: Vec<(usize, usize)>,
}

/// What the legacy records of a run should have become in the target, per target
/// collection: how many documents, and the wrapping sum of their [`raw_identity_hash`]es
/// (content and `_id`). Order does not matter, so the target can be read through once in
/// its own order and summed alike; equal sums mean the same documents (but for a 64-bit
/// hash collision).
///
/// [`raw_identity_hash`]: crate::clone::raw_identity_hash
#[derive(Debug, Default, Clone, PartialEq)]
struct Sums {
    by_collection: BTreeMap<&'static str, (u64, u64)>,
    /// A document had no `_id` (the server gives it one): sums cannot vouch for it.
    unsure: bool,
}

impl Sums {
    /// Adds one document of `collection` by its
    /// [`raw_identity_hash`](crate::clone::raw_identity_hash).
    fn add(&mut self, collection: &'static str, hash: Option<u64>) {
        let (count, sum) = self.by_collection.entry(collection).or_default();
        *count += 1;
        match hash {
            Some(h) => *sum = sum.wrapping_add(h),
            None => self.unsure = true,
        }
    }

    /// Adds what `other` summed.
    fn absorb(&mut self, other: &Sums) {
        for (c, (n, h)) in &other.by_collection {
            let (count, sum) = self.by_collection.entry(c).or_default();
            *count += n;
            *sum = sum.wrapping_add(*h);
        }
        self.unsure |= other.unsure;
    }
}

/// One record as verified: its `_id`, what became of its mapping, its digests.
struct Checked {
    id: Document,
    failed: bool,
    skipped: bool,
    source: u64,
    target: u64,
    whole: bool,
}

impl Checked {
    /// Counts the record into `tally` when all it became is there (mapped, not skipped,
    /// every document found), as [`Engine::account`] does; `false`, nothing counted, when
    /// it is not: the record is then accounted for by what the run recorded of it.
    fn count_found(&self, tally: &mut VerifyTally) -> bool {
        let found = !self.failed && !self.skipped && self.whole;
        if found {
            tally.add_source(self.source);
            tally.add_found(self.source, self.target);
        }
        found
    }
}

/// What the verification made of some records ([`check_records`]).
#[derive(Default)]
struct Checks {
    /// Per record, in order.
    rows: Vec<Checked>,
    /// Their documents to look up in the target (checking record by record).
    pending: Vec<Digested>,
    /// Their documents summed (the first pass).
    sums: Sums,
}

impl Checks {
    /// Takes the records found out of the rows, counted into a tally: what is left is
    /// the records to account for one by one, most often none. Summed checks only (no
    /// documents pending a lookup, which point into the rows).
    fn take_found(&mut self) -> VerifyTally {
        debug_assert!(self.pending.is_empty(), "rows with lookups pending");
        let mut tally = VerifyTally::default();
        self.rows.retain(|row| !row.count_found(&mut tally));
        // Not a batch's worth of room kept for the few left.
        self.rows.shrink_to_fit();
        tally
    }
}

/// Maps `records` as the import does and reduces what each becomes to what its
/// verification needs (CPU only, see [`check_mapped`]). `offset`: of a big record's part,
/// its first element's; `skip`: documents of each group left out (a later part's primary).
fn check_records(
    step: &Step,
    prepared: &[Prepared],
    ctx @ (registry, _): (&Registry, DateTime),
    records: impl IntoIterator<Item = anyhow::Result<Document>>,
    (offset, skip): (usize, usize),
    summing: bool,
) -> anyhow::Result<Checks> {
    let mut out = Checks::default();
    for record in records {
        let record = record?;
        let m = map_record(step, prepared, ctx, &record, offset)?;
        let id = only_id(&record);
        drop(record);
        check_mapped(registry, (id, &m), skip, summing, &mut out)?;
    }
    Ok(out)
}

/// Reduces what one record (its `_id` document) became to what its verification needs,
/// onto `out`: with `summing`, each document added to the sums and counted as found as it
/// is (the first pass's finding stands only if the target adds up to the sums); else each
/// reduced to its identity, for a lookup, its hash as serialized added to its record's
/// digest. `skip`: documents of each group left out (a later part's primary).
fn check_mapped(
    registry: &Registry,
    (id, m): (Document, &MappedRecord),
    skip: usize,
    summing: bool,
    out: &mut Checks,
) -> anyhow::Result<()> {
    let mut row = Checked {
        id,
        failed: m.failed.is_some(),
        skipped: m.groups.iter().all(Vec::is_empty) && m.skip.is_some(),
        source: 0,
        target: 0,
        whole: true,
    };
    if m.failed.is_none() {
        let ri = out.rows.len();
        for g in &m.groups {
            for (i, p) in g.iter().enumerate().skip(skip) {
                let raw = &p.raw;
                let h = raw_content_hash(raw, &[])?;
                row.source = row.source.wrapping_add(h);
                if summing {
                    row.target = row.target.wrapping_add(h);
                    out.sums.add(p.collection, with_id_hash(h, raw)?);
                } else {
                    out.pending.push(Digested {
                        ri,
                        i,
                        collection: p.collection,
                        identity: identity(spec_in(registry, p.collection)?, &p.doc()?),
                    });
                }
            }
        }
    }
    out.rows.push(row);
    Ok(())
}

/// The spec of `collection`, which a mapper produced a document for.
fn spec_in<'a>(registry: &'a Registry, collection: &str) -> anyhow::Result<&'a CollectionSpec> {
    registry.collection(collection).with_context(|| {
        format!("a legacy mapper produced a document for unknown collection {collection}")
    })
}

/// `sums`, poisoned or not (a panic elsewhere leaves them whole).
fn lock<T>(sums: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    sums.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `_id` of the last of `records`.
fn last_id(records: &[mongodb::bson::RawDocumentBuf]) -> anyhow::Result<Option<Bson>> {
    Ok(match records.last() {
        Some(r) => r.get("_id")?.map(raw_to_bson).transpose()?,
        None => None,
    })
}

/// The parts a big record is mapped in: its list field and, per part, the offset and
/// number of the list's elements it holds (about [`PART_BYTES`] each). `None` when the
/// record is mapped whole: small, its step with several mappers or one naming no list, or
/// the field not a list (the mapper then says what is wrong).
fn parts_of(step: &Step, raw: &mongodb::bson::RawDocument) -> anyhow::Result<Option<Parts>> {
    use mongodb::bson::RawBsonRef;
    let [(_, part)] = step.parts.as_slice() else {
        return Ok(None);
    };
    let Some(field) = part.mapper.list_field() else {
        return Ok(None);
    };
    if raw.as_bytes().len() <= PART_BYTES {
        return Ok(None);
    }
    let Ok(Some(RawBsonRef::Array(list))) = raw.get(field) else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    let (mut start, mut n, mut bytes) = (0, 0, 0);
    for el in list {
        bytes += match el? {
            RawBsonRef::Document(d) => d.as_bytes().len(),
            RawBsonRef::String(s) => s.len(),
            _ => 16,
        };
        n += 1;
        if bytes >= PART_BYTES {
            parts.push((start, n));
            (start, n, bytes) = (start + n, 0, 0);
        }
    }
    if n > 0 || parts.is_empty() {
        parts.push((start, n));
    }
    Ok(Some(Parts {
        field,
        slices: parts,
    }))
}

/// A part of a big record: its fields parsed, `field` holding only the elements
/// `offset..offset + count` of its list.
fn part_of(
    raw: &mongodb::bson::RawDocument,
    field: &str,
    offset: usize,
    count: usize,
) -> anyhow::Result<Document> {
    use mongodb::bson::RawBsonRef;
    let mut out = Document::new();
    for el in raw.iter() {
        let (k, v) = el?;
        let value = match v {
            RawBsonRef::Array(list) if k == field => Bson::Array(
                list.into_iter()
                    .skip(offset)
                    .take(count)
                    .map(|e| raw_to_bson(e?))
                    .collect::<anyhow::Result<_>>()?,
            ),
            other => raw_to_bson(other)?,
        };
        out.insert(k, value);
    }
    Ok(out)
}

/// Runs `record` through every mapper of `step` (`now` for their defaults and expiry) and
/// checks that each produced document is of a collection its plugin owns.
fn map_record(
    step: &Step,
    prepared: &[Prepared],
    (registry, now): (&Registry, DateTime),
    record: &Document,
    offset: usize,
) -> anyhow::Result<MappedRecord> {
    let mut out = MappedRecord::default();
    for ((plugin, part), prep) in step.parts.iter().zip(prepared) {
        let ctx = MapContext {
            prepared: prep.as_ref(),
            now,
            offset,
        };
        match part.mapper.map(record, &ctx) {
            Ok(Mapped::Docs(docs)) => {
                let mut group = Vec::with_capacity(docs.len());
                for d in docs {
                    let owner = registry.owner(d.collection);
                    anyhow::ensure!(
                        owner == Some(*plugin),
                        "plugin {plugin} produced a document for {}, which it does not own",
                        d.collection
                    );
                    match crate::raw::to_raw(&d.doc) {
                        Ok(raw) => group.push(Out {
                            collection: d.collection,
                            raw,
                        }),
                        Err(e) => {
                            out.failed = Some(format!("not written: {e}"));
                            break;
                        }
                    }
                }
                if out.failed.is_some() {
                    break;
                }
                out.groups.push(group);
            }
            Ok(Mapped::Skip(why)) => {
                out.skip.get_or_insert(why);
            }
            Ok(Mapped::Nothing) => {}
            Err(why) => {
                out.failed = Some(why);
                break;
            }
        }
    }
    Ok(out)
}

/// KiB of legacy records being mapped at once by one side of the run (memory: what they
/// map to, held serialized, is about as much again). A batch bigger than all of it (one
/// long thread) takes all of it, and is mapped alone.
struct Room {
    /// All of it.
    kib: u32,
    /// What is free.
    free: tokio::sync::Semaphore,
}

impl Room {
    fn new(bytes: usize) -> Self {
        let kib = (bytes / 1024).max(1) as u32;
        Self {
            kib,
            free: tokio::sync::Semaphore::new(kib as usize),
        }
    }

    /// The room `records` take: their KiB, at most all of it.
    fn of(&self, records: &[mongodb::bson::RawDocumentBuf]) -> u32 {
        let bytes: usize = records.iter().map(|r| r.as_bytes().len()).sum();
        (bytes.div_ceil(1024) as u32).clamp(1, self.kib)
    }

    /// Waits until there is room for `records`.
    async fn acquire(
        &self,
        records: &[mongodb::bson::RawDocumentBuf],
    ) -> anyhow::Result<tokio::sync::SemaphorePermit<'_>> {
        Ok(self.free.acquire_many(self.of(records)).await?)
    }

    /// [`Self::acquire`] if there is room now.
    fn try_acquire(
        &self,
        records: &[mongodb::bson::RawDocumentBuf],
    ) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.free.try_acquire_many(self.of(records)).ok()
    }
}

/// The batch after the one being written.
enum Next<'a> {
    /// Being mapped aside, with its room.
    Mapping(Mapping<MappedBatch>, tokio::sync::SemaphorePermit<'a>),
    /// Read (or its read failed), not mapped yet: there was no room.
    Read(anyhow::Result<Vec<mongodb::bson::RawDocumentBuf>>),
}

/// A batch of legacy records as read, split and mapped: its records' `_id`s and what the
/// mappers made of each, and the big records to be mapped part by part (see [`parts_of`]).
struct MappedBatch {
    /// The `_id` of the batch's last record (its checkpoint).
    last: Option<Bson>,
    /// The records mapped whole, reduced to their `_id`s, and what each became.
    whole: (Vec<Document>, Vec<MappedRecord>),
    /// The big records, with their parts.
    big: Vec<BigRecord>,
    /// What the mapping of its whole records adds to the step's verification, when the
    /// verification takes it from the import (see [`MappedChecks`]).
    checks: Option<MappedChecks>,
}

/// What the import's mapping of a step's whole records adds to its verification
/// ([`MappedChecks`]), merged as it comes: however far the verification lags behind the
/// import, one entry waits here, not one a batch.
#[derive(Default)]
struct MappedQueue {
    /// What waits, and whether the import has ended.
    state: std::sync::Mutex<(Option<MappedChecks>, bool)>,
    ready: tokio::sync::Notify,
}

impl MappedQueue {
    /// Adds a batch's checks to what waits.
    fn send(&self, checks: MappedChecks) {
        {
            let mut state = lock(&self.state);
            match &mut state.0 {
                Some(waiting) => waiting.merge(checks),
                None => state.0 = Some(checks),
            }
        }
        self.ready.notify_one();
    }

    /// What waits, once there is some; `None` once the import has ended and all was
    /// taken.
    async fn next(&self) -> Option<MappedChecks> {
        loop {
            {
                let mut state = lock(&self.state);
                if let Some(checks) = state.0.take() {
                    return Some(checks);
                }
                if state.1 {
                    return None;
                }
            }
            // A send between the look above and this wait leaves a permit: not missed.
            self.ready.notified().await;
        }
    }
}

/// Ends a [`MappedQueue`] when dropped: the import has ended (done, failed or stopped).
struct QueueCloser(Arc<MappedQueue>);

impl Drop for QueueCloser {
    fn drop(&mut self) {
        lock(&self.0.state).1 = true;
        self.0.ready.notify_one();
    }
}

/// What the import's mapping of one batch's whole records adds to its step's first
/// verification pass, in place of the verification mapping them again (see
/// [`Engine::verify_step`]): per record what became of it and its documents' sums, and
/// the records' own [`RecordSums`], which the verification's own read of the source has
/// to match.
struct MappedChecks {
    /// The `_id` of the batch's last record.
    last: Option<Bson>,
    /// Its whole records found (all of them mapped, not skipped), counted, not a row a
    /// record: what a batch adds waits in its step's [`MappedQueue`] until the step's
    /// verification takes it up, after the two steps being verified (see
    /// [`Engine::verify`]).
    found: VerifyTally,
    /// Sums of its whole records' documents ([`check_mapped`] with sums), and the rows of
    /// those not in `found`.
    checks: Checks,
    /// Its whole records, as read.
    records: RecordSums,
}

impl MappedChecks {
    /// Adds a later batch's checks: one entry for both, ending where the later one ends.
    fn merge(&mut self, later: MappedChecks) {
        if later.last.is_some() {
            self.last = later.last;
        }
        self.found.absorb(later.found);
        self.checks.rows.extend(later.checks.rows);
        self.checks.sums.absorb(&later.checks.sums);
        self.records.absorb(later.records);
    }
}

/// How many legacy records, and the wrapping sum of a hash of each one's bytes as read:
/// what tells the verification that the records the import mapped are the source's
/// in-scope records as they are now, each once.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RecordSums {
    count: u64,
    sum: u64,
}

impl RecordSums {
    /// Adds one record.
    fn add(&mut self, raw: &mongodb::bson::RawDocument) {
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(raw.as_bytes());
        self.count += 1;
        self.sum = self.sum.wrapping_add(h.finish());
    }

    /// Adds what `other` summed.
    fn absorb(&mut self, other: RecordSums) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// A record mapped in parts (see [`parts_of`]), its later parts checked already.
struct BigRecord {
    raw: Arc<mongodb::bson::RawDocumentBuf>,
    parts: Parts,
    /// The first later part its mappers refuse: the record fails, nothing of it written.
    refused: Option<usize>,
}

/// Splits and maps one batch (CPU only; see [`MappedBatch`]). With `checking`, also
/// reduces what its whole records became to what the step's verification needs.
fn map_batch(
    step: &Step,
    prepared: &[Prepared],
    (registry, now): (&Registry, DateTime),
    records: Vec<mongodb::bson::RawDocumentBuf>,
    checking: bool,
) -> anyhow::Result<MappedBatch> {
    let last = last_id(&records)?;
    let mut big = Vec::new();
    let mut whole = Vec::with_capacity(records.len());
    for r in records {
        match parts_of(step, &r)? {
            Some(parts) => {
                // Every part after the first mapped once beforehand, so a bad element
                // fails the record before anything of it is written.
                let mut refused = None;
                for (k, &(offset, count)) in parts.slices.iter().enumerate().skip(1) {
                    let part = part_of(&r, parts.field, offset, count)?;
                    if map_record(step, prepared, (registry, now), &part, offset)?
                        .failed
                        .is_some()
                    {
                        refused = Some(k);
                        break;
                    }
                }
                big.push(BigRecord {
                    raw: Arc::new(r),
                    parts,
                    refused,
                });
            }
            None => whole.push(r),
        }
    }
    let mut read = RecordSums::default();
    if checking {
        for r in &whole {
            read.add(r);
        }
    }
    let parsed = whole.iter().map(|r| anyhow::Ok(crate::raw::document(r)?));
    let whole = map_records(step, prepared, (registry, now), parsed, 0)?;
    let checks = match checking {
        true => {
            let mut checks = Checks::default();
            for (id, m) in whole.0.iter().zip(&whole.1) {
                check_mapped(registry, (id.clone(), m), 0, true, &mut checks)?;
            }
            Some(MappedChecks {
                last: last.clone(),
                found: checks.take_found(),
                checks,
                records: read,
            })
        }
        false => None,
    };
    Ok(MappedBatch {
        last,
        whole,
        big,
        checks,
    })
}

/// Each of `records` run through [`map_record`], and the records reduced to their `_id`s
/// (all that is needed of them from here on: a long thread is big). Each is taken, mapped
/// and let go before the next: records parsed as they are taken (a batch read raw) are
/// never all held parsed, which is several times their bytes, in memory taken afresh for
/// each batch.
fn map_records(
    step: &Step,
    prepared: &[Prepared],
    ctx: (&Registry, DateTime),
    records: impl IntoIterator<Item = anyhow::Result<Document>>,
    offset: usize,
) -> anyhow::Result<(Vec<Document>, Vec<MappedRecord>)> {
    let mut out = (Vec::new(), Vec::new());
    for record in records {
        let record = record?;
        out.1
            .push(map_record(step, prepared, ctx, &record, offset)?);
        out.0.push(only_id(&record));
    }
    Ok(out)
}

/// A record reduced to its `_id`.
fn only_id(record: &Document) -> Document {
    match record.get("_id") {
        Some(id) => doc! { "_id": id.clone() },
        None => Document::new(),
    }
}

/// A produced document as its verification holds it until the target is read: its
/// record, its place in its group, its collection and identity (`_id` and unique key).
struct Digested {
    ri: usize,
    i: usize,
    collection: &'static str,
    identity: Document,
}

/// Documents to insert, per collection: (record, group of the record, document).
type Inserts = BTreeMap<&'static str, Vec<(usize, usize, RawDocumentBuf)>>;

/// A document a mapper produced, serialized as soon as it is made: what a batch holds
/// until it is written is its bytes, several times smaller than the parsed [`Document`]
/// (its fields' map, keys and values each allocated apart), and the journal, the insert
/// and the verification's sums all take the same bytes, serialized once.
struct Out {
    /// Its collection in the target.
    collection: &'static str,
    /// The document (with its `_id`).
    raw: RawDocumentBuf,
}

impl Out {
    /// The document parsed again, where its keys are looked at (a record imported
    /// before, a conflict, a verification record by record): not on the path of a first
    /// import.
    fn doc(&self) -> anyhow::Result<Document> {
        Ok(crate::raw::document(&self.raw)?)
    }

    /// The bytes, leaving an empty document.
    fn take(&mut self) -> RawDocumentBuf {
        std::mem::replace(&mut self.raw, RawDocumentBuf::new())
    }
}

/// A batch of the step being written, and what is left of it to write.
struct Pending {
    /// Its number in this attempt at the step (from 1).
    number: u64,
    /// The `_id` of its last record (its checkpoint).
    last: Option<Bson>,
    /// Its records mapped whole.
    batch: Batch,
    /// Its big records, written after the others, part by part.
    big: Vec<BigRecord>,
    /// Whether its primary documents are written already ([`Engine::insert_primaries`]).
    primed: bool,
}

/// A batch written: its checkpoint and what failed or was skipped with a reason.
struct Finished {
    last: Option<Bson>,
    errors: Vec<RecordError>,
    skips: Vec<RecordError>,
}

/// A batch of mapped records being written: each record's groups of produced documents
/// (taken as they are written) and what became of it so far.
struct Batch {
    /// The records, reduced to their `_id`s.
    records: Vec<Document>,
    /// Per record, its groups of produced documents (one group per mapper).
    groups: Vec<Vec<Vec<Out>>>,
    out: BatchOutcome,
    /// How many documents the batch's records produced.
    produced: usize,
    /// The groups (record, group) whose primary the target has under another `_id`.
    dropped: HashSet<(usize, usize)>,
}

impl Batch {
    /// `records` and what the mappers made of each; `offset` > 0 for a later part of a
    /// record mapped in parts (its primary document came with the first).
    fn of((records, mapped): (Vec<Document>, Vec<MappedRecord>), offset: usize) -> Self {
        let mut groups: Vec<Vec<Vec<Out>>> = Vec::with_capacity(records.len());
        let mut fate: Vec<Option<RecordOutcome>> = Vec::with_capacity(records.len());
        let mut skip_reason: Vec<Option<String>> = Vec::with_capacity(records.len());
        for m in mapped {
            skip_reason.push(m.skip);
            match m.failed {
                Some(why) => {
                    fate.push(Some(RecordOutcome::Failed(why)));
                    groups.push(Vec::new());
                }
                None => {
                    fate.push(None);
                    groups.push(m.groups);
                }
            }
        }
        if offset > 0 {
            for g in groups.iter_mut().flatten().filter(|g| !g.is_empty()) {
                g.remove(0);
            }
        }
        let produced = groups.iter().flatten().map(Vec::len).sum();
        Self {
            out: BatchOutcome {
                wrote: vec![0; records.len()],
                fate,
                skip_reason,
                existed: 0,
                primary: offset == 0,
            },
            records,
            groups,
            produced,
            dropped: HashSet::new(),
        }
    }
}

/// What one batch's writes did to its records.
struct BatchOutcome {
    /// Documents written per record.
    wrote: Vec<u64>,
    /// A record's failure, once it has one.
    fate: Vec<Option<RecordOutcome>>,
    /// Why a record that wrote nothing was skipped.
    skip_reason: Vec<Option<String>>,
    /// Produced documents the target had already (or refused as another's).
    existed: usize,
    /// Whether each group starts with its record's primary document (not so in the later
    /// parts of a record mapped in parts: the first part had it).
    primary: bool,
}

/// Whether the target has `doc`: by its key (by `_id` where the collection has no key).
fn already_there(spec: &CollectionSpec, existing: &crate::clone::Existing, doc: &Document) -> bool {
    existing.by_key.contains_key(&key_of(spec, doc))
        || (spec.unique_key.is_empty() && existing.by_id.contains(&IdKey::of_doc(doc)))
}

/// A record whose primary document the target has under another `_id`.
fn conflict(spec: &CollectionSpec) -> String {
    format!(
        "conflict: the target already has a {} with the same key ({}) that was not imported from this record",
        spec.model,
        spec.unique_key.join(", ")
    )
}

/// A document a unique index refused that the target does not have as it is: another
/// record of the old bot makes the same one.
fn same_document(collection: &str) -> String {
    format!("conflict: another legacy record maps to the same {collection} document")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch as the reader closes it: records of about `record_bytes` each until they
    /// reach `LEGACY_BATCH_BYTES`, the last one taking it over.
    fn batch(record_bytes: usize) -> Vec<mongodb::bson::RawDocumentBuf> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while bytes < LEGACY_BATCH_BYTES {
            let r = mongodb::bson::RawDocumentBuf::from_document(
                &doc! { "_id": out.len() as i64, "pad": "x".repeat(record_bytes) },
            )
            .unwrap();
            bytes += r.as_bytes().len();
            out.push(r);
        }
        out
    }

    #[test]
    fn the_next_batch_of_threads_is_mapped_aside_while_one_is_written() {
        let room = Room::new(IMPORT_MAPPING_BYTES);
        for record_bytes in [10_000, 100_000, PART_BYTES - 100] {
            let written = batch(record_bytes);
            assert!(written.iter().map(|r| r.as_bytes().len()).sum::<usize>() > LEGACY_BATCH_BYTES);
            let held = room
                .try_acquire(&written)
                .expect("room for the batch written");
            let aside = room.try_acquire(&batch(record_bytes));
            assert!(
                aside.is_some(),
                "no room to map a batch of {record_bytes}-byte records aside"
            );
            // A third waits: what is mapped at once stays bounded.
            assert!(room.try_acquire(&batch(record_bytes)).is_none());
            drop((held, aside));
        }
    }

    #[test]
    fn a_batch_waiting_for_its_verification_holds_only_the_records_not_found() {
        let row = |n: i64, (failed, skipped, whole): (bool, bool, bool), target: u64| Checked {
            id: doc! { "_id": n },
            failed,
            skipped,
            source: n as u64,
            target,
            whole,
        };
        let mut checks = Checks::default();
        for n in 0..2000 {
            // One found record whose documents came out different.
            let target = if n == 7 { 1 << 40 } else { n as u64 };
            checks.rows.push(row(n, (false, false, true), target));
        }
        checks.rows.push(row(2000, (true, false, true), 0));
        checks.rows.push(row(2001, (false, true, true), 0));
        checks.rows.push(row(2002, (false, false, false), 0));
        let found = checks.take_found();
        assert_eq!((found.source, found.found), (2000, 2000));
        assert_eq!((found.matching, found.differing), (1999, 1));
        assert_eq!(found.source_digest, (0..2000u64).sum::<u64>());
        assert_eq!(
            found.target_digest,
            (0..2000u64).sum::<u64>() - 7 + (1 << 40)
        );
        // The failed, the skipped and the one not found stay, to be looked up in what the
        // run recorded; the room of 2003 rows goes.
        let left: Vec<_> = checks
            .rows
            .iter()
            .map(|r| r.id.get_i64("_id").unwrap())
            .collect();
        assert_eq!(left, [2000, 2001, 2002]);
        assert!(checks.rows.capacity() < 10, "{}", checks.rows.capacity());
    }

    /// A batch's checks: `found` records found, one failed row with `_id` `failed`, its
    /// sums, its last `_id`.
    fn batch_checks(last: i64, found: u64, failed: i64) -> MappedChecks {
        let mut tally = VerifyTally::default();
        for n in 0..found {
            tally.add_source(n);
            tally.add_found(n, n);
        }
        let mut checks = Checks::default();
        checks.rows.push(Checked {
            id: doc! { "_id": failed },
            failed: true,
            skipped: false,
            source: 0,
            target: 0,
            whole: true,
        });
        checks.sums.add("produced", Some(found));
        let mut records = RecordSums::default();
        records.add(&mongodb::bson::rawdoc! { "_id": last });
        MappedChecks {
            last: Some(Bson::Int64(last)),
            found: tally,
            checks,
            records,
        }
    }

    #[tokio::test]
    async fn batches_a_lagging_verification_has_not_taken_wait_as_one() {
        let queue = Arc::new(MappedQueue::default());
        let closer = QueueCloser(queue.clone());
        for (last, found, failed) in [(100, 100, 5), (200, 99, 150), (300, 100, 250)] {
            queue.send(batch_checks(last, found, failed));
        }
        // Three batches sent before the verification looked: one entry, all three in it.
        let one = queue.next().await.expect("checks waiting");
        assert_eq!(one.last, Some(Bson::Int64(300)));
        assert_eq!((one.found.source, one.found.found), (299, 299));
        let failed: Vec<_> = one
            .checks
            .rows
            .iter()
            .map(|r| r.id.get_i64("_id").unwrap())
            .collect();
        assert_eq!(failed, [5, 150, 250]);
        assert_eq!(one.checks.sums.by_collection["produced"], (3, 299));
        assert_eq!(one.records.count, 3);
        // A verification waiting is woken by the next batch, then by the import's end.
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move {
                let next = queue.next().await.map(|c| c.last);
                (next, queue.next().await.is_none())
            }
        });
        tokio::task::yield_now().await;
        queue.send(batch_checks(400, 1, 399));
        drop(closer);
        let (next, ended) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the verification was woken")
            .unwrap();
        assert_eq!(next, Some(Some(Bson::Int64(400))));
        assert!(ended);
    }
}
