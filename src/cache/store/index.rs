//! The in-memory index: for each key hash, the committed object (if any)
//! and the fills in progress. Pure bookkeeping under one mutex, no I/O.

use super::fill::Fill;
use super::format::ObjectHeader;
// Re-exported: fill, miss and storage name it through the index.
use super::stored_meta::StoredMeta;
use pingora_cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora_cache::key::{CompactCacheKey, HashBinary};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// A committed object.
#[derive(Debug, Clone)]
pub struct Complete {
    pub id: u64,
    pub key: HashBinary,
    pub compact: CompactCacheKey,
    pub primary: Vec<u8>,
    pub body_len: u64,
    /// Length of the meta file: counted into the weight.
    pub meta_len: u64,
    pub fresh_until: SystemTime,
    pub meta: Arc<StoredMeta>,
    /// Set when the index lets go of this object (replaced, updated,
    /// removed) or a fill of its key starts: copies made of it, which skip
    /// the index, must then ask the index again.
    pub retired: Retired,
}

/// Whether the index has let go of an object. A clone of an object (the
/// start of an updated version) is a new object: not retired.
#[derive(Debug, Default)]
pub struct Retired(AtomicBool);

impl Retired {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Clone for Retired {
    fn clone(&self) -> Retired {
        Retired::default()
    }
}

impl Complete {
    /// Builds the index entry from a decoded meta file.
    pub fn from_header(key: HashBinary, h: ObjectHeader, meta_len: u64) -> Self {
        Complete {
            id: h.entry_id,
            key,
            compact: CompactCacheKey {
                primary: h.primary_bin,
                variance: h.variance.map(Box::new),
                user_tag: h.user_tag.into_boxed_str(),
            },
            primary: h.primary,
            body_len: h.body_len,
            meta_len,
            fresh_until: h.fresh_until,
            meta: Arc::new(StoredMeta::new(h.meta_internal, h.meta_header)),
            retired: Retired::default(),
        }
    }

    /// The header to write for this object, with `meta` as its `CacheMeta`.
    pub fn header_with(&self, meta: &StoredMeta, fresh_until: SystemTime) -> ObjectHeader {
        ObjectHeader {
            entry_id: self.id,
            body_len: self.body_len,
            fresh_until,
            primary_bin: self.compact.primary,
            variance: self.compact.variance.as_deref().copied(),
            user_tag: self.compact.user_tag.to_string(),
            primary: self.primary.clone(),
            meta_internal: meta.internal.clone(),
            meta_header: meta.header.clone(),
        }
    }

    /// What the eviction manager is told this object weighs.
    pub fn weight(&self) -> u64 {
        self.body_len.saturating_add(self.meta_len)
    }

    /// `weight` as the eviction manager takes it.
    pub fn eviction_weight(&self) -> usize {
        usize::try_from(self.weight()).unwrap_or(usize::MAX)
    }

    /// The identified key the eviction manager tracks this object under.
    pub fn eviction_key(&self) -> CacheEntryKey {
        CacheEntryKey::identified(self.compact.clone(), CacheEntryId::new(self.id))
    }
}

/// What a lookup found.
pub enum Found {
    Complete(Arc<Complete>),
    Fill(Arc<Fill>),
}

#[derive(Default)]
struct Slot {
    complete: Option<Arc<Complete>>,
    fills: Vec<Arc<Fill>>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.complete.is_none() && self.fills.is_empty()
    }
}

/// Why a fill could not be installed.
#[derive(Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Purged while it was being written.
    Doomed,
}

#[derive(Default)]
pub struct Index {
    slots: HashMap<HashBinary, Slot>,
    bytes: u64,
    objects: u64,
    fills: u64,
}

impl Index {
    fn add_totals(&mut self, c: &Complete) {
        self.bytes = self.bytes.saturating_add(c.weight());
        self.objects += 1;
    }

    /// Every object the index lets go of passes here.
    fn sub_totals(&mut self, c: &Complete) {
        c.retired.set();
        self.bytes = self.bytes.saturating_sub(c.weight());
        self.objects = self.objects.saturating_sub(1);
    }

    fn prune(&mut self, key: &HashBinary) {
        if self.slots.get(key).is_some_and(Slot::is_empty) {
            self.slots.remove(key);
        }
    }

    /// The newest fill that is not doomed, else the committed object.
    pub fn lookup(&self, key: &HashBinary) -> Option<Found> {
        let slot = self.slots.get(key)?;
        if let Some(fill) = slot.fills.iter().rev().find(|f| !f.is_doomed()) {
            return Some(Found::Fill(fill.clone()));
        }
        slot.complete.clone().map(Found::Complete)
    }

    /// The fill with this id, or the object it already became.
    pub fn by_id(&self, key: &HashBinary, id: u64) -> Option<Found> {
        let slot = self.slots.get(key)?;
        if let Some(fill) = slot.fills.iter().find(|f| f.id == id) {
            return Some(Found::Fill(fill.clone()));
        }
        slot.complete
            .as_ref()
            .filter(|c| c.id == id)
            .cloned()
            .map(Found::Complete)
    }

    pub fn complete(&self, key: &HashBinary) -> Option<Arc<Complete>> {
        self.slots.get(key)?.complete.clone()
    }

