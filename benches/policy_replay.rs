//! The disk cache's eviction manager (`cdn_node::cache::eviction::Manager`) played over
//! the PoP workload's trace, offline: the byte hit ratio the node's own policy reaches at a
//! given `max_size`, beside what `benches/pop/bounds.py` prints for the same trace (an
//! exact LRU, an exact LFU, the best static choice). No server, no disk: what the policy
//! decides, alone, so that a change to it can be weighed without the workload.
//!
//! Run: `cargo bench --bench policy_replay -- DIR ZIPF CAPACITY_MIB [FIRST [LAST]]`, with
//! DIR the PoP workload's scratch folder (its `catalogue.tsv` and `trace-ZIPF.txt`, kept by
//! `benches/pop_workload.sh`). Requests FIRST (5,000 by default) to LAST count.
//!
//! Each request is what the node does with it: a lookup (`access` of the tracked entry:
//! a hit), or a miss filled from the origin and `admit`ted, its evictions dropped. MP4
//! ranges count as the 4 MiB slices they touch, each slice a key of its own, as the node
//! stores them.

use std::collections::HashMap;
use std::time::SystemTime;

use cdn_node::cache::eviction::Manager;
use pingora_cache::eviction::EvictionManager;
use pingora_cache::key::CompactCacheKey;
use pingora_cache::{CacheEntryId, CacheEntryKey};

const MIB: u64 = 1024 * 1024;
const SLICE: u64 = 4 * MIB;

fn usage() -> ! {
    eprintln!("usage: policy_replay DIR ZIPF CAPACITY_MIB [FIRST [LAST]]");
    std::process::exit(2)
}

/// The tracked key of a name hashed to `hash`, one entry id per fill.
fn entry(hash: [u8; 16], fill: u64) -> CacheEntryKey {
    let key = CompactCacheKey {
        primary: hash,
        variance: None,
        user_tag: "".into(),
    };
    CacheEntryKey::identified(key, CacheEntryId::new(fill))
}

/// 16 bytes of FNV-1a (two seeds): distinct for the trace's few thousand names.
fn name_hash(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (half, seed) in [0xcbf2_9ce4_8422_2325u64, 0x9ae1_6a3b_2f90_404f]
        .into_iter()
        .enumerate()
    {
        let mut h = seed;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out[half * 8..half * 8 + 8].copy_from_slice(&h.to_le_bytes());
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 3 {
        usage();
    }
    let dir = std::path::Path::new(&args[0]);
    let zipf = &args[1];
    let capacity: u64 = args[2].parse().unwrap_or_else(|_| usage());
    let first: usize = args
        .get(3)
        .map_or(5000, |a| a.parse().unwrap_or_else(|_| usage()));
    let last: Option<usize> = args.get(4).map(|a| a.parse().unwrap_or_else(|_| usage()));
    let capacity = capacity * MIB;

    let catalogue = std::fs::read_to_string(dir.join("catalogue.tsv")).expect("catalogue.tsv");
    let sizes: HashMap<&str, u64> = catalogue
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(p, s)| (p, s.parse().expect("a size")))
        .collect();
    let trace =
        std::fs::read_to_string(dir.join(format!("trace-{zipf}.txt"))).expect("the trace file");

    let manager = Manager::new(capacity as usize);
    // Each stored key's current entry, as storage knows it.
    let mut stored: HashMap<[u8; 16], CacheEntryKey> = HashMap::new();
    let mut fills = 0u64;
    let (mut fetched, mut asked) = (0u64, 0u64);
    let never = SystemTime::UNIX_EPOCH;
    for (i, line) in trace.lines().enumerate() {
        if last.is_some_and(|last| i >= last) {
            break;
        }
        let mut words = line.split_whitespace();
        let path = words.next().expect("a path");
        let (keys, client): (Vec<(String, u64)>, u64) = match words.next() {
            None => {
                let size = sizes[path];
                (vec![(path.to_string(), size)], size)
            }
            Some(range) => {
                let (a, b) = range.split_once('-').expect("a range");
                let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
                let keys = (a / SLICE..=b / SLICE)
                    .map(|n| (format!("{path}#{n}"), SLICE))
                    .collect();
                (keys, b - a + 1)
            }
        };
        let mut missed = 0;
        for (name, size) in keys {
            let id = name_hash(name.as_bytes());
            if let Some(e) = stored.get(&id)
                && manager.access(e, size as usize, never)
            {
                continue;
            }
            missed += size;
            fills += 1;
            let e = entry(id, fills);
            stored.insert(id, e.clone());
            for gone in manager.admit(e, size as usize, never) {
                if stored.get(&gone.key().primary) == Some(&gone) {
                    stored.remove(&gone.key().primary);
                }
            }
        }
        if i >= first {
            fetched += missed;
            asked += client;
        }
    }
    println!(
        "cdn-node's W-TinyLFU: {:.1}% byte hit ({} fills, {:.0} MiB tracked at the end)",
        100.0 * (1.0 - fetched as f64 / asked as f64),
        fills,
        manager.total_size() as f64 / MIB as f64
    );
}
