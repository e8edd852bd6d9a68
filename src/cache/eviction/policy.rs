//! The W-TinyLFU policy, the state behind the manager's lock: new entries in
//! the window, a window candidate entering main only through the admission
//! duel, main as a segmented LRU (probation, protected), and the byte bounds
//! restored after every change.

use pingora_cache::CacheEntryKey;

use super::fingerprint::FpMap;
use super::lists::{List, NIL, Node, Region};
use super::sketch::Sketch;

/// Everything behind the lock.
pub(super) struct Inner {
    pub(super) slots: Vec<Option<Node>>,
    pub(super) free: Vec<u32>,
    pub(super) map: FpMap,
    pub(super) lists: [List; 3],
    pub(super) sketch: Sketch,
    pub(super) capacity: usize,
    pub(super) window_cap: usize,
    pub(super) protected_cap: usize,
    pub(super) evicted_size: usize,
    pub(super) evicted_items: usize,
}

impl Inner {
    pub(super) fn new(capacity: usize, expected_items: usize) -> Self {
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

    pub(super) fn total(&self) -> usize {
        self.lists.iter().map(|l| l.bytes).sum()
    }

    pub(super) fn items(&self) -> usize {
        self.lists.iter().map(|l| l.len).sum()
    }

    /// A hit: refresh recency, promoting a probation entry to protected.
    pub(super) fn touch(&mut self, idx: u32) {
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

    /// Evict a linked slot into `out`.
    pub(super) fn evict(&mut self, idx: u32, out: &mut Vec<CacheEntryKey>) {
        self.unlink(idx);
        let node = self.release(idx);
        self.evicted(node.key, node.size, out);
    }

    pub(super) fn evicted(
        &mut self,
        key: CacheEntryKey,
        size: usize,
        out: &mut Vec<CacheEntryKey>,
    ) {
        self.evicted_size = self.evicted_size.saturating_add(size);
        self.evicted_items += 1;
        out.push(key);
    }

    /// Track `key` with `size` (already floored, at most the capacity) as a
    /// new fill: refresh the same entry, replace another entry of the same
    /// logical key in place (returning it), or insert into the window.
    pub(super) fn place(
        &mut self,
        key: CacheEntryKey,
        fp: u64,
        size: usize,
        out: &mut Vec<CacheEntryKey>,
    ) {
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
    pub(super) fn rebalance(&mut self, out: &mut Vec<CacheEntryKey>) {
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
    pub(super) fn main_victim(&self) -> Option<u32> {
        [Region::Probation, Region::Protected]
            .iter()
            .map(|&r| self.lists[r as usize].head)
            .find(|&h| h != NIL)
    }

    /// The admission duel for an unlinked window candidate: `Some(n)` if it
    /// enters main after evicting the `n` next main victims (it is strictly
    /// more frequent than each of them), `None` if it loses.
    pub(super) fn duel(&self, candidate: u32) -> Option<usize> {
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
