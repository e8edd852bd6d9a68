//! One JSON line per request. Tokens never appear: the logged target has
//! every token parameter's value replaced, and no header is logged.
//!
//! Lines are gathered in buffers and written out when one is full and at
//! least every flush interval (like nginx's `access_log ... buffer= flush=`),
//! so that a busy node does not pay a write per request; at shutdown the
//! buffers are written out and later lines go out one by one.
//!
//! Each worker thread gathers into a buffer of its own (as each nginx worker
//! does): threads never wait on each other to log, and only take turns to
//! write a full buffer out. Lines of one thread keep their order; lines of
//! different threads are not sorted by time.

pub mod file;
mod line;
mod request;
mod time;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub use line::{Client, Entry};
pub use request::Finished;
pub use time::rfc3339;

/// Writes entries to stdout when enabled, and to a file when one is set.
/// Cloning shares the buffer.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

/// Buffers: one per worker thread as long as there are no more threads than
/// this.
const STRIPES: usize = 8;

/// A thread's buffer, alone on its cache lines (two, for the adjacent-line
/// prefetcher): threads filling their own never write to a shared line.
#[repr(align(128))]
struct Stripe(Mutex<Vec<u8>>);

struct Inner {
    stdout: bool,
    file: Option<Arc<file::LogFile>>,
    /// Whole lines not written out yet, by thread.
    buffers: [Stripe; STRIPES],
    /// Taken while writing a buffer out, so that writes never interleave.
    out: Mutex<()>,
    /// A buffer is written out once it holds this many bytes (0: every line).
    limit: usize,
    /// Set at shutdown: every line is written at once from then on.
    unbuffered: AtomicBool,
}

/// The buffer of the calling thread: threads take the stripes in turn.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl AccessLog {
    /// Lines go to stdout when `stdout`, and to `file` (`log.access_file`)
    /// when given; `buffer` bytes are gathered (per thread) before a write
    /// (0: a write per line).
    pub fn new(stdout: bool, file: Option<Arc<file::LogFile>>, buffer: usize) -> AccessLog {
        AccessLog {
            inner: Arc::new(Inner {
                stdout,
                file,
                buffers: std::array::from_fn(|_| Stripe(Mutex::new(Vec::new()))),
                out: Mutex::new(()),
                limit: buffer,
                unbuffered: AtomicBool::new(false),
            }),
        }
    }

    fn enabled(&self) -> bool {
        self.inner.stdout || self.inner.file.is_some()
    }

    fn lock(&self, stripe: usize) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.inner.buffers[stripe]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self, entry: &Entry<'_>) {
        if !self.enabled() {
            return;
        }
        let mut buffer = self.lock(stripe());
        if buffer.capacity() == 0 {
            buffer.reserve(self.inner.limit);
        }
        entry.write_line(&mut buffer);
        if buffer.len() >= self.inner.limit || self.inner.unbuffered.load(Ordering::Relaxed) {
            self.write_out(&mut buffer);
        }
    }

    /// Writes out the lines gathered so far.
    pub fn flush(&self) {
        if self.enabled() {
            for stripe in 0..STRIPES {
                self.write_out(&mut self.lock(stripe));
            }
        }
    }

    /// Under the buffer's lock, so that a thread's lines keep their order,
    /// and the writers' turn. Whole lines in one write each, so that they
    /// never interleave with other writers.
    fn write_out(&self, buffer: &mut Vec<u8>) {
        if buffer.is_empty() {
            return;
        }
        let _turn = self.inner.out.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.stdout {
            let _ = std::io::stdout().lock().write_all(buffer);
        }
        if let Some(file) = &self.inner.file
            && let Err(e) = file.write_line(buffer)
        {
            tracing::warn!(error = %e, "access log lines not written to the file");
        }
        buffer.clear();
    }
}

/// Writes the access log's buffer out every `interval`, and at shutdown.
pub struct Flusher {
    pub log: AccessLog,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for Flusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let first = tokio::time::Instant::now() + self.interval;
        let mut tick = tokio::time::interval_at(first, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.log.flush(),
            }
        }
        // Requests finishing during the graceful shutdown still log.
        self.log.inner.unbuffered.store(true, Ordering::Relaxed);
        self.log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(target: &str) -> Entry<'_> {
        Entry {
            time: UNIX_EPOCH,
            client: None,
            method: "GET",
            target,
            token_sources: &[],
            status: 200,
            bytes: 1,
            duration_ms: 0.5,
            cache: "hit",
            origin_status: None,
            origin_ms: None,
            origin_error: None,
            s3_code: None,
            auth: "ok",
            sub: Some("alice"),
        }
    }

    /// A log writing to a file in a new folder (kept while the folder is),
    /// gathering `buffer` bytes.
    fn to_file(buffer: usize) -> (tempfile::TempDir, std::path::PathBuf, AccessLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let file = Arc::new(file::LogFile::open(&path).unwrap());
        (dir, path, AccessLog::new(false, Some(file), buffer))
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn lines_wait_for_a_full_buffer_or_a_flush() {
        let (_dir, path, log) = to_file(4096);
        log.write(&entry("/a"));
        log.write(&entry("/b"));
        assert!(lines(&path).is_empty(), "written before the buffer filled");
        log.flush();
        let paths: Vec<_> = lines(&path).iter().map(|l| l["path"].clone()).collect();
        assert_eq!(paths, ["/a", "/b"]);
        // A full buffer goes out by itself, whole lines only.
        let long = "/x".repeat(1000);
        for _ in 0..3 {
            log.write(&entry(&long));
        }
        assert_eq!(lines(&path).len(), 2 + 2, "the third line waits");
        log.flush();
        assert_eq!(lines(&path).len(), 2 + 3);
    }

    #[test]
    fn threads_log_without_losing_or_breaking_a_line() {
        let (_dir, path, log) = to_file(2048);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for n in 0..500 {
                        log.write(&entry(&format!("/t{t}/{n}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.flush();
        let lines = lines(&path);
        assert_eq!(lines.len(), 4 * 500);
        for t in 0..4 {
            // Each thread's lines in the order it wrote them.
            let mine: Vec<String> = lines
                .iter()
                .filter_map(|l| l["path"].as_str())
                .filter(|p| p.starts_with(&format!("/t{t}/")))
                .map(str::to_owned)
                .collect();
            let want: Vec<String> = (0..500).map(|n| format!("/t{t}/{n}")).collect();
            assert_eq!(mine, want, "thread {t}");
        }
    }

    #[test]
    fn a_zero_buffer_writes_each_line() {
        let (_dir, path, log) = to_file(0);
        log.write(&entry("/a"));
        assert_eq!(lines(&path).len(), 1);
    }
}
