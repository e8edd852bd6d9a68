//! Where files live under the store directory, and how their names parse.
//!
//! ```text
//! <dir>/objects/<first byte of key hash, 2 hex>/<key hash, 32 hex>-<entry id, 16 hex>.meta
//! <dir>/objects/<first byte of key hash, 2 hex>/<key hash, 32 hex>-<entry id, 16 hex>.body
//! <dir>/tmp/<instance>/<write id, 16 hex>.body|.meta   (fills and header rewrites in progress)
//! <dir>/tmp/<instance>/lock                           (held by the process writing there)
//! ```
//!
//! Each process has its own folder under `tmp/` (`instance`), so that a
//! process starting on the store while another still writes to it (a
//! graceful upgrade) tells their temp files apart.

use pingora_cache::key::HashBinary;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const OBJECTS: &str = "objects";
pub const TMP: &str = "tmp";
pub const META_EXT: &str = "meta";
pub const BODY_EXT: &str = "body";
/// The file a process holds a lock on in its own temp folder.
pub const LOCK_FILE: &str = "lock";
/// The file created and removed to check that the store is writable.
pub const PROBE_FILE: &str = "probe";

/// Paths of one store directory, as one process uses it.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// The name of this process's folder under `tmp/`.
    instance: Arc<str>,
}

/// Which of the two files of an object a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Meta,
    Body,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex_16(s: &str) -> Option<HashBinary> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Layout {
    pub fn new(root: PathBuf, instance: &str) -> Self {
        Layout {
            root,
            instance: Arc::from(instance),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn objects(&self) -> PathBuf {
        self.root.join(OBJECTS)
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join(TMP)
    }
    /// This process's own folder under `tmp/`.
    pub fn own_tmp(&self) -> PathBuf {
        self.tmp().join(&*self.instance)
    }
    /// The subdirectory of objects whose key hash starts with `first`.
    pub fn shard(&self, first: u8) -> PathBuf {
        self.objects().join(format!("{first:02x}"))
    }
    /// `<key hash>-<entry id>`, the common stem of an object's two files.
    pub fn stem(key: &HashBinary, id: u64) -> String {
        format!("{}-{id:016x}", hex(key))
    }
    pub fn object_file(&self, key: &HashBinary, id: u64, kind: FileKind) -> PathBuf {
        let ext = match kind {
            FileKind::Meta => META_EXT,
            FileKind::Body => BODY_EXT,
        };
        self.shard(key[0])
            .join(format!("{}.{ext}", Self::stem(key, id)))
    }
    pub fn tmp_file(&self, write_id: u64, kind: FileKind) -> PathBuf {
        let ext = match kind {
            FileKind::Meta => META_EXT,
            FileKind::Body => BODY_EXT,
        };
        self.own_tmp().join(format!("{write_id:016x}.{ext}"))
    }
}

/// Parses `<32 hex>-<16 hex>.<meta|body>`.
pub fn parse_object_name(name: &str) -> Option<(HashBinary, u64, FileKind)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let kind = match ext {
        META_EXT => FileKind::Meta,
        BODY_EXT => FileKind::Body,
        _ => return None,
    };
    let (key, id) = stem.split_once('-')?;
    if id.len() != 16 {
        return None;
    }
    let key = unhex_16(key)?;
    let id = u64::from_str_radix(id, 16).ok()?;
    Some((key, id, kind))
}

/// Parses a shard directory name (`00`..`ff`).
pub fn parse_shard_name(name: &str) -> Option<u8> {
    if name.len() != 2 {
        return None;
    }
    u8::from_str_radix(name, 16).ok()
}

/// Makes directory entries (creations, renames, removals) in `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file, treating "already gone" as success.
pub fn remove_quietly(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
