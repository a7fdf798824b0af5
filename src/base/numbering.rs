//! Numbers given to legacy records by `_id` (a modmail thread's ticket number, a warning's
//! case number), built and held in bounded memory.
//!
//! A numbering orders a step's records within their group (a guild) by a time, ties by
//! `_id` ([`IdKey`]'s order), and numbers them from the group's first number. [`Numbering`]
//! takes the records in whatever order a scan of the source gives them and holds at most
//! [`CHUNK`] of them: a full chunk is sorted and written to a temporary file as a run, and
//! the runs are merged at the end. The numbers then go through a second sort, by `_id`, into
//! a file [`IdNumbers`] reads one block of [`BLOCK`] numbers at a time, holding the first
//! key of each block. So what memory holds grows with the number of groups, not with the
//! number of records: a chunk while the numbering is built, 12 bytes per [`BLOCK`] records
//! once it is. A numbering that fits in one chunk never touches the disk.
//!
//! The files are anonymous (gone with the numbering, or with the process). Without one (no
//! temporary directory, a full disk) the numbering is held in memory, as it was before
//! these files, with a warning.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use mongodb::bson::Bson;

use crate::legacy::IdKey;

/// Records a numbering sorts in memory before it writes them out as a run (about 2 MB).
pub const CHUNK: usize = 64 * 1024;

/// Numbers in one block of a numbering's file: one read answers a look-up.
pub const BLOCK: usize = 256;

/// Bytes read at a time from a run while runs are merged.
const READ_BYTES: usize = 16 * 1024;

/// A record of a numbering: its group, its time, its `_id`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    group: u32,
    at: i64,
    id: Id,
}

/// An `_id` as a numbering holds it: an ObjectId's bytes, or the index of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Oid([u8; 12]),
    Text(u32),
}

/// `a` against `b` in [`IdKey`]'s order, texts looked up in `texts`.
fn cmp_id(a: Id, b: Id, texts: &[Box<str>]) -> Ordering {
    let text = |i: u32| texts[i as usize].as_ref();
    match (a, b) {
        (Id::Oid(x), Id::Oid(y)) => x.cmp(&y),
        (Id::Text(x), Id::Text(y)) => text(x).cmp(text(y)),
        (Id::Oid(x), Id::Text(y)) => hex::encode(x).as_str().cmp(text(y)).then(Ordering::Less),
        (Id::Text(x), Id::Oid(y)) => text(x).cmp(hex::encode(y).as_str()).then(Ordering::Greater),
    }
}

/// A fixed-size record a run holds.
trait Record: Copy {
    const SIZE: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

impl Record for Entry {
    const SIZE: usize = 25;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.to_le_bytes());
        out.extend_from_slice(&self.at.to_le_bytes());
        match self.id {
            Id::Oid(b) => {
                out.push(0);
                out.extend_from_slice(&b);
            }
            Id::Text(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
                out.extend_from_slice(&[0; 8]);
            }
        }
    }
    fn get(b: &[u8]) -> Self {
        let id: [u8; 12] = b[13..25].try_into().expect("12 bytes");
        Self {
            group: u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            at: i64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
            id: match b[12] {
                0 => Id::Oid(id),
                _ => Id::Text(u32::from_le_bytes(id[..4].try_into().expect("4 bytes"))),
            },
        }
    }
}

/// An ObjectId `_id` and its number.
type OidNumber = ([u8; 12], i32);

impl Record for OidNumber {
    const SIZE: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        (
            b[..12].try_into().expect("12 bytes"),
            i32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
        )
    }
}

/// An anonymous temporary file, made when first needed; `None` once one could not be
/// made or written (everything then stays in memory).
#[derive(Debug, Default)]
struct Spill {
    file: Option<File>,
    failed: bool,
    end: u64,
}

