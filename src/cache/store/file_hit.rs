//! Fresh hits handed out as their open body file, for a caller that sends
//! it with `sendfile`: the kernel moves the bytes from the page cache into
//! the socket, and the process neither reads nor copies them (on Pingora's
//! hit path a disk hit is read into a buffer, then copied into the socket:
//! together over a quarter of the node's CPU on a PoP workload).
//!
//! Only a body the page cache holds whole is handed out ([`resident`]):
//! `sendfile` would otherwise wait for the device on a worker thread. The
//! object must be as plain as a memory hit's (`memory_hit`): complete, no
//! variance, fresh, its meta decoded by an earlier hit. The file stays
//! valid however long the send takes: a replaced, purged or evicted
//! object's files are unlinked, and an open file keeps its bytes.

use super::DiskStore;
use super::files;
use super::format::BODY_PREAMBLE_LEN;
use super::index::Complete;
use super::memory_hit::{Accesses, MemoryHit};
use super::resident;
use pingora_http::ResponseHeader;
use std::fs::File;
use std::time::Duration;

/// Where [`DiskStore::fresh_hit`] may find an object's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    /// Memory, or the body file for an object too large for memory.
    MemoryOrFile,
    /// The body file only (an answer only a file can give: a range).
    File,
}

/// A fresh hit found by [`DiskStore::fresh_hit`].
pub enum Held {
    /// The body in memory.
    Memory(MemoryHit),
    /// The body in a file the page cache holds.
    File(FileHit),
}

/// A fresh object to send from its body file.
pub struct FileHit {
    /// The stored response header, with what the caller's `prepare` added.
    pub header: ResponseHeader,
    /// Time since the object was stored or last revalidated (`Age`).
    pub age: Duration,
    pub body: FileBody,
    /// What the eviction manager is to be told of this access.
    pub accesses: Accesses,
}

/// The bytes of a body: `len` bytes of `file` from `offset`.
#[derive(Debug)]
pub struct FileBody {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl DiskStore {
    /// The body file of `c`, when it is whole and the page cache holds all
    /// of its body. A file missing or malformed is left to Pingora's hit
    /// path, which drops the object.
    pub(super) fn cached_body(&self, c: &Complete) -> Option<FileBody> {
        let file = files::open_body(&self.layout, &c.key, c.id, c.body_len).ok()?;
        resident::cached(&file, BODY_PREAMBLE_LEN, c.body_len).then_some(FileBody {
            file,
            offset: BODY_PREAMBLE_LEN,
            len: c.body_len,
        })
    }
}
