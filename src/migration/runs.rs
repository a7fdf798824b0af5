//! Run records (`migration_runs`) and the lease that lets one run at a time
//! (`migration_locks`).
//!
//! The lease expires unless its holder renews it, so a run whose process died never blocks
//! the next one: another process takes over once the lease has expired, or at once when the
//! holder was a process on this machine that no longer exists.

use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{MigrationMode, RecordError, MAX_RECORDED_ERRORS};
use crate::error::{UserError, UserErrorKind};

/// The collection of run records.
pub const RUNS: &str = "migration_runs";
/// The collection holding the lease.
pub const LOCKS: &str = "migration_locks";
const LOCK_ID: &str = "migration";

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, not started.
    Pending,
    /// Being worked on (or its process died: see the lease).
    Running,
    /// Ended; every step ran.
    Completed,
    /// Stopped by an error of the run itself.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// `pending`, `running`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Counts of one collection inside a step; also the resume checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionResult {
    /// Collection name (source side for legacy).
    pub name: String,
    /// Documents selected in the source.
    pub total: u64,
    /// Documents handled so far.
    pub processed: u64,
    /// Written as new documents.
    pub inserted: u64,
    /// Already present in the target (by unique key), left as they are.
    pub skipped: u64,
    /// Of the skipped: present under another `_id` (references to them are rewritten).
    pub remapped: u64,
    /// Present and replaced (overwrite policy).
    pub overwritten: u64,
    /// Could not be migrated (see the run's errors).
    pub failed: u64,
    /// References that point to nothing in the source.
    pub dangling: u64,
    /// Verification so far: every handled source document checked against the target.
    #[serde(default)]
    pub verify: VerifyTally,
    /// The last source `_id` handled (resume point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<Bson>,
    /// Whether the collection is finished.
    pub done: bool,
}

/// Running verification counts of one collection, kept in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyTally {
    /// Selected source documents checked.
    pub source: u64,
    /// Of those, found in the target.
    pub found: u64,
    /// Found with the same content (ignoring `_id` and references).
    pub matching: u64,
    /// Not in the target.
    pub missing: u64,
    /// In the target with other content.
    pub differing: u64,
    /// Sum of the source documents' content hashes (wrapping; stored as 16 hex digits).
    #[serde(with = "hex_u64")]
    pub source_digest: u64,
    /// Sum of the found target documents' content hashes (wrapping; 16 hex digits).
    #[serde(with = "hex_u64")]
    pub target_digest: u64,
}

/// A `u64` digest as 16 hex digits (an empty or absent string reads as 0).
mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(0);
        }
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

impl VerifyTally {
    /// Counts a source document (its content hash).
    pub fn add_source(&mut self, h: u64) {
        self.source += 1;
        self.source_digest = self.source_digest.wrapping_add(h);
    }

    /// Counts a target counterpart found for a source document.
    pub fn add_found(&mut self, source_hash: u64, target_hash: u64) {
        self.found += 1;
        self.target_digest = self.target_digest.wrapping_add(target_hash);
        if source_hash == target_hash {
            self.matching += 1;
        } else {
            self.differing += 1;
        }
    }

    /// As reported in the run's verification.
    pub fn report(&self, name: &str) -> CollectionVerification {
        CollectionVerification {
            name: name.to_string(),
            source: self.source,
            found: self.found,
            matching: self.matching,
            missing: self.missing,
            differing: self.differing,
            source_digest: format!("{:016x}", self.source_digest),
            target_digest: format!("{:016x}", self.target_digest),
        }
    }
}

/// A collection a step deliberately does not copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedCollection {
    /// Collection name.
    pub name: String,
    /// Why (e.g. `ephemeral`).
    pub reason: String,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Step number.
    pub order: u16,
    /// Label.
    pub label: String,
    /// Owning plugin.
    pub plugin: String,
    /// `pending`, `running`, `completed`.
    pub status: String,
    /// Per collection.
    pub collections: Vec<CollectionResult>,
    /// Collections not copied, with the reason.
    #[serde(default)]
    pub skipped_collections: Vec<SkippedCollection>,
}

impl StepResult {
    /// Sum of a counter over the step's collections.
    pub fn sum(&self, f: impl Fn(&CollectionResult) -> u64) -> u64 {
        self.collections.iter().map(f).sum()
    }
}

