//! Validation of the operational settings: HTTPS listeners (their
//! certificate and key are loaded and checked here, so `cdn-node check`
//! catches a bad pair) and connection limits.

use std::path::Path;
use std::time::Duration;

use super::Problem;
use super::sections::{HttpsSection, LimitsSection};
use crate::limits::{HeadLimits, Limits};
use crate::tls::{HttpsListener, check_listener};

pub fn https_listeners(
    sections: &[HttpsSection],
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<HttpsListener> {
    let mut out = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let key = format!("listeners.https[{i}]");
        let Ok(addr) = s.listen.parse() else {
            problems.push(Problem::new(
                format!("{key}.listen"),
                format!(
                    "{:?} is not IP:PORT: write e.g. 0.0.0.0:8443 or [::]:8443",
                    s.listen
                ),
            ));
            continue;
        };
        let listener = HttpsListener {
            addr,
            cert_file: base_dir.join(&s.cert_file),
            key_file: base_dir.join(&s.key_file),
        };
        let before = problems.len();
        check_listener(&key, &listener, problems);
        if problems.len() == before {
            out.push(listener);
        }
    }
    out
}

/// The smallest per-line limit: below it, ordinary requests (a token in
/// the query, a few cookies) would be refused.
const MIN_HEADER_FIELD_BYTES: u64 = 1 << 10;
/// The largest head limit: Pingora itself refuses a request head past
/// about 1 MiB.
const MAX_HEADER_BYTES: u64 = 1 << 20;

pub fn limits(section: &LimitsSection, problems: &mut Vec<Problem>) -> Option<Limits> {
    let before = problems.len();
    if section.header_timeout_ms == 0 || section.header_timeout_ms > 600_000 {
        problems.push(Problem::new(
            "limits.header_timeout_ms",
            format!(
                "{} is out of range: use 1 to 600000 (milliseconds), e.g. 10000",
                section.header_timeout_ms
            ),
        ));
    }
    if section.max_connections == 0 {
        problems.push(Problem::new(
            "limits.max_connections",
            "0 would refuse every client: give a positive number, e.g. 10000",
        ));
    }
    if let Some(n) = section.max_connections_per_client
        && (n == 0 || n > section.max_connections)
    {
        problems.push(Problem::new(
            "limits.max_connections_per_client",
            format!(
                "{n} is out of range: use 1 to limits.max_connections ({}), or leave it out for no per-client limit",
                section.max_connections
            ),
        ));
    }
    let (head, line) = (section.max_header_bytes.0, section.max_header_field_bytes.0);
    if !(MIN_HEADER_FIELD_BYTES..=MAX_HEADER_BYTES).contains(&line) {
        problems.push(Problem::new(
            "limits.max_header_field_bytes",
            format!(
                "{line} is out of range: use 1KiB to 1MiB (and no more than limits.max_header_bytes), e.g. 8KiB"
            ),
        ));
    }
    if !(MIN_HEADER_FIELD_BYTES..=MAX_HEADER_BYTES).contains(&head) {
        problems.push(Problem::new(
            "limits.max_header_bytes",
            format!("{head} is out of range: use 1KiB to 1MiB, e.g. 32KiB"),
        ));
    } else if head < line {
        problems.push(Problem::new(
            "limits.max_header_bytes",
            format!(
                "{head} is less than limits.max_header_field_bytes ({line}): one field must fit in the head; raise it or lower the field limit"
            ),
        ));
    }
    if section.tls_handshake_timeout_ms == 0 || section.tls_handshake_timeout_ms > 600_000 {
        problems.push(Problem::new(
            "limits.tls_handshake_timeout_ms",
            format!(
                "{} is out of range: use 1 to 600000 (milliseconds), e.g. 10000",
                section.tls_handshake_timeout_ms
            ),
        ));
    }
    (problems.len() == before).then(|| Limits {
        header_timeout: Duration::from_millis(section.header_timeout_ms),
        max_connections: section.max_connections,
        max_connections_per_client: section.max_connections_per_client,
        // Both are at most 1 MiB here.
        head: HeadLimits {
            total: head as usize,
            line: line as usize,
        },
        tls_handshake_timeout: Duration::from_millis(section.tls_handshake_timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sections::ByteSize;

    fn problems(f: impl FnOnce(&mut LimitsSection)) -> Vec<String> {
        let mut section = LimitsSection::default();
        f(&mut section);
        let mut problems = Vec::new();
        let limits = limits(&section, &mut problems);
        assert_eq!(limits.is_some(), problems.is_empty());
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn head_limits_and_the_handshake_deadline() {
        let mut problems_seen = Vec::new();
        let limits = limits(&LimitsSection::default(), &mut problems_seen).unwrap();
        assert_eq!(
            limits.head,
            HeadLimits {
                total: 32 * 1024,
                line: 8 * 1024
            }
        );
        assert_eq!(limits.tls_handshake_timeout, Duration::from_secs(10));

        type Change = fn(&mut LimitsSection);
        let cases: &[(Change, &str)] = &[
            (
                |s| s.max_header_field_bytes = ByteSize(1023),
                "limits.max_header_field_bytes: 1023 is out of range: use 1KiB to 1MiB",
            ),
            (
                |s| s.max_header_bytes = ByteSize(2 << 20),
                "limits.max_header_bytes: 2097152 is out of range: use 1KiB to 1MiB",
            ),
            (
                |s| s.max_header_bytes = ByteSize(4096),
                "limits.max_header_bytes: 4096 is less than limits.max_header_field_bytes (8192)",
            ),
            (
                |s| s.tls_handshake_timeout_ms = 0,
                "limits.tls_handshake_timeout_ms: 0 is out of range: use 1 to 600000",
            ),
        ];
        for (change, want) in cases {
            let got = problems(change);
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].starts_with(want), "{got:?}");
        }
        // The extremes pass.
        assert!(
            problems(|s| {
                s.max_header_field_bytes = ByteSize(1024);
                s.max_header_bytes = ByteSize(1024);
            })
            .is_empty()
        );
        assert!(
            problems(|s| {
                s.max_header_field_bytes = ByteSize(1 << 20);
                s.max_header_bytes = ByteSize(1 << 20);
            })
            .is_empty()
        );
    }
}
