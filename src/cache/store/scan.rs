//! Start-up: create the directories, empty `tmp/`, validate every object
//! (meta file decoded, body file size checked) and build the index.
//!
//! Only meta files are read (bounded by `MAX_META_LEN`); body files are
//! only `stat`ed. Shard directories are scanned on a few threads.

use super::format::{self, BODY_PREAMBLE_LEN, DecodeError, MAX_META_LEN};
use super::index::{Complete, Index};
use super::layout::{self, FileKind, Layout, remove_quietly};
use super::{Counters, DiskStore, StoreConfig, StoreError};
use pingora_cache::key::{CacheHashKey, HashBinary};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What scanning one shard directory found.
#[derive(Default)]
struct ShardScan {
    objects: Vec<Complete>,
    discarded: u64,
    other_version: u64,
    max_id: u64,
}

/// A name for this process's temp folder that no other process has used:
/// its id and the time it opened the store.
fn instance_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

pub fn open(config: StoreConfig) -> Result<DiskStore, StoreError> {
    let started = std::time::Instant::now();
    let layout = Layout::new(config.dir.clone(), &instance_name());
    for dir in [layout.root().to_path_buf(), layout.objects(), layout.tmp()] {
        fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    }
    let TmpScan {
        removed: temp_removed,
        max_id: max_tmp_id,
        others_writing,
    } = clean_tmp(&layout.tmp())?;
    // Without its own temp folder (a read-only filesystem) the store still
    // serves what it holds; its fills fail and are counted.
    let tmp_lock = match super::files::claim_own_tmp(&layout) {
        Ok(lock) => Some(lock),
        Err(e) => {
            tracing::warn!(error = %e, dir = %layout.own_tmp().display(), "cache store: cannot create its temp folder; nothing new will be stored");
            None
        }
    };

    let objects = layout.objects();
    let mut shards = Vec::new();
    for entry in fs::read_dir(&objects).map_err(io_err("cannot list", &objects))? {
        let entry = entry.map_err(io_err("cannot list", &objects))?;
        let name = entry.file_name();
        match name.to_str().and_then(layout::parse_shard_name) {
            Some(first) if entry.path().is_dir() => shards.push((first, entry.path())),
            _ => {
                tracing::warn!(path = %entry.path().display(), "cache store: ignoring unknown entry")
            }
        }
    }

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let queue = Mutex::new(shards);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((first, dir)) = next else { break };
                    let scan = scan_shard(first, &dir, others_writing);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(scan);
                }
            });
        }
    });

    let mut index = Index::default();
    let mut discarded = 0;
    let mut other_version = 0;
    let mut max_id = max_tmp_id;
    let mut superseded = Vec::new();
    for scan in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        discarded += scan.discarded;
        other_version += scan.other_version;
        max_id = max_id.max(scan.max_id);
        for c in scan.objects {
            if let Some(loser) = index.insert_scanned(c) {
                superseded.push((loser.key, loser.id));
            }
        }
    }
    for (key, id) in superseded {
        discarded += 2;
        // Not fsynced: after a power loss, the next open picks again.
        let _ = super::files::remove_object(&layout, &key, id, false);
    }

    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    let next_id = next_id(max_id, now_micros, others_writing);

    tracing::info!(
        dir = %config.dir.display(),
        objects = index.objects(),
        bytes = index.bytes(),
        discarded,
        other_version,
        temp_removed,
        others_writing,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cache store opened"
    );
    let counters = Counters::default();
    counters.discarded_files.store(discarded, Ordering::Relaxed);
    let memory = super::MemoryTier::new(config.memory_bytes);
    Ok(DiskStore {
        thread_copies: super::thread_copies::ThreadCopies::new(
            config.memory_bytes / super::THREAD_COPY_SHARE,
        ),
        config,
        layout,
        index: Mutex::new(index),
        memory: Mutex::new(memory),
        next_id: AtomicU64::new(next_id),
        _tmp_lock: tmp_lock,
        counters,
        commits: tokio::sync::watch::Sender::new(0),
        meta_lock: tokio::sync::Mutex::new(()),
        unkept: std::sync::OnceLock::new(),
    })
}

/// Ids a process writing to the store meanwhile may still take after the
/// highest one seen: 2^32 fills.
const OTHERS_ID_ROOM: u64 = 1 << 32;

