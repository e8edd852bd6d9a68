//! What the node asks of the kernel for its whole process before it serves:
//! no transparent huge pages, and a file-descriptor table already sized for
//! its connections. Both remove stalls of a burst of new connections, which
//! a profile of the scheduler (`perf sched`) showed as the worker threads
//! spending tens of milliseconds in the kernel:
//!
//! - The allocator asks for huge pages for its arenas (`MADV_HUGEPAGE`), so
//!   the first touch of fresh heap zeroes 2 MiB at once, and memory given
//!   back and used again is faulted in again the same way. A burst of new
//!   connections (their buffers) then holds both worker threads in page
//!   faults back to back. The process opts out (`PR_SET_THP_DISABLE`): its
//!   faults are of 4 KiB pages; huge pages suit large long-lived heaps, not
//!   a proxy's churn of connection buffers.
//! - A file-descriptor table that fills is doubled, and in a process with
//!   several threads the kernel waits for an RCU grace period before the old
//!   table goes (milliseconds, in the thread that accepted). Holding one
//!   descriptor open near the top sizes the table once, at start-up; the
//!   table never shrinks, and a daemonised child copies it as it is.
//!
//! Each step is best effort: a kernel or a limit that refuses it leaves the
//! node as it would be without it, with a warning.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use rustix::io::{Errno, fcntl_dupfd_cloexec};
use rustix::process::{Resource, getrlimit};

/// Descriptors beyond the client connections: upstream connections, open
/// cache files, listeners, logs.
const HEADROOM: usize = 1024;

/// The descriptor that holds the table at its size, for the process's life.
static TOP: OnceLock<OwnedFd> = OnceLock::new();

/// Prepares the process for `max_connections` client connections.
pub fn prepare(max_connections: usize) {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "transparent huge pages could not be turned off for the process");
    }
    let soft = getrlimit(Resource::Nofile).current;
    let Some(top) = table_top(max_connections, soft) else {
        return;
    };
    match hold_at(top) {
        Ok(fd) => {
            let _ = TOP.set(fd);
        }
        Err(e) => {
            tracing::warn!(error = %e, top, "the descriptor table could not be sized at start-up");
        }
    }
}

/// The descriptor number to hold open: room for the connections and the
/// headroom, within the soft limit on open files (`None`: no room above the
/// first few descriptors to gain anything).
fn table_top(max_connections: usize, soft_limit: Option<u64>) -> Option<usize> {
    let wanted = max_connections.saturating_add(HEADROOM);
    let allowed = soft_limit
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX).saturating_sub(1))
        .unwrap_or(usize::MAX);
    let top = wanted.min(allowed);
    (top >= 256).then_some(top)
}

/// A descriptor numbered `top` or above (standard error duplicated, closed
/// on exec).
fn hold_at(top: usize) -> Result<OwnedFd, Errno> {
    fcntl_dupfd_cloexec(
        rustix::stdio::stderr(),
        i32::try_from(top).unwrap_or(i32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_connections_within_the_limit() {
        let cases = [
            // (max_connections, soft limit, top)
            (10_000, Some(1_048_576), Some(11_024)),
            (10_000, Some(20_000), Some(11_024)),
            (10_000, Some(8_000), Some(7_999)),
            (10_000, None, Some(11_024)),
            (100, Some(1_048_576), Some(1_124)),
            (10_000, Some(1_024), Some(1_023)),
            (10_000, Some(200), None),
            (usize::MAX, None, Some(usize::MAX)),
        ];
        for (max, soft, want) in cases {
            assert_eq!(table_top(max, soft), want, "{max} {soft:?}");
        }
    }

    #[test]
    fn a_descriptor_is_held_at_the_top() {
        let fd = hold_at(300).unwrap();
        assert!(std::os::fd::AsRawFd::as_raw_fd(&fd) >= 300);
    }
}
