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
//! Frequency is per logical key ([`CompactCacheKey`]): `admit` and `access`
//! each count one request. Recency and size are per tracked entry.
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
//! [`CacheEntryKey`], size, fingerprint, list links, region), one hash-map
//! entry (16 bytes plus a control byte, at a load factor between 7/16 and
//! 7/8), and the key's own heap allocations (the variance hash, 16 bytes when
//! present, and the user tag when not empty). About 100–130 bytes per entry
//! in all on 64-bit targets. Slots of removed entries are reused (a free
//! list of 4 bytes per free slot), never returned to the allocator, so
//! memory follows the peak number of entries.
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

mod sketch;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use pingora_cache::eviction::EvictionManager;
use pingora_cache::key::CompactCacheKey;
use pingora_cache::{CacheEntryKey, CacheEntryKeyRef};
use pingora_error::{Error, ErrorType, OrErr, Result};

use sketch::Sketch;

/// Mean object size [`Manager::new`] assumes to size the sketch.
pub const DEFAULT_MEAN_OBJECT_SIZE: usize = 1 << 20;
/// Bounds of the expected item count the sketch is sized for.
const EXPECTED_ITEMS_RANGE: (usize, usize) = (1 << 10, 1 << 26);
/// Bytes of one entry slot (see the module docs).
pub const ENTRY_SLOT_BYTES: usize = std::mem::size_of::<Option<Node>>();
// 80 on 64-bit targets; keep the documented overhead honest.
const _: () = assert!(ENTRY_SLOT_BYTES <= 80);
/// File `save` writes the sketch to, inside the given directory.
pub const SKETCH_FILE: &str = "tinylfu-sketch.bin";

/// Index meaning "no entry" in the intrusive lists.
const NIL: u32 = u32::MAX;

/// The region an entry lives in; also the index of its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

#[derive(Debug)]
struct Node {
    key: CacheEntryKey,
    /// [`fingerprint`] of the logical key: map key and sketch hash.
    fp: u64,
    size: usize,
    /// Towards the least recently used end.
    prev: u32,
    /// Towards the most recently used end.
    next: u32,
    region: Region,
}

/// A doubly linked list through the slots, least recent at `head`.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    bytes: usize,
    len: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        bytes: 0,
        len: 0,
    };
}

/// The map key is already a well mixed 64-bit fingerprint: use it as is.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FpMap = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;

/// splitmix64's finalizer.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit fingerprint of the logical key, stable across runs (the sketch
/// is persisted). The primary part is already a blake2 hash.
fn fingerprint(key: &CompactCacheKey) -> u64 {
    let word = |b: &[u8; 16], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    let mut h = mix(word(&key.primary, 0) ^ mix(word(&key.primary, 1)));
    if let Some(v) = &key.variance {
        h = mix(h ^ word(v, 0));
        h = mix(h ^ word(v, 1));
    }
    for chunk in key.user_tag.as_bytes().chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w) ^ chunk.len() as u64);
    }
    h
}

/// Everything behind the lock.
struct Inner {
    slots: Vec<Option<Node>>,
    free: Vec<u32>,
    map: FpMap,
    lists: [List; 3],
    sketch: Sketch,
    capacity: usize,
    window_cap: usize,
    protected_cap: usize,
    evicted_size: usize,
    evicted_items: usize,
}

impl Inner {
    fn new(capacity: usize, expected_items: usize) -> Self {
        let window_cap = capacity / 10;
        let main_cap = capacity - window_cap;
        Inner {
            slots: Vec::new(),
            free: Vec::new(),
            map: FpMap::default(),
            lists: [List::EMPTY; 3],
            sketch: Sketch::new(expected_items),
            capacity,
            window_cap,
            protected_cap: main_cap / 10 * 8 + main_cap % 10 * 8 / 10,
            evicted_size: 0,
            evicted_items: 0,
        }
    }