/// The first entry id of this process: above every id seen (on disk and in
/// the temp folders), and at least the time in microseconds. While another
/// process writes to the store, above the ids it may still take too, so
/// that the two never meet whatever their clocks did (a wall clock stepped
/// back between their starts).
fn next_id(max_id: u64, now_micros: u64, others_writing: bool) -> u64 {
    let room = if others_writing { OTHERS_ID_ROOM } else { 1 };
    max_id.saturating_add(room).max(now_micros)
}

/// What `clean_tmp` found.
struct TmpScan {
    /// Entries removed.
    removed: u64,
    /// The highest write id seen, removed or not.
    max_id: u64,
    /// Another running process writes temp files here (a graceful upgrade
    /// in progress): its commits may be half done.
    others_writing: bool,
}

/// The write id of a temp file name (`<16 hex>.body|.meta`).
fn tmp_id(path: &Path) -> Option<u64> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| u64::from_str_radix(s, 16).ok())
}

/// Empties `tmp/` of the fills and rewrites that never finished: loose
/// files, and the folders of processes that no longer run. The folder of a
/// process still running (the one handing over in a graceful upgrade) is
/// kept, and its ids counted.
fn clean_tmp(tmp: &Path) -> Result<TmpScan, StoreError> {
    let mut scan = TmpScan {
        removed: 0,
        max_id: 0,
        others_writing: false,
    };
    for entry in fs::read_dir(tmp).map_err(io_err("cannot list", tmp))? {
        let entry = entry.map_err(io_err("cannot list", tmp))?;
        let path = entry.path();
        if path.is_dir() {
            let ids = fs::read_dir(&path)
                .map(|d| d.flatten().filter_map(|e| tmp_id(&e.path())).max())
                .ok()
                .flatten();
            scan.max_id = scan.max_id.max(ids.unwrap_or(0));
            if super::files::tmp_in_use(&path) {
                scan.others_writing = true;
                continue;
            }
        } else if let Some(id) = tmp_id(&path) {
            scan.max_id = scan.max_id.max(id);
        }
        let res = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            remove_quietly(&path)
        };
        match res {
            Ok(()) => scan.removed += 1,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cache store: cannot remove temp file")
            }
        }
    }
    Ok(scan)
}

/// How long a body without its meta file may be a commit of another
/// process in progress (between its two renames) rather than a leftover.
const COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a body file without meta is to be left alone: another process
/// writes to the store, and the body is recent enough to be its commit
/// under way. Its next start deletes it if it stays alone.
fn maybe_committing(body: &Path, others_writing: bool) -> bool {
    others_writing
        && fs::metadata(body)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < COMMIT_WINDOW)
}

