//! Undo: a run's journal played backwards, as a run of its own.
//!
//! What the run inserted is removed and what it replaced is put back as it was, byte for
//! byte — but only where the target still holds what the run wrote. A document changed
//! since is a **conflict**: left as it is and listed (collection, `_id`, which fields
//! differ), unless the owner forces it. An undo has a record, the lease, progress events,
//! cancel and resume like any run, one step per collection the journal covers; it ends with
//! a verification that reads the journal and the target again and checks every document is
//! back to its state before the run (conflicts aside). Undoing twice changes nothing the
//! second time: what is already undone is counted, not written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document, RawDocumentBuf};
use mongodb::{Collection, Database};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::clone::{fetch_raw_by_ids, IdKey, Lookup, MigrationEnv, IN_CHUNK};
use super::journal::{self, Entry, Item, Op};
use super::runs::{
    CollectionResult, CollectionVerification, RunOptions, RunRecord, RunStatus, RunStore,
    StepResult, StepStatus, Verification, VerifyTally, RUNS,
};
use super::{
    final_kind, run_under_lease, Begun, Cancelled, EventKind, MigrationMode, PendingRun,
    ProgressEvent, ProgressSink, RecordError, Throttle, MAX_RECORDED_ERRORS,
};
use heimdall_base::error::{UserError, UserErrorKind};

/// What to undo, and how.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UndoOptions {
    /// The run to undo.
    pub run_id: String,
    /// Only say what an undo would do.
    pub dry_run: bool,
    /// Undo documents changed since the run wrote them too (their changes are lost).
    pub force: bool,
    /// Who asks.
    pub started_by: String,
    /// Journal entries per batch.
    pub batch_size: usize,
}

impl UndoOptions {
    /// Undo `run_id`, conflicts left as they are, 1000 entries a batch.
    pub fn new(run_id: impl Into<String>, started_by: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            dry_run: false,
            force: false,
            started_by: started_by.into(),
            batch_size: 1000,
        }
    }
}

/// What undoing one collection would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UndoCollectionPlan {
    /// Collection.
    pub name: String,
    /// The plugin owning it.
    pub plugin: String,
    /// Journal entries (documents the run wrote).
    pub entries: u64,
    /// Inserted by the run and unchanged: would be removed.
    pub to_remove: u64,
    /// Replaced by the run and unchanged: would be put back.
    pub to_restore: u64,
    /// Already as before the run (an earlier undo, or removed since).
    pub already_undone: u64,
    /// Changed since the run wrote them: left as they are (or undone with `force`).
    pub conflicts: u64,
}

/// The plan of an undo: nothing was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UndoPlan {
    /// `undo`.
    pub mode: MigrationMode,
    /// Always true.
    pub dry_run: bool,
    /// The run it would undo.
    pub undoes: String,
    /// That run's mode.
    pub undoes_mode: MigrationMode,
    /// Whether conflicts would be undone too.
    pub force: bool,
    /// Per collection.
    pub collections: Vec<UndoCollectionPlan>,
    /// The conflicts (the first [`MAX_RECORDED_ERRORS`]), with what differs.
    pub conflicts: Vec<RecordError>,
    /// How many conflicts in all.
    pub conflict_count: u64,
}

/// What [`start`] returns.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `dry_run`: the plan.
    Plan(UndoPlan),
    /// The undo run's record as it ended.
    Run(Box<RunRecord>),
}

