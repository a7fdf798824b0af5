//! Numbers given to legacy records by `_id` (a modmail thread's ticket number, a warning's
//! case number), built and held in bounded memory.
//!
//! A numbering orders a step's records within their group (a guild) by a time, ties by
//! `_id` ([`IdKey`]'s order), and numbers them from the group's first number. [`Numbering`]
//! takes the records in whatever order a scan of the source gives them and holds at most
//! [`CHUNK`] of them (or [`CHUNK_BYTES`] of them written, for long `_id`s): a full chunk is
//! sorted and written to a temporary file as a run, and the runs are merged at the end. The
//! numbers then go through a second sort, by `_id`, into a file [`IdNumbers`] reads one
//! block of [`BLOCK`] numbers at a time, holding the first key of each block. So what
//! memory holds grows with the number of groups, not with the number of records, whatever
//! the `_id`s' type: a chunk while the numbering is built, a key per [`BLOCK`] records once
//! it is. A numbering that fits in one chunk never touches the disk.
//!
//! The files are anonymous (gone with the numbering, or with the process). Without one (no
//! temporary directory, a full disk) the numbering is held in memory, as it was before
//! these files, with a warning.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use mongodb::bson::Bson;

use crate::legacy::{IdKey, IdView};

/// Records a numbering sorts in memory before it writes them out as a run (about 2 MB of
/// ObjectId `_id`s).
pub const CHUNK: usize = 64 * 1024;

/// Bytes of records (as written) a numbering sorts in memory before it writes them out as a
/// run, whatever their count: `_id`s of long text fill a run before [`CHUNK`] records do.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Numbers in one block of a numbering's file: one read answers a look-up.
pub const BLOCK: usize = 256;

/// Bytes read at a time from a run while runs are merged.
const READ_BYTES: usize = 16 * 1024;

/// Bytes of records gathered before they are written to a temporary file.
const WRITE_BYTES: usize = 4 * READ_BYTES;

/// Runs merged at once, each with its read buffer: past that many, runs are first merged
/// this many at a time into longer runs (on a new file, the old one then dropped), so that a
/// merge holds at most this many buffers ([`READ_BYTES`] each, 1 MB) whatever the number of
/// records.
const FAN_IN: usize = 64;

/// A record of a numbering: its group, its time, its `_id`.
#[derive(Debug, Clone)]
struct Entry {
    group: u32,
    at: i64,
    id: IdKey,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a numbering's temporary file holds {what}"),
    )
}

/// A record a run holds, written as bytes: an `_id` of text makes it as long as its text.
trait Record: Sized {
    /// Bytes it takes written.
    fn size(&self) -> usize;
    fn put(&self, out: &mut Vec<u8>);
    /// The record `b` starts with and the bytes it took; `None` when `b` holds only a part
    /// of it.
    fn get(b: &[u8]) -> io::Result<Option<(Self, usize)>>;
}

/// `_id` as written: 0 and an ObjectId's 12 bytes, or 1, the text's length (4 bytes) and
/// its text.
fn key_size(id: &IdKey) -> usize {
    match id {
        IdKey::Oid(_) => 13,
        IdKey::Text(t) => 5 + t.len(),
    }
}

