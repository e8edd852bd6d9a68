//! The disk cache's eviction manager: a byte-bounded W-TinyLFU.
//!
//! # Algorithm
//!
//! New entries enter a small LRU *window* (10 % of the capacity); entries
//! pushed out of the window compete for the *main* region, a segmented LRU
//! (probation, then protected once hit again, protected holding at most 80 %
//! of main). A candidate leaving the window enters main only if its estimated
//! access frequency is strictly higher than that of every main victim that
//! would have to go to make room for it (probation's least recent first, then
//! protected's); otherwise the candidate itself is evicted. A one-off crawl
//! therefore churns through the window and is rejected at the door, while keys
//! requested repeatedly stay. Frequencies come from a count-min sketch (four
//! rows of 4-bit counters, conservative update) halved every `10 × width`
//! increments, so a formerly hot key fades and loses to newly hot ones.
//!
//! Main may also use the room the window leaves empty (after start-up
//! seeding most entries sit in main); new entries take that room back from
//! main's least valuable end, without a duel, until the window is full.
//!
//! Frequency is per logical key
//! ([`CompactCacheKey`](pingora_cache::key::CompactCacheKey)): `admit` and
//! `access` each count one request. Recency and size are per tracked entry.
//! Entries are found by a 64-bit fingerprint of the logical key and then
//! compared in full, so a fingerprint collision (odds about 3 × 10⁻⁸ with a
//! million keys) never matches the wrong entry: the two keys share one slot,
//! the later replacing the earlier as a new fill would.
//!
//! # Contract with storage
//!
//! * Everything `admit` / `increment_weight` return must be deleted by the
//!   caller (pingora purges them with `PurgeTarget::Exact`); their bytes are
//!   already deducted, and `total_size() <= capacity` holds when those calls
//!   return. An entry larger than the capacity is returned at once.
//! * One tracked entry per logical key. Admitting a key with a different
//!   [`CacheEntryId`](pingora_cache::CacheEntryId) (a new fill) replaces
//!   the tracked entry in place (keeping its position and the key's
//!   frequency) and returns the old one for deletion; the latest call wins,
//!   `increment_weight` with another id included. `remove`,
//!   `peek` and `access` only match the complete identity, so a stale id never
//!   touches the newer entry, and a key-only identity never matches an
//!   identified one.
//! * `access` on an untracked key starts tracking it (the trait asks for this
//!   so that a file on disk is never forgotten) without evicting; the next
//!   `admit` restores the bound. `access` with a different entry id than the
//!   tracked one only counts the request. The cost of this choice: an access
//!   racing with the purge of an entry just evicted re-tracks a deleted
//!   entry, which takes room until it is evicted again (the purge of a
//!   missing file is harmless).
//! * `increment_weight` on the tracked entry grows it (capped by
//!   `max_weight`, never shrunk) and refreshes its recency without counting a
//!   request; on an untracked entry it acts like `admit` with the initial
//!   weight `min(delta, max_weight)`, at least 1.
//! * `evicted_size` / `evicted_items` count everything `admit` and
//!   `increment_weight` returned (victims, rejected candidates, oversized
//!   entries, replaced old entries); `remove` is not an eviction.
//! * `fresh_until` is ignored: expired entries are revalidated, not deleted,
//!   so freshness does not decide eviction.
//! * Start-up seeding: calling `admit` once per object found on disk, in any
//!   order, works; once the capacity is reached the extras are returned.
//! * Sizes are floored to 1 byte, so the number of tracked entries is bounded
//!   by the capacity in bytes (and by `u32::MAX - 1`, beyond which new
//!   entries are returned at once).
//!
//! # Memory
//!
//! Per tracked entry: one slot of [`ENTRY_SLOT_BYTES`] bytes (the
//! [`CacheEntryKey`](pingora_cache::CacheEntryKey), size, fingerprint, list
//! links, region), one hash-map entry (16 bytes plus a control byte, at a
//! load factor between 7/16 and 7/8), and the key's own heap allocations (the
//! variance hash, 16 bytes when present, and the user tag when not empty).
//! About 100–130 bytes per entry in all on 64-bit targets. Slots of removed
//! entries are reused (a free list of 4 bytes per free slot), never returned
//! to the allocator, so memory follows the peak number of entries.
//!
//! The sketch takes 2 bytes per expected item, the expected count rounded up
//! to a power of two ([`Manager::with_expected_items`]; [`Manager::new`]
//! assumes a mean object size of [`DEFAULT_MEAN_OBJECT_SIZE`]).
//!
//! # Concurrency
//!
//! One `std::sync::Mutex` around all the structures; every call takes it once
//! for O(1) work plus one step per evicted entry (and one more per lost
//! admission duel), never across an await; `save` holds it only to copy the
//! sketch, `load` only to copy and swap it. The
//! key fingerprint is computed before locking. Sharding would split the byte
//! budget into small independent caches, which fits poorly with objects of
//! hundreds of megabytes, so the manager is not sharded.
//!
//! # Persistence
//!
//! `save` writes the frequency sketch (about 2 bytes per expected item) to
//! `dir/tinylfu-sketch.bin` (temporary file, then rename); `load` restores it
//! if the file exists and has the same width, so popularity survives a
//! restart. Load before seeding. The tracked entries themselves are not
//! saved: the disk scan at start-up is the source of truth. A missing file is
//! not an error; a damaged one, or one written for another width, is (the
//! sketch then stays as it was).
//!
//! # Module map
//!
//! `manager` (the [`Manager`] and Pingora's trait), `policy` (the state
//! behind the lock: window, admission duel, segmented main), `lists` (entry
//! slots and the three LRU lists through them), `fingerprint` (the 64-bit
//! key hash), `sketch` (the frequency sketch), `persist` (the sketch on disk).

mod fingerprint;
mod lists;
mod manager;
mod persist;
mod policy;
mod sketch;
#[cfg(test)]
mod tests;

pub use manager::Manager;

/// Mean object size [`Manager::new`] assumes to size the sketch.
pub const DEFAULT_MEAN_OBJECT_SIZE: usize = 1 << 20;
/// Bytes of one entry slot (see the module docs).
pub const ENTRY_SLOT_BYTES: usize = lists::SLOT_BYTES;
// 80 on 64-bit targets; keep the documented overhead honest.
const _: () = assert!(ENTRY_SLOT_BYTES <= 80);
/// File `save` writes the sketch to, inside the given directory.
pub const SKETCH_FILE: &str = "tinylfu-sketch.bin";
