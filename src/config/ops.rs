//! Validation of the operational settings: HTTPS listeners (their
//! certificate and key are loaded and checked here, so `cdn-node check`
//! catches a bad pair) and connection limits.

use std::path::Path;
use std::time::Duration;

use super::Problem;
use super::sections::{HttpsSection, LimitsSection};
use crate::limits::Limits;
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
    (problems.len() == before).then(|| Limits {
        header_timeout: Duration::from_millis(section.header_timeout_ms),
        max_connections: section.max_connections,
        max_connections_per_client: section.max_connections_per_client,
    })
}
