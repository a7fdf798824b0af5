//! What a plugin declares for Legacy Import: where a step reads in the old bot's database
//! and the mapper turning its records into the plugin's documents.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use mongodb::Collection;

pub use crate::numbering::{IdNumbers, Numbering, Repeated};

/// Where a legacy step reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySource {
    /// A collection with a fixed name.
    Collection(&'static str),
    /// A collection the owner names (`--modmail-collection`: old bots differed), with the
    /// name the declaring plugin expects when the owner names none.
    Modmail {
        /// The usual name.
        default: &'static str,
    },
}

/// What a mapper prepared from the whole legacy collection (numbering, collisions).
pub type Prepared = Box<dyn Any + Send + Sync>;

/// The context of one mapping call.
pub struct MapContext<'a> {
    /// What the mapper's `prepare` returned.
    pub prepared: &'a (dyn Any + Send + Sync),
    /// The time of the import (for "in the past" checks).
    pub now: DateTime,
    /// For a record mapped in parts (see [`LegacyMapper::list_field`]): the index, in the
    /// whole list, of the first element the record's list holds in this call. 0 otherwise.
    pub offset: usize,
}

/// A document produced from a legacy record.
#[derive(Debug, Clone)]
pub struct Produced {
    /// Target collection.
    pub collection: &'static str,
    /// The document (with its `_id`).
    pub doc: Document,
}

/// What became of one legacy record in one mapper.
#[derive(Debug, Clone)]
pub enum Mapped {
    /// Documents to write. The first is the primary one: when it already exists under
    /// another `_id`, the record is a conflict and none of its documents are written.
    Docs(Vec<Produced>),
    /// Nothing to import, and why (expired reminder, name conflict, nothing configured).
    Skip(String),
    /// This mapper has nothing to do with the record (e.g. no welcome channel set).
    Nothing,
}

/// Legacy records per server reply while a mapper's [`LegacyMapper::prepare`] reads them
/// ([`scan`]). A reply is held whole until its last record is taken, and with no batch
/// size the server fills each one up to 16 MB: at 500k records, as one step's numbering
/// read its projection that way, a legacy import's RSS jumped from 166 to 201 MB in 30 ms.
pub const PREPARE_PER_REPLY: u32 = 1000;

/// `projection` of every legacy record `filter` selects, in the server's order,
/// [`PREPARE_PER_REPLY`] records per reply: what [`LegacyMapper::prepare`] reads with.
pub async fn scan(
    source: &Collection<Document>,
    filter: &Document,
    projection: Document,
) -> mongodb::error::Result<mongodb::Cursor<Document>> {
    source
        .find(filter.clone())
        .projection(projection)
        .batch_size(PREPARE_PER_REPLY)
        .await
}

/// Turns legacy records into Heimdall documents for one plugin.
#[async_trait]
pub trait LegacyMapper: Send + Sync {
    /// Reads what the mapping needs from all selected legacy records before any is mapped
    /// (e.g. ticket numbering, name collisions), with [`scan`]. `filter` is the guild
    /// filter, if any.
    async fn prepare(
        &self,
        _source: &Collection<Document>,
        _filter: &Document,
    ) -> anyhow::Result<Prepared> {
        Ok(Box::new(()))
    }

    /// Maps one legacy record. `Err` names what is wrong with the record.
    fn map(&self, record: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String>;

    /// The field of a record holding a list that becomes one document per element (a
    /// modmail thread's messages), if any. A big record is then mapped in parts, to bound
    /// memory: each call sees the record's other fields whole and a slice of the list,
    /// starting at element [`MapContext::offset`], and must produce the same primary
    /// document every time (the engine keeps the first part's) and the list's documents
    /// as it would for those elements in the whole record.
    fn list_field(&self) -> Option<&'static str> {
        None
    }
}

/// One plugin's contribution to a legacy step.
#[derive(Clone)]
pub struct LegacyStepSpec {
    /// Step number (1..=7).
    pub order: u16,
    /// Step label, e.g. "Settings".
    pub label: &'static str,
    /// The legacy collection read.
    pub source: LegacySource,
    /// Whether the step reports per-record progress (the large ones).
    pub record_progress: bool,
    /// The mapper.
    pub mapper: Arc<dyn LegacyMapper>,
}

impl std::fmt::Debug for LegacyStepSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyStepSpec")
            .field("order", &self.order)
            .field("label", &self.label)
            .field("source", &self.source)
            .finish()
    }
}

impl LegacyStepSpec {
    /// A contribution to step `order`.
    pub fn new(
        order: u16,
        label: &'static str,
        source: LegacySource,
        mapper: Arc<dyn LegacyMapper>,
    ) -> Self {
        Self {
            order,
            label,
            source,
            record_progress: false,
            mapper,
        }
    }

