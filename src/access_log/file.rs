//! The access log file: lines are appended under a lock, one write each, and
//! the file is opened again on SIGUSR1 so that log rotation needs no
//! restart (`mv access.log access.log.1`, then `kill -USR1`: lines written
//! before the signal are in the moved file, every later line in the new
//! one).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open(path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends whole lines in one write (the caller ends them with `\n`).
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line)
    }

    /// Opens the path again; later lines go to the file found there now.
    /// On failure the old file keeps receiving lines.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// Reopens the access log file on SIGUSR1.
pub struct LogReopener {
    pub file: Arc<LogFile>,
    /// Its buffered lines go to the file open before the signal.
    pub log: crate::access_log::AccessLog,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[async_trait]
impl BackgroundService for LogReopener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGUSR1 handler: the access log file cannot be reopened");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = usr1.recv() => {}
            }
            self.log.flush();
            let file = self.file.path().display();
            let result = match self.file.reopen() {
                Ok(()) => {
                    tracing::info!(%file, "access log reopened");
                    "ok"
                }
                Err(e) => {
                    tracing::warn!(%file, error = %e, "access log not reopened; still writing to the old file");
                    "error"
                }
            };
            self.metrics
                .ops
                .access_log_reopens
                .with_label_values(&[result])
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let log = LogFile::open(&path).unwrap();
        log.write_line(b"one\n").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        log.write_line(b"two\n").unwrap();
        log.reopen().unwrap();
        log.write_line(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("access.log");
        let log = LogFile::open(&path).unwrap();
        let moved = dir.path().join("moved");
        std::fs::rename(&sub, &moved).unwrap();
        assert!(log.reopen().is_err());
        log.write_line(b"kept\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("access.log")).unwrap(),
            "kept\n"
        );
    }
}
