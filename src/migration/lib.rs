//! Migration: Instance Clone and Legacy Import, with their shared run machinery.
//!
//! A run is a record in `migration_runs` (id, mode, options, status, per-step results,
//! errors, verification). Progress is a stream of [`ProgressEvent`]s to a [`ProgressSink`]
//! on top of that record: the CLI draws bars from them, the WebSocket gateway forwards them
//! to owners. Only one run is active at a time across every process sharing the database
//! (a lease in `migration_locks`, see [`runs`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::Document;
use serde::{Deserialize, Serialize};

pub mod clone;
pub mod id_order;
pub mod journal;
pub mod legacy;
mod parent_ids;
pub mod raw;
pub mod runs;
mod schedule;
pub mod source;
pub mod undo;

/// Which kind of migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationMode {
    /// Old bot → Heimdall.
    Legacy,
    /// Heimdall → Heimdall.
    Clone,
    /// A run undone from its journal.
    Undo,
}

impl MigrationMode {
    /// `legacy` or `clone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Clone => "clone",
            Self::Undo => "undo",
        }
    }
}

/// The kinds of progress event, named as on the wire (by [`EventKind::name`] alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A step begins.
    StepStart,
    /// Records processed inside a step.
    StepProgress,
    /// A step ended.
    StepComplete,
    /// The run ended (completed, cancelled).
    Complete,
    /// The run failed.
    Error,
    /// No progress for a while (the source or the target stopped answering?); the next
    /// progress event says it moves again.
    Stalled,
    /// Following the source's changes (`--follow`): the lag and what was applied.
    Following,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        Self::StepStart,
        Self::StepProgress,
        Self::StepComplete,
        Self::Complete,
        Self::Error,
        Self::Stalled,
        Self::Following,
    ];

    /// The wire name, e.g. `migration:step_start`.
    pub fn name(self) -> &'static str {
        match self {
            Self::StepStart => "migration:step_start",
            Self::StepProgress => "migration:step_progress",
            Self::StepComplete => "migration:step_complete",
            Self::Complete => "migration:complete",
            Self::Error => "migration:error",
            Self::Stalled => "migration:stalled",
            Self::Following => "migration:following",
        }
    }

    /// The kind with wire name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown migration event {name:?}")))
    }
}

/// One progress event: `{runId, mode, step, label, plugin, completed, total, recordIndex?,
/// recordTotal?, result?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressEvent {
    /// What happened.
    #[serde(skip)]
    pub kind: Option<EventKind>,
    /// The run.
    pub run_id: String,
    /// `legacy` or `clone`.
    pub mode: MigrationMode,
    /// Step number (1-based; 0 for run-level events).
    pub step: u16,
    /// Step label.
    pub label: String,
    /// Plugin owning the step (empty on run-level events).
    pub plugin: String,
    /// Steps completed so far.
    pub completed: u16,
    /// Steps in the run.
    pub total: u16,
    /// Records processed in this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_index: Option<u64>,
    /// Records in this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_total: Option<u64>,
    /// On record-progress events: how fast the step goes and when it should end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<Pace>,
    /// On `migration:stalled`: since when nothing moved, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_since: Option<i64>,
    /// The step's counts so far, on record-progress events (on `migration:following`: the
    /// whole run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<StepCounts>,
    /// On `migration:following`: how far behind the source the target is, in milliseconds
    /// (0: caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// On record-progress and `migration:stalled` events: the collection being read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// On record-progress events: the whole run's pace — time since this attempt began,
    /// documents per second over every step, and the time left for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_pace: Option<Pace>,
    /// The step's or run's result, on completion events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// How fast a step goes: time spent, records per second, and the time left at that pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pace {
    /// Time since the step began, in milliseconds.
    pub elapsed_ms: u64,
    /// Records per second so far.
    pub per_second: f64,
    /// Time left at this pace, in milliseconds (`None` before the first record).
    pub eta_ms: Option<u64>,
}

impl Pace {
    /// The pace of a step that began at `started` and has done `done` of `total` records.
    pub fn of(started: Instant, done: u64, total: u64) -> Self {
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        let per_second = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let left = total.saturating_sub(done);
        let eta_ms = (per_second > 0.0).then(|| (left as f64 / per_second * 1000.0) as u64);
        Self {
            elapsed_ms: elapsed.as_millis() as u64,
            per_second: (per_second * 10.0).round() / 10.0,
            eta_ms,
        }
    }
}

/// A duration as owners read it: `m:ss`, or `h:mm:ss`.
pub fn clock(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The whole run's progress, for its pace: documents done of all, over this attempt.
#[derive(Debug)]
pub struct RunClock {
    started: Instant,
    total: std::sync::atomic::AtomicU64,
    done_before: std::sync::atomic::AtomicU64,
    per_step: std::sync::Mutex<Vec<u64>>,
}

impl RunClock {
    /// A clock for `steps` steps, started now.
    pub fn new(steps: usize) -> Self {
        Self {
            started: Instant::now(),
            total: 0.into(),
            done_before: 0.into(),
            per_step: std::sync::Mutex::new(vec![0; steps]),
        }
    }

    /// The run's documents in all (`total`) and those done before this attempt.
    pub fn set_total(&self, total: u64, done_before: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.total.store(total, SeqCst);
        self.done_before.store(done_before, SeqCst);
    }

    /// Step `index` has now done `done` documents (all attempts).
    pub fn step(&self, index: usize, done: u64) {
        if let Some(d) = self.per_step.lock().expect("run clock").get_mut(index) {
            *d = done;
        }
    }

    /// The run's pace now.
    pub fn pace(&self) -> Pace {
        use std::sync::atomic::Ordering::SeqCst;
        let done: u64 = self.per_step.lock().expect("run clock").iter().sum();
        let before = self.done_before.load(SeqCst);
        Pace::of(
            self.started,
            done.saturating_sub(before),
            self.total.load(SeqCst).saturating_sub(before),
        )
    }
}

/// What a step has done so far: documents imported (inserted or overwritten), skipped and
/// failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Inserted or overwritten.
    pub imported: u64,
    /// Skipped (already there, or not to be copied).
    pub skipped: u64,
    /// Failed (recorded with their reason).
    pub failed: u64,
    /// Sync: updated to the source's content (also in `imported`).
    #[serde(default)]
    pub updated: u64,
    /// Sync: gone from the source since an earlier run copied them (kept, listed).
    #[serde(default)]
    pub gone: u64,
    /// Undo: removed (the run had inserted them).
    #[serde(default)]
    pub removed: u64,
    /// Undo: put back as they were (the run had replaced them).
    #[serde(default)]
    pub restored: u64,
    /// Undo: changed since the run wrote them, kept and listed.
    #[serde(default)]
    pub conflicts: u64,
}

