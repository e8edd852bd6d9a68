//! The background task that keeps the token policy current without a restart: it reads the
//! denylist file and the key files again when they change (polled) or on SIGHUP, and
//! publishes the state as metrics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::auth::denylist::Reloaded;
use crate::auth::verifier::Verifier;
use crate::metrics::AuthPolicyMetrics;

/// How often files are looked at: a denylist change is effective within this (plus a
/// read), well inside a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct AuthReloader {
    pub verifier: Arc<Verifier>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AuthReloader {
    fn m(&self) -> &AuthPolicyMetrics {
        &self.metrics.auth_policy
    }

    /// One look at the files; `forced` (SIGHUP) reloads keys even when unchanged.
    async fn poll(&self, forced: bool) {
        match self.verifier.reload_denylist() {
            Reloaded::Unchanged => {}
            Reloaded::Changed => {
                tracing::info!("denylist reloaded");
                self.m().denylist_reloads.with_label_values(&["ok"]).inc();
            }
            Reloaded::Failed(message) => {
                tracing::warn!(%message, "denylist not reloaded; keeping the last good list");
                self.m()
                    .denylist_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
        for (source, result) in self.verifier.refresh_keys(forced).await {
            match &result {
                Ok(n) => tracing::info!(source, keys = n, "key set loaded"),
                Err(message) => {
                    tracing::warn!(source, %message, "key set not loaded; keeping the last good keys")
                }
            }
            let kind = if source.starts_with("http") {
                "url"
            } else {
                "file"
            };
            let label = if result.is_ok() { "ok" } else { "error" };
            self.m()
                .key_refreshes
                .with_label_values(&[kind, label])
                .inc();
        }
        self.publish();
    }

    fn publish(&self) {
        let m = self.m();
        m.denylist_entries.set(self.verifier.denylist_len() as i64);
        m.keys_loaded.set(self.verifier.keys_loaded() as i64);
        m.key_set_age.set(self.verifier.key_set_age().as_secs_f64());
    }
}

#[async_trait]
impl BackgroundService for AuthReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; files are still polled");
                None
            }
        };
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("SIGHUP: reloading keys and the denylist");
                    true
                }
                () = self.verifier.key_fetch_wanted() => false,
            };
            self.poll(forced).await;
        }
    }
}
