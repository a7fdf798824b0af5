//! Follow (`--follow`): once a sync's copy is done, the source's changes are applied as they
//! happen, read from its change stream, until the owner stops the run; then a last
//! catch-up and the verification. The cut-over: stop the old bot, wait for lag 0, stop the
//! run, start the new bot.
//!
//! The change stream is opened before the copy starts (its resume token is in the run
//! record), so nothing written to the source during the copy is missed; applying a change
//! the copy already saw finds the document unchanged. Each change is applied as a sync
//! applies a document: read again from the source, inserted or updated (journaled), its
//! references remapped; a deleted document is counted and listed as gone, never deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mongodb::bson::{self, doc, Bson, Document, RawDocumentBuf};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::change_stream::ChangeStream;

use super::{Engine, IdKey, RefState};
use crate::runs::StepResult;
use crate::{EventKind, RecordError, StepCounts};
use heimdall_base::error::UserError;

/// The source's change stream.
pub(super) type Stream = ChangeStream<ChangeStreamEvent<Document>>;

/// How many changes are applied together at most.
const MAX_CHANGES: usize = 500;
/// After the stop, how long the last catch-up may take before the run ends anyway.
const LAST_CATCH_UP: Duration = Duration::from_secs(30);

/// Opens the change stream of the source database (from `token` when resuming). A source
/// without change streams is refused in the owner's terms.
pub(super) async fn open(
    db: &mongodb::Database,
    token: Option<ResumeToken>,
) -> anyhow::Result<Stream> {
    let resuming = token.is_some();
    db.watch().resume_after(token).await.map_err(|e| {
        let why = heimdall_base::db::describe_db_error(&e);
        if resuming {
            UserError::bad_request(
                "follow_lost",
                format!("cannot follow the source's changes from where this run stopped ({why}): its change history no longer reaches back that far. Start a new `--sync` (it compares everything again), with `--follow` if you want to go on following."),
            )
            .into()
        } else {
            UserError::bad_request(
                "follow_unsupported",
                format!("the source does not offer change streams ({why}), which --follow needs: run its MongoDB as a replica set (a single member is enough), or repeat `--sync` instead of following."),
            )
            .into()
        }
    })
}

/// The resume token of `stream` as the run record keeps it.
pub(super) fn token_bson(stream: &Stream) -> Option<Bson> {
    stream.resume_token().and_then(|t| bson::to_bson(&t).ok())
}