    fn total(&self) -> usize {
        self.lists.iter().map(|l| l.bytes).sum()
    }

    fn items(&self) -> usize {
        self.lists.iter().map(|l| l.len).sum()
    }

    #[inline]
    fn node(&self, idx: u32) -> &Node {
        self.slots[idx as usize].as_ref().expect("live slot")
    }

    #[inline]
    fn node_mut(&mut self, idx: u32) -> &mut Node {
        self.slots[idx as usize].as_mut().expect("live slot")
    }

    /// The slot holding exactly `key`, if tracked.
    fn find_exact(&self, fp: u64, key: CacheEntryKeyRef<'_>) -> Option<u32> {
        let idx = *self.map.get(&fp)?;
        (CacheEntryKeyRef::from(&self.node(idx).key) == key).then_some(idx)
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, region, size) = {
            let n = self.node(idx);
            (n.prev, n.next, n.region, n.size)
        };
        let list = &mut self.lists[region as usize];
        if prev == NIL {
            list.head = next;
        }
        if next == NIL {
            list.tail = prev;
        }
        list.bytes -= size;
        list.len -= 1;
        if prev != NIL {
            self.node_mut(prev).next = next;
        }
        if next != NIL {
            self.node_mut(next).prev = prev;
        }
    }

    /// Link an unlinked slot at the most recent end of `region`.
    fn link_mru(&mut self, idx: u32, region: Region) {
        let list = self.lists[region as usize];
        let size = {
            let n = self.node_mut(idx);
            n.prev = list.tail;
            n.next = NIL;
            n.region = region;
            n.size
        };
        if list.tail != NIL {
            self.node_mut(list.tail).next = idx;
        }
        let list = &mut self.lists[region as usize];
        if list.head == NIL {
            list.head = idx;
        }
        list.tail = idx;
        list.bytes += size;
        list.len += 1;
    }

    /// Set the size of a linked slot.
    fn resize(&mut self, idx: u32, size: usize) {
        let (old, region) = {
            let n = self.node_mut(idx);
            let old = n.size;
            n.size = size;
            (old, n.region)
        };
        let list = &mut self.lists[region as usize];
        list.bytes = list.bytes - old + size;
    }

    /// A hit: refresh recency, promoting a probation entry to protected.
    fn touch(&mut self, idx: u32) {
        let region = self.node(idx).region;
        self.unlink(idx);
        match region {
            Region::Window => self.link_mru(idx, Region::Window),
            Region::Probation | Region::Protected => {
                self.link_mru(idx, Region::Protected);
                while self.lists[Region::Protected as usize].bytes > self.protected_cap {
                    let lru = self.lists[Region::Protected as usize].head;
                    self.unlink(lru);
                    self.link_mru(lru, Region::Probation);
                }
            }
        }
    }

    /// Track a new entry at the most recent end of the window. The entry
    /// comes back when the slot indices are exhausted.
    fn insert(&mut self, key: CacheEntryKey, fp: u64, size: usize) -> Result<u32, CacheEntryKey> {
        let node = Node {
            key,
            fp,
            size,
            prev: NIL,
            next: NIL,
            region: Region::Window,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = Some(node);
                idx
            }
            None if self.slots.len() < NIL as usize => {
                self.slots.push(Some(node));
                (self.slots.len() - 1) as u32
            }
            None => return Err(node.key),
        };
        self.map.insert(fp, idx);
        self.link_mru(idx, Region::Window);
        Ok(idx)
    }

    /// Forget an unlinked slot, returning its entry.
    fn release(&mut self, idx: u32) -> Node {
        let node = self.slots[idx as usize].take().expect("live slot");
        self.map.remove(&node.fp);
        self.free.push(idx);
        node
    }

    /// Evict a linked slot into `out`.
    fn evict(&mut self, idx: u32, out: &mut Vec<CacheEntryKey>) {
        self.unlink(idx);
        let node = self.release(idx);
        self.evicted(node.key, node.size, out);
    }

    fn evicted(&mut self, key: CacheEntryKey, size: usize, out: &mut Vec<CacheEntryKey>) {
        self.evicted_size = self.evicted_size.saturating_add(size);
        self.evicted_items += 1;
        out.push(key);
    }

    /// Track `key` with `size` (already floored, at most the capacity) as a
    /// new fill: refresh the same entry, replace another entry of the same
    /// logical key in place (returning it), or insert into the window.
    fn place(&mut self, key: CacheEntryKey, fp: u64, size: usize, out: &mut Vec<CacheEntryKey>) {
        match self.map.get(&fp).copied() {
            Some(idx) => {
                let node = self.node_mut(idx);
                if node.key != key {
                    let old = std::mem::replace(&mut node.key, key);
                    let old_size = node.size;
                    self.evicted(old, old_size, out);
                }
                self.resize(idx, size);
                self.touch(idx);
            }
            None => {
                if let Err(key) = self.insert(key, fp, size) {
                    self.evicted(key, size, out);
                }
            }
        }
    }

    /// Restore `window <= window_cap` through admission duels, then
    /// `total <= capacity`.
    fn rebalance(&mut self, out: &mut Vec<CacheEntryKey>) {
        while self.lists[Region::Window as usize].bytes > self.window_cap {
            let candidate = self.lists[Region::Window as usize].head;
            self.unlink(candidate);
            match self.duel(candidate) {
                Some(victims) => {
                    for _ in 0..victims {
                        let victim = self.main_victim().expect("counted victim");
                        self.evict(victim, out);
                    }
                    self.link_mru(candidate, Region::Probation);
                }
                None => {
                    let node = self.release(candidate);
                    self.evicted(node.key, node.size, out);
                }
            }
        }
        // Main grew into room the window did not use, or a main entry grew.
        while self.total() > self.capacity {
            let victim = self
                .main_victim()
                .unwrap_or(self.lists[Region::Window as usize].head);
            self.evict(victim, out);
        }
    }

    /// The least valuable main entry: probation's least recent, else
    /// protected's.
    fn main_victim(&self) -> Option<u32> {
        [Region::Probation, Region::Protected]
            .iter()
            .map(|&r| self.lists[r as usize].head)
            .find(|&h| h != NIL)
    }

    /// The admission duel for an unlinked window candidate: `Some(n)` if it
    /// enters main after evicting the `n` next main victims (it is strictly
    /// more frequent than each of them), `None` if it loses.
    fn duel(&self, candidate: u32) -> Option<usize> {
        let (size, fp) = {
            let n = self.node(candidate);
            (n.size, n.fp)
        };
        let total = self.total();
        if total + size <= self.capacity {
            return Some(0);
        }
        let need = total + size - self.capacity;
        let freq = self.sketch.frequency(fp);
        let (mut freed, mut count) = (0, 0);
        let mut region = Region::Probation;
        let mut cursor = self.lists[region as usize].head;
        while freed < need {
            if cursor == NIL {
                if region == Region::Probation {
                    region = Region::Protected;
                    cursor = self.lists[region as usize].head;
                    continue;
                }
                return None; // main cannot make room: the window holds the rest
            }
            let victim = self.node(cursor);
            if self.sketch.frequency(victim.fp) >= freq {
                return None;
            }
            freed += victim.size;
            count += 1;
            cursor = victim.next;
        }
        Some(count)
    }
}

