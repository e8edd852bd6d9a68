//! The node's own ends of the process, where Pingora's would wait too long or
//! not at all.
//!
//! SIGINT, the fast shutdown: the buffered access log lines are written and
//! the process exits at once. Pingora 0.9.1 handles SIGINT by shutting its
//! runtimes down with no grace. With its per-thread runtimes
//! (`work_stealing: false`, which this node uses), a listener's accept loop
//! can run on another thread than the runtime its socket belongs to; when
//! that runtime is gone first, the loop spins on "context is being shutdown"
//! errors without yielding and its thread is never joined: the process
//! hangs. A fast shutdown drops every connection anyway, so the node does not
//! wait for Pingora's: a thread of its own (outside the runtimes being torn
//! down) waits for SIGINT, flushes the access log and exits.
//!
//! SIGTERM (graceful stop) and SIGQUIT (graceful upgrade) stay Pingora's up
//! to its broadcast of the graceful shutdown: on SIGTERM at once, on SIGQUIT
//! once the listening sockets were handed over (and 5 s more). Listeners stop
//! accepting, idle kept-alive connections are closed, requests in flight go
//! on. Pingora then sleeps `server.grace_period_seconds` whatever happens,
//! 300 s by default, even with nothing left to serve. [`ExitWhenIdle`] ends
//! the wait instead: once every listener's accept loop has ended and the
//! connections it accepted are counted, no connection is open, the cache's
//! last fills are committed, and the background services that write
//! something at shutdown
//! ([`MustFinish`]) are done, it writes out the access log and exits. The
//! grace period stays the bound: if it ends first, Pingora's own shutdown
//! goes on and drops what is left.
//!
//! The accept loops come first because Pingora's loop spawns a task for a
//! connection it accepts and the connection is counted only when that task
//! first runs: a connection accepted as the shutdown came could otherwise
//! be uncounted when the count is read as zero, and be reset (its request
//! unread) or cut mid-answer by the exit.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use crate::access_log::AccessLog;

/// Starts the SIGINT thread. A background service so that it starts after
/// Pingora has daemonized (threads started before the fork are lost).
pub struct FastExit {
    pub log: AccessLog,
}

#[async_trait]
impl BackgroundService for FastExit {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let log = self.log.clone();
        let spawned = std::thread::Builder::new()
            .name("fast exit".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!(error = %e, "no SIGINT thread: a fast shutdown is Pingora's");
                        return;
                    }
                };
                let got = rt.block_on(async {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::interrupt()) {
                        Ok(mut s) => s.recv().await.is_some(),
                        Err(_) => false,
                    }
                });
                if got {
                    tracing::info!("SIGINT: exiting now");
                    log.flush();
                    std::process::exit(0);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no SIGINT thread: a fast shutdown is Pingora's");
        }
    }
}

/// The background services the graceful stop waits for before the process
/// exits: how many have not returned yet.
#[derive(Clone)]
pub struct Finishing(Arc<watch::Sender<usize>>);

impl Default for Finishing {
    fn default() -> Self {
        Finishing(Arc::new(watch::Sender::new(0)))
    }
}

impl Finishing {
    /// `service`, counted until its `start` returns: it must return once
    /// its work at shutdown is done (the access log's last flush, the
    /// eviction state saved).
    pub fn must_finish<S>(&self, service: S) -> MustFinish<S> {
        self.0.send_modify(|n| *n += 1);
        MustFinish {
            service,
            finishing: self.clone(),
        }
    }

    /// Counts the caller until the guard returned is dropped: a listener
    /// until its accept loops have ended and what they accepted is counted.
    pub fn enter(&self) -> Entered {
        self.0.send_modify(|n| *n += 1);
        Entered(self.clone())
    }

    /// Resolves once every service counted has returned.
    async fn all_done(&self) {
        let mut pending = self.0.subscribe();
        // The sender lives in `self`: the channel cannot close while waiting.
        let _ = pending.wait_for(|n| *n == 0).await;
    }
}

/// One part the graceful stop waits for, until dropped (see
/// [`Finishing::enter`]).
pub struct Entered(Finishing);

impl Drop for Entered {
    fn drop(&mut self) {
        (self.0).0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A background service the graceful stop waits for (see
/// [`Finishing::must_finish`]).
pub struct MustFinish<S> {
    service: S,
    finishing: Finishing,
}

#[async_trait]
impl<S: BackgroundService + Send + Sync> BackgroundService for MustFinish<S> {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.service.start(shutdown).await;
        self.finishing.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Ends a graceful stop or the old process's part of a graceful upgrade as
/// soon as nothing is left to serve (see the module's documentation).
pub struct ExitWhenIdle {
    pub log: AccessLog,
    /// What must come to zero, in this order: the connections open across
    /// every client listener, those on the peer listener, and the cache's
    /// commits under way (but for slices read ahead, none starts once no
    /// connection is left).
    pub connections: Vec<watch::Receiver<usize>>,
    /// The listeners whose accept loops are still running (see
    /// [`Finishing::enter`]).
    pub accepting: Finishing,
    pub finishing: Finishing,
}

#[async_trait]
impl BackgroundService for ExitWhenIdle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // SIGINT never broadcasts: FastExit handles it.
        if shutdown.wait_for(|stopping| *stopping).await.is_err() {
            return;
        }
        let started = Instant::now();
        // No connection is accepted after this, and every one accepted
        // before is counted.
        self.accepting.all_done().await;
        let mut connections = self.connections.clone();
        let open: usize = connections.iter_mut().map(|c| *c.borrow_and_update()).sum();
        tracing::info!(
            connections = open,
            "graceful stop: no longer accepting; exiting once the open connections are done \
             (at most server.grace_period_seconds)"
        );
        // One count after the other: none rises again once at zero.
        for count in &mut connections {
            if count.wait_for(|n| *n == 0).await.is_err() {
                // The connection table is gone: Pingora's shutdown decides.
                return;
            }
        }
        self.finishing.all_done().await;
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "graceful stop: no connection left; exiting"
        );
        self.log.flush();
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns at shutdown once its release is given.
    struct Returns(watch::Receiver<bool>);

    #[async_trait]
    impl BackgroundService for Returns {
        async fn start(&self, mut shutdown: ShutdownWatch) {
            let _ = shutdown.wait_for(|s| *s).await;
            let _ = self.0.clone().wait_for(|go| *go).await;
        }
    }

    #[tokio::test]
    async fn finishing_waits_for_every_service_counted() {
        let finishing = Finishing::default();
        let (stop, shutdown) = watch::channel(false);
        let releases: Vec<watch::Sender<bool>> =
            (0..2).map(|_| watch::Sender::new(false)).collect();
        let mut tasks = Vec::new();
        for release in &releases {
            let service = finishing.must_finish(Returns(release.subscribe()));
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move { service.start(shutdown).await }));
        }
        let done = {
            let finishing = finishing.clone();
            tokio::spawn(async move { finishing.all_done().await })
        };
        stop.send_replace(true);
        releases[0].send_replace(true);
        tasks.remove(0).await.unwrap();
        tokio::task::yield_now().await;
        assert!(!done.is_finished(), "one service has not returned");
        releases[1].send_replace(true);
        tasks.remove(0).await.unwrap();
        done.await.unwrap();
        // Nothing counted: done at once.
        Finishing::default().all_done().await;
    }
}
