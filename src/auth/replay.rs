//! The replay cache (`auth.replay_protection`): the `jti` of every token let through, kept
//! until that token expires, so that the same token is refused the second time.
//!
//! Keyed on `jti`, never on the token text (signatures can be malleable). Bounded: when a
//! shard is full, expired entries go first, then those nearest to their expiry (whose tokens
//! could then be used again until they expire: size the cache for the tokens issued within
//! a token lifetime). Unlike the verified-token cache it is never emptied when keys or the
//! denylist change. It is per node: a token may be used once on each node.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Shards, to keep two cores from queuing on one lock.
const SHARDS: usize = 8;

#[derive(Default)]
struct Shard {
    /// `jti` -> Unix second after which its token is expired (`exp` plus leeway).
    seen: HashMap<Box<str>, u64>,
    /// The same entries, by expiry, for eviction.
    by_expiry: BTreeSet<(u64, Box<str>)>,
}

impl Shard {
    fn remove_first(&mut self) {
        if let Some((_, jti)) = self.by_expiry.pop_first() {
            self.seen.remove(&jti);
        }
    }
}

/// Remembers `jti` values until their tokens expire.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache of about `capacity` entries (at least one a shard).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// Records `jti`, whose token is good until `until`. False when it was already recorded
    /// and has not expired: the token is being used again.
    pub fn first_use(&self, jti: &str, until: u64, now: u64) -> bool {
        let index = (self.hasher.hash_one(jti) % SHARDS as u64) as usize;
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&seen_until) = shard.seen.get(jti) {
            if seen_until >= now {
                return false;
            }
            shard.by_expiry.remove(&(seen_until, Box::from(jti)));
            shard.seen.remove(jti);
        }
        while shard
            .by_expiry
            .first()
            .is_some_and(|(expiry, _)| *expiry < now)
        {
            shard.remove_first();
        }
        while shard.seen.len() >= self.per_shard {
            shard.remove_first();
        }
        let key: Box<str> = jti.into();
        shard.by_expiry.insert((until, key.clone()));
        shard.seen.insert(key, until);
        true
    }

    /// How many entries are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).seen.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_refused_until_its_token_expires() {
        let cache = ReplayCache::new(100);
        let cases = [
            ("a", 110, 100, true),
            ("a", 110, 100, false),
            ("a", 110, 110, false),
            ("b", 110, 105, true),
            ("a", 200, 111, true),
            ("a", 200, 150, false),
        ];
        for (jti, until, now, want) in cases {
            assert_eq!(cache.first_use(jti, until, now), want, "{jti} at {now}");
        }
    }

    #[test]
    fn stays_bounded_and_forgets_the_nearest_expiry_first() {
        let cache = ReplayCache::new(64);
        for i in 0..10_000u64 {
            assert!(cache.first_use(&format!("j{i}"), 1_000_000 + i, 100));
            assert!(cache.len() <= 64, "{}", cache.len());
        }
        assert!(
            !cache.first_use("j9999", 2_000_000, 100),
            "the newest stays"
        );
        // Expired entries go without pushing live ones out.
        let cache = ReplayCache::new(64);
        assert!(cache.first_use("live", 1_000, 100));
        for i in 0..200u64 {
            assert!(cache.first_use(&format!("short{i}"), 100 + i, 100 + i));
        }
        assert!(
            cache.len() <= 16,
            "expired entries are dropped: {}",
            cache.len()
        );
        assert!(!cache.first_use("live", 1_000, 300), "live entry kept");
    }
}