/// Byte-bounded, scan-resistant W-TinyLFU eviction manager (see the module
/// docs).
pub struct Manager {
    inner: Mutex<Inner>,
    capacity: usize,
    // Mirrors of the locked state, so metrics never take the lock.
    total_size: AtomicUsize,
    total_items: AtomicUsize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
}

impl Manager {
    /// A manager for `capacity_bytes`, with the sketch sized for objects of
    /// [`DEFAULT_MEAN_OBJECT_SIZE`] on average.
    pub fn new(capacity_bytes: usize) -> Self {
        Self::with_expected_items(capacity_bytes, capacity_bytes / DEFAULT_MEAN_OBJECT_SIZE)
    }

    /// A manager for `capacity_bytes` whose frequency sketch is sized for
    /// about `expected_items` distinct objects (clamped to 1 Ki..64 Mi; the
    /// sketch takes 2 bytes per item, rounded up to a power of two). Size it
    /// for the number of objects the cache holds: a smaller sketch ages
    /// faster and mixes up more keys.
    pub fn with_expected_items(capacity_bytes: usize, expected_items: usize) -> Self {
        let expected = expected_items.clamp(EXPECTED_ITEMS_RANGE.0, EXPECTED_ITEMS_RANGE.1);
        Manager {
            inner: Mutex::new(Inner::new(capacity_bytes, expected)),
            capacity: capacity_bytes,
            total_size: AtomicUsize::new(0),
            total_items: AtomicUsize::new(0),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
        }
    }

