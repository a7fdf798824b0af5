//! The `_id`s a clone read of a referenced collection, kept on local disk in `_id` order,
//! so that the references its children point with are counted without asking the source
//! for each parent again.
//!
//! A copy reads a collection in whatever order (the source's own, for a first copy); the
//! `ObjectId`s among them are gathered a bounded run at a time ([`RUN_IDS`]), each run
//! sorted and written to a file of its own, and the runs merged into one file of 12-byte
//! `_id`s, ascending, once the copy has read the whole collection. The file is then
//! *complete*, and a count of references to it (sorted `_id`s, see `Deferred` in
//! `clone.rs`) is one merge against the file: no query, no memory beyond a read buffer. What
//! the file does not hold is still read from the source, so a parent added to the source
//! after its copy is found there as before; a parent the copy read counts as there.
//!
//! The files live in a directory of the run's own under the system's temporary directory,
//! removed when the run ends (12 bytes a document of the referenced collections: 6 MB for
//! half a million parents, twice that while the runs are merged). Anything that goes wrong
//! with them — no temporary directory, a full disk, an `_id` read twice — only sends the
//! counts back to the source.

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{RawBsonRef, RawDocumentBuf};

/// How many `_id`s a writer holds before it sorts them and writes them out as one run
/// (12 bytes each: 3 MB).
const RUN_IDS: usize = 1 << 18;

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
        let dir = dir.as_ref()?.path().to_path_buf();
        Some(IdsWriter {
            collection,
            dir,
            held: Vec::new(),
            runs: Vec::new(),
        })
    }

    /// The copy read the whole collection and `sealed` is its writer's
    /// [`IdsWriter::seal`]: its file answers counts from now on.
    pub fn finish(&self, collection: &'static str, sealed: std::io::Result<PathBuf>) {
        match sealed {
            Ok(path) => {
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

/// Gathers one collection's `ObjectId` `_id`s as its copy reads them, in any order.
#[derive(Debug)]
pub(crate) struct IdsWriter {
    collection: &'static str,
    dir: PathBuf,
    /// Read since the last run was written out (at most [`RUN_IDS`]).
    held: Vec<ObjectId>,
    /// The runs written out, each sorted.
    runs: Vec<PathBuf>,
}

impl IdsWriter {
    /// Adds the `ObjectId` `_id`s of `batch`. An error (a full disk) means the file cannot
    /// be used.
    pub fn add(&mut self, batch: &[RawDocumentBuf]) -> std::io::Result<()> {
        for d in batch {
            if let Ok(Some(RawBsonRef::ObjectId(id))) = d.get("_id") {
                self.held.push(id);
                if self.held.len() >= RUN_IDS {
                    self.write_run()?;
                }
            }
        }
        Ok(())
    }

    /// Sorts what it holds and writes it out as a run.
    fn write_run(&mut self) -> std::io::Result<()> {
        self.held.sort_unstable();
        let path = self
            .dir
            .join(format!("{}.{}.run", self.collection, self.runs.len()));
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(&path)?);
        for id in self.held.drain(..) {
            out.write_all(&id.bytes())?;
        }
        out.flush()?;
        self.runs.push(path);
        Ok(())
    }

    /// Every `_id` of the collection read: merges the runs into one ascending file and
    /// returns its path (blocking file work: for `spawn_blocking`). An `_id` read twice (a
    /// source answering a document twice) is an error: the file would not be the
    /// collection's.
    pub fn seal(mut self) -> std::io::Result<PathBuf> {
        if !self.held.is_empty() || self.runs.is_empty() {
            self.write_run()?;
        }
        let path = self.dir.join(format!("{}.ids", self.collection));
        merge_runs(&self.runs, &path, self.collection)?;
        for run in &self.runs {
            let _ = std::fs::remove_file(run);
        }
        Ok(path)
    }
}

/// Merges sorted runs of 12-byte `_id`s into one strictly ascending file at `out`.
fn merge_runs(runs: &[PathBuf], out: &Path, collection: &str) -> std::io::Result<()> {
    let mut readers = runs
        .iter()
        .map(|p| Ok(BufReader::with_capacity(64 * 1024, File::open(p)?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut heads = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(id) = read_id(r)? {
            heads.push(std::cmp::Reverse((id, i)));
        }
    }
    let mut w = BufWriter::with_capacity(64 * 1024, File::create(out)?);
    let mut last: Option<ObjectId> = None;
    while let Some(std::cmp::Reverse((id, i))) = heads.pop() {
        if last == Some(id) {
            return Err(std::io::Error::other(format!(
                "{collection}: the `_id` {id} read twice"
            )));
        }
        w.write_all(&id.bytes())?;
        last = Some(id);
        if let Some(next) = read_id(&mut readers[i])? {
            heads.push(std::cmp::Reverse((next, i)));
        }
    }
    w.flush()
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
    fn the_ids_of_a_copy_read_in_any_order_answer_sorted() {
        let ids = ParentIds::new();
        let mut w = ids.writer("parents").expect("a temporary directory");
        let batch = |ns: &[u8]| -> Vec<RawDocumentBuf> {
            ns.iter()
                .map(|n| rawdoc! { "_id": oid(*n), "n": 1 })
                .chain(std::iter::once(rawdoc! { "_id": "not an ObjectId" }))
                .collect()
        };
        w.add(&batch(&[7, 1])).unwrap();
        w.add(&batch(&[3])).unwrap();
        assert!(
            ids.complete("parents").is_none(),
            "not complete before its end"
        );
        ids.finish("parents", w.seal());
        let path = ids.complete("parents").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), file_of(&[1, 3, 7]));
        let refs = [1, 2, 7, 8].map(oid);
        assert_eq!(
            absent_from_file(&path, &refs).unwrap(),
            vec![oid(2), oid(8)]
        );
        // A collection read whole with nothing in it: an empty file, every reference absent.
        let w = ids.writer("empty").unwrap();
        ids.finish("empty", w.seal());
        let path = ids.complete("empty").unwrap();
        assert_eq!(absent_from_file(&path, &refs).unwrap(), refs.to_vec());
    }

    #[test]
    fn runs_written_out_merge_into_one_ascending_file() {
        // More `_id`s than one run holds, in descending order: several runs, one merge.
        let ids = ParentIds::new();
        let mut w = ids.writer("many").unwrap();
        let n = RUN_IDS * 2 + 5;
        let id_of = |i: usize| {
            let mut b = [0u8; 12];
            b[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            ObjectId::from_bytes(b)
        };
        let docs: Vec<RawDocumentBuf> = (0..n).rev().map(|i| rawdoc! { "_id": id_of(i) }).collect();
        for chunk in docs.chunks(1000) {
            w.add(chunk).unwrap();
        }
        assert_eq!(w.runs.len(), 2, "written out as it went");
        ids.finish("many", w.seal());
        let path = ids.complete("many").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), n * 12);
        let expected: Vec<u8> = (0..n).flat_map(|i| id_of(i).bytes()).collect();
        assert!(bytes == expected, "not ascending");
        let leftover: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "run"))
            .collect();
        assert!(leftover.is_empty(), "runs removed once merged");
    }

    #[test]
    fn an_id_read_twice_leaves_no_file() {
        let ids = ParentIds::new();
        let mut w = ids.writer("twice").unwrap();
        w.add(&[rawdoc! { "_id": oid(5) }, rawdoc! { "_id": oid(4) }])
            .unwrap();
        w.add(&[rawdoc! { "_id": oid(5) }]).unwrap();
        let sealed = w.seal();
        assert!(sealed.is_err());
        ids.finish("twice", sealed);
        assert!(ids.complete("twice").is_none());
    }
}
