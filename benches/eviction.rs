//! Cost of the disk cache's eviction manager (`cdn_node::cache::eviction::Manager`) with
//! 1M tracked entries: `admit` of a new key into a full cache (window overflow, one admission
//! duel, one eviction, the returned `Vec`) and `access` of a tracked key (sketch increment and
//! a move in the recency lists), single-threaded, uncontended lock.
//!
//! Both run on every cache fill and every hit, under the manager's single lock, so they bound
//! the fill and hit rates the lock allows.
//!
//! Run: `cargo bench --bench eviction -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::SystemTime;

use cdn_node::cache::eviction::Manager;
use criterion::{Criterion, criterion_group, criterion_main};
use pingora_cache::eviction::EvictionManager;
use pingora_cache::key::CompactCacheKey;
use pingora_cache::{CacheEntryId, CacheEntryKey};

const ITEMS: u64 = 1 << 20;
const SIZE: usize = 1_000;

fn entry(n: u64) -> CacheEntryKey {
    let mut primary = [0u8; 16];
    primary[..8].copy_from_slice(&n.to_le_bytes());
    let key = CompactCacheKey {
        primary,
        variance: None,
        user_tag: "".into(),
    };
    CacheEntryKey::identified(key, CacheEntryId::new(n))
}

/// A manager holding exactly `ITEMS` entries of `SIZE` bytes.
fn full_manager() -> Manager {
    let m = Manager::with_expected_items(ITEMS as usize * SIZE, ITEMS as usize);
    for n in 0..ITEMS {
        m.admit(entry(n), SIZE, SystemTime::UNIX_EPOCH);
    }
    assert_eq!(m.total_items(), ITEMS as usize);
    m
}

fn bench(c: &mut Criterion) {
    let m = full_manager();
    let entries: Vec<CacheEntryKey> = (0..ITEMS).map(entry).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    c.bench_function("access a tracked entry (1M tracked)", |b| {
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let e = &entries[(state % ITEMS) as usize];
            black_box(m.access(e, SIZE, SystemTime::UNIX_EPOCH))
        })
    });
    drop(entries);

    let m = full_manager();
    let mut next = ITEMS;
    c.bench_function("admit a new entry into a full cache (1M tracked)", |b| {
        b.iter(|| {
            next += 1;
            black_box(m.admit(entry(next), SIZE, SystemTime::UNIX_EPOCH))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
