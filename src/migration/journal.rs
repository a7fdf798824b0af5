//! The journal of a run: what it wrote to the target, kept in the target before each write.
//!
//! For every document a run inserts, a marker in `migration_journal` (its `_id`, and a
//! digest of what the run wrote); for every document it replaces, the same marker and the
//! document as it was, byte for byte, in `migration_before.<run>.<collection>` ("backup
//! before overwrite"). Markers are written before the change they cover, so a process killed
//! between the two leaves a marker for a write that did not happen (undo finds nothing to
//! remove), never a write without a marker. [`crate::undo`] reads it back.
//!
//! A marker's `_id` is `run:collection:digest of the document's _id`: a run's markers are
//! one `_id` range, read in order and resumed from the last one handled.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use mongodb::bson::{doc, Bson, DateTime, Document, RawDocument, RawDocumentBuf};
use mongodb::options::InsertManyOptions;
use mongodb::{Collection, Database};
use sha2::Digest as _;

use super::runs::RunStore;

/// The collection of markers.
pub const JOURNAL: &str = "migration_journal";
/// The prefix of the collections of before-images.
pub const BEFORE_PREFIX: &str = "migration_before.";
/// Documents with more top-level fields than this keep no per-field digests (a conflict
/// then says "the content changed" without naming fields).
const MAX_FIELD_DIGESTS: usize = 64;

/// What a run did to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Inserted it: undo removes it.
    Insert,
    /// Replaced it: undo puts the before-image back.
    Replace,
}

impl Op {
    /// `insert` or `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Replace => "replace",
        }
    }

    /// The op named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "insert" => Some(Self::Insert),
            "replace" => Some(Self::Replace),
            _ => None,
        }
    }
}

/// The collection keeping run `run`'s before-images of `collection`.
pub fn before_collection(run: &str, collection: &str) -> String {
    format!("{BEFORE_PREFIX}{run}.{collection}")
}

/// The `_id` prefix of run `run`'s markers of `collection` (or of all its markers).
pub fn marker_prefix(run: &str, collection: Option<&str>) -> String {
    match collection {
        Some(c) => format!("{run}:{c}:"),
        None => format!("{run}:"),
    }
}

/// A marker's `_id`.
fn marker_id(run: &str, collection: &str, id: &Bson) -> String {
    format!(
        "{}{}",
        marker_prefix(run, Some(collection)),
        super::id_digest(id)
    )
}

/// A stable digest of a document's content: the exact bytes of every top-level field but
/// `_id` (which the server may move to the front), in order. Equal digests: the same
/// document, byte for byte, whatever build of Heimdall computed them.
pub fn digest(doc: &RawDocument) -> anyhow::Result<i64> {
    let mut h = sha2::Sha256::new();
    for (name, bytes) in elements(doc)? {
        if name != "_id" {
            h.update(bytes);
        }
    }
    let out = h.finalize();
    Ok(i64::from_le_bytes(out[..8].try_into().expect("8 bytes")))
}

/// Per top-level field (`_id` aside), its digest; `None` past [`MAX_FIELD_DIGESTS`] fields.
pub fn field_digests(doc: &RawDocument) -> anyhow::Result<Option<Vec<(String, i64)>>> {
    let els = elements(doc)?;
    if els.len() > MAX_FIELD_DIGESTS + 1 {
        return Ok(None);
    }
    Ok(Some(
        els.into_iter()
            .filter(|(n, _)| *n != "_id")
            .map(|(n, b)| {
                let d = sha2::Sha256::digest(b);
                (
                    n.to_string(),
                    i64::from_le_bytes(d[..8].try_into().expect("8 bytes")),
                )
            })
            .collect(),
    ))
}

/// Each top-level element of `doc`: its name and its whole bytes (type, name, value).
fn elements(doc: &RawDocument) -> anyhow::Result<Vec<(&str, &[u8])>> {
    let bytes = doc.as_bytes();
    let mut pos = 4;
    let mut out = Vec::new();
    for el in doc.iter_elements() {
        let el = el.context("reading a document")?;
        let n = 1 + el.key().len() + 1 + el.len();
        out.push((el.key(), &bytes[pos..pos + n]));
        pos += n;
    }
    Ok(out)
}

