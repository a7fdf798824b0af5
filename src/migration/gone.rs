//! Sync: the target documents an earlier run from the same source inserted and that the
//! source no longer has ("gone"). Counted and listed, never deleted.
//!
//! A sync's verification reads every in-scope source document again, in `_id` order, and
//! the target over the same `_id`s. When a collection's `_id`s are all ObjectIds or all
//! strings and the whole collection is in scope, those target reads are made contiguous:
//! batch *k* reads the target's `_id`s in (last of batch *k−1*, last of batch *k*], then
//! one read takes what lies beyond the last, and index ranges the other `_id` types, until
//! the documents met add up to the collection's count. A target document those reads meet
//! that the source batch does not hold is a *candidate*; with nothing changed there are
//! none, so finding what is gone costs no read of its own. Candidates are checked against
//! the source (by `_id`, then by unique key: a remapped copy is not gone), the scope, and
//! only then the earlier runs' insert entries in the journal. Any other collection (mixed `_id` types, a
//! guild filter) is checked the long way: every earlier insert entry against the source.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use mongodb::Collection;

use super::{
    existing_in, fetch_raw_ids, identity, key_of, raw_id, raw_to_bson, Engine, IdKey, Lookup,
};
use crate::id_order::{bracket, whole_bracket, BRACKET_COUNT};
use crate::journal::{entry_prefix, under, Op, JOURNAL};
use crate::RecordError;
use heimdall_base::catalog::CollectionSpec;

/// How many candidates are checked against the source together.
const CANDIDATE_CHUNK: usize = 1_000;
/// How many candidates the source lacks are held before the journal is read for them.
const UNSEEN_LIMIT: usize = 50_000;

/// What a sync's verification carries along one collection to find what is gone.
#[derive(Debug)]
pub(super) struct GoneScan {
    /// Whether the target reads are still contiguous windows (else: the long way).
    windows: bool,
    /// The last source `_id` read, the next window's lower bound.
    prev: Option<Bson>,
    /// Target `_id`s met in windows that the source batch lacks.
    candidates: Vec<Bson>,
    /// Candidates the source lacks, in scope: looked up in the journal.
    unseen: Vec<Bson>,
    /// Target documents the windows and the last reads met: all of the collection's
    /// when nothing escaped them.
    seen: u64,
    /// Documents found gone so far.
    pub gone: u64,
}

impl GoneScan {
    /// A scan that can use windows when `in_full` (no guild filter on the collection).
    pub(super) fn new(in_full: bool) -> Self {
        Self {
            windows: in_full,
            prev: None,
            candidates: Vec::new(),
            unseen: Vec::new(),
            seen: 0,
            gone: 0,
        }
    }

    /// The target filter covering the window of this batch of source `_id`s (in `_id`
    /// order), or `None` when the batch cannot be read as a window (and the scan goes the
    /// long way from now on).
    pub(super) fn window(&mut self, ids: &[Bson]) -> Option<Document> {
        if !self.windows {
            return None;
        }
        let last = ids.last()?;
        let same = |b: &Bson| {
            matches!(
                (b, last),
                (Bson::ObjectId(_), Bson::ObjectId(_)) | (Bson::String(_), Bson::String(_))
            )
        };
        let homogeneous = ids.iter().all(same)
            && self
                .prev
                .as_ref()
                .is_none_or(|p| bracket(p) == bracket(last));
        if !homogeneous {
            self.windows = false;
            self.candidates.clear();
            self.unseen.clear();
            return None;
        }
        let filter = match self.prev.replace(last.clone()) {
            Some(prev) => doc! { "_id": { "$gt": prev, "$lte": last.clone() } },
            // `$lte` compares within the bracket only: every smaller ObjectId (or string).
            None => doc! { "_id": { "$lte": last.clone() } },
        };
        Some(filter)
    }

    /// The target reads for what no window covered, in stages: above the last window,
    /// then every other `_id` type, each an index range. `None` when the scan goes the
    /// long way.
    fn rest(&self) -> Option<[Vec<Document>; 2]> {
        if !self.windows {
            return None;
        }
        let covered = self.prev.as_ref().map(bracket);
        let above = self
            .prev
            .iter()
            .map(|last| doc! { "_id": { "$gt": last.clone() } })
            .collect();
        let others = (0..BRACKET_COUNT)
            .filter(|b| Some(*b) != covered)
            .flat_map(whole_bracket)
            .collect();
        Some([above, others])
    }
}

/// The `_id`s a journal entry covers (its `e.i`), as they lie in it.
fn entry_ids(raw: &RawDocument) -> impl Iterator<Item = RawBsonRef<'_>> {
    raw.get_array("e")
        .ok()
        .into_iter()
        .flat_map(|items| items.into_iter().flatten())
        .filter_map(|item| item.as_document().and_then(|d| d.get("i").ok().flatten()))
}

