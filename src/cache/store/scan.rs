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

pub fn open(config: StoreConfig) -> Result<DiskStore, StoreError> {
    let started = std::time::Instant::now();
    let layout = Layout::new(config.dir.clone());
    for dir in [layout.root().to_path_buf(), layout.objects(), layout.tmp()] {
        fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    }
    let (temp_removed, max_tmp_id) = clean_tmp(&layout.tmp())?;

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
                    let scan = scan_shard(first, &dir);
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
        let _ = super::files::remove_object(&layout, &key, id);
    }

    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    let next_id = max_id.saturating_add(1).max(now_micros);

    tracing::info!(
        dir = %config.dir.display(),
        objects = index.objects(),
        bytes = index.bytes(),
        discarded,
        other_version,
        temp_removed,
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
        counters,
        meta_lock: tokio::sync::Mutex::new(()),
    })
}

/// Deletes everything in `tmp/` (fills and rewrites that never finished).
/// Returns the count and the highest write id seen.
fn clean_tmp(tmp: &Path) -> Result<(u64, u64), StoreError> {
    let mut removed = 0;
    let mut max_id = 0;
    for entry in fs::read_dir(tmp).map_err(io_err("cannot list", tmp))? {
        let entry = entry.map_err(io_err("cannot list", tmp))?;
        let path = entry.path();
        if let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        {
            max_id = max_id.max(id);
        }
        let res = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            remove_quietly(&path)
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cache store: cannot remove temp file")
            }
        }
    }
    Ok((removed, max_id))
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

fn scan_shard(first: u8, dir: &PathBuf) -> ShardScan {
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