/// The fields that differ between a document as the run wrote it (its per-field digests)
/// and `now`: changed, added or removed, in a sentence.
pub fn what_differs(written: Option<&[(String, i64)]>, now: &RawDocument) -> String {
    let (Some(written), Ok(Some(current))) = (written, field_digests(now)) else {
        return "its content changed since the run wrote it".into();
    };
    let mut changed = Vec::new();
    for (k, h) in &current {
        match written.iter().find(|(w, _)| w == k) {
            Some((_, wh)) if wh == h => {}
            Some(_) => changed.push(format!("{k} changed")),
            None => changed.push(format!("{k} added")),
        }
    }
    for (k, _) in written {
        if !current.iter().any(|(c, _)| c == k) {
            changed.push(format!("{k} removed"));
        }
    }
    if changed.is_empty() {
        return "its fields were reordered since the run wrote it".into();
    }
    let more = changed.len().saturating_sub(8);
    changed.truncate(8);
    let mut s = format!("changed since the run wrote it: {}", changed.join(", "));
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// A marker as read back.
#[derive(Debug, Clone)]
pub struct Marker {
    /// The marker's own `_id` (the resume point).
    pub key: String,
    /// The target document's `_id`.
    pub id: Bson,
    /// What the run did.
    pub op: Op,
    /// [`digest`] of what the run wrote.
    pub written: i64,
    /// [`field_digests`] of what the run wrote.
    pub fields: Option<Vec<(String, i64)>>,
}

impl Marker {
    /// Reads a stored marker.
    pub fn from_doc(d: &Document) -> anyhow::Result<Self> {
        let fields = d.get_array("f").ok().map(|a| {
            a.iter()
                .filter_map(|e| e.as_document())
                .filter_map(|e| Some((e.get_str("k").ok()?.to_string(), e.get_i64("h").ok()?)))
                .collect()
        });
        Ok(Self {
            key: d
                .get_str("_id")
                .context("a journal marker without _id")?
                .to_string(),
            id: d
                .get("id")
                .cloned()
                .context("a journal marker without id")?,
            op: Op::parse(d.get_str("op").unwrap_or_default())
                .context("a journal marker with an unknown op")?,
            written: d.get_i64("h").context("a journal marker without digest")?,
            fields,
        })
    }
}

/// Writes one run's journal. Cheap to clone; shared by a run's concurrent steps.
#[derive(Clone)]
pub struct Journal {
    db: Database,
    markers: Collection<Document>,
    run: String,
    store: RunStore,
    announced: Arc<Mutex<HashSet<String>>>,
}

/// Documents the journal could not record, by index: they must not be written.
pub type Refused = Vec<(usize, String)>;

impl Journal {
    /// The journal of run `run` in `db`; `store` (fenced) names the collections it covers
    /// in the run record.
    pub fn new(db: &Database, run: &str, store: RunStore) -> Self {
        Self {
            db: db.clone(),
            markers: db.collection(JOURNAL),
            run: run.to_string(),
            store,
            announced: Arc::default(),
        }
    }

    /// Names `collection` in the run record's `journaled` list, once per process.
    async fn announce(&self, collection: &str) -> anyhow::Result<()> {
        if self
            .announced
            .lock()
            .expect("journal lock")
            .contains(collection)
        {
            return Ok(());
        }
        self.store.note_journaled(&self.run, collection).await?;
        self.announced
            .lock()
            .expect("journal lock")
            .insert(collection.to_string());
        Ok(())
    }

    fn marker(&self, collection: &str, op: Op, written: &RawDocument) -> anyhow::Result<Document> {
        let id = written
            .get("_id")?
            .context("a document without _id")?
            .to_raw_bson();
        let id: Bson = id.try_into()?;
        let mut m = doc! {
            "_id": marker_id(&self.run, collection, &id),
            "run": &self.run,
            "c": collection,
            "op": op.as_str(),
            "id": id,
            "h": digest(written)?,
            "at": DateTime::now(),
        };
        if let Some(f) = field_digests(written)? {
            let f: Vec<Bson> = f
                .into_iter()
                .map(|(k, h)| Bson::Document(doc! { "k": k, "h": h }))
                .collect();
            m.insert("f", f);
        }
        Ok(m)
    }

    /// Writes `markers` (index-aligned with the documents they cover). A marker kept by an
    /// earlier attempt keeps its op and gets the new digest. Returns the documents whose
    /// marker the database refused.
    async fn write_markers(&self, markers: Vec<(usize, Document)>) -> anyhow::Result<Refused> {
        let mut refused = Vec::new();
        if markers.is_empty() {
            return Ok(refused);
        }
        self.store.check_fence()?;
        let docs: Vec<&Document> = markers.iter().map(|(_, m)| m).collect();
        let res = self
            .markers
            .insert_many(docs)
            .with_options(InsertManyOptions::builder().ordered(false).build())
            .await;
        let Err(e) = res else { return Ok(refused) };
        let mongodb::error::ErrorKind::InsertMany(im) = e.kind.as_ref() else {
            return Err(anyhow::Error::from(e).context("writing the run's journal"));
        };
        if im.write_concern_error.is_some() || im.write_errors.is_none() {
            return Err(anyhow::Error::from(e).context("writing the run's journal"));
        }
        for w in im.write_errors.as_ref().expect("checked") {
            let (at, m) = &markers[w.index];
            if w.code == 11000 {
                let mut set = doc! { "h": m.get_i64("h")?, "at": DateTime::now() };
                match m.get("f") {
                    Some(f) => set.insert("f", f.clone()),
                    None => set.insert("f", Bson::Null),
                };
                self.markers
                    .update_one(doc! { "_id": m.get_str("_id")? }, doc! { "$set": set })
                    .await
                    .context("writing the run's journal")?;
            } else {
                refused.push((
                    *at,
                    format!(
                        "not written: its undo journal entry was refused ({})",
                        super::clone::short(&w.message)
                    ),
                ));
            }
        }
        Ok(refused)
    }

    /// Before inserting `docs` into `collection`: a marker for each. Returns the documents
    /// that must not be inserted (their marker could not be written).
    pub async fn will_insert(
        &self,
        collection: &str,
        docs: &[Document],
    ) -> anyhow::Result<Refused> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        self.announce(collection).await?;
        let mut markers = Vec::with_capacity(docs.len());
        let mut refused = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let made = RawDocumentBuf::from_document(d)
                .map_err(anyhow::Error::from)
                .and_then(|raw| self.marker(collection, Op::Insert, &raw));
            match made {
                Ok(m) => markers.push((i, m)),
                Err(e) => refused.push((i, format!("not written: {e}"))),
            }
        }
        refused.extend(self.write_markers(markers).await?);
        Ok(refused)
    }

    /// After an insert: drops the markers of documents it did not write (a unique index
    /// refused them: they exist under another `_id`, or the database refused them).
    pub async fn not_inserted(&self, collection: &str, ids: &[Bson]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store.check_fence()?;
        let keys: Vec<String> = ids
            .iter()
            .map(|id| marker_id(&self.run, collection, id))
            .collect();
        for chunk in keys.chunks(super::clone::IN_CHUNK) {
            self.markers
                .delete_many(doc! { "_id": { "$in": chunk.to_vec() }, "op": Op::Insert.as_str() })
                .await
                .context("writing the run's journal")?;
        }
        Ok(())
    }

    /// Before replacing documents of `collection`: keeps each one's before-image (the
    /// first one kept wins: a resumed run never backs up its own write) and a marker with
    /// what replaces it. `pairs`: (the document now, the document that replaces it).
    /// Returns the replacements that must not happen.
    pub async fn will_replace(
        &self,
        collection: &str,
        pairs: &[(RawDocumentBuf, Document)],
    ) -> anyhow::Result<Refused> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        self.announce(collection).await?;
        self.store.check_fence()?;
        let mut refused: Refused = Vec::new();
        let befores: Collection<RawDocumentBuf> = self
            .db
            .collection(&before_collection(&self.run, collection));
        let images: Vec<&RawDocumentBuf> = pairs.iter().map(|(b, _)| b).collect();
        if let Err(e) = befores
            .insert_many(images)
            .with_options(InsertManyOptions::builder().ordered(false).build())
            .await
        {
            match e.kind.as_ref() {
                mongodb::error::ErrorKind::InsertMany(im)
                    if im.write_concern_error.is_none() && im.write_errors.is_some() =>
                {
                    for w in im.write_errors.as_ref().expect("checked") {
                        if w.code != 11000 {
                            refused.push((
                                w.index,
                                format!(
                                    "not replaced: its backup could not be kept ({})",
                                    super::clone::short(&w.message)
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(anyhow::Error::from(e).context("keeping before-images"));
                }
            }
        }
        let mut markers = Vec::with_capacity(pairs.len());
        for (i, (_, after)) in pairs.iter().enumerate() {
            if refused.iter().any(|(r, _)| *r == i) {
                continue;
            }
            let made = RawDocumentBuf::from_document(after)
                .map_err(anyhow::Error::from)
                .and_then(|raw| self.marker(collection, Op::Replace, &raw));
            match made {
                Ok(m) => markers.push((i, m)),
                Err(e) => refused.push((i, format!("not replaced: {e}"))),
            }
        }
        refused.extend(self.write_markers(markers).await?);
        Ok(refused)
    }
}

/// Drops the journal of run `run`: its markers and its before-images.
pub async fn drop_journal(db: &Database, run: &str) -> anyhow::Result<u64> {
    let prefix = marker_prefix(run, None);
    let deleted = db
        .collection::<Document>(JOURNAL)
        .delete_many(doc! { "_id": { "$gte": &prefix, "$lt": format!("{prefix}\u{7f}") } })
        .await
        .context("dropping a journal")?
        .deleted_count;
    let own = format!("{BEFORE_PREFIX}{run}.");
    for name in db
        .list_collection_names()
        .await
        .context("listing collections")?
    {
        if name.starts_with(&own) {
            db.collection::<Document>(&name)
                .drop()
                .await
                .context("dropping before-images")?;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    #[test]
    fn the_digest_ignores_where_id_sits_and_sees_every_byte() {
        let a = raw(doc! { "_id": 1, "n": "x", "v": 1i32 });
        let moved = raw(doc! { "n": "x", "_id": 1, "v": 1i32 });
        let other_id = raw(doc! { "_id": 2, "n": "x", "v": 1i32 });
        assert_eq!(digest(&a).unwrap(), digest(&moved).unwrap());
        assert_eq!(digest(&a).unwrap(), digest(&other_id).unwrap());
        let wider = raw(doc! { "_id": 1, "n": "x", "v": 1i64 });
        let reordered = raw(doc! { "_id": 1, "v": 1i32, "n": "x" });
        assert_ne!(digest(&a).unwrap(), digest(&wider).unwrap());
        assert_ne!(digest(&a).unwrap(), digest(&reordered).unwrap());
    }

    #[test]
    fn what_differs_names_the_fields() {
        let written = raw(doc! { "_id": 1, "name": "a", "content": "b", "uses": 1 });
        let now = raw(doc! { "_id": 1, "name": "a", "content": "edited", "pinned": true });
        let f = field_digests(&written).unwrap().unwrap();
        let s = what_differs(Some(&f), &now);
        assert!(s.contains("content changed"), "{s}");
        assert!(s.contains("pinned added"), "{s}");
        assert!(s.contains("uses removed"), "{s}");
        assert!(!s.contains("name"), "{s}");
        assert_eq!(
            what_differs(None, &now),
            "its content changed since the run wrote it"
        );
    }
}