/// A stored resume token.
pub(super) fn token_of(b: &Bson) -> Option<ResumeToken> {
    bson::from_bson(b.clone()).ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Engine {
    /// Applies the source's changes until the run is stopped (cancel), then catches up a
    /// last time. `steps` are the copy's results; the changes' counts are added to them.
    pub(super) async fn follow(
        &self,
        mut stream: Stream,
        steps: &mut [StepResult],
    ) -> anyhow::Result<()> {
        let mut at: HashMap<String, (usize, usize)> = HashMap::new();
        for (si, s) in steps.iter().enumerate() {
            for (ci, c) in s.collections.iter().enumerate() {
                at.insert(c.name.clone(), (si, ci));
            }
        }
        let (mut applied, mut lag_ms) = (0u64, 0u64);
        let mut reported: Option<Instant> = None;
        let mut stopping: Option<Instant> = None;
        self.store
            .set(&self.run_id, doc! { "following": true, "lagMs": 0i64 })
            .await?;
        tracing::info!(run = %self.run_id, "copy done; following the source's changes");
        loop {
            if stopping.is_none() && self.cancel.is_cancelled() {
                tracing::info!(run = %self.run_id, "stop requested; catching up a last time");
                stopping = Some(Instant::now());
            }
            // What the stream has now (a getMore at a time), up to MAX_CHANGES.
            let mut events = Vec::new();
            let caught_up = loop {
                match stream
                    .next_if_any()
                    .await
                    .context("reading the source's changes")?
                {
                    Some(ev) => {
                        events.push(ev);
                        if events.len() >= MAX_CHANGES {
                            break false;
                        }
                    }
                    None => break true,
                }
            };
            if let Some(t) = events.last().and_then(|e| e.cluster_time) {
                lag_ms = now_ms().saturating_sub(u64::from(t.time) * 1000);
            }
            if !events.is_empty() {
                applied += self.apply(events, steps, &at).await?;
            }
            if caught_up {
                lag_ms = 0;
            }
            if reported.is_none_or(|r| r.elapsed() >= Duration::from_secs(1)) || stopping.is_some()
            {
                reported = Some(Instant::now());
                let mut fields = doc! { "lagMs": lag_ms as i64, "followApplied": applied as i64 };
                if let Some(t) = token_bson(&stream) {
                    fields.insert("followToken", t);
                }
                self.store.set(&self.run_id, fields).await?;
                let mut ev = self.run_event(EventKind::Following, serde_json::Value::Null);
                ev.result = None;
                ev.lag_ms = Some(lag_ms);
                ev.record_index = Some(applied);
                ev.counts = Some(StepCounts::of(steps.iter().flat_map(|s| &s.collections)));
                self.sink.emit(&ev);
            }
            if let Some(t) = stopping {
                if caught_up || t.elapsed() >= LAST_CATCH_UP {
                    break;
                }
            }
            if caught_up {
                // Nothing new: the server's getMore may answer at once; do not spin.
                tokio::select! {
                    _ = self.cancel.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        self.store
            .set(
                &self.run_id,
                doc! { "following": false, "lagMs": lag_ms as i64, "followApplied": applied as i64 },
            )
            .await?;
        Ok(())
    }

    /// Applies a batch of changes; returns how many were about documents the run copies.
    async fn apply(
        &self,
        events: Vec<ChangeStreamEvent<Document>>,
        steps: &mut [StepResult],
        at: &HashMap<String, (usize, usize)>,
    ) -> anyhow::Result<u64> {
        let db = self.source.db.name().to_string();
        let mut upserts: BTreeMap<String, Vec<Bson>> = BTreeMap::new();
        let mut deletes: BTreeMap<String, Vec<Bson>> = BTreeMap::new();
        let mut seen: HashSet<(String, IdKey)> = HashSet::new();
        let mut applied = 0;
        // The newest change of a document decides: walked from the newest.
        for ev in events.into_iter().rev() {
            let Some(ns) = &ev.ns else { continue };
            let Some(coll) = ns.coll.as_deref() else {
                continue;
            };
            if ns.db != db || !at.contains_key(coll) {
                continue;
            }
            let Some(id) = ev.document_key.as_ref().and_then(|k| k.get("_id").cloned()) else {
                continue;
            };
            if !seen.insert((coll.to_string(), IdKey::of(&id))) {
                continue;
            }
            applied += 1;
            match ev.operation_type {
                OperationType::Insert | OperationType::Update | OperationType::Replace => {
                    upserts.entry(coll.to_string()).or_default().push(id)
                }
                OperationType::Delete => deletes.entry(coll.to_string()).or_default().push(id),
                _ => {}
            }
        }
        for (coll, ids) in upserts {
            let (si, ci) = at[&coll];
            let Some((spec, base)) = self.scope(&coll).await? else {
                continue;
            };
            let source = self.source.db.collection::<RawDocumentBuf>(spec.name);
            let handler = self.registry.clone_steps()[si].spec.handler.clone();
            let mut result = steps[si].collections[ci].clone();
            let mut errors = Vec::new();
            for chunk in ids.chunks(super::IN_CHUNK) {
                let docs = crate::find_ids(&source, &base, chunk, "reading the source").await?;
                let mut state = RefState::default();
                errors.extend(
                    self.process_batch(
                        super::BatchOf {
                            step_index: si,
                            spec: &spec,
                            handler: handler.as_ref(),
                        },
                        docs,
                        &mut state,
                        &mut result,
                        super::Compare::Content,
                    )
                    .await?,
                );
                self.merge_map(&spec, state);
            }
            result.total = result.total.max(result.processed);
            self.store
                .save_collection(&self.run_id, si, ci, &result, &errors, &[])
                .await?;
            steps[si].collections[ci] = result;
        }
        for (coll, ids) in deletes {
            let (si, ci) = at[&coll];
            let Some((spec, base)) = self.scope(&coll).await? else {
                continue;
            };
            let order = self.registry.clone_steps()[si].spec.order;
            let source = self.source.db.collection::<Document>(spec.name);
            let target = self.target.collection::<Document>(spec.name);
            let back: HashSet<IdKey> = crate::find_ids_projected(
                &source,
                &doc! {},
                &ids,
                Some(doc! { "_id": 1 }),
                "reading the source",
            )
            .await?
            .iter()
            .map(IdKey::of_doc)
            .collect();
            let absent: Vec<Bson> = ids
                .into_iter()
                .filter(|id| !back.contains(&IdKey::of(id)))
                .collect();
            // Listed by `_id`: nothing more of them is needed.
            let kept = crate::find_ids_projected(
                &target,
                &base,
                &absent,
                Some(doc! { "_id": 1 }),
                "reading the target",
            )
            .await?;
            if kept.is_empty() {
                continue;
            }
            let mut result = steps[si].collections[ci].clone();
            result.gone += kept.len() as u64;
            let listed: Vec<RecordError> = kept
                .iter()
                .map(|d| {
                    RecordError::of(
                        order,
                        spec.name,
                        d,
                        "deleted from the source while the run followed it; kept here",
                    )
                })
                .collect();
            self.store
                .save_collection(&self.run_id, si, ci, &result, &[], &listed)
                .await?;
            steps[si].collections[ci] = result;
        }
        Ok(applied)
    }

    /// A followed collection's catalog entry and the source filter selecting what the run
    /// copies of it (`None`: none of it).
    async fn scope(
        &self,
        collection: &str,
    ) -> anyhow::Result<Option<(heimdall_base::catalog::CollectionSpec, Document)>> {
        let spec = self
            .registry
            .collection(collection)
            .cloned()
            .context("a run names a collection the catalog no longer has")?;
        Ok(self.selection(&spec).await?.map(|base| (spec, base)))
    }

    /// Adds the `_id` map a batch learned (documents found under another `_id`) to what
    /// dependants rewrite their references with.
    fn merge_map(&self, spec: &heimdall_base::catalog::CollectionSpec, learned: RefState) {
        if (learned.map.is_empty() && !learned.spilled) || !self.referenced.contains(spec.name) {
            return;
        }
        let mut states = self.states.lock().expect("state lock");
        let mut state = states
            .get(spec.name)
            .map(|s| s.as_ref().clone())
            .unwrap_or_default();
        state.merge(learned);
        states.insert(spec.name, std::sync::Arc::new(state));
    }
}