/// Undoes a run: checks, then the plan (dry run) or the undo run to its end.
pub async fn start(
    env: &MigrationEnv,
    opts: UndoOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Outcome> {
    Ok(match begin(env, opts, sink, cancel).await? {
        Begun::Plan(p) => Outcome::Plan(p),
        Begun::Run(r) => Outcome::Run(Box::new(r.run().await?)),
    })
}

fn refuse(code: &'static str, message: String) -> anyhow::Error {
    UserError::new(UserErrorKind::Conflict, code, message).into()
}

/// Whether `original` can be undone at all.
async fn check_undoable(store: &RunStore, original: &RunRecord) -> anyhow::Result<()> {
    let id = &original.id;
    if original.mode == MigrationMode::Undo {
        return Err(refuse(
            "undo_of_undo",
            format!("run {id} is itself an undo; to bring back what it removed, run the migration again"),
        ));
    }
    if let Some(at) = original.journal_pruned_at {
        let when = at.try_to_rfc3339_string().unwrap_or_default();
        return Err(refuse(
            "journal_pruned",
            format!("run {id} cannot be undone: its journal was pruned on {when} (`heimdall migrate prune`)"),
        ));
    }
    if !original.journal {
        return Err(refuse(
            "no_journal",
            format!("run {id} cannot be undone: it ran before Heimdall kept a journal of what runs write"),
        ));
    }
    if store
        .active_lease()
        .await?
        .is_some_and(|l| l.get_str("runId") == Ok(id.as_str()))
    {
        return Err(refuse(
            "run_active",
            format!("run {id} is still running; cancel it first (`heimdall migrate cancel {id}`), then undo it"),
        ));
    }
    Ok(())
}

/// The steps of an undo of `original`: one per collection its journal covers, dependants
/// first (the reverse of the catalog's order).
fn undo_steps(env: &MigrationEnv, original: &RunRecord) -> Vec<StepResult> {
    let catalog = env.registry.collections();
    let position = |c: &str| catalog.iter().position(|r| r.spec.name == c);
    let mut names = original.journaled.clone();
    names.sort_by_key(|c| std::cmp::Reverse(position(c).unwrap_or(usize::MAX)));
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| StepResult {
            order: i as u16 + 1,
            label: format!("Undo {name}"),
            plugin: position(&name)
                .map(|p| catalog[p].plugin.to_string())
                .unwrap_or_default(),
            status: StepStatus::Pending,
            collections: vec![CollectionResult {
                name,
                ..Default::default()
            }],
            skipped_collections: Vec::new(),
        })
        .collect()
}

