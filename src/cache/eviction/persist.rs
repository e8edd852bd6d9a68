//! The frequency sketch on disk, so that popularity survives a restart:
//! `save` writes it to `dir/`[`SKETCH_FILE`] through a temporary file and a
//! rename; `load` restores it when the file exists and was written for the
//! same width. The tracked entries are not saved: the disk scan at start-up
//! is the source of truth.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use pingora_error::{Error, ErrorType, OrErr, Result};

use super::SKETCH_FILE;
use super::manager::Manager;

impl Manager {
    /// Writes the sketch to `dir_path` (Pingora's `save`).
    pub(super) async fn save_sketch(&self, dir_path: &str) -> Result<()> {
        let bytes = self.lock().sketch.to_bytes();
        let dir = dir_path.to_owned();
        tokio::task::spawn_blocking(move || write_atomically(Path::new(&dir), &bytes))
            .await
            .or_err(ErrorType::InternalError, "sketch save task failed")?
    }

    /// Restores the sketch from `dir_path`; a missing file is not an error
    /// (Pingora's `load`).
    pub(super) async fn load_sketch(&self, dir_path: &str) -> Result<()> {
        let path = Path::new(dir_path).join(SKETCH_FILE);
        let read = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .or_err(ErrorType::InternalError, "sketch load task failed")?;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).or_err_with(ErrorType::InternalError, || {
                    format!("reading {dir_path}/{SKETCH_FILE}")
                });
            }
        };
        // Parse outside the lock, then swap the counters in.
        let mut sketch = self.lock().sketch.clone();
        sketch.restore(&bytes).map_err(|e| {
            Error::explain(
                ErrorType::InternalError,
                format!("{dir_path}/{SKETCH_FILE}: {e}"),
            )
        })?;
        self.lock().sketch = sketch;
        Ok(())
    }
}

/// Write `bytes` to `dir/SKETCH_FILE` through a temporary file and a rename.
fn write_atomically(dir: &Path, bytes: &[u8]) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).or_err_with(ErrorType::InternalError, || {
        format!("creating {}", dir.display())
    })?;
    let tmp = dir.join(format!(
        "{SKETCH_FILE}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, dir.join(SKETCH_FILE)))
        .or_err_with(ErrorType::InternalError, || {
            format!("writing {}", dir.join(SKETCH_FILE).display())
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