impl StepCounts {
    /// Adds one collection's counts.
    pub fn add(&mut self, c: &runs::CollectionResult) {
        self.imported += c.inserted + c.overwritten + c.updated;
        self.skipped += c.skipped;
        self.failed += c.failed;
        self.updated += c.updated;
        self.gone += c.gone;
        self.removed += c.removed;
        self.restored += c.restored;
        self.conflicts += c.conflicts;
    }

    /// The counts of these collections.
    pub fn of<'a>(cs: impl IntoIterator<Item = &'a runs::CollectionResult>) -> Self {
        let mut out = Self::default();
        for c in cs {
            out.add(c);
        }
        out
    }
}

impl ProgressEvent {
    /// The event's kind (always set by the engine).
    pub fn kind(&self) -> EventKind {
        self.kind.unwrap_or(EventKind::StepProgress)
    }
}

/// Where progress goes: the CLI's bars, the WebSocket gateway, a test's recorder.
pub trait ProgressSink: Send + Sync {
    /// Receives one event. Must not block for long.
    fn emit(&self, event: &ProgressEvent);

    /// The run moved without an event to send (a verification reading the target once
    /// every step's import has ended): a watch for stalls counts it as progress. Nothing
    /// by default.
    fn alive(&self) {}
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl ProgressSink for NullSink {
    fn emit(&self, _event: &ProgressEvent) {}
}

/// Watches a run's progress: passes every event on, and when none came for `after`, sends
/// `migration:stalled` once (the last event's step, and since when), until progress resumes.
pub struct StallWatch {
    inner: Arc<dyn ProgressSink>,
    after: Duration,
    last: std::sync::Mutex<(Instant, Option<ProgressEvent>, bool)>,
}

impl StallWatch {
    /// A watch over `inner` that calls `after` of silence a stall.
    pub fn new(inner: Arc<dyn ProgressSink>, after: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            after,
            last: std::sync::Mutex::new((Instant::now(), None, false)),
        })
    }

    /// Checks for a stall now and then, forever (the run drops it when it ends).
    async fn watch(&self) {
        let tick = (self.after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let stalled = {
                let mut last = self.last.lock().expect("stall watch");
                let (at, event, reported) = &mut *last;
                match event {
                    Some(e) if !*reported && at.elapsed() >= self.after => {
                        *reported = true;
                        let since = std::time::SystemTime::now()
                            .checked_sub(at.elapsed())
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_millis() as i64);
                        let mut ev = e.clone();
                        ev.kind = Some(EventKind::Stalled);
                        ev.stalled_since = since;
                        ev.result = None;
                        Some(ev)
                    }
                    _ => None,
                }
            };
            if let Some(ev) = stalled {
                tracing::warn!(run = %ev.run_id, step = ev.step, label = %ev.label, after = ?self.after, "migration stalled: no progress");
                self.inner.emit(&ev);
            }
        }
    }
}

impl ProgressSink for StallWatch {
    fn emit(&self, event: &ProgressEvent) {
        *self.last.lock().expect("stall watch") = (Instant::now(), Some(event.clone()), false);
        self.inner.emit(event);
    }

    fn alive(&self) {
        let mut last = self.last.lock().expect("stall watch");
        (last.0, last.2) = (Instant::now(), false);
    }
}

/// `HEIMDALL_MIGRATION_STALL_SECS` (default 30): how long a run may make no progress before
/// `migration:stalled` is sent.
pub fn stall_after_from_env() -> Duration {
    Duration::from_secs(positive_from_env("HEIMDALL_MIGRATION_STALL_SECS", 30) as u64)
}

/// The positive whole number in environment variable `name`, else `default` (the host's
/// configuration refuses any other value at start).
pub(crate) fn positive_from_env(name: &'static str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| heimdall_base::settings::parse_positive(name, &v).ok())
        .unwrap_or(default)
}

/// Sends every event to several sinks.
pub struct FanOut(pub Vec<Arc<dyn ProgressSink>>);

impl ProgressSink for FanOut {
    fn emit(&self, event: &ProgressEvent) {
        for s in &self.0 {
            s.emit(event);
        }
    }

    fn alive(&self) {
        for s in &self.0 {
            s.alive();
        }
    }
}

/// Lets at most `per_second` record-progress events through; the first and the last of a
/// step always pass.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// At most `per_second` events a second.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            last: None,
        }
    }

    /// Whether an event at `index` of `total` should be sent now.
    pub fn allow(&mut self, index: u64, total: u64) -> bool {
        let now = Instant::now();
        let due = match self.last {
            None => true,
            Some(t) => now.duration_since(t) >= self.interval,
        };
        if due || index >= total {
            self.last = Some(now);
            true
        } else {
            false
        }
    }
}

