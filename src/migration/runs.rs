//! Run records (`migration_runs`) and the lease that lets one run at a time
//! (`migration_locks`).
//!
//! The lease expires unless its holder renews it, so a run whose process died never blocks
//! the next one: another process takes over once the lease has expired, or at once when the
//! holder was a process on this machine that no longer exists.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use std::collections::HashSet;

use super::{MigrationMode, RecordError, MAX_RECORDED_ERRORS};
use heimdall_base::error::{UserError, UserErrorKind};

/// The collection of run records.
pub const RUNS: &str = "migration_runs";
/// The collection holding the lease.
pub const LOCKS: &str = "migration_locks";
/// Every failed, skipped or missing record of every run, whole (the run record keeps the
/// first [`MAX_RECORDED_ERRORS`]); `_id` is `run:kind:collection:digest`.
pub const FAILURES: &str = "migration_failures";
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

/// Where a step stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not begun.
    #[default]
    Pending,
    /// Being copied (or its process died).
    Running,
    /// Every collection of it handled.
    Completed,
}

impl StepStatus {
    /// `pending`, `running`, `completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
        }
    }
}

/// A run's options as the record keeps them (connection strings redacted; the full source is
/// `encryptedSource`). Fields of the other mode stay at their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    /// The source connection string, redacted.
    #[serde(default)]
    pub source: String,
    /// The source database, when named apart from the connection string.
    #[serde(default)]
    pub source_db: Option<String>,
    /// Only this guild.
    #[serde(default)]
    pub guild: Option<String>,
    /// Whether it was a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Clone: replace existing documents.
    #[serde(default)]
    pub overwrite: bool,
    /// Clone: copy secrets this instance's key cannot decrypt.
    #[serde(default)]
    pub allow_key_mismatch: bool,
    /// Legacy: the old bot's modmail collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modmail_collection: Option<String>,
    /// Who started it.
    #[serde(default)]
    pub started_by: String,
    /// Documents (legacy: records) per batch.
    #[serde(default)]
    pub batch_size: u32,
    /// Clone: steps copied at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Clone: catch up with the source (update what changed, list what is gone).
    #[serde(default)]
    pub sync: bool,
    /// Clone: after the copy, keep applying the source's changes until stopped.
    #[serde(default)]
    pub follow: bool,
    /// Undo: the run it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// Undo: documents changed since the run wrote them are undone too.
    #[serde(default)]
    pub force: bool,
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
    /// Sync: present with other content than the source's, updated to it.
    #[serde(default)]
    pub updated: u64,
    /// Sync: copied from this source by an earlier run, gone from the source since (kept
    /// here, listed).
    #[serde(default)]
    pub gone: u64,
    /// Could not be migrated (see the run's errors).
    pub failed: u64,
    /// Undo: documents the run inserted, removed.
    #[serde(default)]
    pub removed: u64,
    /// Undo: documents the run replaced, put back as they were.
    #[serde(default)]
    pub restored: u64,
    /// Undo: documents changed since the run wrote them, left as they are (listed).
    #[serde(default)]
    pub conflicts: u64,
    /// References that point to nothing in the source.
    pub dangling: u64,
    /// The last source `_id` handled (resume point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<Bson>,
    /// Whether the collection is finished.
    pub done: bool,
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
    /// Where the step stands.
    pub status: StepStatus,
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

/// Verification of one collection, by queries of its own: every in-scope source document
/// (legacy: record) read again and looked up in the target, whatever the run's tallies say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionVerification {
    /// Step number.
    #[serde(default)]
    pub step: u16,
    /// Collection name (legacy: the old bot's collection).
    pub name: String,
    /// In-scope source documents, counted by the check.
    pub source: u64,
    /// Of those, with their counterpart in the target (by key).
    pub found: u64,
    /// Found with the same content (ignoring `_id` and rewritten references).
    pub matching: u64,
    /// Found with other content (kept from the target under the skip policy).
    pub differing: u64,
    /// Not in the target, and recorded by the run as failed or skipped with a reason.
    #[serde(default)]
    pub failed: u64,
    /// Not in the target and in no list of the run: the shortfall.
    pub missing: u64,
    /// The first missing `_id`s (shortened), to look at.
    #[serde(default)]
    pub first_missing: Vec<String>,
    /// Order-independent digest of the source side.
    pub source_digest: String,
    /// The same digest over the target counterparts found.
    pub target_digest: String,
    /// Whether this collection passed.
    #[serde(default)]
    pub ok: bool,
}

