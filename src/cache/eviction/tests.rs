//! Deterministic tests of the eviction manager (seeded PRNG, no clock).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use pingora_cache::eviction::EvictionManager;
use pingora_cache::key::CompactCacheKey;
use pingora_cache::{CacheEntryId, CacheEntryKey};

use super::Manager;
use super::fingerprint::mix;

const NEVER: SystemTime = SystemTime::UNIX_EPOCH;

/// splitmix64: a tiny seeded PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(n: u64) -> CompactCacheKey {
    let mut primary = [0u8; 16];
    primary[..8].copy_from_slice(&n.to_le_bytes());
    CompactCacheKey {
        primary,
        variance: None,
        user_tag: "".into(),
    }
}

fn entry(n: u64, id: Option<u64>) -> CacheEntryKey {
    CacheEntryKey::from_entry_id(key(n), id.map(CacheEntryId::new))
}

/// Drop from `storage` what the manager told us to delete; each must be
/// something storage holds.
fn delete(storage: &mut HashMap<CacheEntryKey, usize>, evicted: &[CacheEntryKey]) {
    let unique: HashSet<_> = evicted.iter().collect();
    assert_eq!(
        unique.len(),
        evicted.len(),
        "duplicate eviction {evicted:?}"
    );
    for e in evicted {
        assert!(storage.remove(e).is_some(), "evicted {e} is not stored");
    }
}

/// Random admit / increment / access / remove / peek against a model of
/// what storage holds: the capacity holds after every admit, the manager
/// tracks exactly what storage still has, and it never asks to delete
/// something storage does not hold.
#[test]
fn capacity_holds_under_random_operations() {
    const CAP: usize = 50_000;
    let m = Manager::with_expected_items(CAP, 200);
    let mut rng = Rng(0x00c0_ffee);
    let mut storage: HashMap<CacheEntryKey, usize> = HashMap::new();
    for step in 0..60_000 {
        let n = rng.below(400);
        let id = match rng.below(4) {
            0 => None,
            i => Some(i),
        };
        let e = entry(n, id);
        let size = match rng.below(100) {
            0 => CAP + 1 + rng.below(10) as usize,
            1 => 0,
            _ => 1 + rng.below(3_000) as usize,
        };
        match rng.below(12) {
            0..=3 => {
                let out = m.admit(e.clone(), size, NEVER);
                storage.insert(e, size.max(1));
                delete(&mut storage, &out);
                assert!(m.total_size() <= CAP, "step {step}");
            }
            4 => {
                let delta = rng.below(2_000) as usize;
                let max = (rng.below(2) == 0).then(|| rng.below(5_000) as usize);
                let new = match storage.get(&e) {
                    Some(&old) => {
                        let grown = old + delta;
                        max.map_or(grown, |max| grown.min(max).max(old))
                    }
                    None => max.map_or(delta, |max| delta.min(max)).max(1),
                };
                let out = m.increment_weight(&e, delta, max);
                storage.insert(e, new);
                delete(&mut storage, &out);
                assert!(m.total_size() <= CAP, "step {step}");
            }
            5..=7 => {
                let tracked = m.access(&e, size, NEVER);
                assert_eq!(tracked, storage.contains_key(&e), "step {step}");
                let sibling = storage.keys().any(|s| s.key() == e.key());
                if !sibling && size.max(1) <= CAP {
                    // An untracked hit starts tracking, like the trait asks.
                    storage.insert(e, size.max(1));
                }
            }
            8 => {
                m.remove((&e).into());
                storage.remove(&e);
            }
            _ => assert_eq!(m.peek(&e), storage.contains_key(&e), "step {step}"),
        }
        assert_eq!(m.total_items(), storage.len(), "step {step}");
        assert_eq!(m.total_size(), storage.values().sum::<usize>());
        if step % 1_000 == 0 {
            m.check_invariants();
        }
    }
    m.check_invariants();
    assert!(m.evicted_items() > 0 && m.evicted_size() > 0);
}

/// A plain byte-bounded LRU, only to show what the crawl does without
/// admission.
struct PlainLru {
    cap: usize,
    used: usize,
    tick: u64,
    by_age: BTreeMap<u64, u64>,
    entries: HashMap<u64, (u64, usize)>,
}