fn put_key(id: &IdKey, out: &mut Vec<u8>) {
    match id {
        IdKey::Oid(b) => {
            out.push(0);
            out.extend_from_slice(b);
        }
        IdKey::Text(t) => {
            out.push(1);
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
    }
}

/// The `_id` `b` starts with, as it lies there, and the bytes it takes; `None` when `b`
/// holds only a part of it.
fn view_key(b: &[u8]) -> io::Result<Option<(IdView<'_>, usize)>> {
    match b.first() {
        None => Ok(None),
        Some(0) => Ok(b
            .get(1..13)
            .map(|id| (IdView::Oid(id.try_into().expect("12 bytes")), 13))),
        Some(1) => {
            let Some(len) = b.get(1..5) else {
                return Ok(None);
            };
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            Ok(b.get(5..5 + len).map(|text| (IdView::Text(text), 5 + len)))
        }
        Some(_) => Err(corrupt("an `_id` of no known kind")),
    }
}

/// The `_id` a view read from a file is, made to be kept.
fn owned(view: IdView<'_>) -> io::Result<IdKey> {
    Ok(match view {
        IdView::Oid(id) => IdKey::Oid(*id),
        IdView::Text(text) => IdKey::Text(
            std::str::from_utf8(text)
                .map_err(|_| corrupt("an `_id` not in UTF-8"))?
                .into(),
        ),
    })
}

fn get_key(b: &[u8]) -> io::Result<Option<(IdKey, usize)>> {
    let Some((view, used)) = view_key(b)? else {
        return Ok(None);
    };
    Ok(Some((owned(view)?, used)))
}

/// The numbered record `b` starts with, as it lies there: its `_id`, its number, the bytes
/// it takes; `None` when `b` holds only a part of it.
fn view_numbered(b: &[u8]) -> io::Result<Option<(IdView<'_>, i32, usize)>> {
    let Some((id, used)) = view_key(b)? else {
        return Ok(None);
    };
    Ok(b.get(used..used + 4).map(|n| {
        let n = i32::from_le_bytes(n.try_into().expect("4 bytes"));
        (id, n, used + 4)
    }))
}

impl Record for Entry {
    fn size(&self) -> usize {
        12 + key_size(&self.id)
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.to_le_bytes());
        out.extend_from_slice(&self.at.to_le_bytes());
        put_key(&self.id, out);
    }
    fn get(b: &[u8]) -> io::Result<Option<(Self, usize)>> {
        let Some(head) = b.get(..12) else {
            return Ok(None);
        };
        Ok(get_key(&b[12..])?.map(|(id, used)| {
            let entry = Self {
                group: u32::from_le_bytes(head[..4].try_into().expect("4 bytes")),
                at: i64::from_le_bytes(head[4..].try_into().expect("8 bytes")),
                id,
            };
            (entry, 12 + used)
        }))
    }
}

/// An `_id` and its number.
type Numbered = (IdKey, i32);

impl Record for Numbered {
    fn size(&self) -> usize {
        key_size(&self.0) + 4
    }
    fn put(&self, out: &mut Vec<u8>) {
        put_key(&self.0, out);
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn get(b: &[u8]) -> io::Result<Option<(Self, usize)>> {
        let Some((id, n, used)) = view_numbered(b)? else {
            return Ok(None);
        };
        Ok(Some(((owned(id)?, n), used)))
    }
}

impl Record for u64 {
    fn size(&self) -> usize {
        8
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> io::Result<Option<(Self, usize)>> {
        Ok(b.get(..8)
            .map(|k| (u64::from_le_bytes(k.try_into().expect("8 bytes")), 8)))
    }
}

/// An anonymous temporary file, made when first needed; `None` once one could not be
/// made or written (everything then stays in memory).
#[derive(Debug, Default)]
struct Spill {
    file: Option<File>,
    failed: bool,
    end: u64,
    /// Bytes the file may take (a full disk in tests); none when `None`.
    room: Option<u64>,
}

impl Spill {
    /// Writes `records` at the end of the file; where they went.
    fn append<'r, T: Record + 'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r T>,
    ) -> io::Result<(u64, u64)> {
        let start = self.end;
        let mut buf = Vec::with_capacity(WRITE_BYTES);
        for r in records {
            self.put(r, &mut buf)?;
        }
        self.flush(&mut buf)?;
        Ok((start, self.end))
    }

    /// Adds `r` to `buf`, written at the end of the file once it holds [`WRITE_BYTES`].
    fn put<T: Record>(&mut self, r: &T, buf: &mut Vec<u8>) -> io::Result<()> {
        r.put(buf);
        if buf.len() >= WRITE_BYTES {
            self.flush(buf)?;
        }
        Ok(())
    }

    /// Writes `buf` at the end of the file (made first if there is none) and empties it.
    fn flush(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("no temporary file"));
        }
        let res = (|| {
            if self.file.is_none() {
                self.file = Some(tempfile::tempfile()?);
            }
            if self
                .room
                .is_some_and(|room| self.end + buf.len() as u64 > room)
            {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let file = self.file.as_ref().expect("made above");
            file.write_all_at(buf, self.end)?;
            self.end += buf.len() as u64;
            buf.clear();
            Ok(())
        })();
        if let Err(e) = &res {
            tracing::warn!(error = %e, "no temporary file for a numbering: it is held in memory");
            self.failed = true;
        }
        res
    }
}