impl Engine {
    /// The runs whose insert entries count: the earlier runs from this source, and this
    /// one (a document it copied may have been deleted since, while it followed).
    fn gone_runs(&self) -> impl Iterator<Item = &str> {
        self.prior_runs
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.run_id.as_str()))
    }

    /// Reads one window of the target: the documents with one of `ids` (returned), and
    /// the others met noted as candidates.
    pub(super) async fn read_window(
        &self,
        order: u16,
        spec: &CollectionSpec,
        target: &Collection<RawDocumentBuf>,
        filter: Document,
        ids: &[Bson],
        scan: &mut GoneScan,
    ) -> anyhow::Result<HashMap<IdKey, RawDocumentBuf>> {
        let wanted: HashSet<IdKey> = ids.iter().map(IdKey::of).collect();
        let mut out = HashMap::with_capacity(ids.len());
        let mut cursor = target
            .find(filter)
            .await
            .context("reading the target to verify the copy")?;
        while let Some(d) = cursor
            .try_next()
            .await
            .context("reading the target to verify the copy")?
        {
            let Some(id) = raw_id(&d) else { continue };
            let key = IdKey::of_raw(id);
            if wanted.contains(&key) {
                scan.seen += 1;
                out.insert(key, d);
            } else {
                self.meet(order, spec, scan, id).await?;
            }
        }
        Ok(out)
    }

    /// Ends the scan of one collection: what lies beyond the windows, then the journal.
    /// Returns how many documents are gone (listed in the run record's skips).
    pub(super) async fn finish_gone(
        &self,
        order: u16,
        spec: &CollectionSpec,
        base: &Document,
        mut scan: GoneScan,
    ) -> anyhow::Result<u64> {
        let Some(rest) = scan.rest() else {
            return self.find_gone(order, spec, base).await;
        };
        let target = self.target.collection::<RawDocumentBuf>(spec.name);
        // Proof that nothing escaped: every target document met (the collection's count,
        // from its metadata). Other `_id` types are read only when the count says some
        // document is still unmet; still unmet after them (a write during the run, an
        // `_id` of a kind no range covers): the long way.
        let total = target
            .estimated_document_count()
            .await
            .context("counting the target's documents")?;
        for stage in rest {
            if scan.seen == total {
                break;
            }
            for filter in stage {
                let mut cursor = target
                    .find(filter)
                    .projection(doc! { "_id": 1 })
                    .await
                    .context("reading the target to verify the copy")?;
                while let Some(d) = cursor
                    .try_next()
                    .await
                    .context("reading the target to verify the copy")?
                {
                    if let Some(id) = raw_id(&d) {
                        self.meet(order, spec, &mut scan, id).await?;
                    }
                }
            }
        }
        if total != scan.seen {
            tracing::info!(
                collection = spec.name,
                total,
                seen = scan.seen,
                "the target changed while it was read; looking for what is gone the long way"
            );
            return self.find_gone(order, spec, base).await;
        }
        self.sift(order, spec, &mut scan).await?;
        self.look_up_unseen(order, spec, &mut scan).await?;
        Ok(scan.gone)
    }

    /// Counts a target document the source batch does not hold and keeps it as a
    /// candidate, sifting the candidates when enough are held.
    async fn meet(
        &self,
        order: u16,
        spec: &CollectionSpec,
        scan: &mut GoneScan,
        id: RawBsonRef<'_>,
    ) -> anyhow::Result<()> {
        scan.seen += 1;
        scan.candidates.push(raw_to_bson(id)?);
        if scan.candidates.len() >= CANDIDATE_CHUNK {
            self.sift(order, spec, scan).await?;
        }
        Ok(())
    }

    /// Drops the candidates the source still has; keeps the others for the journal,
    /// reading it when enough are held.
    async fn sift(
        &self,
        order: u16,
        spec: &CollectionSpec,
        scan: &mut GoneScan,
    ) -> anyhow::Result<()> {
        if scan.candidates.is_empty() {
            return Ok(());
        }
        let candidates = std::mem::take(&mut scan.candidates);
        let absent = self.not_in_source(spec, candidates).await?;
        scan.unseen.extend(absent);
        if scan.unseen.len() >= UNSEEN_LIMIT {
            self.look_up_unseen(order, spec, scan).await?;
        }
        Ok(())
    }

    /// Those of `ids` (target `_id`s) the source has no counterpart of: not by `_id`, nor
    /// by unique key (a copy remapped to another `_id` is not gone).
    async fn not_in_source(
        &self,
        spec: &CollectionSpec,
        ids: Vec<Bson>,
    ) -> anyhow::Result<Vec<Bson>> {
        let source = self.source.db.collection::<RawDocumentBuf>(spec.name);
        let present = fetch_raw_ids(&source, &ids, Lookup::Points)
            .await
            .context("looking for copied documents in the source")?;
        let mut absent: Vec<Bson> = ids
            .into_iter()
            .filter(|id| !present.contains(&IdKey::of(id)))
            .collect();
        if !absent.is_empty() && !spec.unique_key.is_empty() {
            let target = self.target.collection::<Document>(spec.name);
            let docs = crate::find_ids_projected(
                &target,
                &Document::new(),
                &absent,
                Some(crate::clone::key_projection(spec)),
                "reading the target",
            )
            .await?;
            let keys: Vec<Document> = docs.iter().map(|d| identity(spec, d)).collect();
            let in_source = existing_in(&self.source.db, spec, &keys, false).await?;
            let remapped: HashSet<IdKey> = docs
                .iter()
                .filter(|d| in_source.by_key.contains_key(&key_of(spec, d)))
                .filter_map(|d| d.get("_id").map(IdKey::of))
                .collect();
            absent.retain(|id| !remapped.contains(&IdKey::of(id)));
        }
        Ok(absent)
    }

    /// Looks the held candidates up in the earlier runs' insert entries: those an earlier
    /// run inserted are gone (counted, listed); the others were never copied from this
    /// source (the target's own documents) and are left out.
    async fn look_up_unseen(
        &self,
        order: u16,
        spec: &CollectionSpec,
        scan: &mut GoneScan,
    ) -> anyhow::Result<()> {
        let mut unseen: HashMap<IdKey, Bson> = std::mem::take(&mut scan.unseen)
            .into_iter()
            .map(|id| (IdKey::of(&id), id))
            .collect();
        let entries = self.target.collection::<RawDocumentBuf>(JOURNAL);
        for run in self.gone_runs() {
            if unseen.is_empty() {
                break;
            }
            let prefix = entry_prefix(run, Some(spec.name), Some(Op::Insert));
            let mut cursor = entries
                .find(under(&prefix, ""))
                .projection(doc! { "e.i": 1 })
                .await
                .context("reading earlier runs' journals")?;
            let mut found: Vec<Bson> = Vec::new();
            while let Some(raw) = cursor
                .try_next()
                .await
                .context("reading earlier runs' journals")?
            {
                for id in entry_ids(&raw) {
                    if let Some(id) = unseen.remove(&IdKey::of_raw(id)) {
                        found.push(id);
                    }
                }
            }
            self.note_gone(order, spec, &Document::new(), run, &found, scan)
                .await?;
        }
        Ok(())
    }

    /// Counts and lists the target documents with `ids` (in `base`) as gone since `run`.
    async fn note_gone(
        &self,
        order: u16,
        spec: &CollectionSpec,
        base: &Document,
        run: &str,
        ids: &[Bson],
        scan: &mut GoneScan,
    ) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let target = self.target.collection::<Document>(spec.name);
        for chunk in ids.chunks(CANDIDATE_CHUNK) {
            // Listed by `_id`: nothing more of them is needed.
            let kept = crate::find_ids_projected(
                &target,
                base,
                chunk,
                Some(doc! { "_id": 1 }),
                "reading the target",
            )
            .await?;
            scan.gone += kept.len() as u64;
            if self.write {
                let listed: Vec<RecordError> = kept
                    .iter()
                    .map(|d| {
                        RecordError::of(
                            order,
                            spec.name,
                            d,
                            format!("gone from the source since run {run} copied it; kept here"),
                        )
                    })
                    .collect();
                self.store
                    .list_gone(&self.run_id, spec.name, listed)
                    .await?;
            }
        }
        Ok(())
    }

    /// The long way: reads every earlier run's insert entries of this collection and the
    /// source over the same `_id`s (keys only); those the source lacks are looked up in
    /// the target (in `base`).
    pub(super) async fn find_gone(
        &self,
        order: u16,
        spec: &CollectionSpec,
        base: &Document,
    ) -> anyhow::Result<u64> {
        let mut scan = GoneScan::new(false);
        let source_raw = self.source.db.collection::<RawDocumentBuf>(spec.name);
        let entries = self.target.collection::<RawDocumentBuf>(JOURNAL);
        for run in self.gone_runs() {
            let prefix = entry_prefix(run, Some(spec.name), Some(Op::Insert));
            // The entries' `_id`s only, raw, in one pass (their digests are not needed).
            let mut cursor = entries
                .find(under(&prefix, ""))
                .projection(doc! { "e.i": 1, "stretch": 1 })
                .sort(doc! { "_id": 1 })
                .await
                .context("reading earlier runs' journals")?;
            while let Some(raw) = cursor
                .try_next()
                .await
                .context("reading earlier runs' journals")?
            {
                let stretch = raw.get_bool("stretch").unwrap_or(false);
                let ids: Vec<Bson> = entry_ids(&raw)
                    .map(raw_to_bson)
                    .collect::<anyhow::Result<_>>()?;
                for chunk in ids.chunks(self.batch_size) {
                    let lookup = if stretch {
                        Lookup::Stretch
                    } else {
                        Lookup::Points
                    };
                    let present = fetch_raw_ids(&source_raw, chunk, lookup)
                        .await
                        .context("looking for copied documents in the source")?;
                    let absent: Vec<Bson> = chunk
                        .iter()
                        .filter(|id| !present.contains(&IdKey::of(id)))
                        .cloned()
                        .collect();
                    let absent = if absent.is_empty() {
                        absent
                    } else {
                        self.not_in_source(spec, absent).await?
                    };
                    self.note_gone(order, spec, base, run, &absent, &mut scan)
                        .await?;
                }
            }
        }
        Ok(scan.gone)
    }
}