    /// Reports per-record progress.
    pub fn with_record_progress(mut self) -> Self {
        self.record_progress = true;
        self
    }
}

/// A deterministic ObjectId for the `n`-th document derived from legacy record `parent`, so
/// that a re-run produces the same `_id`s (for collections identified by `_id` only).
pub fn derived_id(parent: &Bson, n: u64, seconds: u32) -> ObjectId {
    DerivedIds::of(parent).nth(n, seconds)
}

/// [`derived_id`] for the many documents of one parent (a thread's messages): the parent
/// is written out and hashed once, not once per document. The same `_id`s.
#[derive(Clone)]
pub struct DerivedIds(std::collections::hash_map::DefaultHasher);

impl DerivedIds {
    /// The `_id`s derived from `parent`.
    pub fn of(parent: &Bson) -> Self {
        use std::hash::Hash;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parent.to_string().hash(&mut h);
        Self(h)
    }

    /// The `n`-th one (see [`derived_id`]).
    pub fn nth(&self, n: u64, seconds: u32) -> ObjectId {
        use std::hash::{Hash, Hasher};
        let mut h = self.0.clone();
        n.hash(&mut h);
        let v = h.finish();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        bytes[4..].copy_from_slice(&v.to_be_bytes());
        ObjectId::from_bytes(bytes)
    }
}

/// The `_id` of a Heimdall document made from legacy record `record`: the legacy `_id` when
/// it is an ObjectId, else one derived from it.
pub fn primary_id(record: &Document) -> Bson {
    match record.get("_id") {
        Some(Bson::ObjectId(o)) => Bson::ObjectId(*o),
        Some(other) => Bson::ObjectId(derived_id(other, 0, 0)),
        None => Bson::ObjectId(ObjectId::new()),
    }
}

/// A legacy record's `_id` as a key that sorts like its text (an ObjectId by its hex, a
/// string as is, any other value as the old bot would print it): the order numberings
/// break ties by. An ObjectId is held as its 12 bytes, not its 24-character text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    /// An ObjectId `_id`.
    Oid([u8; 12]),
    /// Any other `_id`, as text.
    Text(Box<str>),
}

impl IdKey {
    /// The key of `_id` value `id`.
    pub fn of(id: &Bson) -> Self {
        match id {
            Bson::ObjectId(o) => Self::Oid(o.bytes()),
            Bson::String(s) => Self::Text(s.as_str().into()),
            other => Self::Text(other.to_string().into()),
        }
    }

    /// The key of `record`'s `_id` (a record without one sorts as `null`).
    pub fn of_record(record: &Document) -> Self {
        Self::of(record.get("_id").unwrap_or(&Bson::Null))
    }
}

impl Ord for IdKey {
    /// By text (lower-case hex for an ObjectId, which orders as its bytes do); an ObjectId
    /// before a string of the same text.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            // The sorts' common comparisons, without building views (those cost 10 % of a
            // numbering's build); an ObjectId against text by the views' order.
            (Self::Oid(a), Self::Oid(b)) => a.cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            _ => self.view().cmp(&other.view()),
        }
    }
}

impl IdKey {
    /// The key borrowed, to be compared with keys read from bytes without making them.
    pub(crate) fn view(&self) -> IdView<'_> {
        match self {
            Self::Oid(b) => IdView::Oid(b),
            Self::Text(t) => IdView::Text(t.as_bytes()),
        }
    }
}

/// An [`IdKey`] borrowed: an ObjectId's bytes, or text's bytes (compared as bytes, as
/// `str`s compare). A numbering's look-up compares the keys of its file this way, as they
/// lie in a read block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdView<'a> {
    Oid(&'a [u8; 12]),
    Text(&'a [u8]),
}

impl IdView<'_> {
    /// `f`'s answer for the key of `_id` value `id` (as [`IdKey::of`] makes it), borrowed
    /// from `id`: made only for a value neither an ObjectId nor a string.
    pub(crate) fn with<R>(id: &Bson, f: impl FnOnce(IdView<'_>) -> R) -> R {
        match id {
            Bson::ObjectId(o) => f(IdView::Oid(&o.bytes())),
            Bson::String(s) => f(IdView::Text(s.as_bytes())),
            other => f(IdView::Text(other.to_string().as_bytes())),
        }
    }
}

impl Ord for IdView<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        // An ObjectId's text, written on the stack: sorts are full of these comparisons.
        let hex = |b: &[u8; 12]| {
            let mut out = [0u8; 24];
            hex::encode_to_slice(b, &mut out).expect("24 bytes for 12");
            out
        };
        match (*self, *other) {
            (Self::Oid(a), Self::Oid(b)) => a.cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            (Self::Oid(a), Self::Text(b)) => hex(a)[..].cmp(b).then(Ordering::Less),
            (Self::Text(a), Self::Oid(b)) => a.cmp(&hex(b)[..]).then(Ordering::Greater),
        }
    }
}