/// Records sorted in bounded memory: runs of `limit` records (or [`CHUNK_BYTES`] of them
/// written) on a temporary file, merged in order.
struct Sorter<T> {
    chunk: Vec<T>,
    /// Bytes the chunk's records take written.
    bytes: usize,
    limit: usize,
    spill: Spill,
    runs: Vec<(u64, u64)>,
}

impl<T: Record> Sorter<T> {
    fn new(limit: usize) -> Self {
        Self {
            chunk: Vec::new(),
            bytes: 0,
            limit: limit.max(1),
            spill: Spill::default(),
            runs: Vec::new(),
        }
    }

    fn push(&mut self, t: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        self.bytes += t.size();
        self.chunk.push(t);
        if (self.chunk.len() >= self.limit || self.bytes >= CHUNK_BYTES) && !self.spill.failed {
            self.chunk.sort_unstable_by(cmp);
            if let Ok(run) = self.spill.append(&self.chunk) {
                self.runs.push(run);
                self.chunk.clear();
                self.bytes = 0;
            }
        }
    }

    /// Every record pushed, in order, to `each`.
    fn drain(
        mut self,
        cmp: &impl Fn(&T, &T) -> Ordering,
        each: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<()> {
        self.chunk.sort_unstable_by(cmp);
        self.narrow(cmp)?;
        let chunk = std::mem::take(&mut self.chunk);
        match self.spill.file.as_ref().filter(|_| !self.runs.is_empty()) {
            Some(file) => merge(file, &self.runs, chunk, cmp, each),
            None => chunk.into_iter().try_for_each(each),
        }
    }

    /// Merges the runs [`FAN_IN`] at a time into longer runs on a new file, until they and
    /// the chunk in memory are at most [`FAN_IN`]. A new file that cannot be written leaves
    /// the runs as they are (all of them then merged at once, a buffer each), with a
    /// warning; an old file that cannot be read is an error.
    fn narrow(&mut self, cmp: &impl Fn(&T, &T) -> Ordering) -> io::Result<()> {
        while self.runs.len() >= FAN_IN {
            let Some(file) = self.spill.file.as_ref() else {
                return Ok(());
            };
            let mut next = Spill {
                room: self.spill.room,
                ..Spill::default()
            };
            let mut runs = Vec::with_capacity(self.runs.len().div_ceil(FAN_IN));
            let mut buf = Vec::with_capacity(WRITE_BYTES);
            for group in self.runs.chunks(FAN_IN) {
                let start = next.end;
                let mut refused = false;
                let merged = merge(file, group, Vec::new(), cmp, |t| {
                    next.put(&t, &mut buf).inspect_err(|_| refused = true)
                })
                .and_then(|()| next.flush(&mut buf).inspect_err(|_| refused = true));
                match merged {
                    Ok(()) => runs.push((start, next.end)),
                    // The new file refused a write (warned of): the runs stay as they are.
                    Err(_) if refused => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            self.spill = next;
            self.runs = runs;
        }
        Ok(())
    }
}

/// The records of `runs` (each sorted, on `file`) and of `memory` (sorted), in order, to
/// `each`: one read buffer a run.
fn merge<T: Record>(
    file: &File,
    runs: &[(u64, u64)],
    memory: Vec<T>,
    cmp: &impl Fn(&T, &T) -> Ordering,
    mut each: impl FnMut(T) -> io::Result<()>,
) -> io::Result<()> {
    let mut readers: Vec<RunReader<'_>> = runs
        .iter()
        .map(|&(start, end)| RunReader::new(file, start, end))
        .collect();
    let mut memory = memory.into_iter();
    // Source `readers.len()` is the records in memory.
    let mut next = |src: usize| -> io::Result<Option<T>> {
        match readers.get_mut(src) {
            Some(r) => r.next::<T>(),
            None => Ok(memory.next()),
        }
    };
    let mut heap = BinaryHeap::with_capacity(runs.len() + 1);
    for src in 0..=runs.len() {
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

/// One run of a file, read [`READ_BYTES`] at a time (more for a record longer than that).
struct RunReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'f> RunReader<'f> {
    fn new(file: &'f File, pos: u64, end: u64) -> Self {
        Self {
            file,
            pos,
            end,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next<T: Record>(&mut self) -> io::Result<Option<T>> {
        loop {
            if let Some((t, used)) = T::get(&self.buf[self.at..])? {
                self.at += used;
                return Ok(Some(t));
            }
            let left = self.end - self.pos;
            if left == 0 {
                if self.at == self.buf.len() {
                    return Ok(None);
                }
                return Err(corrupt("a record cut short"));
            }
            // What is left of the buffer moves to its start, the next bytes go after it.
            let have = self.buf.len() - self.at;
            self.buf.copy_within(self.at.., 0);
            self.buf.truncate(have);
            self.at = 0;
            let n = (READ_BYTES as u64).min(left) as usize;
            self.buf.reserve_exact(n);
            self.buf.resize(have + n, 0);
            self.file.read_exact_at(&mut self.buf[have..], self.pos)?;
            self.pos += n as u64;
        }
    }
}

/// Builds an [`IdNumbers`] in bounded memory (see the module's documentation): records are
/// given with [`Numbering::push`] in any order, numbered with [`Numbering::finish`].
pub struct Numbering {
    /// Each group's index (in the order first given).
    groups: HashMap<Box<str>, u32>,
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
        self.entries.push(Entry { group, at, id }, &cmp_entry);
    }

    /// The numbers: each group's records in order of time, ties by `_id`, from
    /// `first(group)` on. An error is a temporary file that could not be read back.
    pub fn finish(self, first: impl Fn(&str) -> i64) -> io::Result<IdNumbers> {
        let Self { groups, entries } = self;
        let mut names: Vec<Box<str>> = vec![Box::default(); groups.len()];
        for (name, g) in groups {
            names[g as usize] = name;
        }
        let mut numbers: Sorter<Numbered> = Sorter::new(entries.limit);
        let mut current: Option<(u32, i64)> = None;
        entries.drain(&cmp_entry, |e| {
            let n = match current {
                Some((g, n)) if g == e.group => n + 1,
                _ => first(names[e.group as usize].as_ref()),
            };
            current = Some((e.group, n));
            numbers.push((e.id, n as i32), &by_id);
            Ok(())
        })?;
        IdNumbers::sorted(numbers)
    }
}

fn cmp_entry(a: &Entry, b: &Entry) -> Ordering {
    a.group
        .cmp(&b.group)
        .then(a.at.cmp(&b.at))
        .then_with(|| a.id.cmp(&b.id))
}

fn by_id(a: &Numbered, b: &Numbered) -> Ordering {
    a.0.cmp(&b.0)
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
/// built by [`Numbering`] past one chunk is a file (17 bytes a record with an ObjectId
/// `_id`, 9 and its text's length for another), read a block at a time, with the first
/// `_id` of each [`BLOCK`] in memory; a smaller one, or one collected from a list, is a
/// sorted list in memory.
#[derive(Debug)]
pub struct IdNumbers(Numbers);

#[derive(Debug)]
enum Numbers {
    Memory(Vec<Numbered>),
    File {
        file: File,
        len: usize,
        /// Where the blocks end on the file.
        end: u64,
        /// Each block's first `_id`, where it starts on the file, its records' size.
        fences: Vec<Fence>,
        /// The block read last, kept for the next look-up: the import looks records up
        /// in the order it reads them, by `_id`, so the next is mostly in the same block.
        last: Mutex<Option<Block>>,
    },
}

/// A block of a numbering's file as read: which, and its bytes.
#[derive(Debug)]
struct Block {
    index: usize,
    bytes: Vec<u8>,
}

/// The longest block kept for the next look-up (one of ObjectIds takes 4,352 bytes):
/// one of long `_id`s is read again each time.
const KEPT_BLOCK_BYTES: usize = 64 * 1024;

impl Default for IdNumbers {
    fn default() -> Self {
        Self(Numbers::Memory(Vec::new()))
    }
}

impl IdNumbers {
    /// From the numbers (in any order: sorted here). Of an `_id` given twice, the first
    /// number in order stays.
    fn sorted(numbers: Sorter<Numbered>) -> io::Result<Self> {
        let mut out = Written {
            // All in one chunk: a list, never a file.
            list: numbers.runs.is_empty().then(Vec::new),
            ..Written::default()
        };
        let mut block = Vec::with_capacity(BLOCK);
        // The last key of the blocks already written.
        let mut last: Option<IdKey> = None;
        numbers.drain(&by_id, |r| {
            let before = block.last().map(|p: &Numbered| &p.0).or(last.as_ref());
            if before == Some(&r.0) {
                return Ok(());
            }
            block.push(r);
            if block.len() == BLOCK {
                last = block.last().map(|p| p.0.clone());
                out.put(&mut block)?;
            }
            Ok(())
        })?;
        out.put(&mut block)?;
        Ok(Self(out.into_numbers()))
    }

    /// The number of the record whose `_id` is `id`, if it was given one. A numbering's
    /// file that cannot be read is logged and answers `None` (the record is then reported
    /// as not numbered, never given another's number).
    pub fn get(&self, id: &Bson) -> Option<i32> {
        IdView::with(id, |key| self.get_view(key))
    }

    fn get_view(&self, key: IdView<'_>) -> Option<i32> {
        match &self.0 {
            Numbers::Memory(list) => list
                .binary_search_by(|(k, _)| k.view().cmp(&key))
                .ok()
                .map(|i| list[i].1),
            Numbers::File {
                file,
                end,
                fences,
                last,
                ..
            } => {
                let block = fences
                    .partition_point(|f| f.first.view() <= key)
                    .checked_sub(1)?;
                let (start, each) = (fences[block].at, fences[block].each as usize);
                let stop = fences.get(block + 1).map_or(*end, |f| f.at);
                let len = (stop - start) as usize;
                let read = |bytes: &mut [u8]| {
                    file.read_exact_at(bytes, start)
                        .and_then(|()| find_in_block(bytes, each, key))
                };
                // Another thread looking up at the same time reads its block for itself.
                let mut last = last.try_lock().ok();
                let found = match last.as_deref_mut() {
                    Some(Some(kept)) if kept.index == block => {
                        find_in_block(&kept.bytes, each, key)
                    }
                    Some(kept) if len <= KEPT_BLOCK_BYTES => {
                        // The block read replaces the one kept, in its allocation.
                        let mut bytes = kept.take().map(|b| b.bytes).unwrap_or_default();
                        bytes.resize(len, 0);
                        let found = read(&mut bytes);
                        if found.is_ok() {
                            *kept = Some(Block {
                                index: block,
                                bytes,
                            });
                        }
                        found
                    }
                    _ => read(&mut vec![0u8; len]),
                };
                found.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a numbering's file could not be read");
                    None
                })
            }
        }
    }

    /// How many records have a number.
    pub fn len(&self) -> usize {
        match &self.0 {
            Numbers::Memory(list) => list.len(),
            Numbers::File { len, .. } => *len,
        }
    }

    /// Whether no record has a number.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the numbers are on a file (not in memory).
    pub fn on_disk(&self) -> bool {
        matches!(self.0, Numbers::File { .. })
    }
}

/// A block of a numbering's file: its first `_id`, where it starts, and the size of each
/// of its records when they all have one (0 when not: they are read one after another).
#[derive(Debug)]
struct Fence {
    first: IdKey,
    at: u64,
    each: u32,
}

/// The record read, or an error for a block that ends in the middle of one.
fn whole<T>(record: Option<T>) -> io::Result<T> {
    record.ok_or_else(|| corrupt("a block cut short"))
}

/// The number of `key` in `block` (numbered records sorted by `_id`, each `each` bytes, or
/// of different sizes when `each` is 0), compared as they lie in the block.
fn find_in_block(block: &[u8], each: usize, key: IdView<'_>) -> io::Result<Option<i32>> {
    if each > 0 {
        // Records of one size (ObjectIds, mostly): searched by halves.
        if !block.len().is_multiple_of(each) {
            return Err(corrupt("a block cut short"));
        }
        let (mut lo, mut hi) = (0, block.len() / each);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, n, _) = whole(view_numbered(&block[mid * each..])?)?;
            match k.cmp(&key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(Some(n)),
            }
        }
        return Ok(None);
    }
    let mut rest = block;
    while !rest.is_empty() {
        let (k, n, used) = whole(view_numbered(rest)?)?;
        match k.cmp(&key) {
            Ordering::Less => rest = &rest[used..],
            Ordering::Equal => return Ok(Some(n)),
            Ordering::Greater => return Ok(None),
        }
    }
    Ok(None)
}

/// Where a numbering's sorted numbers go, a block at a time: a file, with the first key of
/// each block; or a list in memory, for a numbering that fits in one chunk or a file that
/// could not be written (what it held is read back into the list).
#[derive(Default)]
struct Written {
    list: Option<Vec<Numbered>>,
    file: Spill,
    fences: Vec<Fence>,
    len: usize,
    /// Where the last block written whole ends.
    end: u64,
}

impl Written {
    /// Moves `block` (sorted, after every block before it) to the file or the list.
    fn put(&mut self, block: &mut Vec<Numbered>) -> io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        if self.list.is_none() {
            if let Ok((start, end)) = self.file.append(block.iter()) {
                let each = block[0].size();
                let same = block.iter().all(|r| r.size() == each);
                self.fences.push(Fence {
                    first: block[0].0.clone(),
                    at: start,
                    each: if same { each as u32 } else { 0 },
                });
                self.end = end;
                self.len += block.len();
                block.clear();
                return Ok(());
            }
            let mut list = Vec::with_capacity(self.len + block.len());
            if let Some(file) = &self.file.file {
                let mut r = RunReader::new(file, 0, self.end);
                while let Some(x) = r.next::<Numbered>()? {
                    list.push(x);
                }
            }
            self.list = Some(list);
        }
        self.list.as_mut().expect("set above").append(block);
        Ok(())
    }

    fn into_numbers(self) -> Numbers {
        match (self.list, self.file.file) {
            (Some(mut list), _) => {
                list.shrink_to_fit();
                Numbers::Memory(list)
            }
            (None, Some(file)) => Numbers::File {
                file,
                last: Mutex::new(None),
                len: self.len,
                end: self.end,
                fences: {
                    let mut f = self.fences;
                    f.shrink_to_fit();
                    f
                },
            },
            (None, None) => Numbers::Memory(Vec::new()),
        }
    }
}

impl FromIterator<(IdKey, i32)> for IdNumbers {
    /// Numbers by key, held in memory; a key given twice keeps its last number.
    fn from_iter<I: IntoIterator<Item = (IdKey, i32)>>(iter: I) -> Self {
        let mut list: Vec<Numbered> = iter.into_iter().collect();
        // Reversed, then a stable sort: of equal keys the last one given comes first, and
        // is the one `dedup` keeps. In place: no second list beside the first.
        list.reverse();
        list.sort_by(by_id);
        list.dedup_by(|a, b| a.0 == b.0);
        list.shrink_to_fit();
        Self(Numbers::Memory(list))
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
    fn look_ups_in_the_imports_order_answer_from_the_block_kept() {
        // The import reads records by `_id` and looks each one up: mostly in the block read
        // for the one before. Every answer is the one a fresh read gives, in any order.
        let records = records(4_000, 19);
        let before = in_memory(&records, |g| if g == "100003" { 41 } else { 1 });
        let spilled = numbered(&records, 97);
        let mut ids: Vec<&Bson> = records.iter().map(|(_, _, id)| id).collect();
        ids.sort_by_key(|id| IdKey::of(id));
        for id in &ids {
            assert_eq!(spilled.get(id), before.get(id), "{id}");
        }
        // Back and forth between the first block and the last, and a miss between.
        let (first, last) = (ids[0], ids[ids.len() - 1]);
        for _ in 0..3 {
            assert_eq!(spilled.get(first), before.get(first));
            assert_eq!(spilled.get(&Bson::String("thread-x".into())), None);
            assert_eq!(spilled.get(last), before.get(last));
        }
        let Numbers::File { last, .. } = &spilled.0 else {
            unreachable!()
        };
        let kept = last.lock().unwrap();
        assert!(kept.as_ref().is_some_and(|b| b.bytes.len() <= BLOCK * 17));
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
        let nums: Vec<Numbered> = (0..1000u32)
            .map(|i| {
                let mut b = [0u8; 12];
                b[..4].copy_from_slice(&i.to_be_bytes());
                (IdKey::Oid(b), i as i32 + 1)
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
        let numbers = IdNumbers(out.into_numbers());
        assert!(!numbers.on_disk());
        assert_eq!(numbers.len(), nums.len());
        for (k, n) in &nums {
            let IdKey::Oid(b) = k else { unreachable!() };
            assert_eq!(
                numbers.get(&Bson::ObjectId(ObjectId::from_bytes(*b))),
                Some(*n)
            );
        }
    }

    #[test]
    fn ids_of_text_are_numbered_on_the_disk_and_memory_holds_a_key_a_block() {
        // An old database whose records all have string or number `_id`s.
        let records: Vec<(String, i64, Bson)> = records(4_000, 13)
            .into_iter()
            .enumerate()
            .map(|(i, (g, at, _))| {
                let id = match i % 3 {
                    0 => Bson::String(format!("{:024x}", i * 7919)),
                    1 => Bson::Int32(i as i32),
                    _ => Bson::String(format!("ticket {i} of an old bot")),
                };
                (g, at, id)
            })
            .collect();
        let before = in_memory(&records, |g| if g == "100003" { 41 } else { 1 });
        let spilled = numbered(&records, 64);
        assert!(spilled.on_disk());
        assert_eq!(spilled.len(), records.len());
        for (_, _, id) in &records {
            assert!(before.get(id).is_some());
            assert_eq!(spilled.get(id), before.get(id), "{id}");
        }
        let Numbers::File { fences, .. } = &spilled.0 else {
            unreachable!()
        };
        assert_eq!(fences.len(), records.len().div_ceil(BLOCK));
        assert_eq!(
            spilled.get(&Bson::String("ticket 4000 of an old bot".into())),
            None
        );
        assert_eq!(spilled.get(&Bson::String(String::new())), None);
        assert_eq!(spilled.get(&Bson::String("\u{10ffff}".into())), None);
    }

    #[test]
    fn blocks_of_one_record_size_are_searched_by_halves_whatever_the_ids_kinds() {
        // ObjectIds and strings of 8 characters take 17 bytes each, numbered.
        let records: Vec<(String, i64, Bson)> = records(3_000, 17)
            .into_iter()
            .enumerate()
            .map(|(i, (g, at, id))| match i % 4 {
                0 => (g, at, Bson::String(format!("{:08}", i * 31))),
                _ => (g, at, id),
            })
            .filter(|(_, _, id)| matches!(id, Bson::ObjectId(_) | Bson::String(_)))
            .filter(|(_, _, id)| !matches!(id, Bson::String(s) if s.len() != 8))
            .collect();
        let before = in_memory(&records, |g| if g == "100003" { 41 } else { 1 });
        let spilled = numbered(&records, 64);
        let Numbers::File { fences, .. } = &spilled.0 else {
            unreachable!()
        };
        let oid_bytes = (IdKey::Oid([0; 12]), 0).size();
        assert_eq!(oid_bytes, "12345678".len() + 9);
        assert!(fences.iter().all(|f| f.each == oid_bytes as u32));
        assert!(fences.len() > 5);
        for (_, _, id) in &records {
            assert!(before.get(id).is_some());
            assert_eq!(spilled.get(id), before.get(id), "{id}");
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..2_000 {
            let mut b = [0u8; 12];
            rng.fill(&mut b);
            assert_eq!(spilled.get(&Bson::ObjectId(ObjectId::from_bytes(b))), None);
            let text = format!("{:08}", rng.gen_range(0..100_000) * 31 + 1);
            assert_eq!(spilled.get(&Bson::String(text)), None);
        }
    }

    #[test]
    fn ids_longer_than_a_read_fill_runs_by_their_bytes_and_are_read_back_whole() {
        // 260 `_id`s of 20 KB text (each longer than a read of a run), between ObjectIds:
        // a chunk's bytes fill before its count does.
        let records: Vec<(String, i64, Bson)> = (0..520u32)
            .map(|i| {
                let id = match i % 2 {
                    0 => Bson::String(format!("{i:05}").repeat(4_000)),
                    _ => {
                        let mut b = [0u8; 12];
                        b[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                        Bson::ObjectId(ObjectId::from_bytes(b))
                    }
                };
                (format!("{}", i % 3), i64::from(i % 50), id)
            })
            .collect();
        let before = in_memory(&records, |_| 1);
        let numbers = numbered(&records, 1_000_000);
        assert!(
            numbers.on_disk(),
            "{CHUNK_BYTES} bytes of records make a run"
        );
        assert_eq!(numbers.len(), records.len());
        for (_, _, id) in &records {
            assert_eq!(numbers.get(id), before.get(id));
            assert!(numbers.get(id).is_some());
        }
    }

    /// A sorter of `n` keys (the same for a `seed`) in runs of `chunk`; the keys sorted.
    fn runs_of(n: usize, chunk: usize, seed: u64) -> (Sorter<u64>, Vec<u64>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut sorter = Sorter::new(chunk);
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let k = rng.gen_range(0..n as u64 / 2);
            sorter.push(k, &u64::cmp);
            keys.push(k);
        }
        keys.sort_unstable();
        (sorter, keys)
    }

    fn drained(sorter: Sorter<u64>) -> Vec<u64> {
        let mut out = Vec::new();
        sorter
            .drain(&u64::cmp, |k| {
                out.push(k);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn runs_past_the_fan_in_are_merged_in_passes_and_nothing_is_lost() {
        // 10,000 keys in runs of 3: 3,333 runs, a buffer each if merged at once.
        let (mut sorter, keys) = runs_of(10_000, 3, 21);
        assert_eq!(sorter.runs.len(), 3_333);
        sorter.narrow(&u64::cmp).unwrap();
        // 3,333 → 53 runs of up to 64 merged: at most FAN_IN buffers from here on.
        assert_eq!(sorter.runs.len(), 3_333usize.div_ceil(FAN_IN));
        assert!(sorter.runs.len() < FAN_IN);
        assert_eq!(drained(sorter), keys);

        // Two passes: 300,000 keys in runs of 2 (150,000 → 2,344 → 37 runs).
        let (mut sorter, keys) = runs_of(300_000, 2, 22);
        sorter.narrow(&u64::cmp).unwrap();
        assert_eq!(sorter.runs.len(), 37);
        assert_eq!(drained(sorter), keys);

        // One run fewer than the fan-in, and the chunk in memory: merged as they are.
        let (mut sorter, keys) = runs_of(3 * (FAN_IN - 1) + 2, 3, 23);
        let runs = sorter.runs.clone();
        sorter.narrow(&u64::cmp).unwrap();
        assert_eq!(sorter.runs, runs);
        assert_eq!(drained(sorter), keys);
    }

    #[test]
    fn a_disk_too_full_for_a_pass_leaves_the_runs_merged_at_once() {
        let (mut sorter, keys) = runs_of(5_000, 3, 24);
        let runs = sorter.runs.clone();
        // A disk with room for half a copy of the runs: the pass's new file fills midway.
        sorter.spill.room = Some(sorter.spill.end / 2);
        sorter.narrow(&u64::cmp).unwrap();
        assert_eq!(sorter.runs, runs, "the runs as they were");
        assert_eq!(drained(sorter), keys);
    }

    #[test]
    fn an_empty_numbering_numbers_nothing() {
        let numbers = Numbering::with_chunk(4).finish(|_| 1).unwrap();
        assert!(numbers.is_empty());
        assert_eq!(numbers.get(&Bson::ObjectId(ObjectId::new())), None);
    }
}