/// Running counts of a [`CollectionVerification`].
#[derive(Debug, Clone, Default)]
pub struct VerifyTally {
    /// See [`CollectionVerification`].
    pub source: u64,
    /// See [`CollectionVerification`].
    pub found: u64,
    /// See [`CollectionVerification`].
    pub matching: u64,
    /// See [`CollectionVerification`].
    pub differing: u64,
    /// See [`CollectionVerification`].
    pub failed: u64,
    /// See [`CollectionVerification`].
    pub missing: u64,
    /// See [`CollectionVerification`].
    pub first_missing: Vec<String>,
    /// Wrapping sum of the source documents' content hashes.
    pub source_digest: u64,
    /// Wrapping sum of the found target documents' content hashes.
    pub target_digest: u64,
    /// Of the absent source documents, those the run recorded as skipped (with a
    /// reason): accounted for as absent, they excuse no differing document.
    pub skips_absent: u64,
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

    /// Counts a source document not in the target: `recorded` when the run listed it.
    pub fn add_absent(&mut self, recorded: bool, short_id: &str) {
        if recorded {
            self.failed += 1;
        } else {
            self.missing += 1;
            if self.first_missing.len() < 10 {
                self.first_missing.push(short_id.to_string());
            }
        }
    }

    /// Adds what `other` counted (a part of the same collection checked on its own).
    pub fn absorb(&mut self, other: VerifyTally) {
        self.source += other.source;
        self.found += other.found;
        self.matching += other.matching;
        self.differing += other.differing;
        self.failed += other.failed;
        self.missing += other.missing;
        self.skips_absent += other.skips_absent;
        let room = 10usize.saturating_sub(self.first_missing.len());
        self.first_missing
            .extend(other.first_missing.into_iter().take(room));
        self.source_digest = self.source_digest.wrapping_add(other.source_digest);
        self.target_digest = self.target_digest.wrapping_add(other.target_digest);
    }

    /// The report; `allowed_differing` is how many documents may differ (those the run
    /// kept from the target under the skip policy).
    pub fn report(self, step: u16, name: &str, allowed_differing: u64) -> CollectionVerification {
        CollectionVerification {
            step,
            name: name.to_string(),
            ok: self.missing == 0 && self.differing <= allowed_differing,
            source: self.source,
            found: self.found,
            matching: self.matching,
            differing: self.differing,
            failed: self.failed,
            missing: self.missing,
            first_missing: self.first_missing,
            source_digest: format!("{:016x}", self.source_digest),
            target_digest: format!("{:016x}", self.target_digest),
        }
    }
}

/// Verification of a whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// True when every in-scope source document is in the target with the same content,
    /// except those the run recorded as failed or skipped (and, under the skip policy,
    /// existing ones the target kept with other content).
    pub ok: bool,
    /// Per collection.
    pub collections: Vec<CollectionVerification>,
    /// An undo's verification: `found` are documents back to their state before the run,
    /// `missing` those still as the run left them, `differing` those changed since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
}

impl Verification {
    /// From the collections' reports.
    pub fn of(collections: Vec<CollectionVerification>) -> Self {
        Self {
            ok: collections.iter().all(|c| c.ok),
            collections,
            undo: false,
        }
    }

