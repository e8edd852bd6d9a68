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
use crate::reload_trigger::{ReloadTrigger, Wake};

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
        let mut trigger = ReloadTrigger::new(POLL_INTERVAL, "key files and the denylist");
        while let Some(wake) = trigger
            .next(&mut shutdown, self.verifier.key_fetch_wanted())
            .await
        {
            let forced = wake == Wake::Hangup;
            if forced {
                tracing::info!("SIGHUP: reloading keys and the denylist");
            }
            self.poll(forced).await;
        }
    }
}