impl PlainLru {
    fn new(cap: usize) -> Self {
        PlainLru {
            cap,
            used: 0,
            tick: 0,
            by_age: BTreeMap::new(),
            entries: HashMap::new(),
        }
    }
    fn touch(&mut self, k: u64, size: usize) {
        self.tick += 1;
        if let Some((age, old)) = self.entries.insert(k, (self.tick, size)) {
            self.by_age.remove(&age);
            self.used -= old;
        }
        self.by_age.insert(self.tick, k);
        self.used += size;
        while self.used > self.cap {
            let (_, victim) = self.by_age.pop_first().expect("not empty");
            self.used -= self.entries.remove(&victim).expect("tracked").1;
        }
    }
}

#[test]
fn a_crawl_does_not_flush_the_hot_set() {
    const SIZE: usize = 1 << 10;
    const CAP: usize = 200 * SIZE;
    const HOT: u64 = 100; // half the capacity
    const SCAN: u64 = 10_000;
    struct Case {
        name: &'static str,
        manager: Manager,
        /// Requests for every hot key once per this many crawled keys.
        hot_every: Option<u64>,
    }
    let cases = [
        Case {
            name: "sketch sized for the library, hot set idle during the crawl",
            manager: Manager::with_expected_items(CAP, (HOT + SCAN) as usize),
            hot_every: None,
        },
        Case {
            name: "smallest sketch, hot set still requested during the crawl",
            manager: Manager::new(CAP),
            hot_every: Some(1_000),
        },
    ];
    for Case {
        name,
        manager: m,
        hot_every,
    } in cases
    {
        let mut lru = PlainLru::new(CAP);
        let request = |m: &Manager, lru: &mut PlainLru, n: u64| {
            let e = entry(n, Some(1));
            if !m.access(&e, SIZE, NEVER) {
                m.admit(e, SIZE, NEVER);
            }
            lru.touch(n, SIZE);
        };
        for _ in 0..10 {
            for n in 0..HOT {
                request(&m, &mut lru, n);
            }
        }
        for s in 0..SCAN {
            let n = 1_000_000 + s;
            m.admit(entry(n, Some(1)), SIZE, NEVER);
            m.access(&entry(n, Some(1)), SIZE, NEVER);
            lru.touch(n, SIZE);
            if hot_every.is_some_and(|every| s % every == every / 2) {
                for n in 0..HOT {
                    request(&m, &mut lru, n);
                }
            }
            assert!(m.total_size() <= CAP);
        }
        let kept = (0..HOT).filter(|&n| m.peek(&entry(n, Some(1)))).count();
        let kept_by_lru = (0..HOT).filter(|n| lru.entries.contains_key(n)).count();
        assert!(kept >= 90, "{name}: kept {kept} of {HOT} hot keys");
        assert!(
            kept_by_lru <= 10,
            "{name}: plain LRU kept {kept_by_lru} hot keys"
        );
        m.check_invariants();
    }
}

#[test]
fn entry_ids_replace_and_stale_ids_do_not_match() {
    let m = Manager::new(10_000);
    let (old, new) = (entry(1, Some(1)), entry(1, Some(2)));
    assert!(m.admit(old.clone(), 100, NEVER).is_empty());
    // A new fill of the same key: the old file must go.
    assert_eq!(m.admit(new.clone(), 300, NEVER), vec![old.clone()]);
    assert_eq!((m.total_items(), m.total_size()), (1, 300));
    assert_eq!((m.evicted_items(), m.evicted_size()), (1, 100));
    assert!(!m.peek(&old) && m.peek(&new));

    // Stale or key-only identities touch nothing.
    for s in [old.clone(), entry(1, None)] {
        m.remove((&s).into());
        assert!(!m.access(&s, 300, NEVER), "{s}");
        assert!(!m.peek(&s), "{s}");
        assert!(m.peek(&new), "{s}");
    }
    assert_eq!((m.total_items(), m.total_size()), (1, 300));

    // increment_weight with another id is a new fill too: the latest call wins.
    let newest = entry(1, Some(3));
    assert_eq!(m.increment_weight(&newest, 50, None), vec![new.clone()]);
    assert_eq!((m.total_items(), m.total_size()), (1, 50));
    assert_eq!(m.admit(new.clone(), 300, NEVER), vec![newest]);

    // Re-admitting the same entry updates its size, returns nothing.
    assert!(m.admit(new.clone(), 500, NEVER).is_empty());
    assert_eq!(m.total_size(), 500);
    m.remove((&new).into());
    assert_eq!((m.total_items(), m.total_size()), (0, 0));
    m.check_invariants();
}

