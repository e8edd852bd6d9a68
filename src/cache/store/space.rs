//! Free space of the filesystem holding the store (`statvfs`, through
//! `rustix`). On Linux only; elsewhere the check is skipped (`None`).

#![forbid(unsafe_code)]

use std::io;
use std::path::Path;

/// Bytes available to unprivileged users on the filesystem of `path`, or
/// `None` where this is not supported.
pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
    imp::available_bytes(path)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::path::Path;

    pub fn available_bytes(path: &Path) -> io::Result<Option<u64>> {
        let stat = rustix::fs::statvfs(path)?;
        let unit = if stat.f_frsize != 0 {
            stat.f_frsize
        } else {
            stat.f_bsize
        };
        Ok(Some(stat.f_bavail.saturating_mul(unit)))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::path::Path;

    pub fn available_bytes(_path: &Path) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_some_space_for_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path()).unwrap();
        if cfg!(target_os = "linux") {
            assert!(free.unwrap() > 0);
        }
    }

    #[test]
    fn missing_path_is_an_error_not_a_panic() {
        assert!(available_bytes(Path::new("/nonexistent/cdn-node/store")).is_err());
    }
}
