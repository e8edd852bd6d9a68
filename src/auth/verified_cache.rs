//! The verified-token cache: the result of verifying an exact token string (signature and
//! claim parsing, nothing that depends on the request) is remembered until the token's `exp`.
//!
//! Entries carry the verifier's epoch when verification started; the epoch moves when keys
//! rotate or the denylist changes, and an entry from another epoch is never used (the cache
//! is also emptied then). The cache is bounded: when a shard is full, expired and stale
//! entries go first, then an eighth of the shard. Only successes are stored. Whatever
//! depends on the request (path scope, client address, `exp` against now, denylist, replay)
//! is checked again by the caller on every hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shards, to keep two cores from queuing on one lock.
const SHARDS: usize = 8;

struct Entry<T> {
    value: Arc<T>,
    /// Unix seconds after which the entry is useless (`exp` plus leeway).
    until: u64,
    epoch: u64,
}

/// A bounded map from token text to its verified result.
pub struct VerifiedCache<T> {
    shards: Vec<Mutex<HashMap<Box<str>, Entry<T>>>>,
    per_shard: usize,
}

impl<T> std::fmt::Debug for VerifiedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl<T> VerifiedCache<T> {
    /// A cache of about `capacity` entries; 0 stores nothing.
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    /// The shard of a token: its last byte is signature, spread evenly.
    fn shard(&self, token: &str) -> &Mutex<HashMap<Box<str>, Entry<T>>> {
        let byte = token.as_bytes().last().copied().unwrap_or(0) as usize;
        &self.shards[byte % SHARDS]
    }

    /// The remembered result for exactly `token`, if it is from `epoch` and not past `now`.
    pub fn get(&self, token: &str, epoch: u64, now: u64) -> Option<Arc<T>> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(token)?;
        (entry.epoch == epoch && now <= entry.until).then(|| entry.value.clone())
    }

    /// Remembers `value` for `token` until `until`, if there is room (made by eviction).
    pub fn insert(&self, token: &str, value: Arc<T>, until: u64, epoch: u64, now: u64) {
        if self.per_shard == 0 || until < now {
            return;
        }
        let mut shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(token) {
            shard.retain(|_, e| e.epoch == epoch && e.until >= now);
            if shard.len() >= self.per_shard {
                let drop_n = (self.per_shard / 8).max(1);
                let victims: Vec<Box<str>> = shard.keys().take(drop_n).cloned().collect();
                for key in victims {
                    shard.remove(&key);
                }
            }
        }
        shard.insert(
            token.into(),
            Entry {
                value,
                until,
                epoch,
            },
        );
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// How many entries are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_expiry_and_only_in_the_same_epoch() {
        let cache = VerifiedCache::new(100);
        cache.insert("a.b.c", Arc::new(1), 110, 0, 100);
        assert_eq!(cache.get("a.b.c", 0, 100).as_deref(), Some(&1));
        assert_eq!(cache.get("a.b.c", 0, 110).as_deref(), Some(&1));
        assert_eq!(cache.get("a.b.c", 0, 111), None, "expired");
        assert_eq!(cache.get("a.b.c", 1, 100), None, "other epoch");
        assert_eq!(cache.get("a.b.d", 0, 100), None, "other token");
        cache.insert("x.y.z", Arc::new(2), 99, 0, 100);
        assert_eq!(
            cache.get("x.y.z", 0, 99),
            None,
            "already expired is not stored"
        );
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_bounded() {
        let cache = VerifiedCache::new(64);
        for i in 0..10_000u32 {
            cache.insert(&format!("t.{i}"), Arc::new(i), 1_000, 0, 100);
            assert!(cache.len() <= 64, "{}", cache.len());
        }
        assert!(cache.get("t.9999", 0, 100).is_some(), "the newest stays");
        // Expired and stale entries go before live ones (all in the shard of '0').
        let cache = VerifiedCache::new(16);
        for i in 0..2u32 {
            cache.insert(&format!("old.{i}.0"), Arc::new(i), 150, 0, 100);
        }
        cache.insert("live.0", Arc::new(0), 1_000, 0, 200);
        assert!(cache.get("live.0", 0, 200).is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cache = VerifiedCache::new(0);
        cache.insert("a", Arc::new(1), 1_000, 0, 100);
        assert!(cache.get("a", 0, 100).is_none());
    }
}