/// A named point where a test stops a run deterministically, as a cancel would, or lets
/// something happen there: after `after_batches` batches of `collection` in one attempt
/// (the checkpoint of the last one saved). Set only by tests, through
/// [`clone::MigrationEnv::fail_point`]; a release build never acts on one, whatever is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailPoint {
    /// The collection read (clone: the catalog's name; legacy: the old bot's collection).
    pub collection: String,
    /// How many of its batches run before it.
    pub after_batches: u64,
    /// What happens there.
    pub kind: FailKind,
}

/// What a [`FailPoint`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Stops the run once batch `after_batches` is handled.
    Stop,
    /// Clone only: stops inside batch `after_batches` instead, once its journal entry is
    /// written and before its documents are (where a crash leaves an entry for writes that
    /// did not happen, and a resume writes the same entry again).
    StopBeforeInsert,
    /// Clone only: batch `after_batches`' first document arrives in the target just before
    /// the batch is handled, with a field `arrivedMeanwhile: true` more, as a live bot
    /// writing to the target would put it there; the run goes on.
    Arrival,
    /// Legacy only: once the collection's import has ended, and before its verification
    /// reads it again, its first record (in `_id` order) gets this field set to a new text,
    /// as an old bot still running would change it; the run goes on. `after_batches` is
    /// not used.
    SourceChange(&'static str),
}

impl FailPoint {
    /// A stop after `batches` batches of `collection`.
    pub fn after(collection: &str, batches: u64) -> Self {
        Self {
            collection: collection.to_string(),
            after_batches: batches,
            kind: FailKind::Stop,
        }
    }

    /// A clone's stop inside batch `batch` of `collection`, once its journal entry is
    /// written and before its documents are.
    pub fn before_insert(collection: &str, batch: u64) -> Self {
        Self {
            kind: FailKind::StopBeforeInsert,
            ..Self::after(collection, batch)
        }
    }

    /// A clone's batch `batch` of `collection` whose first document arrives in the target
    /// (changed) just before the batch is handled.
    pub fn arrival(collection: &str, batch: u64) -> Self {
        Self {
            kind: FailKind::Arrival,
            ..Self::after(collection, batch)
        }
    }

    /// A legacy import whose `collection` has its first record's `field` changed in the
    /// source between the import and the verification of its step.
    pub fn source_change(collection: &str, field: &'static str) -> Self {
        Self {
            kind: FailKind::SourceChange(field),
            ..Self::after(collection, 0)
        }
    }

    /// The field a [`FailKind::SourceChange`] point changes in `collection`, if one is set
    /// there (never in a release build).
    pub(crate) fn source_change_of(
        fp: &Option<FailPoint>,
        collection: &str,
    ) -> Option<&'static str> {
        match fp {
            Some(FailPoint {
                collection: c,
                kind: FailKind::SourceChange(field),
                ..
            }) if cfg!(debug_assertions) && c == collection => Some(*field),
            _ => None,
        }
    }

    /// Whether the run stops now, after `batches` batches of `collection` (never in a
    /// release build).
    pub(crate) fn hit(fp: &Option<FailPoint>, collection: &str, batches: u64) -> bool {
        Self::at(fp, collection, batches, FailKind::Stop)
    }

    /// Whether point `kind` is set at batch `batch` of `collection` (never in a release
    /// build).
    pub(crate) fn at(fp: &Option<FailPoint>, collection: &str, batch: u64, kind: FailKind) -> bool {
        cfg!(debug_assertions)
            && fp.as_ref().is_some_and(|f| {
                f.collection == collection && f.after_batches == batch && f.kind == kind
            })
    }
}

/// Raised inside an engine when the run was cancelled at a batch boundary.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled")]
pub(crate) struct Cancelled;

/// At most this many bytes of documents in one batch, whatever its count: a batch of big
/// documents (a modmail thread of 20,000 messages, a 16 MB document) stays small in memory.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Streams the raw documents of `query` in `_id` order, in batches of at most `batch`
/// documents and [`MAX_BATCH_BYTES`] (a bigger document is a batch of its own), from a task
/// of its own (aborted when the returned handle is dropped: a reader never outlives the copy
/// it feeds) that stays one batch ahead of the consumer. A read error arrives as the last
/// item, with `what` as its context; so does a read the server does not answer within `wait`
/// ([`NoAnswer`]). The task ends with the guard (or the receiver).
pub(crate) fn read_raw_batches(
    coll: mongodb::Collection<mongodb::bson::RawDocumentBuf>,
    query: Document,
    batch: usize,
    wait: Duration,
    what: &'static str,
) -> (
    tokio_util::task::AbortOnDropHandle<()>,
    tokio::sync::mpsc::Receiver<anyhow::Result<Vec<mongodb::bson::RawDocumentBuf>>>,
) {
    read_raw_batches_within(coll, query, (batch, batch), MAX_BATCH_BYTES, wait, what)
}

/// [`read_raw_batches`] with batches of at most `max_bytes` (a bigger document is a batch
/// of its own), the server answering `per_reply` documents at a time: a reply is held
/// whole until its last document is taken, so big documents want short replies.
pub(crate) fn read_raw_batches_within(
    coll: mongodb::Collection<mongodb::bson::RawDocumentBuf>,
    query: Document,
    (batch, per_reply): (usize, usize),
    max_bytes: usize,
    wait: Duration,
    what: &'static str,
) -> (
    tokio_util::task::AbortOnDropHandle<()>,
    tokio::sync::mpsc::Receiver<anyhow::Result<Vec<mongodb::bson::RawDocumentBuf>>>,
) {
    read_batches_sized(
        coll,
        query,
        (batch, per_reply),
        (max_bytes, wait),
        |d| d.as_bytes().len(),
        what,
    )
}