/// Verification of one collection: selected source documents against the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionVerification {
    /// Collection name.
    pub name: String,
    /// Selected source documents.
    pub source: u64,
    /// Of those, found in the target by key.
    pub found: u64,
    /// Found with the same content (ignoring `_id` and rewritten references).
    pub matching: u64,
    /// Not in the target.
    pub missing: u64,
    /// In the target with other content (kept from the target under the skip policy).
    pub differing: u64,
    /// Order-independent digest of the source side.
    pub source_digest: String,
    /// The same digest over the matched target documents.
    pub target_digest: String,
}

/// Verification of a whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// True when every selected source document is in the target with the same content,
    /// except those recorded as failed.
    pub ok: bool,
    /// Per collection.
    pub collections: Vec<CollectionVerification>,
}

/// A run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id.
    #[serde(rename = "_id")]
    pub id: String,
    /// `legacy` or `clone`.
    pub mode: MigrationMode,
    /// Options, with connection strings redacted.
    pub options: Document,
    /// The full source connection string, encrypted with `ENCRYPTION_KEY` (for resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_source: Option<String>,
    /// Who started it (`discord:<id>`, `cli:<user>`, `api:<id>`).
    pub started_by: String,
    /// Status.
    pub status: RunStatus,
    /// Per-step results and checkpoints.
    pub steps: Vec<StepResult>,
    /// Exact number of record errors.
    pub error_count: u64,
    /// The first [`MAX_RECORDED_ERRORS`] record errors.
    #[serde(default)]
    pub errors: Vec<RecordError>,
    /// Records deliberately not imported, with the reason (conflicts, expired), capped like
    /// `errors`; "already imported" is not listed.
    #[serde(default)]
    pub skips: Vec<RecordError>,
    /// Warnings (e.g. a key mismatch the owner accepted).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why the run failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Verification, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Milliseconds spent copying, verification included (last attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_ms: Option<i64>,
    /// Whether a cancel was requested (seen by the holder at its next renewal).
    #[serde(default)]
    pub cancel_requested: bool,
    /// How many times the run was started (1 + resumes).
    #[serde(default)]
    pub attempts: u32,
    /// First start.
    pub started_at: DateTime,
    /// Last change.
    pub updated_at: DateTime,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime>,
}

impl RunRecord {
    /// Documents written as new, over all steps.
    pub fn imported(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.sum(|c| c.inserted + c.overwritten))
            .sum()
    }
    /// Documents skipped as existing, over all steps.
    pub fn skipped(&self) -> u64 {
        self.steps.iter().map(|s| s.sum(|c| c.skipped)).sum()
    }
    /// Documents that failed, over all steps.
    pub fn failed(&self) -> u64 {
        self.steps.iter().map(|s| s.sum(|c| c.failed)).sum()
    }

    /// The result as the CLI's `--json` and the API return it.
    pub fn to_json(&self) -> serde_json::Value {
        let verification = self
            .verification
            .as_ref()
            .map(|v| serde_json::to_value(v).unwrap_or_default());
        serde_json::json!({
            "runId": self.id,
            "mode": self.mode,
            "status": self.status,
            "success": self.status == RunStatus::Completed && self.failed() == 0,
            "imported": self.imported(),
            "skipped": self.skipped(),
            "failed": self.failed(),
            "errorCount": self.error_count,
            "steps": self.steps,
            "errors": self.errors,
            "skips": self.skips,
            "warnings": self.warnings,
            "message": self.message,
            "verification": verification,
            "options": serde_json::to_value(&self.options).unwrap_or_default(),
            "startedBy": self.started_by,
            "copyMs": self.copy_ms,
            "startedAt": self.started_at.try_to_rfc3339_string().ok(),
            "endedAt": self.ended_at.and_then(|d| d.try_to_rfc3339_string().ok()),
        })
    }
}

/// Reads and writes run records.
#[derive(Debug, Clone)]
pub struct RunStore {
    runs: Collection<RunRecord>,
    raw: Collection<Document>,
    locks: Collection<Document>,
}

impl RunStore {
    /// The store of `db`.
    pub fn new(db: &Database) -> Self {
        Self {
            runs: db.collection(RUNS),
            raw: db.collection(RUNS),
            locks: db.collection(LOCKS),
        }
    }

    /// Writes a new record.
    pub async fn create(&self, record: &RunRecord) -> anyhow::Result<()> {
        self.runs
            .insert_one(record)
            .await
            .context("creating the run record")?;
        Ok(())
    }

