//! The shared state of one fill in progress: the temp body file, how many
//! bytes it holds, and whether the fill ended well.
//!
//! The writer (`miss.rs`) advances the state; readers (`hit.rs`) watch it
//! through a `tokio::sync::watch` channel and never poll.

use super::stored_meta::StoredMeta;
use pingora_cache::key::{CompactCacheKey, HashBinary};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;
use tokio::sync::watch;

/// Progress of a fill as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillState {
    /// This many body bytes are on disk; more may come.
    Writing(u64),
    /// The body is complete with this many bytes (it may not be committed yet).
    Done(u64),
    /// The fill failed: readers must return an error, never a clean end.
    Failed,
}

/// What a fill is started with.
pub struct FillStart {
    pub id: u64,
    pub key: HashBinary,
    pub compact: CompactCacheKey,
    pub primary: Vec<u8>,
    pub meta: Arc<StoredMeta>,
    pub fresh_until: SystemTime,
    pub content_length: Option<u64>,
}

/// One fill in progress.
pub struct Fill {
    pub id: u64,
    pub key: HashBinary,
    pub compact: CompactCacheKey,
    pub primary: Vec<u8>,
    pub meta: Arc<StoredMeta>,
    pub fresh_until: SystemTime,
    /// Content-Length promised by the origin, if any.
    pub content_length: Option<u64>,
    /// The temp body file (preamble, then body), shared by writer and readers
    /// through positional reads and writes.
    pub file: Arc<File>,
    state: watch::Sender<FillState>,
    /// Set by a purge: the fill goes on for its readers but is never committed
    /// and no longer offered to new lookups.
    doomed: AtomicBool,
}

impl Fill {
    pub fn new(start: FillStart, file: Arc<File>) -> Self {
        let (state, _) = watch::channel(FillState::Writing(0));
        Fill {
            id: start.id,
            key: start.key,
            compact: start.compact,
            primary: start.primary,
            meta: start.meta,
            fresh_until: start.fresh_until,
            content_length: start.content_length,
            file,
            state,
            doomed: AtomicBool::new(false),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<FillState> {
        self.state.subscribe()
    }

    /// Whether readers follow the fill now.
    pub fn is_followed(&self) -> bool {
        self.state.receiver_count() > 0
    }

    /// Whether the whole body is written and no purge doomed it: an object
    /// whose commit is under way (or about to be).
    pub fn is_finished(&self) -> bool {
        matches!(*self.state.borrow(), FillState::Done(_)) && !self.is_doomed()
    }

    /// More bytes are on disk. Ignored once the fill has ended.
    pub fn advance(&self, written: u64) {
        self.state.send_if_modified(|s| match s {
            FillState::Writing(_) => {
                *s = FillState::Writing(written);
                true
            }
            _ => false,
        });
    }

    /// The body is complete. Ignored once the fill has ended.
    pub fn done(&self, total: u64) {
        self.state.send_if_modified(|s| match s {
            FillState::Writing(_) => {
                *s = FillState::Done(total);
                true
            }
            _ => false,
        });
    }

    /// The fill failed. Returns whether this call ended it (a `Done` body
    /// stays readable: its bytes are all there).
    pub fn fail(&self) -> bool {
        self.state.send_if_modified(|s| match s {
            FillState::Writing(_) => {
                *s = FillState::Failed;
                true
            }
            _ => false,
        })
    }

    pub fn doom(&self) {
        self.doomed.store(true, Ordering::Release);
    }

    pub fn is_doomed(&self) -> bool {
        self.doomed.load(Ordering::Acquire)
    }
}