/// Batches of `T` bounded by count and by bytes, measured by `size`.
fn read_batches_sized<T>(
    coll: mongodb::Collection<T>,
    query: Document,
    (batch, per_reply): (usize, usize),
    (max_bytes, wait): (usize, Duration),
    size: fn(&T) -> usize,
    what: &'static str,
) -> (
    tokio_util::task::AbortOnDropHandle<()>,
    tokio::sync::mpsc::Receiver<anyhow::Result<Vec<T>>>,
)
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin + 'static,
{
    use futures::TryStreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<T>>>(1);
    let task = tokio::spawn(async move {
        let res: anyhow::Result<()> = async {
            let mut cursor = answered(
                wait,
                coll.find(query)
                    .sort(mongodb::bson::doc! { "_id": 1 })
                    .batch_size(per_reply.clamp(1, batch.max(1)) as u32),
            )
            .await??;
            let mut buf = Vec::with_capacity(batch.min(1024));
            let mut bytes = 0usize;
            while let Some(d) = answered(wait, cursor.try_next()).await?? {
                bytes += size(&d);
                buf.push(d);
                if (buf.len() >= batch || bytes >= max_bytes)
                    && tx.send(Ok(std::mem::take(&mut buf))).await.is_err()
                {
                    return Ok(());
                }
                if buf.is_empty() {
                    bytes = 0;
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(Ok(buf)).await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = tx.send(Err(e.context(what))).await;
        }
    });
    (tokio_util::task::AbortOnDropHandle::new(task), rx)
}

/// `HEIMDALL_MIGRATION_READ_WAIT_SECS` (default 300): how long a migration waits for one
/// read of its source to be answered before the run stops (resumable). The driver has no
/// socket timeout: a paused or cut-off server would be waited for for ever.
pub fn read_wait_from_env() -> Duration {
    Duration::from_secs(positive_from_env("HEIMDALL_MIGRATION_READ_WAIT_SECS", 300) as u64)
}

/// The server did not answer a read within the migration's read wait.
#[derive(Debug, thiserror::Error)]
#[error("the server did not answer within {} s (paused, overloaded or cut off)", .0.as_secs())]
pub(crate) struct NoAnswer(pub Duration);

/// Pings the source every so often (a quarter of `wait`, at most every 30 s); returns (an
/// error saying why) when a ping is not answered within `wait`, or pings have failed for
/// `wait` (a blip in between is forgiven). Beside a run's work, it stops a run whose source
/// was paused or cut off: the driver has no socket timeout, so a call in flight to such a
/// server would be waited for for ever.
async fn source_stops_answering(source: &mongodb::Database, wait: Duration) -> anyhow::Error {
    let every = (wait / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    let mut failing_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let ping = source.run_command(mongodb::bson::doc! { "ping": 1 });
        let e = match answered(wait, ping).await {
            Ok(Ok(_)) => {
                failing_since = None;
                continue;
            }
            Ok(Err(e)) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() < wait {
                    tracing::warn!(error = %e, "the source did not answer a ping");
                    continue;
                }
                anyhow::Error::from(e)
            }
            Err(e) => anyhow::Error::from(e),
        };
        return e.context("the source stopped answering");
    }
}

/// `work`, unless the source stops answering first ([`source_stops_answering`]): then the
/// work is dropped (its tasks with it) and that error returned.
pub(crate) async fn while_source_answers<T>(
    source: &mongodb::Database,
    wait: Duration,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = work => r,
        e = source_stops_answering(source, wait) => Err(e),
    }
}

/// `call`, given up with [`NoAnswer`] after `wait`.
pub(crate) async fn answered<T>(
    wait: Duration,
    call: impl std::future::IntoFuture<Output = T>,
) -> Result<T, NoAnswer> {
    tokio::time::timeout(wait, call.into_future())
        .await
        .map_err(|_| NoAnswer(wait))
}