impl Spill {
    /// Writes `records` at the end of the file; where they went.
    fn append<T: Record>(&mut self, records: &[T]) -> io::Result<(u64, u64)> {
        if self.failed {
            return Err(io::Error::other("no temporary file"));
        }
        let res = (|| {
            if self.file.is_none() {
                self.file = Some(tempfile::tempfile()?);
            }
            let file = self.file.as_ref().expect("made above");
            let start = self.end;
            let per_write = READ_BYTES * 4 / T::SIZE;
            let mut buf = Vec::with_capacity(records.len().min(per_write) * T::SIZE);
            for part in records.chunks(per_write) {
                buf.clear();
                part.iter().for_each(|r| r.put(&mut buf));
                file.write_all_at(&buf, self.end)?;
                self.end += buf.len() as u64;
            }
            Ok((start, self.end))
        })();
        if let Err(e) = &res {
            tracing::warn!(error = %e, "no temporary file for a numbering: it is held in memory");
            self.failed = true;
        }
        res
    }
}

/// Records sorted in bounded memory: runs of `limit` on a temporary file, merged in order.
struct Sorter<T> {
    chunk: Vec<T>,
    limit: usize,
    spill: Spill,
    runs: Vec<(u64, u64)>,
}

impl<T: Record> Sorter<T> {
    fn new(limit: usize) -> Self {
        Self {
            chunk: Vec::new(),
            limit: limit.max(1),
            spill: Spill::default(),
            runs: Vec::new(),
        }
    }

    fn push(&mut self, t: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        self.chunk.push(t);
        if self.chunk.len() >= self.limit && !self.spill.failed {
            self.chunk.sort_unstable_by(cmp);
            if let Ok(run) = self.spill.append(&self.chunk) {
                self.runs.push(run);
                self.chunk.clear();
            }
        }
    }

    /// Every record pushed, in order, to `each`.
    fn drain(
        mut self,
        cmp: &impl Fn(&T, &T) -> Ordering,
        mut each: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<()> {
        self.chunk.sort_unstable_by(cmp);
        let Some(file) = self.spill.file.as_ref().filter(|_| !self.runs.is_empty()) else {
            return self.chunk.into_iter().try_for_each(each);
        };
        let mut readers: Vec<RunReader<'_>> = self
            .runs
            .iter()
            .map(|&(start, end)| RunReader::new(file, start, end, T::SIZE))
            .collect();
        let mut memory = std::mem::take(&mut self.chunk).into_iter();
        // Source `readers.len()` is the chunk left in memory.
        let mut next = |src: usize| -> io::Result<Option<T>> {
            match readers.get_mut(src) {
                Some(r) => r.next::<T>(),
                None => Ok(memory.next()),
            }
        };
        let mut heap = BinaryHeap::new();
        for src in 0..=self.runs.len() {
            if let Some(item) = next(src)? {
                heap.push(Head { item, src, cmp });
            }
        }
        while let Some(Head { item, src, .. }) = heap.pop() {
            each(item)?;
            if let Some(item) = next(src)? {
                heap.push(Head { item, src, cmp });
            }
        }
        Ok(())
    }
}

/// The next record of one source in a merge; the smallest comes out of the heap first.
struct Head<'c, T, C> {
    item: T,
    src: usize,
    cmp: &'c C,
}

impl<T, C: Fn(&T, &T) -> Ordering> Ord for Head<'_, T, C> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.cmp)(&other.item, &self.item).then(other.src.cmp(&self.src))
    }
}
impl<T, C: Fn(&T, &T) -> Ordering> PartialOrd for Head<'_, T, C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T, C: Fn(&T, &T) -> Ordering> PartialEq for Head<'_, T, C> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T, C: Fn(&T, &T) -> Ordering> Eq for Head<'_, T, C> {}

/// One run of a file, read [`READ_BYTES`] at a time.
struct RunReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'f> RunReader<'f> {
    fn new(file: &'f File, pos: u64, end: u64, size: usize) -> Self {
        Self {
            file,
            pos,
            end,
            buf: Vec::with_capacity(READ_BYTES / size * size),
            at: 0,
        }
    }

    fn next<T: Record>(&mut self) -> io::Result<Option<T>> {
        if self.at >= self.buf.len() {
            let want = (self.buf.capacity() / T::SIZE * T::SIZE).max(T::SIZE) as u64;
            let n = want.min(self.end - self.pos) as usize;
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
            self.pos += n as u64;
            self.at = 0;
        }
        let t = T::get(&self.buf[self.at..self.at + T::SIZE]);
        self.at += T::SIZE;
        Ok(Some(t))
    }
}

