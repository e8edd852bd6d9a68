//! The tracked entries: one slot each in a vector (slots of removed entries
//! reused through a free list), found by fingerprint, and threaded on three
//! doubly linked LRU lists, one per region, least recent at the head. Every
//! operation here is O(1) and keeps each list's byte and entry counts.

use pingora_cache::{CacheEntryKey, CacheEntryKeyRef};

#[cfg(test)]
use super::fingerprint::fingerprint;
use super::policy::Inner;

/// Bytes of one entry slot.
pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Option<Node>>();

/// Index meaning "no entry" in the intrusive lists.
pub(super) const NIL: u32 = u32::MAX;

/// The region an entry lives in; also the index of its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) key: CacheEntryKey,
    /// [`fingerprint`](super::fingerprint::fingerprint) of the logical key:
    /// map key and sketch hash.
    pub(super) fp: u64,
    pub(super) size: usize,
    /// Towards the least recently used end.
    pub(super) prev: u32,
    /// Towards the most recently used end.
    pub(super) next: u32,
    pub(super) region: Region,
}

/// A doubly linked list through the slots, least recent at `head`.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) bytes: usize,
    pub(super) len: usize,
}

impl List {
    pub(super) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        bytes: 0,
        len: 0,
    };
}

impl Inner {
    #[inline]
    pub(super) fn node(&self, idx: u32) -> &Node {
        self.slots[idx as usize].as_ref().expect("live slot")
    }

    #[inline]
    pub(super) fn node_mut(&mut self, idx: u32) -> &mut Node {
        self.slots[idx as usize].as_mut().expect("live slot")
    }

    /// The slot holding exactly `key`, if tracked.
    pub(super) fn find_exact(&self, fp: u64, key: CacheEntryKeyRef<'_>) -> Option<u32> {
        let idx = *self.map.get(&fp)?;
        (CacheEntryKeyRef::from(&self.node(idx).key) == key).then_some(idx)
    }

    pub(super) fn unlink(&mut self, idx: u32) {
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
    pub(super) fn link_mru(&mut self, idx: u32, region: Region) {
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
    pub(super) fn resize(&mut self, idx: u32, size: usize) {
        let (old, region) = {
            let n = self.node_mut(idx);
            let old = n.size;
            n.size = size;
            (old, n.region)
        };
        let list = &mut self.lists[region as usize];
        list.bytes = list.bytes - old + size;
    }

    /// Track a new entry at the most recent end of the window. The entry
    /// comes back when the slot indices are exhausted.
    pub(super) fn insert(
        &mut self,
        key: CacheEntryKey,
        fp: u64,
        size: usize,
    ) -> Result<u32, CacheEntryKey> {
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
    pub(super) fn release(&mut self, idx: u32) -> Node {
        let node = self.slots[idx as usize].take().expect("live slot");
        self.map.remove(&node.fp);
        self.free.push(idx);
        node
    }
}

#[cfg(test)]
impl Inner {
    /// Walk every list and the map, checking links, sums and bounds.
    pub(super) fn check_invariants(&self) {
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
