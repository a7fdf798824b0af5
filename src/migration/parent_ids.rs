//! The `_id`s a clone read of a referenced collection, kept on local disk in `_id` order,
//! so that the references its children point with are counted without asking the source
//! for each parent again.
//!
//! A copy reads a collection in `_id` order; the `ObjectId`s among them go to a file as they
//! are read, 12 bytes each, ascending. Once the copy has read the whole collection the file
//! is *complete*, and a count of references to it (sorted `_id`s, see `Deferred` in
//! `clone.rs`) is one merge against the file: no query, no memory beyond a read buffer. What
//! the file does not hold is still read from the source, so a parent added to the source
//! after its copy is found there as before; a parent the copy read counts as there.
//!
//! The files live in a directory of the run's own under the system's temporary directory,
//! removed when the run ends (12 bytes a document of the referenced collections: 6 MB for
//! half a million parents). Anything that goes wrong with them — no temporary
//! directory, a full disk, a source answering out of order — only sends the counts back to
//! the source.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{RawBsonRef, RawDocumentBuf};

/// The run's files of parent `_id`s, by collection.
#[derive(Debug)]
pub(crate) struct ParentIds {
    /// Made when a copy first writes `_id`s (a run that copies no referenced collection
    /// whole makes none); removed with the run; `None` when it could not be made.
    dir: OnceLock<Option<tempfile::TempDir>>,
    /// The collections whose file is complete: every `ObjectId` `_id` the copy read.
    complete: Mutex<HashMap<&'static str, PathBuf>>,
}

impl ParentIds {
    /// None yet: the run's directory under the system's temporary directory is made with
    /// its first file.
    pub fn new() -> Self {
        Self {
            dir: OnceLock::new(),
            complete: Mutex::new(HashMap::new()),
        }
    }

    /// A writer for `collection`'s `_id`s, for a copy that reads it whole from its first
    /// document; none (and every count on the source) without a temporary directory.
    pub fn writer(&self, collection: &'static str) -> Option<IdsWriter> {
        let dir = self.dir.get_or_init(|| {
            tempfile::Builder::new()
                .prefix("heimdall-clone-")
                .tempdir()
                .map_err(|e| {
                    tracing::warn!(
                        error = %e,
                        "no temporary directory for the parents' ids: references are counted on the source"
                    )
                })
                .ok()
        });
        let path = dir.as_ref()?.path().join(format!("{collection}.ids"));
        match File::create(&path) {
            Ok(f) => Some(IdsWriter {
                collection,
                path,
                out: BufWriter::with_capacity(64 * 1024, f),
                last: None,
            }),
            Err(e) => {
                tracing::warn!(collection, error = %e, "cannot keep the parents' ids on disk");
                None
            }
        }
    }

    /// The copy read the whole collection: its file answers counts from now on.
    pub fn finish(&self, writer: IdsWriter) {
        let IdsWriter {
            collection,
            path,
            mut out,
            ..
        } = writer;
        match out.flush() {
            Ok(()) => {
                self.complete
                    .lock()
                    .expect("parent ids")
                    .insert(collection, path);
            }
            Err(e) => {
                tracing::warn!(collection, error = %e, "cannot keep the parents' ids on disk")
            }
        }
    }

    /// The complete file of `collection`'s `_id`s, if there is one.
    pub fn complete(&self, collection: &str) -> Option<PathBuf> {
        self.complete
            .lock()
            .expect("parent ids")
            .get(collection)
            .cloned()
    }
}

/// Writes one collection's `ObjectId` `_id`s as its copy reads them.
#[derive(Debug)]
pub(crate) struct IdsWriter {
    collection: &'static str,
    path: PathBuf,
    out: BufWriter<File>,
    /// The last `_id` written: each must be greater, or the file cannot be merged with.
    last: Option<ObjectId>,
}

impl IdsWriter {
    /// Adds the `ObjectId` `_id`s of `batch` (the next documents in `_id` order). An error
    /// (a full disk, `_id`s out of order) means the file cannot be used.
    pub fn add(&mut self, batch: &[RawDocumentBuf]) -> std::io::Result<()> {
        for d in batch {
            if let Ok(Some(RawBsonRef::ObjectId(id))) = d.get("_id") {
                if self.last.is_some_and(|last| last >= id) {
                    return Err(std::io::Error::other(format!(
                        "{} read out of `_id` order at {id}",
                        self.collection
                    )));
                }
                self.out.write_all(&id.bytes())?;
                self.last = Some(id);
            }
        }
        Ok(())
    }
}