/// Reads a meta file, refusing anything larger than `MAX_META_LEN`. Stops
/// at the length the file declares: one `read` for a typical header.
fn read_meta(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        if let Some(declared) = format::meta_declared_len(&buf[..filled]) {
            if declared > MAX_META_LEN {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "meta file too large",
                ));
            }
            if filled >= declared {
                break;
            }
            buf.resize(declared.max(buf.len()), 0);
        } else if filled == buf.len() {
            break;
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Why an object was not kept.
enum Reject {
    Io(io::Error),
    Decode(DecodeError),
    Mismatch(&'static str),
}

fn validate(
    dir: &Path,
    name_key: &HashBinary,
    name_id: u64,
    meta_name: &str,
    body_size: Option<u64>,
) -> Result<Complete, Reject> {
    let bytes = read_meta(&dir.join(meta_name)).map_err(Reject::Io)?;
    let header = format::decode_meta(&bytes).map_err(Reject::Decode)?;
    if header.entry_id != name_id {
        return Err(Reject::Mismatch("entry id differs from the file name"));
    }
    let variance = header.variance;
    let compact_hash = pingora_cache::key::CompactCacheKey {
        primary: header.primary_bin,
        variance: variance.map(Box::new),
        user_tag: Box::from(""),
    }
    .combined_bin();
    if &compact_hash != name_key {
        return Err(Reject::Mismatch("key hash differs from the file name"));
    }
    match body_size {
        None => return Err(Reject::Mismatch("body file missing")),
        Some(size) if Some(size) != header.body_len.checked_add(BODY_PREAMBLE_LEN) => {
            return Err(Reject::Mismatch(
                "body file size differs from the recorded length",
            ));
        }
        Some(_) => {}
    }
    Ok(Complete::from_header(*name_key, header, bytes.len() as u64))
}

/// The files of one object found in a shard.
#[derive(Default)]
struct Stem {
    /// Name of the meta file.
    meta: Option<String>,
    /// The body file: present, with its size if `stat` worked.
    body: Option<Option<u64>>,
}

fn scan_shard(first: u8, dir: &PathBuf, others_writing: bool) -> ShardScan {
    let mut out = ShardScan::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cache store: cannot list shard");
            return out;
        }
    };
    let mut stems: HashMap<(HashBinary, u64), Stem> = HashMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let parsed = name
            .to_str()
            .and_then(layout::parse_object_name)
            .filter(|(key, _, _)| key[0] == first);
        let Some((key, id, kind)) = parsed else {
            tracing::warn!(path = %entry.path().display(), "cache store: removing unknown file");
            out.discarded += 1;
            let _ = remove_quietly(&entry.path());
            continue;
        };
        let slot = stems.entry((key, id)).or_default();
        match kind {
            FileKind::Meta => slot.meta = name.to_str().map(str::to_owned),
            FileKind::Body => slot.body = Some(entry.metadata().ok().map(|m| m.len())),
        }
    }
    for ((key, id), Stem { meta, body }) in stems {
        out.max_id = out.max_id.max(id);
        let rejected = match &meta {
            None if maybe_committing(
                &dir.join(format!("{}.{}", Layout::stem(&key, id), layout::BODY_EXT)),
                others_writing,
            ) =>
            {
                continue;
            }
            None => Some(Reject::Mismatch("body without meta file")),
            Some(meta_name) => match validate(dir, &key, id, meta_name, body.flatten()) {
                Ok(c) => {
                    out.objects.push(c);
                    None
                }
                Err(r) => Some(r),
            },
        };
        let Some(reject) = rejected else { continue };
        match &reject {
            Reject::Decode(DecodeError::OtherVersion(v)) => {
                out.other_version += 1;
                tracing::debug!(
                    version = v,
                    id,
                    "cache store: discarding object of another format version"
                );
            }
            Reject::Decode(e) => {
                tracing::warn!(error = %e, id, "cache store: discarding invalid object")
            }
            Reject::Io(e) => {
                tracing::warn!(error = %e, id, "cache store: discarding unreadable object")
            }
            Reject::Mismatch(why) => {
                tracing::warn!(why, id, "cache store: discarding invalid object")
            }
        }
        for (present, kind) in [
            (meta.is_some(), FileKind::Meta),
            (body.is_some(), FileKind::Body),
        ] {
            if present {
                out.discarded += 1;
                let ext = match kind {
                    FileKind::Meta => layout::META_EXT,
                    FileKind::Body => layout::BODY_EXT,
                };
                let path = dir.join(format!("{}.{ext}", Layout::stem(&key, id)));
                if let Err(e) = remove_quietly(&path) {
                    tracing::warn!(error = %e, path = %path.display(), "cache store: cannot remove");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lone_body_is_left_alone_only_while_another_process_writes_and_only_when_recent() {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body");
        let file = fs::File::create(&body).unwrap();
        assert!(maybe_committing(&body, true));
        assert!(!maybe_committing(&body, false));
        file.set_modified(SystemTime::now() - COMMIT_WINDOW - Duration::from_secs(1))
            .unwrap();
        assert!(!maybe_committing(&body, true));
        assert!(!maybe_committing(&dir.path().join("missing"), true));
    }

    #[test]
    fn ids_stay_above_those_of_a_process_still_writing() {
        assert_eq!(next_id(10, 1_000, false), 1_000);
        assert_eq!(next_id(5_000, 1_000, false), 5_001);
        // A clock stepped back: the other process's ids go on from 5_000.
        assert_eq!(next_id(5_000, 1_000, true), 5_000 + OTHERS_ID_ROOM);
        assert_eq!(next_id(u64::MAX - 1, 0, true), u64::MAX);
    }

    #[test]
    fn temp_file_names_give_their_write_id() {
        assert_eq!(tmp_id(Path::new("tmp/x/00000000000000ff.body")), Some(255));
        assert_eq!(tmp_id(Path::new("tmp/x/lock")), None);
    }
}