/// Builds an [`IdNumbers`] in bounded memory (see the module's documentation): records are
/// given with [`Numbering::push`] in any order, numbered with [`Numbering::finish`].
pub struct Numbering {
    /// Each group's index (in the order first given).
    groups: HashMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
    entries: Sorter<Entry>,
}

impl Default for Numbering {
    fn default() -> Self {
        Self::new()
    }
}

impl Numbering {
    /// An empty numbering, [`CHUNK`] records at a time in memory.
    pub fn new() -> Self {
        Self::with_chunk(CHUNK)
    }

    /// An empty numbering holding `chunk` records at a time in memory (small in tests, to
    /// have runs on the disk from a few records).
    pub fn with_chunk(chunk: usize) -> Self {
        Self {
            groups: HashMap::new(),
            texts: Vec::new(),
            entries: Sorter::new(chunk),
        }
    }

    /// Adds the record whose `_id` is `id`, in group `group`, at time `at`.
    pub fn push(&mut self, group: &str, at: i64, id: IdKey) {
        let group = match self.groups.get(group) {
            Some(&g) => g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.insert(group.into(), g);
                g
            }
        };
        let id = match id {
            IdKey::Oid(b) => Id::Oid(b),
            IdKey::Text(t) => {
                self.texts.push(t);
                Id::Text(self.texts.len() as u32 - 1)
            }
        };
        let texts = &self.texts;
        self.entries
            .push(Entry { group, at, id }, &|a, b| cmp_entry(a, b, texts));
    }

    /// The numbers: each group's records in order of time, ties by `_id`, from
    /// `first(group)` on. An error is a temporary file that could not be read back.
    pub fn finish(self, first: impl Fn(&str) -> i64) -> io::Result<IdNumbers> {
        let Self {
            groups,
            texts,
            entries,
        } = self;
        let mut names: Vec<Box<str>> = vec![Box::default(); groups.len()];
        for (name, g) in groups {
            names[g as usize] = name;
        }
        let mut text_numbers: Vec<(u32, i32)> = Vec::new();
        let mut oids: Sorter<OidNumber> = Sorter::new(entries.limit);
        let by_oid = |a: &OidNumber, b: &OidNumber| a.0.cmp(&b.0);
        let mut current: Option<(u32, i64)> = None;
        entries.drain(&|a, b| cmp_entry(a, b, &texts), |e| {
            let n = match current {
                Some((g, n)) if g == e.group => n + 1,
                _ => first(names[e.group as usize].as_ref()),
            };
            current = Some((e.group, n));
            match e.id {
                Id::Oid(b) => oids.push((b, n as i32), &by_oid),
                Id::Text(i) => text_numbers.push((i, n as i32)),
            }
            Ok(())
        })?;
        let mut texts = texts;
        let texts: HashMap<Box<str>, i32> = text_numbers
            .into_iter()
            .map(|(i, n)| (std::mem::take(&mut texts[i as usize]), n))
            .collect();
        IdNumbers::sorted(oids, texts)
    }
}

fn cmp_entry(a: &Entry, b: &Entry, texts: &[Box<str>]) -> Ordering {
    a.group
        .cmp(&b.group)
        .then(a.at.cmp(&b.at))
        .then_with(|| cmp_id(a.id, b.id, texts))
}

impl Record for u64 {
    const SIZE: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    }
}

/// Which of many 64-bit keys (hashes of what records claim: a tag's guild and name) are
/// given more than once, found in bounded memory: the keys are sorted as a numbering's
/// records are (runs of [`CHUNK`] on a temporary file, merged), so memory holds a chunk
/// and the keys found repeated, not one entry per key given.
pub struct Repeated {
    keys: Sorter<u64>,
}

impl Default for Repeated {
    fn default() -> Self {
        Self::new()
    }
}

impl Repeated {
    /// None given yet, [`CHUNK`] keys at a time in memory.
    pub fn new() -> Self {
        Self::with_chunk(CHUNK)
    }

    /// None given yet, `chunk` keys at a time in memory.
    pub fn with_chunk(chunk: usize) -> Self {
        Self {
            keys: Sorter::new(chunk),
        }
    }

    /// Gives `key` once more.
    pub fn push(&mut self, key: u64) {
        self.keys.push(key, &u64::cmp);
    }

