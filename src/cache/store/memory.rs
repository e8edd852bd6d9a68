//! The memory tier: copies of the bodies of small hot objects, so that a hit
//! on one needs no file open, read or close (what Apache Traffic Server
//! calls its RAM cache).
//!
//! A copy is keyed by the object's key hash *and* entry id. The index alone
//! decides which object a key has; the tier only supplies the bytes of that
//! exact object, so a replaced, purged or evicted object can never be served
//! from here: its id is simply never asked for again. Copies are dropped
//! eagerly when the store drops the object, and otherwise aged out.
//!
//! Bounded by bytes, replaced by CLOCK: a copy read since the hand last
//! passed it gets a second chance, so the hot set stays while one-off
//! objects pass through.
//!
//! The same structure, holding more than a body, keeps each worker thread's
//! own copies of the hottest objects (`thread_copies`).

use bytes::Bytes;
use pingora_cache::key::HashBinary;
use std::collections::{HashMap, VecDeque};

/// What a held value counts against the capacity.
pub trait Weighed {
    fn weight(&self) -> u64;
}

impl Weighed for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

struct Copy<V> {
    id: u64,
    body: V,
    referenced: bool,
}

/// A held value, as `get` finds it.
pub struct Held<'a, V> {
    pub value: &'a mut V,
    /// Whether it had been read since the hand last passed it: read at
    /// least twice lately, a hot object.
    pub hot: bool,
}

/// Copies of bodies, at most `capacity` bytes of them.
pub struct MemoryTier<V = Bytes> {
    capacity: u64,
    copies: HashMap<HashBinary, Copy<V>>,
    /// CLOCK order; may hold keys whose copy is gone or was replaced, which
    /// the hand skips.
    clock: VecDeque<(HashBinary, u64)>,
    bytes: u64,
    /// Objects read from disk once and not copied yet (`read_before`).
    seen: HashMap<HashBinary, u64>,
    seen_order: VecDeque<HashBinary>,
}

/// How many objects read once `read_before` remembers.
const SEEN_OBJECTS: usize = 4096;

