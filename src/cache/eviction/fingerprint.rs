//! The 64-bit fingerprint of a logical key: the map key of the tracked entries
//! and the sketch's hash, stable across runs (the sketch is persisted).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pingora_cache::key::CompactCacheKey;

/// The map key is already a well mixed 64-bit fingerprint: use it as is.
#[derive(Default)]
pub(super) struct IdentityHasher(u64);

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

pub(super) type FpMap = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;

/// splitmix64's finalizer.
#[inline]
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit fingerprint of the logical key, stable across runs (the sketch
/// is persisted). The primary part is already a blake2 hash.
pub(super) fn fingerprint(key: &CompactCacheKey) -> u64 {
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
