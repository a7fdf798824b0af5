//! The journal of a run: what it wrote to the target, kept in the target before each write.
//!
//! One entry per batch a run writes to a collection (`migration_journal`): for each document
//! it inserts or replaces, its `_id` and a digest of what the run wrote (with per-field
//! digests, to say later which fields changed). Each document a run replaces is also kept as
//! it was, byte for byte, in `migration_before.<run>.<collection>` ("backup before
//! overwrite"). Entries are written before the change they cover, so a process killed
//! between the two leaves an entry for a write that did not happen (undo finds nothing to
//! remove), never a write without an entry. [`crate::undo`] reads them back.
//!
//! An entry's `_id` is `run:collection:n:digest of its first document's _id`, `n` being 1
//! for replacements and 2 for insertions: a run's entries of a collection are one `_id`
//! range, replacements first, read in order and resumed from the last one handled. A batch
//! handled again after a crash adds to the same entry (a document named twice counts once,
//! as last written).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use mongodb::bson::{
    doc, Bson, DateTime, Document, RawArrayBuf, RawBson, RawDocument, RawDocumentBuf,
};
use mongodb::options::InsertManyOptions;
use mongodb::{Collection, Database};
use sha2::Digest as _;

use super::runs::RunStore;

/// The collection of entries.
pub const JOURNAL: &str = "migration_journal";
/// The prefix of the collections of before-images.
pub const BEFORE_PREFIX: &str = "migration_before.";
/// Documents with more top-level fields than this keep no per-field digests (a conflict
/// then says "the content changed" without naming fields).
const MAX_FIELD_DIGESTS: usize = 64;
/// An entry holds items up to about this size (a document must stay under 16 MB).
const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;

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

    /// Its place in an entry's `_id`: replacements are undone first (a document a resumed
    /// run inserted and then replaced is put back, then removed).
    fn rank(self) -> u8 {
        match self {
            Self::Replace => 1,
            Self::Insert => 2,
        }
    }
}

/// The collection keeping run `run`'s before-images of `collection`.
pub fn before_collection(run: &str, collection: &str) -> String {
    format!("{BEFORE_PREFIX}{run}.{collection}")
}

/// The `_id` prefix of run `run`'s entries of `collection` (or of all its entries), or of
/// those of one op.
pub fn entry_prefix(run: &str, collection: Option<&str>, op: Option<Op>) -> String {
    match (collection, op) {
        (Some(c), Some(op)) => format!("{run}:{c}:{}:", op.rank()),
        (Some(c), None) => format!("{run}:{c}:"),
        _ => format!("{run}:"),
    }
}

/// The filter selecting the entries under `prefix` after `after` (all when empty).
pub fn under(prefix: &str, after: &str) -> Document {
    let from = if after.is_empty() { prefix } else { after };
    doc! { "_id": { "$gt": from, "$lt": format!("{prefix}\u{7f}") } }
}

/// A stable digest of a document's content: the exact bytes of every top-level field but
/// `_id` (which the server may move to the front), in order. Equal digests: the same
/// document, byte for byte, whatever build of Heimdall computed them.
pub fn digest(doc: &RawDocument) -> anyhow::Result<i64> {
    Ok(digest_of(&elements(doc)?))
}

/// [`digest`] of a document's [`elements`].
fn digest_of(els: &[(&str, &[u8])]) -> i64 {
    let mut h = sha2::Sha256::new();
    for (name, bytes) in els {
        if *name != "_id" {
            h.update(bytes);
        }
    }
    let out = h.finalize();
    i64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
}