    /// The keys given twice or more. An error is a temporary file that could not be read
    /// back.
    pub fn finish(self) -> io::Result<std::collections::HashSet<u64>> {
        let mut out = std::collections::HashSet::new();
        let mut last = None;
        self.keys.drain(&u64::cmp, |k| {
            if last == Some(k) {
                out.insert(k);
            }
            last = Some(k);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Numbers a step's preparation gives legacy records by `_id` (a modmail thread's ticket
/// number, a warning's case number), held for the whole step and so held small: a numbering
/// built by [`Numbering`] past one chunk is a file of 16 bytes a record with an ObjectId
/// `_id`, read a block at a time, and 12 bytes in memory per [`BLOCK`] of them; a smaller
/// one, or one collected from a list, is a sorted list in memory. Records whose `_id` is
/// not an ObjectId have a map entry each (in memory).
#[derive(Debug, Default)]
pub struct IdNumbers {
    oids: Oids,
    texts: HashMap<Box<str>, i32>,
}

#[derive(Debug)]
enum Oids {
    Memory(Vec<OidNumber>),
    File {
        file: File,
        len: usize,
        fences: Vec<[u8; 12]>,
    },
}

impl Default for Oids {
    fn default() -> Self {
        Self::Memory(Vec::new())
    }
}

impl IdNumbers {
    /// From the ObjectIds' numbers (in any order: sorted here) and the others'. Of an
    /// `_id` given twice, the first number in order stays.
    fn sorted(oids: Sorter<OidNumber>, texts: HashMap<Box<str>, i32>) -> io::Result<Self> {
        let mut out = Written {
            // All in one chunk: a list, never a file.
            list: oids.runs.is_empty().then(Vec::new),
            ..Written::default()
        };
        let mut block = Vec::with_capacity(BLOCK);
        let mut last: Option<[u8; 12]> = None;
        oids.drain(&|a, b| a.0.cmp(&b.0), |r| {
            if last == Some(r.0) {
                return Ok(());
            }
            last = Some(r.0);
            block.push(r);
            if block.len() == BLOCK {
                out.put(&mut block)?;
            }
            Ok(())
        })?;
        out.put(&mut block)?;
        Ok(Self {
            oids: out.into_oids(),
            texts,
        })
    }

    /// The number of the record whose `_id` is `id`, if it was given one. A numbering's
    /// file that cannot be read is logged and answers `None` (the record is then reported
    /// as not numbered, never given another's number).
    pub fn get(&self, id: &Bson) -> Option<i32> {
        match IdKey::of(id) {
            IdKey::Oid(b) => match &self.oids {
                Oids::Memory(list) => list
                    .binary_search_by(|(k, _)| k.cmp(&b))
                    .ok()
                    .map(|i| list[i].1),
                Oids::File { file, len, fences } => {
                    let block = fences.partition_point(|f| *f <= b).checked_sub(1)?;
                    let start = block * BLOCK;
                    let n = BLOCK.min(len - start);
                    let mut buf = [0u8; BLOCK * 16];
                    let buf = &mut buf[..n * 16];
                    if let Err(e) = file.read_exact_at(buf, (start * 16) as u64) {
                        tracing::warn!(error = %e, "a numbering's file could not be read");
                        return None;
                    }
                    let at = |i: usize| OidNumber::get(&buf[i * 16..i * 16 + 16]);
                    let (mut lo, mut hi) = (0, n);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        let (k, v) = at(mid);
                        match k.cmp(&b) {
                            Ordering::Less => lo = mid + 1,
                            Ordering::Greater => hi = mid,
                            Ordering::Equal => return Some(v),
                        }
                    }
                    None
                }
            },
            IdKey::Text(t) => self.texts.get(&t).copied(),
        }
    }

    /// How many records have a number.
    pub fn len(&self) -> usize {
        self.texts.len()
            + match &self.oids {
                Oids::Memory(list) => list.len(),
                Oids::File { len, .. } => *len,
            }
    }

    /// Whether no record has a number.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ObjectIds' numbers are on a file (not in memory).
    pub fn on_disk(&self) -> bool {
        matches!(self.oids, Oids::File { .. })
    }
}

/// Where a numbering's sorted ObjectId numbers go, a block at a time: a file, with the
/// first key of each block; or a list in memory, for a numbering that fits in one chunk or
/// a file that could not be written (what it held is read back into the list).
#[derive(Default)]
struct Written {
    list: Option<Vec<OidNumber>>,
    file: Spill,
    fences: Vec<[u8; 12]>,
    len: usize,
}

impl Written {
    /// Moves `block` (sorted, after every block before it) to the file or the list.
    fn put(&mut self, block: &mut Vec<OidNumber>) -> io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        if self.list.is_none() {
            if self.file.append(block).is_ok() {
                self.fences.push(block[0].0);
                self.len += block.len();
                block.clear();
                return Ok(());
            }
            let mut list = Vec::with_capacity(self.len + block.len());
            if let Some(file) = &self.file.file {
                let mut r = RunReader::new(file, 0, (self.len * 16) as u64, 16);
                while let Some(x) = r.next::<OidNumber>()? {
                    list.push(x);
                }
            }
            self.list = Some(list);
        }
        self.list.as_mut().expect("set above").append(block);
        Ok(())
    }

    fn into_oids(self) -> Oids {
        match (self.list, self.file.file) {
            (Some(mut list), _) => {
                list.shrink_to_fit();
                Oids::Memory(list)
            }
            (None, Some(file)) => Oids::File {
                file,
                len: self.len,
                fences: {
                    let mut f = self.fences;
                    f.shrink_to_fit();
                    f
                },
            },
            (None, None) => Oids::Memory(Vec::new()),
        }
    }
}

impl FromIterator<(IdKey, i32)> for IdNumbers {
    /// Numbers by key, held in memory; a key given twice keeps its last number.
    fn from_iter<I: IntoIterator<Item = (IdKey, i32)>>(iter: I) -> Self {
        let mut oids = Vec::new();
        let mut texts = HashMap::new();
        for (key, n) in iter {
            match key {
                IdKey::Oid(b) => oids.push((b, n)),
                IdKey::Text(t) => {
                    texts.insert(t, n);
                }
            }
        }
        // Reversed, then a stable sort: of equal keys the last one given comes first, and
        // is the one `dedup` keeps. In place: no second list beside the first.
        oids.reverse();
        oids.sort_by_key(|e| e.0);
        oids.dedup_by_key(|e| e.0);
        oids.shrink_to_fit();
        texts.shrink_to_fit();
        Self {
            oids: Oids::Memory(oids),
            texts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;
    use rand::{Rng, SeedableRng};

    /// A numbering as the steps made it before: every record in memory, each group's
    /// list sorted and numbered in turn.
    fn in_memory(records: &[(String, i64, Bson)], first: impl Fn(&str) -> i64) -> IdNumbers {
        let mut per: HashMap<&str, Vec<(i64, IdKey)>> = HashMap::new();
        for (g, at, id) in records {
            per.entry(g.as_str())
                .or_default()
                .push((*at, IdKey::of(id)));
        }
        per.into_iter()
            .flat_map(|(g, mut list)| {
                list.sort();
                let from = first(g);
                list.into_iter()
                    .enumerate()
                    .map(move |(i, (_, id))| (id, (from + i as i64) as i32))
            })
            .collect()
    }

    /// `n` records of a source as users have them: a few guilds, times that tie, `_id`s
    /// mostly ObjectIds and some strings and numbers (one a string of an ObjectId's hex).
    fn records(n: usize, seed: u64) -> Vec<(String, i64, Bson)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let group = format!("{}", 100_000 + rng.gen_range(0..7));
            let at = 1_600_000_000_000 + rng.gen_range(0..(n as i64 / 3 + 1));
            let id = match rng.gen_range(0..20) {
                0 => Bson::String(format!("thread-{i}")),
                1 => Bson::Int64(i as i64),
                2 if i > 0 => match &out.last() {
                    Some((_, _, Bson::ObjectId(o))) => Bson::String(ObjectId::to_hex(*o)),
                    _ => Bson::Int32(i as i32),
                },
                _ => {
                    let mut b = [0u8; 12];
                    rng.fill(&mut b);
                    Bson::ObjectId(ObjectId::from_bytes(b))
                }
            };
            out.push((group, at, id));
        }
        out
    }

    fn numbered(records: &[(String, i64, Bson)], chunk: usize) -> IdNumbers {
        let mut numbering = Numbering::with_chunk(chunk);
        for (g, at, id) in records {
            numbering.push(g, *at, IdKey::of(id));
        }
        numbering
            .finish(|g| if g == "100003" { 41 } else { 1 })
            .unwrap()
    }

    #[test]
    fn a_numbering_on_the_disk_gives_every_record_the_number_it_had_in_memory() {
        let records = records(5_000, 7);
        let before = in_memory(&records, |g| if g == "100003" { 41 } else { 1 });
        // Runs of 97 records on the disk, and a last chunk in memory; one chunk only.
        let spilled = numbered(&records, 97);
        let whole = numbered(&records, 1_000_000);
        assert!(spilled.on_disk());
        assert!(!whole.on_disk());
        assert_eq!(spilled.len(), records.len());
        assert_eq!(whole.len(), records.len());
        for (_, _, id) in &records {
            let n = before.get(id);
            assert!(n.is_some(), "{id} was not numbered");
            assert_eq!(spilled.get(id), n, "{id}");
            assert_eq!(whole.get(id), n, "{id}");
        }
        // Each guild numbered from its first number, none twice.
        let mut per: HashMap<&str, Vec<i32>> = HashMap::new();
        for (g, _, id) in &records {
            per.entry(g.as_str())
                .or_default()
                .push(spilled.get(id).unwrap());
        }
        for (g, mut ns) in per {
            ns.sort();
            let from = if g == "100003" { 41 } else { 1 };
            assert_eq!(
                ns,
                (from..from + ns.len() as i32).collect::<Vec<_>>(),
                "{g}"
            );
        }
    }

    #[test]
    fn an_id_never_given_a_number_has_none_whatever_its_neighbours() {
        let records = records(3_000, 11);
        let spilled = numbered(&records, 50);
        assert!(spilled.on_disk());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..2_000 {
            let mut b = [0u8; 12];
            rng.fill(&mut b);
            assert_eq!(spilled.get(&Bson::ObjectId(ObjectId::from_bytes(b))), None);
        }
        // Below the first key and above the last.
        assert_eq!(
            spilled.get(&Bson::ObjectId(ObjectId::from_bytes([0; 12]))),
            None
        );
        assert_eq!(
            spilled.get(&Bson::ObjectId(ObjectId::from_bytes([0xff; 12]))),
            None
        );
        assert_eq!(spilled.get(&Bson::String("thread-x".into())), None);
    }

    #[test]
    fn keys_given_twice_are_found_whichever_runs_they_fell_in() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let keys: Vec<u64> = (0..4_000).map(|_| rng.gen_range(0..20_000)).collect();
        let mut counts: HashMap<u64, u32> = HashMap::new();
        let mut repeated = Repeated::with_chunk(64);
        for &k in &keys {
            *counts.entry(k).or_default() += 1;
            repeated.push(k);
        }
        let want: std::collections::HashSet<u64> = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(repeated.finish().unwrap(), want);
    }

    #[test]
    fn numbers_a_full_disk_refused_stay_in_memory_with_those_it_took() {
        let nums: Vec<OidNumber> = (0..1000u32)
            .map(|i| {
                let mut b = [0u8; 12];
                b[..4].copy_from_slice(&i.to_be_bytes());
                (b, i as i32 + 1)
            })
            .collect();
        let mut out = Written::default();
        let mut blocks = nums.chunks(BLOCK);
        out.put(&mut blocks.next().unwrap().to_vec()).unwrap();
        assert_eq!(out.len, BLOCK, "the first block is on the file");
        // The disk is full from here on.
        out.file.failed = true;
        for b in blocks {
            out.put(&mut b.to_vec()).unwrap();
        }
        let numbers = IdNumbers {
            oids: out.into_oids(),
            texts: HashMap::new(),
        };
        assert!(!numbers.on_disk());
        assert_eq!(numbers.len(), nums.len());
        for (k, n) in &nums {
            assert_eq!(
                numbers.get(&Bson::ObjectId(ObjectId::from_bytes(*k))),
                Some(*n)
            );
        }
    }

    #[test]
    fn an_empty_numbering_numbers_nothing() {
        let numbers = Numbering::with_chunk(4).finish(|_| 1).unwrap();
        assert!(numbers.is_empty());
        assert_eq!(numbers.get(&Bson::ObjectId(ObjectId::new())), None);
    }
}
