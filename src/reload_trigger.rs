//! When to look again at files that may change under a running node (keys,
//! the denylist, certificates): on an interval, at once on SIGHUP, or when
//! the caller's own event fires.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora::server::ShutdownWatch;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Interval, MissedTickBehavior};

/// Why [`ReloadTrigger::next`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The interval passed, or the caller's event fired: reload what changed.
    Poll,
    /// SIGHUP: reload everything.
    Hangup,
}

/// How many triggers have been set up in this process (listening for SIGHUP,
/// or polling only where that failed). Until every reloader has one, a
/// SIGHUP could end the process or go unseen, so `/readyz` waits for them.
static SET_UP: AtomicUsize = AtomicUsize::new(0);

/// The number of triggers set up so far.
pub fn set_up() -> usize {
    SET_UP.load(Ordering::Acquire)
}

pub struct ReloadTrigger {
    tick: Interval,
    hangup: Option<Signal>,
}

impl ReloadTrigger {
    /// `what` names the files in the warning logged when SIGHUP cannot be
    /// listened for (they are still polled).
    pub fn new(every: Duration, what: &str) -> ReloadTrigger {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; {what} are still polled");
                None
            }
        };
        SET_UP.fetch_add(1, Ordering::Release);
        ReloadTrigger { tick, hangup }
    }

    /// Waits for the next reason to look; `None` once the server shuts down.
    pub async fn next(
        &mut self,
        shutdown: &mut ShutdownWatch,
        event: impl Future<Output = ()>,
    ) -> Option<Wake> {
        let hangup = async {
            match self.hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => None,
            _ = self.tick.tick() => Some(Wake::Poll),
            Some(()) = hangup => Some(Wake::Hangup),
            () = event => Some(Wake::Poll),
        }
    }
}