/// FNV-1a, 64 bits: a stable hash for per-field digests (cheap for many small fields).
fn fnv(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
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

/// A field as the journal keeps it: hashes of its name and of its whole element.
pub type FieldDigest = (u64, u64);

/// Per top-level field (`_id` aside), its name's and its element's hashes; `None` past
/// `MAX_FIELD_DIGESTS` fields.
pub fn field_digests(doc: &RawDocument) -> anyhow::Result<Option<Vec<FieldDigest>>> {
    Ok(field_digests_of(&elements(doc)?))
}

/// [`field_digests`] of a document's [`elements`].
fn field_digests_of(els: &[(&str, &[u8])]) -> Option<Vec<FieldDigest>> {
    if els.len() > MAX_FIELD_DIGESTS + 1 {
        return None;
    }
    Some(
        els.iter()
            .filter(|(n, _)| *n != "_id")
            .map(|(n, b)| (fnv(n.as_bytes()) as u64, fnv(b) as u64))
            .collect(),
    )
}

/// [`field_digests`] as one binary value (16 bytes a field): small beside the document.
fn pack(fields: &[FieldDigest]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() * 16);
    for (n, e) in fields {
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    out
}

fn unpack(bytes: &[u8]) -> Vec<FieldDigest> {
    bytes
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
            )
        })
        .collect()
}

/// The fields that differ between a document as the run wrote it (its field digests) and
/// `now`: changed, added (by name) or removed (counted), in a sentence.
pub fn what_differs(written: Option<&[FieldDigest]>, now: &RawDocument) -> String {
    let (Some(written), Ok(els)) = (written, elements(now)) else {
        return "its content changed since the run wrote it".into();
    };
    let mut changed = Vec::new();
    let mut present = HashSet::new();
    for (k, bytes) in els.into_iter().filter(|(k, _)| *k != "_id") {
        let name = fnv(k.as_bytes()) as u64;
        present.insert(name);
        match written.iter().find(|(n, _)| *n == name) {
            Some((_, e)) if *e == fnv(bytes) as u64 => {}
            Some(_) => changed.push(format!("{k} changed")),
            None => changed.push(format!("{k} added")),
        }
    }
    let removed = written.iter().filter(|(n, _)| !present.contains(n)).count();
    if changed.is_empty() && removed == 0 {
        return "its fields were reordered since the run wrote it".into();
    }
    let more = changed.len().saturating_sub(8);
    changed.truncate(8);
    if more > 0 {
        changed.push(format!("{more} more"));
    }
    match removed {
        0 => {}
        1 => changed.push("1 field removed".into()),
        n => changed.push(format!("{n} fields removed")),
    }
    format!("changed since the run wrote it: {}", changed.join(", "))
}

/// One document of an entry.
#[derive(Debug, Clone)]
pub struct Item {
    /// The target document's `_id`.
    pub id: Bson,
    /// [`digest`] of what the run wrote.
    pub written: i64,
    /// [`field_digests`] of what the run wrote.
    pub fields: Option<Vec<FieldDigest>>,
}

/// An entry as read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's own `_id` (the resume point).
    pub key: String,
    /// The run that wrote it.
    pub run: String,
    /// What the run did to its documents.
    pub op: Op,
    /// Whether its `_id`s are one stretch of the source's `_id` order (read as one range).
    pub stretch: bool,
    /// Its documents; a document written twice (a batch handled again) once, as last written.
    pub items: Vec<Item>,
}

impl Entry {
    /// Reads a stored entry.
    pub fn from_doc(d: &Document) -> anyhow::Result<Self> {
        let mut items: Vec<Item> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for e in d.get_array("e").context("a journal entry without items")? {
            let Some(e) = e.as_document() else { continue };
            let fields = e.get_binary_generic("f").ok().map(|b| unpack(b));
            let item = Item {
                id: e.get("i").cloned().context("a journal item without _id")?,
                written: e.get_i64("h").context("a journal item without digest")?,
                fields,
            };
            match seen.entry(super::clone::IdKey::of(&item.id)) {
                std::collections::hash_map::Entry::Occupied(at) => items[*at.get()] = item,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(items.len());
                    items.push(item);
                }
            }
        }
        Ok(Self {
            key: d
                .get_str("_id")
                .context("a journal entry without _id")?
                .to_string(),
            run: d.get_str("run").unwrap_or_default().to_string(),
            op: Op::parse(d.get_str("op").unwrap_or_default())
                .context("a journal entry with an unknown op")?,
            stretch: d.get_bool("stretch").unwrap_or(false),
            items,
        })
    }
}

/// Writes one run's journal. Cheap to clone; shared by a run's concurrent steps.
#[derive(Clone)]
pub struct Journal {
    db: Database,
    entries: Collection<Document>,
    run: String,
    store: RunStore,
    announced: Arc<Mutex<HashSet<String>>>,
}

