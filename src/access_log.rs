//! One JSON line per request. Tokens never appear: the logged target has
//! every token parameter's value replaced, and no header is logged.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub client: String,
    pub method: &'a str,
    /// The request target as received, token values redacted.
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub cache: &'a str,
    pub origin_status: Option<u16>,
    pub origin_ms: Option<f64>,
    pub origin_error: Option<&'a str>,
    pub s3_code: Option<&'a str>,
    pub auth: &'a str,
    pub sub: Option<&'a str>,
}

/// Writes entries to stdout when enabled, and to a file when one is set.
pub struct AccessLog {
    enabled: bool,
    file: Option<std::sync::Arc<crate::log_file::LogFile>>,
}

impl AccessLog {
    pub fn new(enabled: bool) -> AccessLog {
        AccessLog {
            enabled,
            file: None,
        }
    }

    /// Also appends every line to `file` (`log.access_file`).
    pub fn with_file(mut self, file: std::sync::Arc<crate::log_file::LogFile>) -> AccessLog {
        self.file = Some(file);
        self
    }

    pub fn write(&self, entry: &Entry<'_>) {
        if !self.enabled && self.file.is_none() {
            return;
        }
        if let Ok(mut line) = serde_json::to_vec(entry) {
            line.push(b'\n');
            // One write of a whole line keeps lines from interleaving.
            if self.enabled {
                let _ = std::io::stdout().lock().write_all(&line);
            }
            if let Some(file) = &self.file
                && let Err(e) = file.write_line(&line)
            {
                tracing::warn!(error = %e, "access log line not written to the file");
            }
        }
    }
}

/// RFC 3339 UTC time with milliseconds, e.g. `2026-11-26T01:02:03.456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TIMES: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400, "2000-02-29T00:00:00.000Z"),
        (1_300_819_380, "2011-03-22T18:43:00.000Z"),
        (1_795_740_123, "2026-11-27T00:42:03.000Z"),
        (4_102_444_800, "2100-01-01T00:00:00.000Z"),
    ];

    #[test]
    fn times() {
        for (secs, want) in TIMES {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(*secs)), *want);
        }
    }
}
