//! Numbering benchmark: the heap a Legacy Import step's numbering (modmail's ticket
//! numbers, moderation's case numbers) takes while it is built and while it is held, built
//! in bounded memory (`Numbering`: sorted runs on a temporary file, looked up a block at a
//! time) against the way the steps built it before, every record in memory (the ceiling,
//! measured in the same run on the same records), and the time each takes to build and to
//! answer a look-up per record.
//!
//! The heap is counted by this binary's allocator (every allocation and free), so the
//! figures are the numbering's own bytes, not the process's pages.
//!
//! `cargo bench -p heimdall-base --bench numbering -- [--records N] [--guilds G] [--runs R]
//! [--text-ids 1] [--by-id 1]` (`--text-ids 1`: every `_id` a string of 36 characters, not
//! an ObjectId; `--by-id 1`: records looked up in order of `_id`, as the import reads them,
//! not in the order they were given).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use heimdall_base::legacy::{IdKey, IdNumbers, Numbering};

#[path = "../../../benches/args.rs"]
mod args;
use args::{arg, median};
use mongodb::bson::{oid::ObjectId, Bson};

/// The system's allocator, counting the bytes live and their highest point.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                let now =
                    LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The records of a source as a scan gives them, the same each time for one `seed`:
/// guild, time, `_id` (ObjectIds, as the old bot made them, a few times shared; or, with
/// `text`, strings of 36 characters, as a database filled by another tool has them).
fn records(
    n: usize,
    guilds: u64,
    seed: u64,
    text: bool,
) -> impl Iterator<Item = (String, i64, Bson)> {
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64*: no allocation, the same sequence for a seed.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..n).map(move |i| {
        let guild = format!("{}", 700_000_000_000_000_000 + next() % guilds);
        let at = 1_500_000_000_000 + (next() % (n as u64 * 20)) as i64;
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&((at / 1000) as u32).to_be_bytes());
        b[4..].copy_from_slice(&(next() ^ i as u64).to_be_bytes());
        let id = if text {
            Bson::String(format!("{}-{:011x}", hex::encode(b), i))
        } else {
            Bson::ObjectId(ObjectId::from_bytes(b))
        };
        (guild, at, id)
    })
}

/// A numbering's look-up, whichever way it was built.
trait Lookup {
    fn get(&self, id: &Bson) -> Option<i32>;
}

impl Lookup for IdNumbers {
    fn get(&self, id: &Bson) -> Option<i32> {
        IdNumbers::get(self, id)
    }
}

/// The numbers as the steps held them before (session 44's `IdNumbers`): ObjectIds' in a
/// sorted list of 16 bytes each, the others' in a map by their text.
struct Before {
    oids: Vec<([u8; 12], i32)>,
    texts: HashMap<Box<str>, i32>,
}

impl Lookup for Before {
    fn get(&self, id: &Bson) -> Option<i32> {
        match IdKey::of(id) {
            IdKey::Oid(b) => self
                .oids
                .binary_search_by(|(k, _)| k.cmp(&b))
                .ok()
                .map(|i| self.oids[i].1),
            IdKey::Text(t) => self.texts.get(&t).copied(),
        }
    }
}

/// The numbering as the steps built it before: a list per guild, all in memory, sorted
/// and numbered into a sorted list (and a map, for `_id`s that are not ObjectIds).
fn in_memory(n: usize, guilds: u64, seed: u64, text: bool) -> Before {
    let mut per: HashMap<String, Vec<(i64, IdKey)>> = HashMap::new();
    for (g, at, id) in records(n, guilds, seed, text) {
        per.entry(g).or_default().push((at, IdKey::of(&id)));
    }
    let mut out = Before {
        oids: Vec::new(),
        texts: HashMap::new(),
    };
    for mut list in per.into_values() {
        list.sort();
        for (i, (_, id)) in list.into_iter().enumerate() {
            match id {
                IdKey::Oid(b) => out.oids.push((b, i as i32 + 1)),
                IdKey::Text(t) => {
                    out.texts.insert(t, i as i32 + 1);
                }
            }
        }
    }
    out.oids.sort_by_key(|e| e.0);
    out.oids.shrink_to_fit();
    out.texts.shrink_to_fit();
    out
}

