//! Metrics of playback in browsers: CORS preflights and manifests given
//! the requesting student's token.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::names;
use super::register::{add, counter_vec};

pub struct PlaybackMetrics {
    pub cors_preflights: IntCounterVec,
    pub manifests_rewritten: IntCounter,
    pub manifests_as_stored: IntCounterVec,
}

/// The `outcome` values of [`names::CORS_PREFLIGHTS_TOTAL`].
pub const PREFLIGHT_OUTCOMES: &[&str] = &["answered", "origin", "method", "headers"];

/// The `reason` values of [`names::MANIFESTS_AS_STORED_TOTAL`].
pub const AS_STORED_REASONS: &[&str] = &["too_large", "unparsable", "encoded"];

impl PlaybackMetrics {
    pub fn register(registry: &Registry) -> PlaybackMetrics {
        let counter_vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            counter_vec(registry, name, help, &[label], values)
        };
        let rewritten = add(
            registry,
            IntCounter::new(
                names::MANIFESTS_REWRITTEN_TOTAL,
                "Manifests sent with the request's token added to their URIs.",
            )
            .expect("valid metric"),
        );
        PlaybackMetrics {
            cors_preflights: counter_vec(
                names::CORS_PREFLIGHTS_TOTAL,
                "CORS preflights, by outcome (answered, or refused for its origin, method or headers).",
                "outcome",
                PREFLIGHT_OUTCOMES,
            ),
            manifests_rewritten: rewritten,
            manifests_as_stored: counter_vec(
                names::MANIFESTS_AS_STORED_TOTAL,
                "Manifests that needed the token added but were sent as stored, by reason.",
                "reason",
                AS_STORED_REASONS,
            ),
        }
    }
}