/// Documents the journal could not record, by index: they must not be written.
pub type Refused = Vec<(usize, String)>;

/// The entries one call wrote (to take back documents that were then not written).
#[derive(Debug, Default)]
pub struct Written(Vec<String>);

impl Journal {
    /// The journal of run `run` in `db`; `store` (fenced) names the collections it covers
    /// in the run record.
    pub fn new(db: &Database, run: &str, store: RunStore) -> Self {
        Self {
            db: db.clone(),
            entries: db.collection(JOURNAL),
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

    /// The item of one written document, and its size: built as raw BSON from the
    /// document's bytes (each of its top-level elements read once, for the digest and the
    /// per-field digests alike).
    fn item(written: &RawDocument) -> anyhow::Result<(RawDocumentBuf, usize)> {
        let els = elements(written)?;
        let id = written.get("_id")?.context("a document without _id")?;
        let id_bytes = els
            .iter()
            .find(|(n, _)| *n == "_id")
            .map_or(0, |(_, b)| b.len());
        let mut size = 64 + id_bytes;
        let mut item = RawDocumentBuf::new();
        item.append("h", digest_of(&els));
        if let Some(f) = field_digests_of(&els) {
            size += f.len() * 16;
            item.append(
                "f",
                mongodb::bson::RawBson::Binary(mongodb::bson::Binary {
                    subtype: mongodb::bson::spec::BinarySubtype::Generic,
                    bytes: pack(&f),
                }),
            );
        }
        item.append_ref("i", id);
        Ok((item, size))
    }

    /// Writes the items of `docs` (what the run is about to write) as entries of `op`,
    /// grouped up to [`MAX_ENTRY_BYTES`]. Returns the documents that could not be recorded
    /// (they must not be written) and the entries written.
    async fn record<D: std::borrow::Borrow<RawDocument>>(
        &self,
        collection: &str,
        op: Op,
        stretch: bool,
        docs: impl Iterator<Item = (usize, anyhow::Result<D>)>,
    ) -> anyhow::Result<(Refused, Written)> {
        self.announce(collection).await?;
        let mut refused: Refused = Vec::new();
        // Per entry: the indexes of its documents, its items (raw, as stored), their size
        // and its first document's `_id`.
        let mut groups: Vec<(Vec<usize>, RawArrayBuf, usize, Bson)> = Vec::new();
        for (i, raw) in docs {
            match raw.and_then(|r| Self::item(r.borrow())) {
                Ok((item, size)) => match groups.last_mut() {
                    Some((at, items, total, _)) if *total + size <= MAX_ENTRY_BYTES => {
                        at.push(i);
                        items.push(item);
                        *total += size;
                    }
                    _ => {
                        let first = match item.get("i")? {
                            Some(id) => id.to_raw_bson().try_into()?,
                            None => Bson::Null,
                        };
                        let mut items = RawArrayBuf::new();
                        items.push(item);
                        groups.push((vec![i], items, size, first));
                    }
                },
                Err(e) => refused.push((i, format!("not written: {e}"))),
            }
        }
        let entries = self.entries.clone_with_type::<RawDocumentBuf>();
        let mut written = Written::default();
        for (at, items, _, first) in groups {
            let key = format!(
                "{}{}",
                entry_prefix(&self.run, Some(collection), Some(op)),
                super::id_digest(&first)
            );
            self.store.check_fence()?;
            // A new entry as one plain insert; onto an entry already there (a resume
            // writing the same batch again, see the test
            // `a_clone_stopped_between_its_journal_and_its_writes_resumes_and_undoes_whole`),
            // pushed.
            let header = doc! {
                "run": &self.run, "c": collection, "op": op.as_str(), "stretch": stretch,
                "at": DateTime::now(),
            };
            let mut entry = RawDocumentBuf::new();
            entry.append("_id", key.as_str());
            for (name, value) in &header {
                entry.append(name, RawBson::try_from(value.clone())?);
            }
            entry.append("e", items);
            let res = match entries.insert_one(&entry).await {
                Err(e) if is_duplicate_key(&e) => {
                    let items = match entry.get("e")? {
                        Some(e) => Bson::try_from(e.to_raw_bson())?,
                        None => Bson::Array(Vec::new()),
                    };
                    self.entries
                        .update_one(
                            doc! { "_id": &key },
                            doc! { "$setOnInsert": header, "$push": { "e": { "$each": items } } },
                        )
                        .upsert(true)
                        .await
                        .map(|_| ())
                }
                other => other.map(|_| ()),
            };
            match res {
                Ok(_) => written.0.push(key),
                Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Write(_)) => {
                    let why = format!(
                        "not written: its undo journal entry was refused ({})",
                        super::clone::short(&e.to_string())
                    );
                    refused.extend(at.into_iter().map(|i| (i, why.clone())));
                }
                Err(e) => return Err(anyhow::Error::from(e).context("writing the run's journal")),
            }
        }
        Ok((refused, written))
    }

    /// Before inserting `docs` (serialized once, for the journal and the insert alike) into
    /// `collection`: an entry for them. `stretch`: their `_id`s are one stretch of the
    /// source's `_id` order. Returns the documents that must not be inserted (they could not
    /// be recorded), and what was written.
    pub async fn will_insert_raw(
        &self,
        collection: &str,
        docs: &[RawDocumentBuf],
        stretch: bool,
    ) -> anyhow::Result<(Refused, Written)> {
        if docs.is_empty() {
            return Ok(Default::default());
        }
        let raw = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (i, anyhow::Ok(d.as_ref())));
        self.record(collection, Op::Insert, stretch, raw).await
    }