    /// What is wrong, in a sentence for the run's message (`None` when ok).
    pub fn problem(&self, run_id: &str) -> Option<String> {
        if self.ok {
            return None;
        }
        let bad: Vec<String> = self
            .collections
            .iter()
            .filter(|c| !c.ok)
            .take(5)
            .map(|c| {
                let mut t = format!("step {} {}: ", c.step, c.name);
                let (gone, other) = if self.undo {
                    ("still as the run left them", "changed since the run")
                } else {
                    ("missing", "with other content")
                };
                if c.missing > 0 {
                    t.push_str(&format!("{} of {} {gone}", c.missing, c.source));
                    if !c.first_missing.is_empty() {
                        t.push_str(&format!(" (first: {})", c.first_missing.join(", ")));
                    }
                } else {
                    t.push_str(&format!("{} of {} {other}", c.differing, c.source));
                }
                t
            })
            .collect();
        if self.undo {
            return Some(format!(
                "verification failed: the target is not back to its state before the run — {}. Run the undo again with `heimdall migrate resume {run_id}`.",
                bad.join("; ")
            ));
        }
        Some(format!(
            "verification failed: the target does not hold everything the source has — {}. Resume with `heimdall migrate resume {run_id}` to copy what is missing.",
            bad.join("; ")
        ))
    }
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
    pub options: RunOptions,
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
    /// Exact number of listed skips.
    #[serde(default)]
    pub skip_count: u64,
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
    /// Milliseconds spent copying (last attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_ms: Option<i64>,
    /// Milliseconds verification went on after the copy ended (last attempt; a clone
    /// verifies each step beside the steps still copying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_ms: Option<i64>,
    /// Whether a cancel was requested (seen by the holder at its next renewal).
    #[serde(default)]
    pub cancel_requested: bool,
    /// The fencing token of the lease its current holder took (only that holder's writes
    /// match the record).
    #[serde(default)]
    pub lease_token: i64,
    /// What the run was started against, to recognise it on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<Document>,
    /// How many times the run was started (1 + resumes).
    #[serde(default)]
    pub attempts: u32,
    /// Whether the run keeps a journal of its writes (runs from before journals did not).
    #[serde(default)]
    pub journal: bool,
    /// The target collections the journal covers.
    #[serde(default)]
    pub journaled: Vec<String>,
    /// When `heimdall migrate prune` dropped the journal (the run can no longer be undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_pruned_at: Option<DateTime>,
    /// Follow: the source's change stream position (resume token) the run has applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_token: Option<Bson>,
    /// Follow: whether the run is applying the source's changes now.
    #[serde(default)]
    pub following: bool,
    /// Follow: how far behind the source, in milliseconds, at the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<i64>,
    /// Follow: changes applied.
    #[serde(default)]
    pub follow_applied: u64,
    /// Undo: documents changed since the run wrote them, undone anyway (`force`).
    #[serde(default)]
    pub forced: u64,
    /// The undo run that undid (or is undoing) this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<String>,
    /// First start.
    pub started_at: DateTime,
    /// Last change.
    pub updated_at: DateTime,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime>,
}

impl RunRecord {
    /// A new run's record, running under the lease whose token is `lease_token`: no counts
    /// yet, a journal kept (an undo's record says otherwise).
    pub fn started(
        id: &str,
        mode: MigrationMode,
        options: RunOptions,
        steps: Vec<StepResult>,
        lease_token: i64,
    ) -> Self {
        let now = DateTime::now();
        Self {
            id: id.to_string(),
            mode,
            started_by: options.started_by.clone(),
            options,
            encrypted_source: None,
            status: RunStatus::Running,
            steps,
            error_count: 0,
            skip_count: 0,
            errors: Vec::new(),
            skips: Vec::new(),
            warnings: Vec::new(),
            message: None,
            verification: None,
            copy_ms: None,
            verify_ms: None,
            cancel_requested: false,
            lease_token,
            source_identity: None,
            attempts: 1,
            journal: mode != MigrationMode::Undo,
            journaled: Vec::new(),
            journal_pruned_at: None,
            follow_token: None,
            following: false,
            lag_ms: None,
            follow_applied: 0,
            forced: 0,
            undone_by: None,
            started_at: now,
            updated_at: now,
            ended_at: None,
        }
    }

    /// Documents written as new, over all steps.
    pub fn imported(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.sum(|c| c.inserted + c.overwritten + c.updated))
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