impl PartialOrd for IdView<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialOrd for IdKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_their_text_whatever_their_type() {
        let oid = |h: &str| Bson::ObjectId(ObjectId::parse_str(h).unwrap());
        let mut ids = [
            IdKey::of(&Bson::String("zz".into())),
            IdKey::of(&oid("5f1d7e2a9b3c4d5e6f708192")),
            IdKey::of(&Bson::Int32(7)),
            IdKey::of(&Bson::String("5f1d7e2a9b3c4d5e6f708192".into())),
            IdKey::of(&oid("0000000000000000000000ff")),
            IdKey::of(&Bson::String("a".into())),
        ];
        ids.sort();
        let text: Vec<String> = ids
            .iter()
            .map(|k| match k {
                IdKey::Oid(b) => format!("oid {}", hex::encode(b)),
                IdKey::Text(t) => t.to_string(),
            })
            .collect();
        assert_eq!(
            text,
            [
                "oid 0000000000000000000000ff",
                "oid 5f1d7e2a9b3c4d5e6f708192",
                "5f1d7e2a9b3c4d5e6f708192",
                "7",
                "a",
                "zz"
            ]
        );
    }

    #[test]
    fn numbers_are_found_by_the_id_they_were_given_to() {
        let oids: Vec<ObjectId> = (0..1000u32)
            .map(|i| {
                let mut b = [0u8; 12];
                b[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
                ObjectId::from_bytes(b)
            })
            .collect();
        let mut given: Vec<(IdKey, i32)> = oids
            .iter()
            .enumerate()
            .map(|(i, o)| (IdKey::of(&Bson::ObjectId(*o)), i as i32 + 1))
            .collect();
        given.push((IdKey::of(&Bson::String("thread-1".into())), 5000));
        given.push((IdKey::of(&Bson::Int64(42)), 5001));
        // Given twice: the last number stays.
        given.push((IdKey::of(&Bson::ObjectId(oids[3])), 9999));
        let numbers: IdNumbers = given.into_iter().collect();
        assert_eq!(numbers.len(), 1002);
        assert_eq!(numbers.get(&Bson::ObjectId(oids[0])), Some(1));
        assert_eq!(numbers.get(&Bson::ObjectId(oids[999])), Some(1000));
        assert_eq!(numbers.get(&Bson::ObjectId(oids[3])), Some(9999));
        assert_eq!(numbers.get(&Bson::String("thread-1".into())), Some(5000));
        assert_eq!(numbers.get(&Bson::Int64(42)), Some(5001));
        // An ObjectId's hex as a string is another record's `_id`.
        let hex = oids[0].to_hex();
        assert_eq!(numbers.get(&Bson::String(hex)), None);
        assert_eq!(numbers.get(&Bson::ObjectId(ObjectId::new())), None);
    }

    /// The `_id`s of documents derived from a legacy record, as every earlier build made
    /// them: the parent written out and hashed with `n` for each document.
    fn derived_as_before(parent: &Bson, n: u64, seconds: u32) -> ObjectId {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parent.to_string().hash(&mut h);
        n.hash(&mut h);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        bytes[4..].copy_from_slice(&h.finish().to_be_bytes());
        ObjectId::from_bytes(bytes)
    }

    #[test]
    fn a_parent_hashed_once_derives_the_same_ids_as_before() {
        // A re-run after an upgrade must find the documents an older build imported.
        for parent in [
            Bson::ObjectId(ObjectId::parse_str("5f1d7e2a9b3c4d5e6f708192").unwrap()),
            Bson::String("thread-42".into()),
            Bson::Int64(i64::MAX),
            Bson::Double(1.5),
        ] {
            let ids = DerivedIds::of(&parent);
            for (n, seconds) in [(0, 0), (1, 1_600_000_000), (20_000, u32::MAX)] {
                assert_eq!(ids.nth(n, seconds), derived_as_before(&parent, n, seconds));
                assert_eq!(derived_id(&parent, n, seconds), ids.nth(n, seconds));
            }
        }
        let a = DerivedIds::of(&Bson::String("a".into()));
        assert_ne!(a.nth(1, 0), a.nth(2, 0));
    }
}
