//! A wall clock the test moves under the running node: the node runs with
//! libfaketime preloaded, reading its offset from a file the test rewrites
//! (`+0`, `-1h`, `+1h`). Only the wall clock moves (`CLOCK_REALTIME`, what
//! `SystemTime` reads); the monotonic clock is left alone, as a real clock
//! step leaves it.

use std::path::{Path, PathBuf};

use super::tools;

/// Where Debian and Ubuntu put the multithreaded libfaketime.
const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
];
const LIBRARY: &str = "libfaketimeMT.so.1";

pub struct FakeClock {
    dir: tempfile::TempDir,
    library: PathBuf,
}

impl FakeClock {
    /// A clock at the real time for now; `None`, after a `skipped:` line,
    /// where libfaketime is not installed (a failure under CI, where
    /// deploy/setup.sh installs it).
    pub fn new(what: &str) -> Option<FakeClock> {
        if !tools::present_or_skip("faketime", what) {
            return None;
        }
        let library = LIBRARY_DIRS
            .iter()
            .map(|d| Path::new(d).join(LIBRARY))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!("faketime is installed but {LIBRARY} is in none of {LIBRARY_DIRS:?}")
            });
        let clock = FakeClock {
            dir: tempfile::tempdir().expect("tempdir"),
            library,
        };
        clock.set("+0");
        Some(clock)
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("faketime.rc")
    }

    /// The environment that puts the node on this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", self.library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file().display().to_string()),
            // The offset is read again at most a second after a change.
            ("FAKETIME_CACHE_DURATION", "1".to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Moves the node's wall clock to the real time plus `offset`, in
    /// libfaketime's relative form (`+0`, `-1h`, `+3600`).
    pub fn set(&self, offset: &str) {
        // Written aside and renamed, so that it is never read half written.
        let tmp = self.dir.path().join("faketime.rc.new");
        std::fs::write(&tmp, format!("{offset}\n")).expect("write the clock offset");
        std::fs::rename(&tmp, self.file()).expect("move the clock offset");
    }
}