    /// `access` for `requests` requests at once: the key's frequency counts
    /// each of them (up to the counters' ceiling), its recency is refreshed
    /// once. For callers that gather hits before they tell them.
    pub fn access_counted(&self, item: &CacheEntryKey, size: usize, requests: u32) -> bool {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        for _ in 0..requests.clamp(1, sketch::MAX_COUNT as u32) {
            inner.sketch.increment(fp);
        }
        if let Some(idx) = inner.find_exact(fp, item.into()) {
            inner.touch(idx);
            return true;
        }
        let size = size.max(1);
        if !inner.map.contains_key(&fp) && size <= inner.capacity {
            let _ = inner.insert(item.clone(), fp, size);
            self.publish(&inner);
        }
        false
    }

    /// The byte capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes of the frequency sketch.
    pub fn sketch_bytes(&self) -> usize {
        self.lock().sketch.memory_bytes()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation leaves the structures consistent before it can
        // panic, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish the counters; called with the lock held.
    fn publish(&self, inner: &Inner) {
        self.total_size.store(inner.total(), Ordering::Relaxed);
        self.total_items.store(inner.items(), Ordering::Relaxed);
        self.evicted_size
            .store(inner.evicted_size, Ordering::Relaxed);
        self.evicted_items
            .store(inner.evicted_items, Ordering::Relaxed);
    }

    /// Drop whatever is tracked under `fp` and return `key` itself: it does
    /// not fit. The other entry of the same logical key goes too (the new
    /// fill replaced it in storage).
    fn reject(
        inner: &mut Inner,
        key: CacheEntryKey,
        fp: u64,
        size: usize,
        out: &mut Vec<CacheEntryKey>,
    ) {
        if let Some(&idx) = inner.map.get(&fp) {
            if inner.node(idx).key == key {
                inner.unlink(idx);
                inner.release(idx);
            } else {
                inner.evict(idx, out);
            }
        }
        inner.evicted(key, size, out);
    }

    #[cfg(test)]
    fn frequency(&self, key: &CompactCacheKey) -> u8 {
        self.lock().sketch.frequency(fingerprint(key))
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        self.lock().check_invariants();
    }
}

#[async_trait]
impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.total_size.load(Ordering::Relaxed)
    }

    fn total_items(&self) -> usize {
        self.total_items.load(Ordering::Relaxed)
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Ordering::Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Ordering::Relaxed)
    }

    fn admit(
        &self,
        item: CacheEntryKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CacheEntryKey> {
        let size = size.max(1);
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        inner.sketch.increment(fp);
        let mut out = Vec::new();
        if size > inner.capacity {
            Self::reject(&mut inner, item, fp, size, &mut out);
        } else {
            inner.place(item, fp, size, &mut out);
        }
        // Also when rejecting: an `access` may have left the cache over.
        inner.rebalance(&mut out);
        self.publish(&inner);
        out
    }

    fn increment_weight(
        &self,
        item: &CacheEntryKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CacheEntryKey> {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        let mut out = Vec::new();
        let size = match inner.find_exact(fp, item.into()) {
            Some(idx) => {
                let old = inner.node(idx).size;
                let grown = old.saturating_add(delta);
                max_weight.map_or(grown, |max| grown.min(max).max(old))
            }
            None => {
                // A new entry: one request, like `admit`.
                inner.sketch.increment(fp);
                max_weight.map_or(delta, |max| delta.min(max)).max(1)
            }
        };
        if size > inner.capacity {
            Self::reject(&mut inner, item.clone(), fp, size, &mut out);
        } else {
            inner.place(item.clone(), fp, size, &mut out);
        }
        inner.rebalance(&mut out);
        self.publish(&inner);
        out
    }

    fn remove(&self, item: CacheEntryKeyRef<'_>) {
        let fp = fingerprint(item.key());
        let mut inner = self.lock();
        if let Some(idx) = inner.find_exact(fp, item) {
            inner.unlink(idx);
            inner.release(idx);
            self.publish(&inner);
        }
    }

    fn access(&self, item: &CacheEntryKey, size: usize, _fresh_until: SystemTime) -> bool {
        self.access_counted(item, size, 1)
    }

    fn peek(&self, item: &CacheEntryKey) -> bool {
        let fp = fingerprint(item.key());
        self.lock().find_exact(fp, item.into()).is_some()
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        let bytes = self.lock().sketch.to_bytes();
        let dir = dir_path.to_owned();
        tokio::task::spawn_blocking(move || write_atomically(Path::new(&dir), &bytes))
            .await
            .or_err(ErrorType::InternalError, "sketch save task failed")?
    }

    async fn load(&self, dir_path: &str) -> Result<()> {
        let path = Path::new(dir_path).join(SKETCH_FILE);
        let read = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .or_err(ErrorType::InternalError, "sketch load task failed")?;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).or_err_with(ErrorType::InternalError, || {
                    format!("reading {dir_path}/{SKETCH_FILE}")
                });
            }
        };
        // Parse outside the lock, then swap the counters in.
        let mut sketch = self.lock().sketch.clone();
        sketch.restore(&bytes).map_err(|e| {
            Error::explain(
                ErrorType::InternalError,
                format!("{dir_path}/{SKETCH_FILE}: {e}"),
            )
        })?;
        self.lock().sketch = sketch;
        Ok(())
    }
}