/// Runs a migration's `work` under its lease and closes its record.
///
/// The lease is renewed while `work` runs (a requested cancel or a lost lease cancels
/// `cancel`); then the record gets its status (completed, cancelled when `work` stopped with
/// [`Cancelled`], failed otherwise), the reason, and on success the verification `work`
/// returned. The lease is released and the final record returned.
pub(crate) async fn run_under_lease<F>(
    store: &runs::RunStore,
    lease: runs::Lease,
    run_id: &str,
    cancel: tokio_util::sync::CancellationToken,
    work: F,
) -> anyhow::Result<runs::RunRecord>
where
    F: std::future::Future<Output = anyhow::Result<runs::Verification>>,
{
    use heimdall_base::error::{UserError, UserErrorKind};
    use mongodb::bson::{doc, DateTime};
    let stop = tokio_util::sync::CancellationToken::new();
    let lease = Arc::new(lease);
    let mut keep = {
        let (stop, l) = (stop.clone(), lease.clone());
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            l.keep_alive(stop, cancel).await
        }))
    };
    let ttl = lease.ttl();
    tokio::pin!(work);
    let outcome = tokio::select! {
        outcome = &mut work => outcome,
        // The lease is gone (lost, or not renewed in time: the database stopped answering)
        // and the run was told to stop. Work waiting on a database that does not answer
        // would wait for ever: it gets the lease's lifetime to stop, then is dropped (its
        // tasks with it). The lease is no longer this process's, so nothing more is written.
        _ = &mut keep => match tokio::time::timeout(ttl, &mut work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!(run = %run_id, waited = ?ttl, "the run did not stop after its lease was gone; dropped");
                Err(runs::LeaseLost.into())
            }
        },
    };
    stop.cancel();
    drop(keep);
    let fence = lease.fence();
    let lost = fence.is_lost() || matches!(&outcome, Err(e) if e.is::<runs::LeaseLost>());
    if !lost {
        let (status, message, verification) = match outcome {
            Ok(v) => match v.problem(run_id) {
                None => (runs::RunStatus::Completed, None, Some(v)),
                Some(p) => (runs::RunStatus::Failed, Some(p), Some(v)),
            },
            Err(e) if e.is::<Cancelled>() => (
                runs::RunStatus::Cancelled,
                Some(format!(
                    "cancelled by the owner; resume with `heimdall migrate resume {run_id}`"
                )),
                None,
            ),
            Err(e) => {
                tracing::error!(run = %run_id, error = ?e, "migration failed");
                (
                    runs::RunStatus::Failed,
                    Some(describe_failure(&e, run_id)),
                    None,
                )
            }
        };
        let mut fields = doc! { "status": status.as_str(), "endedAt": DateTime::now() };
        if let Some(m) = message {
            fields.insert("message", m);
        }
        if let Some(v) = &verification {
            fields.insert("verification", mongodb::bson::to_bson(v)?);
        }
        match store.set(run_id, fields).await {
            Ok(()) => {
                lease.release().await?;
                return store.require(run_id).await;
            }
            Err(e) if e.is::<runs::LeaseLost>() => {}
            Err(e) => return Err(e),
        }
    }
    // The lease was lost: nothing more is written, except this process's last word when no
    // other process took the run over (the record's token is still its own).
    let secs = ttl.as_secs();
    tracing::error!(run = %run_id, "the run's lease was lost; this process stopped writing");
    // This process's last word, if the database answers it in time.
    let last_word = tokio::time::timeout(ttl, async {
        let said = store
            .set_if_token(
                run_id,
                fence.token(),
                doc! {
                    "status": runs::RunStatus::Failed.as_str(),
                    "endedAt": DateTime::now(),
                    "message": format!("lease lost: the process running it ({}) did not renew its lease within {secs} s (paused, asleep, or cut off from the database) and stopped without writing more; resume with `heimdall migrate resume {run_id}`", runs::owner_id()),
                },
            )
            .await?;
        if said {
            lease.release().await?;
            return store.require(run_id).await.map(Some);
        }
        Ok(None)
    })
    .await;
    match last_word {
        Ok(Ok(Some(record))) => return Ok(record),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(UserError::new(
                UserErrorKind::Unavailable,
                "database_unresponsive",
                format!("the bot's database stopped answering (the run's lease could not be renewed within {secs} s), so run {run_id} stopped and wrote nothing more; nothing copied so far is lost. Once the database answers again, go on with `heimdall migrate resume {run_id}`"),
            )
            .into());
        }
    }
    Err(UserError::new(
        UserErrorKind::Conflict,
        "lease_lost",
        format!("this process lost the lease of run {run_id}: another process took the run over and continues it; this one stopped and wrote nothing more (see `heimdall migrate status {run_id}`)"),
    )
    .into())
}

/// A run's failure in the owner's terms: a user error as it is, a database error said
/// plainly, always with how to go on.
pub(crate) fn describe_failure(e: &anyhow::Error, run_id: &str) -> String {
    if let Some(u) = heimdall_base::error::user_error(e) {
        return u.message.clone();
    }
    let resume = format!(
        "Nothing is lost: resume with `heimdall migrate resume {run_id}` once this is fixed"
    );
    let Some(what) = e
        .chain()
        .find_map(|c| c.downcast_ref::<mongodb::error::Error>())
        .map(heimdall_base::db::describe_db_error)
    else {
        // No driver error: the chain says it all (`context: cause`).
        return format!("{}. {resume}", clone::short(&format!("{e:#}")));
    };
    let outermost_is_driver = e
        .chain()
        .next()
        .is_some_and(|c| c.downcast_ref::<mongodb::error::Error>().is_some());
    let context = if outermost_is_driver {
        "the run stopped".to_string()
    } else {
        e.to_string()
    };
    format!("{context}: {what}. {resume}")
}

/// The run-level event for a finished record: `migration:error` when it failed, else
/// `migration:complete`.
pub(crate) fn final_kind(record: &runs::RunRecord) -> EventKind {
    if record.status == runs::RunStatus::Failed {
        EventKind::Error
    } else {
        EventKind::Complete
    }
}

/// A record that could not be migrated (or was deliberately not): where and why.
///
/// Its size is bounded whatever the record: a long `_id` is shortened, with a digest of the
/// whole `_id` to tell shortened ones apart, and the reason is cut at [`MAX_REASON`] bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    /// Step number.
    pub step: u16,
    /// Source collection.
    pub collection: String,
    /// The source document's `_id` as text, shortened past [`MAX_ID_TEXT`] characters.
    pub source_id: String,
    /// SHA-256 of the whole `_id` (its extended JSON), 32 hex digits.
    #[serde(default)]
    pub id_digest: String,
    /// What was wrong.
    pub reason: String,
    /// The whole `_id`: kept in `migration_failures`, never in the run record.
    #[serde(skip)]
    pub id: Option<mongodb::bson::Bson>,
}

impl RecordError {
    /// The error of the document `doc` (its `_id`) in `collection` at `step`.
    pub fn of(step: u16, collection: &str, doc: &Document, reason: impl Into<String>) -> Self {
        Self::of_id(step, collection, doc.get("_id").cloned(), reason)
    }