/// Of `sorted` (ascending, copies kept), those not among the ascending 12-byte `_id`s
/// `ids` yields, in order and with their copies. Reads `ids` only as far as it has to.
pub(crate) fn absent_from(ids: impl Read, sorted: &[ObjectId]) -> std::io::Result<Vec<ObjectId>> {
    let mut ids = BufReader::with_capacity(64 * 1024, ids);
    let mut absent = Vec::new();
    let mut next = read_id(&mut ids)?;
    for want in sorted {
        while next.is_some_and(|n| n < *want) {
            next = read_id(&mut ids)?;
        }
        if next != Some(*want) {
            absent.push(*want);
        }
    }
    Ok(absent)
}

/// [`absent_from`] the file at `path`.
pub(crate) fn absent_from_file(
    path: &std::path::Path,
    sorted: &[ObjectId],
) -> std::io::Result<Vec<ObjectId>> {
    absent_from(File::open(path)?, sorted)
}

/// The next 12-byte `_id`, `None` at the end; a part of one is an error.
fn read_id(r: &mut impl Read) -> std::io::Result<Option<ObjectId>> {
    let mut b = [0u8; 12];
    let mut got = 0;
    while got < b.len() {
        match r.read(&mut b[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        12 => Ok(Some(ObjectId::from_bytes(b))),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the parents' ids end inside an id",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::rawdoc;

    fn oid(n: u8) -> ObjectId {
        let mut b = [0u8; 12];
        b[11] = n;
        ObjectId::from_bytes(b)
    }

    fn file_of(ids: &[u8]) -> Vec<u8> {
        ids.iter().flat_map(|n| oid(*n).bytes()).collect()
    }

    #[test]
    fn references_not_in_the_file_are_the_absent_ones_each_copy_kept() {
        let file = file_of(&[2, 4, 6, 8]);
        let refs: Vec<ObjectId> = [1, 2, 2, 5, 5, 6, 9, 9].map(oid).to_vec();
        let absent = absent_from(&file[..], &refs).unwrap();
        assert_eq!(absent, [1, 5, 5, 9, 9].map(oid).to_vec());
        // An empty file: every reference is absent; no reference: nothing is.
        assert_eq!(absent_from(&[][..], &refs).unwrap(), refs);
        assert!(absent_from(&file[..], &[]).unwrap().is_empty());
    }

    #[test]
    fn a_torn_file_is_an_error_not_a_count() {
        let mut file = file_of(&[2, 4]);
        file.truncate(20);
        assert!(absent_from(&file[..], &[oid(9)]).is_err());
    }

    #[test]
    fn the_ids_of_a_copy_read_in_order_answer_and_out_of_order_they_do_not() {
        let ids = ParentIds::new();
        let mut w = ids.writer("parents").expect("a temporary directory");
        let batch = |ns: &[u8]| -> Vec<RawDocumentBuf> {
            ns.iter()
                .map(|n| rawdoc! { "_id": oid(*n), "n": 1 })
                .chain(std::iter::once(rawdoc! { "_id": "not an ObjectId" }))
                .collect()
        };
        w.add(&batch(&[1, 3])).unwrap();
        w.add(&batch(&[7])).unwrap();
        assert!(
            ids.complete("parents").is_none(),
            "not complete before its end"
        );
        ids.finish(w);
        let path = ids.complete("parents").unwrap();
        let refs = [1, 2, 7, 8].map(oid);
        assert_eq!(
            absent_from_file(&path, &refs).unwrap(),
            vec![oid(2), oid(8)]
        );

        let mut w = ids.writer("others").unwrap();
        w.add(&batch(&[5])).unwrap();
        assert!(w.add(&batch(&[4])).is_err());
        assert!(
            w.add(&batch(&[5])).is_err(),
            "an `_id` twice is out of order too"
        );
    }
}