    /// Completed, verified, and no record failed.
    pub fn success(&self) -> bool {
        self.status == RunStatus::Completed
            && self.failed() == 0
            && self.verification.as_ref().is_some_and(|v| v.ok)
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
            "success": self.success(),
            "imported": self.imported(),
            "skipped": self.skipped(),
            "failed": self.failed(),
            "errorCount": self.error_count,
            "skipCount": self.skip_count,
            "steps": self.steps,
            "errors": self.errors,
            "skips": self.skips,
            "warnings": self.warnings,
            "message": self.message,
            "verification": verification,
            "options": serde_json::to_value(&self.options).unwrap_or_default(),
            "startedBy": self.started_by,
            "journal": self.journal,
            "undoneBy": self.undone_by,
            "journalPrunedAt": self.journal_pruned_at.and_then(|d| d.try_to_rfc3339_string().ok()),
            "forced": self.forced,
            "following": self.following,
            "lagMs": self.lag_ms,
            "followApplied": self.follow_applied,
            "copyMs": self.copy_ms,
            "verifyMs": self.verify_ms,
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
    failures: Collection<Document>,
    fence: Option<Fence>,
}

/// What a record in `migration_failures` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// Could not be migrated.
    Error,
    /// Deliberately not migrated (conflict, expired), with the reason.
    Skip,
    /// Found missing from the target by verification; a resume copies it again.
    Missing,
}

impl FailureKind {
    /// `error`, `skip`, `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Skip => "skip",
            Self::Missing => "missing",
        }
    }
}

/// The `_id` prefix of a run's failures of one kind, or of one collection's among them.
fn failure_prefix(run_id: &str, kind: FailureKind, collection: Option<&str>) -> String {
    match collection {
        Some(c) => format!("{run_id}:{}:{c}:", kind.as_str()),
        None => format!("{run_id}:{}:", kind.as_str()),
    }
}

/// The filter on `_id` selecting the failures under `prefix` that come after `from` (their
/// `_id`s are ASCII, so `prefix` followed by DEL bounds them).
fn under(prefix: &str, from: &str) -> Document {
    doc! { "_id": { "$gt": from, "$lt": format!("{prefix}\u{7f}") } }
}

/// `_id`s of this size or more are not kept whole in `migration_failures` (the document
/// must stay under 16 MB); their text and digest still are.
const MAX_KEPT_ID: usize = 4 * 1024 * 1024;

impl RunStore {
    /// The store of `db`.
    pub fn new(db: &Database) -> Self {
        Self {
            runs: db.collection(RUNS),
            raw: db.collection(RUNS),
            locks: db.collection(LOCKS),
            failures: db.collection(FAILURES),
            fence: None,
        }
    }

    /// Keeps `records` of `kind` for `run_id` in `migration_failures`; a record already
    /// kept (a batch handled again after a crash) stays as it is.
    pub async fn keep_failures(
        &self,
        run_id: &str,
        kind: FailureKind,
        records: &[RecordError],
    ) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.check_fence()?;
        let now = DateTime::now();
        let docs: Vec<Document> = records
            .iter()
            .map(|e| {
                let mut d = doc! {
                    "_id": format!("{}{}", failure_prefix(run_id, kind, Some(&e.collection)), e.id_digest),
                    "runId": run_id,
                    "kind": kind.as_str(),
                    "step": e.step as i32,
                    "collection": &e.collection,
                    "sourceId": &e.source_id,
                    "idDigest": &e.id_digest,
                    "reason": &e.reason,
                    "at": now,
                };
                if let Some(id) = &e.id {
                    let size = bson::to_vec(&doc! { "v": id.clone() }).map(|v| v.len()).unwrap_or(usize::MAX);
                    if size < MAX_KEPT_ID {
                        d.insert("id", id.clone());
                    }
                }
                d
            })
            .collect();
        match self
            .failures
            .insert_many(docs)
            .with_options(
                mongodb::options::InsertManyOptions::builder()
                    .ordered(false)
                    .build(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(e).context("keeping the run's failed records"),
        }
    }