fn bounded(n: usize, guilds: u64, seed: u64, text: bool) -> IdNumbers {
    let mut numbering = Numbering::new();
    for (g, at, id) in records(n, guilds, seed, text) {
        numbering.push(&g, at, IdKey::of(&id));
    }
    numbering.finish(|_| 1).unwrap()
}

/// What one way took: heap at its highest while built, heap held once built, seconds to
/// build, seconds to look every record up.
struct Took {
    peak: usize,
    held: usize,
    build: f64,
    look: f64,
}

fn measure<L: Lookup>(
    n: usize,
    guilds: u64,
    seed: u64,
    text: bool,
    by_id: bool,
    way: fn(usize, u64, u64, bool) -> L,
) -> (Took, u64) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t0 = Instant::now();
    let numbers = way(n, guilds, seed, text);
    let build = t0.elapsed().as_secs_f64();
    let (peak, held) = (
        PEAK.load(Relaxed).saturating_sub(base),
        LIVE.load(Relaxed).saturating_sub(base),
    );
    let mut sum = 0u64;
    let look = if by_id {
        let mut ids: Vec<Bson> = records(n, guilds, seed, text).map(|r| r.2).collect();
        ids.sort_by_cached_key(IdKey::of);
        let t0 = Instant::now();
        for id in &ids {
            sum += numbers.get(id).expect("every record is numbered") as u64;
        }
        t0.elapsed().as_secs_f64()
    } else {
        let t0 = Instant::now();
        for (_, _, id) in records(n, guilds, seed, text) {
            sum += numbers.get(&id).expect("every record is numbered") as u64;
        }
        t0.elapsed().as_secs_f64()
    };
    (
        Took {
            peak,
            held,
            build,
            look,
        },
        sum,
    )
}

fn main() {
    let n = arg("--records", 1_500_000.0) as usize;
    let guilds = arg("--guilds", 200.0) as u64;
    let runs = arg("--runs", 3.0) as usize;
    let text = arg("--text-ids", 0.0) != 0.0;
    let by_id = arg("--by-id", 0.0) != 0.0;
    let mb = |b: usize| b as f64 / 1e6;
    let (mut peak, mut held, mut build, mut look) = (vec![], vec![], vec![], vec![]);
    let (mut bpeak, mut bheld) = (vec![], vec![]);
    for r in 0..runs {
        let seed = 0x5eed + r as u64;
        let (mem, want) = measure(n, guilds, seed, text, by_id, in_memory);
        let (disk, got) = measure(n, guilds, seed, text, by_id, bounded);
        // The same numbers either way: the sums of every record's number agree.
        assert_eq!(got, want, "run {r}: the numberings differ");
        eprintln!(
            "run {r}: {n} records in {guilds} guilds; in memory: peak {:.1} MB, held {:.1} MB, \
             built in {:.2}s, looked up in {:.2}s; bounded: peak {:.1} MB, held {:.3} MB, \
             built in {:.2}s, looked up in {:.2}s",
            mb(mem.peak),
            mb(mem.held),
            mem.build,
            mem.look,
            mb(disk.peak),
            mb(disk.held),
            disk.build,
            disk.look
        );
        bpeak.push(mb(disk.peak));
        bheld.push(mb(disk.held));
        peak.push(disk.peak as f64 / mem.peak as f64);
        held.push(disk.held as f64 / mem.held as f64);
        build.push(disk.build / mem.build);
        look.push(disk.look / mem.look);
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.3}–{hi:.3}")
    };
    let ids = if text { "text" } else { "ObjectId" };
    let order = if by_id { "by `_id`" } else { "as given" };
    println!(
        "numbering of {n} records ({ids} `_id`s, looked up {order}) in {guilds} guilds, \
         median of {runs} (spread):"
    );
    println!(
        "  bounded: peak heap {:.1} MB ({}), held {:.3} MB ({})",
        median(bpeak.clone()),
        spread(&bpeak),
        median(bheld.clone()),
        spread(&bheld)
    );
    println!(
        "  bounded ÷ in memory: peak heap {:.3} ({}), held {:.4} ({}), build time {:.2} ({}), look-up time {:.2} ({})",
        median(peak.clone()),
        spread(&peak),
        median(held.clone()),
        spread(&held),
        median(build.clone()),
        spread(&build),
        median(look.clone()),
        spread(&look)
    );
}