    /// A run by id.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<RunRecord>> {
        self.runs
            .find_one(doc! { "_id": id })
            .await
            .context("reading the run record")
    }

    /// A run by id, or a not-found user error.
    pub async fn require(&self, id: &str) -> anyhow::Result<RunRecord> {
        self.get(id).await?.ok_or_else(|| {
            UserError::new(
                UserErrorKind::NotFound,
                "run_not_found",
                format!("there is no migration run {id:?}; `heimdall migrate list` shows the runs"),
            )
            .into()
        })
    }

    /// The newest runs first.
    pub async fn list(&self, limit: i64) -> anyhow::Result<Vec<RunRecord>> {
        self.runs
            .find(doc! {})
            .sort(doc! { "startedAt": -1 })
            .limit(limit)
            .projection(doc! { "errors": 0, "skips": 0 })
            .await?
            .try_collect::<Vec<_>>()
            .await
            .map(|mut v| {
                for r in &mut v {
                    r.errors = Vec::new();
                }
                v
            })
            .context("listing runs")
    }

    /// Saves a collection's counts and checkpoint, and appends record errors.
    pub async fn save_collection(
        &self,
        run_id: &str,
        step_index: usize,
        coll_index: usize,
        result: &CollectionResult,
        errors: &[RecordError],
        skips: &[RecordError],
    ) -> anyhow::Result<()> {
        let mut update = doc! {
            "$set": {
                format!("steps.{step_index}.collections.{coll_index}"): bson::to_bson(result)?,
                "updatedAt": DateTime::now(),
            },
        };
        if !errors.is_empty() {
            update.insert("$inc", doc! { "errorCount": errors.len() as i64 });
            update.insert(
                "$push",
                doc! { "errors": { "$each": bson::to_bson(errors)?, "$slice": MAX_RECORDED_ERRORS as i32 } },
            );
        }
        if !skips.is_empty() {
            let push = update
                .entry("$push".to_string())
                .or_insert_with(|| Bson::Document(Document::new()));
            if let Bson::Document(p) = push {
                p.insert(
                    "skips",
                    doc! { "$each": bson::to_bson(skips)?, "$slice": MAX_RECORDED_ERRORS as i32 },
                );
            }
        }
        self.raw
            .update_one(doc! { "_id": run_id }, update)
            .await
            .context("saving the run checkpoint")?;
        Ok(())
    }

    /// Sets a step's status.
    pub async fn set_step_status(
        &self,
        run_id: &str,
        step_index: usize,
        status: &str,
    ) -> anyhow::Result<()> {
        self.raw
            .update_one(
                doc! { "_id": run_id },
                doc! { "$set": { format!("steps.{step_index}.status"): status, "updatedAt": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Sets fields of the record.
    pub async fn set(&self, run_id: &str, fields: Document) -> anyhow::Result<()> {
        let mut fields = fields;
        fields.insert("updatedAt", DateTime::now());
        self.raw
            .update_one(doc! { "_id": run_id }, doc! { "$set": fields })
            .await?;
        Ok(())
    }

    /// Asks the holder of a run to stop at its next batch boundary.
    pub async fn request_cancel(&self, run_id: &str) -> anyhow::Result<RunRecord> {
        let run = self.require(run_id).await?;
        if run.status != RunStatus::Running && run.status != RunStatus::Pending {
            return Err(UserError::new(
                UserErrorKind::Conflict,
                "run_not_active",
                format!(
                    "run {run_id} is {}, not running; nothing to cancel",
                    run.status.as_str()
                ),
            )
            .into());
        }
        self.set(run_id, doc! { "cancelRequested": true }).await?;
        Ok(run)
    }

    /// The current lease holder, if the lease is live.
    pub async fn active_lease(&self) -> anyhow::Result<Option<Document>> {
        let lock = self.locks.find_one(doc! { "_id": LOCK_ID }).await?;
        Ok(lock.filter(lease_is_live))
    }

    /// Takes the lease for `run_id`, or refuses naming the active run.
    pub async fn acquire(&self, run_id: &str, ttl: Duration) -> anyhow::Result<Lease> {
        let owner = owner_id();
        let expires =
            DateTime::from_millis(DateTime::now().timestamp_millis() + ttl.as_millis() as i64);
        let fields = doc! { "runId": run_id, "owner": &owner, "expiresAt": expires, "acquiredAt": DateTime::now() };
        let mut lock = fields.clone();
        lock.insert("_id", LOCK_ID);
        let taken = match self.locks.insert_one(lock).await {
            Ok(_) => true,
            Err(e) if is_duplicate_key(&e) => {
                // Take over an expired lease, one released, or one whose holder died here.
                let current = self.locks.find_one(doc! { "_id": LOCK_ID }).await?;
                match current {
                    Some(cur) if !lease_is_live(&cur) => self
                        .locks
                        .find_one_and_update(
                            doc! { "_id": LOCK_ID, "owner": cur.get("owner").cloned().unwrap_or(Bson::Null), "expiresAt": cur.get("expiresAt").cloned().unwrap_or(Bson::Null) },
                            doc! { "$set": fields },
                        )
                        .return_document(ReturnDocument::After)
                        .await?
                        .is_some(),
                    _ => false,
                }
            }
            Err(e) => return Err(e).context("taking the migration lease"),
        };
        if !taken {
            let cur = self
                .locks
                .find_one(doc! { "_id": LOCK_ID })
                .await?
                .unwrap_or_default();
            let other = cur.get_str("runId").unwrap_or("?").to_string();
            let run = self.get(&other).await?;
            let desc = match run {
                Some(r) => format!(
                    "run {other} ({}, started by {} at {})",
                    r.mode.as_str(),
                    r.started_by,
                    r.started_at.try_to_rfc3339_string().unwrap_or_default()
                ),
                None => format!("run {other}"),
            };
            return Err(UserError::new(
                UserErrorKind::Conflict,
                "migration_active",
                format!("another migration is running: {desc}. Wait for it to end, or stop it with `heimdall migrate cancel {other}`."),
            )
            .into());
        }
        Ok(Lease {
            locks: self.locks.clone(),
            runs: self.raw.clone(),
            run_id: run_id.to_string(),
            owner,
            ttl,
        })
    }
}

/// Whether `e` is a duplicate-key error.
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            w.code == 11000
        }
        mongodb::error::ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|ws| ws.iter().all(|w| w.code == 11000)),
        mongodb::error::ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// `host:pid` of this process.
pub fn owner_id() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

/// A lease is live when it has not expired and, if its holder is a process on this
/// machine, that process still exists.
fn lease_is_live(lock: &Document) -> bool {
    if lock.get_str("runId").is_err() {
        return false;
    }
    let unexpired = lock
        .get_datetime("expiresAt")
        .is_ok_and(|t| t.timestamp_millis() > DateTime::now().timestamp_millis());
    if !unexpired {
        return false;
    }
    let owner = lock.get_str("owner").unwrap_or_default();
    if let Some((host, pid)) = owner.rsplit_once(':') {
        if host == hostname() {
            if let Ok(pid) = pid.parse::<u32>() {
                return std::path::Path::new(&format!("/proc/{pid}")).exists();
            }
        }
    }
    true
}

/// The held lease of one run. Renew it with [`Lease::renew`]; release with [`Lease::release`].
#[derive(Debug)]
pub struct Lease {
    locks: Collection<Document>,
    runs: Collection<Document>,
    run_id: String,
    owner: String,
    ttl: Duration,
}

impl Lease {
    /// Extends the lease. Returns false when the lease was lost (taken by another process).
    pub async fn renew(&self) -> anyhow::Result<bool> {
        let expires =
            DateTime::from_millis(DateTime::now().timestamp_millis() + self.ttl.as_millis() as i64);
        let r = self
            .locks
            .update_one(
                doc! { "_id": LOCK_ID, "runId": &self.run_id, "owner": &self.owner },
                doc! { "$set": { "expiresAt": expires } },
            )
            .await?;
        Ok(r.matched_count == 1)
    }

    /// Whether someone asked the run to stop.
    pub async fn cancel_requested(&self) -> anyhow::Result<bool> {
        Ok(self
            .runs
            .find_one(doc! { "_id": &self.run_id, "cancelRequested": true })
            .projection(doc! { "_id": 1 })
            .await?
            .is_some())
    }

    /// Renews the lease every third of its lifetime until `stop`; cancels `cancel` when a
    /// cancel was requested or the lease was lost.
    pub async fn keep_alive(&self, stop: CancellationToken, cancel: CancellationToken) {
        let every = self.ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(run = %self.run_id, "the migration lease was lost; stopping the run");
                    cancel.cancel();
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the migration lease"),
            }
            if self.cancel_requested().await.unwrap_or(false) {
                tracing::info!(run = %self.run_id, "cancel requested");
                cancel.cancel();
            }
        }
    }

    /// Gives the lease up.
    pub async fn release(&self) -> anyhow::Result<()> {
        self.locks
            .delete_one(doc! { "_id": LOCK_ID, "runId": &self.run_id, "owner": &self.owner })
            .await?;
        Ok(())
    }
}
