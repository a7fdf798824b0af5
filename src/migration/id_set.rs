//! A set of `ObjectId`s added in ascending order, kept in a few bytes each and bounded in
//! bytes: every `_id` a copy of a referenced collection reads, so that the children's
//! references to it need no query, however long ago it was read.
//!
//! `_id`s made one after another (by one process, as a bot's are) differ little: each is
//! stored as its difference from the one before (the timestamp's, then the counter's, as
//! variable-length integers), in blocks of [`BLOCK`] whose first `_id` is kept whole, so a
//! lookup is a binary search over the blocks and a walk through one. Past its byte bound
//! the set takes no more: what it holds is still exact, and an `_id` it does not hold is
//! simply not known (the caller asks the database, as for any `_id` it does not know).

use mongodb::bson::oid::ObjectId;

/// `_id`s a block: a lookup decodes at most this many.
const BLOCK: usize = 64;
/// The most bytes one difference takes (two variable-length integers).
const MAX_DIFF: usize = 16;
/// The differences live in buffers of this size (the first one smaller), allocated whole
/// and never grown: no copy of what is kept, and the bound is counted exactly.
const CHUNK: usize = 64 * 1024;
const FIRST_CHUNK: usize = 4 * 1024;
/// A new block starts in a buffer only with room for all its differences.
const BLOCK_ROOM: usize = BLOCK * MAX_DIFF;
/// What one entry of `blocks` takes.
const BLOCK_ENTRY: usize = std::mem::size_of::<([u8; 12], u32, u32)>();

/// `ObjectId`s in ascending order, compactly; see the module's text.
#[derive(Debug, Clone)]
pub(crate) struct AscendingIds {
    /// Each block's first `_id`, and the buffer and place where its differences start.
    blocks: Vec<([u8; 12], u32, u32)>,
    /// The differences, block after block.
    chunks: Vec<Vec<u8>>,
    /// The last `_id` added and how many its block holds.
    last: Option<[u8; 12]>,
    in_block: usize,
    /// At most this many bytes; `full` once they are reached.
    cap: usize,
    full: bool,
}

impl AscendingIds {
    /// An empty set of at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            blocks: Vec::new(),
            chunks: Vec::new(),
            last: None,
            in_block: 0,
            cap,
            full: false,
        }
    }

    /// Adds `id` when it comes after every `_id` added so far and the bound leaves room
    /// (else leaves the set as it is); returns whether it was added.
    pub(crate) fn push(&mut self, id: ObjectId) -> bool {
        let b = id.bytes();
        if self.full || self.last.is_some_and(|l| b <= l) {
            return false;
        }
        let new_block = self.last.is_none() || self.in_block >= BLOCK;
        if new_block && !self.room_for_block() {
            self.full = true;
            return false;
        }
        match self.last {
            Some(prev) if !new_block => {
                let chunk = self.chunks.last_mut().expect("a block's buffer");
                encode(chunk, &prev, &b);
                self.in_block += 1;
            }
            _ => {
                let ci = self.chunks.len() - 1;
                let at = self.chunks[ci].len();
                self.blocks.push((b, ci as u32, at as u32));
                self.in_block = 1;
            }
        }
        self.last = Some(b);
        true
    }

    /// Makes room for a new block (its entry, and a buffer with room for its differences)
    /// within the bound; false when there is none.
    fn room_for_block(&mut self) -> bool {
        if self.blocks.len() == self.blocks.capacity() {
            let more = (self.blocks.capacity() / 2).max(64);
            if self.bytes() + more * BLOCK_ENTRY > self.cap {
                return false;
            }
            self.blocks.reserve_exact(more);
        }
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= BLOCK_ROOM);
        if !fits {
            let size = if self.chunks.is_empty() {
                FIRST_CHUNK
            } else {
                CHUNK
            };
            if self.bytes() + size > self.cap {
                return false;
            }
            self.chunks.push(Vec::with_capacity(size));
        }
        true
    }

    /// Whether `id` was added.
    pub(crate) fn contains(&self, id: &ObjectId) -> bool {
        let b = id.bytes();
        // The last block whose first `_id` is at most `b`.
        let i = self.blocks.partition_point(|(first, _, _)| *first <= b);
        if i == 0 {
            return false;
        }
        let (first, ci, start) = self.blocks[i - 1];
        if first == b {
            return true;
        }
        let chunk = &self.chunks[ci as usize];
        let end = match self.blocks.get(i) {
            Some((_, next_ci, at)) if *next_ci == ci => *at as usize,
            _ => chunk.len(),
        };
        let mut at = start as usize;
        let mut cur = first;
        while at < end {
            cur = decode(chunk, &mut at, &cur);
            if cur >= b {
                return cur == b;
            }
        }
        false
    }

    /// The bytes it takes.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.capacity() * BLOCK_ENTRY
            + self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