#[test]
fn oversized_items_are_returned_at_once() {
    struct Case {
        capacity: usize,
        size: usize,
        admitted: bool,
    }
    #[rustfmt::skip]
    let cases = [
        Case { capacity: 0, size: 0, admitted: false },
        Case { capacity: 0, size: 1, admitted: false },
        Case { capacity: 100, size: 0, admitted: true },
        Case { capacity: 100, size: 100, admitted: true },
        Case { capacity: 100, size: 101, admitted: false },
        Case { capacity: 100, size: usize::MAX, admitted: false },
    ];
    for Case {
        capacity,
        size,
        admitted,
    } in cases
    {
        let what = format!("capacity {capacity}, size {size}");
        let m = Manager::new(capacity);
        let e = entry(7, Some(1));
        let out = m.admit(e.clone(), size, NEVER);
        assert_eq!(out.is_empty(), admitted, "{what}");
        assert_eq!(m.peek(&e), admitted, "{what}");
        assert!(m.total_size() <= capacity, "{what}");
        assert_eq!(m.evicted_items(), usize::from(!admitted), "{what}");
        // Growing past the capacity returns it too.
        let out = m.increment_weight(&e, capacity + 1, None);
        assert_eq!(out, vec![e.clone()], "{what}");
        assert_eq!((m.total_items(), m.total_size()), (0, 0), "{what}");
        m.check_invariants();
    }
}

#[test]
fn an_oversized_new_fill_also_returns_the_old_entry() {
    let m = Manager::new(1_000);
    m.admit(entry(1, Some(1)), 500, NEVER);
    let out = m.admit(entry(1, Some(2)), 5_000, NEVER);
    assert_eq!(out, vec![entry(1, Some(1)), entry(1, Some(2))]);
    assert_eq!((m.total_items(), m.total_size()), (0, 0));
}

/// A hot set that stops being requested fades (the sketch halves its
/// counters) and loses its place to a new hot set.
#[test]
fn formerly_hot_keys_lose_to_new_hot_keys() {
    const CAP: usize = 60;
    let m = Manager::with_expected_items(CAP, 1_024);
    let request = |n: u64| {
        let e = entry(n, None);
        if !m.access(&e, 1, NEVER) {
            m.admit(e, 1, NEVER);
        }
    };
    let old_hot = 0..50u64;
    let new_hot = 100..150u64;
    for _ in 0..40 {
        old_hot.clone().for_each(request);
    }
    assert_eq!(m.frequency(&key(0)), 15);
    assert!(old_hot.clone().all(|n| m.peek(&entry(n, None))));
    // Two sample periods (2 × 10 × 1024 increments) of the new hot set.
    for _ in 0..420 {
        new_hot.clone().for_each(request);
    }
    let old_kept = old_hot.filter(|&n| m.peek(&entry(n, None))).count();
    let new_kept = new_hot.filter(|&n| m.peek(&entry(n, None))).count();
    assert!(
        m.frequency(&key(0)) < 4,
        "old key still at {}",
        m.frequency(&key(0))
    );
    assert!(new_kept >= 45, "new hot set kept {new_kept}");
    assert!(old_kept <= 10, "old hot set kept {old_kept}");
    m.check_invariants();
}

/// Start-up: every object on disk is admitted once, in any order; the
/// capacity holds and exactly the extras come back.
#[test]
fn seeding_from_disk_enforces_the_capacity() {
    let mut rng = Rng(42);
    let objects: Vec<(CacheEntryKey, usize)> = (0..2_000)
        .map(|n| {
            (
                entry(n, Some(rng.below(1 << 40))),
                1 + rng.below(10_000) as usize,
            )
        })
        .collect();
    let on_disk: usize = objects.iter().map(|o| o.1).sum();
    let cap = on_disk / 2;
    let m = Manager::with_expected_items(cap, 2_000);
    let mut storage: HashMap<CacheEntryKey, usize> = HashMap::new();
    for (e, size) in objects {
        storage.insert(e.clone(), size);
        let out = m.admit(e, size, NEVER);
        delete(&mut storage, &out);
        assert!(m.total_size() <= cap);
    }
    assert_eq!(m.total_items(), storage.len());
    assert_eq!(m.total_size(), storage.values().sum::<usize>());
    assert!(
        m.total_size() >= cap / 10 * 9,
        "only {} of {cap}",
        m.total_size()
    );
    assert!(storage.keys().all(|e| m.peek(e)));
    m.check_invariants();
}

