//! Metrics of the operational features: connection limits, TLS certificate
//! reloads, access log reopening.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::names;
use super::register::{add, counter_vec};

pub struct OpsMetrics {
    pub connections_open: IntGauge,
    pub connections_refused: IntCounterVec,
    pub header_timeouts: IntCounter,
    pub request_header_refusals: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    pub tls_handshakes_moved: IntCounter,
    pub tls_reloads: IntCounterVec,
    pub access_log_reopens: IntCounterVec,
    pub lane_answers: IntCounter,
    pub file_hits: IntCounter,
}

/// The `reason` values of [`names::CONNECTIONS_REFUSED_TOTAL`].
pub const REFUSAL_REASONS: &[&str] = &["max_connections", "per_client"];

/// The `reason` values of [`names::REQUEST_HEADER_REFUSALS_TOTAL`].
pub const HEADER_REFUSAL_REASONS: &[&str] =
    &["uri_too_long", "field_too_large", "header_too_large"];

/// The `reason` values of [`names::TLS_HANDSHAKE_FAILURES_TOTAL`].
pub const HANDSHAKE_FAILURE_REASONS: &[&str] = &["timeout", "error"];

impl OpsMetrics {
    pub fn register(registry: &Registry) -> OpsMetrics {
        let counter_vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            counter_vec(registry, name, help, &[label], values)
        };
        OpsMetrics {
            connections_open: add(
                registry,
                IntGauge::new(
                    names::CONNECTIONS_OPEN,
                    "Client connections open now, TLS handshakes in progress included.",
                )
                .expect("valid metric"),
            ),
            connections_refused: counter_vec(
                names::CONNECTIONS_REFUSED_TOTAL,
                "Client connections closed at once, by reason (max_connections, per_client).",
                "reason",
                REFUSAL_REASONS,
            ),
            header_timeouts: add(
                registry,
                IntCounter::new(
                    names::HEADER_TIMEOUTS_TOTAL,
                    "Client connections closed because a request header was not complete in time.",
                )
                .expect("valid metric"),
            ),
            request_header_refusals: counter_vec(
                names::REQUEST_HEADER_REFUSALS_TOTAL,
                "Requests refused for the size of their head, by reason (uri_too_long, field_too_large, header_too_large).",
                "reason",
                HEADER_REFUSAL_REASONS,
            ),
            tls_handshake_failures: counter_vec(
                names::TLS_HANDSHAKE_FAILURES_TOTAL,
                "TLS handshakes that did not complete, by reason (timeout, error).",
                "reason",
                HANDSHAKE_FAILURE_REASONS,
            ),
            tls_handshakes_moved: add(
                registry,
                IntCounter::new(
                    names::TLS_HANDSHAKES_MOVED_TOTAL,
                    "New TLS connections handed to another worker thread before their handshake.",
                )
                .expect("valid metric"),
            ),
            tls_reloads: counter_vec(
                names::TLS_CERT_RELOADS_TOTAL,
                "TLS certificate reloads, by result (ok, error).",
                "result",
                &["ok", "error"],
            ),
            access_log_reopens: counter_vec(
                names::ACCESS_LOG_REOPENS_TOTAL,
                "Access log file reopenings, by result (ok, error).",
                "result",
                &["ok", "error"],
            ),
            lane_answers: add(
                registry,
                IntCounter::new(
                    names::LANE_ANSWERS_TOTAL,
                    "Requests answered by the HTTP/1 hit lane, before Pingora's session.",
                )
                .expect("valid metric"),
            ),
            file_hits: add(
                registry,
                IntCounter::new(
                    names::FILE_HITS_TOTAL,
                    "Disk hits the hit lane sent from the body file with sendfile.",
                )
                .expect("valid metric"),
            ),
        }
    }
}
