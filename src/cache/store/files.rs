//! Blocking file operations (run them on `spawn_blocking`): creating a fill's
//! temp file, committing a fill, rewriting a header, deleting an object.

use super::layout::{FileKind, LOCK_FILE, Layout, PROBE_FILE, fsync_dir, remove_quietly};
use super::{format, space};
use pingora_cache::key::HashBinary;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Creates the temp body file of fill `id` holding the body preamble, open
/// for reading and writing. With the body's length known (`reserve`), the
/// disk space of the whole file is reserved first, so that the fill never
/// runs out of space halfway: a filesystem without that much room fails
/// here with `StorageFull`. Filesystems that cannot reserve space are
/// written without a reservation.
pub fn create_fill_file(
    layout: &Layout,
    id: u64,
    key: &HashBinary,
    reserve: Option<u64>,
) -> io::Result<File> {
    let path = layout.tmp_file(id, FileKind::Body);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let prepared = (|| {
        if let Some(len) = reserve {
            space::reserve(&file, format::BODY_PREAMBLE_LEN.saturating_add(len))?;
        }
        file.write_all_at(&format::encode_body_preamble(id, key), 0)
    })();
    if let Err(e) = prepared {
        let _ = remove_quietly(&path);
        return Err(e);
    }
    Ok(file)
}

/// Makes this process's folder under `tmp/` and locks its lock file, so
/// that another process opening the store meanwhile (a graceful upgrade)
/// leaves its temp files alone. The lock lasts as long as the returned
/// file is open (and the process alive).
pub fn claim_own_tmp(layout: &Layout) -> io::Result<File> {
    let dir = layout.own_tmp();
    fs::create_dir_all(&dir)?;
    let path = dir.join(LOCK_FILE);
    File::create(&path)?;
    // Held through a read-only handle: a file open for writing would keep
    // the filesystem from being remounted read-only.
    let lock = File::open(&path)?;
    space::lock(&lock)?;
    Ok(lock)
}

/// Whether a temp folder of another process is in use: its lock file is
/// locked by a process that is still running. A folder without a lock
/// file, or whose lock this process can take, is not.
pub fn tmp_in_use(dir: &std::path::Path) -> bool {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
    {
        Ok(file) => space::locked_elsewhere(&file),
        Err(_) => false,
    }
}

/// Creates and removes a file in this process's temp folder: whether the
/// store can be written at all (missing folder, read-only filesystem).
pub fn probe_writable(layout: &Layout) -> io::Result<()> {
    let path = layout.own_tmp().join(PROBE_FILE);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    fs::remove_file(&path)
}

/// Writes `bytes` to a new file at `path`, fsynced when `durable`.
fn write_new(path: &std::path::Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    if durable { f.sync_all() } else { Ok(()) }
}

/// Makes fill `id` a complete object: write the meta file, rename the body
/// then the meta into place (the meta rename is the commit point). When
/// `durable`, the body and the meta are fsynced before their renames and
/// the directory after them, so that the object outlives a power loss;
/// otherwise the filesystem writes them back in its own time (FORMAT.md:
/// what start-up finds is checked either way). On error nothing of the fill
/// is left behind.
pub fn commit_fill(
    layout: &Layout,
    id: u64,
    key: &HashBinary,
    body: &File,
    meta: &[u8],
    durable: bool,
) -> io::Result<()> {
    let tmp_body = layout.tmp_file(id, FileKind::Body);
    let tmp_meta = layout.tmp_file(id, FileKind::Meta);
    let obj_body = layout.object_file(key, id, FileKind::Body);
    let obj_meta = layout.object_file(key, id, FileKind::Meta);
    let result = (|| {
        if durable {
            body.sync_all()?;
        }
        write_new(&tmp_meta, meta, durable)?;
        fs::create_dir_all(layout.shard(key[0]))?;
        fs::rename(&tmp_body, &obj_body)?;
        fs::rename(&tmp_meta, &obj_meta)?;
        if durable {
            fsync_dir(&layout.shard(key[0]))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = remove_quietly(&obj_meta);
        let _ = remove_quietly(&obj_body);
        let _ = remove_quietly(&tmp_meta);
        let _ = remove_quietly(&tmp_body);
    }
    result
}

/// Replaces the meta file of object `id` atomically: a new file written
/// under `tmp/<write_id>.meta` and renamed over the old one (when
/// `durable`, fsynced before and the directory after). The body is not
/// touched.
pub fn replace_meta(
    layout: &Layout,
    write_id: u64,
    key: &HashBinary,
    id: u64,
    meta: &[u8],
    durable: bool,
) -> io::Result<()> {
    let tmp_meta = layout.tmp_file(write_id, FileKind::Meta);
    let result = (|| {
        write_new(&tmp_meta, meta, durable)?;
        fs::rename(&tmp_meta, layout.object_file(key, id, FileKind::Meta))?;
        if durable {
            fsync_dir(&layout.shard(key[0]))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = remove_quietly(&tmp_meta);
    }
    result
}

/// Deletes both files of an object: the meta first, so a crash in between
/// leaves an orphan body (removed at the next open), never a meta without
/// its body being served. When `durable` (a purge), the directory is
/// fsynced: a purged object never comes back after a power loss.
pub fn remove_object(layout: &Layout, key: &HashBinary, id: u64, durable: bool) -> io::Result<()> {
    remove_quietly(&layout.object_file(key, id, FileKind::Meta))?;
    remove_quietly(&layout.object_file(key, id, FileKind::Body))?;
    if durable {
        fsync_dir(&layout.shard(key[0]))?;
    }
    Ok(())
}

/// Opens the body of a complete object and checks it belongs to entry `id`
/// and holds `body_len` bytes.
pub fn open_body(layout: &Layout, key: &HashBinary, id: u64, body_len: u64) -> io::Result<File> {
    let file = File::open(layout.object_file(key, id, FileKind::Body))?;
    let len = file.metadata()?.len();
    if len != format::BODY_PREAMBLE_LEN + body_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("body file is {len} bytes, expected preamble + {body_len}"),
        ));
    }
    let mut preamble = [0u8; format::BODY_PREAMBLE_LEN as usize];
    file.read_exact_at(&mut preamble, 0)?;
    format::check_body_preamble(&preamble, id, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(file)
}
