//! The shared state of one fill in progress: the temp body file, how many
//! body bytes readers may read, the accepted chunks not yet in the file,
//! and whether the fill ended well.
//!
//! The writer (`miss.rs`) advances the state; readers (`hit.rs`) watch it
//! through a `tokio::sync::watch` channel and never poll. A chunk is
//! readable as soon as the writer accepts it: readers take it from memory
//! until its batch is in the file ([`Fill::read_at`]), so a reader
//! following a fill never waits for a disk write, and the writer gathers
//! its writes whoever reads.

use super::stored_meta::StoredMeta;
use bytes::{Bytes, BytesMut};
use pingora_cache::key::{CompactCacheKey, HashBinary};
use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::sync::watch;

/// Progress of a fill as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillState {
    /// This many body bytes are readable (in the file, or accepted and
    /// held in memory); more may come.
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

/// Where a fill's body bytes are read from ([`Fill::read_at`]).
#[derive(Debug, PartialEq, Eq)]
pub enum At {
    Memory(Bytes),
    /// The file, whose written bytes end at body offset `end`.
    File {
        end: u64,
    },
}

/// The chunks a fill accepted and has not written to its file yet.
#[derive(Default)]
struct Unwritten {
    /// The body offset of the first chunk: the bytes in the file.
    start: u64,
    chunks: VecDeque<Bytes>,
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
    /// The chunks accepted and not yet in the file.
    unwritten: Mutex<Unwritten>,
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
            unwritten: Mutex::new(Unwritten::default()),
            doomed: AtomicBool::new(false),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<FillState> {
        self.state.subscribe()
    }

    /// Whether the whole body is written and no purge doomed it: an object
    /// whose commit is under way (or about to be).
    pub fn is_finished(&self) -> bool {
        matches!(*self.state.borrow(), FillState::Done(_)) && !self.is_doomed()
    }

    /// The writer accepted `data`, the body bytes up to `accepted`: readers
    /// may read it from memory at once. Ignored once the fill has ended.
    pub fn accept(&self, data: Bytes, accepted: u64) {
        if data.is_empty() {
            return;
        }
        self.lock_unwritten().chunks.push_back(data);
        self.state.send_if_modified(|s| match s {
            FillState::Writing(_) => {
                *s = FillState::Writing(accepted);
                true
            }
            _ => false,
        });
    }

    /// The chunks accepted and not in the file yet, in order, and the body
    /// offset of the first: what the writer's next batch writes.
    pub fn unwritten(&self) -> (u64, Vec<Bytes>) {
        let unwritten = self.lock_unwritten();
        (unwritten.start, unwritten.chunks.iter().cloned().collect())
    }

    /// The body bytes up to `written` are in the file: memory lets their
    /// chunks go.
    pub fn written_to(&self, written: u64) {
        let mut unwritten = self.lock_unwritten();
        while let Some(front) = unwritten.chunks.front() {
            let end = unwritten.start + front.len() as u64;
            if end > written {
                break;
            }
            unwritten.start = end;
            unwritten.chunks.pop_front();
        }
    }

    /// Where the body bytes from offset `pos` (below what readers were told
    /// is readable) are read: up to `max` of them from memory when they are
    /// not in the file yet, else from the file, up to where the file's bytes
    /// end. From memory, the rest of the chunk holding `pos` when it is all
    /// there is (no copy), else the chunks from there gathered into one
    /// buffer: one write to the client rather than one per origin chunk.
    pub fn read_at(&self, pos: u64, max: u64) -> At {
        let max = max.max(1);
        let mut parts: Vec<Bytes> = Vec::new();
        {
            let unwritten = self.lock_unwritten();
            let mut start = unwritten.start;
            if pos < start {
                return At::File { end: start };
            }
            let mut left = max;
            for chunk in &unwritten.chunks {
                if left == 0 {
                    break;
                }
                let end = start + chunk.len() as u64;
                if pos < end {
                    let from = pos.saturating_sub(start) as usize;
                    let to = chunk.len().min(from.saturating_add(left as usize));
                    left -= (to - from) as u64;
                    parts.push(chunk.slice(from..to));
                }
                start = end;
            }
        }
        match parts.len() {
            // Past what was accepted: not asked by a reader of what it was told.
            0 => At::File { end: u64::MAX },
            1 => At::Memory(parts.pop().unwrap_or_default()),
            _ => {
                let len = parts.iter().map(Bytes::len).sum();
                let mut gathered = BytesMut::with_capacity(len);
                for part in &parts {
                    gathered.extend_from_slice(part);
                }
                At::Memory(gathered.freeze())
            }
        }
    }

    fn lock_unwritten(&self) -> MutexGuard<'_, Unwritten> {
        // Chunks pushed and popped whole: a panic elsewhere leaves no half
        // state behind.
        self.unwritten.lock().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::CacheKey;
    use pingora_cache::key::CacheHashKey;

    fn fill() -> Fill {
        let key = CacheKey::new("/v.mp4", "");
        let start = FillStart {
            id: 1,
            key: key.combined_bin(),
            compact: key.to_compact(),
            primary: Vec::new(),
            meta: Arc::new(StoredMeta::new(Vec::new(), Vec::new())),
            fresh_until: SystemTime::UNIX_EPOCH,
            content_length: None,
        };
        Fill::new(start, Arc::new(tempfile::tempfile().unwrap()))
    }

    #[test]
    fn bytes_are_read_from_memory_until_their_batch_is_written() {
        let fill = fill();
        // Body bytes 0..10 in the file; 10..14, 14..20, 20..23 in memory.
        for (chunk, accepted) in [
            (&b"0123456789"[..], 10),
            (b"abcd", 14),
            (b"efghij", 20),
            (b"klm", 23),
        ] {
            fill.accept(Bytes::copy_from_slice(chunk), accepted);
        }
        fill.written_to(10);
        let chunks =
            |parts: &[&'static [u8]]| parts.iter().map(|p| Bytes::from_static(p)).collect();
        assert_eq!(
            fill.unwritten(),
            (10, chunks(&[b"abcd", b"efghij", b"klm"]))
        );
        let memory = |b: &[u8]| At::Memory(Bytes::copy_from_slice(b));
        let cases = [
            // (pos, max, where)
            (0, 100, At::File { end: 10 }),
            (9, 1, At::File { end: 10 }),
            (10, 4, memory(b"abcd")),
            (11, 2, memory(b"bc")),
            // Across chunks: gathered, up to max.
            (12, 5, memory(b"cdefg")),
            (10, 100, memory(b"abcdefghijklm")),
            (19, 100, memory(b"jklm")),
            (22, 100, memory(b"m")),
            (23, 100, At::File { end: u64::MAX }),
        ];
        for (pos, max, want) in cases {
            assert_eq!(fill.read_at(pos, max), want, "pos {pos}, max {max}");
        }
        // A batch written up to a chunk's end lets go of the chunks in it only.
        fill.written_to(20);
        assert_eq!(fill.read_at(14, 100), At::File { end: 20 });
        assert_eq!(fill.read_at(20, 100), memory(b"klm"));
        fill.written_to(23);
        assert_eq!(fill.unwritten(), (23, chunks(&[])));
        assert_eq!(fill.read_at(22, 100), At::File { end: 23 });
        assert_eq!(*fill.subscribe().borrow(), FillState::Writing(23));
    }
}