impl<V: Weighed> MemoryTier<V> {
    pub fn new(capacity: u64) -> MemoryTier<V> {
        MemoryTier {
            capacity,
            copies: HashMap::new(),
            clock: VecDeque::new(),
            bytes: 0,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Whether object `id` of `key` was read from disk since it was last
    /// asked about here (among the last `SEEN_OBJECTS` asked about): true
    /// makes it a hot object worth a copy, false remembers this read.
    pub fn read_before(&mut self, key: HashBinary, id: u64) -> bool {
        if self.seen.get(&key) == Some(&id) {
            self.seen.remove(&key);
            return true;
        }
        if self.seen.insert(key, id).is_none() {
            self.seen_order.push_back(key);
        }
        while self.seen.len() > SEEN_OBJECTS {
            match self.seen_order.pop_front() {
                Some(old) => {
                    self.seen.remove(&old);
                }
                None => break,
            }
        }
        // Keys asked about again leave stale entries behind: sweep them.
        if self.seen_order.len() > 2 * SEEN_OBJECTS {
            let seen = &self.seen;
            self.seen_order.retain(|k| seen.contains_key(k));
        }
        false
    }

    /// The copy of object `id` of `key` (of whichever object of `key` is
    /// held, when `None`), if held.
    pub fn get(&mut self, key: &HashBinary, id: Option<u64>) -> Option<Held<'_, V>> {
        let copy = self
            .copies
            .get_mut(key)
            .filter(|c| id.is_none_or(|id| c.id == id))?;
        let hot = copy.referenced;
        copy.referenced = true;
        Some(Held {
            value: &mut copy.body,
            hot,
        })
    }

    /// Keeps a copy of object `id` of `key`; a copy larger than a quarter of
    /// the capacity is not kept (it would flush too much).
    pub fn put(&mut self, key: HashBinary, id: u64, body: V) {
        let len = body.weight();
        if len > self.capacity / 4 {
            return;
        }
        self.drop_copy(&key);
        while self.bytes + len > self.capacity {
            if !self.advance_hand() {
                break;
            }
        }
        self.bytes += len;
        self.copies.insert(
            key,
            Copy {
                id,
                body,
                referenced: false,
            },
        );
        self.clock.push_back((key, id));
        // Entries of replaced copies pile up in the clock when the same keys
        // are put again and again: sweep them out now and then.
        if self.clock.len() > 2 * self.copies.len() + 64 {
            let copies = &self.copies;
            self.clock
                .retain(|(k, id)| copies.get(k).is_some_and(|c| c.id == *id));
        }
    }

    /// Drops the copy of object `id` of `key`, if held.
    pub fn remove(&mut self, key: &HashBinary, id: u64) {
        if self.copies.get(key).is_some_and(|c| c.id == id) {
            self.drop_copy(key);
        }
    }

    fn drop_copy(&mut self, key: &HashBinary) {
        if let Some(old) = self.copies.remove(key) {
            self.bytes -= old.body.weight();
        }
    }

    /// One step of the hand: evicts the copy under it or gives it its second
    /// chance. False when there is nothing left to evict.
    fn advance_hand(&mut self) -> bool {
        let Some((key, id)) = self.clock.pop_front() else {
            return false;
        };
        match self.copies.get_mut(&key) {
            Some(copy) if copy.id == id && copy.referenced => {
                copy.referenced = false;
                self.clock.push_back((key, id));
            }
            Some(copy) if copy.id == id => {
                self.bytes -= copy.body.weight();
                self.copies.remove(&key);
            }
            // A stale clock entry: the copy was removed or replaced.
            _ => {}
        }
        true
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    #[cfg(test)]
    fn objects(&self) -> u64 {
        self.copies.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &mut MemoryTier, key: &HashBinary, id: u64) -> Option<Bytes> {
        m.get(key, Some(id)).map(|held| held.value.clone())
    }

    fn key(n: u8) -> HashBinary {
        [n; 16]
    }

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn an_object_is_read_before_on_its_second_read_of_the_same_version() {
        let mut m: MemoryTier = MemoryTier::new(1000);
        assert!(!m.read_before(key(1), 10), "first read");
        assert!(m.read_before(key(1), 10), "second read");
        assert!(!m.read_before(key(1), 10), "asked again: counted afresh");
        assert!(!m.read_before(key(2), 20));
        assert!(!m.read_before(key(2), 21), "another version");
        assert!(m.read_before(key(2), 21));
    }

    #[test]
    fn reads_are_remembered_for_a_bounded_number_of_objects() {
        let mut m: MemoryTier = MemoryTier::new(1000);
        assert!(!m.read_before(key(0), 1));
        for n in 0..SEEN_OBJECTS as u64 {
            let k: HashBinary = (n + 1).to_le_bytes().repeat(2).try_into().unwrap();
            assert!(!m.read_before(k, 1));
        }
        assert!(m.seen.len() <= SEEN_OBJECTS && m.seen_order.len() <= 2 * SEEN_OBJECTS);
        assert!(!m.read_before(key(0), 1), "the oldest was forgotten");
    }

    #[test]
    fn serves_only_the_id_it_holds() {
        let mut m = MemoryTier::new(1000);
        m.put(key(1), 10, body(100));
        assert_eq!(get(&mut m, &key(1), 10).map(|b| b.len()), Some(100));
        assert!(
            get(&mut m, &key(1), 11).is_none(),
            "another version of the key"
        );
        assert!(get(&mut m, &key(2), 10).is_none());
        m.put(key(1), 11, body(50));
        assert!(get(&mut m, &key(1), 10).is_none(), "replaced");
        assert_eq!(m.bytes(), 50);
        m.remove(&key(1), 10);
        assert_eq!(m.objects(), 1, "only the id named is removed");
        m.remove(&key(1), 11);
        assert_eq!((m.bytes(), m.objects()), (0, 0));
    }

    #[test]
    fn a_copy_read_again_before_the_hand_passes_is_hot() {
        let mut m = MemoryTier::new(1000);
        m.put(key(1), 10, body(100));
        let hot = |m: &mut MemoryTier, id| m.get(&key(1), id).map(|held| held.hot);
        assert_eq!(hot(&mut m, Some(10)), Some(false), "first read");
        assert_eq!(hot(&mut m, Some(10)), Some(true));
        assert_eq!(hot(&mut m, None), Some(true), "any id: the one held");
        assert_eq!(hot(&mut m, Some(11)), None);
        // The hand passes it once (second chance): cold again.
        for n in 2..7 {
            m.put(key(n), u64::from(n), body(200));
        }
        assert_eq!(m.objects(), 5, "one evicted");
        assert_eq!(hot(&mut m, Some(10)), Some(false));
    }

    #[test]
    fn stays_within_capacity_and_keeps_what_is_read() {
        let mut m = MemoryTier::new(1000);
        for n in 0..4 {
            m.put(key(n), u64::from(n), body(200));
        }
        // 0 and 1 are read: the hand passes them over once.
        assert!(get(&mut m, &key(0), 0).is_some());
        assert!(get(&mut m, &key(1), 1).is_some());
        for n in 4..8 {
            m.put(key(n), u64::from(n), body(200));
            assert!(m.bytes() <= 1000);
        }
        assert!(get(&mut m, &key(0), 0).is_some(), "hot copy kept");
        assert!(get(&mut m, &key(1), 1).is_some(), "hot copy kept");
        assert!(get(&mut m, &key(2), 2).is_none(), "cold copy evicted");
        assert!(get(&mut m, &key(3), 3).is_none(), "cold copy evicted");
        assert_eq!(m.bytes(), 200 * m.objects());
    }

    #[test]
    fn refuses_bodies_too_large_for_it() {
        let mut m = MemoryTier::new(1000);
        m.put(key(1), 1, body(251));
        assert!(get(&mut m, &key(1), 1).is_none());
        let mut off = MemoryTier::new(0);
        off.put(key(1), 1, body(1));
        assert_eq!(off.objects(), 0);
    }

    #[test]
    fn repeated_puts_do_not_grow_the_clock_without_bound() {
        let mut m = MemoryTier::new(1 << 20);
        for id in 0..10_000 {
            m.put(key(1), id, body(10));
        }
        assert!(m.clock.len() <= 2 * m.copies.len() + 65);
        assert_eq!(m.bytes(), 10);
    }
}