/// Write `bytes` to `dir/SKETCH_FILE` through a temporary file and a rename.
fn write_atomically(dir: &Path, bytes: &[u8]) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).or_err_with(ErrorType::InternalError, || {
        format!("creating {}", dir.display())
    })?;
    let tmp = dir.join(format!(
        "{SKETCH_FILE}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, dir.join(SKETCH_FILE)))
        .or_err_with(ErrorType::InternalError, || {
            format!("writing {}", dir.join(SKETCH_FILE).display())
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
impl Inner {
    /// Walk every list and the map, checking links, sums and bounds.
    fn check_invariants(&self) {
        let mut seen = 0;
        for (r, list) in self.lists.iter().enumerate() {
            let (mut bytes, mut len, mut prev) = (0, 0, NIL);
            let mut cursor = list.head;
            while cursor != NIL {
                let n = self.node(cursor);
                assert_eq!(n.region as usize, r);
                assert_eq!(n.prev, prev);
                assert_eq!(self.map.get(&n.fp), Some(&cursor));
                assert_eq!(n.fp, fingerprint(n.key.key()));
                bytes += n.size;
                len += 1;
                prev = cursor;
                cursor = n.next;
            }
            assert_eq!(list.tail, prev);
            assert_eq!((list.bytes, list.len), (bytes, len), "list {r}");
            seen += len;
        }
        assert_eq!(seen, self.map.len());
        assert_eq!(seen + self.free.len(), self.slots.len());
    }
}
