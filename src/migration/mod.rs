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
pub mod legacy;
pub mod runs;
pub mod source;
pub mod term;

/// Which kind of migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationMode {
    /// Old bot → Heimdall.
    Legacy,
    /// Heimdall → Heimdall.
    Clone,
}

impl MigrationMode {
    /// `legacy` or `clone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Clone => "clone",
        }
    }
}

/// The kinds of progress event, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A step begins.
    #[serde(rename = "migration:step_start")]
    StepStart,
    /// Records processed inside a step.
    #[serde(rename = "migration:step_progress")]
    StepProgress,
    /// A step ended.
    #[serde(rename = "migration:step_complete")]
    StepComplete,
    /// The run ended (completed, cancelled).
    #[serde(rename = "migration:complete")]
    Complete,
    /// The run failed.
    #[serde(rename = "migration:error")]
    Error,
}

impl EventKind {
    /// The wire name, e.g. `migration:step_start`.
    pub fn name(self) -> &'static str {
        match self {
            Self::StepStart => "migration:step_start",
            Self::StepProgress => "migration:step_progress",
            Self::StepComplete => "migration:step_complete",
            Self::Complete => "migration:complete",
            Self::Error => "migration:error",
        }
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
    /// Plugin owning the step.
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
    /// The step's or run's result, on completion events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
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
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl ProgressSink for NullSink {
    fn emit(&self, _event: &ProgressEvent) {}
}

/// Sends every event to several sinks.
pub struct FanOut(pub Vec<Arc<dyn ProgressSink>>);

impl ProgressSink for FanOut {
    fn emit(&self, event: &ProgressEvent) {
        for s in &self.0 {
            s.emit(event);
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

/// Raised inside an engine when the run was cancelled at a batch boundary.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled")]
pub(crate) struct Cancelled;

/// Kills a spawned task when dropped: a reader never outlives the copy it feeds.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Streams the documents of `query` in `_id` order, `batch` at a time, from a task of its
/// own that stays one batch ahead of the consumer. A read error arrives as the last item,
/// with `what` as its context. The task ends with the guard (or the receiver).
pub(crate) fn read_batches(
    coll: mongodb::Collection<Document>,
    query: Document,
    batch: usize,
    what: &'static str,
) -> (
    AbortOnDrop,
    tokio::sync::mpsc::Receiver<anyhow::Result<Vec<Document>>>,
) {
    use futures::TryStreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<Document>>>(2);
    let task = tokio::spawn(async move {
        let res: anyhow::Result<()> = async {
            let mut cursor = coll
                .find(query)
                .sort(mongodb::bson::doc! { "_id": 1 })
                .batch_size(batch as u32)
                .await?;
            let mut buf = Vec::with_capacity(batch);
            while let Some(d) = cursor.try_next().await? {
                buf.push(d);
                if buf.len() >= batch && tx.send(Ok(std::mem::take(&mut buf))).await.is_err() {
                    return Ok(());
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
    (AbortOnDrop(task), rx)
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
    use mongodb::bson::{doc, DateTime};
    let stop = tokio_util::sync::CancellationToken::new();
    let lease = Arc::new(lease);
    let keep = {
        let (stop, l) = (stop.clone(), lease.clone());
        AbortOnDrop(tokio::spawn(
            async move { l.keep_alive(stop, cancel).await },
        ))
    };
    let outcome = work.await;
    stop.cancel();
    drop(keep);
    let (status, message, verification) = match outcome {
        Ok(v) => (runs::RunStatus::Completed, None, Some(v)),
        Err(e) if e.is::<Cancelled>() => (
            runs::RunStatus::Cancelled,
            Some(format!(
                "cancelled by the owner; resume with `heimdall migrate resume {run_id}`"
            )),
            None,
        ),
        Err(e) => {
            tracing::error!(run = %run_id, error = ?e, "migration failed");
            let text = crate::error::user_error(&e)
                .map(|u| u.message.clone())
                .unwrap_or_else(|| format!("{e:#}"));
            (runs::RunStatus::Failed, Some(text), None)
        }
    };
    let mut fields = doc! { "status": status.as_str(), "endedAt": DateTime::now() };
    if let Some(m) = message {
        fields.insert("message", m);
    }
    if let Some(v) = &verification {
        fields.insert("verification", mongodb::bson::to_bson(v)?);
    }
    store.set(run_id, fields).await?;
    lease.release().await?;
    store.require(run_id).await
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

/// A record that could not be migrated: where and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    /// Step number.
    pub step: u16,
    /// Source collection.
    pub collection: String,
    /// The source document's `_id` (as extended JSON text).
    pub source_id: String,
    /// What was wrong.
    pub reason: String,
}

/// How many errors a run record keeps in its list (the counts stay exact).
pub const MAX_RECORDED_ERRORS: usize = 1000;

/// Turns a document `_id` into text for reports.
pub fn id_text(doc: &Document) -> String {
    match doc.get("_id") {
        Some(mongodb::bson::Bson::ObjectId(o)) => o.to_hex(),
        Some(mongodb::bson::Bson::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(no _id)".into(),
    }
}

/// A run that passed pre-flight, holds the lease and has its record: it only needs running.
pub struct PendingRun {
    /// The run id.
    pub id: String,
    fut: futures::future::BoxFuture<'static, anyhow::Result<runs::RunRecord>>,
}

impl PendingRun {
    /// Wraps the engine's future.
    pub fn new(
        id: String,
        fut: futures::future::BoxFuture<'static, anyhow::Result<runs::RunRecord>>,
    ) -> Self {
        Self { id, fut }
    }

    /// Runs to the end (completed, cancelled or failed) and returns the final record.
    pub async fn run(self) -> anyhow::Result<runs::RunRecord> {
        self.fut.await
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
/// `source_uri` overrides the stored (encrypted) source connection string.
pub async fn resume(
    env: &clone::MigrationEnv,
    run_id: &str,
    source_uri: Option<String>,
    sink: Arc<dyn ProgressSink>,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<runs::RunRecord> {
    begin_resume(env, run_id, source_uri, sink, cancel)
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
    use crate::error::{UserError, UserErrorKind};
    let record = runs::RunStore::new(&env.target).require(run_id).await?;
    if record.status == runs::RunStatus::Completed {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "run_completed",
            format!("run {run_id} already completed; nothing to resume"),
        )
        .into());
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
        MigrationMode::Clone => clone::begin_resume(env, record, uri, sink, cancel).await,
        MigrationMode::Legacy => legacy::engine::begin_resume(env, record, uri, sink, cancel).await,
    }
}