/// Checks, then the plan (dry run) or an undo run holding the lease with its record
/// written, ready to execute.
pub async fn begin(
    env: &MigrationEnv,
    opts: UndoOptions,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<Begun<UndoPlan>> {
    let store = RunStore::new(&env.target);
    let original = store.require(&opts.run_id).await?;
    check_undoable(&store, &original).await?;
    let steps = undo_steps(env, &original);
    let run_id = super::clone::new_run_id();
    if opts.dry_run {
        let engine = Undo::new(env, &opts, &original, steps.len(), sink, cancel, run_id);
        return engine.plan(steps, original.mode).await.map(Begun::Plan);
    }
    let lease = store.acquire(&run_id, env.lease_ttl).await?;
    let record = RunRecord::started(
        &run_id,
        MigrationMode::Undo,
        RunOptions {
            source: format!("run {}", original.id),
            undoes: Some(original.id.clone()),
            force: opts.force,
            started_by: opts.started_by.clone(),
            batch_size: opts.batch_size as u32,
            guild: original.options.guild.clone(),
            ..RunOptions::default()
        },
        steps,
        lease.fence().token(),
    );
    let created = async {
        store.create(&record).await?;
        // From now on the undone run cannot be resumed: it would copy again only the part
        // after its checkpoints.
        env.target
            .collection::<Document>(RUNS)
            .update_one(
                doc! { "_id": &original.id, "undoneBy": { "$exists": false } },
                doc! { "$set": { "undoneBy": &run_id } },
            )
            .await
            .context("marking the run undone")?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = created {
        let _ = lease.release().await;
        return Err(e);
    }
    let watch = super::StallWatch::new(sink, env.stall_after);
    let engine = Undo::new(
        env,
        &opts,
        &original,
        record.steps.len(),
        watch.clone(),
        cancel,
        run_id.clone(),
    );
    Ok(Begun::Run(
        PendingRun::new(run_id, Box::pin(engine.execute(record, lease))).watched(watch),
    ))
}

/// Takes the lease of a stopped undo run and continues it from its checkpoints.
pub(crate) async fn begin_resume(
    env: &MigrationEnv,
    mut record: RunRecord,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> anyhow::Result<PendingRun> {
    let store = RunStore::new(&env.target);
    let undoes = record
        .options
        .undoes
        .clone()
        .context("an undo run without the run it undoes")?;
    let original = store.require(&undoes).await?;
    let lease = store.acquire(&record.id, env.lease_ttl).await?;
    let fenced = store.fenced(lease.fence());
    record.status = RunStatus::Running;
    record.attempts += 1;
    let marked = fenced
        .set(
            &record.id,
            doc! { "status": RunStatus::Running.as_str(), "attempts": record.attempts as i32, "cancelRequested": false, "message": Bson::Null },
        )
        .await;
    if let Err(e) = marked {
        let _ = lease.release().await;
        return Err(e);
    }
    let opts = UndoOptions {
        run_id: undoes,
        dry_run: false,
        force: record.options.force,
        started_by: record.started_by.clone(),
        batch_size: (record.options.batch_size as usize).max(1),
    };
    let watch = super::StallWatch::new(sink, env.stall_after);
    let id = record.id.clone();
    let engine = Undo::new(
        env,
        &opts,
        &original,
        record.steps.len(),
        watch.clone(),
        cancel,
        id.clone(),
    );
    Ok(PendingRun::new(id, Box::pin(engine.execute(record, lease))).watched(watch))
}

/// What to do with one journal entry.
enum Fate {
    /// Inserted by the run, unchanged: remove it.
    Remove,
    /// Replaced by the run, unchanged: put this back.
    Restore(RawDocumentBuf),
    /// Already as before the run.
    Done,
    /// Changed since the run wrote it: what differs, and what forcing it would do.
    Conflict(String, Box<Fate>),
    /// The journal misses the before-image (it cannot be restored).
    Broken(String),
}

/// The engine of one undo (or its plan).
struct Undo {
    target: Database,
    sink: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
    run_id: String,
    undoes: String,
    force: bool,
    batch_size: usize,
    store: RunStore,
    total: u16,
    completed: AtomicU16,
    clock: super::RunClock,
    fail_point: Option<super::FailPoint>,
}

/// Counts of one batch, and its listed records.
#[derive(Default)]
struct BatchOutcome {
    errors: Vec<RecordError>,
    conflicts: Vec<RecordError>,
    forced: u64,
}

impl Undo {
    fn new(
        env: &MigrationEnv,
        opts: &UndoOptions,
        original: &RunRecord,
        total: usize,
        sink: Arc<dyn ProgressSink>,
        cancel: CancellationToken,
        run_id: String,
    ) -> Self {
        Self {
            target: env.target.clone(),
            sink,
            cancel,
            run_id,
            undoes: original.id.clone(),
            force: opts.force,
            batch_size: opts.batch_size.max(1),
            store: RunStore::new(&env.target),
            total: total as u16,
            completed: AtomicU16::new(0),
            clock: super::RunClock::new(total),
            fail_point: env.fail_point.clone(),
        }
    }

    fn event(&self, kind: EventKind, step: &StepResult) -> ProgressEvent {
        ProgressEvent {
            kind: Some(kind),
            run_id: self.run_id.clone(),
            mode: MigrationMode::Undo,
            step: step.order,
            label: step.label.clone(),
            plugin: step.plugin.clone(),
            completed: self.completed.load(Ordering::SeqCst),
            total: self.total,
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

    fn entries(&self) -> Collection<Document> {
        self.target.collection(journal::JOURNAL)
    }

    /// The collection's next journal entry after `after` (an entry `_id`; the first when
    /// empty).
    async fn next_entry(&self, collection: &str, after: &str) -> anyhow::Result<Option<Entry>> {
        let prefix = journal::entry_prefix(&self.undoes, Some(collection), None);
        self.entries()
            .find_one(journal::under(&prefix, after))
            .sort(doc! { "_id": 1 })
            .await
            .context("reading the run's journal")?
            .map(|d| Entry::from_doc(&d))
            .transpose()
    }

    /// How many documents the collection's journal entries name.
    async fn count_items(&self, collection: &str) -> anyhow::Result<u64> {
        let prefix = journal::entry_prefix(&self.undoes, Some(collection), None);
        let mut cursor = self
            .entries()
            .aggregate([
                doc! { "$match": journal::under(&prefix, "") },
                doc! { "$group": { "_id": Bson::Null, "n": { "$sum": { "$size": "$e" } } } },
            ])
            .await
            .context("counting the run's journal")?;
        Ok(
            match cursor
                .try_next()
                .await
                .context("counting the run's journal")?
            {
                Some(d) => d
                    .get_i64("n")
                    .or_else(|_| d.get_i32("n").map(i64::from))
                    .unwrap_or(0) as u64,
                None => 0,
            },
        )
    }

    /// The target documents and before-images some items of an entry are about.
    async fn read_state(
        &self,
        collection: &str,
        entry: &Entry,
        items: &[Item],
    ) -> anyhow::Result<(
        HashMap<IdKey, RawDocumentBuf>,
        HashMap<IdKey, RawDocumentBuf>,
    )> {
        let ids: Vec<Bson> = items.iter().map(|m| m.id.clone()).collect();
        let lookup = if entry.stretch {
            Lookup::Stretch
        } else {
            Lookup::Points
        };
        let now = fetch_raw_by_ids(
            &self.target.collection::<RawDocumentBuf>(collection),
            &ids,
            lookup,
        )
        .await
        .context("reading the target")?;
        let before = if entry.op == Op::Replace {
            fetch_raw_by_ids(
                &self
                    .target
                    .collection::<RawDocumentBuf>(&journal::before_collection(
                        &self.undoes,
                        collection,
                    )),
                &ids,
                Lookup::Points,
            )
            .await
            .context("reading the run's before-images")?
        } else {
            HashMap::new()
        };
        Ok((now, before))
    }

    /// Of the replaced `items` now absent from the target, those the run had inserted
    /// first (a resumed run): absent is their state before the run.
    async fn inserted_first(
        &self,
        collection: &str,
        entry: &Entry,
        items: &[Item],
        now: &HashMap<IdKey, RawDocumentBuf>,
    ) -> anyhow::Result<std::collections::HashSet<IdKey>> {
        let mut out = std::collections::HashSet::new();
        if entry.op != Op::Replace {
            return Ok(out);
        }
        for m in items {
            let key = IdKey::of(&m.id);
            if !now.contains_key(&key)
                && journal::inserted_by(&self.target, &self.undoes, collection, &m.id).await?
            {
                out.insert(key);
            }
        }
        Ok(out)
    }

    /// What to do with one item, given the document now and its before-image.
    fn fate(
        op: Op,
        m: &Item,
        now: Option<&RawDocumentBuf>,
        before: Option<&RawDocumentBuf>,
    ) -> anyhow::Result<Fate> {
        let now_digest = now.map(|d| journal::digest(d)).transpose()?;
        Ok(match op {
            Op::Insert => match (now, now_digest) {
                (None, _) => Fate::Done,
                (Some(_), Some(h)) if h == m.written => Fate::Remove,
                (Some(d), _) => Fate::Conflict(
                    journal::what_differs(m.fields.as_deref(), d),
                    Box::new(Fate::Remove),
                ),
            },
            Op::Replace => {
                let Some(before) = before else {
                    return Ok(Fate::Broken(
                        "its before-image is missing from the journal; it cannot be restored"
                            .into(),
                    ));
                };
                let before_digest = journal::digest(before)?;
                match (now, now_digest) {
                    (Some(_), Some(h)) if h == before_digest => Fate::Done,
                    (Some(_), Some(h)) if h == m.written => Fate::Restore(before.clone()),
                    (Some(d), _) => Fate::Conflict(
                        journal::what_differs(m.fields.as_deref(), d),
                        Box::new(Fate::Restore(before.clone())),
                    ),
                    (None, _) => Fate::Conflict(
                        "removed since the run replaced it".into(),
                        Box::new(Fate::Restore(before.clone())),
                    ),
                }
            }
        })
    }

    /// Decides (and, with `write`, applies) some items of one entry.
    async fn batch(
        &self,
        order: u16,
        collection: &str,
        entry: &Entry,
        items: &[Item],
        write: bool,
        result: &mut CollectionResult,
    ) -> anyhow::Result<BatchOutcome> {
        let (now, before) = self.read_state(collection, entry, items).await?;
        let gone_first = self.inserted_first(collection, entry, items, &now).await?;
        let mut out = BatchOutcome::default();
        let mut removes: Vec<Bson> = Vec::new();
        let mut restores: Vec<(Bson, RawDocumentBuf)> = Vec::new();
        for m in items {
            let key = IdKey::of(&m.id);
            let listed = doc! { "_id": m.id.clone() };
            let mut fate = if gone_first.contains(&key) {
                Fate::Done
            } else {
                Self::fate(entry.op, m, now.get(&key), before.get(&key))?
            };
            if let Fate::Conflict(why, then) = fate {
                result.conflicts += 1;
                if !self.force {
                    out.conflicts.push(RecordError::of(
                        order,
                        collection,
                        &listed,
                        format!(
                            "conflict: {why}; left as it is (undo with --force to undo it anyway)"
                        ),
                    ));
                    continue;
                }
                out.forced += 1;
                fate = *then;
            }
            match fate {
                Fate::Remove => {
                    result.removed += 1;
                    removes.push(m.id.clone());
                }
                Fate::Restore(b) => {
                    result.restored += 1;
                    restores.push((m.id.clone(), b));
                }
                Fate::Done => result.skipped += 1,
                Fate::Broken(why) => {
                    result.failed += 1;
                    out.errors
                        .push(RecordError::of(order, collection, &listed, why));
                }
                Fate::Conflict(..) => unreachable!("resolved above"),
            }
        }
        result.processed += items.len() as u64;
        if !write {
            return Ok(out);
        }
        let target = self.target.collection::<RawDocumentBuf>(collection);
        for chunk in removes.chunks(IN_CHUNK) {
            self.store.check_fence()?;
            target
                .delete_many(doc! { "_id": { "$in": chunk.to_vec() } })
                .await
                .context("removing what the run inserted")?;
        }
        for (id, b) in restores {
            self.store.check_fence()?;
            target
                .replace_one(doc! { "_id": id }, b)
                .upsert(true)
                .await
                .context("restoring what the run replaced")?;
        }
        Ok(out)
    }

    /// Undoes (or plans) one collection from its checkpoint.
    async fn undo_collection(
        &self,
        step_index: usize,
        step: &StepResult,
        mut result: CollectionResult,
        write: bool,
        plan_conflicts: &mut Vec<RecordError>,
    ) -> anyhow::Result<CollectionResult> {
        if result.done {
            return Ok(result);
        }
        let name = result.name.clone();
        result.total = self.count_items(&name).await?.max(result.processed);
        let mut after = match &result.last_id {
            Some(Bson::String(s)) => s.clone(),
            _ => String::new(),
        };
        let mut throttle = Throttle::new(10);
        let started = std::time::Instant::now();
        let at_start = result.processed;
        let mut batches = 0u64;
        // One entry at a time, its items `batch_size` at a time; the checkpoint is the entry
        // (handled again whole after a crash: each item's fate is decided from the target).
        while let Some(entry) = self.next_entry(&name, &after).await? {
            after = entry.key.clone();
            batches += 1;
            let mut out = BatchOutcome::default();
            for items in entry.items.chunks(self.batch_size) {
                let o = self
                    .batch(step.order, &name, &entry, items, write, &mut result)
                    .await?;
                out.errors.extend(o.errors);
                out.conflicts.extend(o.conflicts);
                out.forced += o.forced;
            }
            result.last_id = Some(Bson::String(after.clone()));
            if write {
                self.store
                    .save_collection(
                        &self.run_id,
                        step_index,
                        0,
                        &result,
                        &out.errors,
                        &out.conflicts,
                    )
                    .await?;
                if out.forced > 0 {
                    self.store
                        .update(
                            &self.run_id,
                            doc! { "$inc": { "forced": out.forced as i64 } },
                        )
                        .await?;
                }
            } else {
                let room = MAX_RECORDED_ERRORS.saturating_sub(plan_conflicts.len());
                plan_conflicts.extend(out.conflicts.into_iter().take(room));
            }
            self.clock.step(step_index, result.processed);
            if throttle.allow(result.processed, result.total) {
                let mut p = self.event(EventKind::StepProgress, step);
                p.collection = Some(name.clone());
                p.run_pace = Some(self.clock.pace());
                p.record_index = Some(result.processed);
                p.record_total = Some(result.total);
                p.counts = Some(super::StepCounts::of([&result]));
                p.pace = Some(super::Pace::of(
                    started,
                    result.processed - at_start,
                    result.total.saturating_sub(at_start),
                ));
                self.sink.emit(&p);
            }
            if self.cancel.is_cancelled()
                || (write && super::FailPoint::hit(&self.fail_point, &name, batches))
            {
                return Err(Cancelled.into());
            }
        }
        result.done = true;
        if write {
            self.store
                .save_collection(&self.run_id, step_index, 0, &result, &[], &[])
                .await?;
        }
        Ok(result)
    }

    /// The undo's size, for its pace: every journal item of every step, and what earlier
    /// attempts did.
    async fn measure(&self, steps: &[StepResult]) -> anyhow::Result<()> {
        let (mut total, mut before) = (0, 0);
        for (i, s) in steps.iter().enumerate() {
            let c = &s.collections[0];
            total += if c.done {
                c.processed
            } else {
                self.count_items(&c.name).await?.max(c.processed)
            };
            before += c.processed;
            self.clock.step(i, c.processed);
        }
        self.clock.set_total(total, before);
        Ok(())
    }

    /// One step (one collection), with its events.
    async fn run_step(
        &self,
        index: usize,
        mut step: StepResult,
        write: bool,
        plan_conflicts: &mut Vec<RecordError>,
    ) -> anyhow::Result<StepResult> {
        if step.status == StepStatus::Completed {
            self.completed.fetch_add(1, Ordering::SeqCst);
            return Ok(step);
        }
        self.sink.emit(&self.event(EventKind::StepStart, &step));
        if write {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Running)
                .await?;
        }
        let c = step.collections[0].clone();
        step.collections[0] = self
            .undo_collection(index, &step, c, write, plan_conflicts)
            .await?;
        step.status = StepStatus::Completed;
        if write {
            self.store
                .set_step_status(&self.run_id, index, StepStatus::Completed)
                .await?;
        }
        self.completed.fetch_add(1, Ordering::SeqCst);
        let mut ev = self.event(EventKind::StepComplete, &step);
        ev.record_index = Some(step.collections[0].processed);
        ev.record_total = Some(step.collections[0].total);
        ev.result = Some(serde_json::to_value(&step)?);
        self.sink.emit(&ev);
        Ok(step)
    }

    /// Reads the journal and the target again: is every document the run wrote back to
    /// its state before the run (absent, or byte for byte its before-image)?
    async fn verify_collection(
        &self,
        order: u16,
        name: &str,
    ) -> anyhow::Result<CollectionVerification> {
        let mut tally = VerifyTally::default();
        let mut after = String::new();
        while let Some(entry) = self.next_entry(name, &after).await? {
            after = entry.key.clone();
            for items in entry.items.chunks(self.batch_size) {
                let (now, before) = self.read_state(name, &entry, items).await?;
                let gone_first = self.inserted_first(name, &entry, items, &now).await?;
                for m in items {
                    let key = IdKey::of(&m.id);
                    let expected = match entry.op {
                        Op::Insert => 0,
                        _ if gone_first.contains(&key) => 0,
                        Op::Replace => match before.get(&key) {
                            Some(b) => journal::digest(b)?,
                            None => {
                                tally.add_source(0);
                                tally.add_absent(true, &super::short_id_text(&m.id));
                                continue;
                            }
                        },
                    };
                    tally.add_source(expected as u64);
                    let current = now.get(&key).map(|d| journal::digest(d)).transpose()?;
                    match current {
                        None if expected == 0 => tally.add_found(0, 0),
                        Some(h) if h == expected && expected != 0 => {
                            tally.add_found(expected as u64, h as u64)
                        }
                        // Still as the run left it: not undone.
                        Some(h) if h == m.written => {
                            tally.add_absent(false, &super::short_id_text(&m.id))
                        }
                        // Changed by someone else since: a conflict.
                        h => tally.add_found(expected as u64, h.unwrap_or(0) as u64),
                    }
                }
            }
        }
        let allowed = if self.force { 0 } else { u64::MAX };
        Ok(tally.report(order, name, allowed))
    }

    /// A dry run: what undoing would do, nothing written.
    async fn plan(
        self,
        steps: Vec<StepResult>,
        undoes_mode: MigrationMode,
    ) -> anyhow::Result<UndoPlan> {
        self.measure(&steps).await?;
        let mut conflicts = Vec::new();
        let mut collections = Vec::new();
        let mut conflict_count = 0;
        for (i, s) in steps.into_iter().enumerate() {
            let s = self.run_step(i, s, false, &mut conflicts).await?;
            let c = &s.collections[0];
            conflict_count += c.conflicts;
            collections.push(UndoCollectionPlan {
                name: c.name.clone(),
                plugin: s.plugin.clone(),
                entries: c.processed,
                to_remove: c.removed,
                to_restore: c.restored,
                already_undone: c.skipped,
                conflicts: c.conflicts,
            });
        }
        Ok(UndoPlan {
            mode: MigrationMode::Undo,
            dry_run: true,
            undoes: self.undoes.clone(),
            undoes_mode,
            force: self.force,
            collections,
            conflicts,
            conflict_count,
        })
    }

    /// Undoes every collection, verifies, and closes the record.
    async fn execute(
        mut self,
        record: RunRecord,
        lease: super::runs::Lease,
    ) -> anyhow::Result<RunRecord> {
        self.store = self.store.fenced(lease.fence());
        let me = Arc::new(self);
        let work = async {
            let t0 = std::time::Instant::now();
            me.measure(&record.steps).await?;
            let mut checks = Vec::new();
            let mut unused = Vec::new();
            for (i, s) in record.steps.iter().enumerate() {
                let span = tracing::info_span!("undo_step", run = %me.run_id, step = s.order, collection = %s.collections[0].name);
                let s = me
                    .run_step(i, s.clone(), true, &mut unused)
                    .instrument(span)
                    .await?;
                checks.push((s.order, s.collections[0].name.clone()));
            }
            let copied = std::time::Instant::now();
            let mut verified = Vec::new();
            for (order, name) in checks {
                verified.push(me.verify_collection(order, &name).await?);
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
            let mut v = Verification::of(verified);
            v.undo = true;
            anyhow::Ok(v)
        }
        .instrument(tracing::info_span!("undo_run", run = %me.run_id, undoes = %me.undoes));
        let record = run_under_lease(&me.store, lease, &me.run_id, me.cancel.clone(), work).await?;
        let ev = ProgressEvent {
            kind: Some(final_kind(&record)),
            run_id: me.run_id.clone(),
            mode: MigrationMode::Undo,
            step: 0,
            label: "Undo".into(),
            plugin: String::new(),
            completed: me.completed.load(Ordering::SeqCst),
            total: me.total,
            record_index: None,
            record_total: None,
            counts: None,
            stalled_since: None,
            lag_ms: None,
            collection: None,
            run_pace: None,
            pace: None,
            result: Some(record.to_json()),
        };
        me.sink.emit(&ev);
        Ok(record)
    }
}

/// What [`prune`] dropped.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Runs whose journal was dropped (they can no longer be undone).
    pub runs: Vec<String>,
    /// Journal entries dropped.
    pub entries: u64,
}

/// Drops the journals of runs last written more than `older_than` ago (a run alive in
/// some process keeps its journal). Those runs can no longer be undone; their records say so.
pub async fn prune(db: &Database, older_than: Duration) -> anyhow::Result<PruneReport> {
    let cutoff = DateTime::from_millis(
        DateTime::now().timestamp_millis() - older_than.as_millis().min(i64::MAX as u128) as i64,
    );
    let runs = db.collection::<Document>(RUNS);
    let ids: Vec<String> = runs
        .find(doc! {
            "journal": true,
            "journalPrunedAt": { "$exists": false },
            "updatedAt": { "$lt": cutoff },
        })
        .projection(doc! { "_id": 1 })
        .await
        .context("listing runs to prune")?
        .try_collect::<Vec<_>>()
        .await
        .context("listing runs to prune")?
        .into_iter()
        .filter_map(|d| d.get_str("_id").ok().map(String::from))
        .collect();
    // A run alive somewhere keeps its journal whatever its age.
    let live = RunStore::new(db)
        .active_lease()
        .await?
        .and_then(|l| l.get_str("runId").ok().map(String::from));
    let mut report = PruneReport::default();
    for id in ids.into_iter().filter(|id| Some(id) != live.as_ref()) {
        report.entries += journal::drop_journal(db, &id).await?;
        runs.update_one(
            doc! { "_id": &id },
            doc! { "$set": { "journalPrunedAt": DateTime::now() } },
        )
        .await
        .context("marking a pruned run")?;
        report.runs.push(id);
    }
    Ok(report)
}

/// Parses an age such as `30d`, `12h`, `90m` or `3600s` (a bare number is days).
pub fn parse_age(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| {
        UserError::bad_request(
            "invalid_age",
            format!("{s:?} is not an age: write a number and a unit, e.g. 30d, 12h, 90m"),
        )
    })?;
    let secs = match unit {
        "" | "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => {
            return Err(UserError::bad_request(
                "invalid_age",
                format!("{s:?}: the unit must be d, h, m or s, e.g. 30d"),
            )
            .into())
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_owners_write_them() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("7").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_age("0s").unwrap(), Duration::ZERO);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("3w").is_err());
    }
}