    /// A page of a run's failures of one kind, in a stable order: up to `limit` after the
    /// cursor `after` (a previous page's `next`), and the cursor of the next page.
    pub async fn failures(
        &self,
        run_id: &str,
        kind: FailureKind,
        after: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<(Vec<RecordError>, Option<String>)> {
        let prefix = failure_prefix(run_id, kind, None);
        let from = match after {
            Some(a) if a.starts_with(&prefix) => a.to_string(),
            Some(_) => {
                return Err(UserError::bad_request(
                    "invalid_cursor",
                    "the `after` cursor does not belong to this run and kind; start without it",
                )
                .into())
            }
            None => prefix.clone(),
        };
        let limit = limit.clamp(1, 1000);
        let docs: Vec<Document> = self
            .failures
            .find(under(&prefix, &from))
            .sort(doc! { "_id": 1 })
            .limit(limit + 1)
            .projection(doc! { "id": 0 })
            .await?
            .try_collect()
            .await
            .context("reading the run's failed records")?;
        let more = docs.len() as i64 > limit;
        let page: Vec<Document> = docs.into_iter().take(limit as usize).collect();
        let next = more
            .then(|| {
                page.last()
                    .and_then(|d| d.get_str("_id").ok().map(String::from))
            })
            .flatten();
        let items = page
            .iter()
            .map(|d| RecordError {
                step: d.get_i32("step").unwrap_or(0) as u16,
                collection: d.get_str("collection").unwrap_or_default().to_string(),
                source_id: d.get_str("sourceId").unwrap_or_default().to_string(),
                id_digest: d.get_str("idDigest").unwrap_or_default().to_string(),
                reason: d.get_str("reason").unwrap_or_default().to_string(),
                id: None,
            })
            .collect();
        Ok((items, next))
    }

    /// How many failures of `kind` the run has in `migration_failures`.
    pub async fn failure_count(&self, run_id: &str, kind: FailureKind) -> anyhow::Result<u64> {
        let prefix = failure_prefix(run_id, kind, None);
        Ok(self
            .failures
            .count_documents(under(&prefix, &prefix))
            .await?)
    }

    /// Which of `digests` of `collection` the run recorded as `kind`.
    pub async fn recorded(
        &self,
        run_id: &str,
        kind: FailureKind,
        collection: &str,
        digests: &[String],
    ) -> anyhow::Result<HashSet<String>> {
        let mut out = HashSet::new();
        let prefix = failure_prefix(run_id, kind, Some(collection));
        for chunk in digests.chunks(256) {
            let ids: Vec<String> = chunk.iter().map(|d| format!("{prefix}{d}")).collect();
            let mut cursor = self
                .failures
                .find(doc! { "_id": { "$in": ids } })
                .projection(doc! { "idDigest": 1 })
                .await?;
            while let Some(d) = cursor.try_next().await? {
                if let Ok(g) = d.get_str("idDigest") {
                    out.insert(g.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Lists documents a sync found gone from the source among the run's skips, once each
    /// (a verification that runs again finds them again).
    pub async fn list_gone(
        &self,
        run_id: &str,
        collection: &str,
        gone: Vec<RecordError>,
    ) -> anyhow::Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let digests: Vec<String> = gone.iter().map(|e| e.id_digest.clone()).collect();
        let known = self
            .recorded(run_id, FailureKind::Skip, collection, &digests)
            .await?;
        let new: Vec<RecordError> = gone
            .into_iter()
            .filter(|e| !known.contains(&e.id_digest))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.keep_failures(run_id, FailureKind::Skip, &new).await?;
        self.update_record(
            run_id,
            doc! {
                "$inc": { "skipCount": new.len() as i64 },
                "$push": { "skips": { "$each": bson::to_bson(&new)?, "$slice": MAX_RECORDED_ERRORS as i32 } },
                "$set": { "updatedAt": DateTime::now() },
            },
        )
        .await
        .context("listing what is gone from the source")
    }

    /// Counts records verification found absent from the target: accounted for when the
    /// run listed them as one of `listed` (failed, skipped); else missing, kept for a resume
    /// to copy again.
    pub async fn note_absent(
        &self,
        run_id: &str,
        collection: &str,
        listed: &[FailureKind],
        absent: Vec<RecordError>,
        tally: &mut VerifyTally,
    ) -> anyhow::Result<()> {
        if absent.is_empty() {
            return Ok(());
        }
        let digests: Vec<String> = absent.iter().map(|e| e.id_digest.clone()).collect();
        let mut recorded = HashSet::new();
        let mut skips = HashSet::new();
        for kind in listed {
            let these = self.recorded(run_id, *kind, collection, &digests).await?;
            if *kind == FailureKind::Skip {
                skips.extend(these.iter().cloned());
            }
            recorded.extend(these);
        }
        let mut missing = Vec::new();
        for e in absent {
            let known = recorded.contains(&e.id_digest);
            tally.add_absent(known, &e.source_id);
            if skips.contains(&e.id_digest) {
                tally.skips_absent += 1;
            }
            if !known {
                missing.push(e);
            }
        }
        self.keep_failures(run_id, FailureKind::Missing, &missing)
            .await
    }

    /// The whole `_id`s of a run's `missing` records of `collection` (what a resume copies
    /// again), with their failure `_id`s.
    pub async fn missing_ids(
        &self,
        run_id: &str,
        collection: &str,
    ) -> anyhow::Result<Vec<(String, Bson)>> {
        let prefix = failure_prefix(run_id, FailureKind::Missing, Some(collection));
        let docs: Vec<Document> = self
            .failures
            .find(under(&prefix, &prefix))
            .projection(doc! { "id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d.get("id")?.clone())))
            .collect())
    }

    /// Forgets the `missing` records of `collection` an earlier verification kept (the
    /// verification about to run finds them again if they still are).
    pub async fn forget_missing(&self, run_id: &str, collection: &str) -> anyhow::Result<()> {
        self.check_fence()?;
        let prefix = failure_prefix(run_id, FailureKind::Missing, Some(collection));
        self.failures.delete_many(under(&prefix, &prefix)).await?;
        Ok(())
    }

    /// Forgets failures (the `missing` records a resume copied again).
    pub async fn forget_failures(&self, ids: Vec<String>) -> anyhow::Result<()> {
        self.check_fence()?;
        for chunk in ids.chunks(256) {
            self.failures
                .delete_many(doc! { "_id": { "$in": chunk.to_vec() } })
                .await?;
        }
        Ok(())
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
        // Whole lists first: a crash before the checkpoint handles the batch again, and
        // keeping a record twice changes nothing.
        self.keep_failures(run_id, FailureKind::Error, errors)
            .await?;
        self.keep_failures(run_id, FailureKind::Skip, skips).await?;
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
            update
                .entry("$inc".to_string())
                .or_insert_with(|| Bson::Document(Document::new()));
            if let Some(Bson::Document(inc)) = update.get_mut("$inc") {
                inc.insert("skipCount", skips.len() as i64);
            }
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
        self.update_record(run_id, update)
            .await
            .context("saving the run checkpoint")
    }

    /// Applies an update to the run record (fenced like every write of a run).
    pub async fn update(&self, run_id: &str, update: Document) -> anyhow::Result<()> {
        self.update_record(run_id, update).await
    }

    /// Names `collection` among those the run's journal covers.
    pub async fn note_journaled(&self, run_id: &str, collection: &str) -> anyhow::Result<()> {
        self.update_record(
            run_id,
            doc! { "$addToSet": { "journaled": collection }, "$set": { "updatedAt": DateTime::now() } },
        )
        .await
        .context("naming a journaled collection")
    }

    /// Sets a step's status.
    pub async fn set_step_status(
        &self,
        run_id: &str,
        step_index: usize,
        status: StepStatus,
    ) -> anyhow::Result<()> {
        self.update_record(
            run_id,
            doc! { "$set": { format!("steps.{step_index}.status"): status.as_str(), "updatedAt": DateTime::now() } },
        )
        .await
    }

    /// Sets fields of the record.
    pub async fn set(&self, run_id: &str, fields: Document) -> anyhow::Result<()> {
        let mut fields = fields;
        fields.insert("updatedAt", DateTime::now());
        self.update_record(run_id, doc! { "$set": fields }).await
    }

    /// Sets fields of the record if the run's lease token is still `token`, whatever the
    /// clock says (the last word of a process that lost its lease while nobody took the
    /// run over). Returns whether it matched.
    pub async fn set_if_token(
        &self,
        run_id: &str,
        token: i64,
        fields: Document,
    ) -> anyhow::Result<bool> {
        let mut fields = fields;
        fields.insert("updatedAt", DateTime::now());
        let r = self
            .raw
            .update_one(
                doc! { "_id": run_id, "leaseToken": token },
                doc! { "$set": fields },
            )
            .await?;
        Ok(r.matched_count == 1)
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

    /// Takes the lease for `run_id`, or refuses naming the active run. Every take-over
    /// bumps the lease's fencing token; the lease document is never deleted, so the token
    /// only grows.
    pub async fn acquire(&self, run_id: &str, ttl: Duration) -> anyhow::Result<Lease> {
        let owner = owner_id();
        let started = boot_millis();
        let expires =
            DateTime::from_millis(DateTime::now().timestamp_millis() + ttl.as_millis() as i64);
        let fields = doc! { "runId": run_id, "owner": &owner, "expiresAt": expires, "acquiredAt": DateTime::now() };
        let mut lock = fields.clone();
        lock.insert("_id", LOCK_ID);
        lock.insert("token", 1i64);
        let token = match self.locks.insert_one(lock).await {
            Ok(_) => Some(1),
            Err(e) if is_duplicate_key(&e) => {
                // Take over an expired lease, one released, or one whose holder died here.
                let current = self.locks.find_one(doc! { "_id": LOCK_ID }).await?;
                match current {
                    Some(cur) if !lease_is_live(&cur) => self
                        .locks
                        .find_one_and_update(
                            doc! { "_id": LOCK_ID, "owner": cur.get("owner").cloned().unwrap_or(Bson::Null), "expiresAt": cur.get("expiresAt").cloned().unwrap_or(Bson::Null), "token": cur.get("token").cloned().unwrap_or(Bson::Null) },
                            doc! { "$set": fields, "$inc": { "token": 1i64 } },
                        )
                        .return_document(ReturnDocument::After)
                        .await?
                        .map(|d| token_of(&d)),
                    _ => None,
                }
            }
            Err(e) => return Err(e).context("taking the migration lease"),
        };
        let Some(token) = token else {
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
        };
        // The record follows the lease: writes of an earlier holder no longer match it.
        self.raw
            .update_one(
                doc! { "_id": run_id },
                doc! { "$set": { "leaseToken": token, "updatedAt": DateTime::now() } },
            )
            .await
            .context("taking over the run record")?;
        Ok(Lease {
            locks: self.locks.clone(),
            runs: self.raw.clone(),
            run_id: run_id.to_string(),
            owner,
            ttl,
            fence: Fence {
                state: Arc::new(FenceState {
                    token,
                    valid_until: AtomicI64::new(started + ttl.as_millis() as i64),
                    lost: AtomicBool::new(false),
                }),
                margin_ms: (ttl.as_millis() / 6) as i64,
            },
        })
    }

    /// This store, with every write of the run conditional on `fence`.
    pub fn fenced(&self, fence: Fence) -> Self {
        let mut s = self.clone();
        s.fence = Some(fence);
        s
    }

    /// Stops with [`LeaseLost`] when this store writes for a lease that is no longer held.
    pub fn check_fence(&self) -> anyhow::Result<()> {
        match &self.fence {
            Some(f) => f.check(),
            None => Ok(()),
        }
    }

    /// The filter of a write to the run record: its id, and the fencing token when fenced.
    fn record_filter(&self, run_id: &str) -> anyhow::Result<Document> {
        let mut f = doc! { "_id": run_id };
        if let Some(fence) = &self.fence {
            fence.check()?;
            f.insert("leaseToken", fence.state.token);
        }
        Ok(f)
    }

    /// Applies `update` to the run record; a fenced write that no longer matches means
    /// another process took the run over.
    async fn update_record(&self, run_id: &str, update: Document) -> anyhow::Result<()> {
        let filter = self.record_filter(run_id)?;
        let r = self.raw.update_one(filter, update).await?;
        if r.matched_count == 0 {
            if let Some(f) = &self.fence {
                f.state.lost.store(true, Ordering::SeqCst);
                return Err(LeaseLost.into());
            }
        }
        Ok(())
    }
}

/// Whether `e` is a duplicate-key error (from the base crate, where plugins find it too).
pub use heimdall_base::db::is_duplicate_key;

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
fn token_of(lock: &Document) -> i64 {
    match lock.get("token") {
        Some(Bson::Int64(t)) => *t,
        Some(Bson::Int32(t)) => *t as i64,
        _ => 0,
    }
}

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

/// Raised when a run's process finds it no longer holds the run's lease: it stops at once
/// and writes nothing more.
#[derive(Debug, thiserror::Error)]
#[error("this process lost the run's lease (it could not renew it in time, or another process took the run over)")]
pub struct LeaseLost;

/// Milliseconds of the boot clock: unlike the monotonic clock it goes on while the machine
/// sleeps, so a laptop that was closed sees how long its lease was not renewed.
fn boot_millis() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

#[derive(Debug)]
struct FenceState {
    token: i64,
    /// Boot-clock millis until which the lease is surely held.
    valid_until: AtomicI64,
    lost: AtomicBool,
}

/// A run's fencing token and whether the lease is still surely held; shared by everything
/// that writes for the run.
#[derive(Debug, Clone)]
pub struct Fence {
    state: Arc<FenceState>,
    margin_ms: i64,
}

impl Fence {
    /// The fencing token.
    pub fn token(&self) -> i64 {
        self.state.token
    }

    /// `Err(LeaseLost)` unless the lease is surely still held: not lost, and renewed
    /// recently enough that no other process can have taken it over.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.state.lost.load(Ordering::SeqCst) {
            return Err(LeaseLost.into());
        }
        if boot_millis() >= self.state.valid_until.load(Ordering::SeqCst) - self.margin_ms {
            self.state.lost.store(true, Ordering::SeqCst);
            return Err(LeaseLost.into());
        }
        Ok(())
    }

    /// Whether the lease was found lost.
    pub fn is_lost(&self) -> bool {
        self.state.lost.load(Ordering::SeqCst)
    }
}

/// The held lease of one run. Renew it with [`Lease::renew`]; release with [`Lease::release`].
#[derive(Debug)]
pub struct Lease {
    locks: Collection<Document>,
    runs: Collection<Document>,
    run_id: String,
    owner: String,
    ttl: Duration,
    fence: Fence,
}

impl Lease {
    /// How long the lease lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease's fence, for the run's writes.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Extends the lease. Returns false when the lease was lost (taken by another process).
    pub async fn renew(&self) -> anyhow::Result<bool> {
        if self.fence.is_lost() {
            return Ok(false);
        }
        let started = boot_millis();
        let expires =
            DateTime::from_millis(DateTime::now().timestamp_millis() + self.ttl.as_millis() as i64);
        let r = self
            .locks
            .update_one(
                doc! { "_id": LOCK_ID, "runId": &self.run_id, "owner": &self.owner, "token": self.fence.token() },
                doc! { "$set": { "expiresAt": expires } },
            )
            .await?;
        if r.matched_count == 1 {
            self.fence
                .state
                .valid_until
                .store(started + self.ttl.as_millis() as i64, Ordering::SeqCst);
            Ok(true)
        } else {
            self.fence.state.lost.store(true, Ordering::SeqCst);
            Ok(false)
        }
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
    /// cancel was requested or the lease was lost. Returns at `stop`, or once the lease is
    /// lost or ran out (the database did not answer a renewal in time: each call here waits
    /// a third of the lease's lifetime at most), the run then told to stop.
    pub async fn keep_alive(&self, stop: CancellationToken, cancel: CancellationToken) {
        let every = self.ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if self.fence.check().is_err() {
                tracing::error!(run = %self.run_id, "the migration lease was not renewed in time; stopping the run");
                cancel.cancel();
                return;
            }
            match tokio::time::timeout(every, self.renew()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::error!(run = %self.run_id, "the migration lease was lost; stopping the run");
                    cancel.cancel();
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the migration lease"),
                Err(_) => tracing::warn!(
                    waited = ?every,
                    "the database did not answer the lease renewal in time"
                ),
            }
            let asked = tokio::time::timeout(every, self.cancel_requested()).await;
            if matches!(asked, Ok(Ok(true))) {
                tracing::info!(run = %self.run_id, "cancel requested");
                cancel.cancel();
            }
        }
    }

    /// Gives the lease up (only if still held: the token matches). The lease document
    /// stays, with its token, so the next holder's token is higher.
    pub async fn release(&self) -> anyhow::Result<()> {
        self.locks
            .update_one(
                doc! { "_id": LOCK_ID, "runId": &self.run_id, "owner": &self.owner, "token": self.fence.token() },
                doc! { "$set": { "runId": Bson::Null, "expiresAt": DateTime::from_millis(0) } },
            )
            .await?;
        Ok(())
    }
}