    pub fn add_fill(&mut self, fill: Arc<Fill>) {
        self.fills += 1;
        let slot = self.slots.entry(fill.key).or_default();
        // Lookups now find the fill: copies of the object must not answer
        // for the key any more.
        if let Some(c) = &slot.complete {
            c.retired.set();
        }
        slot.fills.push(fill);
    }

    /// Forgets a fill; returns whether it was there.
    pub fn remove_fill(&mut self, key: &HashBinary, id: u64) -> bool {
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let before = slot.fills.len();
        slot.fills.retain(|f| f.id != id);
        let removed = slot.fills.len() != before;
        if removed {
            self.fills = self.fills.saturating_sub(1);
        }
        self.prune(key);
        removed
    }

    /// Turns fill `fill_id` into the committed object `c`. Returns the object
    /// it replaces, whose files the caller deletes.
    pub fn install(
        &mut self,
        fill: &Fill,
        c: Arc<Complete>,
    ) -> Result<Option<Arc<Complete>>, InstallError> {
        self.remove_fill(&fill.key, fill.id);
        if fill.is_doomed() {
            return Err(InstallError::Doomed);
        }
        let old = self
            .slots
            .entry(c.key)
            .or_default()
            .complete
            .replace(c.clone());
        if let Some(old) = &old {
            self.sub_totals(old);
        }
        self.add_totals(&c);
        Ok(old)
    }

    /// Adds an object found by the start-up scan. When the key already has
    /// one, the higher entry id wins; returns the loser.
    pub fn insert_scanned(&mut self, c: Complete) -> Option<Complete> {
        let slot = self.slots.entry(c.key).or_default();
        match &slot.complete {
            Some(existing) if existing.id > c.id => Some(c),
            _ => {
                let old = slot.complete.replace(Arc::new(c.clone()));
                if let Some(old) = &old {
                    self.sub_totals(old);
                }
                self.add_totals(&c);
                old.map(Arc::unwrap_or_clone)
            }
        }
    }

    /// Removes the committed object of `key` if it has entry id `id` (any id
    /// when `None`). Also dooms the key's fills when `doom_fills`.
    pub fn remove_complete(
        &mut self,
        key: &HashBinary,
        id: Option<u64>,
        doom_fills: bool,
    ) -> Option<Arc<Complete>> {
        let slot = self.slots.get_mut(key)?;
        if doom_fills {
            slot.fills.iter().for_each(|f| f.doom());
        }
        let matches = slot
            .complete
            .as_ref()
            .is_some_and(|c| id.is_none_or(|id| c.id == id));
        let removed = if matches { slot.complete.take() } else { None };
        if let Some(c) = &removed {
            self.sub_totals(c);
        }
        self.prune(key);
        removed
    }

    /// The newest fill of `key` whose body is complete and that is not
    /// doomed: an object being committed.
    pub fn finished_fill(&self, key: &HashBinary) -> Option<u64> {
        let slot = self.slots.get(key)?;
        let fill = slot.fills.iter().rev().find(|f| f.is_finished())?;
        Some(fill.id)
    }

    /// Dooms the fill with this id; returns whether there was one.
    pub fn doom_fill(&mut self, key: &HashBinary, id: u64) -> bool {
        self.slots
            .get(key)
            .and_then(|s| s.fills.iter().find(|f| f.id == id))
            .map(|f| f.doom())
            .is_some()
    }

    /// Updates the meta of the committed object `id`; false when it is gone.
    pub fn replace_meta(
        &mut self,
        key: &HashBinary,
        id: u64,
        meta: Arc<StoredMeta>,
        meta_len: u64,
        fresh_until: SystemTime,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let Some(current) = slot.complete.as_ref().filter(|c| c.id == id) else {
            return false;
        };
        let mut updated = Complete::clone(current);
        updated.meta = meta;
        updated.meta_len = meta_len;
        updated.fresh_until = fresh_until;
        let old = slot.complete.replace(Arc::new(updated.clone()));
        if let Some(old) = old {
            self.sub_totals(&old);
        }
        self.add_totals(&updated);
        true
    }

    /// Removes every committed object for which `matches(primary, meta)`
    /// holds, and dooms the fills in progress for which it holds. Returns
    /// the objects removed, and the fills doomed whose body was complete
    /// (being committed: objects the purge removes as well).
    pub fn drain_where(
        &mut self,
        mut matches: impl FnMut(&[u8], &StoredMeta) -> bool,
    ) -> (Vec<Arc<Complete>>, Vec<Arc<Fill>>) {
        let mut removed = Vec::new();
        let mut finished = Vec::new();
        let mut emptied = Vec::new();
        for (key, slot) in self.slots.iter_mut() {
            for f in &slot.fills {
                if matches(&f.primary, &f.meta) {
                    if f.is_finished() {
                        finished.push(f.clone());
                    }
                    f.doom();
                }
            }
            if slot
                .complete
                .as_ref()
                .is_some_and(|c| matches(&c.primary, &c.meta))
                && let Some(c) = slot.complete.take()
            {
                removed.push(c);
                if slot.is_empty() {
                    emptied.push(*key);
                }
            }
        }
        for key in emptied {
            self.slots.remove(&key);
        }
        for c in &removed {
            self.sub_totals(c);
        }
        (removed, finished)
    }

    pub fn entries(&self) -> Vec<Arc<Complete>> {
        self.slots
            .values()
            .filter_map(|s| s.complete.clone())
            .collect()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn objects(&self) -> u64 {
        self.objects
    }
    pub fn fills(&self) -> u64 {
        self.fills
    }
}