    /// After an insert: takes the documents it did not write (a unique index refused them:
    /// they exist under another `_id`, or the database refused them) out of the entries.
    pub async fn not_inserted(&self, written: &Written, ids: &[Bson]) -> anyhow::Result<()> {
        if ids.is_empty() || written.0.is_empty() {
            return Ok(());
        }
        self.store.check_fence()?;
        for chunk in ids.chunks(super::clone::IN_CHUNK) {
            self.entries
                .update_many(
                    doc! { "_id": { "$in": written.0.clone() } },
                    doc! { "$pull": { "e": { "i": { "$in": chunk.to_vec() } } } },
                )
                .await
                .context("writing the run's journal")?;
        }
        Ok(())
    }

    /// Before replacing documents of `collection`: keeps each one's before-image (the
    /// first one kept wins: a resumed run never backs up its own write) and an entry with
    /// what replaces them. `pairs`: (the document now, the document that replaces it).
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
        let kept: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
        let raw = pairs
            .iter()
            .enumerate()
            .filter(|(i, _)| !kept.contains(i))
            .map(|(i, (_, after))| {
                (
                    i,
                    RawDocumentBuf::from_document(after).map_err(anyhow::Error::from),
                )
            });
        let (more, _) = self.record(collection, Op::Replace, false, raw).await?;
        refused.extend(more);
        Ok(refused)
    }
}

/// Whether run `run` inserted the document `id` of `collection` (for a document the run
/// replaced that is gone: a resumed run that inserted it first).
pub async fn inserted_by(
    db: &Database,
    run: &str,
    collection: &str,
    id: &Bson,
) -> anyhow::Result<bool> {
    let mut filter = under(&entry_prefix(run, Some(collection), Some(Op::Insert)), "");
    filter.insert("e.i", id.clone());
    Ok(db
        .collection::<Document>(JOURNAL)
        .find_one(filter)
        .projection(doc! { "_id": 1 })
        .await
        .context("reading the run's journal")?
        .is_some())
}

/// Drops the journal of run `run`: its entries and its before-images.
pub async fn drop_journal(db: &Database, run: &str) -> anyhow::Result<u64> {
    let deleted = db
        .collection::<Document>(JOURNAL)
        .delete_many(under(&entry_prefix(run, None, None), ""))
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

/// Whether `e` is a unique index refusing a write (code 11000).
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) if w.code == 11000
    )
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
        assert!(s.contains("1 field removed"), "{s}");
        assert!(!s.contains("name"), "{s}");
        assert_eq!(
            what_differs(None, &now),
            "its content changed since the run wrote it"
        );
    }
}