#[test]
fn access_tracks_unknown_entries_without_evicting() {
    let m = Manager::new(100);
    assert!(m.admit(entry(1, Some(1)), 80, NEVER).is_empty());
    // Unknown: tracked from now on, even past the capacity.
    assert!(!m.access(&entry(2, Some(1)), 50, NEVER));
    assert!(m.peek(&entry(2, Some(1))));
    assert_eq!(m.total_size(), 130);
    // Another id of a tracked key: counted, not tracked.
    assert!(!m.access(&entry(1, Some(9)), 50, NEVER));
    assert!(!m.peek(&entry(1, Some(9))));
    assert!(m.access(&entry(1, Some(1)), 80, NEVER));
    // The next admit restores the bound.
    m.admit(entry(3, Some(1)), 10, NEVER);
    assert!(m.total_size() <= 100);
    m.check_invariants();
}

#[test]
fn a_batch_of_accesses_counts_each_request_up_to_the_ceiling() {
    let m = Manager::new(1_000);
    m.admit(entry(1, Some(1)), 10, NEVER);
    let before = m.frequency(&key(1));
    assert!(m.access_counted(&entry(1, Some(1)), 10, 5));
    assert_eq!(m.frequency(&key(1)), before + 5);
    assert!(m.access_counted(&entry(1, Some(1)), 10, 1_000));
    assert_eq!(m.frequency(&key(1)), 15, "4-bit counters");
    // An unknown entry is tracked, as by `access`.
    assert!(!m.access_counted(&entry(3, Some(1)), 10, 3));
    assert!(m.peek(&entry(3, Some(1))), "an unknown entry is tracked");
    m.check_invariants();
}

#[test]
fn peek_does_not_count() {
    let m = Manager::new(1_000);
    m.admit(entry(1, None), 10, NEVER);
    let before = m.frequency(&key(1));
    for _ in 0..5 {
        assert!(m.peek(&entry(1, None)));
    }
    assert_eq!(m.frequency(&key(1)), before);
    m.access(&entry(1, None), 10, NEVER);
    assert_eq!(m.frequency(&key(1)), before + 1);
}

#[test]
fn concurrent_callers_keep_the_books_straight() {
    const CAP: usize = 100_000;
    let m = Arc::new(Manager::with_expected_items(CAP, 1_000));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut rng = Rng(t);
                for _ in 0..20_000 {
                    let e = entry(rng.below(2_000), Some(rng.below(2)));
                    match rng.below(4) {
                        0 => m.remove((&e).into()),
                        1 => {
                            m.access(&e, 1_000, NEVER);
                        }
                        _ => {
                            m.admit(e, 1 + rng.below(2_000) as usize, NEVER);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    m.check_invariants();
    m.admit(entry(u64::MAX, None), 1, NEVER);
    assert!(m.total_size() <= CAP);
}

#[tokio::test]
async fn the_sketch_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evict");
    let path = path.to_str().unwrap();
    let before = Manager::with_expected_items(1 << 20, 5_000);
    // Nothing saved yet: not an error.
    before.load(path).await.unwrap();
    for n in 0..100 {
        for _ in 0..n % 9 {
            before.access(&entry(n, None), 1, NEVER);
        }
    }
    before.save(path).await.unwrap();
    let after = Manager::with_expected_items(1 << 20, 5_000);
    after.load(path).await.unwrap();
    for n in 0..100 {
        assert_eq!(after.frequency(&key(n)), before.frequency(&key(n)), "{n}");
    }
    // A sketch of another width is refused and leaves the counters alone.
    let other = Manager::with_expected_items(1 << 20, 100_000);
    assert!(other.load(path).await.is_err());
    assert_eq!(other.frequency(&key(8)), 0);
}