fn split(id: &[u8; 12]) -> (u32, u64) {
    (
        u32::from_be_bytes(id[..4].try_into().expect("4 bytes")),
        u64::from_be_bytes(id[4..].try_into().expect("8 bytes")),
    )
}

fn join(ts: u32, rest: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&ts.to_be_bytes());
    out[4..].copy_from_slice(&rest.to_be_bytes());
    out
}

/// `next` after `prev`: the same second, the rest's difference (low bit 0); else the
/// seconds' difference (low bit 1), then the rest XOR the previous rest (the same process
/// and counter bytes cancel out).
fn encode(out: &mut Vec<u8>, prev: &[u8; 12], next: &[u8; 12]) {
    let ((t0, r0), (t1, r1)) = (split(prev), split(next));
    if t0 == t1 {
        varint(out, u128::from(r1 - r0) << 1);
    } else {
        varint(out, (u128::from(t1 - t0) << 1) | 1);
        varint(out, u128::from(r1 ^ r0));
    }
}

fn decode(data: &[u8], at: &mut usize, prev: &[u8; 12]) -> [u8; 12] {
    let (t0, r0) = split(prev);
    let v = read_varint(data, at);
    if v & 1 == 0 {
        join(t0, r0 + (v >> 1) as u64)
    } else {
        let x = read_varint(data, at) as u64;
        join(t0 + (v >> 1) as u32, r0 ^ x)
    }
}

fn varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(data: &[u8], at: &mut usize) -> u128 {
    let (mut v, mut shift) = (0u128, 0);
    loop {
        let b = data[*at];
        *at += 1;
        v |= u128::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(ts: u32, rest: u64) -> ObjectId {
        ObjectId::from_bytes(join(ts, rest))
    }

    #[test]
    fn holds_exactly_what_was_added_across_blocks() {
        let mut set = AscendingIds::new(1 << 20);
        // One process's `_id`s (same second, counter + 1 or more), then a new second and a
        // new process, then the extremes of both halves.
        let mut added = Vec::new();
        let (mut ts, mut rest) = (1_700_000_000u32, 0x00ab_cdef_0100_0000u64);
        for i in 0..1000u64 {
            if i % 97 == 0 || i == 500 {
                ts += 1 + (i as u32 % 5);
            }
            if i == 500 {
                rest = 0x0012_3456_7800_0000;
            }
            rest += 1 + i % 3;
            added.push(oid(ts, rest));
        }
        added.push(oid(u32::MAX, u64::MAX));
        for id in &added {
            assert!(set.push(*id));
        }
        for id in &added {
            assert!(set.contains(id), "{id}");
        }
        // Between, before and after what was added: not there.
        let (ts0, r0) = split(&added[0].bytes());
        assert!(!set.contains(&oid(ts0, r0 - 1)));
        assert!(!set.contains(&oid(0, 0)));
        for w in added.windows(2) {
            let (a, b) = (split(&w[0].bytes()), split(&w[1].bytes()));
            if a.0 == b.0 && b.1 - a.1 > 1 {
                assert!(!set.contains(&oid(a.0, a.1 + 1)));
            }
        }
        // One process's `_id`s take a few bytes each, not twelve.
        let mut many = AscendingIds::new(1 << 20);
        let (ts, base) = (1_700_000_000u32, 0x00ab_cdef_0100_0000u64);
        for i in 0..100_000u64 {
            assert!(many.push(oid(ts + (i / 50) as u32, base + i)));
        }
        assert!(many.bytes() < 100_000 * 3, "{} bytes", many.bytes());
        // Across the buffers' edges too.
        for i in 0..100_000u64 {
            assert!(many.contains(&oid(ts + (i / 50) as u32, base + i)), "{i}");
            assert!(!many.contains(&oid(ts + (i / 50) as u32, base + i + 100_000)));
        }
    }

    #[test]
    fn ids_out_of_order_or_past_the_bound_are_left_out_and_the_rest_stays_exact() {
        const CAP: usize = 200 * 1024;
        let mut set = AscendingIds::new(CAP);
        let first = ObjectId::new();
        assert!(set.push(first));
        assert!(!set.push(first), "twice");
        assert!(!set.push(oid(0, 1)), "before the last");
        let mut n = 0u64;
        let mut kept = vec![first];
        while set.push(oid(u32::MAX - 1, n)) {
            kept.push(oid(u32::MAX - 1, n));
            n += 1 << 40;
        }
        assert!(set.bytes() <= CAP, "{}", set.bytes());
        assert!(kept.len() > 10_000, "{}", kept.len());
        assert!(kept.iter().all(|id| set.contains(id)));
        assert!(!set.contains(&oid(u32::MAX - 1, n)), "refused, not held");
        assert!(!set.push(oid(u32::MAX, 0)), "full");
    }
}
