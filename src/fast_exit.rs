//! SIGINT, the fast shutdown: the buffered access log lines are written and
//! the process exits at once.
//!
//! Pingora 0.9.1 handles SIGINT by shutting its runtimes down with no grace.
//! With its per-thread runtimes (`work_stealing: false`, which this node
//! uses), a listener's accept loop can run on another thread than the
//! runtime its socket belongs to; when that runtime is gone first, the loop
//! spins on "context is being shutdown" errors without yielding and its
//! thread is never joined: the process hangs. A fast shutdown drops every
//! connection anyway, so the node does not wait for Pingora's: a thread of
//! its own (outside the runtimes being torn down) waits for SIGINT, flushes
//! the access log and exits. SIGTERM (graceful) and SIGQUIT (upgrade) stay
//! Pingora's.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

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