    /// The error of the document with `_id` `id` (`None`: it has none).
    pub fn of_id(
        step: u16,
        collection: &str,
        id: Option<mongodb::bson::Bson>,
        reason: impl Into<String>,
    ) -> Self {
        let (source_id, id_digest) = match &id {
            Some(b) => (short_id_text(b), id_digest(b)),
            None => ("(no _id)".to_string(), String::new()),
        };
        let mut reason = reason.into();
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        Self {
            step,
            collection: collection.to_string(),
            source_id,
            id_digest,
            reason,
            id,
        }
    }
}

/// How many errors (and skips) a run record keeps in its list; the counts stay exact and
/// every one is in `migration_failures`.
pub const MAX_RECORDED_ERRORS: usize = 1000;
/// The longest `_id` text a report shows whole.
pub const MAX_ID_TEXT: usize = 200;
/// The longest reason kept, in bytes.
pub const MAX_REASON: usize = 500;

/// Turns a document `_id` into text for reports.
pub fn id_text(doc: &Document) -> String {
    match doc.get("_id") {
        Some(b) => bson_text(b),
        None => "(no _id)".into(),
    }
}

fn bson_text(b: &mongodb::bson::Bson) -> String {
    match b {
        mongodb::bson::Bson::ObjectId(o) => o.to_hex(),
        mongodb::bson::Bson::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An `_id` as report text: whole up to [`MAX_ID_TEXT`] characters, else its start, its
/// size and its digest.
pub fn short_id_text(b: &mongodb::bson::Bson) -> String {
    let text = bson_text(b);
    if text.chars().count() <= MAX_ID_TEXT {
        return text;
    }
    let head: String = text.chars().take(80).collect();
    format!(
        "{head}… ({} bytes, sha256 {})",
        text.len(),
        &id_digest(b)[..16]
    )
}

/// SHA-256 of an `_id`'s extended JSON, 32 hex digits: tells long `_id`s apart.
pub fn id_digest(b: &mongodb::bson::Bson) -> String {
    use sha2::Digest;
    let json = b.clone().into_relaxed_extjson().to_string();
    let d = sha2::Sha256::digest(json.as_bytes());
    hex::encode(&d[..16])
}

/// A run that passed pre-flight, holds the lease and has its record: it only needs running.
pub struct PendingRun {
    /// The run id.
    pub id: String,
    fut: futures::future::BoxFuture<'static, anyhow::Result<runs::RunRecord>>,
    watch: Option<Arc<StallWatch>>,
}

impl PendingRun {
    /// Wraps the engine's future.
    pub fn new(
        id: String,
        fut: futures::future::BoxFuture<'static, anyhow::Result<runs::RunRecord>>,
    ) -> Self {
        Self {
            id,
            fut,
            watch: None,
        }
    }

    /// Closes `source` (the run's own client of its source) once the run ends, not on a
    /// task of the driver's own after its last handle drops (see
    /// [`heimdall_base::db::close`]).
    pub fn closing(mut self, source: mongodb::Client) -> Self {
        let fut = self.fut;
        self.fut = Box::pin(async move {
            let out = fut.await;
            heimdall_base::db::close(source).await;
            out
        });
        self
    }

    /// Watches the run for stalls while it runs (see [`StallWatch`]).
    pub fn watched(mut self, watch: Arc<StallWatch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Runs to the end (completed, cancelled or failed) and returns the final record.
    pub async fn run(self) -> anyhow::Result<runs::RunRecord> {
        match self.watch {
            None => self.fut.await,
            Some(w) => tokio::select! {
                r = self.fut => r,
                _ = w.watch() => unreachable!("the watch never ends"),
            },
        }
    }
}

/// What beginning a migration gives: a dry run's plan, or a run to execute.
pub enum Begun<P> {
    /// `dryRun`: nothing was written.
    Plan(P),
    /// A run ready to execute.
    Run(PendingRun),
}

/// Continues a cancelled, failed or crashed run of either mode from its checkpoints.
/// `source_uri` overrides the stored (encrypted) source connection string; it must reach
/// the run's own data set.
pub async fn resume(
    env: &clone::MigrationEnv,
    run_id: &str,
    source_uri: Option<String>,
    sink: Arc<dyn ProgressSink>,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<runs::RunRecord> {
    begin_resume_with(env, run_id, source_uri, false, sink, cancel)
        .await?
        .run()
        .await
}

/// Checks a run can be resumed and takes its lease; running it is the caller's.
pub async fn begin_resume(
    env: &clone::MigrationEnv,
    run_id: &str,
    source_uri: Option<String>,
    sink: Arc<dyn ProgressSink>,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<PendingRun> {
    begin_resume_with(env, run_id, source_uri, false, sink, cancel).await
}

/// Refuses to resume `record` against a data set other than the one it started on (another
/// server, database, or the same name dropped and made again), unless `force`; then the
/// returned warning says what happened, for the record.
fn check_resume_source(
    record: &runs::RunRecord,
    source: &source::Source,
    force: bool,
) -> anyhow::Result<Option<String>> {
    use heimdall_base::error::{UserError, UserErrorKind};
    let Some(stored) = record
        .source_identity
        .as_ref()
        .and_then(|d| mongodb::bson::from_document::<source::DbIdentity>(d.clone()).ok())
    else {
        return Ok(None);
    };
    if stored.same_data_set(&source.identity) {
        return Ok(None);
    }
    let was = format!("{} (database {})", record.options.source, stored.db);
    let now = format!("{} (database {})", source.display, source.identity.db);
    if !force {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "source_changed",
            format!("run {} was started against {was}, but this source is {now}: another server, database or data set. Resuming there would apply the run's checkpoints to other data. Resume with the run's own source, or pass --force-source to resume against this one anyway.", record.id),
        )
        .into());
    }
    Ok(Some(format!(
        "resumed against another source, forced by the owner: {now} instead of {was}"
    )))
}

/// Takes a stopped run over for a resume against `source` (reached with `uri`): refuses
/// another data set unless `force` (then the record says so and keeps the new source), takes
/// the lease (refused while the run is alive somewhere) and marks the record running for one
/// more attempt.
pub(crate) async fn take_over(
    env: &clone::MigrationEnv,
    record: &mut runs::RunRecord,
    source: &source::Source,
    uri: &str,
    force: bool,
) -> anyhow::Result<runs::Lease> {
    use mongodb::bson::{doc, Bson};
    let changed = check_resume_source(record, source, force)?;
    let store = runs::RunStore::new(&env.target);
    let lease = store.acquire(&record.id, env.lease_ttl).await?;
    let store = store.fenced(lease.fence());
    if let Some(warning) = changed {
        record.warnings.push(warning);
        let mut fields = doc! {
            "warnings": record.warnings.clone(),
            "options.source": &source.display,
            "sourceIdentity": mongodb::bson::to_document(&source.identity)?,
        };
        if let Some(c) = &env.crypto {
            fields.insert("encryptedSource", c.encrypt(uri));
        }
        store.set(&record.id, fields).await?;
    }
    record.status = runs::RunStatus::Running;
    record.attempts += 1;
    record.cancel_requested = false;
    record.message = None;
    store
        .set(
            &record.id,
            doc! { "status": runs::RunStatus::Running.as_str(), "attempts": record.attempts as i32, "cancelRequested": false, "message": Bson::Null },
        )
        .await?;
    Ok(lease)
}

/// The documents of `coll` selected by `base` whose `_id` is one of `ids`, in `_id` order
/// (what a resume copies again after a verification found it missing).
pub(crate) async fn find_ids<T>(
    coll: &mongodb::Collection<T>,
    base: &Document,
    ids: &[mongodb::bson::Bson],
    what: &'static str,
) -> anyhow::Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    find_ids_projected(coll, base, ids, None, what).await
}

/// [`find_ids`], each document reduced to `projection` (e.g. its `_id` only, to list it).
pub(crate) async fn find_ids_projected<T>(
    coll: &mongodb::Collection<T>,
    base: &Document,
    ids: &[mongodb::bson::Bson],
    projection: Option<Document>,
    what: &'static str,
) -> anyhow::Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    use anyhow::Context as _;
    use futures::TryStreamExt;
    use mongodb::bson::doc;
    coll.find(id_order::and(
        base.clone(),
        doc! { "_id": { "$in": ids.to_vec() } },
    ))
    .sort(doc! { "_id": 1 })
    .with_options(
        mongodb::options::FindOptions::builder()
            .projection(projection)
            .build(),
    )
    .await
    .context(what)?
    .try_collect()
    .await
    .context(what)
}

/// [`begin_resume`], with `force_source` to resume against another data set.
pub async fn begin_resume_with(
    env: &clone::MigrationEnv,
    run_id: &str,
    source_uri: Option<String>,
    force_source: bool,
    sink: Arc<dyn ProgressSink>,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<PendingRun> {
    use heimdall_base::error::{UserError, UserErrorKind};
    let record = runs::RunStore::new(&env.target).require(run_id).await?;
    if let Some(by) = &record.undone_by {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "run_undone",
            format!(
                "run {run_id} was undone by run {by}; start a new migration instead of resuming it"
            ),
        )
        .into());
    }
    if record.status == runs::RunStatus::Completed {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "run_completed",
            format!("run {run_id} already completed; nothing to resume"),
        )
        .into());
    }
    if record.mode == MigrationMode::Undo {
        return undo::begin_resume(env, record, sink, cancel).await;
    }
    let uri = match (source_uri, &record.encrypted_source, &env.crypto) {
        (Some(u), _, _) => u,
        (None, Some(enc), Some(c)) => c.decrypt(enc).map_err(|e| {
            UserError::bad_request(
                "source_unknown",
                format!("the run's source cannot be decrypted ({e}); pass --source URI"),
            )
        })?,
        _ => {
            return Err(UserError::bad_request(
                "source_unknown",
                "this run's source is not stored (no ENCRYPTION_KEY when it started); pass --source URI",
            )
            .into())
        }
    };
    match record.mode {
        MigrationMode::Clone => {
            clone::begin_resume(env, record, uri, force_source, sink, cancel).await
        }
        MigrationMode::Legacy => {
            legacy::engine::begin_resume(env, record, uri, force_source, sink, cancel).await
        }
        MigrationMode::Undo => unreachable!("resumed above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steps_pace_is_its_records_per_second_and_the_time_left_at_it() {
        let started = Instant::now() - Duration::from_secs(10);
        let p = Pace::of(started, 50, 100);
        assert!((p.per_second - 5.0).abs() < 0.2, "{p:?}");
        let eta = p.eta_ms.unwrap();
        assert!((9_500..=10_500).contains(&eta), "{p:?}");
        assert_eq!(Pace::of(Instant::now(), 0, 100).eta_ms, None);
    }
    use mongodb::bson::{doc, Bson, RawDocumentBuf};

    /// Records the kinds of the events it is sent.
    #[derive(Default)]
    struct Kinds(std::sync::Mutex<Vec<EventKind>>);

    impl ProgressSink for Kinds {
        fn emit(&self, e: &ProgressEvent) {
            self.0.lock().unwrap().push(e.kind());
        }
    }

    #[tokio::test]
    async fn a_run_that_moves_without_events_is_not_stalled_but_one_that_stops_is() {
        let kinds = Arc::new(Kinds::default());
        // Two seconds of silence are a stall here; the run moves every 200 ms.
        let watch = StallWatch::new(kinds.clone(), Duration::from_secs(2));
        let watching = {
            let w = watch.clone();
            tokio::spawn(async move { w.watch().await })
        };
        let mut ev: ProgressEvent = serde_json::from_value(serde_json::json!({
            "runId": "r", "mode": "legacy", "step": 7, "label": "Last",
            "plugin": "p", "completed": 7, "total": 7
        }))
        .unwrap();
        ev.kind = Some(EventKind::StepComplete);
        watch.emit(&ev);
        // A verification reading the target after the last step's event, for twice as
        // long as a stall takes.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            watch.alive();
        }
        let stalls = || {
            let k = kinds.0.lock().unwrap();
            k.iter().filter(|k| **k == EventKind::Stalled).count()
        };
        assert_eq!(stalls(), 0, "reading is moving");
        // Then nothing at all: a stall, reported once.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(stalls(), 1);
        watching.abort();
    }

    #[test]
    fn event_names_are_spelled_once_and_read_back() {
        for k in EventKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), k);
        }
        assert!(serde_json::from_str::<EventKind>("\"migration:nope\"").is_err());
    }

    #[test]
    fn a_record_written_before_typed_options_reads_back() {
        let old = doc! { "sourceDb": "src", "guild": Bson::Null, "dryRun": false, "overwrite": true,
        "allowKeyMismatch": false, "startedBy": "cli:me", "batchSize": 50i64,
        "parallelism": 4i64, "source": "mongodb://***@h/" };
        let o: runs::RunOptions = mongodb::bson::from_document(old).unwrap();
        assert_eq!(o.source_db.as_deref(), Some("src"));
        assert!(o.overwrite && o.guild.is_none());
        assert_eq!((o.batch_size, o.parallelism), (50, Some(4)));
    }

    #[test]
    fn a_huge_id_is_shortened_with_a_digest_that_tells_it_apart() {
        let a = Bson::String(format!("a{}", "x".repeat(3_000_000)));
        let b = Bson::String(format!("b{}", "x".repeat(3_000_000)));
        let (ta, tb) = (short_id_text(&a), short_id_text(&b));
        assert!(ta.len() < 200 && ta.contains("sha256"), "{ta}");
        assert_ne!(id_digest(&a), id_digest(&b));
        assert_eq!(id_digest(&a).len(), 32);
        assert_ne!(ta, tb);
        assert_eq!(short_id_text(&Bson::String("short".into())), "short");
        let e = RecordError::of(1, "notes", &doc! { "_id": a }, "r".repeat(5_000));
        assert!(e.reason.len() <= MAX_REASON + 3 && e.reason.ends_with('…'));
    }

    #[test]
    fn raw_and_parsed_digests_agree_and_ignore_id_and_references() {
        let d = doc! { "_id": 1, "guildId": "1", "ruleId": 5, "n": 2.5, "a": [1, { "b": "c" }] };
        let moved =
            doc! { "_id": 9, "guildId": "1", "ruleId": 6, "n": 2.5, "a": [1, { "b": "c" }] };
        let raw = |d: &mongodb::bson::Document| RawDocumentBuf::from_document(d).unwrap();
        let h = clone::raw_content_hash(&raw(&d), &["ruleId"]).unwrap();
        assert_eq!(
            h,
            clone::raw_content_hash(&raw(&moved), &["ruleId"]).unwrap()
        );
        assert_eq!(
            clone::content_hash(&d, &["ruleId"]),
            clone::content_hash(&moved, &["ruleId"])
        );
        let changed =
            doc! { "_id": 1, "guildId": "1", "ruleId": 5, "n": 2.5, "a": [1, { "b": "d" }] };
        assert_ne!(
            h,
            clone::raw_content_hash(&raw(&changed), &["ruleId"]).unwrap()
        );
        // An Int32 and an Int64 of one value are different content.
        let (i32d, i64d) = (doc! { "v": 1i32 }, doc! { "v": 1i64 });
        assert_ne!(
            clone::raw_content_hash(&raw(&i32d), &[]).unwrap(),
            clone::raw_content_hash(&raw(&i64d), &[]).unwrap()
        );
    }

    #[test]
    fn identity_digests_tell_ids_apart_and_add_up_in_any_order() {
        let raw = |d: &mongodb::bson::Document| RawDocumentBuf::from_document(d).unwrap();
        let h = |d: &mongodb::bson::Document| clone::raw_identity_hash(&raw(d)).unwrap().unwrap();
        // Same content, `_id`s of the same value and another type: different documents.
        assert_ne!(
            h(&doc! { "_id": 1i32, "a": 1 }),
            h(&doc! { "_id": 1i64, "a": 1 })
        );
        // Two documents' contents swapped between their `_id`s: the sum sees it.
        let (a, b) = (doc! { "_id": 1, "a": "x" }, doc! { "_id": 2, "a": "y" });
        let (a2, b2) = (doc! { "_id": 1, "a": "y" }, doc! { "_id": 2, "a": "x" });
        assert_ne!(h(&a).wrapping_add(h(&b)), h(&a2).wrapping_add(h(&b2)));
        assert_eq!(h(&a).wrapping_add(h(&b)), h(&b).wrapping_add(h(&a)));
        assert_eq!(
            clone::raw_identity_hash(&raw(&doc! { "a": 1 })).unwrap(),
            None
        );
    }
}
